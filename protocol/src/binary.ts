/**
 * The binary batch codec: the fast path between the client and the broker. JSON stays the default
 * for people and curl; clients that send `Content-Type: application/vnd.junction.batch` (produce) or
 * `Accept: application/vnd.junction.batch` (fetch, browse) skip JSON parsing and base64 entirely, so a
 * message value travels as the very bytes the producer gave.
 *
 * A batch is a sequence of frames, each `u32le length` followed by `length` bytes:
 *
 * produce frame (client → broker)
 *   u8  flags          bit0: key present, bit1: msgId present
 *   [u16le len, utf-8] key       (when bit0)
 *   [u16le len, utf-8] msgId     (when bit1)
 *   u16le headerCount, then per header: u16le nameLen, name utf-8, u32le valueLen, value utf-8
 *   value              the rest of the frame
 *
 * message frame (broker → client)
 *   u32le partition
 *   f64le offset       (offsets and timestamps are safe integers, so a double carries them exactly)
 *   f64le timestamp    (ms since epoch)
 *   u32le deliveryCount (0 when browsing)
 *   u16le len, utf-8   deliveryId (empty when browsing): opaque — engines choose its form
 *   then the produce-frame layout from `flags` on (msgId is never sent back)
 */
export const BATCH_CONTENT_TYPE = 'application/vnd.junction.batch';

export const FLAG_KEY = 1;
export const FLAG_MSG_ID = 2;

/** A message as produced. */
export interface ProduceMessage {
  value: Uint8Array;
  key?: string | undefined;
  msgId?: string | undefined;
  headers?: Record<string, string> | undefined;
}

/** A message as delivered or browsed. `deliveryCount` is 0 for browsing. */
export interface WireMessage {
  partition: number;
  offset: number;
  timestamp: number;
  deliveryCount: number;
  /** What ack / nack / dead-letter take; empty when browsing. Opaque to clients. */
  deliveryId: string;
  key?: string | undefined;
  headers: Record<string, string>;
  value: Uint8Array;
}

/** Thrown by the decoders on bytes that do not form a valid batch; `index` is the frame that failed. */
export class BatchDecodeError extends Error {
  override name = 'BatchDecodeError';
  constructor(
    message: string,
    readonly index: number,
  ) {
    super(message);
  }
}

const MAX_SHORT = 0xffff;

function headerBytes(headers: Record<string, string> | undefined): { size: number; entries: [Buffer, Buffer][] } {
  const entries: [Buffer, Buffer][] = [];
  let size = 2;
  if (headers) {
    for (const name in headers) {
      const n = Buffer.from(name, 'utf8');
      const v = Buffer.from(headers[name] ?? '', 'utf8');
      if (n.length > MAX_SHORT) throw new RangeError(`header name longer than ${MAX_SHORT} bytes`);
      entries.push([n, v]);
      size += 2 + n.length + 4 + v.length;
    }
  }
  if (entries.length > MAX_SHORT) throw new RangeError(`more than ${MAX_SHORT} headers`);
  return { size, entries };
}

function shortString(s: string | undefined, what: string): Buffer | undefined {
  if (s === undefined) return undefined;
  const b = Buffer.from(s, 'utf8');
  if (b.length > MAX_SHORT) throw new RangeError(`${what} longer than ${MAX_SHORT} bytes`);
  return b;
}

interface Prepared {
  key: Buffer | undefined;
  msgId: Buffer | undefined;
  headers: { size: number; entries: [Buffer, Buffer][] };
  value: Uint8Array;
  bodySize: number;
}

function prepare(
  m: { key?: string | undefined; headers?: Record<string, string> | undefined; value: Uint8Array },
  msgId: string | undefined,
): Prepared {
  const key = shortString(m.key, 'key');
  const id = shortString(msgId, 'msgId');
  const headers = headerBytes(m.headers);
  const bodySize = 1 + (key ? 2 + key.length : 0) + (id ? 2 + id.length : 0) + headers.size + m.value.length;
  return { key, msgId: id, headers, value: m.value, bodySize };
}

