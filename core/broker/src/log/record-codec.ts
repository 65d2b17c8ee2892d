/**
 * The on-disk record frame of the partition log. One frame per record, little-endian:
 *
 * ```
 *  0  u32  length      bytes after this field (crc + body); a frame is 4 + length bytes
 *  4  u32  crc32       zlib crc32 of bytes [8, 4 + length)
 *  8  u8   magic       FRAME_MAGIC (format version 1)
 *  9  u8   flags       bit 0: key present, bit 1: msgId present
 * 10  f64  offset
 * 18  f64  timestamp   ms since the epoch
 * 26  [u16 len, utf8]  key      (when flag bit 0)
 *     [u16 len, utf8]  msgId    (when flag bit 1)
 *     u16  header count, then per header: u16 name len, utf8 name, u32 value len, utf8 value
 *     value            the rest of the frame
 * ```
 *
 * The length + crc framing lets a scanner tell a torn tail (a frame that runs past the end of the file,
 * with no valid frame after it) from a damaged middle record (bad length or crc followed by valid
 * frames): see `checkFrame` and `findNextFrame`.
 */
import { crc32 } from 'node:zlib';
import { ErrorCode, JunctionError } from '../errors.js';
import type { LogRecord, RecordInput } from './types.js';
import { putHeader } from '@junction/protocol';

/** Format/version byte at position 8 of every frame. */
export const FRAME_MAGIC = 0xa1;
/** Bytes before the variable part: length, crc, magic, flags, offset, timestamp. */
export const FRAME_FIXED_BYTES = 26;
/** The smallest frame: fixed part plus an empty header count, no key, no msgId, empty value. */
export const MIN_FRAME_BYTES = FRAME_FIXED_BYTES + 2;
/** Frames larger than this are rejected on write and treated as damage on read. */
export const MAX_FRAME_BYTES = 1024 * 1024 * 1024;

const FLAG_KEY = 1;
/** Flag bit of a frame that carries a msgId. */
export const FRAME_FLAG_MSG_ID = 2;
const FLAG_MSG_ID = FRAME_FLAG_MSG_ID;
/** Every flag bit this version defines; a frame with another bit set is not one of ours. */
export const FLAGS_KNOWN = FLAG_KEY | FLAG_MSG_ID;
const MAX_U16 = 0xffff;

/** Why a frame is not valid (negative, so a size and a reason share one number on the hot path). */
export const FrameFault = {
  /** The frame, or its length field, runs past the end of the valid bytes. */
  INCOMPLETE: -1,
  LENGTH: -2,
  MAGIC: -3,
  CRC: -4,
  /** Not an integral offset, or not above the previous offset. */
  OFFSET: -5,
} as const;
export type FrameFault = (typeof FrameFault)[keyof typeof FrameFault];

/**
 * Encodes `records` with offsets `firstOffset, firstOffset + 1, …` into one buffer (one allocation, one
 * pass). When `frameStarts` is given, the start position of each frame is pushed onto it.
 * Throws MESSAGE_TOO_LARGE when a key, msgId or header name exceeds 65535 UTF-8 bytes, a record has more
 * than 65535 headers, or a frame would exceed MAX_FRAME_BYTES.
 */
