/**
 * The recovery checkpoint of the file log: offsets are never reused after acknowledged data was cut,
 * damage after a clean stop is told apart from a torn unacknowledged write, every loss is reported once,
 * and start-up reads only what the checkpoint does not cover.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodedSize, openFileLog, segmentFileName } from '../../src/log/index.js';
import type { CorruptRange, LogOptions, PartitionLog, RecordInput, TornTail } from '../../src/log/index.js';
import { expectRecord, makeTempDir, readAll, record, records, removeDir, segmentFiles } from './helpers.js';

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await makeTempDir();
  try {
    return await fn(dir);
  } finally {
    await removeDir(dir);
  }
}

interface Seen {
  damage: CorruptRange[];
  torn: TornTail[];
  repairs: Array<{ file: string; outcome: string }>;
}

function opener(dir: string, more: Partial<LogOptions> = {}) {
  const seen: Seen = { damage: [], torn: [], repairs: [] };
  const open = () =>
    openFileLog({
      dir,
      segmentBytes: 1 << 20,
      fsync: 'never',
      ...more,
      onDamage: (r) => seen.damage.push(r),
      onTornTail: (t) => seen.torn.push(t),
      onMetadataRepair: (file, _detail, outcome) => seen.repairs.push({ file, outcome }),
    });
  return { seen, open };
}

async function populate(dir: string, inputs: RecordInput[], more: Partial<LogOptions> = {}, batch = 10): Promise<void> {
  const log = await openFileLog({ dir, segmentBytes: 1 << 20, fsync: 'never', ...more });
  for (let i = 0; i < inputs.length; i += batch) await log.append(inputs.slice(i, i + batch));
  await log.close();
}

/** Every record read is what was written at its offset; returns the offsets read. */
async function readIntact(log: PartitionLog, inputs: RecordInput[]): Promise<number[]> {
  const got = await readAll(log, 50);
  for (const r of got) expectRecord(r, inputs[r.offset - 1] as RecordInput, r.offset);
  return got.map((r) => r.offset);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

describe('file log checkpoint: acknowledged data cut after a clean stop', () => {
  for (const cut of [1, 37, 'half' as const, 'all' as const]) {
    it(`cut ${cut === 'half' || cut === 'all' ? `${cut} of` : `${cut} bytes off`} the active segment: the loss is reported and its offsets are never reused`, () =>
      withDir(async (dir) => {
        const inputs = records(0, 200, { size: 100 });
        await populate(dir, inputs);
        const file = path.join(dir, segmentFileName(1));
        const size = (await fsp.stat(file)).size;
        const keep = cut === 'half' ? Math.floor(size / 2) : cut === 'all' ? 0 : size - cut;
        await fsp.truncate(file, keep);
        // Records wholly inside what is kept survive.
        let whole = 0;
        for (let p = 0; whole < inputs.length && p + encodedSize(inputs[whole] as RecordInput) <= keep; whole++)
          p += encodedSize(inputs[whole] as RecordInput);

        const { seen, open } = opener(dir);
        const log = await open();
        try {
          expect(log.nextOffset).toBe(201);
          expect(seen.torn).toEqual([]);
          expect(seen.damage).toHaveLength(1);
          expect(seen.damage[0]).toMatchObject({
            segment: segmentFileName(1),
            fromOffset: whole + 1,
            toOffset: 200,
            messages: 200 - whole,
          });
          expect(log.corruptRanges).toEqual(seen.damage);
          expect(log.count).toBe(whole);
          expect(await readIntact(log, inputs)).toEqual(range(1, whole));
          const extra = record(1000);
          expect(await log.append([extra])).toBe(201);
          const [back] = await log.read(201, { maxMessages: 1, maxBytes: 1 << 20 });
          expectRecord(back, extra, 201);
        } finally {
          await log.close();
        }

        // The next open knows the range: it is counted, not reported again, and the offsets stay taken.
        const again = opener(dir);
        const log2 = await again.open();
        try {
          expect(again.seen.damage).toEqual([]);
          expect(log2.corruptRanges).toHaveLength(1);
          expect(log2.nextOffset).toBe(202);
          expect(log2.count).toBe(whole + 1);
          expect(await log2.append([record(1001)])).toBe(202);
        } finally {
          await log2.close();
        }
      }));
  }

  for (const kind of ['garbage', 'zeros'] as const) {
    it(`${kind} appended after a clean stop is damage (reported, cut), not a torn write; nothing is lost`, () =>
      withDir(async (dir) => {
        const inputs = records(0, 50);
        await populate(dir, inputs);
        const file = path.join(dir, segmentFileName(1));
        const size = (await fsp.stat(file)).size;
        await fsp.appendFile(
          file,
          kind === 'zeros' ? Buffer.alloc(4096) : Buffer.from('this is not a record frame, it is garbage'.repeat(7)),
        );
        const { seen, open } = opener(dir);
        const log = await open();
        try {
          expect(seen.torn).toEqual([]);
          expect(seen.damage).toHaveLength(1);
          expect(seen.damage[0]).toMatchObject({ segment: segmentFileName(1), fromOffset: 51, toOffset: 50, messages: 0 });
          expect((await fsp.stat(file)).size).toBe(size);
          expect(log.nextOffset).toBe(51);
          expect(await readIntact(log, inputs)).toEqual(range(1, 50));
          expect(await log.append([record(51)])).toBe(51);
        } finally {
          await log.close();
        }
      }));
  }

  it('garbage after what the checkpoint covers, after a crash, is a torn write: cut and reported as such, not as damage', () =>
    withDir(async (dir) => {
      const inputs = records(0, 30);
      const log0 = await openFileLog({ dir, segmentBytes: 1 << 20, fsync: 'never' });
      await log0.append(inputs);
      await log0.flush();
      const image = new Map<string, Buffer>();
      for (const name of await fsp.readdir(dir)) image.set(name, await fsp.readFile(path.join(dir, name)));
      await log0.close();
      for (const [name, data] of image) await fsp.writeFile(path.join(dir, name), data);
      const file = path.join(dir, segmentFileName(1));
      await fsp.appendFile(file, Buffer.alloc(300, 0xab));
      const { seen, open } = opener(dir);
      const log = await open();
      try {
        expect(seen.damage).toEqual([]);
        expect(seen.torn).toEqual([{ segment: segmentFileName(1), bytes: 300, atOffset: 31 }]);
        expect(log.nextOffset).toBe(31);
        expect(await readIntact(log, inputs)).toEqual(range(1, 30));
      } finally {
        await log.close();
      }
    }));
});

describe('file log checkpoint: missing segments', () => {
  it('a deleted sealed segment in the middle, the first one, or all of them: reported, and offsets stay taken', () =>
    withDir(async (dir) => {
      const inputs = records(0, 120, { size: 60 });
      await populate(dir, inputs, { segmentBytes: 1024 });
      const segs = await segmentFiles(dir);
      expect(segs.length).toBeGreaterThan(4);
      const image = new Map<string, Buffer>();
      for (const name of await fsp.readdir(dir)) image.set(name, await fsp.readFile(path.join(dir, name)));
      const restore = async () => {
        for (const name of await fsp.readdir(dir)) if (!image.has(name)) await fsp.rm(path.join(dir, name));
        for (const [name, data] of image) await fsp.writeFile(path.join(dir, name), data);
      };
      const baseOf = (name: string) => Number(name.slice(0, 20));
      const cases: Array<{ remove: string[]; lost: [number, number] }> = [
        { remove: [segs[2] as string], lost: [baseOf(segs[2] as string), baseOf(segs[3] as string) - 1] },
        { remove: [segs[0] as string], lost: [1, baseOf(segs[1] as string) - 1] },
        { remove: segs, lost: [1, 120] },
      ];
      for (const c of cases) {
        await restore();
        for (const name of c.remove) {
          await fsp.rm(path.join(dir, name));
          await fsp.rm(path.join(dir, name.replace('.log', '.idx')), { force: true });
        }
        const { seen, open } = opener(dir, { segmentBytes: 1024 });
        const log = await open();
        try {
          expect(
            seen.damage.map((d) => [d.fromOffset, d.toOffset]),
            c.remove.join(),
          ).toEqual([c.lost]);
          expect(log.nextOffset).toBe(121);
          expect(log.firstOffset).toBe(1);
          const read = await readIntact(log, inputs);
          expect(read).toEqual(range(1, 120).filter((o) => o < c.lost[0] || o > c.lost[1]));
          expect(log.count).toBe(read.length);
          expect(await log.append([record(500)])).toBe(121);
        } finally {
          await log.close();
        }
      }
    }));

  it('segments retention deleted are not reported as missing', () =>
    withDir(async (dir) => {
      const inputs = records(0, 120, { size: 60 });
      const log0 = await openFileLog({ dir, segmentBytes: 1024, fsync: 'always' });
      for (let i = 0; i < inputs.length; i += 10) await log0.append(inputs.slice(i, i + 10));
      await log0.truncateBefore(60);
      await log0.trimToBytes(2048);
      const start = log0.firstOffset;
      await log0.close();
      const { seen, open } = opener(dir, { segmentBytes: 1024 });
      const log = await open();
      try {
        expect(seen.damage).toEqual([]);
        expect(log.corruptRanges).toEqual([]);
        expect(log.firstOffset).toBe(start);
        expect(log.nextOffset).toBe(121);
        expect(await readIntact(log, inputs)).toEqual(range(start, 120));
      } finally {
        await log.close();
      }
    }));
});

describe('file log checkpoint: raiseFloor', () => {
  it('moves nextOffset above offsets handed out before, reports the gap once, and keeps it across restarts', () =>
    withDir(async (dir) => {
      const inputs = records(0, 20);
      await populate(dir, inputs);
      const { seen, open } = opener(dir);
      let log = await open();
      try {
        await log.raiseFloor(10, 'not above');
        expect(log.nextOffset).toBe(21);
        await log.raiseFloor(31, 'offsets 21–30 were delivered to a group');
        expect(log.nextOffset).toBe(31);
        expect(seen.damage).toEqual([
          expect.objectContaining({ fromOffset: 21, toOffset: 30, messages: 10, detail: 'offsets 21–30 were delivered to a group' }),
        ]);
        expect(log.count).toBe(20);
        expect(await log.append([record(30)])).toBe(31);
        const tail = await log.read(19, { maxMessages: 10, maxBytes: 1 << 20 });
        expect(tail.map((r) => r.offset)).toEqual([19, 20, 31]);
      } finally {
        await log.close();
      }
      const again = opener(dir);
      log = await again.open();
      try {
        expect(again.seen.damage).toEqual([]);
        expect(log.corruptRanges.map((c) => [c.fromOffset, c.toOffset])).toEqual([[21, 30]]);
        expect(log.nextOffset).toBe(32);
        expect(log.count).toBe(21);
      } finally {
        await log.close();
      }
    }));
});

describe('file log checkpoint: metadata files', () => {
  it('a damaged checkpoint (both slots) is reported and the log still opens whole; one damaged slot falls back to the other', () =>
    withDir(async (dir) => {
      const inputs = records(0, 40);
      await populate(dir, inputs);
      const file = path.join(dir, 'checkpoint');
      const pristine = await fsp.readFile(file);
      // The newer slot torn: the older one is used, silently (it is what slots are for).
      const oneBad = Buffer.from(pristine);
      const newer = pristine.readDoubleLE(8) > pristine.readDoubleLE(136) ? 0 : 128;
      oneBad.fill(0x55, newer + 20, newer + 60);
      await fsp.writeFile(file, oneBad);
      let o = opener(dir);
      let log = await o.open();
      try {
        expect(o.seen.repairs).toEqual([]);
        expect(o.seen.damage).toEqual([]);
        expect(log.nextOffset).toBe(41);
        expect(await readIntact(log, inputs)).toEqual(range(1, 40));
      } finally {
        await log.close();
      }
      await fsp.writeFile(file, Buffer.alloc(pristine.length, 0x77));
      o = opener(dir);
      log = await o.open();
      try {
        expect(o.seen.repairs).toEqual([{ file: 'checkpoint', outcome: 'rebuilt' }]);
        expect(log.nextOffset).toBe(41);
        expect(await readIntact(log, inputs)).toEqual(range(1, 40));
      } finally {
        await log.close();
      }
    }));

  it('a damaged meta file falls back to its previous copy (start and known damage kept)', () =>
    withDir(async (dir) => {
      const inputs = records(0, 40);
      const log0 = await openFileLog({ dir, segmentBytes: 1 << 20, fsync: 'never' });
      await log0.append(inputs);
      await log0.raiseFloor(51, 'test gap');
      await log0.truncateBefore(5);
      await log0.close();
      for (const bad of ['', '{"version":2,"start":9', '{"version":2,"start":900,"damage":[],"crc":1}']) {
        await fsp.writeFile(path.join(dir, 'meta'), bad);
        const o = opener(dir);
        const log = await o.open();
        try {
          expect(o.seen.repairs).toEqual([{ file: 'meta', outcome: 'previous-copy' }]);
          expect(log.firstOffset).toBe(5);
          expect(log.corruptRanges.map((c) => [c.fromOffset, c.toOffset])).toEqual([[41, 50]]);
          expect(o.seen.damage).toEqual([]);
          expect(log.nextOffset).toBe(51);
        } finally {
          await log.close();
        }
      }
    }));
});

describe('file log checkpoint: start-up reads only what the checkpoint does not cover', () => {
  it('after a clean stop it reads no segment bytes; after a crash, only the uncovered tail', () =>
    withDir(async (dir) => {
      const value = Buffer.alloc(1000, 7);
      const batch = Array.from({ length: 100 }, (_, i) => ({ timestamp: 1_700_000_000_000 + i, value }));
      const log0 = await openFileLog({ dir, segmentBytes: 2 << 20, fsync: 'never' });
      for (let i = 0; i < 60; i++) await log0.append(batch); // ~6 MB: 3 segments, the active one ~2 MB
      await log0.close();
      const stored = (await Promise.all((await segmentFiles(dir)).map((n) => fsp.stat(path.join(dir, n))))).reduce((n, s) => n + s.size, 0);
      expect(stored).toBeGreaterThan(6_000_000);

      let log = (await openFileLog({ dir, segmentBytes: 2 << 20, fsync: 'never' })) as PartitionLog & { openBytesRead: number };
      // Index files (20 bytes per 4 KiB of log) and the checkpoint's entries: well under 1 % of the data.
      expect(log.openBytesRead).toBeGreaterThan(0);
      expect(log.openBytesRead).toBeLessThan(stored / 100);
      // A crash image: 40 more records written after the last checkpoint.
      await log.flush();
      const checkpoint = await fsp.readFile(path.join(dir, 'checkpoint'));
      await log.append(batch.slice(0, 40));
      const image = new Map<string, Buffer>();
      for (const name of await fsp.readdir(dir)) image.set(name, await fsp.readFile(path.join(dir, name)));
      await log.close();
      image.set('checkpoint', checkpoint);
      for (const [name, data] of image) await fsp.writeFile(path.join(dir, name), data);
      const tail = 40 * encodedSize(batch[0] as RecordInput);

      log = (await openFileLog({ dir, segmentBytes: 2 << 20, fsync: 'never' })) as PartitionLog & { openBytesRead: number };
      try {
        expect(log.nextOffset).toBe(6041);
        expect(log.openBytesRead).toBeGreaterThanOrEqual(tail);
        expect(log.openBytesRead).toBeLessThan(tail + stored / 100);
        const [last] = await log.read(6040, { maxMessages: 1, maxBytes: 1 << 20 });
        expect(last?.offset).toBe(6040);
      } finally {
        await log.close();
      }
    }));

  it('remembers which segments hold msgIds, so a dedup rebuild reads only those', () =>
    withDir(async (dir) => {
      const plain = records(0, 30, { size: 60 });
      const withIds = records(30, 10, { size: 60 }).map((r, i) => ({ ...r, msgId: `id-${i}` }));
      const log0 = await openFileLog({ dir, segmentBytes: 1024, fsync: 'never' });
      for (let i = 0; i < plain.length; i += 5) await log0.append(plain.slice(i, i + 5));
      await log0.append(withIds);
      for (let i = 0; i < plain.length; i += 5) await log0.append(plain.slice(i, i + 5));
      const before = log0.msgIdRanges(1);
      await log0.close();
      expect(before).toHaveLength(1);
      const [span] = before;
      expect(span!.from).toBeGreaterThan(1);
      expect(span!.from).toBeLessThanOrEqual(31);
      expect(span!.to).toBeGreaterThanOrEqual(40);
      expect(span!.to).toBeLessThan(70);
      const log = await openFileLog({ dir, segmentBytes: 1024, fsync: 'never' });
      try {
        expect(log.msgIdRanges(1)).toEqual(before);
      } finally {
        await log.close();
      }
    }));
});
