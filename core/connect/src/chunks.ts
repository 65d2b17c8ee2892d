/**
 * Messages as the sink runner holds them: `DeliveryChunk`s of the broker (`fetchChunks`), numbers in
 * one array per chunk and values left where the store read them. Pieces of a chunk (a batch's share,
 * the messages a sink wants again) are new chunks over the same data: nothing is copied until a batch
 * is packed for a worker, and then region by region, not message by message.
 */
import { CHUNK_FIELDS, ChunkField, type Delivery, type DeliveryChunk, type OffsetRange } from '@junction/broker';
import { deliveryId } from '@junction/protocol';
import type { SparePool } from './spares.js';
import { PACKED_FIELDS, type PackedBatch } from './wire.js';

const F = CHUNK_FIELDS;

export function offsetAt(c: DeliveryChunk, i: number): number {
  return c.nums[i * F + ChunkField.offset]!;
}

/** The produce time (ms since epoch, the broker's) of message `i` of a chunk. */
export function timestampAt(c: DeliveryChunk, i: number): number {
  return c.nums[i * F + ChunkField.timestamp]!;
}

export function lengthAt(c: DeliveryChunk, i: number): number {
  return c.nums[i * F + ChunkField.length]!;
}

/**
 * Deliveries of an engine without `fetchChunks`, as chunks (one per run of a partition): values copied
 * back to back. `stationId`: the station's incarnation, for deliveries that do not carry theirs.
 */
export function chunksFromDeliveries(ds: readonly Delivery[], stationId: string): DeliveryChunk[] {
  const out: DeliveryChunk[] = [];
  let i = 0;
  while (i < ds.length) {
    const partition = ds[i]!.partition;
    let j = i;
    let bytes = 0;
    while (j < ds.length && ds[j]!.partition === partition) bytes += ds[j++]!.value.byteLength;
    const n = j - i;
    const data = new Uint8Array(bytes);
    const nums = new Float64Array(n * F);
    const headers: Record<string, string>[] = [];
    const index = new Map<Record<string, string>, number>();
    const attempts = new Array<number>(n);
    const deliveryIds = new Array<string>(n);
    let keys: (string | undefined)[] | undefined;
    let pos = 0;
    for (let k = 0; k < n; k++) {
      const d = ds[i + k]!;
      data.set(d.value, pos);
      let hi = index.get(d.headers);
      if (hi === undefined) {
        hi = headers.length;
        headers.push(d.headers);
        index.set(d.headers, hi);
      }
      const o = k * F;
      nums[o + ChunkField.offset] = d.offset;
      nums[o + ChunkField.timestamp] = d.timestamp;
      nums[o + ChunkField.start] = pos;
      nums[o + ChunkField.length] = d.value.byteLength;
      nums[o + ChunkField.headers] = hi;
      pos += d.value.byteLength;
      if (d.key !== undefined) (keys ??= new Array<string | undefined>(n).fill(undefined))[k] = d.key;
      attempts[k] = d.deliveryCount;
      deliveryIds[k] = d.deliveryId;
    }
    const c: DeliveryChunk = {
      stationId: ds[i]!.stationId ?? stationId,
      partition,
      count: n,
      bytes,
      data,
      nums,
      headers,
      attempts,
      deliveryIds,
    };
    if (keys) c.keys = keys;
    out.push(c);
    i = j;
  }
  return out;
}

/** Messages [from, to) of a chunk as a chunk of their own, over the same data. */
export function sliceChunk(c: DeliveryChunk, from: number, to: number): DeliveryChunk {
  if (from === 0 && to === c.count) return c;
  const nums = c.nums.slice(from * F, to * F);
  let bytes = 0;
  for (let o = ChunkField.length; o < nums.length; o += F) bytes += nums[o]!;
  const piece: DeliveryChunk = {
    stationId: c.stationId,
    partition: c.partition,
    count: to - from,
    bytes,
    data: c.data,
    nums,
    headers: c.headers,
  };
  if (c.epoch !== undefined) piece.epoch = c.epoch;
  if (c.keys) piece.keys = c.keys.slice(from, to);
  if (c.attempts) piece.attempts = c.attempts.slice(from, to);
  if (c.deliveryIds) piece.deliveryIds = c.deliveryIds.slice(from, to);
  return piece;
}

/** The messages at `indexes` (ascending) of a chunk, as a chunk over the same data. */
export function pickChunk(c: DeliveryChunk, indexes: readonly number[]): DeliveryChunk {
  if (indexes.length === c.count) return c;
  const n = indexes.length;
  const nums = new Float64Array(n * F);
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    const src = indexes[k]! * F;
    nums.set(c.nums.subarray(src, src + F), k * F);
    bytes += c.nums[src + ChunkField.length]!;
  }
  const piece: DeliveryChunk = { stationId: c.stationId, partition: c.partition, count: n, bytes, data: c.data, nums, headers: c.headers };
  if (c.epoch !== undefined) piece.epoch = c.epoch;
  if (c.keys) piece.keys = indexes.map((i) => c.keys![i]);
  if (c.attempts) piece.attempts = indexes.map((i) => c.attempts![i]!);
  if (c.deliveryIds) piece.deliveryIds = indexes.map((i) => c.deliveryIds![i]!);
  return piece;
}

