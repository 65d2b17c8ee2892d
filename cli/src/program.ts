import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { authCommands } from './commands/auth.js';
import { connectorsCommand } from './commands/connectors.js';
import { consumeCommand } from './commands/consume.js';
import { DEFAULT_URL } from './commands/client.js';
import { pipelineCommands } from './commands/pipeline.js';
import { pluginsCommand } from './commands/plugins.js';
import { produceCommand } from './commands/produce.js';
import { startCommand } from './commands/start.js';
import { stationsCommand } from './commands/stations.js';
import { CliErrorCode, formatError } from './errors.js';
import { processIo, type CliIo } from './io.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The `junction` command tree. Usage errors are thrown as CommanderError (exitOverride), not exited. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('junction')
    .description('Junction: a station-based message broker with a connector hub')
    .version(VERSION)
    .addOption(
      new Option('--url <url>', 'broker URL for the client commands (env JUNCTION_URL)').default(io.env.JUNCTION_URL || DEFAULT_URL),
    )
    .addOption(
      new Option(
        '--token <token>',
        'token for the client commands (env JUNCTION_TOKEN; default: the one `junction login` stored for --url)',
      ).default(io.env.JUNCTION_TOKEN || undefined),
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Same shape as every other CLI error: `error CODE: message`.
      outputError: (s, out) => out(s.replace(/^error: /, `error ${CliErrorCode.USAGE}: `)),
    });

  startCommand(program, io);
  stationsCommand(program, io);
  produceCommand(program, io);
  consumeCommand(program, io);
  pluginsCommand(program, io);
  authCommands(program, io);
  connectorsCommand(program, io);
  pipelineCommands(program, io);

  // Subcommands inherit the output and exit settings only when made after them; set them again.
  const inherit = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      sub.exitOverride().showHelpAfterError('(run with --help for usage)').configureOutput(program.configureOutput());
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

/**
 * Runs the CLI with `argv` (without node and the script). Resolves with the exit code: 0 on success,
 * 1 after printing `error CODE: message` to stderr. `start` resolves once the broker listens; the
 * process then lives on until a signal.
 */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    io.stderr.write(formatError(err));
    return 1;
  }
}
