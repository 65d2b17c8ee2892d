import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { intArg } from '../args.js';
import { formatError } from '../errors.js';
import type { CliIo } from '../io.js';

interface StartFlags {
  dataDir?: string;
  host?: string;
  port?: number;
  config?: string;
  fsync?: string;
  logLevel?: string;
  nats?: string;
  auth?: boolean;
  allowUnauthenticated?: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

/**
 * Longest a graceful close may take after SIGTERM / SIGINT before the process ends anyway (by the
 * signal). The close itself is bounded (connectors ≤ 19 s with default settings, then the HTTP grace
 * and the store): this only guards against the unforeseen.
 */
export const SHUTDOWN_TIMEOUT_MS = 60_000;

/**
 * `junction start`: runs the broker until SIGTERM or SIGINT, then closes it gracefully (in-flight
 * requests finish, connectors stop, the store is flushed) and exits 0; a second signal exits 1 at once.
 * When connector plugin code left a worker thread blocked in a native call (see the connector runtime's
 * WORKER_STUCK), Node cannot exit normally — it waits for every thread — so after the graceful close the
 * process ends by the signal it received (default action: no wait), as it does when the close takes
 * longer than SHUTDOWN_TIMEOUT_MS.
 */
export function startCommand(program: Command, io: CliIo): void {
  program
    .command('start')
    .description('run the broker (embedded store + HTTP API) until SIGTERM / SIGINT')
    .option('--data-dir <dir>', 'where the stations are stored (env JUNCTION_DATA_DIR; default ./data)')
    .option('--host <host>', 'address to listen on (env JUNCTION_HOST; default 127.0.0.1)')
    .option('--port <port>', 'port to listen on, 0 for any free one (env JUNCTION_PORT; default 6666)', intArg(0, 65_535))
    .option('--config <file>', 'configuration file (default ./junction.yaml when it exists)')
    .option('--fsync <policy>', 'durability: always | never | interval:<ms> (default always)')
    .option('--log-level <level>', 'fatal | error | warn | info | debug | trace | silent (env JUNCTION_LOG_LEVEL; default info)')
    .option(
      '--auth',
      'require a token on every route but /healthz (also auth.enabled in junction.yaml); the first start needs JUNCTION_ADMIN_PASSWORD',
    )
    .option('--allow-unauthenticated', 'listen on a non-loopback --host with auth off (refused otherwise)')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (with --tls-key; or tls.cert in junction.yaml)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option(
      '--nats <urls>',
      'run on NATS JetStream instead of the embedded store: nats://host:port, comma-separated (env JUNCTION_NATS_URL)',
    )
    .action(async (flags: StartFlags) => {
      // Loaded here, so the client commands do not pay for loading the whole server.
      const { startServer, DEFAULT_CONFIG_FILE } = await import('@junction/server');
      const fallback = join(io.cwd, DEFAULT_CONFIG_FILE);
      const configPath = flags.config ?? (existsSync(fallback) ? fallback : undefined);
      const server = await startServer({
        configPath,
        dataDir: flags.dataDir,
        host: flags.host,
        port: flags.port,
        fsync: flags.fsync,
        logLevel: flags.logLevel,
        nats: flags.nats,
        auth: flags.auth,
        allowUnauthenticated: flags.allowUnauthenticated,
        tlsCert: flags.tlsCert,
        tlsKey: flags.tlsKey,
        env: io.env,
      });

      let stopping = false;
      /** Ends the process by `signal`'s default action: immediate, even with threads stuck in native code. */
      const endBy = (signal: NodeJS.Signals): void => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        process.kill(process.pid, signal);
      };
      const exit = (code: number, signal: NodeJS.Signals): void => {
        const stuck = server.connect.strandedThreads;
        if (stuck === 0) process.exit(code);
        io.stderr.write(
          `${stuck} connector worker thread(s) are blocked in native code and Node cannot exit normally: ending by ${signal}\n`,
        );
        endBy(signal);
      };
      const stop = (signal: NodeJS.Signals): void => {
        if (stopping) {
          io.stderr.write(`${signal} again: exiting without waiting\n`);
          if (server.connect.strandedThreads > 0) endBy(signal);
          else process.exit(1);
          return;
        }
        stopping = true;
        const deadline = setTimeout(() => {
          io.stderr.write(`the graceful close did not finish within ${SHUTDOWN_TIMEOUT_MS} ms: ending by ${signal}\n`);
          endBy(signal);
        }, SHUTDOWN_TIMEOUT_MS);
        server.close().then(
          () => {
            clearTimeout(deadline);
            exit(0, signal);
          },
          (err: unknown) => {
            clearTimeout(deadline);
            io.stderr.write(formatError(err));
            exit(1, signal);
          },
        );
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
