/**
 * The Confluent Schema Registry REST API over the registry, for clients that speak it (serializers,
 * kafka-ui, AKHQ, @kafkajs/confluent-schema-registry): mount it under a prefix, e.g.
 * `app.register(schemaRegistryRoutes, { registry, prefix: '/v1/schema-registry' })`. Bodies in its
 * content types (`application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`,
 * `application/json`), answers in `application/vnd.schemaregistry.v1+json`, errors as
 * `{ error_code, message }` with its codes.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, LogLevel } from 'fastify';
import { z } from 'zod';
import { COMPATIBILITY_LEVELS, compatibilityProblems } from './compat.js';
import { SchemaErrorCode, SchemaRegistryError, isSchemaRegistryError } from './errors.js';
import { SchemaType } from './formats/index.js';
import type { SchemaRegistry } from './registry.js';
import { checkSubject } from './registry.js';
import { MODES } from './state.js';
import { describeRoute, ErrorShape } from '@junction/openapi/describe';
import type { RouteDoc } from '@junction/openapi/describe';

export interface SchemaRegistryRoutesOptions {
  registry: SchemaRegistry;
  logLevel?: LogLevel | undefined;
}

export const SCHEMA_REGISTRY_CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
const BODY_TYPES = [
  'application/vnd.schemaregistry.v1+json',
  'application/vnd.schemaregistry+json',
  'application/json',
  'application/octet-stream',
];
const MAX_VERSION = 2 ** 31 - 1;

const RegisterBody = z.object({
  schema: z.string({ error: 'schema is required' }),
  schemaType: z.enum([SchemaType.AVRO, SchemaType.JSON, SchemaType.PROTOBUF]).optional(),
  references: z.array(z.strictObject({ name: z.string().min(1), subject: z.string().min(1), version: z.int().min(1) })).optional(),
  // Accepted and not kept (data contract rules are not supported): listed in the README.
  metadata: z.unknown().optional(),
  ruleSet: z.unknown().optional(),
});
const ConfigBody = z.object({ compatibility: z.string().optional(), compatibilityLevel: z.string().optional() });
const ModeBody = z.object({ mode: z.string() });

// ---- for the OpenAPI document (Confluent's shapes)
const Subject = z.object({ subject: z.string().describe('the subject, e.g. `<station>-value`') });
const SubjectVersion = z.object({ subject: z.string(), version: z.string().describe('1 … 2^31-1, or `latest` (also `-1`)') });
const Id = z.object({ id: z.string().regex(/^\d+$/).describe('the schema id') });
const Deleted = z.object({ deleted: z.enum(['true', 'false']).optional().describe('include soft-deleted ones') });
const Permanent = z.object({ permanent: z.enum(['true', 'false']).optional().describe('hard-delete (after a soft delete)') });
const DefaultToGlobal = z.object({
  defaultToGlobal: z.enum(['true', 'false']).optional().describe('answer the global setting when the subject has none'),
});
const Reference = z.object({ name: z.string(), subject: z.string(), version: z.int() });
const VersionAnswer = z.object({
  subject: z.string(),
  version: z.int(),
  id: z.int(),
  schemaType: z.enum([SchemaType.JSON, SchemaType.PROTOBUF]).optional().describe('absent for AVRO'),
  schema: z.string(),
  references: z.array(Reference).optional(),
});
const SchemaAnswer = VersionAnswer.pick({ schemaType: true, schema: true, references: true });
const Level = z.object({ compatibilityLevel: z.enum(COMPATIBILITY_LEVELS) });
const Mode = z.object({ mode: z.enum(MODES) });
const RAW_SCHEMA = { description: 'the schema text itself', contentTypes: [SCHEMA_REGISTRY_CONTENT_TYPE] };
const srDoc = (d: Omit<RouteDoc, 'tags' | 'errorShape' | 'bodyContentTypes'>) =>
  describeRoute({
    tags: ['schema-registry'],
    errorShape: ErrorShape.schemaRegistry,
    bodyContentTypes: BODY_TYPES.slice(0, 3),
    ...d,
    responses: Object.fromEntries(
      Object.entries(d.responses).map(([k, v]) => [
        k,
        typeof v === 'string' || v.contentTypes ? v : { ...v, contentTypes: [SCHEMA_REGISTRY_CONTENT_TYPE] },
      ]),
    ),
  });

function bool(v: unknown): boolean {
  return v === 'true' || v === true;
}

function parseVersion(raw: string): number | 'latest' {
  if (raw === 'latest' || raw === '-1') return 'latest';
  if (!/^[1-9]\d{0,9}$/.test(raw) || Number(raw) > MAX_VERSION) {
    throw new SchemaRegistryError(
      SchemaErrorCode.INVALID_VERSION,
      `The specified version '${raw}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`,
    );
  }
  return Number(raw);
}

function parseId(raw: string): number {
  if (!/^\d{1,15}$/.test(raw)) throw new SchemaRegistryError(SchemaErrorCode.SCHEMA_NOT_FOUND, `Schema ${raw} not found`);
  return Number(raw);
}

function bodyOf<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const i = r.error.issues[0];
    throw new SchemaRegistryError(
      SchemaErrorCode.INVALID_SCHEMA,
      `Invalid request body: ${i ? `${i.path.join('.') || '(body)'}: ${i.message}` : 'malformed'}`,
    );
  }
  return r.data;
}

function params(req: FastifyRequest): Record<string, string> {
  return req.params as Record<string, string>;
}
function query(req: FastifyRequest): Record<string, string | undefined> {
  return req.query as Record<string, string | undefined>;
}

/** A version's answer as Confluent shapes it: schemaType left out for AVRO, references only when there are some. */
function versionAnswer(registry: SchemaRegistry, subject: string, version: number, id: number): Record<string, unknown> {
  const s = registry.state.schemaById(id)!;
  return {
    subject,
    version,
    id,
    ...(s.schemaType === SchemaType.AVRO ? {} : { schemaType: s.schemaType }),
    schema: s.schema,
    ...(s.references.length > 0 ? { references: s.references } : {}),
  };
}

