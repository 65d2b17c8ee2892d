/**
 * The dedup index of a station on disk (`stations/<name>/dedup.snapshot`), so a restart reads the
 * snapshot and replays only the log after it instead of every message inside the window.
 *
 * Format (little endian; a big-endian host neither writes nor reads one, and falls back to the log):
 *   header   "JDDX" | u32 version (2) | 32 B digest key | f64 written at | u32 partitions P | f64 × P covered
 *            | u32 0 (pad to 8)
 *   blocks   u32 n | u32 0 | n × 4 u32 digests | n f64 offsets | n f64 timestamps | n u16 partitions
 *            | zeros to a multiple of 8 — at most BLOCK_ENTRIES entries a block, oldest first; columns,
 *            so a block is read into typed arrays without decoding each field (34 B an entry)
 *   trailer  u32 0 (no more blocks) | u32 0 | f64 entry count | 32 B SHA-256 of every byte before it
 * `covered[p]`: every message of partition p below this offset that carries a msgId is in the entries
 * (unless it left the window); the restart replays partition p from there. A snapshot is written to a
 * temporary file, fsynced and renamed over the old one (atomic); a torn, truncated or altered file fails
 * its checksum and is not used (the station then falls back to reading the log).
 */
import { createHash, type Hash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { fsyncDir } from '../atomic-file.js';
import { DEDUP_KEY_BYTES, DedupIndex, type DedupView } from './dedup.js';

const MAGIC = 0x5844444a; // "JDDX"
const VERSION = 2;
const FIXED_HEADER = 4 + 4 + DEDUP_KEY_BYTES + 8 + 4;
const TRAILER = 8 + 8 + 32;
/** Entries per block (about 1 MiB). */
const BLOCK_ENTRIES = 30_000;
/**
 * A snapshot being written is fsynced every this many bytes: a large one (34 B an id: 136 MB at 4M)
 * never piles up dirty pages whose writeback would stall the partitions' own fsyncs (produce latency).
 */
const SYNC_EVERY_BYTES = 8 * 1024 * 1024;
/** A station has at most this many partitions (protocol): a header naming more is damage. */
const MAX_PARTITIONS = 1024;
const LITTLE_ENDIAN = endianness() === 'LE';

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

/**
 * Writes the slots of `view` whose offset is below `covered[partition]` (messages durable when the view
 * was taken), atomically. `sync`: fsync the file and its directory. Returns the entries written.
 */
export async function writeDedupSnapshot(path: string, key: Buffer, view: DedupView, covered: readonly number[], sync: boolean, now = Date.now()): Promise<number> {
  if (!LITTLE_ENDIAN) throw new Error('dedup snapshots are written on little-endian hosts only');
  // One name: a station writes one snapshot at a time, and what a crash leaves is overwritten by the next.
  const tmp = `${path}.tmp`;
  const hash = createHash('sha256');
  const fh = await open(tmp, 'w', 0o600);
  let count = 0;
  try {
    const header = Buffer.alloc(headerBytes(covered.length));
    header.writeUInt32LE(MAGIC, 0);
    header.writeUInt32LE(VERSION, 4);
    key.copy(header, 8);
    header.writeDoubleLE(now, 8 + DEDUP_KEY_BYTES);
    header.writeUInt32LE(covered.length, 16 + DEDUP_KEY_BYTES);
    covered.forEach((c, p) => header.writeDoubleLE(c, FIXED_HEADER + 8 * p));
    await writeAll(fh, header, hash);
    // Entries gather in column arrays, then go out as one block.
    const digest = new Uint32Array(4 * BLOCK_ENTRIES);
    const offset = new Float64Array(BLOCK_ENTRIES);
    const ts = new Float64Array(BLOCK_ENTRIES);
    const partition = new Uint16Array(BLOCK_ENTRIES);
    const block = new ArrayBuffer(blockBytes(BLOCK_ENTRIES));
    let n = 0;
    let unsynced = 0;
    const flush = async () => {
      new DataView(block).setUint32(0, n, true);
      new DataView(block).setUint32(4, 0, true);
      const c = columns(block, n);
      c.digest.set(digest.subarray(0, 4 * n));
      c.offset.set(offset.subarray(0, n));
      c.ts.set(ts.subarray(0, n));
      c.partition.set(partition.subarray(0, n));
      const bytes = Buffer.from(block, 0, blockBytes(n));
      bytes.fill(0, 8 + 34 * n);
      await writeAll(fh, bytes, hash);
      n = 0;
      unsynced += bytes.length;
      if (sync && unsynced >= SYNC_EVERY_BYTES) {
        await fh.datasync();
        unsynced = 0;
      }
    };
    for (const { chunk, from, to } of view.parts) {
      for (let i = from; i < to; i++) {
        const p = chunk.partition[i]!;
        if (!(chunk.offset[i]! < (covered[p] ?? 0))) continue;
        digest[4 * n] = chunk.digest[4 * i]!;
        digest[4 * n + 1] = chunk.digest[4 * i + 1]!;
        digest[4 * n + 2] = chunk.digest[4 * i + 2]!;
        digest[4 * n + 3] = chunk.digest[4 * i + 3]!;
        offset[n] = chunk.offset[i]!;
        ts[n] = chunk.base + chunk.ts[i]!;
        partition[n] = p;
        count++;
        if (++n === BLOCK_ENTRIES) await flush();
      }
    }
    if (n > 0) await flush();
    const trailer = Buffer.alloc(TRAILER);
    trailer.writeDoubleLE(count, 8);
    hash.update(trailer.subarray(0, 16));
    hash.digest().copy(trailer, 16);
    await writeAll(fh, trailer);
    if (sync) await fh.datasync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  if (sync) await fsyncDir(join(path, '..'));
  return count;
}

async function writeAll(fh: FileHandle, buf: Buffer, hash?: Hash): Promise<void> {
  hash?.update(buf);
  let at = 0;
  while (at < buf.length) {
    const { bytesWritten } = await fh.write(buf, at, buf.length - at);
    at += bytesWritten;
  }
}

/** What a snapshot restored. */
export interface RestoredSnapshot {
  index: DedupIndex;
  /** Per partition: replay the log from this offset. */
  covered: number[];
  /** Entries in the file, and those kept (inside the window, not lost from the log). */
  entries: number;
  kept: number;
  writtenAt: number;
}

/**
 * Reads a snapshot into a new index (bounded by `maxIds`), keeping the entries `keep` accepts.
 * Returns `problem` (and `missing` when there is no file) instead of an index when the file cannot be
 * used: wrong partition count, bad header, truncated, or a checksum that does not match. Never returns
 * an index built from a file that failed its checksum.
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
  const bad = (problem: string) => ({ problem, missing: false });
  try {
    const size = (await fh.stat()).size;
    if (size < FIXED_HEADER + TRAILER) return bad(`truncated (${size} bytes)`);
    const fixed = await readExactly(fh, Buffer.alloc(FIXED_HEADER), FIXED_HEADER, 0);
    if (fixed.readUInt32LE(0) !== MAGIC) return bad('not a dedup snapshot (bad magic)');
    if (fixed.readUInt32LE(4) !== VERSION) return bad(`version ${fixed.readUInt32LE(4)} is not known`);
    const P = fixed.readUInt32LE(16 + DEDUP_KEY_BYTES);
    if (P > MAX_PARTITIONS) return bad(`it names ${P} partitions`);
    if (P !== partitions) return bad(`it is for ${P} partitions, the station has ${partitions}`);
    const headerLen = headerBytes(P);
    if (size < headerLen + TRAILER) return bad(`truncated (${size} bytes)`);
    const hash = createHash('sha256').update(fixed);
    const rest = await readExactly(fh, Buffer.alloc(headerLen - FIXED_HEADER), headerLen - FIXED_HEADER, FIXED_HEADER);
    hash.update(rest);
    const covered = Array.from({ length: P }, (_, p) => rest.readDoubleLE(8 * p));
    if (covered.some((c) => !Number.isSafeInteger(c) || c < 0)) return bad('a covered offset is not an offset');
    const index = new DedupIndex(maxIds, Buffer.from(fixed.subarray(8, 8 + DEDUP_KEY_BYTES)));
    // At most this many entries (the bound applies as they are read); the table is sized once.
    index.reserve(Math.floor((size - headerLen) / 34));
    const block = new ArrayBuffer(blockBytes(BLOCK_ENTRIES));
    const blockBuf = Buffer.from(block);
    let pos = headerLen;
    let entries = 0;
    let kept = 0;
    for (;;) {
      if (pos + 8 > size) return bad(`truncated at byte ${pos}`);
      const head = await readExactly(fh, blockBuf, 8, pos);
      const n = head.readUInt32LE(0);
      if (n === 0) break;
      if (n > BLOCK_ENTRIES || head.readUInt32LE(4) !== 0 || pos + blockBytes(n) + TRAILER > size) return bad(`a damaged block at byte ${pos}`);
      await readExactly(fh, blockBuf, blockBytes(n), pos);
      hash.update(blockBuf.subarray(0, blockBytes(n)));
      const c = columns(block, n);
      for (let i = 0; i < n; i++) {
        const partition = c.partition[i]!;
        const offset = c.offset[i]!;
        const timestamp = c.ts[i]!;
        // A bad value here is damage the checksum will name; never store it meanwhile.
        if (partition >= P || !Number.isSafeInteger(offset) || offset < 1 || !Number.isFinite(timestamp)) continue;
        if (!keep(partition, offset, timestamp)) continue;
        index.rememberDigest(c.digest[4 * i]!, c.digest[4 * i + 1]!, c.digest[4 * i + 2]!, c.digest[4 * i + 3]!, partition, offset, timestamp);
        kept++;
      }
      entries += n;
      pos += blockBytes(n);
    }
    if (size !== pos + TRAILER) return bad(`${size - pos - TRAILER} bytes after its last block`);
    const trailer = await readExactly(fh, Buffer.alloc(TRAILER), TRAILER, pos);
    hash.update(trailer.subarray(0, 16));
    if (!hash.digest().equals(trailer.subarray(16))) return bad('its checksum does not match (damaged or torn)');
    if (trailer.readDoubleLE(8) !== entries) return bad(`it says ${trailer.readDoubleLE(8)} entries and holds ${entries}`);
    return { index, covered, entries, kept, writtenAt: fixed.readDoubleLE(8 + DEDUP_KEY_BYTES) };
  } catch (err) {
    return bad(`unreadable (${err instanceof Error ? err.message : String(err)})`);
  } finally {
    await fh.close().catch(() => {});
  }
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
