/**
 * The dedup index of a station on disk (`stations/<name>/dedup.snapshot`), so a restart reads it and
 * replays only the log after it instead of every message inside the window.
 *
 * The file is a sequence of segments: a full one (every id of the index when it was written), then
 * deltas appended to it (the ids added since the segment before). Each segment (little endian; a
 * big-endian host neither writes nor reads one, and falls back to the log):
 *   header   "JDDX" | u32 version (3) | 32 B digest key | f64 written at | u32 partitions P | u32 kind
 *            (0 full, 1 delta) | f64 × P covered | zeros to a multiple of 8
 *   blocks   u32 n | u32 0 | n × 4 u32 digests | n f64 offsets | n f64 timestamps | n u16 partitions
 *            | zeros to a multiple of 8 — at most BLOCK_ENTRIES entries a block, oldest first; columns,
 *            so a block is read into typed arrays without decoding each field (34 B an entry)
 *   trailer  u32 0 (no more blocks) | u32 0 | f64 entry count | 32 B SHA-256 of the segment's bytes before it
 * `covered[p]` (of the last segment): every stored message of partition p below this offset that
 * carries a msgId is in the segments (unless it left the window); a restart replays the log from there.
 *
 * A full segment is written to a temporary file, fsynced and renamed over the file (atomic); a delta is
 * written after the last whole segment (the caller says whether to fsync it; the station does not). A first segment that is torn, truncated or altered
 * fails its checksum and the file is not used (the station falls back to reading the log); a later
 * segment that fails is where a crash cut an append short: it and what follows are ignored (the log
 * after the segment before is replayed instead), and the next append overwrites it.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { fsyncDir } from '../atomic-file.js';
import { DEAD_SLOT, DEDUP_KEY_BYTES, DedupIndex, type DedupView } from './dedup.js';

const MAGIC = 0x5844444a; // "JDDX"
const VERSION = 3;
const FIXED_HEADER = 4 + 4 + DEDUP_KEY_BYTES + 8 + 4 + 4;
const TRAILER = 8 + 8 + 32;
/** Entries per block (about 1 MiB). */
const BLOCK_ENTRIES = 30_000;
/**
 * A segment being written is fsynced every this many bytes: a large one (34 B an id: 136 MB at 4M)
 * never piles up dirty pages whose writeback would stall the partitions' own fsyncs (produce latency).
 */
const SYNC_EVERY_BYTES = 8 * 1024 * 1024;
/** A station has at most this many partitions (protocol): a header naming more is damage. */
const MAX_PARTITIONS = 1024;
const LITTLE_ENDIAN = endianness() === 'LE';
const FULL = 0;
const DELTA = 1;

/** The snapshot file of a station directory. */
export function dedupSnapshotPath(stationDir: string): string {
  return join(stationDir, 'dedup.snapshot');
}

const headerBytes = (partitions: number) => pad8(FIXED_HEADER + 8 * partitions);
const blockBytes = (n: number) => 8 + pad8(34 * n);
function pad8(n: number): number {
  return (n + 7) & ~7;
}

/** A block's columns over one buffer. */
function columns(buf: ArrayBuffer, n: number) {
  return {
    digest: new Uint32Array(buf, 8, 4 * n),
    offset: new Float64Array(buf, 8 + 16 * n, n),
    ts: new Float64Array(buf, 8 + 24 * n, n),
    partition: new Uint16Array(buf, 8 + 32 * n, n),
  };
}

/** What to write: the slots of a view up to a cut, and the coverage that goes with them. */
export interface SnapshotCut {
  view: DedupView;
  /** Per partition: the offset the log is replayed from after a restore of what is written. */
  covered: number[];
  /** The global number of the first slot not written (the next delta starts there). */
  cut: number;
}

/**
 * Where a snapshot of `view` can end given the high watermarks `hw` (every offset below is durable):
 * before the first slot of a message not yet durable. Per partition the offsets rise along the slots, so
 * `covered[p]` is the partition's high watermark, or the offset of its first slot after the cut.
 */
export function cutView(view: DedupView, hw: readonly number[]): SnapshotCut {
  const covered = [...hw];
  let cut = view.end;
  const parts: Array<DedupView['parts'][number]> = [];
  for (const part of view.parts) {
    const { chunk, from, to } = part;
    if (cut !== view.end) {
      for (let i = from; i < to; i++) {
        const p = chunk.partition[i]!;
        if (p !== DEAD_SLOT && chunk.offset[i]! < covered[p]!) covered[p] = chunk.offset[i]!;
      }
      continue;
    }
    let i = from;
    for (; i < to; i++) {
      const p = chunk.partition[i]!;
      if (p !== DEAD_SLOT && p < hw.length && chunk.offset[i]! >= hw[p]!) break;
    }
    if (i > from) parts.push({ chunk, from, to: i });
    if (i < to) {
      cut = chunk.start + i;
      for (; i < to; i++) {
        const p = chunk.partition[i]!;
        if (p !== DEAD_SLOT && chunk.offset[i]! < covered[p]!) covered[p] = chunk.offset[i]!;
      }
    }
  }
  return { view: { parts, end: cut }, covered, cut };
}

