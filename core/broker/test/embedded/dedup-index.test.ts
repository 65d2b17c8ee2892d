/**
 * The compact dedup index (embedded/dedup.ts) against a Map model of the window's semantics, its bound,
 * its memory per id, and the snapshot file's round trip and damage checks.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DedupIndex, type DedupHit } from '../../src/embedded/dedup.js';
import { appendDedupDelta, cutView, readDedupSnapshot, writeDedupSnapshot } from '../../src/embedded/dedup-snapshot.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A seeded PRNG (mulberry32): the same operations on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('DedupIndex', () => {
  it('answers like a Map of msgIds through remember, forget, expiry and ids remembered again', () => {
    const rand = rng(7);
    const index = new DedupIndex(1_000_000);
    const model = new Map<string, DedupHit>();
    const window = 5_000;
    let now = 1_700_000_000_000;
    let offset = 0;
    for (let step = 0; step < 60_000; step++) {
      now += Math.floor(rand() * 3);
      index.expire(now, window);
      const id = `id-${Math.floor(rand() * 20_000)}`;
      const key = index.digest(id);
      const want = model.get(id);
      const inWindow = want && want.timestamp > now - window ? want : undefined;
      expect(index.lookup(key, now, window)).toEqual(inWindow);
      const op = rand();
      if (!inWindow && op < 0.9) {
        const hit = { partition: Math.floor(rand() * 3), offset: ++offset, timestamp: now };
        index.remember(key, hit);
        model.set(id, hit);
      } else if (op >= 0.97) {
        index.forget(key);
        model.delete(id);
      }
    }
    // Every id the model holds inside the window is found with its partition, offset and timestamp.
    let inside = 0;
    for (const [id, hit] of model) {
      if (hit.timestamp <= now - window) continue;
      inside++;
      expect(index.lookup(index.digest(id), now, window)).toEqual(hit);
    }
    expect(inside).toBeGreaterThan(1000);
    // Expiry dropped the rest from memory, not only from answers.
    index.expire(now, window);
    expect(index.size).toBe(inside);
  });

  it('keeps at most maxIds: the oldest leave early and are counted', () => {
    const index = new DedupIndex(1_000);
    const now = 1_700_000_000_000;
    for (let i = 0; i < 1_500; i++) index.remember(index.digest(`m${i}`), { partition: 0, offset: i + 1, timestamp: now + i });
    expect(index.size).toBe(1_000);
    expect(index.evicted).toBe(500);
    expect(index.lookup(index.digest('m0'), now + 1_500, 60_000)).toBeUndefined();
    expect(index.lookup(index.digest('m499'), now + 1_500, 60_000)).toBeUndefined();
    expect(index.lookup(index.digest('m500'), now + 1_500, 60_000)).toEqual({ partition: 0, offset: 501, timestamp: now + 500 });
    expect(index.lookup(index.digest('m1499'), now + 1_500, 60_000)).toEqual({ partition: 0, offset: 1_500, timestamp: now + 1_499 });
    // A lower bound applies at once; a higher one leaves room.
    index.setMaxIds(100);
    expect(index.size).toBe(100);
    expect(index.evicted).toBe(1_400);
    expect(index.lookup(index.digest('m1400'), now + 1_500, 60_000)?.offset).toBe(1_401);
  });

  it('holds ids in at most 48 bytes each, and gives memory back when they expire', () => {
    const index = new DedupIndex(10_000_000);
    const now = 1_700_000_000_000;
    for (const n of [1_000, 50_000, 300_000]) {
      while (index.size < n)
        index.remember(index.digest(`order-${index.size}`), { partition: index.size % 4, offset: index.size + 1, timestamp: now });
      expect(index.bytes / index.size).toBeLessThanOrEqual(48);
    }
    index.expire(now + 1, 1);
    expect(index.size).toBe(0);
    expect(index.bytes).toBeLessThan(64 * 1024);
  });

  it('keeps timestamps exact across more than 49 days (a chunk spans at most 2^32 ms)', () => {
    const index = new DedupIndex(1_000);
    const t0 = 1_700_000_000_000;
    const day = 24 * 3600_000;
    index.remember(index.digest('a'), { partition: 0, offset: 1, timestamp: t0 });
    index.remember(index.digest('b'), { partition: 0, offset: 2, timestamp: t0 + 60 * day });
    expect(index.lookup(index.digest('a'), t0 + 1, 7 * day)?.timestamp).toBe(t0);
    expect(index.lookup(index.digest('b'), t0 + 60 * day, 7 * day)?.timestamp).toBe(t0 + 60 * day);
    index.expire(t0 + 60 * day, 7 * day);
    expect(index.size).toBe(1);
  });

  it('digests depend on the index key: ids that collide under one key do not under another', () => {
    const a = new DedupIndex(1_000);
    const b = new DedupIndex(1_000);
    expect(a.digest('x')).not.toBe(b.digest('x'));
    expect(a.digest('x')).toBe(a.digest('x'));
    expect(new DedupIndex(1_000, a.key).digest('x')).toBe(a.digest('x'));
    // SHA-256 of the key (hex) and the msgId's UTF-8 bytes; the index keeps the first 16 bytes.
    expect(Buffer.from(a.digest('ünï'), 'latin1')).toEqual(
      createHash('sha256').update(a.key.toString('hex')).update('ünï', 'utf8').digest(),
    );
  });
});

describe('dedup snapshot file', () => {
  async function written() {
    const dir = await mkdtemp(join(tmpdir(), 'junction-dedup-snap-'));
    dirs.push(dir);
    const index = new DedupIndex(100_000);
    const now = Date.now();
    for (let i = 0; i < 5_000; i++)
      index.remember(index.digest(`k${i}`), { partition: i % 2, offset: Math.floor(i / 2) + 1, timestamp: now - 5_000 + i });
    const path = join(dir, 'dedup.snapshot');
    // Partition 1 is durable only below offset 2001: the snapshot ends before its first slot at or past
    // it (slot 4001), and each partition's coverage is where the log must be replayed from.
    const what = cutView(index.view(), [3_000, 2_001]);
    expect(what.cut).toBe(4_001);
    expect(what.covered).toEqual([2_002, 2_001]);
    const out = await writeDedupSnapshot(path, index.key, what, true);
    return { path, index, now, n: out.entries, bytes: out.bytes };
  }

  it('round-trips the ids before the cut, with their key', async () => {
    const { path, index, now, n } = await written();
    expect(n).toBe(4_001);
    const r = await readDedupSnapshot(path, 2, 100_000, () => true);
    if (!('index' in r)) throw new Error(r.problem);
    expect(r.covered).toEqual([2_002, 2_001]);
    expect(r.kept).toBe(4_001);
    expect(r.index.key.equals(index.key)).toBe(true);
    for (let i = 0; i < 5_000; i++) {
      const hit = r.index.lookup(r.index.digest(`k${i}`), now, 60_000);
      expect(hit).toEqual(i < 4_001 ? { partition: i % 2, offset: Math.floor(i / 2) + 1, timestamp: now - 5_000 + i } : undefined);
    }
  });

  it('appends deltas; a delta a crash cut short is ignored, with the coverage of the segment before', async () => {
    const { path, index, now, bytes } = await written();
    const hw = [1e9, 1e9];
    // The ids after the cut, 1000 more, and one whose message was not stored (forgotten: never written).
    for (let i = 5_000; i < 6_000; i++)
      index.remember(index.digest(`k${i}`), { partition: i % 2, offset: Math.floor(i / 2) + 1, timestamp: now - 5_000 + i });
    index.remember(index.digest('failed'), { partition: 0, offset: 3_001, timestamp: now });
    index.forget(index.digest('failed'));
    const d1 = await appendDedupDelta(path, bytes, index.key, cutView(index.view(4_001), hw), true);
    expect(d1.entries).toBe(1_999);
    let r = await readDedupSnapshot(path, 2, 100_000, () => true);
    if (!('index' in r)) throw new Error(r.problem);
    expect({ kept: r.kept, segments: r.segments, validBytes: r.validBytes, covered: r.covered }).toEqual({
      kept: 6_000,
      segments: 2,
      validBytes: bytes + d1.bytes,
      covered: hw,
    });
    expect(r.index.lookup(r.index.digest('failed'), now, 60_000)).toBeUndefined();
    expect(r.index.lookup(r.index.digest('k5999'), now, 60_000)?.offset).toBe(3_000);

    for (let i = 6_000; i < 6_500; i++)
      index.remember(index.digest(`k${i}`), { partition: i % 2, offset: Math.floor(i / 2) + 1, timestamp: now - 5_000 + i });
    const d2 = await appendDedupDelta(path, bytes + d1.bytes, index.key, cutView(index.view(6_001), [1e9, 3_101]), true);
    const whole = await readFile(path);
    await writeFile(path, whole.subarray(0, bytes + d1.bytes + Math.floor(d2.bytes / 2)));
    r = await readDedupSnapshot(path, 2, 100_000, () => true);
    if (!('index' in r)) throw new Error(r.problem);
    expect({ kept: r.kept, segments: r.segments, validBytes: r.validBytes, covered: r.covered }).toEqual({
      kept: 6_000,
      segments: 2,
      validBytes: bytes + d1.bytes,
      covered: hw,
    });
    expect(r.ignoredTail).toContain(`byte ${bytes + d1.bytes}`);
    expect(r.index.lookup(r.index.digest('k6000'), now, 60_000)).toBeUndefined();
  });

  it('refuses a damaged, truncated or foreign file', async () => {
    const { path } = await written();
    const good = await readFile(path);
    const flipped = Buffer.from(good);
    flipped[good.length >> 1] ^= 0x01;
    await writeFile(path, flipped);
    expect(await readDedupSnapshot(path, 2, 100_000, () => true)).toMatchObject({
      problem: expect.stringContaining('checksum'),
      missing: false,
    });
    await writeFile(path, good.subarray(0, good.length - 17));
    expect(await readDedupSnapshot(path, 2, 100_000, () => true)).toMatchObject({ missing: false });
    await writeFile(path, good);
    expect(await readDedupSnapshot(path, 3, 100_000, () => true)).toMatchObject({
      problem: expect.stringContaining('partitions'),
      missing: false,
    });
    await rm(path);
    expect(await readDedupSnapshot(path, 2, 100_000, () => true)).toMatchObject({ problem: 'missing', missing: true });
  });
});
