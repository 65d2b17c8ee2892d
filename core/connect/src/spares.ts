/**
 * Buffers handed back by a task's worker after a clean write of a sink that does not keep values
 * (`SinkManifest.keepsValues: false`), reused to pack the next batches: without them each batch packs
 * into a fresh buffer (~10 MB for 10,000 values of 1 KiB), whose page faults and the external-memory
 * collections it sets off cost the broker's thread ~2-4 µs a message. Bounded: a few buffers a runner,
 * dropped whenever the runner has nothing in flight.
 */

/** Spare `ArrayBuffer`s of one kind (values or numbers), smallest that fits first. */
class Shelf {
  private readonly items: ArrayBuffer[] = [];

  constructor(private readonly max: number) {}

  /** A spare of at least `bytes`, or undefined. */
  take(bytes: number): ArrayBuffer | undefined {
    let best = -1;
    for (let i = 0; i < this.items.length; i++) {
      const len = this.items[i]!.byteLength;
      if (len >= bytes && (best < 0 || len < this.items[best]!.byteLength)) best = i;
    }
    if (best < 0) return undefined;
    const [b] = this.items.splice(best, 1);
    return b;
  }

  /** Keeps `b` (detached ones are ignored); when full, the smallest goes. */
  give(b: ArrayBuffer): void {
    if (b.byteLength === 0) return;
    this.items.push(b);
    if (this.items.length > this.max) {
      let small = 0;
      for (let i = 1; i < this.items.length; i++) if (this.items[i]!.byteLength < this.items[small]!.byteLength) small = i;
      this.items.splice(small, 1);
    }
  }

  get size(): number {
    return this.items.length;
  }

  clear(): void {
    this.items.length = 0;
  }
}

/** A fresh buffer for `bytes`, with room to spare so that it can carry a slightly larger batch later. */
function fresh(bytes: number): ArrayBuffer {
  // Untouched pages of the headroom cost no memory; only what is written is.
  const size = bytes < 65_536 ? bytes : Math.ceil((bytes * 1.125) / 65_536) * 65_536;
  return Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer;
}

export class SparePool {
  private readonly bufs: Shelf;
  private readonly nums: Shelf;
  /** Buffers reused instead of allocated (values and numbers), for tests and metrics. */
  reused = 0;

  constructor(max = 4) {
    this.bufs = new Shelf(max);
    this.nums = new Shelf(max);
  }

  /** A buffer for a batch's values: a spare when one fits, else a fresh one. Its contents are garbage. */
  values(bytes: number): ArrayBuffer {
    const b = this.bufs.take(bytes);
    if (b) this.reused++;
    return b ?? fresh(bytes);
  }

  /** A buffer for a batch's numbers (`count * PACKED_FIELDS` float64s), spare or fresh; every slot used is written. */
  numbers(bytes: number): ArrayBuffer {
    const b = this.nums.take(bytes);
    if (b) this.reused++;
    return b ?? fresh(bytes);
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