/** The delivery id of each message (the engine's own, or the default form). */
export function idsOf(c: DeliveryChunk, out: string[] = []): string[] {
  if (c.deliveryIds) {
    for (const id of c.deliveryIds) out.push(id);
    return out;
  }
  for (let i = 0; i < c.count; i++) out.push(deliveryId(c.partition, offsetAt(c, i), c.attempts?.[i] ?? 1, c.epoch));
  return out;
}

/**
 * Appends the chunk's offsets to `out` as ranges (naming the chunk's epoch), merging with the last range
 * when contiguous and of the same partition and epoch.
 */
export function addRanges(c: DeliveryChunk, out: OffsetRange[], indexes?: readonly number[]): void {
  const n = indexes ? indexes.length : c.count;
  let last = out[out.length - 1];
  const joins = (o: number): boolean => last !== undefined && last.partition === c.partition && last.epoch === c.epoch && o === last.to + 1;
  if (!indexes && n > 0 && offsetAt(c, n - 1) - offsetAt(c, 0) === n - 1) {
    // Contiguous (the usual piece): one range, without a walk over its offsets.
    const from = offsetAt(c, 0);
    if (joins(from)) last!.to = offsetAt(c, n - 1);
    else out.push({ partition: c.partition, from, to: offsetAt(c, n - 1), epoch: c.epoch });
    return;
  }
  for (let k = 0; k < n; k++) {
    const o = offsetAt(c, indexes ? indexes[k]! : k);
    if (joins(o)) last!.to = o;
    else out.push((last = { partition: c.partition, from: o, to: o, epoch: c.epoch }));
  }
}

/**
 * One batch for a worker: the pieces' data copied region by region (from a piece's first value to the
 * end of its last, framing between values included) into one new buffer the worker gets, numbers
 * rebased onto it, the distinct headers as one JSON array text.
 */
export function packChunks(
  station: string,
  partition: number,
  pieces: readonly DeliveryChunk[],
  count: number,
  spares?: SparePool,
): PackedBatch {
  let total = 0;
  for (const c of pieces) total += regionEnd(c) - regionStart(c);
  // Every byte and number used is written below: no zero fill needed (a spare may be larger than the batch).
  const buf = spares ? spares.values(total) : (Buffer.allocUnsafeSlow(total).buffer as ArrayBuffer);
  const bytes = new Uint8Array(buf, 0, total);
  const nums = spares
    ? new Float64Array(spares.numbers(count * PACKED_FIELDS * 8), 0, count * PACKED_FIELDS)
    : new Float64Array(count * PACKED_FIELDS);
  // Distinct headers objects, by identity (messages of one read share theirs), sent as one JSON array:
  // one stringify here and one parse in the worker, however many distinct headers a batch carries.
  const table: Record<string, string>[] = [];
  const index = new Map<Record<string, string>, number>();
  let keys: (string | undefined)[] | undefined;
  let pos = 0;
  let k = 0;
  for (const c of pieces) {
    const s = regionStart(c);
    const e = regionEnd(c);
    bytes.set(c.data.subarray(s, e), pos);
    const shift = pos - s;
    const remap = new Array<number>(c.headers.length).fill(-1);
    for (let i = 0; i < c.count; i++, k++) {
      const src = i * F;
      const dst = k * PACKED_FIELDS;
      const h = c.nums[src + ChunkField.headers]!;
      let hi = remap[h]!;
      if (hi < 0) {
        const obj = c.headers[h]!;
        const known = index.get(obj);
        if (known === undefined) {
          hi = table.length;
          table.push(obj);
          index.set(obj, hi);
        } else hi = known;
        remap[h] = hi;
      }
      nums[dst] = c.nums[src + ChunkField.offset]!;
      nums[dst + 1] = c.nums[src + ChunkField.timestamp]!;
      nums[dst + 2] = c.nums[src + ChunkField.start]! + shift;
      nums[dst + 3] = c.nums[src + ChunkField.length]!;
      nums[dst + 4] = hi;
      const key = c.keys?.[i];
      if (key !== undefined) (keys ??= new Array<string | undefined>(count))[k] = key;
    }
    pos += e - s;
  }
  if (k !== count || pos !== total) throw new Error(`sink runner bug: a batch of ${count} messages / ${total} bytes packed ${k} / ${pos}`);
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  return {
    station,
    stationId: first.stationId,
    partition,
    firstOffset: offsetAt(first, 0),
    lastOffset: offsetAt(last, last.count - 1),
    count,
    buf,
    nums: nums.buffer,
    headers: JSON.stringify(table),
    keys,
  };
}

function regionStart(c: DeliveryChunk): number {
  return c.nums[ChunkField.start]!;
}

function regionEnd(c: DeliveryChunk): number {
  const o = (c.count - 1) * F;
  return c.nums[o + ChunkField.start]! + c.nums[o + ChunkField.length]!;
}
