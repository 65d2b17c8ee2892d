/** File-log specifics: on-disk layout, recovery (torn tails, damage, indexes), durability policies. */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeRecords, encodedSize, openFileLog, segmentFileName } from '../../src/log/index.js';
import { FRAME_SHELF } from '../../src/log/file-log.js';
import type { CorruptRange, LogOptions, PartitionLog, RecordInput, TornTail } from '../../src/log/index.js';
import { T0, expectRecord, makeTempDir, readAll, record, records, removeDir, segmentFiles } from './helpers.js';

type Snapshot = Map<string, Buffer>;

async function snapshot(dir: string): Promise<Snapshot> {
  const snap: Snapshot = new Map();
  for (const name of await fsp.readdir(dir)) snap.set(name, await fsp.readFile(path.join(dir, name)));
  return snap;
}

async function restore(dir: string, snap: Snapshot): Promise<void> {
  for (const name of await fsp.readdir(dir)) if (!snap.has(name)) await fsp.rm(path.join(dir, name));
  for (const [name, data] of snap) await fsp.writeFile(path.join(dir, name), data);
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await makeTempDir();
  try {
    return await fn(dir);
  } finally {
    await removeDir(dir);
  }
}

function opts(dir: string, more: Partial<LogOptions> = {}): LogOptions & { dir: string } {
  return { dir, segmentBytes: 1 << 20, fsync: 'never', ...more };
}

/** Writes `inputs` in batches of `batch` and closes; returns the inputs. */
async function populate(dir: string, inputs: RecordInput[], more: Partial<LogOptions> = {}, batch = 5): Promise<void> {
  const log = await openFileLog(opts(dir, more));
  for (let i = 0; i < inputs.length; i += batch) await log.append(inputs.slice(i, i + batch));
  await log.close();
}

/**
 * A crash image: every record of `inputs` written, but the checkpoint covers only the first `covered` —
 * the state a killed process leaves when it dies after writing records and before the checkpoint that
 * follows their fsync (or a machine crash, when the checkpoint's fsync lagged).
 */
async function populateCrashImage(
  dir: string,
  inputs: RecordInput[],
  covered: number,
  more: Partial<LogOptions> = {},
  batch = 5,
): Promise<void> {
  const log = await openFileLog(opts(dir, more));
  for (let i = 0; i < covered; i += batch) await log.append(inputs.slice(i, Math.min(i + batch, covered)));
  await log.flush();
  const checkpoint = await fsp.readFile(path.join(dir, 'checkpoint'));
  for (let i = covered; i < inputs.length; i += batch) await log.append(inputs.slice(i, i + batch));
  const image = await snapshot(dir);
  await log.close();
  image.set('checkpoint', checkpoint);
  await restore(dir, image);
}

async function expectIntact(log: PartitionLog, inputs: RecordInput[], missing: ReadonlySet<number> = new Set()): Promise<void> {
  const got = await readAll(log, 7);
  const want = inputs.map((r, i) => ({ r, offset: i + 1 })).filter(({ offset }) => !missing.has(offset));
  expect(got.map((r) => r.offset)).toEqual(want.map((w) => w.offset));
  want.forEach((w, i) => expectRecord(got[i], w.r, w.offset));
}

