/**
 * The names of a store's stations in name order, for paged listings: a page costs a binary search and
 * the page itself, not a sort of every name (pageOfNames sorts its input, fine for a station's groups,
 * not for 100,000 stations listed a page at a time). Names added out of order are sorted once, at the
 * next listing, so loading or creating many stations costs no per-name insertion.
 */
import type { ListOptions } from '../contract.js';

export class SortedNames {
  private names: string[] = [];
  private sorted = true;

  get size(): number {
    return this.names.length;
  }

  /** Adds a name (the caller knows it is not there yet). */
  add(name: string): void {
    const last = this.names[this.names.length - 1];
    if (this.sorted && last !== undefined && name <= last) this.sorted = false;
    this.names.push(name);
  }

  delete(name: string): void {
    this.sort();
    const i = this.lowerBound(name);
    if (this.names[i] === name) this.names.splice(i, 1);
  }

  clear(): void {
    this.names = [];
    this.sorted = true;
  }

  /** The names after `after` that start with `prefix`, in order, at most `limit` (pageOfNames' semantics). */
  page(options: ListOptions = {}): string[] {
    this.sort();
    const { after, prefix, limit } = options;
    let i = 0;
    if (after !== undefined) {
      i = this.lowerBound(after);
      if (this.names[i] === after) i++;
    }
    if (prefix !== undefined) i = Math.max(i, this.lowerBound(prefix));
    const max = limit === undefined ? Infinity : limit;
    const out: string[] = [];
    for (; i < this.names.length && out.length < max; i++) {
      const n = this.names[i] as string;
      if (prefix !== undefined && !n.startsWith(prefix)) break;
      out.push(n);
    }
    return out;
  }

  private sort(): void {
    if (this.sorted) return;
    this.names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.sorted = true;
  }

  /** The first index whose name is >= `name`. */
  private lowerBound(name: string): number {
    let lo = 0;
    let hi = this.names.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.names[mid] as string) < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
