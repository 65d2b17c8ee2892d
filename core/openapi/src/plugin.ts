/**
 * The OpenAPI 3.1 document (`GET /v1/openapi.json`) and the API reference page (`GET /docs`), as one
 * fastify plugin. The document is @fastify/swagger's, built from the routes fastify registered: each
 * route's RouteDoc (see ./describe.ts) is turned into JSON Schema with zod's own `z.toJSONSchema` when
 * the document is first asked for (then cached), so start-up pays nothing but one onRoute hook. The page
 * is @fastify/swagger-ui, served from the package's own files (no CDN: it works offline).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { z } from 'zod';
import { describeRoute, ErrorShape, routeDocOf } from './describe.js';
import type { ResponseDoc, RouteDoc } from './describe.js';

/** Where the document is served. */
export const OPENAPI_PATH = '/v1/openapi.json';
/** Where the API reference page is served. */
export const DOCS_PREFIX = '/docs';

/** Who may call a route when auth is on, as the document states it (core/server derives it from its access table). */
export type AccessDoc = { open: true } | { authenticated: true } | { grants: readonly string[] };

export interface OpenApiOptions {
  /** The document's `info.version` (the server's version). */
  version: string;
  /** `info.title`. Default "Junction HTTP API". */
  title?: string | undefined;
  /**
   * Auth is on: operations carry the bearer security requirement (and none for open routes). Off: the
   * document says the server accepts requests without a credential.
   */
  auth?: boolean | undefined;
  /** The access rule of a route (method, fastify URL pattern), for its security and its description. */
  access?: ((method: string, url: string) => AccessDoc | undefined) | undefined;
}

/** The tags (areas) of the API, in the order the page shows them. */
export const TAGS = [
  { name: 'stations', description: 'Stations: named, partitioned, append-only streams, and their options.' },
  { name: 'messages', description: 'Produce to and browse a station.' },
  { name: 'groups', description: 'Consumer groups: fetch, ack, nack, dead-letter, seek.' },
  { name: 'dead-letters', description: "A station's dead-letter station: browse, replay, purge." },
  { name: 'connectors', description: 'The connector runtime (shaped after Kafka Connect).' },
  { name: 'connector-plugins', description: 'The plugin catalog and config validation.' },
  {
    name: 'pipeline',
    description: 'Stations and connectors as code (`junction apply`): plan and apply a junction.yaml against the running broker.',
  },
  {
    name: 'schema-registry',
    description:
      'The Confluent-compatible schema registry (`/v1/schema-registry`): point Confluent clients at it. Errors are `{ error_code, message }`.',
  },
  { name: 'auth', description: 'Login, refresh, logout, whoami (when auth is on).' },
  { name: 'users', description: 'Users and their roles and grants (when auth is on).' },
  { name: 'tokens', description: 'Service tokens (when auth is on).' },
  { name: 'memphis', description: "Memphis REST gateway compatibility: Memphis's paths and answer shapes." },
  { name: 'operations', description: 'Health, metrics and this document.' },
  {
    name: 'dashboard',
    description:
      'The dashboard (`@junction/ui`): its pages (public: they hold no data), live streams (Server-Sent Events) and the station list it pages through.',
  },
] as const;

const ISSUE = z.object({
  path: z.string().describe('the field path, e.g. `messages[3].valueBase64` (empty: the body itself)'),
  message: z.string(),
});

/** The error envelopes (shared components `ApiError`, `MemphisError`, `SchemaRegistryError`). */
export const ERROR_SCHEMAS = {
  ApiError: z
    .object({
      code: z.string().describe('stable, e.g. BODY_INVALID, STATION_NOT_FOUND, UNAUTHENTICATED, FORBIDDEN'),
      message: z.string(),
      issues: z.array(ISSUE).optional().describe('per field, for BODY_INVALID and CONFIG_INVALID'),
    })
    .describe('The error answer of the Junction API.'),
  MemphisError: z
    .object({ success: z.literal(false), error: z.string().describe('the message'), code: z.string().describe("Junction's stable code") })
    .describe("The error answer of the Memphis gateway routes (Memphis's shape plus Junction's code)."),
  SchemaRegistryError: z
    .object({ error_code: z.int().describe("Confluent's code, e.g. 40401 subject not found, 42201 invalid schema"), message: z.string() })
    .describe("The error answer of the schema registry (Confluent's shape)."),
} as const;

const ERROR_COMPONENT: Record<ErrorShape, keyof typeof ERROR_SCHEMAS> = {
  [ErrorShape.api]: 'ApiError',
  [ErrorShape.memphis]: 'MemphisError',
  [ErrorShape.schemaRegistry]: 'SchemaRegistryError',
};