/** Writes a full snapshot (atomically: temporary file, fsync, rename). Returns its bytes and entries. */
export async function writeDedupSnapshot(
  path: string,
  key: Buffer,
  what: SnapshotCut,
  sync: boolean,
  now = Date.now(),
): Promise<{ bytes: number; entries: number }> {
  if (!LITTLE_ENDIAN) throw new Error('dedup snapshots are written on little-endian hosts only');
  // One name: a station writes one snapshot at a time, and what a crash leaves is overwritten by the next.
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  let out: { bytes: number; entries: number };
  try {
    out = await writeSegment(fh, 0, FULL, key, what, sync, now);
    if (sync) await fh.datasync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  if (sync) await fsyncDir(join(path, '..'));
  return out;
}

/**
 * Appends a delta segment at byte `at` (the end of the file's last whole segment) and cuts the file
 * there. Returns its bytes and entries.
 */
export async function appendDedupDelta(
  path: string,
  at: number,
  key: Buffer,
  what: SnapshotCut,
  sync: boolean,
  now = Date.now(),
): Promise<{ bytes: number; entries: number }> {
  if (!LITTLE_ENDIAN) throw new Error('dedup snapshots are written on little-endian hosts only');
  const fh = await open(path, 'r+');
  try {
    const out = await writeSegment(fh, at, DELTA, key, what, sync, now);
    await fh.truncate(at + out.bytes);
    if (sync) await fh.datasync();
    return out;
  } finally {
    await fh.close();
  }
}

async function writeSegment(
  fh: FileHandle,
  start: number,
  kind: number,
  key: Buffer,
  what: SnapshotCut,
  sync: boolean,
  now: number,
): Promise<{ bytes: number; entries: number }> {
  const hash = createHash('sha256');
  let pos = start;
  let unsynced = 0;
  const put = async (buf: Buffer, hashed = true) => {
    if (hashed) hash.update(buf);
    for (let at = 0; at < buf.length;) {
      const { bytesWritten } = await fh.write(buf, at, buf.length - at, pos + at);
      at += bytesWritten;
    }
    pos += buf.length;
    unsynced += buf.length;
    if (sync && unsynced >= SYNC_EVERY_BYTES) {
      await fh.datasync();
      unsynced = 0;
    }
  };
  const { covered } = what;
  const header = Buffer.alloc(headerBytes(covered.length));
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(VERSION, 4);
  key.copy(header, 8);
  header.writeDoubleLE(now, 8 + DEDUP_KEY_BYTES);
  header.writeUInt32LE(covered.length, 16 + DEDUP_KEY_BYTES);
  header.writeUInt32LE(kind, 20 + DEDUP_KEY_BYTES);
  covered.forEach((c, p) => header.writeDoubleLE(c, FIXED_HEADER + 8 * p));
  await put(header);
  // Entries gather in column arrays, then go out as one block (arrays sized for what there is: a small
  // delta allocates little).
  let slots = 0;
  for (const part of what.view.parts) slots += part.to - part.from;
  const most = Math.max(1, Math.min(BLOCK_ENTRIES, slots));
  const digest = new Uint32Array(4 * most);
  const offset = new Float64Array(most);
  const ts = new Float64Array(most);
  const partition = new Uint16Array(most);
  const block = new ArrayBuffer(blockBytes(most));
  let n = 0;
  let count = 0;
  const flush = async () => {
    const view = new DataView(block);
    view.setUint32(0, n, true);
    view.setUint32(4, 0, true);
    const c = columns(block, n);
    c.digest.set(digest.subarray(0, 4 * n));
    c.offset.set(offset.subarray(0, n));
    c.ts.set(ts.subarray(0, n));
    c.partition.set(partition.subarray(0, n));
    const bytes = Buffer.from(block, 0, blockBytes(n));
    bytes.fill(0, 8 + 34 * n);
    await put(bytes);
    n = 0;
  };
  for (const { chunk, from, to } of what.view.parts) {
    for (let i = from; i < to; i++) {
      const p = chunk.partition[i]!;
      if (p === DEAD_SLOT || p >= covered.length) continue;
      digest[4 * n] = chunk.digest[4 * i]!;
      digest[4 * n + 1] = chunk.digest[4 * i + 1]!;
      digest[4 * n + 2] = chunk.digest[4 * i + 2]!;
      digest[4 * n + 3] = chunk.digest[4 * i + 3]!;
      offset[n] = chunk.offset[i]!;
      ts[n] = chunk.base + chunk.ts[i]!;
      partition[n] = p;
      count++;
      if (++n === most) await flush();
    }
  }
  if (n > 0) await flush();
  const trailer = Buffer.alloc(TRAILER);
  trailer.writeDoubleLE(count, 8);
  hash.update(trailer.subarray(0, 16));
  hash.digest().copy(trailer, 16);
  await put(trailer, false);
  return { bytes: pos - start, entries: count };
}

/** What a snapshot restored. */
export interface RestoredSnapshot {
  index: DedupIndex;
  /** Per partition: replay the log from this offset. */
  covered: number[];
  /** Entries in the segments used, and those kept (inside the window, not lost from the log). */
  entries: number;
  kept: number;
  /** Segments used, and the bytes they span (appends go after them). */
  segments: number;
  validBytes: number;
  /** Why the file's end was not used (a segment a crash cut short), when it was not. */
  ignoredTail?: string | undefined;
}

/**
 * Reads a snapshot into a new index (bounded by `maxIds`), keeping the entries `keep` accepts.
 * Returns `problem` (and `missing` when there is no file) instead of an index when the file cannot be
 * used: wrong partition count, bad header, or a first segment that is truncated or fails its checksum.
 * Never applies a segment that failed its checksum.
 */
export async function readDedupSnapshot(
  path: string,
  partitions: number,
  maxIds: number,
  keep: (partition: number, offset: number, timestamp: number) => boolean,
): Promise<RestoredSnapshot | { problem: string; missing: boolean }> {
  if (!LITTLE_ENDIAN) return { problem: 'dedup snapshots are read on little-endian hosts only', missing: false };
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { problem: code === 'ENOENT' ? 'missing' : `unreadable (${code ?? String(err)})`, missing: code === 'ENOENT' };
  }
  try {
    const size = (await fh.stat()).size;
    // No block is larger than the file: a small snapshot allocates little.
    const block = new ArrayBuffer(Math.max(8, Math.min(blockBytes(BLOCK_ENTRIES), pad8(size))));
    let index: DedupIndex | undefined;
    let covered: number[] = [];
    let pos = 0;
    let entries = 0;
    let kept = 0;
    let segments = 0;
    while (pos < size) {
      // The first segment is applied as it is read (it can be the whole window) and dropped whole if it
      // fails; a delta is checked before it is applied.
      const seg = await readSegment(fh, pos, size, partitions, block, index?.key, segments === 0 ? maxIds : undefined, keep);
      if ('problem' in seg) {
        if (segments === 0) return { problem: seg.problem, missing: false };
        return {
          index: index!,
          covered,
          entries,
          kept,
          segments,
          validBytes: pos,
          ignoredTail: `a segment at byte ${pos} was ${seg.problem}`,
        };
      }
      if (segments === 0) {
        if (seg.kind !== FULL) return { problem: 'it does not start with a full segment', missing: false };
        index = seg.index!;
      } else {
        if (seg.kind !== DELTA)
          return {
            index: index!,
            covered,
            entries,
            kept,
            segments,
            validBytes: pos,
            ignoredTail: `a full segment at byte ${pos} follows the first`,
          };
        for (const b of seg.buffered!) kept += apply(b.buf, b.n, partitions, keep, index!);
      }
      kept += seg.kept;
      entries += seg.entries;
      covered = seg.covered;
      segments++;
      pos = seg.end;
    }
    if (!index) return { problem: 'empty', missing: false };
    // Evictions while loading are the bound applying to ids saved before: counted when they happened.
    index.evicted = 0;
    return { index, covered, entries, kept, segments, validBytes: pos };
  } catch (err) {
    return { problem: `unreadable (${err instanceof Error ? err.message : String(err)})`, missing: false };
  } finally {
    await fh.close().catch(() => {});
  }
}

