/**
 * Starting and stopping a whole broker: configuration, the embedded store, stations as code, the
 * HTTP app. Nothing global is installed (no signal handlers, no process exit): that is the CLI's job.
 */
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { Registry as MetricsRegistry } from 'prom-client';
import { EmbeddedStore, defaultFdBudget } from '@junction/broker';
import type { StationStore } from '@junction/broker';
import { ConnectRuntime, makeDirs } from '@junction/connect';
import type { ApplyResult } from '@junction/connect';
import { Registry as PluginRegistry } from '@junction/registry';
import { AuthService, FileAuthStore } from '@junction/auth';
import { SchemaRegistry, schemaEnforcingStore } from '@junction/schemas';
import { stationSchemaResolver } from './station-schema.js';
import { buildApp } from './app.js';
import { AuditLog } from './audit.js';
import { checkDeclaredPaths } from './confine.js';
import { ClusterAuthStore } from './cluster-auth.js';
import { loadConfig } from './config.js';
import type { ConfigOverrides, JunctionConfig } from './config.js';
import { applyStations } from './stations.js';
import type { ApplyStationsResult } from './stations.js';
import { JunctionError, ServerErrorCode, configIssues } from './errors.js';
import { raiseNofileLimit } from './nofile.js';

export interface StartServerOptions extends ConfigOverrides {
  /** A `junction.yaml` to load. Absent: no file is read (the CLI looks for `./junction.yaml`). */
  configPath?: string | undefined;
  /** Default: pino on stdout at the configured `logLevel`. */
  logger?: Logger | undefined;
  /** Default `process.env` (JUNCTION_DATA_DIR, JUNCTION_HOST, JUNCTION_PORT, JUNCTION_LOG_LEVEL). */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /**
   * How long `close()` lets in-flight requests finish before it closes the store, which answers
   * pending long polls empty and fails what is still running with STORE_CLOSED. Default 5000 ms.
   */
  closeGraceMs?: number | undefined;
  /**
   * Re-read the configuration file when it changes and apply its stations and connectors again
   * (an invalid file is logged and the running state kept). Default true when there is a file.
   */
  watchConfig?: boolean | undefined;
  /** scrypt cost (log2 N) of new password hashes (default 17); tests lower it. */
  scryptLogN?: number | undefined;
  /** The auth clock (ms); tests move it to expire tokens. Default Date.now. */
  authClock?: (() => number) | undefined;
  /** Folders of built-in connector packages. Default: `<repository>/connectors`, found from this package. */
  builtinConnectorDirs?: string[] | undefined;
}

/** `<repository>/connectors`: this file is core/server/dist/server.js (or src/server.ts). */
export const BUILTIN_CONNECTORS_DIR = fileURLToPath(new URL('../../../connectors/', import.meta.url));

export interface RunningServer {
  /** `http://host:port`, with the real port (also when 0 was asked) and 127.0.0.1 for a wildcard host. */
  url: string;
  port: number;
  app: FastifyInstance;
  store: StationStore;
  config: JunctionConfig;
  /** What applying the configuration's stations did. */
  stations: ApplyStationsResult;
  /** The connector runtime (`/v1/connectors`). */
  connect: ConnectRuntime;
  /** The plugin catalog (`/v1/connector-plugins`), from the built-in connectors and `<dataDir>/plugins`. */
  plugins: PluginRegistry;
  /** What applying the configuration's connectors did at start. */
  connectors: ApplyResult;
  /** Users, tokens and grants, when auth is on. */
  auth?: AuthService | undefined;
  /**
   * Re-reads the configuration file and applies its stations and connectors (what the file watcher
   * does). Resolves with what changed; rejects (CONFIG_INVALID …) leaving everything as it was.
   */
  reload(): Promise<{ stations: ApplyStationsResult; connectors: ApplyResult }>;
  /** Stops listening, lets in-flight requests finish (up to `closeGraceMs`), closes the store. Idempotent. */
  close(): Promise<void>;
}

/**
 * Loads the configuration (`configPath`, environment, the given overrides), opens the embedded store
 * in `dataDir`, applies the declared stations, opens the plugin catalog (built-in connectors and
 * `<dataDir>/plugins`), starts the connector runtime (connectors stored in `<dataDir>/connect` and
 * those the file declares), listens, and watches the file for changes.
 *
 * @throws JunctionError CONFIG_INVALID for bad configuration (connector issues with paths such as
 *   `connectors[1].config.dir`), LISTEN_FAILED when the port cannot be bound, or whatever opening the
 *   store throws (IO_ERROR, LOG_CORRUPT); nothing is left open then.
 */