function writeBody(buf: Buffer, pos: number, p: Prepared): number {
  buf[pos++] = (p.key ? FLAG_KEY : 0) | (p.msgId ? FLAG_MSG_ID : 0);
  if (p.key) {
    buf.writeUInt16LE(p.key.length, pos);
    pos += 2;
    pos += p.key.copy(buf, pos);
  }
  if (p.msgId) {
    buf.writeUInt16LE(p.msgId.length, pos);
    pos += 2;
    pos += p.msgId.copy(buf, pos);
  }
  buf.writeUInt16LE(p.headers.entries.length, pos);
  pos += 2;
  for (const [n, v] of p.headers.entries) {
    buf.writeUInt16LE(n.length, pos);
    pos += 2;
    pos += n.copy(buf, pos);
    buf.writeUInt32LE(v.length, pos);
    pos += 4;
    pos += v.copy(buf, pos);
  }
  buf.set(p.value, pos);
  return pos + p.value.length;
}

/** Encodes messages to produce as one binary batch. Throws RangeError on a key, msgId or header name over 64 KiB. */
export function encodeProduceBatch(messages: readonly ProduceMessage[]): Buffer {
  const prepared = messages.map((m) => prepare(m, m.msgId));
  let total = 0;
  for (const p of prepared) total += 4 + p.bodySize;
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const p of prepared) {
    buf.writeUInt32LE(p.bodySize, pos);
    pos = writeBody(buf, pos + 4, p);
  }
  return buf;
}

const MSG_PREFIX = 4 + 8 + 8 + 4 + 2;

/** Buffer's native writer, without `write()`'s argument handling (most of the cost of a short string). */
/** Buffer's native decoder, without `toString()`'s argument handling. */
type RawSlices = Buffer & { utf8Slice(start: number, end: number): string };

type RawWrites = Buffer & {
  latin1Write(s: string, offset: number, length: number): number;
  utf8Write(s: string, offset: number, length: number): number;
};

/** True when `headers` has no own enumerable property (the common case: no headers). */
function noHeaders(headers: Record<string, string> | undefined): boolean {
  for (const _ in headers) return false;
  return true;
}

/**
 * Encodes delivered or browsed messages as one binary batch. One pass sizes the batch, one writes it:
 * a message without key and headers (the common case) costs no object of its own, only its bytes.
 */
export function encodeMessageBatch(messages: readonly WireMessage[]): Buffer {
  const n = messages.length;
  // Per message: the deliveryId's byte length, and the prepared body of a message with key or headers.
  const idLens = new Uint32Array(n);
  let prepared: (Prepared | undefined)[] | undefined;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    const idLen = Buffer.byteLength(m.deliveryId, 'utf8');
    if (idLen > MAX_SHORT) throw new RangeError(`deliveryId longer than ${MAX_SHORT} bytes`);
    idLens[i] = idLen;
    let bodySize: number;
    if (m.key === undefined && noHeaders(m.headers)) {
      bodySize = 1 + 2 + m.value.length;
    } else {
      const p = prepare(m, undefined);
      (prepared ??= [])[i] = p;
      bodySize = p.bodySize;
    }
    total += 4 + MSG_PREFIX + idLen + bodySize;
  }
  const buf = Buffer.allocUnsafe(total) as RawWrites;
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    const idLen = idLens[i]!;
    const p = prepared?.[i];
    const bodySize = p ? p.bodySize : 1 + 2 + m.value.length;
    buf.writeUInt32LE(MSG_PREFIX + idLen + bodySize, pos);
    buf.writeUInt32LE(m.partition, pos + 4);
    buf.writeDoubleLE(m.offset, pos + 8);
    buf.writeDoubleLE(m.timestamp, pos + 16);
    buf.writeUInt32LE(m.deliveryCount, pos + 24);
    buf.writeUInt16LE(idLen, pos + 28);
    pos += 4 + MSG_PREFIX;
    // Equal lengths: every character is ASCII, which latin1 writes as is (and faster).
    if (idLen === m.deliveryId.length) buf.latin1Write(m.deliveryId, pos, idLen);
    else buf.utf8Write(m.deliveryId, pos, idLen);
    pos += idLen;
    if (p) {
      pos = writeBody(buf, pos, p);
    } else {
      buf[pos] = 0;
      buf[pos + 1] = 0;
      buf[pos + 2] = 0;
      buf.set(m.value, pos + 3);
      pos += 3 + m.value.length;
    }
  }
  return buf;
}

