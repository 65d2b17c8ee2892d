/**
 * Errors of the SDK and of plugins. A plugin throws (or dead-letters with) a JunctionError whose
 * `code` is stable; the runtime decides on `code` and `retryable`, never on `message`.
 *
 * Errors cross worker threads as plain data: structured clone keeps an Error's message and stack but
 * drops its class and own fields, so the worker sends `serializeError(err)` and the runtime rebuilds
 * it with `deserializeError(plain)`.
 */

/** Stable error codes. Plugins may use their own UPPER_SNAKE codes too; these are the shared ones. */
export const ErrorCode = {
  /** The connector's config does not match the plugin's schema (`issues` carry field paths). */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** The destination or origin could not be reached (refused, reset, DNS). Retryable by default. */
  CONNECTION_FAILED: 'CONNECTION_FAILED',
  /** Credentials were refused. Not retryable by default: retrying the same secret will not help. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** A bucket, table, file or other named resource does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /**
   * The destination as configured cannot be used, and trying again will not change that: a directory
   * that cannot be created (no such parent, read-only, not a directory), a bucket or table that does not
   * exist. Not retryable by default. Thrown by `open()` it fails the task at once (no automatic restart)
   * with this code; fix the config or the destination, then restart the connector.
   */
  DESTINATION_UNUSABLE: 'DESTINATION_UNUSABLE',
  /** The destination refused this message for good (schema mismatch, too large, invalid bytes). */
  SINK_REJECTED: 'SINK_REJECTED',
  /** An operation did not finish in time. Retryable by default. */
  TIMEOUT: 'TIMEOUT',
  /** A bug or an unexpected condition. */
  INTERNAL: 'INTERNAL',
  /** A plugin object or its results break the SDK's contract (bad manifest, wrong result count). */
  PLUGIN_INVALID: 'PLUGIN_INVALID',
  /** A plugin needs an SDK range that the running SDK does not satisfy. */
  SDK_INCOMPATIBLE: 'SDK_INCOMPATIBLE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const RETRYABLE_BY_DEFAULT: ReadonlySet<string> = new Set([ErrorCode.CONNECTION_FAILED, ErrorCode.TIMEOUT]);

/** A problem with one field: `path` is dotted/bracketed (`auth.password`, `hosts[1]`); '' is the root. */
export interface Issue {
  path: string;
  message: string;
}

export interface JunctionErrorOptions {
  /** Defaults to true for CONNECTION_FAILED and TIMEOUT, false otherwise. */
  retryable?: boolean;
  cause?: unknown;
  issues?: Issue[];
}

/**
 * The error plugins and the SDK throw on purpose. `code` is stable (an {@link ErrorCode} or a
 * plugin's own UPPER_SNAKE code); `retryable` tells the runtime whether trying again may succeed.
 */
export class JunctionError extends Error {
  override name = 'JunctionError';
  readonly code: string;
  readonly retryable: boolean;
  readonly issues: Issue[] | undefined;
  constructor(code: ErrorCode | (string & {}), message: string, opts: JunctionErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retryable = opts.retryable ?? RETRYABLE_BY_DEFAULT.has(code);
    this.issues = opts.issues;
  }
}

/**
 * True for a JunctionError of this SDK copy, and also for one built by another copy of the SDK (a
 * plugin installed with its own node_modules): the check is structural, not `instanceof`.
 */
export function isJunctionError(err: unknown): err is JunctionError {
  if (err instanceof JunctionError) return true;
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { retryable?: unknown }).retryable === 'boolean'
  );
}

/** Node's system error codes that mean "the other side was briefly unreachable". */
const TRANSIENT_SYSTEM_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/**
 * Whether trying the same operation again may succeed: a JunctionError's own `retryable`; true for
 * Node's transient network errors (ECONNRESET, ECONNREFUSED, ETIMEDOUT, …) and for `TimeoutError`;
 * false for everything else. Never throws.
 */
export function isRetryable(err: unknown): boolean {
  if (isJunctionError(err)) return err.retryable;
  if (!(err instanceof Error)) return false;
  if (err.name === 'TimeoutError') return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && TRANSIENT_SYSTEM_CODES.has(code);
}

/** An error as plain data, safe for structured clone and JSON. */
export interface SerializedError {
  code: string;
  message: string;
  retryable: boolean;
  /** The original `name` when it was not JunctionError (TypeError, AbortError, …). */
  name?: string;
  stack?: string;
  issues?: Issue[];
  cause?: SerializedError;
}

const MAX_CAUSE_DEPTH = 4;

function codeOf(err: unknown): string {
  if (isJunctionError(err)) return err.code;
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return ErrorCode.TIMEOUT;
    const code = (err as { code?: unknown }).code;
    if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return ErrorCode.TIMEOUT;
    if (typeof code === 'string' && TRANSIENT_SYSTEM_CODES.has(code)) return ErrorCode.CONNECTION_FAILED;
  }
  return ErrorCode.INTERNAL;
}

/**
 * Any thrown value as a {@link SerializedError}. Non-Junction errors get a code from what they are:
 * transient network errors → CONNECTION_FAILED / TIMEOUT, anything else → INTERNAL (their message is
 * kept). Causes are kept up to a few levels deep. Never throws.
 */
export function serializeError(err: unknown, depth = 0): SerializedError {
  if (!(err instanceof Error)) {
    let message: string;
    try {
      message = typeof err === 'string' ? err : `non-error thrown: ${JSON.stringify(err) ?? String(err)}`;
    } catch {
      message = `non-error thrown: ${String(err)}`;
    }
    return { code: ErrorCode.INTERNAL, message, retryable: false };
  }
  const out: SerializedError = { code: codeOf(err), message: err.message, retryable: isRetryable(err) };
  if (err.name !== 'JunctionError' && err.name !== 'Error') out.name = err.name;
  if (typeof err.stack === 'string') out.stack = err.stack;
  const issues = (err as { issues?: unknown }).issues;
  if (Array.isArray(issues)) {
    out.issues = issues
      .filter((i): i is Issue => typeof i === 'object' && i !== null && typeof i.path === 'string' && typeof i.message === 'string')
      .map((i) => ({ path: i.path, message: i.message }));
  }
  if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

/**
 * Rebuilds a JunctionError from {@link serializeError}'s output (keeping code, retryable, issues, the
 * original stack and causes). Tolerates malformed input: it yields an INTERNAL error rather than throwing.
 */
export function deserializeError(plain: unknown): JunctionError {
  if (typeof plain !== 'object' || plain === null) {
    return new JunctionError(ErrorCode.INTERNAL, `malformed error from a worker: ${String(plain)}`);
  }
  const p = plain as Partial<SerializedError>;
  const opts: JunctionErrorOptions = { retryable: typeof p.retryable === 'boolean' ? p.retryable : false };
  if (Array.isArray(p.issues)) opts.issues = p.issues;
  if (p.cause !== undefined) opts.cause = deserializeError(p.cause);
  const err = new JunctionError(
    typeof p.code === 'string' && p.code !== '' ? p.code : ErrorCode.INTERNAL,
    typeof p.message === 'string' ? p.message : 'unknown error',
    opts,
  );
  if (typeof p.stack === 'string') err.stack = p.stack;
  return err;
}
