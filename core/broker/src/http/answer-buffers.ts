/**
 * Buffers for binary fetch answers, reused once an answer has been handed to the socket (the response's
 * `finish`). A fresh buffer per answer (~1 MB for 1,000 messages of 1 KiB) costs its page faults and
 * the external-memory collections it sets off, each time; a reused one costs neither. Bounded: a few
 * buffers of at most `maxBytes`; smaller and larger answers are not pooled (BufferShelf.buffer). An answer whose response
 * never finishes (the client went away) keeps its buffer out of the pool: the socket may still hold it.
 */
import type { ServerResponse } from 'node:http';
import { BufferShelf } from '../buffer-shelf.js';

export class AnswerBuffers {
  private readonly shelf: BufferShelf;

  constructor(max = 4, maxBytes = 8 * 1024 * 1024) {
    this.shelf = new BufferShelf(max, maxBytes);
  }

  /** A buffer of at least `bytes` (its contents garbage), given back to the pool when `res` finishes. */
  lend(bytes: number, res: ServerResponse): Buffer {
    const buf = this.shelf.buffer(bytes);
    res.once('finish', () => this.shelf.release(buf));
    return buf;
  }

  get size(): number {
    return this.shelf.size;
  }
}
