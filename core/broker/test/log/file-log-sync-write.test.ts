/**
 * Small appends are written on the calling thread (writeFullySync): no request of libuv's thread pool per
 * single-message produce. Larger ones still go through the pool. Bytes are the same either way.
 */
import { createHook } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { openFileLog } from '../../src/log/index.js';
import { T0, makeTempDir, readAll, removeDir } from './helpers.js';

const record = (value: Buffer) => ({ timestamp: T0, value });

/** Counts the fs requests (promise API) started while `fn` runs. */
async function fsRequests(fn: () => Promise<void>): Promise<number> {
  let n = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'FSREQPROMISE' || type === 'FSREQCALLBACK') n++;
    },
  });
  hook.enable();
  try {
    await fn();
  } finally {
    hook.disable();
  }
  return n;
}

describe('file log: small appends on the calling thread', () => {
  it('100 single-record appends start no fs request each; a large append still does; every record reads back', async () => {
    const dir = await makeTempDir();
    try {
      const log = await openFileLog({ dir, segmentBytes: 1 << 24, fsync: 'never' });
      await log.append([record(Buffer.alloc(1024, 1))]); // the first write marks the checkpoint unclean
      const small = await fsRequests(async () => {
        for (let i = 0; i < 100; i++) await log.append([record(Buffer.alloc(1024, i))]);
      });
      // Before: at least one thread-pool write per append (100+). Now only what timers may start.
      expect(small).toBeLessThan(10);
      const large = await fsRequests(async () => {
        await log.append(Array.from({ length: 100 }, (_, i) => record(Buffer.alloc(1024, i))));
      });
      expect(large).toBeGreaterThanOrEqual(1);
      await log.close();
      const reopened = await openFileLog({ dir, segmentBytes: 1 << 24, fsync: 'never' });
      const all = await readAll(reopened);
      expect(all).toHaveLength(201);
      for (let i = 0; i < 100; i++) expect(Buffer.from(all[1 + i]!.value).equals(Buffer.alloc(1024, i))).toBe(true);
      for (let i = 0; i < 100; i++) expect(Buffer.from(all[101 + i]!.value).equals(Buffer.alloc(1024, i))).toBe(true);
      await reopened.close();
    } finally {
      await removeDir(dir);
    }
  });
});
