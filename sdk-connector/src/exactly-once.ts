/**
 * Helpers for exactly-once sinks: which offsets a destination already holds, so a replayed batch
 * (after a crash, a retry, a task moving) writes only what is missing.
 */
import { createHash } from 'node:crypto';

/**
 * One partition of one incarnation of a station: what an exactly-once sink keys what it remembers on.
 * A {@link SinkBatch} is one. A station deleted and created again under the same name has a new
 * `stationId` and offsets from 1 again, so a record keyed on the name alone would take the new
 * incarnation's messages for the old one's and drop them.
 */
export interface PartitionRef {
  readonly station: string;
  readonly stationId: string;
  readonly partition: number;
}

const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A station incarnation id as one segment of a file name, object key or path: the id itself when it is
 * 1-64 characters of `A-Z a-z 0-9 _ -` and not only digits (every id the broker makes: a UUID), else
 * `x` and the first 32 hex digits of its SHA-256. The same id always gives the same segment; it never
 * contains `.`, `/`, `+` or `#`, and never looks like a partition number.
 */
export function stationIdSegment(stationId: string): string {
  const id = String(stationId);
  if (SAFE_ID.test(id) && !/^\d+$/.test(id)) return id;
  return `x${createHash('sha256').update(id, 'utf8').digest('hex').slice(0, 32)}`;
}

/** A set of offsets kept as sorted, disjoint, non-adjacent inclusive ranges: tiny for dense data. */
export class OffsetRanges {
  /** [start, end] pairs, ascending; ranges never touch (adjacent ones are merged). */
  private readonly ranges: [number, number][] = [];

  get size(): number {
    return this.ranges.length;
  }

  has(offset: number): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.ranges[mid] as [number, number];
      if (offset < r[0]) hi = mid - 1;
      else if (offset > r[1]) lo = mid + 1;
      else return true;
    }
    return false;
  }

  add(start: number, end: number): void {
    if (end < start) return;
    // Appending past the end is the common case (a sink writing forward): O(1).
    const last = this.ranges[this.ranges.length - 1];
    if (!last || start > last[1] + 1) {
      this.ranges.push([start, end]);
      return;
    }
    if (start >= last[0] && start <= last[1] + 1) {
      last[1] = Math.max(last[1], end);
      return;
    }
    let i = 0;
    while (i < this.ranges.length && (this.ranges[i] as [number, number])[1] + 1 < start) i++;
    let s = start;
    let e = end;
    let j = i;
    while (j < this.ranges.length && (this.ranges[j] as [number, number])[0] <= e + 1) {
      const r = this.ranges[j] as [number, number];
      s = Math.min(s, r[0]);
      e = Math.max(e, r[1]);
      j++;
    }
    this.ranges.splice(i, j - i, [s, e]);
  }

  toArray(): [number, number][] {
    return this.ranges.map(([s, e]) => [s, e]);
  }
}

/**
 * Which offsets of one partition of one station incarnation the destination already holds — the heart
 * of exactly-once for the warehouse sinks. The destination is the record (each row carries station,
 * station id, partition and offset), so nothing else has to be committed alongside the rows.
 *
 * `known` is a lower bound: for offsets ≥ `knownFrom` the set `present` is exact. It becomes exact by
 * asking the destination ("which offsets ≥ a and < b do you hold?") the first time a partition is
 * written after open (task start), and for any older offsets a batch carries (a stale replay). Above
 * what the destination held then, only this sink writes (the runtime runs one writer per partition),
 * so what it confirms it adds to `present`, and new batches need no query. A write whose outcome is
 * unknown (a dropped connection after the service may have committed) forgets the partition: the next
 * write asks again.
 */
export type PresenceQuery<C = void> = (ref: PartitionRef, from: number, toExclusive: number, context: C) => Promise<number[]>;

interface State {
  knownFrom: number;
  present: OffsetRanges;
}

