import { describe, expect, it } from 'vitest';
import { CHUNK_FIELDS, type Delivery, type DeliveryChunk, type OffsetRange } from '@junction/broker';
import { addRanges, chunksFromDeliveries, idsOf, packChunks, pickChunk, sliceChunk } from '../src/chunks.js';
import { SparePool } from '../src/spares.js';
import { PACKED_FIELDS } from '../src/wire.js';

/** A chunk as the store builds one: values with filler bytes between them (the log's framing). */
function chunk(
  partition: number,
  first: number,
  values: string[],
  opts: { keys?: (string | undefined)[]; headers?: Record<string, string>[]; attempts?: number[]; epoch?: string; stationId?: string } = {},
): DeliveryChunk {
  const parts: Buffer[] = [];
  const nums: number[] = [];
  const headers = opts.headers ?? [{ h: 'x' }];
  let pos = 0;
  let bytes = 0;
  values.forEach((v, i) => {
    const filler = Buffer.alloc(7, 0xee);
    parts.push(filler);
    pos += filler.length;
    const b = Buffer.from(v);
    parts.push(b);
    nums.push(first + i, 1000 + i, pos, b.length, i % headers.length);
    pos += b.length;
    bytes += b.length;
  });
  const c: DeliveryChunk = {
    stationId: opts.stationId ?? 'st-1',
    partition,
    count: values.length,
    bytes,
    data: new Uint8Array(Buffer.concat(parts)),
    nums: new Float64Array(nums),
    headers,
  };
  if (opts.epoch !== undefined) c.epoch = opts.epoch;
  if (opts.keys) c.keys = opts.keys;
  if (opts.attempts) c.attempts = opts.attempts;
  return c;
}

/** The worker's view of a packed batch (as sink-worker.ts unpacks it). */
function unpacked(b: ReturnType<typeof packChunks>) {
  const nums = new Float64Array(b.nums);
  const headers = JSON.parse(b.headers) as Record<string, string>[];
  return Array.from({ length: b.count }, (_, i) => {
    const o = i * PACKED_FIELDS;
    return {
      offset: nums[o]!,
      timestamp: nums[o + 1]!,
      value: Buffer.from(b.buf, nums[o + 2]!, nums[o + 3]!).toString(),
      headers: headers[nums[o + 4]!]!,
      key: b.keys?.[i],
    };
  });
}