describe('file log: frame buffers', () => {
  it('large appends reuse their frame buffers once written: in flight together or one after another, across segments, every record reads back byte for byte', () =>
    withDir(async (dir) => {
      // Batches of 100 records of ~1 KiB (~100 KiB of frames, shelved); 2 MiB segments roll a few times.
      const log = await openFileLog(opts(dir, { segmentBytes: 2 << 20, fsync: 'always' }));
      const inputs: RecordInput[] = [];
      const reusedBefore = FRAME_SHELF.reused;
      try {
        for (let round = 0; round < 4; round++) {
          // Eight appends in flight at once: none may take a buffer another has not written yet.
          const batches = Array.from({ length: 8 }, (_, k) => records(inputs.length + k * 100, 100, { size: 1000 + ((round + k) % 50) }));
          await Promise.all(batches.map((b) => log.append(b)));
          for (const b of batches) inputs.push(...b);
          // Then one after another.
          for (let k = 0; k < 5; k++) {
            const b = records(inputs.length, 100, { size: 1024 });
            await log.append(b);
            inputs.push(...b);
          }
        }
        expect(FRAME_SHELF.reused - reusedBefore).toBeGreaterThan(20);
        await expectIntact(log, inputs);
      } finally {
        await log.close();
      }
      // And from the files, after a reopen.
      const again = await openFileLog(opts(dir, { segmentBytes: 2 << 20 }));
      try {
        expect((await segmentFiles(dir)).length).toBeGreaterThan(2);
        await expectIntact(again, inputs);
      } finally {
        await again.close();
      }
    }));
});

describe('file log: layout', () => {
  it('names segments by their first offset and keeps an index beside each sealed one', () =>
    withDir(async (dir) => {
      const inputs = records(0, 80);
      await populate(dir, inputs, { segmentBytes: 1024 });
      const logs = await segmentFiles(dir);
      expect(logs.length).toBeGreaterThan(3);
      expect(logs[0]).toBe(segmentFileName(1));
      expect(segmentFileName(1)).toBe('00000000000000000001.log');
      const log = await openFileLog(opts(dir, { segmentBytes: 1024 }));
      try {
        for (const name of logs) {
          const base = Number(name.slice(0, 20));
          const first = await log.read(base, { maxMessages: 1, maxBytes: 1 });
          expect(first[0]?.offset).toBe(base);
        }
        expect((await segmentFiles(dir, '.idx')).map((n) => n.replace('.idx', '.log'))).toEqual(logs.slice(0, -1));
        await expectIntact(log, inputs);
      } finally {
        await log.close();
      }
    }));

  it('indexes about every 4 KiB and seeks with it (reads far into a large segment)', () =>
    withDir(async (dir) => {
      const inputs = records(0, 3000, { size: 200 });
      await populate(dir, inputs, { segmentBytes: 256 * 1024 }, 100);
      const idx = (await segmentFiles(dir, '.idx'))[0] as string;
      const idxSize = (await fsp.stat(path.join(dir, idx))).size;
      const logSize = (await fsp.stat(path.join(dir, idx.replace('.idx', '.log')))).size;
      const entries = (idxSize - 64) / 20;
      expect(entries).toBeGreaterThan(logSize / 4096 - 2);
      expect(entries).toBeLessThan(logSize / 4096 + 2);
      const log = await openFileLog(opts(dir, { segmentBytes: 256 * 1024 }));
      try {
        for (const from of [1, 2, 999, 1234, 2999, 3000]) {
          const got = await log.read(from, { maxMessages: 3, maxBytes: 1e9 });
          expect(got[0]?.offset).toBe(from);
          expectRecord(got[0], inputs[from - 1] as RecordInput, from);
        }
      } finally {
        await log.close();
      }
    }));

  it('removes leftover temporary files and orphan indexes on open', () =>
    withDir(async (dir) => {
      await populate(dir, records(0, 10));
      await fsp.writeFile(path.join(dir, 'meta.tmp-123'), 'x');
      await fsp.writeFile(path.join(dir, `${segmentFileName(1).slice(0, -4)}.idx.tmp`), 'x');
      await fsp.writeFile(path.join(dir, `${segmentFileName(999).slice(0, -4)}.idx`), 'orphan');
      const log = await openFileLog(opts(dir));
      await log.close();
      expect((await fsp.readdir(dir)).sort()).toEqual([segmentFileName(1), 'checkpoint']);
    }));
});

