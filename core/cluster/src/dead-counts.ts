/**
 * A consumer group's dead-letter counts, total and per partition, in the metadata KV (`deadKey`): updated
 * by compare-and-set from every node, read from this node's cache of the bucket.
 */
import type { DeadItem, StoreCore } from './core.js';

/**
 * A group's dead-letter counts in KV (`deadKey`): `n` the total, `p[i]` partition i's. A value written before
 * per-partition counts (or by a node that does not keep them) is `{n}` alone: what it counted is in `n`
 * only, so `n` may exceed the sum of `p`.
 */
export interface DeadCount {
  n: number;
  p?: number[] | undefined;
}

/** The group's dead-letter counts from this node's cache: the total and one count per partition (0 when unknown). */
export function deadCounts(c: StoreCore, station: string, group: string, partitions: number): { total: number; parts: number[] } {
  const v = c.meta.peek<DeadCount>(c.names.deadKey(station, group)).value;
  const parts = Array.from({ length: partitions }, (_, i) => v?.p?.[i] ?? 0);
  return {
    total: Math.max(
      v?.n ?? 0,
      parts.reduce((a, b) => a + b, 0),
    ),
    parts,
  };
}

/** Counts of items per partition, each `sign` (1 or -1). */
export function perPartition(items: readonly DeadItem[], sign = 1): Map<number, number> {
  const by = new Map<number, number>();
  for (const it of items) by.set(it.partition, (by.get(it.partition) ?? 0) + sign);
  return by;
}

/**
 * Adds `by` (partition → change) to the group's dead-letter counts in KV: the total and each partition's,
 * in one compare-and-set, so every node's changes add up.
 */
export async function bumpDeadCount(c: StoreCore, station: string, group: string, by: ReadonlyMap<number, number>): Promise<void> {
  const key = c.names.deadKey(station, group);
  let total = 0;
  for (const d of by.values()) total += d;
  for (let attempt = 0; attempt < 10; attempt++) {
    const cur = attempt === 0 ? c.meta.peek<DeadCount>(key) : await c.meta.read<DeadCount>(key);
    const p = [...(cur.value?.p ?? [])];
    for (const [i, d] of by) {
      for (let j = p.length; j < i; j++) p[j] = 0;
      p[i] = Math.max(0, (p[i] ?? 0) + d);
    }
    const next: DeadCount = { n: Math.max(0, (cur.value?.n ?? 0) + total), p };
    const rev = cur.value === undefined ? await c.meta.create(key, next) : await c.meta.update(key, next, cur.rev);
    if (rev !== undefined) return;
  }
  c.log.warn({ station, group }, 'dead-letter count not updated (contention)');
}