export const schemaRegistryRoutes: FastifyPluginAsync<SchemaRegistryRoutesOptions> = async (app: FastifyInstance, opts) => {
  const { registry } = opts;
  const logLevel: LogLevel = opts.logLevel ?? 'warn';

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(BODY_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, (body as string).length === 0 ? undefined : JSON.parse(body as string));
    } catch {
      done(
        Object.assign(new SchemaRegistryError(SchemaErrorCode.INVALID_SCHEMA, 'Invalid request body: not JSON'), { statusCode: 400 }),
        undefined,
      );
    }
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    if (!reply.getHeader('content-type') || String(reply.getHeader('content-type')).startsWith('application/json'))
      reply.header('content-type', SCHEMA_REGISTRY_CONTENT_TYPE);
    return payload;
  });
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    if (isSchemaRegistryError(err)) return reply.code(err.status).send({ error_code: err.errorCode, message: err.message });
    const status = (err as { statusCode?: number }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500)
      return reply.code(status).send({ error_code: status, message: (err as Error).message });
    req.log.error({ err }, 'schema registry request failed');
    return reply.code(500).send({ error_code: SchemaErrorCode.STORE_ERROR, message: 'Error in the backend data store' });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error_code: 404, message: `HTTP 404 Not Found: ${req.method} ${req.url}` }),
  );

  const r = { logLevel } as const;

  app.get(
    '/',
    {
      ...r,
      schema: srDoc({
        summary: 'Root (Confluent clients probe it)',
        responses: { 200: { description: 'an empty object', schema: z.object({}) } },
      }),
    },
    async () => ({}),
  );
  app.get(
    '/schemas/types',
    {
      ...r,
      schema: srDoc({
        summary: 'Schema types supported',
        responses: { 200: { description: 'JSON, PROTOBUF, AVRO', schema: z.array(z.string()) } },
      }),
    },
    async () => [SchemaType.JSON, SchemaType.PROTOBUF, SchemaType.AVRO],
  );

  // ---- subjects
  app.get(
    '/subjects',
    {
      ...r,
      schema: srDoc({
        summary: 'List subjects',
        query: Deleted.extend({ subjectPrefix: z.string().optional() }),
        responses: { 200: { description: 'subject names', schema: z.array(z.string()) } },
      }),
    },
    async (req) => {
      await registry.catchUp();
      const q = query(req);
      const prefix = q.subjectPrefix ?? '';
      return registry.state.subjectNames(bool(q.deleted)).filter((s) => s.startsWith(prefix));
    },
  );

  app.get(
    '/subjects/:subject/versions',
    {
      ...r,
      schema: srDoc({
        summary: "List a subject's versions",
        params: Subject,
        query: Deleted,
        responses: { 200: { description: 'version numbers', schema: z.array(z.int()) } },
        errors: [404],
      }),
    },
    async (req) => {
      await registry.catchUp();
      return registry.state.versions(params(req).subject!, bool(query(req).deleted)).map((v) => v.version);
    },
  );

  app.get(
    '/subjects/:subject/versions/:version',
    {
      ...r,
      schema: srDoc({
        summary: 'Get a version',
        params: SubjectVersion,
        query: Deleted,
        responses: { 200: { description: 'the version', schema: VersionAnswer } },
        errors: [404, 422],
      }),
    },
    async (req) => {
      await registry.catchUp();
      const { subject, version } = params(req) as { subject: string; version: string };
      const v = registry.state.version(subject, parseVersion(version), bool(query(req).deleted));
      return versionAnswer(registry, subject, v.version, v.id);
    },
  );

  app.get(
    '/subjects/:subject/versions/:version/schema',
    {
      ...r,
      schema: srDoc({
        summary: "Get a version's schema text",
        params: SubjectVersion,
        query: Deleted,
        responses: { 200: RAW_SCHEMA },
        errors: [404, 422],
      }),
    },
    async (req, reply) => {
      await registry.catchUp();
      const { subject, version } = params(req) as { subject: string; version: string };
      const v = registry.state.version(subject, parseVersion(version), bool(query(req).deleted));
      return reply.type(SCHEMA_REGISTRY_CONTENT_TYPE).send(registry.state.schemaById(v.id)!.schema);
    },
  );

  app.get(
    '/subjects/:subject/versions/:version/referencedby',
    {
      ...r,
      schema: srDoc({
        summary: 'Ids of the schemas that reference a version',
        params: SubjectVersion,
        responses: { 200: { description: 'schema ids', schema: z.array(z.int()) } },
        errors: [404, 422],
      }),
    },
    async (req) => {
      await registry.catchUp();
      const { subject, version } = params(req) as { subject: string; version: string };
      const v = registry.state.version(subject, parseVersion(version), false);
      return registry.state.referencedBy(subject, v.version);
    },
  );

  app.post(
    '/subjects/:subject/versions',
    {
      ...r,
      schema: srDoc({
        summary: 'Register a schema',
        description:
          'Under the subject, if compatible with its versions (per the compatibility level). The same schema again answers its existing id.',
        params: Subject,
        body: RegisterBody,
        responses: { 200: { description: 'its id', schema: z.object({ id: z.int() }) } },
        errors: [404, 409, 422],
      }),
    },
    async (req) => {
      const subject = params(req).subject!;
      const body = bodyOf(RegisterBody, req.body);
      const { id } = await registry.register(subject, body.schemaType ?? SchemaType.AVRO, body.schema, body.references ?? []);
      return { id };
    },
  );

  app.post(
    '/subjects/:subject',
    {
      ...r,
      schema: srDoc({
        summary: 'Look a schema up in a subject',
        params: Subject,
        query: Deleted,
        body: RegisterBody,
        responses: { 200: { description: 'the version that holds it', schema: VersionAnswer } },
        errors: [404, 422],
      }),
    },
    async (req) => {
      const subject = params(req).subject!;
      checkSubject(subject);
      const body = bodyOf(RegisterBody, req.body);
      await registry.catchUp();
      const includeDeleted = bool(query(req).deleted);
      registry.state.versions(subject, includeDeleted); // 40401 for an unknown subject
      const { key } = registry.state.parse(body.schemaType ?? SchemaType.AVRO, body.schema, body.references ?? []);
      const v = registry.state.findInSubject(subject, key, includeDeleted);
      if (!v) throw new SchemaRegistryError(SchemaErrorCode.SCHEMA_NOT_FOUND, 'Schema not found');
      return versionAnswer(registry, subject, v.version, v.id);
    },
  );

  app.delete(
    '/subjects/:subject',
    {
      ...r,
      schema: srDoc({
        summary: 'Delete a subject',
        description: 'Soft delete; `permanent=true` after it hard-deletes.',
        params: Subject,
        query: Permanent,
        responses: { 200: { description: 'the versions deleted', schema: z.array(z.int()) } },
        errors: [404, 422],
      }),
    },
    async (req) => registry.deleteSubject(params(req).subject!, bool(query(req).permanent)),
  );

  app.delete(
    '/subjects/:subject/versions/:version',
    {
      ...r,
      schema: srDoc({
        summary: 'Delete a version',
        description: 'Soft delete; `permanent=true` after it hard-deletes.',
        params: SubjectVersion,
        query: Permanent,
        responses: { 200: { description: 'the version deleted', schema: z.int() } },
        errors: [404, 422],
      }),
    },
    async (req) => {
      const { subject, version } = params(req) as { subject: string; version: string };
      return registry.deleteVersion(subject, parseVersion(version), bool(query(req).permanent));
    },
  );

  // ---- schemas by id
  const byId = async (req: FastifyRequest) => {
    await registry.catchUp();
    const id = parseId(params(req).id!);
    const s = registry.state.schemaById(id);
    if (!s) throw new SchemaRegistryError(SchemaErrorCode.SCHEMA_NOT_FOUND, `Schema ${id} not found`);
    return s;
  };
  app.get(
    '/schemas/ids/:id',
    {
      ...r,
      schema: srDoc({
        summary: 'Get a schema by id',
        params: Id,
        responses: { 200: { description: 'the schema', schema: SchemaAnswer } },
        errors: [404],
      }),
    },
    async (req) => {
      const s = await byId(req);
      return {
        ...(s.schemaType === SchemaType.AVRO ? {} : { schemaType: s.schemaType }),
        schema: s.schema,
        ...(s.references.length > 0 ? { references: s.references } : {}),
      };
    },
  );
  app.get(
    '/schemas/ids/:id/schema',
    { ...r, schema: srDoc({ summary: 'Get a schema text by id', params: Id, responses: { 200: RAW_SCHEMA }, errors: [404] }) },
    async (req, reply) => reply.type(SCHEMA_REGISTRY_CONTENT_TYPE).send((await byId(req)).schema),
  );
  app.get(
    '/schemas/ids/:id/versions',
    {
      ...r,
      schema: srDoc({
        summary: 'Subject-versions that use a schema',
        params: Id,
        query: Deleted,
        responses: { 200: { description: 'where it is used', schema: z.array(z.object({ subject: z.string(), version: z.int() })) } },
        errors: [404],
      }),
    },
    async (req) => {
      const s = await byId(req);
      return registry.state
        .usesOf(s.id)
        .filter((v) => !v.deleted || bool(query(req).deleted))
        .map((v) => ({ subject: v.subject, version: v.version }));
    },
  );
  app.get(
    '/schemas/ids/:id/subjects',
    {
      ...r,
      schema: srDoc({
        summary: 'Subjects that use a schema',
        params: Id,
        query: Deleted,
        responses: { 200: { description: 'subject names', schema: z.array(z.string()) } },
        errors: [404],
      }),
    },
    async (req) => {
      const s = await byId(req);
      return [
        ...new Set(
          registry.state
            .usesOf(s.id)
            .filter((v) => !v.deleted || bool(query(req).deleted))
            .map((v) => v.subject),
        ),
      ];
    },
  );

  // ---- compatibility
  const compat = async (req: FastifyRequest, version: number | 'latest' | undefined) => {
    const subject = params(req).subject!;
    const body = bodyOf(RegisterBody, req.body);
    await registry.catchUp();
    const { parsed } = registry.state.parse(body.schemaType ?? SchemaType.AVRO, body.schema, body.references ?? []);
    let problems: string[];
    if (version === undefined) {
      // Against the versions the subject's level names (all live ones when transitive).
      let live: { version: number; id: number }[] = [];
      try {
        live = registry.state.versions(subject, false);
      } catch {
        live = [];
      }
      problems = compatibilityProblems(
        parsed,
        live.map((v) => ({ version: v.version, schema: registry.state.parsedById(v.id)! })),
        registry.state.effectiveCompatibility(subject),
      );
    } else {
      const v = registry.state.version(subject, version, false);
      const level = registry.state.effectiveCompatibility(subject).replace('_TRANSITIVE', '') as (typeof COMPATIBILITY_LEVELS)[number];
      problems = compatibilityProblems(parsed, [{ version: v.version, schema: registry.state.parsedById(v.id)! }], level);
    }
    return { is_compatible: problems.length === 0, ...(bool(query(req).verbose) ? { messages: problems } : {}) };
  };
  app.post(
    '/compatibility/subjects/:subject/versions/:version',
    {
      ...r,
      schema: srDoc({
        summary: 'Test compatibility with a version',
        params: SubjectVersion,
        query: z.object({ verbose: z.enum(['true', 'false']).optional() }),
        body: RegisterBody,
        responses: {
          200: {
            description: 'the verdict (`messages` with verbose=true)',
            schema: z.object({ is_compatible: z.boolean(), messages: z.array(z.string()).optional() }),
          },
        },
        errors: [404, 422],
      }),
    },
    async (req) => compat(req, parseVersion(params(req).version!)),
  );
  app.post(
    '/compatibility/subjects/:subject/versions',
    {
      ...r,
      schema: srDoc({
        summary: "Test compatibility with the versions the subject's level names",
        params: Subject,
        query: z.object({ verbose: z.enum(['true', 'false']).optional() }),
        body: RegisterBody,
        responses: {
          200: {
            description: 'the verdict (`messages` with verbose=true)',
            schema: z.object({ is_compatible: z.boolean(), messages: z.array(z.string()).optional() }),
          },
        },
        errors: [422],
      }),
    },
    async (req) => compat(req, undefined),
  );

  // ---- config
  const level = (body: unknown) => {
    const b = bodyOf(ConfigBody, body);
    const v = b.compatibility ?? b.compatibilityLevel;
    if (!v || !(COMPATIBILITY_LEVELS as readonly string[]).includes(v)) {
      throw new SchemaRegistryError(
        SchemaErrorCode.INVALID_COMPATIBILITY_LEVEL,
        `Invalid compatibility level. Valid values are ${COMPATIBILITY_LEVELS.join(', ')}`,
      );
    }
    return v as (typeof COMPATIBILITY_LEVELS)[number];
  };
  app.get(
    '/config',
    {
      ...r,
      schema: srDoc({ summary: 'Get the global compatibility level', responses: { 200: { description: 'the level', schema: Level } } }),
    },
    async () => {
      await registry.catchUp();
      return { compatibilityLevel: registry.state.compatibilityOf(undefined) };
    },
  );
  app.put(
    '/config',
    {
      ...r,
      schema: srDoc({
        summary: 'Set the global compatibility level',
        body: ConfigBody,
        responses: { 200: { description: 'the level', schema: z.object({ compatibility: z.enum(COMPATIBILITY_LEVELS) }) } },
        errors: [422],
      }),
    },
    async (req) => {
      const after = level(req.body);
      await registry.setCompatibility(undefined, after);
      return { compatibility: after };
    },
  );
  app.delete(
    '/config',
    {
      ...r,
      schema: srDoc({
        summary: 'Reset the global compatibility level',
        responses: { 200: { description: 'the level it had', schema: Level } },
      }),
    },
    async () => ({ compatibilityLevel: (await registry.setCompatibility(undefined, null)).before }),
  );
  app.get(
    '/config/:subject',
    {
      ...r,
      schema: srDoc({
        summary: "Get a subject's compatibility level",
        params: Subject,
        query: DefaultToGlobal,
        responses: { 200: { description: 'the level', schema: Level } },
        errors: [404],
      }),
    },
    async (req) => {
      await registry.catchUp();
      const subject = params(req).subject!;
      const own = registry.state.compatibilityOf(subject);
      if (own) return { compatibilityLevel: own };
      if (bool(query(req).defaultToGlobal)) return { compatibilityLevel: registry.state.compatibilityOf(undefined) };
      throw new SchemaRegistryError(
        SchemaErrorCode.SUBJECT_COMPATIBILITY_NOT_CONFIGURED,
        `Subject '${subject}' does not have subject-level compatibility configured`,
      );
    },
  );
  app.put(
    '/config/:subject',
    {
      ...r,
      schema: srDoc({
        summary: "Set a subject's compatibility level",
        params: Subject,
        body: ConfigBody,
        responses: { 200: { description: 'the level', schema: z.object({ compatibility: z.enum(COMPATIBILITY_LEVELS) }) } },
        errors: [422],
      }),
    },
    async (req) => {
      const after = level(req.body);
      await registry.setCompatibility(params(req).subject!, after);
      return { compatibility: after };
    },
  );
  app.delete(
    '/config/:subject',
    {
      ...r,
      schema: srDoc({
        summary: "Remove a subject's compatibility level",
        params: Subject,
        responses: { 200: { description: 'the level it had', schema: Level } },
        errors: [404],
      }),
    },
    async (req) => {
      const subject = params(req).subject!;
      await registry.catchUp();
      if (!registry.state.compatibilityOf(subject))
        throw new SchemaRegistryError(SchemaErrorCode.SUBJECT_NOT_FOUND, `Subject '${subject}' not found.`);
      return { compatibilityLevel: (await registry.setCompatibility(subject, null)).before };
    },
  );

  // ---- mode
  const mode = (body: unknown) => {
    const m = bodyOf(ModeBody, body).mode;
    if (!(MODES as readonly string[]).includes(m)) {
      throw new SchemaRegistryError(
        SchemaErrorCode.INVALID_MODE,
        `Invalid mode. Valid values are ${MODES.join(', ')} (IMPORT is not supported)`,
      );
    }
    return m as (typeof MODES)[number];
  };
  app.get(
    '/mode',
    { ...r, schema: srDoc({ summary: 'Get the global mode', responses: { 200: { description: 'the mode', schema: Mode } } }) },
    async () => {
      await registry.catchUp();
      return { mode: registry.state.modeOf(undefined) };
    },
  );
  app.put(
    '/mode',
    {
      ...r,
      schema: srDoc({
        summary: 'Set the global mode',
        body: ModeBody,
        responses: { 200: { description: 'the mode', schema: Mode } },
        errors: [422],
      }),
    },
    async (req) => {
      const after = mode(req.body);
      await registry.setMode(undefined, after);
      return { mode: after };
    },
  );
  app.get(
    '/mode/:subject',
    {
      ...r,
      schema: srDoc({
        summary: "Get a subject's mode",
        params: Subject,
        query: DefaultToGlobal,
        responses: { 200: { description: 'the mode', schema: Mode } },
        errors: [404],
      }),
    },
    async (req) => {
      await registry.catchUp();
      const subject = params(req).subject!;
      const own = registry.state.modeOf(subject);
      if (own) return { mode: own };
      if (bool(query(req).defaultToGlobal)) return { mode: registry.state.modeOf(undefined) };
      throw new SchemaRegistryError(
        SchemaErrorCode.SUBJECT_MODE_NOT_CONFIGURED,
        `Subject '${subject}' does not have subject-level mode configured`,
      );
    },
  );
  app.put(
    '/mode/:subject',
    {
      ...r,
      schema: srDoc({
        summary: "Set a subject's mode",
        params: Subject,
        body: ModeBody,
        responses: { 200: { description: 'the mode', schema: Mode } },
        errors: [422],
      }),
    },
    async (req) => {
      const after = mode(req.body);
      await registry.setMode(params(req).subject!, after);
      return { mode: after };
    },
  );
  app.delete(
    '/mode/:subject',
    {
      ...r,
      schema: srDoc({
        summary: "Remove a subject's mode",
        params: Subject,
        responses: { 200: { description: 'the mode it had', schema: Mode.partial() } },
      }),
    },
    async (req) => ({ mode: (await registry.setMode(params(req).subject!, null)).before }),
  );
};
