/** The record frame codec: layout, round trips, fault detection and resynchronisation. */
import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  FRAME_MAGIC,
  FrameFault,
  MIN_FRAME_BYTES,
  checkFrame,
  decodeRecord,
  describeFault,
  encodeRecords,
  encodedSize,
  findNextFrame,
} from '../../src/log/index.js';
import { newHeaderMemo } from '../../src/log/record-codec.js';
import type { RecordInput } from '../../src/log/index.js';
import { T0, expectRecord, records } from './helpers.js';

describe('record codec', () => {
  it('lays a frame out as documented', () => {
    const buf = encodeRecords([{ timestamp: 1234.5, key: 'k', msgId: 'm', headers: { a: 'bc' }, value: Buffer.from('xyz') }], 42);
    expect(buf.readUInt32LE(0)).toBe(buf.length - 4);
    expect(buf.readUInt32LE(4)).toBe(crc32(buf.subarray(8)));
    expect(buf[8]).toBe(FRAME_MAGIC);
    expect(buf[9]).toBe(3);
    expect(buf.readDoubleLE(10)).toBe(42);
    expect(buf.readDoubleLE(18)).toBe(1234.5);
    expect(buf.readUInt16LE(26)).toBe(1);
    expect(buf.toString('utf8', 28, 29)).toBe('k');
    expect(buf.readUInt16LE(29)).toBe(1);
    expect(buf.readUInt16LE(32)).toBe(1); // header count
    expect(buf.readUInt16LE(34)).toBe(1);
    expect(buf.toString('utf8', 36, 37)).toBe('a');
    expect(buf.readUInt32LE(37)).toBe(2);
    expect(buf.toString('utf8', 41, 43)).toBe('bc');
    expect(buf.toString('utf8', 43)).toBe('xyz');
    expect(encodeRecords([{ timestamp: 0, value: new Uint8Array(0) }], 1).length).toBe(MIN_FRAME_BYTES);
  });

  it('round-trips any record and reports each frame start', () => {
    const str = fc.string({ unit: 'binary', maxLength: 40 });
    const recArb = fc.record(
      {
        timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
        key: str,
        msgId: str,
        headers: fc.dictionary(str, str, { maxKeys: 5 }),
        value: fc.uint8Array({ maxLength: 500 }),
      },
      { requiredKeys: ['timestamp', 'value'] },
    );
    fc.assert(
      fc.property(fc.array(recArb, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 2 ** 50 }), (recs, first) => {
        const starts: number[] = [];
        const buf = encodeRecords(recs, first, starts);
        expect(buf.length).toBe(recs.reduce((s, r) => s + encodedSize(r), 0));
        let prev = first - 1;
        recs.forEach((r, i) => {
          const at = starts[i] as number;
          const size = checkFrame(buf, at, buf.length, prev);
          expect(size).toBe(encodedSize(r));
          const got = decodeRecord(buf, at);
          // Lone surrogates do not survive UTF-8; compare with what UTF-8 makes of the input.
          const utf8 = (s: string | undefined): string | undefined =>
            s === undefined ? undefined : Buffer.from(s, 'utf8').toString('utf8');
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(r.headers ?? {}))
            Object.defineProperty(headers, utf8(k) as string, { value: utf8(v), enumerable: true, writable: true, configurable: true });
          expectRecord(got, { ...r, key: utf8(r.key), msgId: utf8(r.msgId), headers }, first + i);
          prev = first + i;
        });
      }),
      { numRuns: 200 },
    );
  });

  it('shares one headers object between consecutive records with the same header bytes, and only then', () => {
    const hs = [
      { a: '1', b: '2' },
      { a: '1', b: '2' },
      { a: '1', b: '3' },
      { a: '1', b: '3' },
      {},
      { a: '1', b: '2' },
      { b: '2', a: '1' },
      { __proto__x: 'p' },
    ];
    const buf = encodeRecords(
      hs.map((headers, i) => ({ timestamp: T0 + i, headers, value: Buffer.from(`v${i}`) })),
      1,
    );
    const memo = newHeaderMemo();
    const out = [];
    for (let p = 0; p < buf.length;) {
      const r = decodeRecord(buf, p, memo);
      out.push(r);
      p += r.size;
    }
    expect(out.map((r) => r.headers)).toEqual(hs);
    expect(out.map((r) => r.value.toString())).toEqual(hs.map((_, i) => `v${i}`));
    expect(out[1]!.headers).toBe(out[0]!.headers);
    expect(out[3]!.headers).toBe(out[2]!.headers);
    expect(out[2]!.headers).not.toBe(out[1]!.headers);
    expect(out[5]!.headers).not.toBe(out[1]!.headers); // not consecutive: decoded afresh
    expect(Object.keys(out[6]!.headers)).toEqual(['b', 'a']); // same entries, other bytes: its own object
  });

  it('encodes records that share one headers object like records with their own copies', () => {
    const a = { 'content-type': 'application/json', shape: 'ørder' };
    const b = { x: '1' };
    const shared = [a, a, b, a, a, undefined, a].map((headers, i) => ({
      timestamp: T0 + i,
      key: i % 2 ? `k${i}` : undefined,
      headers,
      value: Buffer.from(`v${i}`),
    }));
    const copies = shared.map((r) => ({ ...r, headers: r.headers && { ...r.headers } }));
    expect(encodeRecords(shared, 5).equals(encodeRecords(copies, 5))).toBe(true);
    // Equal entries in another order are other bytes: not taken for the previous record's.
    const reordered = [{ a: '1', b: '2' }, { b: '2', a: '1' }, { a: '1', b: '2', c: '' }, { a: '1' }];
    const out = [];
    const buf = encodeRecords(
      reordered.map((headers, i) => ({ timestamp: T0, headers, value: Buffer.from([i]) })),
      1,
    );
    for (let p = 0; p < buf.length;) {
      const r = decodeRecord(buf, p);
      out.push(Object.entries(r.headers));
      p += r.size;
    }
    expect(out).toEqual(reordered.map((h) => Object.entries(h)));
  });

  it('tells incomplete, damaged and out-of-order frames apart', () => {
    const buf = encodeRecords(records(0, 3), 10);
    const size = checkFrame(buf, 0, buf.length, 9);
    expect(size).toBeGreaterThan(0);
    for (let end = 0; end < size; end++) expect(checkFrame(buf, 0, end, 9)).toBe(FrameFault.INCOMPLETE);
    expect(checkFrame(buf, 0, buf.length, 10)).toBe(FrameFault.OFFSET);
    const bad = Buffer.from(buf);
    bad[size - 1] = (bad[size - 1] as number) ^ 1;
    expect(checkFrame(bad, 0, bad.length, 9)).toBe(FrameFault.CRC);
    const magic = Buffer.from(buf);
    magic[8] = 0;
    expect(checkFrame(magic, 0, magic.length, 9)).toBe(FrameFault.MAGIC);
    const len = Buffer.from(buf);
    len.writeUInt32LE(3, 0);
    expect(checkFrame(len, 0, len.length, 9)).toBe(FrameFault.LENGTH);
    expect(describeFault(FrameFault.CRC, bad, 0, bad.length, 9, 1000)).toMatch(/crc mismatch at position 1000/);
  });

  it('resynchronises on the next valid frame after damage', () => {
    const recs = records(0, 5);
    const starts: number[] = [];
    const buf = encodeRecords(recs, 1, starts);
    const damaged = Buffer.from(buf);
    damaged.fill(0xee, (starts[1] as number) + 3, (starts[1] as number) + 20);
    expect(findNextFrame(damaged, starts[1] as number, damaged.length, 1)).toBe(starts[2]);
    // A valid frame whose offset is not above the previous one is not a resync point.
    expect(findNextFrame(damaged, starts[1] as number, damaged.length, 3)).toBe(starts[3]);
    expect(findNextFrame(damaged, starts[4] as number, damaged.length, 4)).toBe(-1);
  });

  it('rejects oversized keys, msgIds and header names with MESSAGE_TOO_LARGE', () => {
    const big = 'x'.repeat(65_536);
    const cases: RecordInput[] = [
      { timestamp: T0, key: big, value: new Uint8Array(0) },
      { timestamp: T0, msgId: big, value: new Uint8Array(0) },
      { timestamp: T0, headers: { [big]: 'v' }, value: new Uint8Array(0) },
    ];
    for (const r of cases) {
      expect(() => encodeRecords([r], 1)).toThrow(expect.objectContaining({ code: 'MESSAGE_TOO_LARGE' }));
      expect(() => encodedSize(r)).toThrow(expect.objectContaining({ code: 'MESSAGE_TOO_LARGE' }));
    }
    // Long header values are fine (u32 length).
    const ok: RecordInput = { timestamp: T0, headers: { h: big }, value: new Uint8Array(0) };
    expect(decodeRecord(encodeRecords([ok], 1), 0).headers.h).toBe(big);
  });
});
