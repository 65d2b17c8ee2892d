/**
 * The catalog over HTTP, in Kafka Connect's style (`/connector-plugins`):
 *
 * - `GET  /v1/connector-plugins` → `[{ name, kind, version, description?, builtin, exactlyOnce }]`
 * - `GET  /v1/connector-plugins/refused` → `[{ path, packageName?, code, message, issues? }]`
 * - `GET  /v1/connector-plugins/:name` → `{ name, kind, version, sdk, description?, builtin, exactlyOnce, packageName, config }`
 *   where `config` is the JSON Schema of the config (secret fields `writeOnly` and `x-secret`).
 * - `PUT  /v1/connector-plugins/:name/validate` (also `/config/validate`, Kafka Connect's path), body =
 *   the config object → 200 `{ name, errorCount, issues: [{ path, message }] }` (errorCount 0: valid).
 *
 * An unknown plugin answers 404 `{ code: 'PLUGIN_NOT_FOUND', message }`; every error is `{ code, message, issues? }`.
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { isJunctionError } from '@junction/sdk-connector';
import { describeRoute } from '@junction/openapi/describe';
import type { RouteDoc } from '@junction/openapi/describe';
import { z } from 'zod';
import type { PluginDescriptor } from './check.js';
import { RegistryErrorCode, pluginNotFound } from './errors.js';
import type { Registry } from './registry.js';

export interface RegistryRoutesOptions {
  registry: Registry;
}

/** One row of the plugin list. */
export interface PluginSummary {
  name: string;
  kind: 'sink' | 'source';
  version: string;
  description?: string;
  builtin: boolean;
  exactlyOnce: boolean;
}

/** What `GET /v1/connector-plugins/:name` answers. */
export interface PluginDetail extends PluginSummary {
  sdk: string;
  packageName: string;
  config: unknown;
}

/** What `PUT /v1/connector-plugins/:name/validate` answers. */
export interface PluginValidation {
  name: string;
  errorCount: number;
  issues: { path: string; message: string }[];
}

// ---- for the OpenAPI document
const NameParams = z.object({ name: z.string().min(1).describe('the plugin name') });
const SummaryAnswer = z.object({ name: z.string(), kind: z.enum(['sink', 'source']), version: z.string(), description: z.string().optional(), builtin: z.boolean(), exactlyOnce: z.boolean() });
const Issue = z.object({ path: z.string(), message: z.string() });
const DetailAnswer = SummaryAnswer.extend({ sdk: z.string().describe('the SDK range it supports'), packageName: z.string(), config: z.record(z.string(), z.unknown()).describe('the JSON Schema of its config (secret fields `writeOnly` and `x-secret`)') });
const ValidationAnswer = z.object({ name: z.string(), errorCount: z.int().describe('0: valid'), issues: z.array(Issue) });
const RefusedAnswer = z.array(z.object({ path: z.string(), packageName: z.string().optional(), code: z.string(), message: z.string(), issues: z.array(Issue).optional() }));
const doc = (d: Omit<RouteDoc, 'tags'>) => describeRoute({ tags: ['connector-plugins'], ...d });
const validateDoc = (summary: string) =>
  doc({
    summary,
    description: "Checks a config against the plugin's schema without creating anything: `errorCount` 0 means valid, else the issues name the fields.",
    params: NameParams,
    body: z.record(z.string(), z.unknown()).describe("the plugin's config"),
    responses: { 200: { description: 'the verdict', schema: ValidationAnswer } },
    errors: [404],
  });

function summary(d: PluginDescriptor): PluginSummary {
  return {
    name: d.name,
    kind: d.kind,
    version: d.version,
    ...(d.description === undefined ? {} : { description: d.description }),
    builtin: d.builtin,
    exactlyOnce: d.exactlyOnce,
  };
}

function statusFor(code: string): number {
  if (code === RegistryErrorCode.PLUGIN_NOT_FOUND) return 404;
  if (code === 'BODY_INVALID' || code === 'CONFIG_INVALID') return 400;
  return 500;
}

function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  if (isJunctionError(error)) {
    const status = statusFor(error.code);
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    void reply.code(status).send({ code: error.code, message: error.message, ...(error.issues?.length ? { issues: error.issues } : {}) });
    return;
  }
  const fe = error as Partial<FastifyError>;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // fastify's own client errors: a body that is not JSON, too large, a bad content type.
    void reply.code(fe.statusCode).send({ code: 'BODY_INVALID', message: fe.message ?? 'bad request' });
    return;
  }
  request.log.error({ err: error }, 'request failed');
  void reply.code(500).send({ code: 'INTERNAL', message: 'internal error' });
}

/**
 * The catalog routes as a fastify plugin; register it with `{ registry }`. It answers its own errors
 * (in its scope) with `{ code, message, issues? }`, so it works mounted alone or in the server.
 */
export const registryRoutes: FastifyPluginAsync<RegistryRoutesOptions> = async (app, { registry }) => {
  app.setErrorHandler(errorHandler);

  app.get('/v1/connector-plugins', { schema: doc({ summary: 'List connector plugins', description: 'Built-in and installed plugins that passed their checks.', responses: { 200: { description: 'the plugins', schema: z.array(SummaryAnswer) } } }) }, async () => registry.list().map(summary));

  app.get('/v1/connector-plugins/refused', { schema: doc({ summary: 'List refused plugins', description: 'Packages found but refused, with the check that failed.', responses: { 200: { description: 'the refused packages', schema: RefusedAnswer } } }) }, async () => registry.refused());

  app.get<{ Params: { name: string } }>('/v1/connector-plugins/:name', { schema: doc({ summary: 'Get a connector plugin', description: 'With the JSON Schema of its config (what a form for it needs).', params: NameParams, responses: { 200: { description: 'the plugin', schema: DetailAnswer } }, errors: [404] }) }, async (request) => {
    const d = registry.get(request.params.name);
    if (!d) throw pluginNotFound(request.params.name);
    const detail: PluginDetail = { ...summary(d), sdk: d.sdk, packageName: d.packageName, config: d.configSchema };
    return detail;
  });

  const validate = async (request: FastifyRequest<{ Params: { name: string }; Body: unknown }>): Promise<PluginValidation> => {
    const { name } = request.params;
    if (!registry.get(name)) throw pluginNotFound(name);
    const result = await registry.validate(name, request.body);
    return { name, errorCount: result.ok ? 0 : result.issues.length, issues: result.ok ? [] : result.issues };
  };
  app.put<{ Params: { name: string }; Body: unknown }>('/v1/connector-plugins/:name/validate', { schema: validateDoc('Validate a config') }, validate);
  app.put<{ Params: { name: string }; Body: unknown }>('/v1/connector-plugins/:name/config/validate', { schema: validateDoc("Validate a config (Kafka Connect's path)") }, validate);
};