export async function startServer(options: StartServerOptions = {}): Promise<RunningServer> {
  const {
    configPath,
    env,
    closeGraceMs = 5000,
    logger: givenLogger,
    watchConfig = true,
    builtinConnectorDirs,
    scryptLogN,
    authClock,
    ...overrides
  } = options;
  const config = await loadConfig(configPath, overrides, env ? { env } : {});
  // Synchronous writes to stdout: pino's default stream writes on libuv's threadpool, which plugin threads
  // blocked in native calls can fill (connect-wedge-e2e lost 'junction closed' that way, before the signal
  // that ends such a process); a broker logs little, and every line it logs should survive its end.
  const logger = givenLogger ?? pino({ level: config.server.logLevel, name: 'junction' }, pino.destination({ dest: 1, sync: true }));
  for (const warning of config.warnings) logger.warn({ configPath: config.configPath }, warning);
  checkExposure(config);
  const https = config.tls ? await readTls(config.tls) : undefined;

  await makeDirs(config.server.dataDir, 0o777);
  const nofile = raiseNofileLimit();
  if (nofile?.failed)
    logger.warn(
      { soft: nofile.soft, hard: nofile.hard },
      `could not raise the open-file limit to the hard limit (${nofile.failed}): the open-file budget follows the soft limit`,
    );
  else if (nofile?.before !== undefined)
    logger.info({ before: nofile.before, soft: nofile.soft }, 'raised the soft open-file limit to the hard limit');
  const authOptions = {
    adminPassword: (env ?? process.env)['JUNCTION_ADMIN_PASSWORD'],
    logger: logger.child({ component: 'auth' }),
    accessTtlS: config.auth.accessTokenTtlS,
    refreshTtlS: config.auth.refreshTokenTtlS,
    scryptLogN,
    now: authClock,
  };
  // Embedded: before the store opens, so a missing admin password or a damaged users file stops the
  // start with nothing open. Cluster: the state is in the store's metadata bucket, opened below.
  let auth =
    config.auth.enabled && !config.cluster
      ? await AuthService.open({
          ...authOptions,
          store: new FileAuthStore({ dir: join(config.server.dataDir, 'auth'), sync: config.server.fsync !== 'never' }),
        })
      : undefined;
  // Loaded only in cluster mode, so a single node does not load the NATS client.
  const clusterMod = config.cluster ? await import('@junction/cluster') : undefined;
  const jsStore =
    clusterMod && config.cluster
      ? new clusterMod.JetStreamStore({ ...config.cluster.nats, logger: logger.child({ component: 'store' }) })
      : undefined;
  const store: StationStore = jsStore
    ? jsStore
    : new EmbeddedStore({
        dataDir: config.server.dataDir,
        fsync: config.server.fsync,
        logger: logger.child({ component: 'store' }),
        // Half the (raised) soft limit unless configured: the rest is for connections and other files.
        maxOpenFiles: config.server.maxOpenFiles ?? defaultFdBudget(),
        maxOpenPartitions: config.server.maxOpenPartitions,
      });
  await store.open();

  let app: FastifyInstance | undefined;
  let connect: ConnectRuntime | undefined;
  let audit: AuditLog | undefined;
  let watcher: FSWatcher | undefined;
  try {
    if (config.auth.enabled && jsStore) auth = await AuthService.open({ ...authOptions, store: new ClusterAuthStore(jsStore) });
    // The schema registry keeps its log in the store (station __schemas): nodes of a cluster share it.
    const schemas = new SchemaRegistry({ store, logger: logger.child({ component: 'schemas' }) });
    await schemas.open();
    const metricsRegistry = new MetricsRegistry();
    // Every produce path (the API, the Memphis gateway, source connectors) goes through this store: values
    // of stations with a schema are validated before the engine stores them.
    const served = schemaEnforcingStore(store, {
      registry: schemas,
      metrics: metricsRegistry,
      logger: logger.child({ component: 'schemas' }),
    });
    const stations = await applyStations(served, config.stations, logger);
    if (auth) {
      audit = new AuditLog(store, logger.child({ component: 'audit' }));
      await audit.open();
    }
    const plugins = await PluginRegistry.open({
      builtinDirs: builtinConnectorDirs ?? [BUILTIN_CONNECTORS_DIR],
      pluginsDir: join(config.server.dataDir, 'plugins'),
      logger: logger.child({ component: 'registry' }),
    });
    // Cluster: connector definitions and source positions in the shared bucket, tasks placed over the live nodes by leases.
    const nodeName = `${hostname()}:${process.pid}`;
    const clusterConnect =
      clusterMod && jsStore
        ? {
            placement: new clusterMod.ClusterPlacement({
              store: jsStore,
              node: nodeName,
              replicas: config.cluster?.nats.replicas,
              logger: logger.child({ component: 'placement' }),
            }),
            definitions: new clusterMod.ClusterDefinitions(jsStore),
            // Source positions in the shared bucket, fenced by the lease of the source's task 0.
            positions: new clusterMod.ClusterPositions(jsStore, nodeName),
          }
        : {};
    connect = new ConnectRuntime({
      ...clusterConnect,
      store: served,
      catalog: plugins,
      dataDir: config.server.dataDir,
      logger,
      registry: metricsRegistry,
      ...(env ? { env } : {}),
      // Literal connector secrets are sealed at rest with this key (every node of a cluster needs the same).
      secretsKey: { key: (env ?? process.env).JUNCTION_SECRETS_KEY, file: config.server.secretsKeyFile },
      // Sinks see their station's schema (ctx.schema, batch.schema), resolved with the registry.
      stationSchemaOf: stationSchemaResolver(served, schemas),
      // The shared pool of sink threads and the operator's isolation per plugin (read at start; a reload keeps them).
      connect: config.connect,
    });
    await connect.start();
    const hostPathRoots = config.auth.hostPathRoots ?? [config.server.dataDir];
    if (auth) await checkDeclaredPaths(plugins, config.connectors, hostPathRoots);
    // Without a file there is no desired state: connectors that came from a file earlier stay as they are.
    const connectors =
      config.configPath !== undefined
        ? await connect.applyDesired(config.connectors)
        : { created: [], updated: [], deleted: [], unchanged: [] };
    // Set once reload exists (below): after a plugin install the file's connectors are applied again, so one naming the new plugin starts.
    let afterPluginsChange: () => Promise<void> = async () => {};
    app = buildApp({
      store: served,
      logger,
      bodyLimit: config.server.bodyLimitBytes,
      connect,
      plugins,
      onPluginsChange: () => afterPluginsChange(),
      schemas,
      metricsRegistry,
      replicatedStations: jsStore !== undefined,
      auth,
      audit,
      https,
      hostPathRoots,
      metricsMaxStations: config.server.metricsMaxStations,
    });
    try {
      await app.listen({ host: config.server.host, port: config.server.port });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new JunctionError(
        ServerErrorCode.LISTEN_FAILED,
        `cannot listen on ${config.server.host}:${config.server.port}${code ? ` (${code})` : ''}`,
        { cause: err },
      );
    }
    const port = (app.server.address() as AddressInfo).port;
    const url = `${https ? 'https' : 'http'}://${urlHost(config.server.host)}:${port}`;
    logger.info(
      { url, dataDir: config.server.dataDir, fsync: config.server.fsync, auth: auth !== undefined },
      `junction listening on ${url}`,
    );
    if (!auth && !isLoopback(config.server.host))
      logger.warn(
        { host: config.server.host },
        'auth is off on a non-loopback address (--allow-unauthenticated): anyone who reaches the port can do anything',
      );

    const runtime = connect;
    // One reload at a time; a change during a reload runs another after it.
    let reloading: Promise<unknown> = Promise.resolve();
    const reload = (): Promise<{ stations: ApplyStationsResult; connectors: ApplyResult }> => {
      const next = reloading.then(async () => {
        const fresh = await loadConfig(configPath, overrides, env ? { env } : {});
        if (auth) await checkDeclaredPaths(plugins, fresh.connectors, fresh.auth.hostPathRoots ?? [fresh.server.dataDir]);
        const st = await applyStations(served, fresh.stations, logger);
        const co = await runtime.applyDesired(fresh.connectors);
        return { stations: st, connectors: co };
      });
      reloading = next.catch(() => undefined);
      return next;
    };
    if (config.configPath !== undefined) {
      afterPluginsChange = async () => {
        await reload().then(
          (r) =>
            logger.info({ configPath: config.configPath, connectors: r.connectors }, 'configuration applied again after a plugin change'),
          (err: unknown) =>
            logger.warn(
              { configPath: config.configPath, code: (err as { code?: unknown }).code, err: (err as Error).message },
              'the configuration does not apply after the plugin change; keeping the running state',
            ),
        );
      };
    }
    if (configPath !== undefined && config.configPath !== undefined && watchConfig) {
      watcher = watchFile(config.configPath, () => {
        reload().then(
          (r) => logger.info({ configPath: config.configPath, stations: r.stations, connectors: r.connectors }, 'configuration reloaded'),
          (err: unknown) =>
            logger.error(
              {
                configPath: config.configPath,
                code: (err as { code?: unknown }).code,
                issues: (err as { issues?: unknown }).issues,
                err: (err as Error).message,
              },
              'the changed configuration is invalid; keeping the running state',
            ),
        );
      });
    }

    const running = app;
    const w = watcher;
    const auditLog = audit;
    const authService = auth;
    let closing: Promise<void> | undefined;
    return {
      url,
      port,
      app: running,
      store,
      config,
      stations,
      connect: runtime,
      plugins,
      connectors,
      auth,
      reload,
      close: () => (closing ??= shutdown(running, store, runtime, w, closeGraceMs, logger, auditLog, authService)),
    };
  } catch (err) {
    watcher?.close();
    await app?.close().catch(() => {});
    await audit?.close().catch(() => {});
    auth?.close();
    await connect?.close().catch(() => {});
    await store.close().catch(() => {});
    throw err;
  }
}

