/**
 * Errors of the JetStream engine. Every error that leaves the package is the broker's JunctionError (so
 * the HTTP error handler and `isRetryable` treat both engines alike), with the broker's codes plus the
 * few below that only a networked engine has.
 */
import { ErrorCode as BrokerErrorCode, JunctionError } from '@junction/broker';

export { JunctionError, isJunctionError, isRetryable, configInvalid } from '@junction/broker';

export const ErrorCode = {
  ...BrokerErrorCode,
  /** NATS is unreachable, or JetStream did not answer in time (a leader election, a lost quorum). Retryable. */
  UNAVAILABLE: 'UNAVAILABLE',
  /**
   * A produced message whose store acknowledgement never came (timeout, connection lost): it may or may
   * not be stored. Retry it with a msgId to be sure it is stored once.
   */
  NOT_ACKNOWLEDGED: 'NOT_ACKNOWLEDGED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error answer of the JetStream API (`{ error: { code, err_code, description } }`). */
export class JetStreamApiError extends Error {
  override name = 'JetStreamApiError';
  constructor(
    readonly status: number,
    readonly errCode: number,
    description: string,
    readonly subject: string,
  ) {
    super(`${description} (${subject}: ${status}/${errCode})`);
  }
}

/** JetStream API error codes this engine reacts to (nats-server's errors.json). */
export const JsErr = {
  STREAM_NOT_FOUND: 10059,
  STREAM_NAME_EXISTS: 10058,
  CONSUMER_NOT_FOUND: 10014,
  CONSUMER_NAME_EXISTS: 10013,
  NO_MESSAGE_FOUND: 10037,
  STREAM_INVALID_CONFIG: 10052,
  INSUFFICIENT_RESOURCES: 10023,
  CLUSTER_NOT_AVAILABLE: 10008,
  REPLICAS_NOT_SUPPORTED: 10074,
  /** 2.9 answers this for peers that cannot hold a replica (not enough servers). */
  NO_SUITABLE_PEERS: 10005,
} as const;

export function isApiError(err: unknown, errCode?: number): err is JetStreamApiError {
  return err instanceof JetStreamApiError && (errCode === undefined || err.errCode === errCode);
}

/** A request that got no answer (timeout, no responders, connection closed), as a retryable JunctionError. */
export function unavailable(what: string, cause?: unknown): JunctionError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new JunctionError(ErrorCode.UNAVAILABLE, `${what}: JetStream did not answer${detail}`, { retryable: true, cause });
}

/** Wraps anything that is not already a JunctionError. */
export function asJunctionError(what: string, err: unknown): JunctionError {
  if (err instanceof JunctionError) return err;
  if (err instanceof JetStreamApiError) {
    const retryable = err.status >= 500;
    return new JunctionError(retryable ? ErrorCode.UNAVAILABLE : ErrorCode.INTERNAL, `${what}: ${err.message}`, { retryable, cause: err });
  }
  return unavailable(what, err);
}
