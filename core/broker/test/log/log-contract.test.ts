/** The PartitionLog contract, run against the file log and the memory log alike. */
import { describe, expect, it } from 'vitest';
import { encodedSize } from '../../src/log/index.js';
import type { LogRecord, RecordInput } from '../../src/log/index.js';
import { T0, expectRecord, fileKind, memoryKind, readAll, record, records, withLog } from './helpers.js';

for (const kind of [fileKind, memoryKind]) {
  describe(`${kind.name} log: contract`, () => {
    it('round-trips records byte for byte: keys, msgIds, unicode headers, empty and 1 MiB values', () =>
      withLog(kind, {}, async (h) => {
        const big = Buffer.alloc(1024 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
        const inputs: RecordInput[] = [
          { timestamp: T0, value: Buffer.from('hello') },
          {
            timestamp: T0 + 1,
            key: 'clé-🔑',
            msgId: 'id-1',
            headers: { 'x-emoji': '🚉 station', ünïcödé: '日本語', empty: '' },
            value: new Uint8Array(0),
          },
          { timestamp: T0 + 2, key: '', headers: {}, value: big },
          {
            timestamp: T0 + 3,
            headers: { __proto__: 'not a prototype', constructor: 'c' } as unknown as Record<string, string>,
            value: Buffer.from([0, 255, 0]),
          },
          { timestamp: T0 + 4, msgId: 'only-msg-id', value: new Uint8Array([1, 2, 3]).subarray(1) },
        ];
        // A header named __proto__ must stay a plain own property.
        const protoHeaders: Record<string, string> = {};
        Object.defineProperty(protoHeaders, '__proto__', { value: 'own', enumerable: true, writable: true, configurable: true });
        inputs.push({ timestamp: T0 + 5, headers: protoHeaders, value: Buffer.from('p') });
        expect(await h.log.append(inputs)).toBe(1);
        const check = async (): Promise<void> => {
          const got = await readAll(h.log, 2);
          expect(got).toHaveLength(inputs.length);
          inputs.forEach((inp, i) => expectRecord(got[i], inp, i + 1));
          expect(Object.getPrototypeOf(got[5]?.headers)).toBe(Object.prototype);
          expect(Object.keys(got[5]?.headers ?? {})).toEqual(['__proto__']);
        };
        await check();
        if (kind.persistent) {
          await h.reopen();
          await check();
        }
      }));

    it('assigns offsets from 1, contiguous across appends, and resolves with the first one', () =>
      withLog(kind, {}, async ({ log }) => {
        expect(log.firstOffset).toBe(1);
        expect(log.nextOffset).toBe(1);
        expect(log.count).toBe(0);
        expect(await log.append([])).toBe(1);
        expect(await log.append(records(0, 3))).toBe(1);
        expect(await log.append(records(3, 1))).toBe(4);
        const pending = [log.append(records(4, 2)), log.append(records(6, 5))];
        expect(log.nextOffset).toBe(12);
        expect(await Promise.all(pending)).toEqual([5, 7]);
        expect(log.count).toBe(11);
        const got = await readAll(log);
        expect(got.map((r) => r.offset)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
        records(0, 11).forEach((inp, i) => expectRecord(got[i], inp, i + 1));
        const bytes = records(0, 11).reduce((s, r) => s + encodedSize(r), 0);
        expect(log.bytes).toBe(bytes);
        expect(got.reduce((s, r) => s + r.size, 0)).toBe(bytes);
      }));

    it('honours read limits and always returns at least one record', () =>
      withLog(kind, {}, async ({ log }) => {
        const inputs = records(0, 50, { size: 100 });
        await log.append(inputs);
        const size = encodedSize(inputs[0] as RecordInput);
        expect((await log.read(1, { maxMessages: 7, maxBytes: 1e9 })).map((r) => r.offset)).toEqual([1, 2, 3, 4, 5, 6, 7]);
        expect(await log.read(10, { maxMessages: 1, maxBytes: 1e9 })).toHaveLength(1);
        const byBytes = await log.read(5, { maxMessages: 100, maxBytes: 1000 });
        expect(byBytes.length).toBeGreaterThan(0);
        expect(byBytes.reduce((s, r) => s + r.size, 0)).toBeLessThanOrEqual(1000);
        expect(byBytes.reduce((s, r) => s + r.size, 0) + size + 50).toBeGreaterThan(1000);
        expect((await log.read(20, { maxMessages: 100, maxBytes: 1 }))[0]?.offset).toBe(20);
        expect((await log.read(50, { maxMessages: 0, maxBytes: 0 })).map((r) => r.offset)).toEqual([50]);
        expect(await log.read(51, { maxMessages: 10, maxBytes: 1e9 })).toEqual([]);
        expect(await log.read(1000, { maxMessages: 10, maxBytes: 1e9 })).toEqual([]);
        expect((await log.read(-5, { maxMessages: 1, maxBytes: 1e9 }))[0]?.offset).toBe(1);
        // A single record larger than maxBytes and larger than any read chunk still comes back whole.
        const big = { timestamp: T0, value: Buffer.alloc(300 * 1024, 7) };
        await log.append([big]);
        const one = await log.read(51, { maxMessages: 10, maxBytes: 10 });
        expect(one).toHaveLength(1);
        expectRecord(one[0], big, 51);
      }));

    it('rolls segments and reads across their boundaries', () =>
      withLog(kind, { segmentBytes: 2048 }, async (h) => {
        const { log } = h;
        const inputs: RecordInput[] = [];
        let next = 0;
        for (const batch of [1, 5, 17, 3, 40, 1, 1, 60, 2]) {
          const b = records(next, batch);
          next += batch;
          inputs.push(...b);
          await log.append(b);
        }
        const check = async (): Promise<void> => {
          const log = h.log;
          for (const page of [1, 3, 7, 200]) {
            const got = await readAll(log, page);
            expect(got).toHaveLength(inputs.length);
            inputs.forEach((inp, i) => expectRecord(got[i], inp, i + 1));
          }
          for (let from = 1; from <= inputs.length; from += 11) {
            const got = await log.read(from, { maxMessages: 25, maxBytes: 1e9 });
            expect(got.map((r) => r.offset)).toEqual(Array.from({ length: Math.min(25, inputs.length - from + 1) }, (_, i) => from + i));
          }
          expect(log.bytes).toBe(inputs.reduce((s, r) => s + encodedSize(r), 0));
        };
        await check();
        if (kind.persistent) {
          await h.reopen({ segmentBytes: 2048 });
          await check();
        }
      }));

    it('truncateBefore moves the start monotonically, drops whole segments and keeps offsets', () =>
      withLog(kind, { segmentBytes: 1024 }, async (h) => {
        const { log } = h;
        const inputs = records(0, 100);
        for (let i = 0; i < 100; i += 10) await log.append(inputs.slice(i, i + 10));
        const bytesBefore = log.bytes;
        await log.truncateBefore(40);
        expect(log.firstOffset).toBe(40);
        expect(log.count).toBe(61);
        expect(log.bytes).toBeLessThan(bytesBefore);
        expect((await log.read(1, { maxMessages: 1, maxBytes: 1e9 }))[0]?.offset).toBe(40);
        await log.truncateBefore(10);
        expect(log.firstOffset).toBe(40);
        const got = await readAll(log);
        expect(got.map((r) => r.offset)).toEqual(Array.from({ length: 61 }, (_, i) => 40 + i));
        got.forEach((r, i) => expectRecord(r, inputs[39 + i] as RecordInput, 40 + i));
        const l = await h.reopen({ segmentBytes: 1024 });
        expect(l.firstOffset).toBe(40);
        expect(l.count).toBe(61);
        await l.truncateBefore(1_000_000);
        expect(l.firstOffset).toBe(101);
        expect(l.nextOffset).toBe(101);
        expect(l.count).toBe(0);
        expect(await l.read(1, { maxMessages: 10, maxBytes: 1e9 })).toEqual([]);
        expect(await l.append(records(100, 2))).toBe(101);
        expect((await readAll(l)).map((r) => r.offset)).toEqual([101, 102]);
      }));

    it('keeps nextOffset after everything is truncated (and after a reopen)', () =>
      withLog(kind, { segmentBytes: 4096 }, async (h) => {
        await h.log.append(records(0, 30));
        await h.log.truncateBefore(h.log.nextOffset);
        expect(h.log.count).toBe(0);
        expect(h.log.firstOffset).toBe(31);
        let log = await h.reopen({ segmentBytes: 4096 });
        expect(log.nextOffset).toBe(31);
        expect(log.firstOffset).toBe(31);
        expect(log.count).toBe(0);
        expect(await log.append(records(30, 1))).toBe(31);
        // Again with a small active segment (kept, start persisted).
        await log.truncateBefore(32);
        log = await h.reopen({ segmentBytes: 4096 });
        expect(log.nextOffset).toBe(32);
        expect(await log.read(1, { maxMessages: 10, maxBytes: 1e9 })).toEqual([]);
        expect(await log.append(records(31, 1))).toBe(32);
        expect((await readAll(log)).map((r) => r.offset)).toEqual([32]);
      }));

    it('trimToBytes drops the oldest whole segments, never the active one', () =>
      withLog(kind, { segmentBytes: 1000 }, async ({ log }) => {
        const inputs = records(0, 60, { size: 80, key: false, headers: false });
        for (let i = 0; i < 60; i += 3) await log.append(inputs.slice(i, i + 3));
        const total = log.bytes;
        await log.trimToBytes(total + 1);
        expect(log.bytes).toBe(total);
        expect(log.firstOffset).toBe(1);
        await log.trimToBytes(2500);
        expect(log.bytes).toBeLessThanOrEqual(2500);
        expect(log.bytes).toBeGreaterThan(2500 - 1000);
        const first = log.firstOffset;
        expect(first).toBeGreaterThan(1);
        expect(log.count).toBe(61 - first);
        const got = await readAll(log);
        expect(got[0]?.offset).toBe(first);
        got.forEach((r, i) => expectRecord(r, inputs[first - 1 + i] as RecordInput, first + i));
        await log.trimToBytes(0);
        expect(log.count).toBeGreaterThan(0);
        expect(log.nextOffset).toBe(61);
        expect((await readAll(log)).at(-1)?.offset).toBe(60);
      }));

    it('finds offsets by timestamp', () =>
      withLog(kind, { segmentBytes: 1500 }, async ({ log }) => {
        // Timestamps 0,0,0,10,10,10,20,... (non-decreasing, with repeats).
        const inputs = Array.from({ length: 120 }, (_, i) => record(i, { timestamp: T0 + Math.floor(i / 3) * 10 }));
        for (let i = 0; i < 120; i += 7) await log.append(inputs.slice(i, i + 7));
        expect(await log.offsetForTimestamp(0)).toBe(1);
        expect(await log.offsetForTimestamp(T0)).toBe(1);
        for (let k = 0; k < 40; k++) {
          expect(await log.offsetForTimestamp(T0 + k * 10)).toBe(k * 3 + 1);
          expect(await log.offsetForTimestamp(T0 + k * 10 - 5)).toBe(k * 3 + 1);
          expect(await log.offsetForTimestamp(T0 + k * 10 + 1)).toBe(k * 3 + 4);
        }
        expect(await log.offsetForTimestamp(T0 + 10_000)).toBe(121);
        await log.truncateBefore(50);
        expect(await log.offsetForTimestamp(T0)).toBe(50);
        expect(await log.offsetForTimestamp(T0 + 200)).toBe(61);
      }));

    it('rejects appends, reads and retention after close with STORE_CLOSED; close is idempotent', () =>
      withLog(kind, {}, async ({ log }) => {
        await log.append(records(0, 2));
        const inFlight = log.append(records(2, 2));
        await Promise.all([log.close(), log.close()]);
        expect(await inFlight).toBe(3);
        await log.close();
        await expect(log.append(records(4, 1))).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(log.read(1, { maxMessages: 1, maxBytes: 100 })).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(log.truncateBefore(2)).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(log.offsetForTimestamp(0)).rejects.toMatchObject({ code: 'STORE_CLOSED' });
      }));

    it('rejects records whose key does not fit the frame, without assigning offsets', () =>
      withLog(kind, {}, async ({ log }) => {
        await expect(log.append([{ timestamp: T0, key: 'k'.repeat(70_000), value: Buffer.alloc(1) }])).rejects.toMatchObject({
          code: 'MESSAGE_TOO_LARGE',
        });
        expect(log.nextOffset).toBe(1);
        expect(await log.append(records(0, 1))).toBe(1);
      }));

    it('serves reads of records whose append has not resolved yet', () =>
      withLog(kind, {}, async ({ log }) => {
        const inputs = records(0, 200);
        const appends = [];
        for (let i = 0; i < 200; i += 20) appends.push(log.append(inputs.slice(i, i + 20)));
        const got = await log.read(150, { maxMessages: 1000, maxBytes: 1e9 });
        expect(got[0]?.offset).toBe(150);
        expect(got.length).toBeGreaterThan(0);
        got.forEach((r) => expectRecord(r, inputs[r.offset - 1] as RecordInput, r.offset));
        await Promise.all(appends);
        const all: LogRecord[] = await readAll(log);
        expect(all).toHaveLength(200);
      }));
  });
}
