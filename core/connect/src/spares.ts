/**
 * Buffers handed back by a task's worker after a clean write of a sink that does not keep values
 * (`SinkManifest.keepsValues: false`), reused to pack the next batches: without them each batch packs
 * into a fresh buffer (~10 MB for 10,000 values of 1 KiB), whose page faults and the external-memory
 * collections it sets off cost the broker's thread ~2-4 µs a message. Bounded: two buffers a runner,
 * dropped after a second without use.
 */
import { BufferShelf } from '@junction/broker';

export class SparePool {
  private readonly bufs: BufferShelf;
  private readonly nums: BufferShelf;

  /**
   * Two of each: with lookahead a task's thread holds the write running and the next, and the one packed
   * meanwhile takes the buffer the first hands back. None kept after a second without use.
   */
  constructor(max = 2, maxBytes = 64 * 1024 * 1024) {
    this.bufs = new BufferShelf(max, maxBytes, 1000);
    this.nums = new BufferShelf(max, maxBytes, 1000);
  }

  /** Buffers reused instead of allocated (values and numbers). */
  get reused(): number {
    return this.bufs.reused + this.nums.reused;
  }

  /** A buffer for a batch's values: a spare when one fits, else a fresh one. Its contents are garbage. */
  values(bytes: number): ArrayBuffer {
    return this.bufs.takeOrAlloc(bytes);
  }

  /** A buffer for a batch's numbers (`count * PACKED_FIELDS` float64s), spare or fresh; every slot used is written. */
  numbers(bytes: number): ArrayBuffer {
    return this.nums.takeOrAlloc(bytes);
  }

  give(spare: { buf: ArrayBuffer; nums: ArrayBuffer }): void {
    this.bufs.give(spare.buf);
    this.nums.give(spare.nums);
  }

  get size(): number {
    return this.bufs.size;
  }

  clear(): void {
    this.bufs.clear();
    this.nums.clear();
  }
}