describe('file log: recovery', () => {
  it(
    'truncates a torn last record at every byte position and continues at its offset',
    () =>
      withDir(async (dir) => {
        const inputs = records(0, 30, { size: 40 });
        // Three kinds of last record: plain, with key and headers, and a larger one.
        inputs.push(record(30, { size: 20, key: false, headers: false }));
        inputs.push(record(31, { size: 60, key: true, headers: true }));
        inputs.push(record(32, { size: 300, key: true, headers: false }));
        for (let lastCount = 31; lastCount <= 33; lastCount++) {
          await fsp.rm(dir, { recursive: true, force: true });
          const kept = inputs.slice(0, lastCount);
          // Killed after the last record was written, before a checkpoint covered it.
          await populateCrashImage(dir, kept, lastCount - 1, { segmentBytes: 1024 }, 4);
          const snap = await snapshot(dir);
          const active = (await segmentFiles(dir)).at(-1) as string;
          const full = snap.get(active) as Buffer;
          const lastSize = encodedSize(kept.at(-1) as RecordInput);
          for (let cut = full.length - lastSize; cut < full.length; cut++) {
            await restore(dir, snap);
            await fsp.truncate(path.join(dir, active), cut);
            const torn: TornTail[] = [];
            const log = await openFileLog(opts(dir, { segmentBytes: 1024, onTornTail: (t) => torn.push(t) }));
            try {
              expect(log.corruptRanges).toEqual([]);
              const tornBytes = cut - (full.length - lastSize);
              expect(torn).toEqual(tornBytes > 0 ? [{ segment: active, bytes: tornBytes, atOffset: lastCount }] : []);
              expect(log.nextOffset).toBe(lastCount);
              expect(log.count).toBe(lastCount - 1);
              const extra = record(500, { size: 10 });
              expect(await log.append([extra])).toBe(lastCount);
              const tail = await log.read(lastCount - 2, { maxMessages: 10, maxBytes: 1e9 });
              expect(tail.map((r) => r.offset)).toEqual([lastCount - 2, lastCount - 1, lastCount]);
              expectRecord(tail[1], kept[lastCount - 2] as RecordInput, lastCount - 1);
              expectRecord(tail[2], extra, lastCount);
            } finally {
              await log.close();
            }
          }
        }
        // Once, check the whole log after a torn tail.
        const log = await openFileLog(opts(dir, { segmentBytes: 1024 }));
        try {
          await expectIntact(
            log,
            inputs
              .slice(0, 32)
              .concat([record(500, { size: 10 })])
              .slice(0, 33),
          );
        } finally {
          await log.close();
        }
      }),
    // ~450 opens of a torn log: 34 s on a quiet machine, more than the default 60 s beside a CPU hog.
    180_000,
  );

  it('keeps every whole record of a torn multi-record write', () =>
    withDir(async (dir) => {
      const inputs = records(0, 20, { size: 30 });
      // The second write (10 frames in one) was not covered by a checkpoint when the process died.
      await populateCrashImage(dir, inputs, 10, {}, 10);
      const image = await snapshot(dir);
      const file = path.join(dir, segmentFileName(1));
      const full = image.get(segmentFileName(1)) as Buffer;
      const ends: number[] = [];
      let p = 0;
      for (const r of inputs) ends.push((p += encodedSize(r)));
      for (let cut = ends[9] as number; cut <= full.length; cut += 7) {
        await restore(dir, image);
        await fsp.writeFile(file, full.subarray(0, cut));
        const whole = ends.filter((e) => e <= cut).length;
        const log = await openFileLog(opts(dir));
        try {
          expect(log.nextOffset).toBe(whole + 1);
          expect(log.corruptRanges).toEqual([]);
          await expectIntact(log, inputs.slice(0, whole));
        } finally {
          await log.close();
        }
      }
    }));

  it('truncates a last record whose crc is bad and that nothing valid follows (beyond the checkpoint)', () =>
    withDir(async (dir) => {
      const inputs = records(0, 10);
      await populateCrashImage(dir, inputs, 9, {}, 9);
      const file = path.join(dir, segmentFileName(1));
      const buf = await fsp.readFile(file);
      const at = buf.length - 3;
      buf[at] = (buf[at] as number) ^ 0x55;
      await fsp.writeFile(file, buf);
      const log = await openFileLog(opts(dir));
      try {
        expect(log.corruptRanges).toEqual([]);
        expect(log.nextOffset).toBe(10);
        await expectIntact(log, inputs.slice(0, 9));
        expect((await fsp.stat(file)).size).toBe(buf.length - encodedSize(inputs[9] as RecordInput));
      } finally {
        await log.close();
      }
    }));

  it('reports a damaged middle record (any byte flipped), skips it and reads every other record intact', () =>
    withDir(async (dir) => {
      const inputs = records(0, 20);
      await populate(dir, inputs);
      const file = path.join(dir, segmentFileName(1));
      const image = await snapshot(dir);
      const pristine = image.get(segmentFileName(1)) as Buffer;
      const k = 10;
      let start = 0;
      for (let i = 0; i < k - 1; i++) start += encodedSize(inputs[i] as RecordInput);
      const size = encodedSize(inputs[k - 1] as RecordInput);
      for (let b = start; b < start + size; b++) {
        await restore(dir, image);
        const buf = Buffer.from(pristine);
        buf[b] = (buf[b] as number) ^ 0xff;
        await fsp.writeFile(file, buf);
        const found: CorruptRange[] = [];
        const log = await openFileLog(opts(dir, { onDamage: (r) => found.push(r) }));
        try {
          // The checkpoint vouches for the segment, so open does not scan it: the crc check on read finds it.
          expect(log.corruptRanges).toEqual([]);
          expect(log.nextOffset).toBe(21);
          await expectIntact(log, inputs, new Set([k]));
          expect(found).toHaveLength(1);
          expect(log.corruptRanges).toEqual(found);
          expect(log.corruptRanges[0]).toMatchObject({ segment: segmentFileName(1), fromOffset: k, toOffset: k, messages: 1 });
          expect(log.count).toBe(19);
          expect((await log.read(k, { maxMessages: 1, maxBytes: 1 }))[0]?.offset).toBe(k + 1);
          expect(await log.append(records(20, 1))).toBe(21);
        } finally {
          await log.close();
        }
        // Known from now on: a second open counts the gap without reading, and does not report it again.
        found.length = 0;
        const again = await openFileLog(opts(dir, { onDamage: (r) => found.push(r) }));
        try {
          expect(again.corruptRanges).toHaveLength(1);
          expect(again.count).toBe(20);
          await expectIntact(again, [...inputs, records(20, 1)[0] as RecordInput], new Set([k]));
          expect(found).toEqual([]);
        } finally {
          await again.close();
        }
      }
    }));

  it('reports damage in a sealed segment found while reading, and at the next open', () =>
    withDir(async (dir) => {
      const inputs = records(0, 60);
      await populate(dir, inputs, { segmentBytes: 1024 });
      const first = path.join(dir, segmentFileName(1));
      const buf = await fsp.readFile(first);
      const at = encodedSize(inputs[0] as RecordInput) + encodedSize(inputs[1] as RecordInput) + 30; // inside record 3
      buf[at] = (buf[at] as number) ^ 0x01;
      await fsp.writeFile(first, buf);
      let log = await openFileLog(opts(dir, { segmentBytes: 1024 }));
      try {
        // The sealed segment's index is trusted on open; the crc check on read finds the damage.
        expect(log.corruptRanges).toEqual([]);
        await expectIntact(log, inputs, new Set([3]));
        expect(log.corruptRanges).toHaveLength(1);
        expect(log.corruptRanges[0]).toMatchObject({ segment: segmentFileName(1), fromOffset: 3, toOffset: 3 });
        expect(log.count).toBe(59);
        await expectIntact(log, inputs, new Set([3]));
        expect(log.corruptRanges).toHaveLength(1);
      } finally {
        await log.close();
      }
      log = await openFileLog(opts(dir, { segmentBytes: 1024 }));
      try {
        expect(log.corruptRanges).toHaveLength(1);
        expect(log.corruptRanges[0]).toMatchObject({ segment: segmentFileName(1), fromOffset: 3, toOffset: 3 });
        expect(log.count).toBe(59);
        await expectIntact(log, inputs, new Set([3]));
      } finally {
        await log.close();
      }
    }));

  it('reports the damaged tail of a sealed segment and keeps the rest', () =>
    withDir(async (dir) => {
      const inputs = records(0, 60);
      await populate(dir, inputs, { segmentBytes: 1024 });
      const [s1, s2] = await segmentFiles(dir);
      const nextBase = Number((s2 as string).slice(0, 20));
      const file = path.join(dir, s1 as string);
      const size = (await fsp.stat(file)).size;
      await fsp.truncate(file, size - 5);
      const log = await openFileLog(opts(dir, { segmentBytes: 1024 }));
      try {
        expect(log.corruptRanges).toHaveLength(1);
        expect(log.corruptRanges[0]).toMatchObject({ segment: s1, fromOffset: nextBase - 1, toOffset: nextBase - 1 });
        expect(log.count).toBe(59);
        await expectIntact(log, inputs, new Set([nextBase - 1]));
        expect(await log.append(records(60, 1))).toBe(61);
      } finally {
        await log.close();
      }
    }));

  it('reports records whose offsets do not increase and skips them', () =>
    withDir(async (dir) => {
      const a = records(0, 5);
      const dup = records(100, 2);
      const b = records(5, 3);
      const file = Buffer.concat([encodeRecords(a, 1), encodeRecords(dup, 3), encodeRecords(b, 6)]);
      await fsp.writeFile(path.join(dir, segmentFileName(1)), file);
      const log = await openFileLog(opts(dir));
      try {
        expect(log.corruptRanges.map((c) => [c.fromOffset, c.toOffset])).toEqual([
          [3, 3],
          [4, 4],
        ]);
        expect(log.corruptRanges[0]?.detail).toMatch(/not above/);
        expect(log.nextOffset).toBe(9);
        expect(log.count).toBe(8);
        await expectIntact(log, [...a, ...b]);
      } finally {
        await log.close();
      }
    }));

  it('rebuilds a missing, garbage, truncated, stale or bit-flipped index', () =>
    withDir(async (dir) => {
      const inputs = records(0, 400, { size: 100 });
      await populate(dir, inputs, { segmentBytes: 8192 }, 10);
      const idxs = await segmentFiles(dir, '.idx');
      expect(idxs.length).toBeGreaterThan(3);
      const original = await snapshot(dir);
      const target = path.join(dir, idxs[1] as string);
      const damage: Array<[string, () => Promise<void>]> = [
        ['missing', () => fsp.rm(target)],
        ['garbage', () => fsp.writeFile(target, Buffer.alloc(500, 0xab))],
        ['truncated', async () => fsp.truncate(target, (await fsp.stat(target)).size - 20)],
        ['stale', () => fsp.copyFile(path.join(dir, idxs[2] as string), target)],
        [
          'bit flip',
          async () => {
            const b = await fsp.readFile(target);
            b[70] = (b[70] as number) ^ 4;
            await fsp.writeFile(target, b);
          },
        ],
      ];
      for (const [, hurt] of damage) {
        await restore(dir, original);
        await hurt();
        const log = await openFileLog(opts(dir, { segmentBytes: 8192 }));
        try {
          expect(log.corruptRanges).toEqual([]);
          await expectIntact(log, inputs);
          expect(await log.offsetForTimestamp(T0 + 123)).toBe(124);
          // Rewritten at open when its header does not match, else when a read first loads its entries.
          expect(await fsp.readFile(target)).toEqual(original.get(idxs[1] as string));
        } finally {
          await log.close();
        }
      }
    }));

  it('keeps everything across reopen: records, nextOffset, start, bytes', () =>
    withDir(async (dir) => {
      const inputs = records(0, 150);
      let log = await openFileLog(opts(dir, { segmentBytes: 2000 }));
      for (let i = 0; i < 150; i += 15) await log.append(inputs.slice(i, i + 15));
      await log.truncateBefore(7);
      const bytes = log.bytes;
      await log.close();
      for (let round = 0; round < 2; round++) {
        log = await openFileLog(opts(dir, { segmentBytes: 2000 }));
        try {
          expect(log.nextOffset).toBe(151);
          expect(log.firstOffset).toBe(7);
          expect(log.count).toBe(144);
          expect(log.bytes).toBe(bytes);
          expect(log.corruptRanges).toEqual([]);
          const got = await readAll(log);
          expect(got[0]?.offset).toBe(7);
          got.forEach((r, i) => expectRecord(r, inputs[6 + i] as RecordInput, 7 + i));
        } finally {
          await log.close();
        }
      }
    }));

  it('deletes the files of truncated and trimmed segments', () =>
    withDir(async (dir) => {
      const log = await openFileLog(opts(dir, { segmentBytes: 1000 }));
      try {
        for (let i = 0; i < 100; i += 4) await log.append(records(i, 4));
        const before = await segmentFiles(dir);
        await log.truncateBefore(50);
        const after = await segmentFiles(dir);
        expect(after.length).toBeLessThan(before.length);
        expect(Number((after[0] as string).slice(0, 20))).toBeLessThanOrEqual(50);
        expect(Number((after[1] as string).slice(0, 20))).toBeGreaterThan(50);
        const sizes = await Promise.all(after.map(async (n) => (await fsp.stat(path.join(dir, n))).size));
        expect(log.bytes).toBe(sizes.reduce((s, n) => s + n, 0));
        await log.trimToBytes(0);
        expect(await segmentFiles(dir)).toEqual([after.at(-1)]);
        await log.truncateBefore(log.nextOffset);
        await log.append(records(100, 1));
        expect(log.nextOffset).toBe(102);
      } finally {
        await log.close();
      }
    }));
});