export function encodeRecords(
  records: readonly RecordInput[],
  firstOffset: number,
  frameStarts?: number[],
  alloc?: (bytes: number) => Buffer,
): Buffer {
  // Upper bound of the encoded size (utf8 is at most 3 bytes per UTF-16 unit), so strings are written
  // once and their lengths back-filled instead of measured first.
  let bound = 0;
  let lastH: Record<string, string> | undefined;
  let lastHBound = 0;
  for (const r of records) {
    bound += MIN_FRAME_BYTES + r.value.byteLength;
    if (r.key !== undefined) bound += 2 + r.key.length * 3;
    if (r.msgId !== undefined) bound += 2 + r.msgId.length * 3;
    const h = r.headers;
    if (h !== undefined) {
      if (h !== lastH) {
        lastHBound = 0;
        for (const name of Object.keys(h)) lastHBound += 6 + (name.length + (h[name] as string).length) * 3;
        lastH = h;
      }
      bound += lastHBound;
    }
  }
  // `alloc`: a buffer of at least `bound` bytes (possibly a reused one); the frames are its first bytes.
  const buf = (alloc ? alloc(bound) : Buffer.allocUnsafe(bound)) as RawWrites;
  let p = 0;
  // The previous record's header section (count included): records of a batch often carry the same
  // headers (one object from a source, or equal ones from a client), whose bytes are then copied
  // instead of encoded again.
  let prevH: Record<string, string> | undefined;
  let prevHStart = 0;
  let prevHEnd = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as RecordInput;
    const start = p;
    frameStarts?.push(start);
    let flags = 0;
    buf[start + 8] = FRAME_MAGIC;
    buf.writeDoubleLE(firstOffset + i, start + 10);
    buf.writeDoubleLE(r.timestamp, start + 18);
    p = start + FRAME_FIXED_BYTES;
    if (r.key !== undefined) {
      flags |= FLAG_KEY;
      p = writeShortString(buf, p, r.key, 'key');
    }
    if (r.msgId !== undefined) {
      flags |= FLAG_MSG_ID;
      p = writeShortString(buf, p, r.msgId, 'msgId');
    }
    buf[start + 9] = flags;
    const h = r.headers;
    if (h !== undefined && prevH !== undefined && (h === prevH || sameEntries(h, prevH))) {
      buf.copyWithin(p, prevHStart, prevHEnd);
      p += prevHEnd - prevHStart;
    } else {
      const countPos = p;
      p += 2;
      let count = 0;
      if (h !== undefined) {
        for (const name of Object.keys(h)) {
          p = writeShortString(buf, p, name, 'header name');
          const vlen = buf.utf8Write(h[name] as string, p + 4);
          buf.writeUInt32LE(vlen, p);
          p += 4 + vlen;
          count++;
        }
        if (count > MAX_U16) throw tooLarge(`a record has ${count} headers; at most ${MAX_U16} fit`);
      }
      buf.writeUInt16LE(count, countPos);
      prevH = h;
      prevHStart = countPos;
      prevHEnd = p;
    }
    buf.set(r.value, p);
    p += r.value.byteLength;
    const size = p - start;
    if (size > MAX_FRAME_BYTES) throw tooLarge(`a record of ${size} bytes exceeds the frame limit of ${MAX_FRAME_BYTES}`);
    buf.writeUInt32LE(size - 4, start);
    buf.writeUInt32LE(crc32(buf.subarray(start + 8, p)), start + 4);
  }
  return buf.subarray(0, p);
}

/** The same names with the same values in the same order (so the same encoded bytes). */
function sameEntries(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i] as string;
    if (k !== kb[i] || a[k] !== b[k]) return false;
  }
  return true;
}

/** Buffer's native encoder, without `write()`'s argument handling (exists on every Buffer; not in @types/node). */
type RawWrites = Buffer & { utf8Write(s: string, offset: number): number };

function writeShortString(buf: RawWrites, p: number, s: string, what: string): number {
  const len = buf.utf8Write(s, p + 2);
  if (len > MAX_U16) throw tooLarge(`${what} is ${len} bytes; at most ${MAX_U16} fit`);
  buf.writeUInt16LE(len, p);
  return p + 2 + len;
}

function tooLarge(message: string): JunctionError {
  return new JunctionError(ErrorCode.MESSAGE_TOO_LARGE, message);
}

/**
 * The size `encodeRecords` gives this record's frame, measured without encoding (the memory log uses it
 * so both logs count bytes alike). Throws MESSAGE_TOO_LARGE where `encodeRecords` would.
 */
