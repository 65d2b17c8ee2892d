import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { harness, produceN, waitFor, written } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await harness();
});
afterEach(async () => {
  await h.cleanup();
});

describe('backpressure', () => {
  it('a slow sink over a big backlog: the runtime holds at most (2 × tasks + 1) × maxMessages messages', async () => {
    await h.store.createStation('big', { partitions: 4 });
    await produceN(h.store, 'big', 20_000);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'slow',
      plugin: 'test-slow',
      station: 'big',
      tasks: 1,
      config: { dir, delayMs: 100 },
      batch: { maxMessages: 50, maxLatencyMs: 10 },
    });
    const bound = (2 * 1 + 1) * 50;
    let samples = 0;
    // At least 1.5 s and 50 samples (a busy machine runs the 5 ms timer less often), within 20 s.
    const start = Date.now();
    while ((Date.now() - start < 1500 || samples <= 50) && Date.now() - start < 20_000) {
      const b = h.runtime.buffered('slow')!;
      expect(b.messages).toBeLessThanOrEqual(bound);
      expect(b.writing).toBeLessThanOrEqual(2);
      samples++;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(samples).toBeGreaterThan(50);
    const b = h.runtime.buffered('slow')!;
    expect(b.peakMessages).toBeLessThanOrEqual(bound);
    expect(b.peakMessages).toBeGreaterThan(50); // it did fill up to the bound
    // Progress, but far from the backlog: the fetch was held back.
    const w = await written(dir);
    expect(w.unique).toBeGreaterThan(0);
    expect(w.unique).toBeLessThan(20_000);
    const g = await h.store.getGroup('big', 'connector.slow');
    expect(g.pending).toBeLessThanOrEqual(bound);
    expect(g.lag).toBeGreaterThan(15_000);
  });

  it('the bound also holds by bytes', async () => {
    await h.store.createStation('big', { partitions: 1 });
    await produceN(h.store, 'big', 2000, { size: 1024 });
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'slow',
      plugin: 'test-slow',
      station: 'big',
      config: { dir, delayMs: 100 },
      batch: { maxMessages: 1000, maxBytes: 16 * 1024, maxLatencyMs: 10 },
    });
    await waitFor(() => h.runtime.buffered('slow')!.peakMessages > 0);
    await new Promise((r) => setTimeout(r, 500));
    // (2 + 1) × 16 KiB of 1 KiB messages, plus at most one message over.
    expect(h.runtime.buffered('slow')!.peakMessages).toBeLessThanOrEqual(3 * 16 + 1);
  });
});
