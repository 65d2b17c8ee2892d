/**
 * Errors of the client. Everything the client throws or rejects with on purpose is a
 * JunctionApiError: either the broker's own error answer (`{ code, message, issues? }`, with its HTTP
 * status) or one of the client-side codes below. Check `code` or `retryable`, never `message`.
 */

/** Codes the client itself produces (the broker's codes, e.g. STATION_NOT_FOUND, arrive as they are). */
export const ClientErrorCode = {
  /** The connection failed or broke before a full answer arrived (refused, reset, DNS, …). Retryable. */
  NETWORK_ERROR: 'NETWORK_ERROR',
  /** No full answer within the request's timeout. Retryable. */
  TIMEOUT: 'TIMEOUT',
  /** The caller (or close()) aborted the request. */
  ABORTED: 'ABORTED',
  /** The broker answered something the client cannot read (wrong shape, torn binary batch). */
  BAD_RESPONSE: 'BAD_RESPONSE',
  /** An error status without a Junction error body (a proxy's answer, for instance). */
  HTTP_ERROR: 'HTTP_ERROR',
  /** The producer or consumer was closed. */
  CLOSED: 'CLOSED',
  /** The client refused the input before sending it (e.g. a key over 64 KiB). */
  INVALID_INPUT: 'INVALID_INPUT',
  /** A bug or an unexpected failure inside the client. */
  INTERNAL: 'INTERNAL',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export interface Issue {
  path: string;
  message: string;
}

/**
 * An error from the broker or from talking to it.
 * - `code`: stable; the broker's code (STATION_NOT_FOUND, …) or a ClientErrorCode.
 * - `status`: the HTTP status, or undefined when no answer arrived (network error, timeout, abort).
 * - `issues`: field paths of invalid input, when the broker sent them.
 * - `retryable`: true for 5xx, 429, network errors and timeouts: the same request may succeed later.
 */
export class JunctionApiError extends Error {
  override name = 'JunctionApiError';
  readonly code: string;
  readonly status: number | undefined;
  readonly issues: Issue[] | undefined;
  readonly retryable: boolean;
  constructor(
    code: string,
    message: string,
    opts: { status?: number | undefined; issues?: Issue[] | undefined; retryable?: boolean | undefined; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.status = opts.status;
    this.issues = opts.issues;
    this.retryable = opts.retryable ?? (opts.status !== undefined && isRetryableStatus(opts.status));
  }
}

/** 5xx and 429 are worth retrying; other 4xx will fail the same way again. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

export function isJunctionApiError(err: unknown): err is JunctionApiError {
  return err instanceof JunctionApiError;
}

/** True when the same request may succeed if sent again (network error, timeout, 5xx, 429). */
export function isRetryable(err: unknown): boolean {
  return isJunctionApiError(err) && err.retryable;
}

/**
 * Builds the error for a non-2xx answer: the broker's `{ code, message, issues? }` when the body is
 * one, HTTP_ERROR otherwise.
 */
export function errorFromResponse(status: number, body: Uint8Array, method: string, path: string): JunctionApiError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (parsed !== null && typeof parsed === 'object') {
    const p = parsed as { code?: unknown; message?: unknown; issues?: unknown };
    if (typeof p.code === 'string') {
      const issues = Array.isArray(p.issues) ? (p.issues as Issue[]) : undefined;
      const message = typeof p.message === 'string' ? p.message : p.code;
      return new JunctionApiError(p.code, message, { status, issues });
    }
  }
  return new JunctionApiError(ClientErrorCode.HTTP_ERROR, `${method} ${path} answered HTTP ${status}`, { status });
}

/** Wraps a transport-level failure (socket error, premature close) as a retryable NETWORK_ERROR. */
export function networkError(cause: unknown, method: string, path: string): JunctionApiError {
  const errno = (cause as { code?: unknown } | null)?.code;
  const what = typeof errno === 'string' ? errno : cause instanceof Error ? cause.message : String(cause);
  // Every socket-level failure counts as retryable, whatever its errno: no answer arrived either way.
  return new JunctionApiError(ClientErrorCode.NETWORK_ERROR, `${method} ${path} failed: ${what}`, { retryable: true, cause });
}

/**
 * Any thrown value as a JunctionApiError: ours pass through; a RangeError (the codec refusing a key,
 * msgId or header over 64 KiB) is INVALID_INPUT; anything else is an INTERNAL client error. None of
 * the converted ones are retryable.
 */
export function toApiError(err: unknown): JunctionApiError {
  if (err instanceof JunctionApiError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof RangeError ? ClientErrorCode.INVALID_INPUT : ClientErrorCode.INTERNAL;
  return new JunctionApiError(code, message, { retryable: false, cause: err });
}