export function encodedSize(r: RecordInput): number {
  let n = MIN_FRAME_BYTES + r.value.byteLength;
  if (r.key !== undefined) n += 2 + shortLength(r.key, 'key');
  if (r.msgId !== undefined) n += 2 + shortLength(r.msgId, 'msgId');
  const h = r.headers;
  if (h !== undefined) {
    const names = Object.keys(h);
    if (names.length > MAX_U16) throw tooLarge(`a record has ${names.length} headers; at most ${MAX_U16} fit`);
    for (const name of names) n += 6 + shortLength(name, 'header name') + Buffer.byteLength(h[name] as string, 'utf8');
  }
  if (n > MAX_FRAME_BYTES) throw tooLarge(`a record of ${n} bytes exceeds the frame limit of ${MAX_FRAME_BYTES}`);
  return n;
}

function shortLength(s: string, what: string): number {
  const len = Buffer.byteLength(s, 'utf8');
  if (len > MAX_U16) throw tooLarge(`${what} is ${len} bytes; at most ${MAX_U16} fit`);
  return len;
}

/**
 * Checks the frame that starts at `pos` of `buf`, whose valid bytes end at `end`: length in range,
 * whole frame present, magic, crc, and an integral offset greater than `prevOffset`. Returns the frame's
 * size (> 0) or a negative FrameFault. Never throws, allocates nothing. `verifyCrc` false skips the
 * checksum (bytes already known good: the structural checks still run).
 */
export function checkFrame(buf: Buffer, pos: number, end: number, prevOffset: number, verifyCrc = true): number {
  if (pos + 4 > end) return FrameFault.INCOMPLETE;
  const len = buf.readUInt32LE(pos);
  if (len < MIN_FRAME_BYTES - 4 || len > MAX_FRAME_BYTES - 4) return FrameFault.LENGTH;
  const size = 4 + len;
  if (pos + size > end) return FrameFault.INCOMPLETE;
  if (buf[pos + 8] !== FRAME_MAGIC) return FrameFault.MAGIC;
  if (verifyCrc && crc32(buf.subarray(pos + 8, pos + size)) !== buf.readUInt32LE(pos + 4)) return FrameFault.CRC;
  const offset = buf.readDoubleLE(pos + 10);
  if (!(offset > prevOffset) || !Number.isSafeInteger(offset)) return FrameFault.OFFSET;
  return size;
}

/**
 * A sentence for a FrameFault found at `pos` of `buf` (for corrupt-range details); `filePos` is the
 * position to name when `buf` is a window into a file.
 */
export function describeFault(fault: number, buf: Buffer, pos: number, end: number, prevOffset: number, filePos = pos): string {
  const at = filePos;
  switch (fault) {
    case FrameFault.INCOMPLETE:
      return `frame at position ${at} runs past the end of the valid bytes`;
    case FrameFault.LENGTH:
      return `impossible frame length ${buf.readUInt32LE(pos)} at position ${at}`;
    case FrameFault.MAGIC:
      return `unknown frame version ${buf[pos + 8]} at position ${at}`;
    case FrameFault.CRC:
      return `crc mismatch at position ${at}`;
    case FrameFault.OFFSET:
      return pos + 18 <= end
        ? `offset ${buf.readDoubleLE(pos + 10)} at position ${at} is not above the previous offset ${prevOffset}`
        : `invalid offset at position ${at}`;
    default:
      return `invalid frame at position ${at}`;
  }
}

/**
 * Resynchronises after damage: the first position in (`from`, `end`) where a complete, valid frame with
 * an offset greater than `prevOffset` starts, or -1. Candidates are filtered by magic byte, flags and
 * length before their crc is computed, so scanning garbage is cheap.
 */
export function findNextFrame(buf: Buffer, from: number, end: number, prevOffset: number): number {
  for (let p = from + 1; p + MIN_FRAME_BYTES <= end; p++) {
    if (buf[p + 8] !== FRAME_MAGIC) continue;
    if ((buf[p + 9] as number) & ~FLAGS_KNOWN) continue;
    const len = buf.readUInt32LE(p);
    if (len < MIN_FRAME_BYTES - 4 || p + 4 + len > end) continue;
    if (checkFrame(buf, p, end, prevOffset) > 0) return p;
  }
  return -1;
}

