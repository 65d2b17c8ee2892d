/**
 * Receiving an answer's body into one buffer. With a `content-length` the buffer is allocated once at
 * that size and each socket chunk is copied in as it arrives (and can be collected at once), instead of
 * holding every chunk until the end and concatenating them. A body that comes in one chunk is kept as is.
 */
import type { IncomingMessage } from 'node:http';

/** Largest announced length preallocated; a longer (or absent) one falls back to collecting chunks. */
export const MAX_PREALLOCATED_BODY = 256 * 1024 * 1024;

/** Collects the body of `res` from its 'data' chunks; `body()` gives what was received. */
export class BodyReceiver {
  /** The announced length when it is preallocated, else -1. */
  private readonly announced: number;
  private buf: Buffer | undefined;
  private chunks: Buffer[] | undefined;
  private size = 0;

  constructor(res: IncomingMessage) {
    const n = Number(res.headers['content-length']);
    this.announced = Number.isSafeInteger(n) && n > 0 && n <= MAX_PREALLOCATED_BODY ? n : -1;
  }

  /** Takes one 'data' chunk. */
  push(c: Buffer): void {
    if (this.size === 0 && this.chunks === undefined) {
      if (c.length === this.announced || this.announced < 0) {
        this.chunks = [c];
        this.size = c.length;
        return;
      }
      this.buf = Buffer.allocUnsafe(this.announced);
    }
    const buf = this.buf;
    if (buf !== undefined && this.size + c.length <= buf.length) c.copy(buf, this.size);
    else {
      // More than announced (llhttp normally stops that): keep everything, in order.
      if (buf !== undefined) {
        this.chunks = [buf.subarray(0, this.size)];
        this.buf = undefined;
      }
      this.chunks!.push(c);
    }
    this.size += c.length;
  }

  /** The bytes received, in one buffer. */
  body(): Buffer {
    if (this.buf !== undefined) return this.size === this.buf.length ? this.buf : this.buf.subarray(0, this.size);
    const chunks = this.chunks;
    if (chunks === undefined) return Buffer.alloc(0);
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.size);
  }
}
