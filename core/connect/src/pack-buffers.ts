/**
 * Buffers that carry packed batches to the worker threads, used again once a worker gave them back.
 *
 * A batch's values are copied into one ArrayBuffer that is transferred to the worker (chunks.ts). Copying
 * ~10 MB into a fresh buffer costs the page faults of fresh memory (0.75 µs/KiB here, against 0.09 into a
 * buffer already touched): the largest cost of the runtime's main thread under a sink of large batches.
 * So a worker that wrote a batch clean moves its buffers back with the answer (sink-worker.ts), and the
 * next batch is packed into them.
 *
 * Never used again too early: a buffer is transferred (detached here) while a worker holds it and comes
 * back only in a worker's answer, after the plugin's write settled. Bounded: at most `max` free buffers
 * are kept (the runner's packed batches at once: its batches in flight and the one packed ahead), so
 * the pool adds at most as much memory as the batches in flight already take; and a pool not drawn on
 * for IDLE_MS lets its buffers go (an idle connector holds none).
 */
export class PackBuffers {
  private readonly free: ArrayBuffer[] = [];
  private freeBytes = 0;
  private lastTake = 0;
  private sweep: NodeJS.Timeout | undefined;
  /** Buffers lent out of the pool, and buffers allocated because none fitted (for tests and status). */
  reused = 0;
  fresh = 0;

  constructor(private readonly max: number) {}

  /**
   * A buffer of at least `size` bytes: the smallest free one that fits, if it is not more than twice
   * the size (a small batch does not hold a large buffer away from the large ones); else a fresh one.
   * Its bytes are whatever it held before: the caller writes every byte it uses.
   */
  take(size: number): ArrayBuffer {
    this.lastTake = Date.now();
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i]!.byteLength;
      if (n >= size && n <= 2 * size + 65_536 && (best < 0 || n < this.free[best]!.byteLength)) best = i;
    }
    if (best >= 0) {
      const buf = this.free[best]!;
      this.free[best] = this.free[this.free.length - 1]!;
      this.free.pop();
      this.freeBytes -= buf.byteLength;
      this.reused++;
      return buf;
    }
    this.fresh++;
    // Every byte the packer uses is written: no zero fill. Rounded up so batches of slightly different
    // sizes fit each other's buffer.
    return Buffer.allocUnsafeSlow(roundUp(size)).buffer as ArrayBuffer;
  }

  /**
   * A buffer back from a worker. Kept when there is room; when the pool is full the smallest buffer
   * goes (to the garbage collector), so the pool keeps the sizes the large batches need.
   */
  give(buf: ArrayBuffer): void {
    // Detached (transferred again) or empty: nothing to keep.
    if (buf.byteLength === 0 || this.max <= 0) return;
    this.free.push(buf);
    this.freeBytes += buf.byteLength;
    this.sweep ??= setTimeout(() => this.expire(), IDLE_MS).unref();
    if (this.free.length <= this.max) return;
    let smallest = 0;
    for (let i = 1; i < this.free.length; i++) if (this.free[i]!.byteLength < this.free[smallest]!.byteLength) smallest = i;
    this.freeBytes -= this.free[smallest]!.byteLength;
    this.free.splice(smallest, 1);
  }

  /** Drops every free buffer (the runner stops). */
  clear(): void {
    clearTimeout(this.sweep);
    this.sweep = undefined;
    this.free.length = 0;
    this.freeBytes = 0;
  }

  private expire(): void {
    this.sweep = undefined;
    if (this.free.length === 0) return;
    const idle = Date.now() - this.lastTake;
    if (idle >= IDLE_MS) this.clear();
    else this.sweep = setTimeout(() => this.expire(), IDLE_MS - idle).unref();
  }

  stats(): { free: number; freeBytes: number; reused: number; fresh: number } {
    return { free: this.free.length, freeBytes: this.freeBytes, reused: this.reused, fresh: this.fresh };
  }
}

/** A pool not drawn on for this long drops its free buffers. */
export const IDLE_MS = 5_000;

/** Up to the next 64 KiB (buffers of at most 64 KiB: the next power of two). */
function roundUp(n: number): number {
  if (n <= 65_536) {
    let p = 64;
    while (p < n) p *= 2;
    return p;
  }
  return Math.ceil(n / 65_536) * 65_536;
}
