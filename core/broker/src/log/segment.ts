/**
 * A segment of the file log: its bookkeeping (offsets, sizes, sparse index, damage found), and the
 * `<base>.idx` file that vouches for a sealed segment (a header summarising the segment, the sparse
 * index entries, a crc).
 */
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { INDEX_INTERVAL_BYTES, SparseIndex } from './sparse-index.js';
import { SegmentFile } from './segment-file.js';

/** Segment file names: the offset of their first record, 20 digits, zero-padded. */
export const SEGMENT_RE = /^(\d{20})\.log$/;
const INDEX_MAGIC = 0x5844494a; // "JIDX"
const INDEX_VERSION = 1;
const INDEX_HEADER_BYTES = 64;
const INDEX_ENTRY_BYTES = 20;
const INDEX_FLAG_MSG_IDS_KNOWN = 1;
const INDEX_FLAG_MSG_IDS = 2;

/** The file name of the segment whose first offset is `base`. */
export function segmentFileName(base: number): string {
  return `${String(base).padStart(20, '0')}.log`;
}

/** A segment's state in memory (see the fields). */
export interface Segment {
  base: number;
  name: string;
  logPath: string;
  idxPath: string;
  file: SegmentFile;
  index: SparseIndex;
  /** Position of the last index entry. */
  lastIndexed: number;
  /** Bytes assigned to this segment, written or queued. */
  size: number;
  /** Bytes written to the file (what reads may see). */
  written: number;
  /**
   * Bytes [0, verified) are known good: this process wrote them (from frames it checksummed) or already
   * checked their CRCs. A read checks the CRC of a frame only beyond it — a frame is checksummed once
   * per process, not on every read of the file (reads served from the shared read cache, and reads of
   * segments an earlier process wrote, still check every frame).
   */
  verified: number;
  /** Valid records (assigned ones included). */
  count: number;
  firstOffset: number;
  lastOffset: number;
  firstTimestamp: number;
  lastTimestamp: number;
  /** Damaged byte ranges: start position -> end position; reads jump over them. */
  skips: Map<number, number>;
  /** Why a sealed segment's tail was skipped (reported on open with the offsets it lacks). */
  tailDamage: string | undefined;
  /** Read-time repairs in progress, so concurrent readers report a damage once. */
  repairs: Map<number, Promise<number>>;
  /** Damage or gaps were found: the index file must not be trusted on the next open. */
  damaged: boolean;
  /**
   * The sparse index is still in the segment's index file (a sealed segment opened from its header):
   * load it before using `index` (FileLog.ensureIndex).
   */
  indexFile: boolean;
  /** Loading the index file, so concurrent readers load it once. */
  indexLoading: Promise<void> | null;
  /** Whether some record carries a msgId; undefined when unknown (an index written before this was recorded). */
  msgIds: boolean | undefined;
  /** The records among the `written` bytes (what a checkpoint of the segment may vouch for). */
  writtenCount: number;
  writtenLastOffset: number;
  writtenLastTimestamp: number;
  writtenMsgIds: boolean;
}

/** A segment with no records yet, its files in `dir`. */
export function newSegment(dir: string, base: number): Segment {
  const name = segmentFileName(base);
  const logPath = path.join(dir, name);
  return {
    base,
    name,
    logPath,
    idxPath: logPath.slice(0, -4) + '.idx',
    file: new SegmentFile(logPath),
    index: new SparseIndex(),
    lastIndexed: -Infinity,
    size: 0,
    written: 0,
    verified: 0,
    count: 0,
    firstOffset: 0,
    lastOffset: 0,
    firstTimestamp: 0,
    lastTimestamp: 0,
    skips: new Map(),
    tailDamage: undefined,
    repairs: new Map(),
    damaged: false,
    indexFile: false,
    indexLoading: null,
    msgIds: false,
    writtenCount: 0,
    writtenLastOffset: 0,
    writtenLastTimestamp: 0,
    writtenMsgIds: false,
  };
}

/** Accounts for one record of `seg` at `position` (indexing it when a new interval began). */
export function noteRecord(seg: Segment, offset: number, position: number, timestamp: number, msgId: boolean): void {
  if (msgId) seg.msgIds = true;
  if (seg.count === 0) {
    seg.firstOffset = offset;
    seg.firstTimestamp = timestamp;
  }
  seg.count++;
  seg.lastOffset = offset;
  seg.lastTimestamp = timestamp;
  if (position - seg.lastIndexed >= INDEX_INTERVAL_BYTES) {
    seg.index.push(offset, position, timestamp);
    seg.lastIndexed = position;
  }
}

/** The records read from the file are all written: the written-side bookkeeping follows the scan. */
export function markAllWritten(seg: Segment): void {
  seg.writtenCount = seg.count;
  seg.writtenLastOffset = seg.lastOffset;
  seg.writtenLastTimestamp = seg.lastTimestamp;
  seg.writtenMsgIds = seg.msgIds !== false;
}

/**
 * The `<base>.idx` file of a sealed segment. Byte 5 of the header (reserved, zero, in files written before
 * it) holds flags: bit 0 says bit 1 is meaningful, bit 1 that some record carries a msgId.
 */
