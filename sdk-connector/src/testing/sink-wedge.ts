/**
 * The sink conformance kit's wedge checks: what a sink does when its destination cannot be used, is
 * down, or stops answering. The runtime survives a plugin that hangs, rejects late or misclassifies its
 * errors (it terminates threads, backs off, fails tasks), but the user then sees a task that restarts,
 * times out or retries for minutes where a clear error was due. These checks hold every sink to:
 *
 * - `open-unusable`: with a config under which the destination can never be used (a directory that
 *   cannot be created, a bucket that does not exist, refused credentials), `open()` — or, for a sink that
 *   connects lazily, its first `write()` — fails in time with a coded, non-retryable JunctionError. The
 *   runtime then fails the task with that code; a retryable error would be retried for
 *   `errors.retryTimeoutMs` while the status shows the task retrying, and a hang would take the open
 *   timeout (30 s) and a thread.
 * - `open-unreachable`: with the retry case's config (a destination that is down), `open()` settles in
 *   time, and if it rejects, the error is retryable (the runtime retries with backoff; a non-retryable
 *   one fails the task for good).
 * - `write-stalled-abort`: with the destination stalled (it accepts and never answers), a write whose
 *   signal aborts settles within `abortGraceMs` of the abort. The runtime aborts the signal at
 *   `writeTimeoutMs` and terminates the thread a little later; a sink that honours its signal keeps its
 *   open connections, caches and buffers instead of losing the thread.
 * - `close-after-failure`: after a write failed against the broken destination (the retry case),
 *   `close()` resolves in time and does not throw.
 *
 * Each check writes to stations of its own, and none depends on what a write answers beyond the above:
 * result shapes have checks of their own.
 */
import { isJunctionError, isRetryable } from '../errors.js';
import type { Sink } from '../types.js';
import type { BreakDestination, Harness, SinkConformanceOptions } from './sink-conformance.js';
import { CheckFailed, type NotApplicable, describeError, fail, notApplicable, within } from './util.js';

/** The wedge checks, in the order they run (after the kit's other checks). */
export const SINK_WEDGE_CHECKS = ['open-unusable', 'open-unreachable', 'write-stalled-abort', 'close-after-failure'] as const;
export type SinkWedgeCheck = (typeof SINK_WEDGE_CHECKS)[number];

/** A config under which the sink's destination can never be used (see `open-unusable`). */
export interface UnusableCase {
  config: unknown;
}

/**
 * Makes the destination stop answering (requests accepted, never answered) for the partition given,
 * after open and before the write; may return a function that lets it answer again.
 */
export type StallDestination = BreakDestination;

/** The options the wedge checks add to {@link SinkConformanceOptions}. */
export interface SinkWedgeOptions {
  /** Missing means not applicable, reported as such. */
  unusable?: UnusableCase | NotApplicable;
  /** Missing means not applicable, reported as such. */
  stall?: StallDestination | NotApplicable;
  /** How soon after its signal aborts a write must settle (`write-stalled-abort`). Default 2000 ms. */
  abortGraceMs?: number;
}

const CODE_RE = /^[A-Z][A-Z0-9_]*$/;

function isNotApplicable(v: unknown): v is NotApplicable {
  return typeof v === 'object' && v !== null && 'notApplicable' in v;
}

/** A write whose answer is not inspected (its shape has checks of its own): did it throw, and what. */
async function writeSettles(
  h: Harness,
  sink: Sink,
  station: string,
  signal: AbortSignal,
  ms: number,
  what: string,
): Promise<{ threw?: unknown }> {
  const batch = h.batch(station, 0, h.messages(station, 0, [1, 2, 3]));
  try {
    await within(
      Promise.resolve().then(() => sink.write(batch, { signal })),
      ms,
      what,
    );
    return {};
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    return { threw: err };
  }
}

type WedgeCheckFn = (h: Harness) => Promise<string>;

