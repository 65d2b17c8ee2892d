/**
 * One message as one JSON line:
 * `{"offset":7,"timestamp":1700000000000,"key":"k"|null,"headers":{…},"value":"…"}` and, when the
 * value is base64 rather than UTF-8 text, `"base64":true` at the end. Text round-trips byte for byte
 * (a BOM included); base64 is standard with padding.
 *
 * Lines are written straight into one growing byte buffer per batch. A UTF-8 value is escaped as bytes
 * (quote, backslash and control characters — exactly what `JSON.stringify` escapes in a string decoded
 * from valid UTF-8, since every byte of a multi-byte sequence is ≥ 0x80), so no string is made of the
 * value: decoding it, `JSON.stringify` and re-encoding cost ~10 µs per 1 KiB value on Node 20 and made
 * most of the sink's garbage. The escaping runs in a small WebAssembly SIMD module (wasm/escape.wat,
 * ~0.5 µs per 1 KiB JSON value against ~5 µs for the same loop in JavaScript, which stays as the
 * fallback where WebAssembly SIMD is unavailable).
 */
import { Buffer, isUtf8 } from 'node:buffer';
import type { SinkMessage } from '@junction/sdk-connector';
import type { FileSinkConfig } from './config.js';
import { ESCAPE_WASM_BASE64 } from './escape-wasm.js';

/**
 * Buffer's own encoders, without `write()`'s argument juggling (a measurable part of a 1 KiB line on
 * Node 20). They exist on every Buffer; @types/node does not declare them. `length` is not checked:
 * the caller reserved room.
 */
type RawWrites = Buffer & { utf8Write(s: string, offset: number): number; latin1Write(s: string, offset: number): number };

function toBase64(v: Uint8Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

/** Per byte: 0 = copy, 1 = `\u00XX`, else the letter after the backslash. */
const ESCAPE = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) ESCAPE[c] = 1;
ESCAPE[0x08] = 0x62; // \b
ESCAPE[0x09] = 0x74; // \t
ESCAPE[0x0a] = 0x6e; // \n
ESCAPE[0x0c] = 0x66; // \f
ESCAPE[0x0d] = 0x72; // \r
ESCAPE[0x22] = 0x22; // \"
ESCAPE[0x5c] = 0x5c; // \\
const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Clean runs at least this long are copied natively rather than byte by byte. */
const RUN = 32;

/** Writes `v`'s bytes JSON-escaped into `out` at `pos`; returns the new position. `out` must have room for 6 × v.length. */
export function escapeInto(v: Uint8Array, out: Uint8Array, pos: number): number {
  const n = v.length;
  let start = 0;
  for (let i = 0; i < n; i++) {
    const e = ESCAPE[v[i]!]!;
    if (e === 0) continue;
    if (i - start > RUN) {
      out.set(v.subarray(start, i), pos);
      pos += i - start;
    } else {
      for (let j = start; j < i; j++) out[pos++] = v[j]!;
    }
    out[pos++] = 0x5c;
    if (e !== 1) {
      out[pos++] = e;
    } else {
      const c = v[i]!;
      out[pos++] = 0x75;
      out[pos++] = 0x30;
      out[pos++] = 0x30;
      out[pos++] = HEX[c >> 4]!;
      out[pos++] = HEX[c & 15]!;
    }
    start = i + 1;
  }
  if (n - start > RUN) {
    out.set(v.subarray(start, n), pos);
    pos += n - start;
  } else {
    for (let j = start; j < n; j++) out[pos++] = v[j]!;
  }
  return pos;
}

/** The little of the WebAssembly API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
interface WasmEscaper {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  escape(dst: number, src: number, len: number): number;
}

/** Where the caller's bytes start in the module's memory (below: its tables). */
const WASM_BASE = 1024;
const WASM_PAGE = 65536;
/** A thread's module instance keeps at most this much memory between batches. */
const WASM_KEEP_BYTES = 64 * 1024 * 1024;

let wasm: WasmEscaper | null | undefined;
/** The LineBuffer that may use the thread's module memory now (the newest one). */
let wasmOwner: LineBuffer | undefined;

function wasmEscaper(): WasmEscaper | null {
  if (wasm === undefined) {
    try {
      const api = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
      if (!api) throw new Error('no WebAssembly');
      const instance = new api.Instance(new api.Module(Buffer.from(ESCAPE_WASM_BASE64, 'base64')));
      wasm = instance.exports as unknown as WasmEscaper;
    } catch {
      wasm = null; // no WebAssembly SIMD here: the JavaScript loop does the same
    }
  }
  return wasm;
}

/**
 * The JSON lines of one batch, appended message by message into one buffer. Where WebAssembly SIMD is
 * available the buffer is the thread's module memory, shared by every LineBuffer of the thread: a
 * LineBuffer must be filled and copied out synchronously (no await in between), and one made later
 * takes the memory over (the earlier one then throws rather than read another batch's bytes).
 */
