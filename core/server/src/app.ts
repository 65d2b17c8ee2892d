/**
 * The HTTP application: every package's routes mounted on one fastify instance, plus health and
 * metrics. The app does not own the store: whoever built the store opens and closes it.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { z } from 'zod';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import {
  BodyGate,
  brokerRoutes,
  memphisRoutes,
  errorHandler,
  notFoundHandler,
  refuseUnexpectedBodies,
  registerBrokerMetrics,
} from '@junction/broker';
import type { StationStore } from '@junction/broker';
import { connectRoutes } from '@junction/connect';
import type { ConnectRuntime } from '@junction/connect';
import { registryRoutes } from '@junction/registry';
import { schemaRegistryRoutes } from '@junction/schemas';
import type { SchemaRegistry } from '@junction/schemas';
import type { Registry as PluginRegistry } from '@junction/registry';
import { authRoutes, principalAllows, principalOf } from '@junction/auth';
import { uiRoutes } from '@junction/ui';
import type { LiveHubOptions } from '@junction/ui';
import type { AuthService } from '@junction/auth';
import { describeRoute } from '@junction/openapi/describe';
import { openapiRoutes } from '@junction/openapi';
import { accessDoc, addAccessHooks, undeclaredRoutes } from './access.js';
import type { AuditLog } from './audit.js';
import { confineConnectorPaths } from './confine.js';
import { pipelineRoutes } from './pipeline.js';
import { CONFIG_DEFAULTS } from './config.js';

export interface BuildAppOptions {
  store: StationStore;
  /** A pino logger (or any fastify-compatible one). Default: pino at `info` on stdout. */
  logger?: FastifyBaseLogger | undefined;
  /** Largest request body in bytes. Default `CONFIG_DEFAULTS.bodyLimitBytes`. */
  bodyLimit?: number | undefined;
  /**
   * Whether the store serves requests, for `/healthz`. Default: asks the store for its stations
   * and answers 503 when that fails (a closed or not yet opened store).
   */
  isReady?: (() => boolean | Promise<boolean>) | undefined;
  /**
   * The store keeps copies of stations on several servers (cluster mode): station bodies may set
   * `replicas`. Default false: a body with `replicas` answers 400 CONFIG_INVALID.
   */
  replicatedStations?: boolean | undefined;
  /** The connector runtime: mounts `/v1/connectors`. */
  connect?: ConnectRuntime | undefined;
  /** The plugin catalog: mounts `/v1/connector-plugins` (with install, uninstall and refresh). */
  plugins?: PluginRegistry | undefined;
  /** Called after a plugin install, uninstall or refresh (the server re-applies its configuration file, so a connector it declares on a new plugin starts). */
  onPluginsChange?: (() => Promise<void>) | undefined;
  /** The schema registry (opened): mounts the Confluent Schema Registry API at `/v1/schema-registry`. */
  schemas?: SchemaRegistry | undefined;
  /**
   * The Prometheus registry `/metrics` serves (the connector runtime registers its metrics there, so
   * the caller that builds the runtime passes it). Default: a new one. Cleared when the app closes.
   */
  metricsRegistry?: Registry | undefined;
  /** Stations with per-station series in /metrics (the rest count in the totals). Default DEFAULT_MAX_STATION_SERIES (1000). */
  metricsMaxStations?: number | undefined;
  /**
   * Auth on: every route needs a credential with the grants its declaration (access.ts) names, except
   * /healthz, Memphis's /monitoring/status and the login routes; mounts /v1/auth, /v1/users, /v1/tokens;
   * Memphis's /auth/authenticate checks credentials. Absent: auth off (everything open, as before).
   */
  auth?: AuthService | undefined;
  /** Serve HTTPS with this PEM certificate (chain) and key. */
  https?: { cert: Buffer; key: Buffer } | undefined;
  /** With `auth` and `plugins`: the folders connector configs may name as host paths (default: none allowed). */
  hostPathRoots?: readonly string[] | undefined;
  /** With `auth`: where changes and denied requests are recorded (the `__audit` station). */
  audit?: AuditLog | undefined;
  /** The dashboard's live streams (interval, bound on clients). Default: a snapshot every 2 s, 1000 clients. */
  live?: LiveHubOptions | undefined;
  /** The dashboard's built files (default: @junction/ui's dist/web). */
  uiWebRoot?: string | undefined;
  /**
   * Serve the OpenAPI document (`GET /v1/openapi.json`) and the API reference page (`/docs`), both open
   * (they describe the API, never its data). Default true. The document is built on its first request.
   */
  apiDocs?: boolean | undefined;
}

