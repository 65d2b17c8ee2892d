/**
 * The dedup rows' memory measurement (`node --expose-gc dedup-memory.js <json config>`): in a fresh
 * process, remembers `counts` msgIds (ascending; one index grown step by step) and reports the growth of
 * RSS and of ArrayBuffer memory per id after a full GC, and the time per remember and per lookup.
 * `impl`: `compact` (the embedded engine's DedupIndex) or `map` (what it replaced: a Map of msgId strings
 * to `{ partition, offset, timestamp }` plus an insertion-order array, as on main before issue 16).
 * Prints one JSON line: `{ rows: DedupMemoryRow[] }`.
 */
import { DedupIndex } from '@junction/broker';

export interface DedupMemoryConfig {
  impl: 'compact' | 'map';
  counts: number[];
}

export interface DedupMemoryRow {
  impl: 'compact' | 'map';
  ids: number;
  /** (RSS after − RSS before) / ids, after a full GC. */
  rssBytesPerId: number;
  /** Growth of process.memoryUsage().arrayBuffers + heapUsed per id. */
  heapBytesPerId: number;
  /** What the index says it holds (compact only). */
  indexBytesPerId?: number | undefined;
  /** Mean ns per remember (digest included) and per lookup of an id it holds. */
  rememberNs: number;
  lookupNs: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as DedupMemoryConfig;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const measure = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed + m.arrayBuffers };
};
const id = (i: number) => `bench-dedup-${i}-${(i * 2654435761) >>> 0}`;
const rows: DedupMemoryRow[] = [];
// A warm process first (as a broker is): the same garbage per id (id strings, digests, hits) grows V8's
// young generation to its working size, which would otherwise be counted as the index's.
{
  const warm = new DedupIndex(1_000);
  let sink = 0;
  for (let i = 0; i < 1_000_000; i++) {
    const k = warm.digest(id(i));
    const hit = { partition: i & 3, offset: i + 1, timestamp: Date.now() };
    sink += k.length + hit.offset;
  }
  if (sink === 0) throw new Error('unreachable');
}
const base = measure();
const now = Date.now();

if (config.impl === 'compact') {
  const index = new DedupIndex(100_000_000);
  let n = 0;
  for (const count of config.counts) {
    const t0 = performance.now();
    const from = n;
    for (; n < count; n++) index.remember(index.digest(id(n)), { partition: n & 3, offset: n + 1, timestamp: now });
    const rememberNs = ((performance.now() - t0) * 1e6) / (count - from);
    const m = measure();
    const t1 = performance.now();
    const probes = Math.min(count, 200_000);
    let found = 0;
    for (let i = 0; i < probes; i++) if (index.lookup(index.digest(id((i * 7919) % count)), now, 60_000)) found++;
    if (found !== probes) throw new Error(`lookup found ${found} of ${probes}`);
    const lookupNs = ((performance.now() - t1) * 1e6) / probes;
    rows.push({
      impl: 'compact',
      ids: count,
      rssBytesPerId: (m.rss - base.rss) / count,
      heapBytesPerId: (m.heap - base.heap) / count,
      indexBytesPerId: index.bytes / index.size,
      rememberNs,
      lookupNs,
    });
  }
} else {
  // The index as it was: Map<msgId, hit> and the ids in insertion order.
  const ids = new Map<string, { partition: number; offset: number; timestamp: number }>();
  const order: string[] = [];
  let n = 0;
  for (const count of config.counts) {
    const t0 = performance.now();
    const from = n;
    for (; n < count; n++) {
      const k = id(n);
      if (!ids.has(k)) order.push(k);
      ids.set(k, { partition: n & 3, offset: n + 1, timestamp: now });
    }
    const rememberNs = ((performance.now() - t0) * 1e6) / (count - from);
    const m = measure();
    const t1 = performance.now();
    const probes = Math.min(count, 200_000);
    let found = 0;
    for (let i = 0; i < probes; i++) {
      const hit = ids.get(id((i * 7919) % count));
      if (hit && hit.timestamp > now - 60_000) found++;
    }
    if (found !== probes) throw new Error(`lookup found ${found} of ${probes}`);
    const lookupNs = ((performance.now() - t1) * 1e6) / probes;
    rows.push({
      impl: 'map',
      ids: count,
      rssBytesPerId: (m.rss - base.rss) / count,
      heapBytesPerId: (m.heap - base.heap) / count,
      rememberNs,
      lookupNs,
    });
  }
}
process.stdout.write(`${JSON.stringify({ rows })}\n`);
