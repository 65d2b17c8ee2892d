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
import type { PluginDescriptor } from './check.js';
import { RegistryErrorCode, pluginNotFound } from './errors.js';
import type { Registry } from './registry.js';

export interface RegistryRoutesOptions {
  registry: Registry;
}

/** One row of the plugin list. */
export interface PluginSummary {
  name: string;
  kind: 'sink' | 'source' | 'transform';
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

  app.get('/v1/connector-plugins', async () => registry.list().map(summary));

  app.get('/v1/connector-plugins/refused', async () => registry.refused());

  app.get<{ Params: { name: string } }>('/v1/connector-plugins/:name', async (request) => {
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
  app.put<{ Params: { name: string }; Body: unknown }>('/v1/connector-plugins/:name/validate', validate);
  app.put<{ Params: { name: string }; Body: unknown }>('/v1/connector-plugins/:name/config/validate', validate);
};