/** The version the OpenAPI document states: this package's. */
export const API_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

const routeLists = new WeakMap<FastifyInstance, { method: string; url: string }[]>();

/** Every route the app registered (method, URL pattern), HEAD routes included: complete once the app is ready. */
export function routesOf(app: FastifyInstance): readonly { method: string; url: string }[] {
  return routeLists.get(app) ?? [];
}

/** Where the Confluent-compatible schema registry API is mounted: point Confluent clients at `http://host:port/v1/schema-registry`. */
export const SCHEMA_REGISTRY_PREFIX = '/v1/schema-registry';

/** The body limit of routes that do not set their own (every route but produce and settle): 1 MiB. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** The header that carries the request id in and out; an incoming one is kept (for tracing across hops). */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * Builds the app, not listening yet (call `listen`, or `inject` in tests). Routes:
 * the broker API and the Memphis-compatible API (from `@junction/broker`), the connector API
 * (`/v1/connectors`, when `connect` is given) and the plugin catalog (`/v1/connector-plugins`, when
 * `plugins` is given), `GET /healthz`
 * (200 `{status:'ok'}` while the store serves; 200 `{status:'degraded', reasons}` while it serves but a
 * station lost messages, had metadata repaired or is damaged (StationInfo.health); else 503
 * `{status:'unavailable'}`), and `GET /metrics`
 * (Prometheus text: default Node metrics plus the broker's, from a registry of this app's own).
 * Every error answers `{ code, message, issues? }`; unexpected ones are logged at error with the
 * request id. Per-request log lines appear only when the logger is at debug or trace.
 * `close()` stops accepting, lets in-flight requests
 * finish and releases the metrics; it does not close the store.
 */