const ERROR_TEXT: Record<number, string> = {
  400: 'the request is invalid (an ApiError names the fields in `issues`)',
  401: 'no valid credential (auth on)',
  403: 'the credential lacks a grant (auth on)',
  404: 'not found',
  409: 'conflict (exists, or not in the state the action needs)',
  413: 'the body or a message is too large',
  415: 'unsupported content type',
  422: 'understood but refused by the rules',
  429: 'too many attempts: retry later',
  500: 'unexpected failure (logged with the request id)',
  503: 'the store is closed, the server is busy, or the resource cannot serve',
};

type JsonSchema = Record<string, unknown>;

/**
 * A zod schema as JSON Schema 2020-12 (what OpenAPI 3.1 uses), its input or its output side. Two
 * touches: `z.int()`'s implicit ±2^53 bounds are left out (noise on every integer), and answers (output)
 * do not say `additionalProperties: false` (zod's default for output objects): an answer may gain
 * fields, a request body may not.
 */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  // Many routes share a schema (StationParams, StationInfoAnswer, …): converted once, handed out as
  // copies (fastify-swagger's reference resolver changes what it is given).
  let cached = converted.get(schema);
  if (!cached) converted.set(schema, (cached = {}));
  cached[io] ??= convert(schema, io);
  return structuredClone(cached[io]);
}

const converted = new WeakMap<z.ZodType, { input?: JsonSchema; output?: JsonSchema }>();

function convert(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    target: 'draft-2020-12',
    override: ({ jsonSchema }) => {
      const j = jsonSchema as JsonSchema;
      if (j.minimum === Number.MIN_SAFE_INTEGER) delete j.minimum;
      if (j.maximum === Number.MAX_SAFE_INTEGER) delete j.maximum;
      if (io === 'output' && j.additionalProperties === false) delete j.additionalProperties;
    },
  }) as JsonSchema;
  delete json.$schema;
  return inlineDefs(json);
}

/**
 * zod puts a recursive schema (a filter of filters, say) under `$defs` with `#/$defs/…` references, which an
 * OpenAPI document resolves against its own root, where they do not exist. They are inlined here; where a
 * definition would contain itself, the inner occurrence is left open (`{}`, described as recursive).
 */
function inlineDefs(json: JsonSchema): JsonSchema {
  const defs = json.$defs as Record<string, JsonSchema> | undefined;
  if (!defs) return json;
  delete json.$defs;
  const walk = (node: unknown, stack: readonly string[]): unknown => {
    if (Array.isArray(node)) return node.map((n) => walk(n, stack));
    if (!node || typeof node !== 'object') return node;
    const ref = (node as JsonSchema).$ref;
    if (typeof ref === 'string' && ref.startsWith('#/$defs/')) {
      const name = ref.slice('#/$defs/'.length);
      const def = defs[name];
      if (!def || stack.includes(name)) return { description: 'recursive: the same shape as its parent' };
      return walk(def, [...stack, name]);
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, stack)]));
  };
  return walk(json, []) as JsonSchema;
}

function accessText(access: AccessDoc | undefined): string | undefined {
  if (!access) return undefined;
  if ('open' in access) return 'Open: no credential needed, even with auth on.';
  if ('authenticated' in access) return 'With auth on: any valid credential.';
  return `With auth on: needs ${access.grants.map((g) => `\`${g}\``).join(' and ')}.`;
}

function responseOf(r: string | ResponseDoc): JsonSchema {
  const doc: ResponseDoc = typeof r === 'string' ? { description: r } : r;
  const out: JsonSchema = { description: doc.description };
  if (doc.headers)
    out.headers = Object.fromEntries(Object.entries(doc.headers).map(([k, description]) => [k, { description, type: 'string' }]));
  if (doc.schema) {
    const schema = jsonSchemaOf(doc.schema, 'output');
    out.content = Object.fromEntries((doc.contentTypes ?? ['application/json']).map((ct) => [ct, { schema }]));
  } else if (doc.contentTypes) {
    out.content = Object.fromEntries(doc.contentTypes.map((ct) => [ct, { schema: {} }]));
  } else {
    out.type = 'null'; // swagger: no content
  }
  return out;
}

/** The route schema fastify-swagger turns into an operation. */
function swaggerSchemaOf(doc: RouteDoc, access: AccessDoc | undefined, auth: boolean): JsonSchema {
  const errorRef = { $ref: `#/components/schemas/${ERROR_COMPONENT[doc.errorShape ?? ErrorShape.api]}` };
  const response: JsonSchema = {};
  for (const [status, r] of Object.entries(doc.responses)) response[status] = responseOf(r);
  const errors = new Set([400, ...(doc.errors ?? []), 500]);
  if (auth && access && !('open' in access)) errors.add(401);
  if (auth && access && 'grants' in access) errors.add(403);
  for (const status of [...errors].sort((a, b) => a - b)) {
    if (response[String(status)]) continue; // the route's own description of that status wins
    response[String(status)] = { description: ERROR_TEXT[status] ?? 'error', content: { 'application/json': { schema: errorRef } } };
  }
  const text = [doc.description, accessText(access)].filter((t) => t !== undefined).join('\n\n');
  const out: JsonSchema = {
    summary: doc.summary,
    tags: [...doc.tags],
    ...(text !== '' && { description: text }),
    ...(doc.deprecated && { deprecated: true }),
    ...(doc.params && { params: jsonSchemaOf(doc.params, 'input') }),
    ...(doc.query && { querystring: jsonSchemaOf(doc.query, 'input') }),
    ...(doc.body && { body: jsonSchemaOf(doc.body, 'input'), consumes: [...(doc.bodyContentTypes ?? ['application/json'])] }),
    response,
  };
  if (auth && access && 'open' in access) out.security = [];
  return out;
}