describe('runtime chunks', () => {
  it('packs pieces of several chunks into one buffer: values, offsets, timestamps, headers and keys intact', () => {
    const a = chunk(2, 10, ['a10', 'a11', 'a12', 'a13'], { headers: [{ h: '1' }, { h: '2' }], keys: ['k10', undefined, 'k12', undefined] });
    const b = chunk(2, 14, ['b14', 'b15-longer'], { headers: [{ h: '2' }] });
    const pieces = [sliceChunk(a, 1, 4), b];
    const packed = packChunks('st', 2, pieces, 5);
    expect(packed).toMatchObject({ station: 'st', stationId: 'st-1', partition: 2, firstOffset: 11, lastOffset: 15, count: 5 });
    expect(unpacked(packed)).toEqual([
      { offset: 11, timestamp: 1001, value: 'a11', headers: { h: '2' }, key: undefined },
      { offset: 12, timestamp: 1002, value: 'a12', headers: { h: '1' }, key: 'k12' },
      { offset: 13, timestamp: 1003, value: 'a13', headers: { h: '2' }, key: undefined },
      { offset: 14, timestamp: 1000, value: 'b14', headers: { h: '2' }, key: undefined },
      { offset: 15, timestamp: 1001, value: 'b15-longer', headers: { h: '2' }, key: undefined },
    ]);
    // The distinct headers objects of the pieces, in the order first used; the buffer holds regions, not the whole chunks.
    expect(JSON.parse(packed.headers)).toEqual([{ h: '2' }, { h: '1' }, { h: '2' }]);
    expect(packed.buf.byteLength).toBe(3 + 7 + 3 + 7 + 3 + (3 + 7 + 10));
  });

  it('packs into spare buffers handed back (larger than the batch, full of old bytes): the same messages, and only spares that fit are used', () => {
    const pool = new SparePool(2);
    const a = chunk(1, 20, ['x20', 'x21-long', 'x22'], { keys: ['k', undefined, 'k2'] });
    const want = unpacked(packChunks('st', 1, [a], 3));
    // Spares of earlier batches: bigger than this one, their bytes and numbers garbage.
    const old = { buf: new Uint8Array(4096).fill(0xaa).buffer, nums: new Float64Array(64).fill(-1).buffer };
    pool.give(old);
    const packed = packChunks('st', 1, [a], 3, pool);
    expect(packed.buf).toBe(old.buf);
    expect(packed.nums).toBe(old.nums);
    expect(pool.reused).toBe(2);
    expect(unpacked(packed)).toEqual(want);
    // No spare left: fresh buffers. A spare too small for a batch is not used, and stays.
    const tiny = { buf: new ArrayBuffer(4), nums: new ArrayBuffer(8) };
    pool.give(tiny);
    const again = packChunks('st', 1, [a], 3, pool);
    expect(again.buf).not.toBe(tiny.buf);
    expect(unpacked(again)).toEqual(want);
    expect(pool.size).toBe(1);
    // Bounded: beyond its size the smallest spare goes; detached (transferred-away) buffers are not kept.
    pool.give({ buf: new ArrayBuffer(100), nums: new ArrayBuffer(80) });
    pool.give({ buf: new ArrayBuffer(200), nums: new ArrayBuffer(160) });
    expect(pool.size).toBe(2);
    expect(pool.values(150).byteLength).toBe(200);
    expect(pool.values(50).byteLength).toBe(100);
    const gone = new ArrayBuffer(64);
    structuredClone(gone, { transfer: [gone] });
    pool.give({ buf: gone, nums: gone });
    expect(pool.size).toBe(0);
  });

  it('slices and picks without copying values; bytes follow the messages taken', () => {
    const c = chunk(0, 1, ['one', 'two', 'three', 'four'], { attempts: [1, 2, 1, 3], epoch: 'ep7' });
    const s = sliceChunk(c, 1, 3);
    expect(s.data).toBe(c.data);
    expect([s.count, s.bytes, s.attempts]).toEqual([2, 8, [2, 1]]);
    const p = pickChunk(c, [0, 3]);
    expect([p.count, p.bytes, p.attempts]).toEqual([2, 7, [1, 3]]);
    expect(p.nums.length).toBe(2 * CHUNK_FIELDS);
    expect(idsOf(p)).toEqual(['0-1-1-ep7', '0-4-3-ep7']);
    expect([s.epoch, p.epoch, s.stationId]).toEqual(['ep7', 'ep7', 'st-1']);
    expect(sliceChunk(c, 0, 4)).toBe(c);
  });

  it('turns offsets into ranges, merging contiguous ones across pieces', () => {
    const ranges: OffsetRange[] = [];
    addRanges(chunk(1, 5, ['a', 'b', 'c'], { epoch: 'e1' }), ranges);
    addRanges(chunk(1, 8, ['d', 'e'], { epoch: 'e1' }), ranges);
    addRanges(chunk(1, 20, ['x', 'y', 'z'], { epoch: 'e1' }), ranges, [0, 2]);
    // Contiguous offsets of another epoch (after a seek) make a range of their own.
    addRanges(chunk(1, 23, ['w'], { epoch: 'e2' }), ranges);
    expect(ranges).toEqual([
      { partition: 1, from: 5, to: 9, epoch: 'e1' },
      { partition: 1, from: 20, to: 20, epoch: 'e1' },
      { partition: 1, from: 22, to: 22, epoch: 'e1' },
      { partition: 1, from: 23, to: 23, epoch: 'e2' },
    ]);
  });

  it('packs the deliveries of an engine without fetchChunks, keeping their own ids', () => {
    const d = (partition: number, offset: number, value: string, extra: Partial<Delivery> = {}): Delivery => ({
      station: 's',
      partition,
      offset,
      timestamp: offset * 10,
      headers: { p: String(partition) },
      value: Buffer.from(value),
      deliveryId: `id-${partition}-${offset}`,
      deliveryCount: 1,
      ...extra,
    });
    const chunks = chunksFromDeliveries(
      [d(0, 1, 'x'), d(0, 2, 'yy', { key: 'k', deliveryCount: 4 }), d(1, 7, 'zzz', { stationId: 'own' })],
      'fallback',
    );
    expect(chunks.map((c) => c.stationId)).toEqual(['fallback', 'own']);
    expect(chunks.map((c) => [c.partition, c.count, c.bytes])).toEqual([
      [0, 2, 3],
      [1, 1, 3],
    ]);
    expect(idsOf(chunks[0]!)).toEqual(['id-0-1', 'id-0-2']);
    expect(chunks[0]!.attempts).toEqual([1, 4]);
    expect(unpacked(packChunks('s', 0, chunks.slice(0, 1), 2))).toEqual([
      { offset: 1, timestamp: 10, value: 'x', headers: { p: '0' }, key: undefined },
      { offset: 2, timestamp: 20, value: 'yy', headers: { p: '0' }, key: 'k' },
    ]);
  });
});