export function buildApp(options: BuildAppOptions): FastifyInstance {
  const { store } = options;
  const bodyLimit = options.bodyLimit ?? CONFIG_DEFAULTS.bodyLimitBytes;
  // Request log lines (debug, trace) carry the URL: never with a token in it (Memphis's ?authorization=).
  const serializers = { req: requestForLog };
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger.child({}, { serializers }) } : { logger: { level: 'info', serializers } }),
    ...(options.https && { https: { cert: options.https.cert, key: options.https.key, minVersion: 'TLSv1.2' as const } }),
    // Routes that take large bodies (produce; settle) set their own limit: nothing else needs megabytes,
    // and every byte a route accepts is a byte an attacker can make it parse.
    bodyLimit: DEFAULT_BODY_LIMIT,
    // Fastify's own early errors (a malformed URL, ...) answer in our shape too.
    frameworkErrors: (error, request, reply) => errorHandler(error, request, reply),
    requestIdHeader: REQUEST_ID_HEADER,
    genReqId: () => randomUUID(),
    // Keep-alive sockets would hold close() open until they time out.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  const routes: { method: string; url: string }[] = [];
  routeLists.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url });
  });
  // Auth's hook first, so nothing (not even the body checks) runs for a request without a credential.
  if (options.auth) {
    addAccessHooks(app, options.auth, options.audit);
    if (options.plugins) app.addHook('preHandler', confineConnectorPaths(options.plugins, options.hostPathRoots ?? []));
    app.addHook('onReady', async () => {
      const missing = undeclaredRoutes(routes);
      if (missing.length > 0) app.log.error({ routes: missing }, 'routes without an access declaration: denied to everybody');
    });
  }
  // Before every route plugin: its onRoute hook must see them all.
  if (options.apiDocs !== false)
    void app.register(openapiRoutes, { version: API_VERSION, auth: options.auth !== undefined, access: accessDoc });
  app.addHook('onRequest', refuseUnexpectedBodies(DEFAULT_BODY_LIMIT));
  app.addHook('onSend', async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id);
  });

  const registry = options.metricsRegistry ?? new Registry();
  collectDefaultMetrics({ register: registry });
  const brokerMetrics = registerBrokerMetrics(store, registry, { maxStationSeries: options.metricsMaxStations });
  app.addHook('onClose', async () => {
    brokerMetrics.close();
    registry.clear();
  });

  const isReady =
    options.isReady ??
    (async () => {
      try {
        await store.listStations({ limit: 1 });
        return true;
      } catch {
        return false;
      }
    });

  // Fastify logs two lines per request at info; for a broker serving many small requests (every
  // fetch, every ack) that drowns everything else, so route logs show at debug and trace only.
  const level = app.log.level;
  const logLevel = level === 'debug' ? 'debug' : level === 'trace' ? 'trace' : 'warn';

  // Degraded is still 200: a broker with damaged data serves everything else, and a probe that failed
  // would get it restarted or taken out of rotation — neither repairs the data.
  // In a plugin, like every route, so the OpenAPI plugin (registered above) sees them.
  void app.register(async (ops) => {
    ops.get('/healthz', { logLevel, schema: HEALTH_DOC }, async (_request, reply) => {
      if (!(await isReady())) return reply.code(503).send({ status: 'unavailable' });
      const reasons = await degradedReasons(store);
      for (const p of options.connect?.problems() ?? []) reasons.push(`connectors: ${p}`);
      if (reasons.length > 0) return { status: 'degraded', reasons };
      return { status: 'ok' };
    });

    ops.get('/metrics', { logLevel, schema: METRICS_DOC }, async (_request, reply) => {
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(text);
    });
  });

  // One budget for the large bodies of every produce route (BodyGate): bounded memory however many send.
  const bodyGate = new BodyGate({ maxBytes: bodyLimit });
  void app.register(brokerRoutes, {
    store,
    bodyLimit,
    bodyGate,
    metrics: brokerMetrics,
    logLevel,
    replicas: options.replicatedStations === true,
  });
  const auth = options.auth;
  const authenticator = auth && { authenticate: auth.memphisAuthenticate.bind(auth), refresh: auth.memphisRefresh.bind(auth) };
  void app.register(memphisRoutes, { store, bodyLimit, bodyGate, metrics: brokerMetrics, logLevel, authenticator });
  if (auth) void app.register(authRoutes, { auth });
  if (options.connect) void app.register(connectRoutes, { runtime: options.connect, logLevel });
  if (options.plugins) {
    const connect = options.connect;
    // A plugin a connector names is not uninstalled under it.
    const inUse = (plugin: string): string[] => (connect ? connect.names().filter((n) => connect.config(n).plugin === plugin) : []);
    void app.register(registryRoutes, { registry: options.plugins, manage: { inUse, onChange: options.onPluginsChange } });
  }
  if (options.connect) {
    const confine = auth && options.plugins ? { plugins: options.plugins, roots: options.hostPathRoots ?? [] } : undefined;
    void app.register(pipelineRoutes, { store, runtime: options.connect, logger: app.log, confine, logLevel });
  }
  if (options.schemas) void app.register(schemaRegistryRoutes, { registry: options.schemas, logLevel, prefix: SCHEMA_REGISTRY_PREFIX });
  // The dashboard: its files are public (the login page loads without a token); its data routes are /v1 routes like the rest.
  const canReadConnectors = auth
    ? (request: FastifyRequest) => {
        const p = principalOf(request);
        return p !== undefined && principalAllows(p, 'connector', 'read', undefined);
      }
    : undefined;
  void app.register(uiRoutes, { store, connectors: options.connect, live: options.live, webRoot: options.uiWebRoot, canReadConnectors });
  return app;
}

