/**
 * Deliveries as the group hands them out: one object per message (`DeliveryList`, for `fetch`), or
 * packed per partition (`ChunkBuilder`, for `fetchChunks`): numbers in one array, values left where the
 * log read them, consecutive values of one read buffer sharing one chunk.
 */
import { CHUNK_FIELDS, type Delivery, type DeliveryChunk } from '../contract.js';
import { deliveryId } from '@junction/protocol';
import type { LogRecord } from '../log/types.js';

/** True when `headers` has no own enumerable property. */
function isEmpty(headers: Record<string, string>): boolean {
  for (const _ in headers) return false;
  return true;
}

/** Where a group puts what it delivers. */
export interface Collector {
  readonly count: number;
  /** `epoch`: the group's epoch token on the partition (the deliveryIds carry it). */
  add(partition: number, rec: LogRecord, attempt: number, epoch: string): void;
}

export class DeliveryList implements Collector {
  readonly list: Delivery[] = [];
  constructor(
    private readonly station: string,
    private readonly stationId: string,
  ) {}

  get count(): number {
    return this.list.length;
  }

  add(partition: number, rec: LogRecord, attempt: number, epoch: string): void {
    const d: Delivery = {
      station: this.station,
      partition,
      offset: rec.offset,
      timestamp: rec.timestamp,
      key: rec.key,
      headers: rec.headers,
      value: rec.value,
      deliveryId: deliveryId(partition, rec.offset, attempt, epoch),
      deliveryCount: attempt,
      stationId: this.stationId,
    };
    this.list.push(d);
  }
}

interface OpenChunk {
  partition: number;
  epoch: string;
  buffer: ArrayBufferLike;
  /** Where the chunk's data starts in `buffer`, and where its last value ends. */
  base: number;
  end: number;
  n: number;
  bytes: number;
  nums: number[];
  headers: Record<string, string>[];
  headerIndex: Map<Record<string, string>, number>;
  /** The index of the headers of messages without any, once one was added. */
  emptyIndex: number | undefined;
  lastHeaders: Record<string, string> | undefined;
  lastIndex: number;
  keys: (string | undefined)[] | undefined;
  attempts: number[] | undefined;
}

/**
 * Builds chunks from the records a group delivers. With `inPlace` (records of a file log: views into
 * its read buffers, which hold nothing but the partition's frames) consecutive values of one buffer share
 * a chunk's data as they lie; otherwise (a memory log: each value a small Buffer, perhaps in Node's
 * shared pool beside unrelated bytes) the values are copied back to back into the chunk's own buffer,
 * so that whatever lies between two values of a chunk is always the partition's own data.
 */
export class ChunkBuilder implements Collector {
  count = 0;
  private readonly done: DeliveryChunk[] = [];
  private cur: OpenChunk | undefined;
  /** Copy mode: the values of the open chunk, to copy at flush. */
  private values: Uint8Array[] = [];

  constructor(
    private readonly inPlace: boolean,
    private readonly stationId: string,
  ) {}

  add(partition: number, rec: LogRecord, attempt: number, epoch: string): void {
    const v = rec.value;
    let c = this.cur;
    if (
      c === undefined ||
      c.partition !== partition ||
      c.epoch !== epoch ||
      (this.inPlace && (v.buffer !== c.buffer || v.byteOffset < c.end))
    ) {
      this.flush();
      c = this.cur = {
        partition,
        epoch,
        buffer: v.buffer,
        base: v.byteOffset,
        end: v.byteOffset,
        n: 0,
        bytes: 0,
        nums: [],
        headers: [],
        headerIndex: new Map(),
        emptyIndex: undefined,
        lastHeaders: undefined,
        lastIndex: 0,
        keys: undefined,
        attempts: undefined,
      };
    }
    let hi = c.lastIndex;
    if (rec.headers !== c.lastHeaders) {
      // A record without headers gets an object of its own from the log's decoder: all of them share one
      // index here (else every message would cost a map entry and a slot).
      const known = isEmpty(rec.headers) ? c.emptyIndex : c.headerIndex.get(rec.headers);
      if (known === undefined) {
        hi = c.headers.length;
        c.headers.push(rec.headers);
        if (isEmpty(rec.headers)) c.emptyIndex = hi;
        else c.headerIndex.set(rec.headers, hi);
      } else hi = known;
      c.lastHeaders = rec.headers;
      c.lastIndex = hi;
    }
    if (this.inPlace) c.nums.push(rec.offset, rec.timestamp, v.byteOffset - c.base, v.byteLength, hi);
    else {
      c.nums.push(rec.offset, rec.timestamp, c.bytes, v.byteLength, hi);
      this.values.push(v);
    }
    if (rec.key !== undefined) (c.keys ??= new Array<string | undefined>(c.n).fill(undefined))[c.n] = rec.key;
    else if (c.keys !== undefined) c.keys.push(undefined);
    if (c.attempts !== undefined) c.attempts.push(attempt);
    else if (attempt !== 1) (c.attempts = new Array<number>(c.n).fill(1)).push(attempt);
    c.end = v.byteOffset + v.byteLength;
    c.bytes += v.byteLength;
    c.n++;
    this.count++;
  }

  finish(): DeliveryChunk[] {
    this.flush();
    return this.done;
  }

  private flush(): void {
    const c = this.cur;
    this.cur = undefined;
    if (c === undefined || c.n === 0) return;
    let data: Uint8Array;
    if (this.inPlace) data = new Uint8Array(c.buffer, c.base, c.end - c.base);
    else {
      data = new Uint8Array(c.bytes);
      let pos = 0;
      for (const v of this.values) {
        data.set(v, pos);
        pos += v.byteLength;
      }
      this.values = [];
    }
    const chunk: DeliveryChunk = {
      stationId: this.stationId,
      partition: c.partition,
      epoch: c.epoch,
      count: c.n,
      bytes: c.bytes,
      data,
      nums: new Float64Array(c.nums),
      headers: c.headers,
    };
    if (c.keys !== undefined) chunk.keys = c.keys;
    if (c.attempts !== undefined) chunk.attempts = c.attempts;
    if (chunk.nums.length !== c.n * CHUNK_FIELDS) throw new Error('chunk builder bug: numbers out of step with messages');
    this.done.push(chunk);
  }
}
