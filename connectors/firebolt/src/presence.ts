/**
 * Which offsets of one partition the destination already holds — the heart of exactly-once for the
 * warehouse sinks. The destination is the record (each row carries station, partition and offset),
 * so nothing else has to be committed alongside the rows.
 *
 * `known` is a lower bound: for offsets ≥ `knownFrom` the set `present` is exact. It becomes exact by
 * asking the destination ("which offsets ≥ a and < b do you hold?") the first time a partition is
 * written after open (task start), and for any older offsets a batch carries (a stale replay). Above
 * what the destination held then, only this sink writes (the runtime runs one writer per partition),
 * so what it confirms it adds to `present`, and new batches need no query. A write whose outcome is
 * unknown (a dropped connection after the service may have committed) forgets the partition: the next
 * write asks again.
 */
import { OffsetRanges } from './ranges.js';

export type PresenceQuery = (station: string, partition: number, from: number, toExclusive: number) => Promise<number[]>;

interface State {
  knownFrom: number;
  present: OffsetRanges;
}

export class Presence {
  private readonly partitions = new Map<string, State>();
  constructor(private readonly query: PresenceQuery) {}

  /** The offsets among `offsets` that the destination already holds. Queries it only when needed. */
  async held(station: string, partition: number, offsets: number[]): Promise<Set<number>> {
    const key = `${station}\u0000${partition}`;
    let state = this.partitions.get(key);
    const min = Math.min(...offsets);
    if (!state || min < state.knownFrom) {
      const to = state ? state.knownFrom : Number.MAX_SAFE_INTEGER;
      const found = await this.query(station, partition, min, to);
      if (!state) state = { knownFrom: min, present: new OffsetRanges() };
      for (const o of found) state.present.add(o, o);
      state.knownFrom = min;
      this.partitions.set(key, state);
    }
    const s = state;
    return new Set(offsets.filter((o) => s.present.has(o)));
  }

  /** Records offsets this sink has durably written. */
  written(station: string, partition: number, offsets: number[]): void {
    const state = this.partitions.get(`${station}\u0000${partition}`);
    if (!state) return;
    for (const o of offsets) if (o >= state.knownFrom) state.present.add(o, o);
  }

  /** The outcome of a write is unknown: ask the destination again next time. */
  forget(station: string, partition: number): void {
    this.partitions.delete(`${station}\u0000${partition}`);
  }
}
