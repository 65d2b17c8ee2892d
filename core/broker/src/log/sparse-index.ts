/**
 * The in-memory sparse index of a segment: one entry (offset, file position, timestamp) per
 * INDEX_INTERVAL_BYTES of log, searched by offset (reads) and by timestamp (offsetForTimestamp).
 */

/** An index entry is written when this many bytes of log passed since the previous one. */
export const INDEX_INTERVAL_BYTES = 4096;

/** Parallel typed arrays that grow by doubling; entries are pushed in increasing offset and position. */
export class SparseIndex {
  offsets: Float64Array<ArrayBuffer>;
  positions: Float64Array<ArrayBuffer>;
  timestamps: Float64Array<ArrayBuffer>;
  length = 0;

  /** `capacity`: entries to make room for up front (an index loaded from a file knows its size). */
  constructor(capacity = 16) {
    const n = Math.max(1, capacity);
    this.offsets = new Float64Array(n);
    this.positions = new Float64Array(n);
    this.timestamps = new Float64Array(n);
  }

  push(offset: number, position: number, timestamp: number): void {
    if (this.length === this.offsets.length) {
      const grow = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.offsets = grow(this.offsets);
      this.positions = grow(this.positions);
      this.timestamps = grow(this.timestamps);
    }
    this.offsets[this.length] = offset;
    this.positions[this.length] = position;
    this.timestamps[this.length] = timestamp;
    this.length++;
  }

  /** The last entry whose offset is <= offset, or -1. */
  floorOffset(offset: number): number {
    let lo = 0;
    let hi = this.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.offsets[mid] as number) <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** The last entry whose timestamp is < ts, or -1. */
  lastBefore(ts: number): number {
    let lo = 0;
    let hi = this.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.timestamps[mid] as number) < ts) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }
}
