/**
 * Packed-batch buffers go to the worker and come back with its answer (pack-buffers.ts): the next batch
 * is packed into a buffer a worker gave back, never into one a worker still holds, and the pool stays
 * bounded.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IDLE_MS, PackBuffers } from '../src/pack-buffers.js';
import { harness, lagOf, waitFor } from './helpers.js';
import type { Harness } from './helpers.js';

describe('PackBuffers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('lends a buffer given back, the smallest that fits, never one more than twice too large', () => {
    const pool = new PackBuffers(4);
    const a = pool.take(100_000);
    const b = pool.take(300_000);
    expect(pool.stats()).toMatchObject({ fresh: 2, reused: 0, free: 0 });
    expect(a.byteLength).toBeGreaterThanOrEqual(100_000);
    pool.give(b);
    pool.give(a);
    expect(pool.take(90_000)).toBe(a);
    // b is more than twice 10 KB: a fresh one rather than b held by a small batch.
    const small = pool.take(10_000);
    expect(small).not.toBe(b);
    expect(pool.take(250_000)).toBe(b);
    expect(pool.stats()).toMatchObject({ fresh: 3, reused: 2, free: 0, freeBytes: 0 });
  });

  it('keeps at most `max` free buffers (dropping the smallest), and none given back detached', () => {
    const pool = new PackBuffers(2);
    const bufs = [1000, 5000, 3000].map((n) => pool.take(n));
    for (const b of bufs) pool.give(b);
    const s = pool.stats();
    expect(s.free).toBe(2);
    expect(s.freeBytes).toBe(bufs[1]!.byteLength + bufs[2]!.byteLength);
    const moved = pool.take(5000);
    structuredClone(moved, { transfer: [moved] });
    pool.give(moved);
    expect(pool.stats().free).toBe(1);
  });

  it('drops its free buffers once not drawn on for IDLE_MS', () => {
    vi.useFakeTimers();
    const pool = new PackBuffers(4);
    pool.give(pool.take(1000));
    vi.advanceTimersByTime(IDLE_MS - 100);
    expect(pool.stats().free).toBe(1);
    vi.advanceTimersByTime(200);
    expect(pool.stats()).toMatchObject({ free: 0, freeBytes: 0 });
  });
});

describe('the runtime packs batches into buffers the worker gave back', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it('40 batches: each value byte for byte, at most 2 × (in flight + 1) buffers allocated, the rest lent again', async () => {
    await h.store.createStation('s', { partitions: 1 });
    // Values of different lengths, so a batch packed into a buffer of an earlier one would show its leftovers.
    // (Lengths 150–189 B: every batch of 100 needs a buffer of the same rounded size, so the bound below is exact.)
    const value = (i: number) => Buffer.from(`v${i}:`.padEnd(150 + ((i * 37) % 40), String.fromCharCode(97 + (i % 26))));
    const n = 4000;
    for (let i = 1; i <= n; i += 500)
      await h.store.produce(
        's',
        Array.from({ length: Math.min(500, n + 1 - i) }, (_, k) => ({ value: value(i + k) })),
      );
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-values',
      station: 's',
      config: { dir },
      batch: { maxMessages: 100, maxLatencyMs: 500 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0', timeoutMs: 60_000 });
    const lines = (await readFile(join(dir, 'values.log'), 'utf8')).split('\n').filter(Boolean);
    const seen = new Map<number, string>();
    for (const l of lines) {
      const m = JSON.parse(l) as { offset: number; value: string };
      seen.set(m.offset, m.value);
    }
    expect(seen.size).toBe(n);
    for (const [offset, v] of seen) expect(Buffer.from(v, 'base64').equals(value(offset)), `offset ${offset}`).toBe(true);
    const s = h.runtime.buffered('c')!.packBuffers;
    // Two buffers a batch (values, numbers); one task: 2 in flight + 1 packed ahead.
    const batches = n / 100;
    expect(s.fresh + s.reused).toBeGreaterThanOrEqual(2 * batches);
    expect(s.fresh).toBeLessThanOrEqual(2 * 3);
    expect(s.free).toBeLessThanOrEqual(2 * 3);
  });

  it('a write that failed does not hand its buffers back (its plugin may still read them): the retry packs into fresh ones', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await h.store.produce(
      's',
      Array.from({ length: 10 }, (_, i) => ({ value: Buffer.from(`m-${i}`) })),
    );
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-throw',
      station: 's',
      config: { dir, times: 1, retryable: true },
      batch: { maxLatencyMs: 5 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0', timeoutMs: 60_000 });
    // The failed write's two buffers stayed in the worker; the retry got two fresh ones and gave them back.
    expect(h.runtime.buffered('c')!.packBuffers).toMatchObject({ fresh: 4, reused: 0, free: 2 });
  });
});
