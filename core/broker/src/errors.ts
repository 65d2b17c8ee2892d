/** Errors of the broker. Every error that leaves the package is a JunctionError with a stable code. */

export const ErrorCode = {
  STATION_NOT_FOUND: 'STATION_NOT_FOUND',
  STATION_EXISTS: 'STATION_EXISTS',
  STATION_RESERVED: 'STATION_RESERVED',
  /** The station's metadata is damaged beyond recovery: it is listed, but cannot serve until deleted or restored. */
  STATION_DAMAGED: 'STATION_DAMAGED',
  GROUP_NOT_FOUND: 'GROUP_NOT_FOUND',
  GROUP_EXISTS: 'GROUP_EXISTS',
  CONFIG_INVALID: 'CONFIG_INVALID',
  CONFIG_IMMUTABLE: 'CONFIG_IMMUTABLE',
  BODY_INVALID: 'BODY_INVALID',
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  OFFSET_OUT_OF_RANGE: 'OFFSET_OUT_OF_RANGE',
  PARTITION_NOT_FOUND: 'PARTITION_NOT_FOUND',
  STORE_CLOSED: 'STORE_CLOSED',
  LOG_CORRUPT: 'LOG_CORRUPT',
  IO_ERROR: 'IO_ERROR',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface Issue {
  path: string;
  message: string;
}

/** The base of every error the broker throws on purpose. `code` is stable; never match on `message`. */
export class JunctionError extends Error {
  override name = 'JunctionError';
  readonly code: string;
  readonly retryable: boolean;
  readonly issues: Issue[] | undefined;
  constructor(code: string, message: string, opts: { retryable?: boolean; cause?: unknown; issues?: Issue[] } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.issues = opts.issues;
  }
}

export function isJunctionError(err: unknown): err is JunctionError {
  return err instanceof JunctionError;
}

export function isRetryable(err: unknown): boolean {
  return isJunctionError(err) && err.retryable;
}

/** zod issues as `path: message` with dotted/bracketed paths (`retention.maxAgeMs`, `messages[3].value`). */
export function issuesFromZod(error: { issues: { path: PropertyKey[]; message: string }[] }, prefix = ''): Issue[] {
  return error.issues.map((i) => ({ path: formatPath(prefix, i.path), message: i.message }));
}

export function formatPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

export function configInvalid(what: string, error: { issues: { path: PropertyKey[]; message: string }[] }, prefix = ''): JunctionError {
  const issues = issuesFromZod(error, prefix);
  const first = issues[0];
  return new JunctionError(ErrorCode.CONFIG_INVALID, `${what} is invalid${first ? `: ${first.path || '(root)'}: ${first.message}` : ''}`, {
    issues,
  });
}
