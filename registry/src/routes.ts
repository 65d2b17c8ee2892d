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
 * With `manage` (the server passes it; admin grant):
 * - `POST /v1/connector-plugins`, body `{ spec }` (a package folder or tarball on the broker's host, or
 *   an npm spec) → installs it into the plugins dir and refreshes: 201 with the plugin's summary. A
 *   broken or incompatible package is refused (422 with its code: SDK_INCOMPATIBLE, PLUGIN_INVALID,
 *   NOT_A_PLUGIN, ENTRY_NOT_FOUND, IMPORT_FAILED, PACKAGE_INVALID, INSTALL_FAILED; 409 for
 *   DUPLICATE_PLUGIN / PLUGIN_SHADOWS_BUILTIN) and the plugins dir is left as it was.
 * - `POST /v1/connector-plugins/refresh` → scans again (a plugin installed offline into the plugins
 *   dir becomes usable): 200 `{ plugins: [summary], refused: [...] }`.
 * - `DELETE /v1/connector-plugins/:name` (a plugin or package name) → uninstalls and refreshes: 204;
 *   409 PLUGIN_IN_USE while a connector uses it, 409 PLUGIN_BUILTIN for a built-in, 404 PLUGIN_NOT_FOUND.
 * Installs, removals and refreshes run one at a time.
 *
 * An unknown plugin answers 404 `{ code: 'PLUGIN_NOT_FOUND', message }`; every error is `{ code, message, issues? }`.
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { JunctionError, isJunctionError, issuesFromZod, z } from '@junction/sdk-connector';
import type { PluginDescriptor } from './check.js';
import { RegistryErrorCode, pluginNotFound } from './errors.js';
import { installPlugin, uninstallPlugin } from './install.js';
import type { Registry } from './registry.js';

/** What the install / uninstall / refresh routes need besides the registry. */
export interface RegistryManageOptions {
  /** The connectors using a plugin now: a plugin in use is not uninstalled (PLUGIN_IN_USE). */
  inUse?: ((plugin: string) => readonly string[] | Promise<readonly string[]>) | undefined;
  /** Base for a relative path spec (default: the broker's working directory). */
  cwd?: string | undefined;
  /** Extra environment for npm. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Called after a change of the catalog (install, uninstall, refresh) completed. */
  onChange?: (() => void | Promise<void>) | undefined;
}

export interface RegistryRoutesOptions {
  registry: Registry;
  /** Mounts the install / uninstall / refresh routes (see the module comment). Absent: read-only. */
  manage?: RegistryManageOptions | undefined;
}

/** The body of `POST /v1/connector-plugins`. */
export const InstallBody = z.strictObject({
  spec: z.string().trim().min(1, 'must not be empty').max(4096).describe('a package folder or tarball on the broker host, or an npm package spec'),
});

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
  if (code === RegistryErrorCode.PLUGIN_IN_USE || code === RegistryErrorCode.PLUGIN_BUILTIN || code === RegistryErrorCode.DUPLICATE_PLUGIN || code === RegistryErrorCode.PLUGIN_SHADOWS_BUILTIN) return 409;
  const refusals: string[] = [
    RegistryErrorCode.INSTALL_FAILED,
    RegistryErrorCode.PACKAGE_INVALID,
    RegistryErrorCode.NOT_A_PLUGIN,
    RegistryErrorCode.ENTRY_NOT_FOUND,
    RegistryErrorCode.IMPORT_FAILED,
    RegistryErrorCode.PLUGIN_INVALID,
    RegistryErrorCode.SDK_INCOMPATIBLE,
  ];
  if (refusals.includes(code)) return 422;
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
export const registryRoutes: FastifyPluginAsync<RegistryRoutesOptions> = async (app, { registry, manage }) => {
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

  if (!manage) return;

  // One change of the plugins dir at a time (npm does not share a prefix safely).
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn);
    queue = next.catch(() => undefined);
    return next;
  };
  const changed = async (): Promise<void> => {
    await registry.refresh();
    await manage.onChange?.();
  };
  const npmOptions = { builtinDirs: [...registry.builtinDirs], cwd: manage.cwd, env: manage.env };

  app.post<{ Body: unknown }>('/v1/connector-plugins', async (request, reply) => {
    const parsed = InstallBody.safeParse(request.body ?? {});
    if (!parsed.success) throw new JunctionError('BODY_INVALID', 'the body must be { spec }', { retryable: false, issues: issuesFromZod(parsed.error) });
    const d = await serial(async () => {
      const installed = await installPlugin(parsed.data.spec, registry.pluginsDir, npmOptions);
      await changed();
      return installed;
    });
    request.log.info({ plugin: d.name, packageName: d.packageName, version: d.version }, 'connector plugin installed');
    return reply.code(201).send(summary(registry.get(d.name) ?? d));
  });

  app.post('/v1/connector-plugins/refresh', async () =>
    serial(async () => {
      await changed();
      return { plugins: registry.list().map(summary), refused: registry.refused() };
    }),
  );

  app.delete<{ Params: { name: string } }>('/v1/connector-plugins/:name', async (request, reply) => {
    const removed = await serial(async () => {
      const out = await uninstallPlugin(request.params.name, registry.pluginsDir, { ...npmOptions, inUse: manage.inUse });
      await changed();
      return out;
    });
    request.log.info(removed, 'connector plugin uninstalled');
    return reply.code(204).send();
  });
};