interface DecodedBody {
  key: string | undefined;
  msgId: string | undefined;
  headers: Record<string, string>;
  value: Buffer;
}

function decodeBody(buf: Buffer, start: number, end: number, index: number): DecodedBody {
  let pos = start;
  const need = (n: number) => {
    if (pos + n > end) throw new BatchDecodeError(`frame ${index} is truncated`, index);
  };
  need(1);
  const flags = buf[pos++]!;
  if (flags & ~(FLAG_KEY | FLAG_MSG_ID)) throw new BatchDecodeError(`frame ${index} has unknown flags ${flags}`, index);
  let key: string | undefined;
  let msgId: string | undefined;
  if (flags & FLAG_KEY) {
    need(2);
    const n = buf.readUInt16LE(pos);
    pos += 2;
    need(n);
    key = buf.toString('utf8', pos, pos + n);
    pos += n;
  }
  if (flags & FLAG_MSG_ID) {
    need(2);
    const n = buf.readUInt16LE(pos);
    pos += 2;
    need(n);
    msgId = buf.toString('utf8', pos, pos + n);
    pos += n;
  }
  need(2);
  const count = buf.readUInt16LE(pos);
  pos += 2;
  const headers: Record<string, string> = {};
  for (let h = 0; h < count; h++) {
    need(2);
    const nl = buf.readUInt16LE(pos);
    pos += 2;
    need(nl + 4);
    const name = buf.toString('utf8', pos, pos + nl);
    pos += nl;
    const vl = buf.readUInt32LE(pos);
    pos += 4;
    need(vl);
    putHeader(headers, name, buf.toString('utf8', pos, pos + vl));
    pos += vl;
  }
  return { key, msgId, headers, value: buf.subarray(pos, end) };
}

/**
 * Decodes a binary produce batch. Values are views into `buf` (no copy). Throws BatchDecodeError on
 * any truncated or malformed frame; `maxFrames` bounds the work a hostile body can cause.
 */
export function decodeProduceBatch(buf: Buffer, maxFrames = Number.MAX_SAFE_INTEGER): ProduceMessage[] {
  const out: ProduceMessage[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const index = out.length;
    if (index >= maxFrames) throw new BatchDecodeError(`batch has more than ${maxFrames} messages`, index);
    if (pos + 4 > buf.length) throw new BatchDecodeError(`frame ${index} length is truncated`, index);
    const len = buf.readUInt32LE(pos);
    const end = pos + 4 + len;
    if (end > buf.length) throw new BatchDecodeError(`frame ${index} is truncated`, index);
    const b = decodeBody(buf, pos + 4, end, index);
    const m: ProduceMessage = { value: b.value, headers: b.headers };
    if (b.key !== undefined) m.key = b.key;
    if (b.msgId !== undefined) m.msgId = b.msgId;
    out.push(m);
    pos = end;
  }
  return out;
}

