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
import { JunctionError, isJunctionError, issuesFromZod } from '@junction/sdk-connector';
import { describeRoute } from '@junction/openapi/describe';
import type { RouteDoc } from '@junction/openapi/describe';
import { z } from 'zod';
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
  spec: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(4096)
    .describe('a package folder or tarball on the broker host, or an npm package spec'),
});

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

// ---- for the OpenAPI document
const NameParams = z.object({ name: z.string().min(1).describe('the plugin name') });
const SummaryAnswer = z.object({
  name: z.string(),
  kind: z.enum(['sink', 'source']),
  version: z.string(),
  description: z.string().optional(),
  builtin: z.boolean(),
  exactlyOnce: z.boolean(),
});
const Issue = z.object({ path: z.string(), message: z.string() });
const DetailAnswer = SummaryAnswer.extend({
  sdk: z.string().describe('the SDK range it supports'),
  packageName: z.string(),
  config: z.record(z.string(), z.unknown()).describe('the JSON Schema of its config (secret fields `writeOnly` and `x-secret`)'),
});
const ValidationAnswer = z.object({ name: z.string(), errorCount: z.int().describe('0: valid'), issues: z.array(Issue) });
const RefusedAnswer = z.array(
  z.object({
    path: z.string(),
    packageName: z.string().optional(),
    code: z.string(),
    message: z.string(),
    issues: z.array(Issue).optional(),
  }),
);
const doc = (d: Omit<RouteDoc, 'tags'>) => describeRoute({ tags: ['connector-plugins'], ...d });
const validateDoc = (summary: string) =>
  doc({
    summary,
    description:
      "Checks a config against the plugin's schema without creating anything: `errorCount` 0 means valid, else the issues name the fields.",
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
  if (
    code === RegistryErrorCode.PLUGIN_IN_USE ||
    code === RegistryErrorCode.PLUGIN_BUILTIN ||
    code === RegistryErrorCode.DUPLICATE_PLUGIN ||
    code === RegistryErrorCode.PLUGIN_SHADOWS_BUILTIN
  )
    return 409;
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

  app.get(
    '/v1/connector-plugins',
    {
      schema: doc({
        summary: 'List connector plugins',
        description: 'Built-in and installed plugins that passed their checks.',
        responses: { 200: { description: 'the plugins', schema: z.array(SummaryAnswer) } },
      }),
    },
    async () => registry.list().map(summary),
  );

  app.get(
    '/v1/connector-plugins/refused',
    {
      schema: doc({
        summary: 'List refused plugins',
        description: 'Packages found but refused, with the check that failed.',
        responses: { 200: { description: 'the refused packages', schema: RefusedAnswer } },
      }),
    },
    async () => registry.refused(),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/connector-plugins/:name',
    {
      schema: doc({
        summary: 'Get a connector plugin',
        description: 'With the JSON Schema of its config (what a form for it needs).',
        params: NameParams,
        responses: { 200: { description: 'the plugin', schema: DetailAnswer } },
        errors: [404],
      }),
    },
    async (request) => {
      const d = registry.get(request.params.name);
      if (!d) throw pluginNotFound(request.params.name);
      const detail: PluginDetail = { ...summary(d), sdk: d.sdk, packageName: d.packageName, config: d.configSchema };
      return detail;
    },
  );

  const validate = async (request: FastifyRequest<{ Params: { name: string }; Body: unknown }>): Promise<PluginValidation> => {
    const { name } = request.params;
    if (!registry.get(name)) throw pluginNotFound(name);
    const result = await registry.validate(name, request.body);
    return { name, errorCount: result.ok ? 0 : result.issues.length, issues: result.ok ? [] : result.issues };
  };
  app.put<{ Params: { name: string }; Body: unknown }>(
    '/v1/connector-plugins/:name/validate',
    { schema: validateDoc('Validate a config') },
    validate,
  );
  app.put<{ Params: { name: string }; Body: unknown }>(
    '/v1/connector-plugins/:name/config/validate',
    { schema: validateDoc("Validate a config (Kafka Connect's path)") },
    validate,
  );

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

  app.post<{ Body: unknown }>(
    '/v1/connector-plugins',
    {
      schema: doc({
        summary: 'Install a connector plugin',
        description:
          'Installs a package (a folder or tarball on the broker host, or an npm spec) into the plugins dir and refreshes the catalog: usable at once. A refused package (SDK_INCOMPATIBLE, PLUGIN_INVALID, IMPORT_FAILED, …) leaves the plugins dir as it was.',
        body: InstallBody,
        responses: { 201: { description: 'the installed plugin', schema: SummaryAnswer } },
        errors: [409, 422],
      }),
    },
    async (request, reply) => {
      const parsed = InstallBody.safeParse(request.body ?? {});
      if (!parsed.success)
        throw new JunctionError('BODY_INVALID', 'the body must be { spec }', { retryable: false, issues: issuesFromZod(parsed.error) });
      const d = await serial(async () => {
        const installed = await installPlugin(parsed.data.spec, registry.pluginsDir, npmOptions);
        await changed();
        return installed;
      });
      request.log.info({ plugin: d.name, packageName: d.packageName, version: d.version }, 'connector plugin installed');
      return reply.code(201).send(summary(registry.get(d.name) ?? d));
    },
  );

  app.post(
    '/v1/connector-plugins/refresh',
    {
      schema: doc({
        summary: 'Rescan the plugins dir',
        description: 'Lists a plugin installed offline into the plugins dir (and forgets a removed one).',
        responses: {
          200: { description: 'the catalog now', schema: z.object({ plugins: z.array(SummaryAnswer), refused: RefusedAnswer }) },
        },
      }),
    },
    async () =>
      serial(async () => {
        await changed();
        return { plugins: registry.list().map(summary), refused: registry.refused() };
      }),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/connector-plugins/:name',
    {
      schema: doc({
        summary: 'Uninstall a connector plugin',
        description: 'By plugin or package name. Refused while a connector uses it (PLUGIN_IN_USE) and for a built-in (PLUGIN_BUILTIN).',
        params: NameParams,
        responses: { 204: 'uninstalled' },
        errors: [404, 409],
      }),
    },
    async (request, reply) => {
      const removed = await serial(async () => {
        const out = await uninstallPlugin(request.params.name, registry.pluginsDir, { ...npmOptions, inUse: manage.inUse });
        await changed();
        return out;
      });
      request.log.info(removed, 'connector plugin uninstalled');
      return reply.code(204).send();
    },
  );
};
