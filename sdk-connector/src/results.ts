/**
 * What a sink answers for each message of a batch. Results are plain objects because they cross from
 * the worker thread to the runtime by structured clone; build them with {@link ok}, {@link retry} and
 * {@link deadLetter} rather than by hand.
 */
import { ErrorCode, JunctionError } from './errors.js';

/** The message is durably in the destination; the runtime may acknowledge it. */
export interface OkResult {
  readonly status: 'ok';
}

/** The message was not written but may be later (throttled, destination down). */
export interface RetryResult {
  readonly status: 'retry';
  readonly reason: string;
  /** The least time to wait before trying again; the runtime waits max(delayMs, its own backoff). */
  readonly delayMs?: number;
}

/** The message can never be written (malformed, refused for good); it goes to the dead-letter station. */
export interface DeadLetterResult {
  readonly status: 'deadLetter';
  /** A stable UPPER_SNAKE code, e.g. {@link ErrorCode.SINK_REJECTED}. */
  readonly code: string;
  readonly reason: string;
}

/** One result per message: `results[i]` answers `batch.messages[i]`. */
export type WriteResult = OkResult | RetryResult | DeadLetterResult;

const OK: OkResult = Object.freeze({ status: 'ok' });

/** The message is durably written. */
export function ok(): OkResult {
  return OK;
}

/**
 * The message could not be written now; the runtime sends it again in a later batch, with exponential
 * backoff and jitter, until `errors.retryTimeoutMs` runs out. `delayMs` (a non-negative finite number)
 * asks for at least that long a pause, e.g. from a Retry-After header.
 */
export function retry(reason: string, opts: { delayMs?: number } = {}): RetryResult {
  if (opts.delayMs === undefined) return { status: 'retry', reason };
  if (!Number.isFinite(opts.delayMs) || opts.delayMs < 0) {
    throw new JunctionError(ErrorCode.PLUGIN_INVALID, `retry delayMs must be a non-negative finite number, got ${opts.delayMs}`);
  }
  return { status: 'retry', reason, delayMs: opts.delayMs };
}

/**
 * The message can never be written; the runtime puts it into the station's dead-letter station with
 * `code` and `reason` in its headers and acknowledges it. Retrying it would give the same answer.
 */
export function deadLetter(code: ErrorCode | (string & {}), reason: string): DeadLetterResult {
  return { status: 'deadLetter', code, reason };
}

/** Whether a value (e.g. received from a worker) is a well-formed WriteResult. */
export function isWriteResult(value: unknown): value is WriteResult {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  switch (v.status) {
    case 'ok':
      return true;
    case 'retry':
      return (
        typeof v.reason === 'string' &&
        (v.delayMs === undefined || (typeof v.delayMs === 'number' && Number.isFinite(v.delayMs) && v.delayMs >= 0))
      );
    case 'deadLetter':
      return typeof v.code === 'string' && v.code !== '' && typeof v.reason === 'string';
    default:
      return false;
  }
}

/**
 * Checks a sink's answer to a batch of `messageCount` messages: an array of exactly that many
 * well-formed results. Returns it typed; throws JunctionError PLUGIN_INVALID (not retryable) naming
 * the first problem. The runtime runs this on every answer; the conformance kit too.
 */
export function checkWriteResults(results: unknown, messageCount: number): WriteResult[] {
  if (!Array.isArray(results)) {
    throw new JunctionError(ErrorCode.PLUGIN_INVALID, `sink write must resolve to an array of results, got ${describe(results)}`);
  }
  if (results.length !== messageCount) {
    throw new JunctionError(
      ErrorCode.PLUGIN_INVALID,
      `sink write answered ${results.length} results for ${messageCount} messages (one result per message is required)`,
    );
  }
  for (let i = 0; i < results.length; i++) {
    if (!isWriteResult(results[i])) {
      throw new JunctionError(
        ErrorCode.PLUGIN_INVALID,
        `sink write result [${i}] is not a WriteResult (use ok(), retry() or deadLetter()): ${describe(results[i])}`,
      );
    }
  }
  return results as WriteResult[];
}

function describe(value: unknown): string {
  try {
    const s = JSON.stringify(value);
    if (s === undefined) return String(value);
    return s.length > 200 ? `${s.slice(0, 200)}…` : s;
  } catch {
    return String(value);
  }
}