/** Decodes a binary message batch as the broker sends it. Values are views into `buf`. */
export function decodeMessageBatch(buf: Buffer): WireMessage[] {
  const out: WireMessage[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const index = out.length;
    if (pos + 4 > buf.length) throw new BatchDecodeError(`frame ${index} length is truncated`, index);
    const len = buf.readUInt32LE(pos);
    const end = pos + 4 + len;
    if (end > buf.length || len < MSG_PREFIX) throw new BatchDecodeError(`frame ${index} is truncated`, index);
    const idLen = buf.readUInt16LE(pos + 28);
    const bodyStart = pos + 4 + MSG_PREFIX + idLen;
    if (bodyStart > end) throw new BatchDecodeError(`frame ${index} is truncated`, index);
    const partition = buf.readUInt32LE(pos + 4);
    const offset = buf.readDoubleLE(pos + 8);
    const timestamp = buf.readDoubleLE(pos + 16);
    const deliveryCount = buf.readUInt32LE(pos + 24);
    const deliveryId = idLen === 0 ? '' : (buf as RawSlices).utf8Slice(pos + 4 + MSG_PREFIX, bodyStart);
    // The common frame: no flags, no headers (3 bytes), then the value — no decodeBody objects.
    if (bodyStart + 3 <= end && buf[bodyStart] === 0 && buf[bodyStart + 1] === 0 && buf[bodyStart + 2] === 0) {
      out.push({ partition, offset, timestamp, deliveryCount, deliveryId, headers: {}, value: buf.subarray(bodyStart + 3, end) });
    } else {
      const b = decodeBody(buf, bodyStart, end, index);
      const m: WireMessage = { partition, offset, timestamp, deliveryCount, deliveryId, headers: b.headers, value: b.value };
      if (b.key !== undefined) m.key = b.key;
      out.push(m);
    }
    pos = end;
  }
  return out;
}

/**
 * Sets a header on a headers object. A header named `__proto__` is data like any other: a plain
 * assignment would set the object's prototype instead and lose it.
 */
export function putHeader(headers: Record<string, string>, name: string, value: string): void {
  if (name === '__proto__') Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
  else headers[name] = value;
}

/**
 * The deliveryId the embedded engine gives a delivery: one attempt of one message in one group, in one
 * epoch of that group's partition — `<partition>-<offset>-<attempt>-<epoch>`. The epoch is a token
 * (1–7 characters of [0-9a-z]) that changes whenever the group is created (again) or seeks, so that an id
 * handed out by an earlier incarnation of the station or group, or before a seek, never settles a
 * delivery of the current one. Without an epoch, the older three-part form. Clients treat deliveryIds as
 * opaque (other engines use other forms).
 */
export function deliveryId(partition: number, offset: number, attempt: number, epoch?: string): string {
  return epoch === undefined ? `${partition}-${offset}-${attempt}` : `${partition}-${offset}-${attempt}-${epoch}`;
}

/** A parsed deliveryId; `epoch` is absent for the three-part form. */
export interface ParsedDeliveryId {
  partition: number;
  offset: number;
  attempt: number;
  epoch?: string | undefined;
}

/**
 * Parses a deliveryId of the form `<partition>-<offset>-<attempt>[-<epoch>]`; undefined when it is not
 * one (an epoch is 1–7 characters of [0-9a-z]).
 */
export function parseDeliveryId(id: string): ParsedDeliveryId | undefined {
  // Hand-rolled: acks parse a thousand of these per request, and a regex costs several times more.
  const a = id.indexOf('-');
  const b = a < 0 ? -1 : id.indexOf('-', a + 1);
  if (a < 1 || b < a + 2 || b === id.length - 1 || a > 9 || b - a - 1 > 16) return undefined;
  const c = id.indexOf('-', b + 1);
  const attemptEnd = c < 0 ? id.length : c;
  if (attemptEnd - b - 1 > 9 || attemptEnd === b + 1) return undefined;
  const partition = digits(id, 0, a);
  const offset = digits(id, a + 1, b);
  const attempt = digits(id, b + 1, attemptEnd);
  if (partition < 0 || offset < 0 || attempt < 0 || !Number.isSafeInteger(offset)) return undefined;
  if (c < 0) return { partition, offset, attempt };
  const epoch = id.slice(c + 1);
  if (epoch.length < 1 || epoch.length > 7 || !isEpochToken(epoch)) return undefined;
  return { partition, offset, attempt, epoch };
}

/** True for 1–7 characters of [0-9a-z] (what `epochToken` makes). */
function isEpochToken(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (!((ch >= 48 && ch <= 57) || (ch >= 97 && ch <= 122))) return false;
  }
  return true;
}

