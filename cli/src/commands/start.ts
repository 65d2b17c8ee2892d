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
}

/**
 * `junction start`: runs the broker until SIGTERM or SIGINT, then closes it gracefully (in-flight
 * requests finish, the store is flushed) and exits 0; a second signal exits 1 at once.
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
    .option('--nats <urls>', 'run on NATS JetStream instead of the embedded store: nats://host:port, comma-separated (env JUNCTION_NATS_URL)')
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
        env: io.env,
      });

      let stopping = false;
      const stop = (signal: NodeJS.Signals): void => {
        if (stopping) {
          io.stderr.write(`${signal} again: exiting without waiting\n`);
          process.exit(1);
        }
        stopping = true;
        server.close().then(
          () => process.exit(0),
          (err: unknown) => {
            io.stderr.write(formatError(err));
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
