/**
 * Starting and stopping a whole broker: configuration, the embedded store, stations as code, the
 * HTTP app. Nothing global is installed (no signal handlers, no process exit): that is the CLI's job.
 */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { EmbeddedStore } from '@junction/broker';
import type { StationStore } from '@junction/broker';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import type { ConfigOverrides, JunctionConfig } from './config.js';
import { applyStations } from './stations.js';
import type { ApplyStationsResult } from './stations.js';
import { JunctionError, ServerErrorCode } from './errors.js';

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
}

export interface RunningServer {
  /** `http://host:port`, with the real port (also when 0 was asked) and 127.0.0.1 for a wildcard host. */
  url: string;
  port: number;
  app: FastifyInstance;
  store: StationStore;
  config: JunctionConfig;
  /** What applying the configuration's stations did. */
  stations: ApplyStationsResult;
  /** Stops listening, lets in-flight requests finish (up to `closeGraceMs`), closes the store. Idempotent. */
  close(): Promise<void>;
}

/**
 * Loads the configuration (`configPath`, environment, the given overrides), opens the embedded store
 * in `dataDir`, applies the declared stations and listens.
 *
 * @throws JunctionError CONFIG_INVALID for bad configuration, LISTEN_FAILED when the port cannot be
 *   bound, or whatever opening the store throws (IO_ERROR, LOG_CORRUPT); nothing is left open then.
 */
export async function startServer(options: StartServerOptions = {}): Promise<RunningServer> {
  const { configPath, env, closeGraceMs = 5000, logger: givenLogger, ...overrides } = options;
  const config = await loadConfig(configPath, overrides, env ? { env } : {});
  const logger = givenLogger ?? pino({ level: config.server.logLevel, name: 'junction' });
  for (const warning of config.warnings) logger.warn({ configPath: config.configPath }, warning);

  await mkdir(config.server.dataDir, { recursive: true });
  const store = new EmbeddedStore({
    dataDir: config.server.dataDir,
    fsync: config.server.fsync,
    logger: logger.child({ component: 'store' }),
  });
  await store.open();

  let app: FastifyInstance | undefined;
  try {
    const stations = await applyStations(store, config.stations, logger);
    app = buildApp({ store, logger, bodyLimit: config.server.bodyLimitBytes });
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

    const running = app;
    let closing: Promise<void> | undefined;
    return {
      url,
      port,
      app: running,
      store,
      config,
      stations,
      close: () => (closing ??= shutdown(running, store, closeGraceMs, logger)),
    };
  } catch (err) {
    await app?.close().catch(() => {});
    await store.close().catch(() => {});
    throw err;
  }
}

async function shutdown(app: FastifyInstance, store: StationStore, graceMs: number, logger: Logger): Promise<void> {
  logger.info('junction closing');
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
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