const plugin: FastifyPluginAsync<OpenApiOptions> = async (app: FastifyInstance, opts) => {
  const auth = opts.auth === true;
  const optionalBodies = new Map<string, boolean>();
  let documentText: string | undefined;
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: opts.title ?? 'Junction HTTP API',
        version: opts.version,
        description:
          'Stations, consumer groups, dead letters, connectors, schemas and auth. Generated from the zod schemas the routes validate with. ' +
          'Errors answer `{ code, message, issues? }` (the schema registry: `{ error_code, message }`; the Memphis gateway: `{ success: false, error, code }`).',
      },
      tags: TAGS.map((t) => ({ ...t })),
      components: {
        schemas: Object.fromEntries(Object.entries(ERROR_SCHEMAS).map(([name, s]) => [name, jsonSchemaOf(s, 'output')])) as never,
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'A session token (POST /v1/auth/login) or a service token (POST /v1/tokens).',
          },
        },
      },
      ...(auth && { security: [{ bearerAuth: [] }] }),
    },
    transform: ({ schema, url, route }) => {
      const doc = routeDocOf(schema);
      if (!doc) return { schema, url };
      const method = [route.method].flat()[0] ?? 'GET';
      if (doc.body && doc.bodyRequired === false) optionalBodies.set(`${method.toLowerCase()} ${url}`, true);
      return { schema: swaggerSchemaOf(doc, opts.access?.(method, url), auth) as never, url };
    },
    transformObject: (documentObject) => {
      const openapiObject = (documentObject as { openapiObject: { paths?: Record<string, Record<string, unknown> | undefined> } })
        .openapiObject;
      // fastify-swagger marks every body required; some are not.
      for (const [path, item] of Object.entries(openapiObject.paths ?? {})) {
        for (const [method, op] of Object.entries(item ?? {})) {
          const fastifyUrl = path.replace(/\{([^}]+)\}/g, ':$1');
          if (optionalBodies.has(`${method} ${fastifyUrl}`) && op && typeof op === 'object' && 'requestBody' in op)
            (op.requestBody as { required?: boolean }).required = false;
        }
      }
      return openapiObject as never;
    },
  });

  app.get(
    OPENAPI_PATH,
    {
      schema: describeRoute({
        summary: 'This document (OpenAPI 3.1)',
        tags: ['operations'],
        responses: { 200: { description: 'the OpenAPI document of every route this server serves', contentTypes: ['application/json'] } },
      }),
    },
    // Built on the first request (fastify-swagger caches the object), serialized once.
    async (_request, reply) => reply.type('application/json; charset=utf-8').send((documentText ??= JSON.stringify(app.swagger()))),
  );

  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    uiConfig: { docExpansion: 'list', deepLinking: true },
    // The page's own files only (script and style hashes from the plugin). Without upgrade-insecure-requests:
    // a broker served over plain HTTP on a LAN address would have its page's assets fetched over HTTPS.
    staticCSP: true,
    transformStaticCSP: (header: string) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
  });
};

/**
 * Registers the document generator, `GET /v1/openapi.json` and the reference page under `/docs`. Register
 * it before any route plugin (its onRoute hook sees only the routes registered after it); it is not
 * encapsulated, so it sees every route of the app.
 */
export const openapiRoutes = fp(plugin, { name: '@junction/openapi', fastify: '5.x' });
