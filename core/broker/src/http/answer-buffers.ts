/**
 * Buffers for binary fetch answers, reused once an answer has been handed to the socket (the response's
 * `finish`). A fresh buffer per answer (~1 MB for 1,000 messages of 1 KiB) costs its page faults and
 * the external-memory collections it sets off, each time; a reused one costs neither. Bounded: a few
 * buffers of at most `maxBytes`; larger answers get a buffer of their own. An answer whose response
 * never finishes (the client went away) keeps its buffer out of the pool: the socket may still hold it.
 */
import type { ServerResponse } from 'node:http';
import { BufferShelf } from '../buffer-shelf.js';

export class AnswerBuffers {
  private readonly shelf: BufferShelf;

  constructor(
    max = 4,
    private readonly maxBytes = 8 * 1024 * 1024,
  ) {
    // A fresh buffer is made an eighth larger than asked (roomy): the shelf keeps those too.
    this.shelf = new BufferShelf(max, Math.ceil(maxBytes * 1.25));
  }

  /** A buffer of at least `bytes` (its contents garbage), given back to the pool when `res` finishes. */
  lend(bytes: number, res: ServerResponse): Buffer {
    // Small answers come from Buffer's shared slab already; huge ones get a buffer of their own.
    if (bytes < 65_536 || bytes > this.maxBytes) return Buffer.allocUnsafe(bytes);
    const ab = this.shelf.takeOrAlloc(bytes);
    res.once('finish', () => this.shelf.give(ab));
    return Buffer.from(ab);
  }

  get size(): number {
    return this.shelf.size;
  }
}