export const wedgeChecks: Record<SinkWedgeCheck, WedgeCheckFn> = {
  async 'open-unusable'(h) {
    const uc = h.options.unusable;
    if (!uc)
      notApplicable(
        'no unusable case given: pass { unusable: { config } } with a config whose destination can never be used, or { notApplicable: reason }',
      );
    if (isNotApplicable(uc)) notApplicable(uc.notApplicable);
    const classify = (err: unknown, where: string): string => {
      if (!isJunctionError(err) || !CODE_RE.test(err.code)) {
        fail(
          `${where} failed with ${describeError(err)}: throw a JunctionError with a stable code (DESTINATION_UNUSABLE, CONFIG_INVALID, AUTH_FAILED, NOT_FOUND)`,
        );
      }
      if (isRetryable(err)) {
        fail(
          `${where} failed with a retryable error (${describeError(err)}) for a destination that can never be used: the runtime would retry it for errors.retryTimeoutMs instead of failing the task`,
        );
      }
      return `${where} failed with ${err.code}, not retryable`;
    };
    let sink: Sink;
    try {
      sink = await h.openRaw(uc.config);
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      return classify(err, 'open()');
    }
    // A sink that connects lazily: its first write must fail the same way.
    try {
      const station = h.station('unusable');
      const { threw } = await writeSettles(
        h,
        sink,
        station,
        new AbortController().signal,
        h.timeoutMs,
        'write() against an unusable destination',
      );
      if (threw === undefined) {
        fail(
          'open() resolved and a write() answered (ok or retry) although the destination can never be used: fail open(), or the first write, with a non-retryable coded error',
        );
      }
      return classify(threw, 'the first write() (open() resolved)');
    } finally {
      await h.closeQuietly(sink);
    }
  },

  async 'open-unreachable'(h) {
    const rc = h.options.retry;
    if (!rc || isNotApplicable(rc) || rc.config === undefined)
      notApplicable('no retry case with a config under which the destination is down (retry.config)');
    let sink: Sink | undefined;
    try {
      sink = await h.openRaw(rc.config);
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      if (!isRetryable(err)) {
        fail(
          `open() failed with a non-retryable error while the destination is only down (${describeError(err)}): the runtime would fail the task for good; throw a retryable error (CONNECTION_FAILED, TIMEOUT) or connect lazily`,
        );
      }
      return `open() failed in time with a retryable error (${describeError(err)})`;
    } finally {
      await h.closeQuietly(sink);
    }
    return 'open() resolved in time (the sink connects lazily; the retry check covers its writes)';
  },

  async 'write-stalled-abort'(h) {
    const stall = h.options.stall;
    if (!stall)
      notApplicable(
        'no stall given: pass { stall } that makes the destination accept requests and never answer, or { notApplicable: reason }',
      );
    if (isNotApplicable(stall)) notApplicable(stall.notApplicable);
    const grace = h.options.abortGraceMs ?? 2000;
    const station = h.station('stall');
    const sink = await h.open();
    let heal: (() => Promise<void>) | void = undefined;
    try {
      heal = await within(stall({ station, partition: 0 }), h.timeoutMs, 'stall()');
      const ac = new AbortController();
      const writing = writeSettles(h, sink, station, ac.signal, 200 + grace, 'write() to a stalled destination');
      // The write is under way (the destination holds it) when its signal aborts, as at writeTimeoutMs.
      const timer = setTimeout(() => ac.abort(new DOMException('write timed out', 'TimeoutError')), 200);
      let outcome: { threw?: unknown };
      try {
        outcome = await writing;
      } catch (err) {
        if (err instanceof CheckFailed)
          fail(
            `a write to a stalled destination did not settle within ${grace} ms of its signal aborting: honour the signal (pass it to fetch / the driver, or race it)`,
          );
        throw err;
      } finally {
        clearTimeout(timer);
      }
      return outcome.threw === undefined
        ? 'the aborted write resolved in time'
        : `the aborted write rejected in time (${describeError(outcome.threw)})`;
    } finally {
      if (typeof heal === 'function') await within(heal(), h.timeoutMs, 'the function stall() returned').catch(() => undefined);
      await h.closeQuietly(sink);
    }
  },

  async 'close-after-failure'(h) {
    const rc = h.options.retry;
    if (!rc) notApplicable('no retry case given (it breaks the destination)');
    if (isNotApplicable(rc)) notApplicable(rc.notApplicable);
    const station = h.station('close-fail');
    let sink: Sink;
    try {
      sink = await h.openRaw(rc.config ?? h.options.config);
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`open() with the retry case's config threw ${describeError(err)}`);
    }
    let heal: (() => Promise<void>) | void = undefined;
    try {
      if (rc.breakDestination) heal = await within(rc.breakDestination({ station, partition: 0 }), h.timeoutMs, 'breakDestination()');
      await writeSettles(h, sink, station, new AbortController().signal, h.timeoutMs, 'write() to a broken destination');
      await h.close(sink, 'close() after a failed write');
    } finally {
      if (typeof heal === 'function') await within(heal(), h.timeoutMs, 'the heal function from breakDestination').catch(() => undefined);
    }
    return 'close() after a failed write resolved in time';
  },
};

/** Why a wedge check is known to be not applicable before it runs, or undefined. */
export function wedgeCheckNotApplicable(options: SinkConformanceOptions, check: SinkWedgeCheck): string | undefined {
  if (check === 'open-unusable')
    return options.unusable === undefined
      ? 'no unusable case given'
      : isNotApplicable(options.unusable)
        ? options.unusable.notApplicable
        : undefined;
  if (check === 'write-stalled-abort')
    return options.stall === undefined ? 'no stall given' : isNotApplicable(options.stall) ? options.stall.notApplicable : undefined;
  const rc = options.retry;
  if (rc === undefined) return 'no retry case given';
  if (isNotApplicable(rc)) return rc.notApplicable;
  if (check === 'open-unreachable' && rc.config === undefined)
    return 'no retry case with a config under which the destination is down (retry.config)';
  return undefined;
}
