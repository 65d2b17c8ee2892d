/**
 * A few spare `ArrayBuffer`s for reuse: the broker's large per-batch buffers (a produce request's
 * frames, a fetch answer, a sink batch handed to a worker) cost, when fresh, their page faults and the
 * external-memory collections they set off; a buffer taken from a shelf costs neither. A shelf holds
 * at most `max` buffers of at most `maxBytes` (the smallest goes first), none once idle for `idleMs`;
 * whoever puts one back promises nothing reads or writes it any more.
 */
export class BufferShelf {
  private readonly items: ArrayBuffer[] = [];
  /** Buffers taken from the shelf instead of allocated. */
  reused = 0;
  private lastUse = 0;
  private timer: NodeJS.Timeout | undefined;

  /**
   * `max` buffers at most; none for requests larger than `maxBytes` (a bigger one is left to the
   * collector); all dropped once the shelf was not used for `idleMs`: an idle process keeps no spare memory.
   */
  constructor(
    private readonly max: number,
    private readonly maxBytes = 16 * 1024 * 1024,
    private readonly idleMs = 5000,
  ) {}

  /** The smallest spare of at least `bytes`, or undefined. Its contents are garbage. */
  take(bytes: number): ArrayBuffer | undefined {
    this.lastUse = performance.now();
    let best = -1;
    for (let i = 0; i < this.items.length; i++) {
      const len = this.items[i]!.byteLength;
      if (len >= bytes && (best < 0 || len < this.items[best]!.byteLength)) best = i;
    }
    if (best < 0) return undefined;
    this.reused++;
    return this.items.splice(best, 1)[0];
  }

  /** A spare of at least `bytes`, or a fresh buffer with room to spare (see {@link roomy}). */
  takeOrAlloc(bytes: number): ArrayBuffer {
    return this.take(bytes) ?? roomy(bytes);
  }

  /**
   * A Buffer of at least `bytes` (contents garbage) for one use, handed back with {@link release}: from the
   * shelf when `bytes` is between SHELF_MIN_BYTES and `maxBytes`; below, from Node's shared slab (cheap
   * already); above, a buffer of its own.
   */
  buffer(bytes: number): Buffer {
    if (bytes < SHELF_MIN_BYTES || bytes > this.maxBytes) return Buffer.allocUnsafe(bytes);
    return Buffer.from(this.takeOrAlloc(bytes));
  }

  /**
   * Gives back a Buffer from {@link buffer} (or a view of it) once nothing reads or writes it. One from the
   * shared slab (its ArrayBuffer holds other Buffers too) or too large to keep is left to the collector.
   */
  release(b: Buffer): void {
    if (b.buffer.byteLength >= SHELF_MIN_BYTES) this.give(b.buffer as ArrayBuffer);
  }

  /** Keeps `b` for reuse (a detached or empty one, or one larger than roomy(maxBytes), is ignored); beyond `max`, the smallest goes. */
  give(b: ArrayBuffer): void {
    if (b.byteLength === 0 || b.byteLength > roomySize(this.maxBytes)) return;
    this.lastUse = performance.now();
    this.items.push(b);
    this.dropWhenIdle();
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

  private dropWhenIdle(): void {
    if (this.timer) return;
    const check = (): void => {
      const idle = performance.now() - this.lastUse;
      if (idle >= this.idleMs || this.items.length === 0) {
        this.timer = undefined;
        this.clear();
        return;
      }
      this.timer = setTimeout(check, this.idleMs - idle + 1);
      this.timer.unref();
    };
    this.timer = setTimeout(check, this.idleMs);
    this.timer.unref();
  }
}

/**
 * A fresh, uninitialized buffer for `bytes`, an eighth larger (in 4 KiB pages) so that, reused, it also
 * carries a slightly larger batch: pages of the headroom never written cost no memory.
 */
export function roomy(bytes: number): ArrayBuffer {
  return Buffer.allocUnsafeSlow(roomySize(bytes)).buffer as ArrayBuffer;
}

function roomySize(bytes: number): number {
  return bytes < 4096 ? bytes : Math.ceil((bytes * 1.125) / 4096) * 4096;
}

/**
 * The smallest Buffer {@link BufferShelf.buffer} takes from a shelf: below it Node's shared slab serves
 * (its 8 KiB ArrayBuffers hold other Buffers, so they must never be shelved) or a fresh buffer is cheap.
 */
export const SHELF_MIN_BYTES = 65_536;
