/**
 * Buffers for binary fetch answers, reused once an answer has been handed to the socket (the response's
 * `finish`). A fresh buffer per answer (~1 MB for 1,000 messages of 1 KiB) costs its page faults and
 * the external-memory collections it sets off, each time; a reused one costs neither. Bounded: a few
 * buffers of at most `maxBytes`; larger answers get a buffer of their own. An answer whose response
 * never finishes (the client went away) keeps its buffer out of the pool: the socket may still hold it.
 */
import type { ServerResponse } from 'node:http';

export class AnswerBuffers {
  private readonly free: Buffer[] = [];

  constructor(
    private readonly max = 8,
    private readonly maxBytes = 8 * 1024 * 1024,
  ) {}

  /** A buffer of at least `bytes` (its contents garbage), given back to the pool when `res` finishes. */
  lend(bytes: number, res: ServerResponse): Buffer {
    // Small answers come from Buffer's shared slab already; huge ones get a buffer of their own.
    if (bytes < 65_536 || bytes > this.maxBytes) return Buffer.allocUnsafe(bytes);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.byteLength;
      if (len >= bytes && (best < 0 || len < this.free[best]!.byteLength)) best = i;
    }
    // Room to spare (untouched pages cost nothing) so that it carries a slightly larger answer later.
    const buf =
      best >= 0 ? this.free.splice(best, 1)[0]! : Buffer.allocUnsafeSlow(Math.min(this.maxBytes, Math.ceil((bytes * 1.125) / 4096) * 4096));
    res.once('finish', () => this.give(buf));
    return buf;
  }

  get size(): number {
    return this.free.length;
  }

  private give(buf: Buffer): void {
    this.free.push(buf);
    if (this.free.length > this.max) {
      let small = 0;
      for (let i = 1; i < this.free.length; i++) if (this.free[i]!.byteLength < this.free[small]!.byteLength) small = i;
      this.free.splice(small, 1);
    }
  }
}