/** A delta's block, copied, to apply once the delta's checksum matched. */
interface Buffered {
  buf: ArrayBuffer;
  n: number;
}

/** Remembers a block's entries that `keep` accepts; returns how many. Values that are not what was written are skipped (the checksum names them). */
function apply(
  buf: ArrayBuffer,
  n: number,
  P: number,
  keep: (partition: number, offset: number, timestamp: number) => boolean,
  index: DedupIndex,
): number {
  const c = columns(buf, n);
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const partition = c.partition[i]!;
    const offset = c.offset[i]!;
    const timestamp = c.ts[i]!;
    if (partition >= P || !Number.isSafeInteger(offset) || offset < 1 || !Number.isFinite(timestamp)) continue;
    if (!keep(partition, offset, timestamp)) continue;
    index.rememberDigest(c.digest[4 * i]!, c.digest[4 * i + 1]!, c.digest[4 * i + 2]!, c.digest[4 * i + 3]!, partition, offset, timestamp);
    kept++;
  }
  return kept;
}

/**
 * One segment at `pos`. The first (`maxIds` given) is remembered into a new index as it is read; a
 * delta's entries are returned in `buffered`, to apply once its checksum matched.
 */
async function readSegment(
  fh: FileHandle,
  pos: number,
  size: number,
  partitions: number,
  block: ArrayBuffer,
  key: Buffer | undefined,
  maxIds: number | undefined,
  keep: (partition: number, offset: number, timestamp: number) => boolean,
): Promise<
  | { kind: number; index?: DedupIndex; buffered?: Buffered[]; covered: number[]; entries: number; kept: number; end: number }
  | { problem: string }
