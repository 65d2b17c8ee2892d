/**
 * S3 failures as JunctionErrors with stable codes, decided on the service's error code and HTTP
 * status (never on message text):
 *
 * - credentials refused (`AccessDenied`, `InvalidAccessKeyId`, `SignatureDoesNotMatch`, any 403, no
 *   credentials found) → `AUTH_FAILED`, not retryable: the task fails with the reason.
 * - missing bucket (`NoSuchBucket`, a 404 on the bucket) → `NOT_FOUND`, not retryable.
 * - an object written by someone else under one of our keys (412 on a conditional write) →
 *   `SINK_CONFLICT`, not retryable.
 * - 5xx, throttling (429, `SlowDown`), request timeouts, clock skew and network errors →
 *   `CONNECTION_FAILED` / `TIMEOUT`, retryable (after the SDK's own attempts).
 * - any other 4xx → `SINK_REJECTED`, not retryable.
 */
import { ErrorCode, JunctionError } from '@junction/sdk-connector';

/** This package's own codes, beside the SDK's. */
export const S3ErrorCode = {
  /** An object under one of the sink's keys exists and was not written by this sink's current unit. */
  SINK_CONFLICT: 'SINK_CONFLICT',
} as const;
export type S3ErrorCode = (typeof S3ErrorCode)[keyof typeof S3ErrorCode];

const AUTH_NAMES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidSecurity',
  'NotSignedUp',
  'CredentialsProviderError',
  'Forbidden',
]);
const NOT_FOUND_NAMES = new Set(['NoSuchBucket']);
const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'ProvisionedThroughputExceededException',
  'RequestTimeout',
  'RequestTimeoutException',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'OperationAborted',
  'TimeoutError',
  'NetworkingError',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

interface AwsLike {
  name?: string;
  code?: string;
  message?: string;
  $fault?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
  Code?: string;
}

/** The HTTP status of an SDK error, if it got an answer. */
export function httpStatus(err: unknown): number | undefined {
  return (err as AwsLike | null)?.$metadata?.httpStatusCode;
}

/** The service's error code (`NoSuchBucket`, …) or the error's name. */
export function errorName(err: unknown): string {
  const e = err as AwsLike | null;
  return e?.Code ?? e?.name ?? 'Error';
}

/** Whether `err` says the key (or upload) does not exist: a 404 that is not about the bucket. */
export function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  return name === 'NoSuchKey' || name === 'NoSuchUpload' || (httpStatus(err) === 404 && name !== 'NoSuchBucket');
}

/** Whether the request was cut short by our abort signal. */
export function isAbort(err: unknown): boolean {
  return errorName(err) === 'AbortError';
}

function describe(err: unknown): string {
  const e = err as AwsLike | null;
  const name = errorName(err);
  const status = httpStatus(err);
  const code = typeof e?.code === 'string' && e.code !== name ? ` ${e.code}` : '';
  const msg = e?.message && e.message !== name && e.message !== 'UnknownError' ? `: ${e.message}` : '';
  return `${name}${code}${status ? ` (HTTP ${status})` : ''}${msg}`;
}

/**
 * Turns whatever an S3 call threw into a JunctionError (see the module comment for the rules).
 * `what` says what we were doing, e.g. `uploading s3://bucket/key`.
 */
export function classifyS3Error(err: unknown, what: string, bucket: string): JunctionError {
  if (err instanceof JunctionError) return err;
  const e = err as AwsLike | null;
  const name = errorName(err);
  const status = httpStatus(err);
  const detail = describe(err);
  if (AUTH_NAMES.has(name) || status === 403 || status === 401) {
    return new JunctionError(
      ErrorCode.AUTH_FAILED,
      `S3 refused access to bucket "${bucket}" while ${what}: ${detail}; check the credentials and the bucket policy`,
      {
        cause: err,
        retryable: false,
      },
    );
  }
  if (NOT_FOUND_NAMES.has(name)) {
    return new JunctionError(
      ErrorCode.NOT_FOUND,
      `bucket "${bucket}" does not exist (${detail}) while ${what}; create it or fix "bucket"`,
      { cause: err, retryable: false },
    );
  }
  if (status === 412 || name === 'PreconditionFailed') {
    return new JunctionError(
      S3ErrorCode.SINK_CONFLICT,
      `${what}: the object already exists and this sink did not write it (${detail}); is another connector or task writing the same station and partition under this prefix?`,
      { cause: err, retryable: false },
    );
  }
  const network = typeof e?.code === 'string' && NETWORK_CODES.has(e.code);
  if (name === 'TimeoutError' || e?.code === 'ETIMEDOUT' || e?.code === 'ESOCKETTIMEDOUT') {
    return new JunctionError(ErrorCode.TIMEOUT, `S3 timed out while ${what}: ${detail}`, { cause: err, retryable: true });
  }
  if (network || RETRYABLE_NAMES.has(name) || (status !== undefined && (status >= 500 || status === 429)) || e?.$fault === 'server') {
    return new JunctionError(ErrorCode.CONNECTION_FAILED, `S3 unavailable while ${what}: ${detail}`, { cause: err, retryable: true });
  }
  if (status !== undefined && status >= 400) {
    return new JunctionError(ErrorCode.SINK_REJECTED, `S3 rejected a request while ${what}: ${detail}`, { cause: err, retryable: false });
  }
  // No answer from S3 and no known cause: most likely transient (a dropped connection); the runtime's
  // retry budget bounds it.
  return new JunctionError(ErrorCode.CONNECTION_FAILED, `S3 request failed while ${what}: ${detail}`, { cause: err, retryable: true });
}