export class LineBuffer {
  private buf: Buffer;
  private readonly base: number;
  private pos: number;
  private readonly w: WasmEscaper | null;
  private readonly headerJson = new WeakMap<object, string>();

  constructor(
    private readonly valueEncoding: FileSinkConfig['valueEncoding'],
    initialBytes = 64 * 1024,
    useWasm = true,
  ) {
    this.w = useWasm ? wasmEscaper() : null;
    if (this.w) {
      wasmOwner = this;
      if (this.w.memory.buffer.byteLength > WASM_KEEP_BYTES) {
        // A batch of huge or escape-heavy values grew the memory: start afresh rather than keep it.
        wasm = undefined;
        this.w = wasmEscaper()!;
      }
      this.base = WASM_BASE;
      this.buf = Buffer.from(this.w.memory.buffer);
    } else {
      this.base = 0;
      this.buf = Buffer.allocUnsafe(Math.max(1024, initialBytes));
    }
    this.pos = this.base;
    this.reserve(Math.max(1024, initialBytes));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos - this.base;
  }

  /** Appends `m` as one line; returns why it cannot be written (and writes nothing) or undefined. */
  append(m: SinkMessage): string | undefined {
    this.check();
    const bytes = m.value;
    let base64: string | undefined;
    if (this.valueEncoding === 'base64') {
      base64 = toBase64(bytes);
    } else if (!isUtf8(bytes)) {
      if (this.valueEncoding === 'utf8') return 'value is not valid UTF-8 (valueEncoding is "utf8")';
      base64 = toBase64(bytes);
    }
    let headers = this.headerJson.get(m.headers);
    if (headers === undefined) {
      headers = JSON.stringify(m.headers);
      this.headerJson.set(m.headers, headers);
    }
    const key = m.key === undefined ? 'null' : JSON.stringify(m.key);
    const prefix = `{"offset":${m.offset},"timestamp":${m.timestamp},"key":${key},"headers":${headers},"value":"`;
    const len = bytes.length;
    // 6 × len: the worst escaping (and the in-place layout of the module, input at 5 × len); 16: its vector stores.
    this.reserve(prefix.length * 3 + (base64 === undefined ? len * 6 : base64.length) + 48);
    const buf = this.buf as RawWrites;
    let pos = this.pos;
    pos += buf.utf8Write(prefix, pos);
    if (base64 !== undefined) {
      pos += buf.latin1Write(base64, pos);
      pos += buf.latin1Write('","base64":true}', pos);
    } else {
      if (this.w) {
        buf.set(bytes, pos + 5 * len);
        pos = this.w.escape(pos, pos + 5 * len, len);
      } else {
        pos = escapeInto(bytes, buf, pos);
      }
      buf[pos++] = 0x22; // "
      buf[pos++] = 0x7d; // }
    }
    buf[pos++] = 0x0a;
    this.pos = pos;
    return undefined;
  }

  /**
   * Bytes [start, end) written so far, copied into `into` when it is large enough (else into a new
   * buffer with some room to spare); returns the buffer holding them from position 0.
   */
  copyInto(into: Buffer | undefined, start: number, end: number): Buffer {
    this.check();
    if (start < 0 || end > this.length || start > end) throw new RangeError(`bytes ${start}..${end} of ${this.length}`);
    const n = end - start;
    const out = into !== undefined && into.length >= n ? into : Buffer.allocUnsafeSlow(Math.ceil(n * 1.25));
    this.buf.copy(out, 0, this.base + start, this.base + end);
    return out;
  }

  /** A copy of bytes [start, end) written so far. */
  copy(start: number, end: number): Buffer {
    this.check();
    if (start < 0 || end > this.length || start > end) throw new RangeError(`bytes ${start}..${end} of ${this.length}`);
    return Buffer.from(this.buf.subarray(this.base + start, this.base + end));
  }

  private check(): void {
    if (this.w && (wasmOwner !== this || wasm !== this.w)) {
      throw new Error(
        "LineBuffer used after another one took the thread's escape memory: fill and copy a LineBuffer without awaiting in between",
      );
    }
  }

  private reserve(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    if (this.w) {
      const have = this.w.memory.buffer.byteLength;
      const want = Math.max(need, have * 2);
      this.w.memory.grow(Math.ceil((want - have) / WASM_PAGE));
      this.buf = Buffer.from(this.w.memory.buffer);
      return;
    }
    const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

/** One message as one line (tests and tools; the sink appends into a LineBuffer). */
export function encodeLine(m: SinkMessage, valueEncoding: FileSinkConfig['valueEncoding']): { line: string } | { rejected: string } {
  const lb = new LineBuffer(valueEncoding, 1024);
  const rejected = lb.append(m);
  return rejected === undefined ? { line: lb.copy(0, lb.length).toString('utf8') } : { rejected };
}