/** An epoch token of a 32-bit number: base 36, 1–7 characters. */
export function epochToken(n: number): string {
  return (n >>> 0).toString(36);
}

function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** Numbers per message in `PackedMessages.nums`. */
export const PACKED_FIELDS = 5;
/** Where each number sits among a message's `PACKED_FIELDS` in `PackedMessages.nums`. */
export const PackedField = { offset: 0, timestamp: 1, start: 2, length: 3, headers: 4 } as const;

/**
 * Delivered messages of one partition in packed form, with no object per message (the broker's
 * `DeliveryChunk` has this shape): message `i`'s numbers are `nums[i * PACKED_FIELDS + PackedField.x]`,
 * its value `data[start, start + length)`.
 */
export interface PackedMessages {
  partition: number;
  count: number;
  data: Uint8Array;
  nums: Float64Array;
  /** Distinct headers objects; `PackedField.headers` indexes into it. */
  headers: readonly Record<string, string>[];
  /** Keys by message; absent when no message has one. */
  keys?: readonly (string | undefined)[] | undefined;
  /** Delivery counts by message; absent when every one is 1. */
  attempts?: readonly number[] | undefined;
  /** The deliveryIds are `deliveryId(partition, offset, attempt, epoch)` unless `deliveryIds` is given. */
  epoch?: string | undefined;
  deliveryIds?: readonly string[] | undefined;
}

/** Decimal digits of a non-negative safe integer. */
function decimalLength(n: number): number {
  if (n < 1e5) return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 1e4 ? 4 : 5;
  if (n < 1e10) return n < 1e6 ? 6 : n < 1e7 ? 7 : n < 1e8 ? 8 : n < 1e9 ? 9 : 10;
  let len = 10;
  for (let m = Math.floor(n / 1e10); m >= 1; m = Math.floor(m / 10)) len++;
  return len;
}

/** Writes a non-negative safe integer of `len` decimal digits at `pos`; returns the position after it. */
function writeDecimal(buf: Buffer, pos: number, n: number, len: number): number {
  let i = pos + len - 1;
  // Above 2^31, double division until the rest fits a 32-bit integer (whose division is a multiply).
  for (; n > 0x7fffffff; i--) {
    const q = Math.floor(n / 10);
    buf[i] = 48 + (n - q * 10);
    n = q;
  }
  for (; i >= pos; i--) {
    const q = (n / 10) | 0;
    buf[i] = 48 + (n - q * 10);
    n = q;
  }
  return pos + len;
}

/**
 * Encodes packed deliveries as one binary batch: the very bytes `encodeMessageBatch` gives for the same
 * messages (one `WireMessage` each, in order), without building those objects or their deliveryId
 * strings — the default-form ids are written digit by digit. Throws RangeError like `encodeMessageBatch`.
 */