> {
  if (pos + FIXED_HEADER + TRAILER > size) return { problem: `truncated (${size - pos} bytes)` };
  const fixed = await readExactly(fh, Buffer.alloc(FIXED_HEADER), FIXED_HEADER, pos);
  if (fixed.readUInt32LE(0) !== MAGIC) return { problem: 'not a dedup snapshot (bad magic)' };
  if (fixed.readUInt32LE(4) !== VERSION) return { problem: `of version ${fixed.readUInt32LE(4)}, not known` };
  const segKey = fixed.subarray(8, 8 + DEDUP_KEY_BYTES);
  if (key && !key.equals(segKey)) return { problem: 'written with another key' };
  const P = fixed.readUInt32LE(16 + DEDUP_KEY_BYTES);
  if (P > MAX_PARTITIONS) return { problem: `naming ${P} partitions` };
  if (P !== partitions) return { problem: `for ${P} partitions, the station has ${partitions}` };
  const kind = fixed.readUInt32LE(20 + DEDUP_KEY_BYTES);
  const headerLen = headerBytes(P);
  if (pos + headerLen + TRAILER > size) return { problem: `truncated (${size - pos} bytes)` };
  const hash = createHash('sha256').update(fixed);
  const rest = await readExactly(fh, Buffer.alloc(headerLen - FIXED_HEADER), headerLen - FIXED_HEADER, pos + FIXED_HEADER);
  hash.update(rest);
  const covered = Array.from({ length: P }, (_, p) => rest.readDoubleLE(8 * p));
  if (covered.some((c) => !Number.isSafeInteger(c) || c < 0)) return { problem: 'naming a covered offset that is not an offset' };
  const index = maxIds !== undefined ? new DedupIndex(maxIds, Buffer.from(segKey)) : undefined;
  // At most this many entries (the bound applies as they are read): the table is sized once.
  index?.reserve(Math.floor((size - pos) / 34));
  const buffered: Buffered[] | undefined = index ? undefined : [];
  const blockBuf = Buffer.from(block);
  pos += headerLen;
  let entries = 0;
  let kept = 0;
  for (;;) {
    if (pos + 8 > size) return { problem: `truncated at byte ${pos}` };
    const head = await readExactly(fh, blockBuf, 8, pos);
    const n = head.readUInt32LE(0);
    if (n === 0) break;
    if (n > BLOCK_ENTRIES || head.readUInt32LE(4) !== 0 || pos + blockBytes(n) + TRAILER > size)
      return { problem: `damaged (a block at byte ${pos})` };
    await readExactly(fh, blockBuf, blockBytes(n), pos);
    hash.update(blockBuf.subarray(0, blockBytes(n)));
    // A bad value here is damage the checksum will name; it is never stored meanwhile (apply skips it).
    if (index) kept += apply(block, n, P, keep, index);
    else buffered!.push({ buf: block.slice(0, blockBytes(n)), n });
    entries += n;
    pos += blockBytes(n);
  }
  const trailer = await readExactly(fh, Buffer.alloc(TRAILER), TRAILER, pos);
  hash.update(trailer.subarray(0, 16));
  if (!hash.digest().equals(trailer.subarray(16))) return { problem: 'damaged or torn (its checksum does not match)' };
  if (trailer.readDoubleLE(8) !== entries) return { problem: `damaged (it says ${trailer.readDoubleLE(8)} entries and holds ${entries})` };
  return { kind, ...(index && { index }), ...(buffered && { buffered }), covered, entries, kept, end: pos + TRAILER };
}

/** Reads `length` bytes at `position` into the start of `buf`; throws at the end of the file. */
async function readExactly(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<Buffer> {
  let at = 0;
  while (at < length) {
    const { bytesRead } = await fh.read(buf, at, length - at, position + at);
    if (bytesRead === 0) throw new Error(`ended at byte ${position + at}, expected ${position + length}`);
    at += bytesRead;
  }
  return buf;
}
