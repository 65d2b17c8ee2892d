/** msgIds seen inside a station's dedup window, with where they were stored. */
export interface DedupHit {
  partition: number;
  offset: number;
  timestamp: number;
}

export class DedupIndex {
  private readonly ids = new Map<string, DedupHit>();
  /** Insertion order is time order (timestamps are assigned at produce), so expiry pops from the front. */
  private readonly order: string[] = [];
  private head = 0;

  get size(): number {
    return this.ids.size;
  }

  /** The earlier message with this id if it is inside the window. */
  lookup(msgId: string, now: number, windowMs: number): DedupHit | undefined {
    const hit = this.ids.get(msgId);
    return hit && hit.timestamp > now - windowMs ? hit : undefined;
  }

  remember(msgId: string, hit: DedupHit): void {
    if (!this.ids.has(msgId)) this.order.push(msgId);
    this.ids.set(msgId, hit);
  }

  forget(msgId: string): void {
    this.ids.delete(msgId);
  }

  /** Drops ids older than the window. */
  expire(now: number, windowMs: number): void {
    const limit = now - windowMs;
    while (this.head < this.order.length) {
      const id = this.order[this.head]!;
      const hit = this.ids.get(id);
      if (hit && hit.timestamp > limit) break;
      // A re-remembered id moved on; only drop it when its newest entry is old.
      if (hit) this.ids.delete(id);
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** FNV-1a over the key's UTF-8 bytes: stable across processes, versions and platforms. */
export function partitionForKey(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(key, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