const HEALTH_DOC = describeRoute({
  summary: 'Health probe',
  description:
    '200 `{status: "ok"}` while the store serves; 200 `{status: "degraded", reasons}` while it serves but a station lost messages, had metadata repaired or is damaged, or connectors have problems; 503 `{status: "unavailable"}` otherwise. Degraded is still 200: restarting repairs nothing.',
  tags: ['operations'],
  responses: {
    200: {
      description: 'serving (maybe degraded)',
      schema: z.object({
        status: z.enum(['ok', 'degraded']),
        reasons: z.array(z.string()).optional().describe('at most 50, then a line saying how many more'),
      }),
    },
    503: { description: 'the store does not serve', schema: z.object({ status: z.literal('unavailable') }) },
  },
});

const METRICS_DOC = describeRoute({
  summary: 'Prometheus metrics',
  description: "Default Node metrics plus the broker's, the connector runtime's and the schema registry's, in Prometheus text format.",
  tags: ['operations'],
  responses: { 200: { description: 'Prometheus text exposition format', contentTypes: ['text/plain; version=0.0.4; charset=utf-8'] } },
});

/** What a request log line shows of a request (fastify's fields), with `authorization` query values hidden. */
export function requestForLog(req: FastifyRequest): {
  method: string;
  url: string;
  version?: string;
  host: string;
  remoteAddress: string;
  remotePort?: number;
} {
  const version = req.headers?.['accept-version'];
  return {
    method: req.method,
    url: req.url.replace(/([?&]authorization=)[^&#]*/gi, '$1***'),
    ...(typeof version === 'string' && { version }),
    host: req.host,
    remoteAddress: req.ip,
    ...(req.socket?.remotePort !== undefined && { remotePort: req.socket.remotePort }),
  };
}

/** Most reasons /healthz lists (then one line saying how many more). */
const MAX_HEALTH_REASONS = 50;

/**
 * Why the store is degraded: each unhealthy station's reasons, prefixed with the station ("station s: …"),
 * at most MAX_HEALTH_REASONS, then one line saying how many more and how many stations. A store with
 * `healthSummary` (the embedded one keeps a running set of unhealthy stations) answers without looking at
 * the healthy ones; otherwise every station is listed, a page at a time.
 */
async function degradedReasons(store: StationStore): Promise<string[]> {
  if (store.healthSummary) {
    try {
      const h = await store.healthSummary(MAX_HEALTH_REASONS);
      if (h.more > 0)
        return [...h.reasons, `… and ${h.more} more in ${h.degraded} station${h.degraded === 1 ? '' : 's'} (see GET /v1/stations)`];
      return h.reasons;
    } catch {
      return [];
    }
  }
  const out: string[] = [];
  let more = 0;
  let after: string | undefined;
  try {
    for (;;) {
      const page = await store.listStations({ limit: 1000, ...(after !== undefined && { after }) });
      for (const s of page) {
        if (!s.health || s.health.status === 'ok') continue;
        const prefix = `station ${s.name}${s.health.status === 'damaged' ? ' (damaged: cannot serve)' : ''}`;
        for (const r of s.health.reasons) {
          if (out.length < MAX_HEALTH_REASONS) out.push(`${prefix}: ${r}`);
          else more++;
        }
      }
      if (page.length < 1000) break;
      after = page[page.length - 1]!.name;
    }
  } catch {
    return out;
  }
  if (more > 0) out.push(`… and ${more} more (see GET /v1/stations)`);
  return out;
}