describe('file log: concurrency and errors', () => {
  it('serves concurrent reads while segments roll, get truncated and trimmed', () =>
    withDir(async (dir) => {
      const inputs = records(0, 2000, { size: 120 });
      const log = await openFileLog(opts(dir, { segmentBytes: 4096 }));
      try {
        const reads: Array<Promise<void>> = [];
        let appended = 0;
        for (let round = 0; round < 100; round++) {
          void log.append(inputs.slice(appended, appended + 20));
          appended += 20;
          for (let k = 0; k < 3; k++) {
            const from = log.firstOffset + ((round * 7 + k * 13) % Math.max(1, appended - log.firstOffset + 1));
            reads.push(
              log.read(from, { maxMessages: 50, maxBytes: 1e9 }).then((got) => {
                for (const r of got) expectRecord(r, inputs[r.offset - 1] as RecordInput, r.offset);
              }),
            );
          }
          if (round % 10 === 9) reads.push(log.truncateBefore(appended - 150));
          if (round % 25 === 24) reads.push(log.trimToBytes(20_000));
        }
        await Promise.all(reads);
        const got = await readAll(log);
        expect(got.at(-1)?.offset).toBe(2000);
        expect(got[0]?.offset).toBe(log.firstOffset);
        got.forEach((r) => expectRecord(r, inputs[r.offset - 1] as RecordInput, r.offset));
      } finally {
        await log.close();
      }
    }));

  it('is not fooled into reporting damage when a caller scribbles on a returned value', () =>
    withDir(async (dir) => {
      const inputs = records(0, 30);
      const log = await openFileLog(opts(dir));
      try {
        await log.append(inputs);
        for (let i = 0; i < 3; i++) {
          const [first] = await log.read(5, { maxMessages: 1, maxBytes: 1 });
          first?.value.fill(0);
        }
        await expectIntact(log, inputs);
        expect(log.corruptRanges).toEqual([]);
        expect(log.count).toBe(30);
      } finally {
        await log.close();
      }
    }));

  it('fails to open with IO_ERROR when the directory cannot be used', () =>
    withDir(async (dir) => {
      const file = path.join(dir, 'not-a-dir');
      await fsp.writeFile(file, 'x');
      await expect(openFileLog(opts(file))).rejects.toMatchObject({ code: 'IO_ERROR' });
      await expect(openFileLog(opts(path.join(file, 'below')))).rejects.toMatchObject({ code: 'IO_ERROR' });
    }));
});

