/**
 * How the CLI reports failures: `error CODE: message` on stderr, then one `  path: message` line per
 * issue, and exit code 1. Works for the server's JunctionError and the client's JunctionApiError alike
 * (both carry `code` and `issues`); anything else is reported as INTERNAL.
 */

/** Codes the CLI itself produces. */
export const CliErrorCode = {
  /** Bad command line: unknown option, missing argument, a value that does not parse. */
  USAGE: 'USAGE',
  /** Reading the input of `produce` failed. */
  INPUT_ERROR: 'INPUT_ERROR',
  /** Some messages of `produce` were not stored. */
  PRODUCE_FAILED: 'PRODUCE_FAILED',
  INTERNAL: 'INTERNAL',
} as const;
export type CliErrorCode = (typeof CliErrorCode)[keyof typeof CliErrorCode];

export class CliError extends Error {
  override name = 'CliError';
  readonly code: string;
  constructor(code: string, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
  }
}

interface Coded {
  code: string;
  message: string;
  issues?: { path: string; message: string }[] | undefined;
}

function isCoded(err: unknown): err is Coded {
  return typeof err === 'object' && err !== null && typeof (err as Coded).code === 'string' && typeof (err as Coded).message === 'string';
}

/** The text the CLI prints for an error (ends with a newline). */
export function formatError(err: unknown): string {
  if (!isCoded(err) || /^E[A-Z]+$/.test(err.code)) {
    // A Node system error (EACCES, …) or a bug: keep the detail, mark it INTERNAL.
    const detail = err instanceof Error ? err.message : String(err);
    return `error ${CliErrorCode.INTERNAL}: ${detail}\n`;
  }
  let out = `error ${err.code}: ${err.message}\n`;
  for (const issue of err.issues ?? []) out += `  ${issue.path || '(root)'}: ${issue.message}\n`;
  return out;
}
