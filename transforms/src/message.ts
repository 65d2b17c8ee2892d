/**
 * A message on its way through the chain. The value is parsed only when a step needs its fields, and
 * encoded again only when a step changed them: a message no step changed leaves with the very bytes it
 * came with (the same Uint8Array), whatever it holds (JSON or not).
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { StepError } from './errors.js';

/** A message in and out of a chain. */
export interface Message {
  readonly value: Uint8Array;
  readonly key?: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
}

// Buffer's UTF-8 paths (simdutf) are several times faster than TextEncoder / TextDecoder on Node 20 for
// values of a few KiB; isUtf8 keeps invalid bytes from being read as U+FFFD.

/** Buffer's own UTF-8 decoder, called on the value itself (no Buffer view made per message; @types/node does not declare it). */
const utf8Slice = (Buffer.prototype as unknown as { utf8Slice(this: Uint8Array, start: number, end: number): string }).utf8Slice;

export class Working {
  value: Uint8Array;
  key: string | undefined;
  headers: Readonly<Record<string, string>>;
  timestamp: number;
  /** Set by a route step: the station the message goes to (sources). */
  station: string | undefined;
  private parsed = false;
  private obj: unknown;
  /** The parsed value was changed: `value` no longer holds it. */
  private dirty = false;
  private ownHeaders = false;
  private readonly original: Message;

  constructor(m: Message) {
    this.original = m;
    this.value = m.value;
    this.key = m.key;
    this.headers = m.headers;
    this.timestamp = m.timestamp;
  }

  /** The value parsed as JSON (once). Throws StepError when it is not UTF-8 JSON. */
  json(): unknown {
    if (!this.parsed) {
      const v = this.value;
      if (!isUtf8(v)) throw new StepError('the value is not UTF-8 text (this step needs a JSON value)');
      const text = utf8Slice.call(v, 0, v.byteLength);
      try {
        this.obj = JSON.parse(text);
      } catch (err) {
        throw new StepError(`the value is not JSON (this step needs a JSON value): ${(err as Error).message}`);
      }
      this.parsed = true;
    }
    return this.obj;
  }

  /** The value is now `v` (parsed form); encoded when the message leaves. */
  replace(v: unknown): void {
    this.obj = v;
    this.parsed = true;
    this.dirty = true;
  }

  /** The parsed value was changed in place. */
  touch(): void {
    this.dirty = true;
  }

  /** The value is now these bytes (a plugin's answer): parsed again when a later step needs it. */
  setBytes(bytes: Uint8Array): void {
    this.value = bytes;
    this.parsed = false;
    this.obj = undefined;
    this.dirty = false;
  }

  setHeader(name: string, value: string): void {
    if (this.headers[name] === value) return;
    if (!this.ownHeaders) {
      this.headers = { ...this.headers };
      this.ownHeaders = true;
    }
    (this.headers as Record<string, string>)[name] = value;
  }

  setHeaders(headers: Readonly<Record<string, string>>): void {
    this.headers = headers;
    this.ownHeaders = false;
  }

  /**
   * Encodes a changed value now (before a plugin sees the bytes, or as the message leaves), with `encode`
   * (default: a Buffer of its own; `Pipeline.run` writes a batch's values into shared chunks instead).
   */
  materialize(encode?: (text: string) => Uint8Array): void {
    if (!this.dirty) return;
    const text = JSON.stringify(this.obj);
    if (text === undefined) throw new StepError('the value has no JSON form');
    this.value = encode === undefined ? Buffer.from(text, 'utf8') : encode(text);
    this.dirty = false;
  }

  /** The message as it leaves, and whether anything of it changed. */
  finish(encode?: (text: string) => Uint8Array): { message: Message; changed: boolean } {
    this.materialize(encode);
    const o = this.original;
    const changed = this.value !== o.value || this.headers !== o.headers || this.key !== o.key || this.timestamp !== o.timestamp;
    if (!changed) return { message: o, changed };
    const message: { value: Uint8Array; key?: string; headers: Readonly<Record<string, string>>; timestamp: number } = {
      value: this.value,
      headers: this.headers,
      timestamp: this.timestamp,
    };
    if (this.key !== undefined) message.key = this.key;
    return { message, changed };
  }
}