describe('file log: durability', () => {
  it("group-commits concurrent appends under fsync 'always'", () =>
    withDir(async (dir) => {
      let fsyncs = 0;
      const log = await openFileLog(opts(dir, { fsync: 'always', onFsync: () => fsyncs++ }));
      try {
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append([record(i)])));
        expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        expect(fsyncs).toBeGreaterThan(0);
        expect(fsyncs).toBeLessThanOrEqual(10);
        // Sequential appends each wait for their own fsync.
        const before = fsyncs;
        for (let i = 0; i < 5; i++) await log.append([record(50 + i)]);
        expect(fsyncs - before).toBe(5);
        await expectIntact(log, records(0, 55));
      } finally {
        await log.close();
      }
    }));

  it("works under fsync 'never' (no fsync until flush or close)", () =>
    withDir(async (dir) => {
      let fsyncs = 0;
      const log = await openFileLog(opts(dir, { fsync: 'never', onFsync: () => fsyncs++ }));
      await Promise.all(Array.from({ length: 20 }, (_, i) => log.append([record(i)])));
      expect(fsyncs).toBe(0);
      await expectIntact(log, records(0, 20));
      await log.flush();
      expect(fsyncs).toBe(1);
      await log.close();
      const again = await openFileLog(opts(dir));
      try {
        await expectIntact(again, records(0, 20));
      } finally {
        await again.close();
      }
    }));

  it("fsyncs on a timer under 'interval:5' and switches policy live", () =>
    withDir(async (dir) => {
      let fsyncs = 0;
      const log = await openFileLog(opts(dir, { fsync: 'interval:5', onFsync: () => fsyncs++ }));
      try {
        expect(await log.append(records(0, 10))).toBe(1);
        const deadline = Date.now() + 5000;
        while (fsyncs === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        expect(fsyncs).toBeGreaterThan(0);
        log.configure({ fsync: 'never' });
        await new Promise((r) => setTimeout(r, 30));
        const quiet = fsyncs;
        await log.append(records(10, 5));
        await new Promise((r) => setTimeout(r, 30));
        expect(fsyncs).toBe(quiet);
        log.configure({ fsync: 'always' });
        await log.append(records(15, 5));
        expect(fsyncs).toBe(quiet + 1);
        log.configure({ segmentBytes: 600 });
        for (let i = 20; i < 40; i += 5) await log.append(records(i, 5));
        expect((await segmentFiles(dir)).length).toBeGreaterThan(1);
        await expectIntact(log, records(0, 40));
      } finally {
        await log.close();
      }
    }));

  it('close waits for in-flight appends, fsyncs them, and later appends reject STORE_CLOSED', () =>
    withDir(async (dir) => {
      let fsyncs = 0;
      const log = await openFileLog(opts(dir, { fsync: 'never', onFsync: () => fsyncs++ }));
      const pending = [log.append(records(0, 100)), log.append(records(100, 100))];
      const closing = log.close();
      await expect(log.append(records(200, 1))).rejects.toMatchObject({ code: 'STORE_CLOSED' });
      expect(await Promise.all(pending)).toEqual([1, 101]);
      await closing;
      expect(fsyncs).toBe(1);
      const again = await openFileLog(opts(dir));
      try {
        expect(again.nextOffset).toBe(201);
      } finally {
        await again.close();
      }
    }));
});
