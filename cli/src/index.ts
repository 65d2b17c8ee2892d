/** `@junction/cli`: the `junction` command (see bin.ts); exported for embedding and tests. */
export { run, buildProgram } from './program.js';
export { CliError, CliErrorCode, formatError } from './errors.js';
export type { CliIo } from './io.js';
export { processIo } from './io.js';
export { DEFAULT_URL } from './commands/client.js';
export { lines } from './commands/produce.js';
export { configFromFlags } from './commands/stations.js';
