/**
 * Read buffers in shared memory (the connector runtime hands them to its worker threads without a copy),
 * bounded: V8 does not count shared memory as GC pressure, so past a budget of live shared read buffers
 * the log reads into ordinary memory. Values are the same bytes either way.
 */
import { describe, expect, it } from 'vitest';
import { openFileLog } from '../../src/log/index.js';
import type { LogRecord } from '../../src/log/index.js';
import { T0, makeTempDir, removeDir } from './helpers.js';

/** Record `i`: 1 MiB of a byte of its own, a key on every other. */
const value = (i: number): Buffer => Buffer.alloc(1 << 20, (i * 37 + 1) & 0xff);

describe('file log: shared read buffers', () => {
  it('reads into shared memory; past the budget of live shared buffers into ordinary memory; values intact either way', async () => {
    const dir = await makeTempDir();
    const log = await openFileLog({ dir, segmentBytes: 8 << 20, fsync: 'never' });
    try {
      // 96 values of 1 MiB in segments of 8 MiB: each read of 4 values is a read buffer of its own.
      const n = 96;
      for (let i = 0; i < n; i += 8)
        await log.append(
          Array.from({ length: 8 }, (_, k) => ({
            timestamp: T0 + i + k,
            value: value(i + k),
            ...((i + k) % 2 === 0 && { key: `k${i + k}` }),
          })),
        );
      const held: LogRecord[] = [];
      for (let from = 1; from <= n;) {
        const recs = await log.read(from, { maxMessages: 4, maxBytes: 4 << 20 });
        held.push(...recs);
        from = recs[recs.length - 1]!.offset + 1;
      }
      expect(held.length).toBe(n);
      held.forEach((r, i) => {
        expect([r.offset, r.timestamp, r.key]).toEqual([i + 1, T0 + i, i % 2 === 0 ? `k${i}` : undefined]);
        expect(Buffer.compare(r.value, value(i))).toBe(0);
      });
      // Every buffer is held (here, by `held`): the first reads are shared, the last ones (past 64 MiB) are not.
      const shared = held.map((r) => r.value.buffer instanceof SharedArrayBuffer);
      expect(shared[0]).toBe(true);
      expect(shared[n - 1]).toBe(false);
      const sharedBytes = new Set(held.filter((r) => r.value.buffer instanceof SharedArrayBuffer).map((r) => r.value.buffer));
      expect([...sharedBytes].reduce((s, b) => s + b.byteLength, 0)).toBeLessThanOrEqual(64 << 20);
    } finally {
      await log.close();
      await removeDir(dir);
    }
  });
});