export class Presence<C = void> {
  private readonly partitions = new Map<string, State>();
  constructor(private readonly query: PresenceQuery<C>) {}

  /**
   * The offsets among `offsets` that the destination already holds. Queries it only when needed,
   * passing `context` (e.g. the calling write's deadline and signal: writes of different partitions
   * may run at once, so a sink must not keep "the current write" in a field).
   */
  async held(ref: PartitionRef, offsets: number[], context: C): Promise<Set<number>> {
    const key = keyOf(ref);
    let state = this.partitions.get(key);
    const min = Math.min(...offsets);
    if (!state || min < state.knownFrom) {
      const to = state ? state.knownFrom : Number.MAX_SAFE_INTEGER;
      const found = await this.query({ station: ref.station, stationId: ref.stationId, partition: ref.partition }, min, to, context);
      if (!state) state = { knownFrom: min, present: new OffsetRanges() };
      for (const o of found) state.present.add(o, o);
      state.knownFrom = min;
      this.partitions.set(key, state);
    }
    const s = state;
    return new Set(offsets.filter((o) => s.present.has(o)));
  }

  /** Records offsets this sink has durably written. */
  written(ref: PartitionRef, offsets: number[]): void {
    const state = this.partitions.get(keyOf(ref));
    if (!state) return;
    for (const o of offsets) if (o >= state.knownFrom) state.present.add(o, o);
  }

  /** The outcome of a write is unknown: ask the destination again next time. */
  forget(ref: PartitionRef): void {
    this.partitions.delete(keyOf(ref));
  }
}

function keyOf(ref: PartitionRef): string {
  return `${ref.station}\u0000${ref.stationId}\u0000${ref.partition}`;
}

/** What {@link untilDeadline} answers when the deadline passed or the signal aborted first. */
export const GAVE_UP: unique symbol = Symbol('gave up');

/**
 * Settles with `p`'s value, or with {@link GAVE_UP} at `deadline` (ms since the epoch) or when `signal`
 * aborts — whichever is first. Never rejects for those (a rejection of `p` itself comes through).
 * For sinks whose client library retries on its own for longer than a write may take.
 */
export async function untilDeadline<T>(p: Promise<T>, deadline: number, signal: AbortSignal): Promise<T | typeof GAVE_UP> {
  if (signal.aborted || Date.now() >= deadline) return GAVE_UP;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<typeof GAVE_UP>((resolve) => {
    timer = setTimeout(() => resolve(GAVE_UP), deadline - Date.now());
    onAbort = () => resolve(GAVE_UP);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([p, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Requests a sink gave up on while they may still land, by key (e.g. destination + station +
 * partition). Until such a request settles nothing else should be sent for its key: a late landing
 * must not race a re-send. Share one instance per module so every sink opened in a worker respects it.
 */
export class Fences {
  private readonly pending = new Map<string, Promise<void>>();

  /** Fences `key` until `request` settles (either way). */
  add(key: string, request: Promise<unknown>): void {
    const entry: Promise<void> = request.then(
      () => this.clear(key, entry),
      () => this.clear(key, entry),
    );
    this.pending.set(key, entry);
  }

  /**
   * Waits for the key's fenced request to settle, up to the deadline. `clear` when there was none,
   * `settled` when it settled (ask the destination again: it may have landed), `timeout` otherwise.
   */
  async wait(key: string, deadline: number, signal: AbortSignal): Promise<'clear' | 'settled' | 'timeout'> {
    const earlier = this.pending.get(key);
    if (!earlier) return 'clear';
    return (await untilDeadline(earlier, deadline, signal)) === GAVE_UP ? 'timeout' : 'settled';
  }

  /**
   * Forgets every fence, as a process restart does (the requests stay wherever they are). For tests
   * that stand in for a killed writer in one process.
   */
  forgetAll(): void {
    this.pending.clear();
  }

  private clear(key: string, entry: Promise<void>): void {
    if (this.pending.get(key) === entry) this.pending.delete(key);
  }
}