export function encodeIndex(seg: Segment): Buffer {
  const n = seg.index.length;
  const buf = Buffer.allocUnsafe(INDEX_HEADER_BYTES + n * INDEX_ENTRY_BYTES);
  buf.writeUInt32LE(INDEX_MAGIC, 0);
  buf.writeUInt8(INDEX_VERSION, 4);
  buf.fill(0, 5, 8);
  if (seg.msgIds !== undefined) buf.writeUInt8(INDEX_FLAG_MSG_IDS_KNOWN | (seg.msgIds ? INDEX_FLAG_MSG_IDS : 0), 5);
  buf.writeDoubleLE(seg.written, 8);
  buf.writeDoubleLE(seg.firstOffset, 16);
  buf.writeDoubleLE(seg.lastOffset, 24);
  buf.writeDoubleLE(seg.count, 32);
  buf.writeDoubleLE(seg.firstTimestamp, 40);
  buf.writeDoubleLE(seg.lastTimestamp, 48);
  buf.writeUInt32LE(n, 56);
  for (let i = 0; i < n; i++) {
    const p = INDEX_HEADER_BYTES + i * INDEX_ENTRY_BYTES;
    buf.writeUInt32LE((seg.index.offsets[i] as number) - seg.base, p);
    buf.writeDoubleLE(seg.index.positions[i] as number, p + 4);
    buf.writeDoubleLE(seg.index.timestamps[i] as number, p + 12);
  }
  buf.writeUInt32LE(crc32(buf.subarray(INDEX_HEADER_BYTES), crc32(buf.subarray(0, 60))), 60);
  return buf;
}

/** Bytes of an index file's header: what start-up reads of a sealed segment. */
export const INDEX_HEADER_SIZE = INDEX_HEADER_BYTES;

/**
 * Takes a sealed segment's summary from the header of its index file (the first INDEX_HEADER_SIZE
 * bytes; `idxSize` is the file's size) when it describes the segment as it is: written for exactly its
 * current size, without gaps, its offsets running from its base to the offset before the next segment's
 * base. The entries are not read here (`seg.indexFile` is set; see loadIndexEntries): start-up reads a
 * header per sealed segment, however much is stored.
 */
export function loadIndexHeader(
  seg: Segment,
  head: Buffer,
  idxSize: number,
  fileSize: number,
  prevLast: number,
  nextBase: number,
): boolean {
  if (head.length < INDEX_HEADER_BYTES || idxSize < INDEX_HEADER_BYTES || (idxSize - INDEX_HEADER_BYTES) % INDEX_ENTRY_BYTES !== 0)
    return false;
  if (head.readUInt32LE(0) !== INDEX_MAGIC || head.readUInt8(4) !== INDEX_VERSION) return false;
  const n = head.readUInt32LE(56);
  if (n === 0 || INDEX_HEADER_BYTES + n * INDEX_ENTRY_BYTES !== idxSize) return false;
  const size = head.readDoubleLE(8);
  const first = head.readDoubleLE(16);
  const last = head.readDoubleLE(24);
  const count = head.readDoubleLE(32);
  if (size !== fileSize || count < 1 || first !== seg.base || first <= prevLast || last !== nextBase - 1 || count !== last - first + 1)
    return false;
  seg.size = seg.written = size;
  seg.count = count;
  seg.firstOffset = first;
  seg.lastOffset = last;
  seg.firstTimestamp = head.readDoubleLE(40);
  seg.lastTimestamp = head.readDoubleLE(48);
  const flags = head.readUInt8(5);
  seg.msgIds = (flags & INDEX_FLAG_MSG_IDS_KNOWN) !== 0 ? (flags & INDEX_FLAG_MSG_IDS) !== 0 : undefined;
  seg.indexFile = true;
  markAllWritten(seg);
  return true;
}

/**
 * Loads the entries of a sealed segment's whole index file (`buf`) into `seg`, whose summary came from
 * the same file's header: true when the crc and every entry check out (and agree with the summary).
 */
export function loadIndexEntries(seg: Segment, buf: Buffer): boolean {
  if (buf.length < INDEX_HEADER_BYTES || !loadIndexHeader({ ...seg }, buf, buf.length, seg.size, seg.firstOffset - 1, seg.lastOffset + 1))
    return false;
  if (buf.readDoubleLE(8) !== seg.size || buf.readDoubleLE(16) !== seg.firstOffset || buf.readDoubleLE(24) !== seg.lastOffset) return false;
  if (crc32(buf.subarray(INDEX_HEADER_BYTES), crc32(buf.subarray(0, 60))) !== buf.readUInt32LE(60)) return false;
  const n = buf.readUInt32LE(56);
  const size = seg.size;
  const first = seg.firstOffset;
  const last = seg.lastOffset;
  // Filled in place (no push, no growth).
  const index = new SparseIndex(n);
  const offs = index.offsets;
  const poss = index.positions;
  const tss = index.timestamps;
  let prevOff = -1;
  let prevPos = -1;
  for (let i = 0; i < n; i++) {
    const p = INDEX_HEADER_BYTES + i * INDEX_ENTRY_BYTES;
    const off = seg.base + buf.readUInt32LE(p);
    const pos = buf.readDoubleLE(p + 4);
    if (off <= prevOff || pos <= prevPos || pos >= size || off > last || (i === 0 && (off !== first || pos !== 0))) return false;
    offs[i] = off;
    poss[i] = pos;
    tss[i] = buf.readDoubleLE(p + 12);
    prevOff = off;
    prevPos = pos;
  }
  index.length = n;
  seg.index = index;
  seg.lastIndexed = prevPos;
  seg.indexFile = false;
  return true;
}

/** Index of the last segment whose base is <= offset (0 when none). */
export function segmentFor(segs: readonly Segment[], offset: number): number {
  let lo = 0;
  let hi = segs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if ((segs[mid] as Segment).base <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
