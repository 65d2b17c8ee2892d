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
