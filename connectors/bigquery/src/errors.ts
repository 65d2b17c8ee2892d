/** How errors of the Google client map to Junction's: retry, dead-letter, or fail the task. */
import { ErrorCode, JunctionError } from '@junction/sdk-connector';

interface ApiErrorLike {
  code?: unknown;
  errors?: { reason?: string; message?: string }[];
  message?: string;
}

const RETRY_REASONS = new Set([
  'backendError',
  'internalError',
  'rateLimitExceeded',
  'quotaExceeded',
  'jobRateLimitExceeded',
  'tableUnavailable',
  'timeout',
]);

/** The HTTP status of a Google API error, or undefined for a network-level failure. */
export function httpStatus(err: unknown): number | undefined {
  const c = (err as ApiErrorLike)?.code;
  return typeof c === 'number' && c >= 100 && c < 600 ? c : undefined;
}

export function reasonOf(err: unknown): string | undefined {
  return (err as ApiErrorLike)?.errors?.[0]?.reason;
}

/** True when the service (or the network) may well succeed on a later try. */
export function isTransient(err: unknown): boolean {
  const status = httpStatus(err);
  if (status === undefined) return true; // reset, refused, timeout, socket hang up
  if (status === 429 || status >= 500) return true;
  return RETRY_REASONS.has(reasonOf(err) ?? '');
}

/** A JunctionError for a failure the task cannot get past by retrying, or a retryable one. */
export function toJunctionError(err: unknown, what: string): JunctionError {
  const status = httpStatus(err);
  const msg = `${what}: ${(err as Error)?.message ?? String(err)}`;
  if (isTransient(err)) return new JunctionError(ErrorCode.CONNECTION_FAILED, msg, { cause: err, retryable: true });
  if (status === 401 || status === 403)
    return new JunctionError(
      ErrorCode.AUTH_FAILED,
      `${msg} (check credentials / accessToken and the IAM roles bigquery.dataEditor + bigquery.jobUser)`,
      { cause: err },
    );
  if (status === 404) return new JunctionError(ErrorCode.NOT_FOUND, msg, { cause: err });
  return new JunctionError(ErrorCode.SINK_REJECTED, msg, { cause: err, retryable: false });
}