export function encodePackedMessageBatch(parts: readonly PackedMessages[], alloc?: (bytes: number) => Buffer): Buffer {
  // Per part: the prepared bodies of its messages with a key or headers (the rare case).
  const preparedByPart: ((Prepared | undefined)[] | undefined)[] = [];
  const epochBytes: number[] = [];
  let total = 0;
  for (const c of parts) {
    const { nums, keys, attempts, deliveryIds } = c;
    const epoch = c.epoch;
    if (epoch !== undefined && Buffer.byteLength(epoch, 'utf8') !== epoch.length) throw new RangeError('epoch is not ASCII');
    const epochLen = epoch === undefined ? 0 : 1 + epoch.length;
    epochBytes.push(epochLen);
    const partLen = decimalLength(c.partition);
    // Whether each distinct headers object is empty, checked once per object rather than per message.
    const plain = c.headers.map(noHeaders);
    let prepared: (Prepared | undefined)[] | undefined;
    for (let i = 0; i < c.count; i++) {
      const f = i * PACKED_FIELDS;
      // `| 0`: positions, lengths and indexes fit 32 bits, and V8 indexes and adds small integers faster than doubles.
      const length = nums[f + PackedField.length]! | 0;
      let idLen: number;
      if (deliveryIds !== undefined) {
        idLen = Buffer.byteLength(deliveryIds[i]!, 'utf8');
        if (idLen > MAX_SHORT) throw new RangeError(`deliveryId longer than ${MAX_SHORT} bytes`);
      } else {
        idLen = partLen + 1 + decimalLength(nums[f + PackedField.offset]!) + 1 + decimalLength(attempts?.[i] ?? 1) + epochLen;
      }
      const key = keys?.[i];
      const hi = nums[f + PackedField.headers]! | 0;
      let bodySize: number;
      if (key === undefined && plain[hi] === true) bodySize = 1 + 2 + length;
      else {
        const headers = c.headers[hi];
        const start = nums[f + PackedField.start]! | 0;
        const p = prepare({ key, headers, value: c.data.subarray(start, start + length) }, undefined);
        (prepared ??= [])[i] = p;
        bodySize = p.bodySize;
      }
      total += 4 + MSG_PREFIX + idLen + bodySize;
    }
    preparedByPart.push(prepared);
  }
  // `alloc`: a buffer of at least `total` bytes (a reused one: the answer is its first `total` bytes).
  const buf = (alloc ? alloc(total) : Buffer.allocUnsafe(total)) as RawWrites;
  let pos = 0;
  for (let k = 0; k < parts.length; k++) {
    const c = parts[k]!;
    const { nums, attempts, deliveryIds, partition, epoch } = c;
    // Each value copied through a plain Uint8Array view (Buffer's `subarray` and `copy` cost more per call).
    const ab = c.data.buffer;
    const base = c.data.byteOffset;
    const prepared = preparedByPart[k];
    const partLen = decimalLength(partition);
    const epochLen = epochBytes[k]!;
    for (let i = 0; i < c.count; i++) {
      const f = i * PACKED_FIELDS;
      const offset = nums[f + PackedField.offset]!;
      const start = nums[f + PackedField.start]! | 0;
      const length = nums[f + PackedField.length]! | 0;
      const attempt = attempts?.[i] ?? 1;
      const frame = pos;
      pos += 4 + MSG_PREFIX;
      if (deliveryIds !== undefined) {
        const id = deliveryIds[i]!;
        const idLen = Buffer.byteLength(id, 'utf8');
        if (idLen === id.length) buf.latin1Write(id, pos, idLen);
        else buf.utf8Write(id, pos, idLen);
        pos += idLen;
      } else {
        pos = writeDecimal(buf, pos, partition, partLen);
        buf[pos++] = 45; // '-'
        pos = writeDecimal(buf, pos, offset, decimalLength(offset));
        buf[pos++] = 45;
        pos = writeDecimal(buf, pos, attempt, decimalLength(attempt));
        if (epoch !== undefined) {
          buf[pos++] = 45;
          buf.latin1Write(epoch, pos, epochLen - 1);
          pos += epochLen - 1;
        }
      }
      const idLen = pos - frame - 4 - MSG_PREFIX;
      const p = prepared?.[i];
      if (p) pos = writeBody(buf, pos, p);
      else {
        buf[pos] = 0;
        buf[pos + 1] = 0;
        buf[pos + 2] = 0;
        buf.set(new Uint8Array(ab, base + start, length), pos + 3);
        pos += 3 + length;
      }
      buf.writeUInt32LE(pos - frame - 4, frame);
      buf.writeUInt32LE(partition, frame + 4);
      buf.writeDoubleLE(offset, frame + 8);
      buf.writeDoubleLE(nums[f + PackedField.timestamp]!, frame + 16);
      buf.writeUInt32LE(attempt, frame + 24);
      buf.writeUInt16LE(idLen, frame + 28);
    }
  }
  if (pos !== total) throw new Error(`packed batch encoder bug: wrote ${pos} of ${total} bytes`);
  return buf.byteLength === total ? buf : buf.subarray(0, total);
}