/**
 * What `decodeRecord` remembers from the previous record of a read: consecutive records usually carry
 * the same headers (the same bytes), and then share one headers object instead of decoding each.
 */
export interface HeaderMemo {
  buf: Buffer | undefined;
  start: number;
  end: number;
  headers: Record<string, string>;
}

export function newHeaderMemo(): HeaderMemo {
  return { buf: undefined, start: 0, end: 0, headers: {} };
}

/** Buffer's native decoder, without `toString()`'s argument handling (most of the cost of a short string). */
type RawSlices = Buffer & { utf8Slice(start: number, end: number): string };

/**
 * Decodes the frame at `pos`, which the caller has checked (`checkFrame`) or trusts. `value` is a view
 * into `buf` (no copy). Header names such as `__proto__` are kept as own properties. With `memo`, a
 * record whose header bytes equal the previous record's gets the same headers object: headers of read
 * records are shared, read-only data. `msgIds` false leaves msgId out (not decoded).
 */
export function decodeRecord(buf: Buffer, pos: number, memo?: HeaderMemo, msgIds = true): LogRecord {
  const raw = buf as RawSlices;
  const size = 4 + buf.readUInt32LE(pos);
  const end = pos + size;
  const flags = buf[pos + 9] as number;
  const offset = buf.readDoubleLE(pos + 10);
  const timestamp = buf.readDoubleLE(pos + 18);
  let p = pos + FRAME_FIXED_BYTES;
  let key: string | undefined;
  let msgId: string | undefined;
  if (flags & FLAG_KEY) {
    const n = buf.readUInt16LE(p);
    key = raw.utf8Slice(p + 2, p + 2 + n);
    p += 2 + n;
  }
  if (flags & FLAG_MSG_ID) {
    const n = buf.readUInt16LE(p);
    if (msgIds) msgId = raw.utf8Slice(p + 2, p + 2 + n);
    p += 2 + n;
  }
  const hStart = p;
  const count = buf.readUInt16LE(p);
  p += 2;
  let headers: Record<string, string>;
  if (count === 0) {
    headers = {};
  } else {
    for (let i = 0; i < count; i++) {
      p += 2 + buf.readUInt16LE(p);
      p += 4 + buf.readUInt32LE(p);
    }
    if (
      memo !== undefined &&
      memo.buf !== undefined &&
      memo.end - memo.start === p - hStart &&
      sameBytes(memo.buf, memo.start, buf, hStart, p - hStart)
    ) {
      headers = memo.headers;
    } else {
      headers = decodeHeaders(raw, hStart + 2, count);
      if (memo !== undefined) {
        memo.buf = buf;
        memo.start = hStart;
        memo.end = p;
        memo.headers = headers;
      }
    }
  }
  const rec: LogRecord = { offset, timestamp, headers, value: buf.subarray(p, end), size };
  if (key !== undefined) rec.key = key;
  if (msgId !== undefined) rec.msgId = msgId;
  return rec;
}

function decodeHeaders(buf: RawSlices, p: number, count: number): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const nl = buf.readUInt16LE(p);
    const name = buf.utf8Slice(p + 2, p + 2 + nl);
    p += 2 + nl;
    const vl = buf.readUInt32LE(p);
    const value = buf.utf8Slice(p + 4, p + 4 + vl);
    p += 4 + vl;
    putHeader(headers, name, value);
  }
  return headers;
}

function sameBytes(a: Buffer, aStart: number, b: Buffer, bStart: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

/** Reads the offset field of a frame without checking it. */
export function frameOffset(buf: Buffer, pos: number): number {
  return buf.readDoubleLE(pos + 10);
}

/** Reads the timestamp field of a frame without checking it. */
export function frameTimestamp(buf: Buffer, pos: number): number {
  return buf.readDoubleLE(pos + 18);
}