/**
 * Calls `onChange` (debounced) when the file changes. Watches its folder, not the file: editors
 * save by writing a new file and renaming it over the old one, which a watch on the file would miss.
 */
function watchFile(path: string, onChange: () => void, debounceMs = 300): FSWatcher {
  const name = basename(path);
  let timer: NodeJS.Timeout | undefined;
  const w = watch(dirname(path), { persistent: false }, (_event, filename) => {
    if (filename !== null && filename !== name) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  w.on('error', () => {});
  w.on('close', () => clearTimeout(timer));
  return w;
}

async function shutdown(
  app: FastifyInstance,
  store: StationStore,
  connect: ConnectRuntime,
  watcher: FSWatcher | undefined,
  graceMs: number,
  logger: Logger,
  audit?: AuditLog,
  auth?: AuthService,
): Promise<void> {
  logger.info('junction closing');
  watcher?.close();
  // Connectors first: in-flight batches settle and what they hold goes back to the groups.
  await connect.close().catch((err: unknown) => logger.error({ err }, 'closing the connector runtime failed'));
  const appClosed = app.close();
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
    timer.unref();
  });
  await Promise.race([appClosed, grace]);
  clearTimeout(timer);
  // The last entries (the requests that just finished) before the store goes.
  await audit?.close().catch((err: unknown) => logger.error({ err }, 'closing the audit log failed'));
  auth?.close();
  // Closing the store ends pending long polls, which lets the last requests, and so the app, finish.
  await store.close();
  await appClosed;
  logger.info('junction closed');
  // pino writes asynchronously: flush, so that a process ended by a signal right after (see the CLI's
  // start: a worker thread stuck in native code keeps Node from exiting normally) keeps its last lines.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2000);
    try {
      logger.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/** The PEM files of `tls:`. @throws CONFIG_INVALID naming `tls.cert` / `tls.key` when one cannot be read or is not PEM */
async function readTls(tls: { cert: string; key: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (path: string, field: string, marker: RegExp): Promise<Buffer> => {
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      throw configIssues('the TLS files', [
        { path: field, message: `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})` },
      ]);
    }
    if (!marker.test(data.toString('latin1'))) throw configIssues('the TLS files', [{ path: field, message: `${path} is not a PEM file` }]);
    return data;
  };
  return {
    cert: await read(tls.cert, 'tls.cert', /-----BEGIN CERTIFICATE-----/),
    key: await read(tls.key, 'tls.key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/),
  };
}

/** Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/**
 * Refuses what would expose an unprotected broker: a non-loopback host with auth off (unless
 * `--allow-unauthenticated`).
 * @throws JunctionError CONFIG_INVALID
 */
export function checkExposure(config: JunctionConfig): void {
  if (!config.auth.enabled && !config.auth.allowUnauthenticated && !isLoopback(config.server.host)) {
    throw configIssues('the configuration', [
      {
        path: 'server.host',
        message: `"${config.server.host}" is not a loopback address and auth is off: anyone who reaches the port could read and delete every station. Turn auth on (auth.enabled: true or --auth, with JUNCTION_ADMIN_PASSWORD for the first start), or pass --allow-unauthenticated to do this on purpose`,
      },
    ]);
  }
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
