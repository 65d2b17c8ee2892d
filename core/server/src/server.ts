/**
 * Starting and stopping a whole broker: configuration, the embedded store, stations as code, the
 * HTTP app. Nothing global is installed (no signal handlers, no process exit): that is the CLI's job.
 */
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { Registry as MetricsRegistry } from 'prom-client';
import { EmbeddedStore, defaultFdBudget } from '@junction/broker';
import type { StationStore } from '@junction/broker';
import { ConnectRuntime } from '@junction/connect';
import type { ApplyResult } from '@junction/connect';
import { Registry as PluginRegistry } from '@junction/registry';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import type { ConfigOverrides, JunctionConfig } from './config.js';
import { applyStations } from './stations.js';
import type { ApplyStationsResult } from './stations.js';
import { JunctionError, ServerErrorCode } from './errors.js';
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
  const { configPath, env, closeGraceMs = 5000, logger: givenLogger, watchConfig = true, builtinConnectorDirs, ...overrides } = options;
  const config = await loadConfig(configPath, overrides, env ? { env } : {});
  const logger = givenLogger ?? pino({ level: config.server.logLevel, name: 'junction' });
  for (const warning of config.warnings) logger.warn({ configPath: config.configPath }, warning);

  await makeDirs(config.server.dataDir);
  const nofile = raiseNofileLimit();
  if (nofile?.failed) logger.warn({ soft: nofile.soft, hard: nofile.hard }, `could not raise the open-file limit to the hard limit (${nofile.failed}): the open-file budget follows the soft limit`);
  else if (nofile?.before !== undefined) logger.info({ before: nofile.before, soft: nofile.soft }, 'raised the soft open-file limit to the hard limit');
  // Loaded only in cluster mode, so a single node does not load the NATS client.
  const clusterMod = config.cluster ? await import('@junction/cluster') : undefined;
  const jsStore = clusterMod && config.cluster ? new clusterMod.JetStreamStore({ ...config.cluster.nats, logger: logger.child({ component: 'store' }) }) : undefined;
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
  let watcher: FSWatcher | undefined;
  try {
    const stations = await applyStations(store, config.stations, logger);
    const plugins = await PluginRegistry.open({
      builtinDirs: builtinConnectorDirs ?? [BUILTIN_CONNECTORS_DIR],
      pluginsDir: join(config.server.dataDir, 'plugins'),
      logger: logger.child({ component: 'registry' }),
    });
    const metricsRegistry = new MetricsRegistry();
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
      store,
      catalog: plugins,
      dataDir: config.server.dataDir,
      logger,
      registry: metricsRegistry,
      ...(env ? { env } : {}),
      // Literal connector secrets are sealed at rest with this key (every node of a cluster needs the same).
      secretsKey: { key: (env ?? process.env).JUNCTION_SECRETS_KEY, file: config.server.secretsKeyFile },
    });
    await connect.start();
    // Without a file there is no desired state: connectors that came from a file earlier stay as they are.
    const connectors = config.configPath !== undefined ? await connect.applyDesired(config.connectors) : { created: [], updated: [], deleted: [], unchanged: [] };
    app = buildApp({ store, logger, bodyLimit: config.server.bodyLimitBytes, connect, plugins, metricsRegistry, replicatedStations: jsStore !== undefined, metricsMaxStations: config.server.metricsMaxStations });
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
    const url = `http://${urlHost(config.server.host)}:${port}`;
    logger.info({ url, dataDir: config.server.dataDir, fsync: config.server.fsync }, `junction listening on ${url}`);

    const runtime = connect;
    // One reload at a time; a change during a reload runs another after it.
    let reloading: Promise<unknown> = Promise.resolve();
    const reload = (): Promise<{ stations: ApplyStationsResult; connectors: ApplyResult }> => {
      const next = reloading.then(async () => {
        const fresh = await loadConfig(configPath, overrides, env ? { env } : {});
        const st = await applyStations(store, fresh.stations, logger);
        const co = await runtime.applyDesired(fresh.connectors);
        return { stations: st, connectors: co };
      });
      reloading = next.catch(() => undefined);
      return next;
    };
    if (configPath !== undefined && config.configPath !== undefined && watchConfig) {
      watcher = watchFile(config.configPath, () => {
        reload().then(
          (r) => logger.info({ configPath: config.configPath, stations: r.stations, connectors: r.connectors }, 'configuration reloaded'),
          (err: unknown) =>
            logger.error(
              { configPath: config.configPath, code: (err as { code?: unknown }).code, issues: (err as { issues?: unknown }).issues, err: (err as Error).message },
              'the changed configuration is invalid; keeping the running state',
            ),
        );
      });
    }

    const running = app;
    const w = watcher;
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
      reload,
      close: () => (closing ??= shutdown(running, store, runtime, w, closeGraceMs, logger)),
    };
  } catch (err) {
    watcher?.close();
    await app?.close().catch(() => {});
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

async function shutdown(app: FastifyInstance, store: StationStore, connect: ConnectRuntime, watcher: FSWatcher | undefined, graceMs: number, logger: Logger): Promise<void> {
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

/**
 * `mkdir -p` without Node 20's recursive mkdir, which spins forever (a libuv thread at 100 %, the start
 * never returning) on a path under /proc: one plain mkdir per missing component, errors as they come.
 */
async function makeDirs(path: string): Promise<void> {
  const missing: string[] = [];
  let dir = resolve(path);
  for (;;) {
    try {
      if ((await stat(dir)).isDirectory()) break;
      throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(dir) === dir) throw err;
      missing.push(dir);
      dir = dirname(dir);
    }
  }
  for (const d of missing.reverse()) {
    await mkdir(d).catch(async (err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !(await stat(d)).isDirectory()) throw err;
    });
  }
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
