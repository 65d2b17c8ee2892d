/** Exponential backoff with jitter, and an abortable sleep. */
import { ClientErrorCode, JunctionApiError } from './errors.js';

export interface RetryOptions {
  /** Retries after the first attempt (0: no retry). */
  retries: number;
  /** Delay before the first retry (before jitter). */
  minDelayMs: number;
  /** Upper bound of any delay. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { retries: 5, minDelayMs: 100, maxDelayMs: 5_000 };

/**
 * The delay before retry number `attempt` (0-based): `min(maxDelayMs, minDelayMs * 2^attempt)`, then
 * "equal jitter" — a uniform pick in [half of that, all of it] — so clients that failed together do
 * not come back together, yet no delay drops below half the exponential step.
 */
export function backoffDelay(
  attempt: number,
  opts: Pick<RetryOptions, 'minDelayMs' | 'maxDelayMs'>,
  random: () => number = Math.random,
): number {
  const exp = Math.min(opts.maxDelayMs, opts.minDelayMs * 2 ** Math.min(attempt, 30));
  const half = exp / 2;
  return Math.round(half + random() * half);
}

/** Resolves after `ms`, or rejects with an ABORTED JunctionApiError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortedError());
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortedError(): JunctionApiError {
  return new JunctionApiError(ClientErrorCode.ABORTED, 'the operation was aborted', { retryable: false });
}
