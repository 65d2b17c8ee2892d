/**
 * Validation off the broker's main thread: large batches are checked by worker threads, so decoding and
 * checking values (about 2 µs for 1 KiB of JSON) runs on the other cores while the main thread serves
 * requests. A worker compiles each schema once (sent to it the first time it needs it). A worker that
 * fails takes no batch with it: the caller validates that batch on its own thread instead.
 */
import { Worker } from 'node:worker_threads';
import type { SchemaReference, SchemaType, Violation } from './formats/types.js';
import type { ResolvedReference } from './formats/types.js';

/** What a worker needs to compile a schema. */
export interface SchemaSource {
  id: number;
  schemaType: SchemaType;
  schema: string;
  references: ResolvedReference[];
}

/** One value to check: where its payload lies in the batch buffer and which schema and message type apply. */
export interface CheckItem {
  id: number;
  start: number;
  end: number;
  indexes?: number[] | undefined;
  /** Protobuf: if the value does not check with `indexes`, try it as the first message type from `bareStart`. */
  bareStart?: number | undefined;
}

/** Numbers per item in `PackedItems.nums`: schema id, start, end, bareStart (-1: none). */
export const ITEM_FIELDS = 4;

/**
 * A batch's items as numbers (`ITEM_FIELDS` per item) plus the few Protobuf message indexes by item: a
 * typed array crosses to a worker as one transferred buffer, where an array of objects is cloned object
 * by object (measured: ~1 µs a message on the main thread, more than the rest of its framing).
 */
export interface PackedItems {
  count: number;
  nums: Float64Array;
  /** [item index, message indexes] for the items that have them. */
  indexes?: [number, number[]][] | undefined;
}

/** Packs items (see `PackedItems`). */
export function packItems(items: readonly CheckItem[]): PackedItems {
  const nums = new Float64Array(items.length * ITEM_FIELDS);
  const indexes: [number, number[]][] = [];
  items.forEach((it, i) => {
    const o = i * ITEM_FIELDS;
    nums[o] = it.id;
    nums[o + 1] = it.start;
    nums[o + 2] = it.end;
    nums[o + 3] = it.bareStart ?? -1;
    if (it.indexes) indexes.push([i, it.indexes]);
  });
  return { count: items.length, nums, ...(indexes.length > 0 && { indexes }) };
}

export interface CheckJob {
  job: number;
  schemas: SchemaSource[];
  buf: ArrayBuffer;
  items: PackedItems;
}

export interface CheckAnswer {
  job: number;
  /** The job's buffer, moved back to be used again (`ValidationPool.borrow`). */
  buf?: ArrayBuffer | undefined;
  /** [item index, violation] for the items that do not check. */
  violations: [number, Violation][];
  error?: string;
}

interface PoolWorker {
  worker: Worker;
  known: Set<number>;
  pending: Map<number, { resolve: (v: [number, Violation][]) => void; reject: (e: Error) => void }>;
  dead: boolean;
}

export type { SchemaReference };

/** Batch buffers kept for reuse, and the smallest one made. */
const SPARE_BUFFERS = 8;
const MIN_BUFFER = 64 * 1024;

export class ValidationPool {
  private readonly workers: PoolWorker[] = [];
  /**
   * Buffers the workers moved back after a job. A batch's values are copied into one of them rather than
   * a fresh ArrayBuffer each time: a new megabyte per batch is zero-filled and counts as external memory,
   * which makes V8 collect the main thread's heap more often.
   */
  private readonly spare: ArrayBuffer[] = [];
  private readonly lent = new WeakSet<ArrayBuffer>();
  private next = 0;
  private jobs = 0;
  private closed = false;

  constructor(private readonly threads: number) {}

  private spawn(): PoolWorker {
    const worker = new Worker(new URL('./validate-worker.js', import.meta.url));
    worker.unref();
    const w: PoolWorker = { worker, known: new Set(), pending: new Map(), dead: false };
    worker.on('message', (a: CheckAnswer) => {
      if (a.buf && this.spare.length < SPARE_BUFFERS && !this.closed) {
        this.lent.add(a.buf);
        this.spare.push(a.buf);
      }
      const p = w.pending.get(a.job);
      if (!p) return;
      w.pending.delete(a.job);
      if (a.error) p.reject(new Error(a.error));
      else p.resolve(a.violations);
    });
    const fail = (err: Error): void => {
      w.dead = true;
      for (const p of w.pending.values()) p.reject(err);
      w.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`validation worker exited (${code})`)));
    return w;
  }

  private pick(): PoolWorker {
    if (this.workers.length < this.threads) {
      const w = this.spawn();
      this.workers.push(w);
      return w;
    }
    for (let k = 0; k < this.workers.length; k++) {
      const i = this.next++ % this.workers.length;
      if (this.workers[i]!.dead) this.workers[i] = this.spawn();
      return this.workers[i]!;
    }
    throw new Error('no worker');
  }

  /**
   * A buffer of `bytes` to copy a batch's values into for `check`: a view over a spare buffer big enough,
   * else over a new one (a power of two, at least 64 KiB). `check` moves the whole buffer to the worker
   * and back.
   */
  borrow(bytes: number): Uint8Array {
    for (let i = 0; i < this.spare.length; i++) {
      const ab = this.spare[i]!;
      if (ab.byteLength >= bytes && ab.byteLength <= Math.max(MIN_BUFFER, bytes * 4)) {
        this.spare.splice(i, 1);
        return new Uint8Array(ab, 0, bytes);
      }
    }
    const ab = new ArrayBuffer(Math.max(MIN_BUFFER, 2 ** Math.ceil(Math.log2(Math.max(1, bytes)))));
    this.lent.add(ab);
    return new Uint8Array(ab, 0, bytes);
  }

  /**
   * Checks the items of one batch (payloads in `buf`: moved to the worker when it is a whole ArrayBuffer
   * of its own, copied when it is a view; do not use it after). `sourceOf` gives a
   * schema's source the first time a worker needs it. Rejects when the worker fails: validate inline then.
   */
  check(buf: Uint8Array, list: readonly CheckItem[] | PackedItems, sourceOf: (id: number) => SchemaSource): Promise<[number, Violation][]> {
    if (this.closed) return Promise.reject(new Error('the validation pool is closed'));
    const items = Array.isArray(list) ? packItems(list) : (list as PackedItems);
    const w = this.pick();
    const schemas: SchemaSource[] = [];
    let last = -1;
    for (let i = 0; i < items.count; i++) {
      const id = items.nums[i * ITEM_FIELDS]!;
      if (id === last || w.known.has(id)) continue;
      last = id;
      w.known.add(id);
      schemas.push(sourceOf(id));
    }
    const job = ++this.jobs;
    // A buffer that is the caller's alone (or lent by `borrow`) is moved to the worker; a view into a larger one is copied first.
    const whole =
      buf.buffer instanceof ArrayBuffer &&
      ((buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) || this.lent.has(buf.buffer));
    const copy = whole ? (buf.buffer as ArrayBuffer) : (buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer);
    return new Promise((resolve, reject) => {
      w.pending.set(job, { resolve, reject });
      w.worker.postMessage({ job, schemas, buf: copy, items } satisfies CheckJob, [copy, items.nums.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate().catch(() => undefined)));
    this.workers.length = 0;
  }
}
