/**
 * The open-file budget: many partition logs under a budget far below what they would keep open; every
 * write and read still succeeds byte for byte (across evictions, reopens and a restart), the budget
 * holds while nothing is in use, a held file is never closed under its holder, and an evicted file
 * with unsynced writes is fsynced before it is closed.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FdPool, PooledFile, MIN_FD_BUDGET, readNofileLimits } from '../../src/log/fd-pool.js';
import { openFileLog } from '../../src/log/index.js';
import type { PartitionLog } from '../../src/log/index.js';
import { expectRecord, makeTempDir, records, removeDir } from './helpers.js';

const dirs: string[] = [];
const pool = FdPool.shared;
let budgetBefore = 0;

beforeAll(() => {
  budgetBefore = pool.budget;
});
afterAll(async () => {
  pool.setBudget(budgetBefore);
  for (const d of dirs) await removeDir(d);
});
afterEach(() => pool.setBudget(budgetBefore));

async function tempDir(): Promise<string> {
  const d = await makeTempDir();
  dirs.push(d);
  return d;
}

/** Descriptors of this process that point into `dir`. */
async function fdsUnder(dir: string): Promise<number> {
  let n = 0;
  for (const fd of await fsp.readdir('/proc/self/fd')) {
    const target = await fsp.readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) n++;
  }
  return n;
}

describe('FdPool', () => {
  it('reads the limits from /proc/self/limits', () => {
    const l = readNofileLimits();
    expect(l).toBeDefined();
    expect(l!.soft).toBeGreaterThan(0);
    expect(l!.hard).toBeGreaterThanOrEqual(l!.soft);
  });

  it('keeps 60 partition logs under a budget of 16: every record back byte for byte, before and after a restart', async () => {
    const root = await tempDir();
    pool.setBudget(MIN_FD_BUDGET);
    const N = 60;
    const opts = (i: number) => ({ dir: path.join(root, String(i)), segmentBytes: 4096, fsync: 'always' as const });
    let logs: PartitionLog[] = [];
    for (let i = 0; i < N; i++) logs.push(await openFileLog(opts(i)));
    const evictionsBefore = pool.stats().evictions;
    // Three rounds of appends over every log (rolling segments of 4 KiB), concurrently.
    for (let round = 0; round < 3; round++) {
      await Promise.all(logs.map((log, i) => log.append(records(1000 * i + 100 * round, 30))));
    }
    expect(pool.stats().evictions).toBeGreaterThan(evictionsBefore);
    await expect.poll(() => fdsUnder(root), { timeout: 10_000 }).toBeLessThanOrEqual(MIN_FD_BUDGET);
    expect(pool.stats().open).toBeLessThanOrEqual(MIN_FD_BUDGET);
    const check = async (all: PartitionLog[]): Promise<void> => {
      await Promise.all(
        all.map(async (log, i) => {
          const got = await log.read(1, { maxMessages: 1000, maxBytes: 1 << 24 });
          const want = [...records(1000 * i, 30), ...records(1000 * i + 100, 30), ...records(1000 * i + 200, 30)];
          expect(got.length).toBe(want.length);
          got.forEach((r, k) => expectRecord(r, want[k]!, k + 1));
        }),
      );
    };
    await check(logs);
    await Promise.all(logs.map((l) => l.close()));
    expect(await fdsUnder(root)).toBe(0);
    logs = [];
    for (let i = 0; i < N; i++) logs.push(await openFileLog(opts(i)));
    // A cleanly closed log opens from its checkpoint and keeps no file open.
    expect(await fdsUnder(root)).toBe(0);
    await check(logs);
    // 60 concurrent reads hold 60 files at once (over the budget, not failed); released, they are closed.
    await expect.poll(() => fdsUnder(root), { timeout: 10_000 }).toBeLessThanOrEqual(MIN_FD_BUDGET);
    await Promise.all(logs.map((l) => l.close()));
  });

  it('never closes a held file; evicts it once released, fsyncing unsynced writes first', async () => {
    const root = await tempDir();
    pool.setBudget(MIN_FD_BUDGET);
    const file = path.join(root, 'held');
    await fsp.writeFile(file, 'hello');
    const held = new PooledFile(file, 'r+');
    const h = await held.acquire();
    await h!.write(Buffer.from('HELLO'), 0, 5, 0);
    held.noteWrite();
    expect(held.unsynced).toBe(true);
    // Others fill the budget many times over while it is held.
    const others: PooledFile[] = [];
    for (let i = 0; i < 4 * MIN_FD_BUDGET; i++) {
      const f = path.join(root, `f${i}`);
      await fsp.writeFile(f, String(i));
      const p = new PooledFile(f, 'r');
      others.push(p);
      const oh = await p.acquire();
      const buf = Buffer.alloc(8);
      const { bytesRead } = await oh!.read(buf, 0, 8, 0);
      expect(buf.subarray(0, bytesRead).toString()).toBe(String(i));
      p.release();
    }
    // Still open and usable by its holder.
    const buf = Buffer.alloc(5);
    await h!.read(buf, 0, 5, 0);
    expect(buf.toString()).toBe('HELLO');
    held.release();
    // Released: the next opens evict it (least recently used), fsyncing it first.
    for (const p of others.slice(0, MIN_FD_BUDGET)) {
      await p.acquire();
      p.release();
    }
    await expect.poll(() => held.unsynced, { timeout: 10_000 }).toBe(false);
    // And it reopens on demand.
    const again = await held.acquire();
    const b2 = Buffer.alloc(5);
    await again!.read(b2, 0, 5, 0);
    expect(b2.toString()).toBe('HELLO');
    held.release();
    await Promise.all([held, ...others].map((p) => p.dispose()));
    expect(await fdsUnder(root)).toBe(0);
  });
});
