/**
 * The dedup index of a station on disk (`stations/<name>/dedup.snapshot`), so a restart reads the
 * snapshot and replays only the log after it instead of every message inside the window.
 *
 * Format (little endian):
 *   header   "JDDX" | u32 version (1) | 32 B digest key | f64 written at | u32 partitions P | f64 × P covered
 *   entries  34 B each, oldest first: 4 × u32 digest | u16 partition | f64 offset | f64 timestamp
 *   trailer  f64 entry count | 32 B SHA-256 of every byte before it
 * `covered[p]`: every message of partition p below this offset that carries a msgId is in the entries
 * (unless it left the window); the restart replays partition p from there. A snapshot is written to a
 * temporary file, fsynced and renamed over the old one (atomic); a torn, truncated or altered file fails
 * its checksum and is not used (the station then falls back to reading the log).
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir } from '../atomic-file.js';
import { DEDUP_KEY_BYTES, DedupIndex, type DedupView } from './dedup.js';

const MAGIC = 0x5844444a; // "JDDX"
const VERSION = 1;
const FIXED_HEADER = 4 + 4 + DEDUP_KEY_BYTES + 8 + 4;
const ENTRY = 34;
const TRAILER = 8 + 32;
/** Entries per write / read (about 1 MiB). */
const BLOCK_ENTRIES = 30_000;
/** A station has at most this many partitions (protocol): a header naming more is damage. */
const MAX_PARTITIONS = 1024;

/** The snapshot file of a station directory. */
export function dedupSnapshotPath(stationDir: string): string {
  return `${stationDir}/dedup.snapshot`;
}

/**
 * Writes the slots of `view` whose offset is below `covered[partition]` (messages durable when the view
 * was taken), atomically. `sync`: fsync the file and its directory. Returns the entries written.
 */
export async function writeDedupSnapshot(path: string, key: Buffer, view: DedupView, covered: readonly number[], sync: boolean, now = Date.now()): Promise<number> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const hash = createHash('sha256');
  const fh = await open(tmp, 'w', 0o600);
  let count = 0;
  try {
    const header = Buffer.alloc(FIXED_HEADER + 8 * covered.length);
    header.writeUInt32LE(MAGIC, 0);
    header.writeUInt32LE(VERSION, 4);
    key.copy(header, 8);
    header.writeDoubleLE(now, 8 + DEDUP_KEY_BYTES);
    header.writeUInt32LE(covered.length, 16 + DEDUP_KEY_BYTES);
    covered.forEach((c, p) => header.writeDoubleLE(c, FIXED_HEADER + 8 * p));
    await writeAll(fh, header, hash);
    const buf = Buffer.allocUnsafe(BLOCK_ENTRIES * ENTRY);
    let n = 0;
    for (const { chunk, from, to } of view.parts) {
      for (let i = from; i < to; i++) {
        const p = chunk.partition[i]!;
        if (!(chunk.offset[i]! < (covered[p] ?? 0))) continue;
        const at = n * ENTRY;
        buf.writeUInt32LE(chunk.digest[i * 4]!, at);
        buf.writeUInt32LE(chunk.digest[i * 4 + 1]!, at + 4);
        buf.writeUInt32LE(chunk.digest[i * 4 + 2]!, at + 8);
        buf.writeUInt32LE(chunk.digest[i * 4 + 3]!, at + 12);
        buf.writeUInt16LE(p, at + 16);
        buf.writeDoubleLE(chunk.offset[i]!, at + 18);
        buf.writeDoubleLE(chunk.base + chunk.ts[i]!, at + 26);
        count++;
        if (++n === BLOCK_ENTRIES) {
          await writeAll(fh, buf, hash);
          n = 0;
        }
      }
    }
    if (n > 0) await writeAll(fh, buf.subarray(0, n * ENTRY), hash);
    const trailer = Buffer.alloc(TRAILER);
    trailer.writeDoubleLE(count, 0);
    hash.update(trailer.subarray(0, 8));
    hash.digest().copy(trailer, 8);
    await writeAll(fh, trailer);
    if (sync) await fh.datasync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  if (sync) await fsyncDir(dirname(path));
  return count;
}

async function writeAll(fh: import('node:fs/promises').FileHandle, buf: Buffer, hash?: import('node:crypto').Hash): Promise<void> {
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
  let fh: import('node:fs/promises').FileHandle;
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
    const fixed = await readExactly(fh, FIXED_HEADER, 0);
    if (fixed.readUInt32LE(0) !== MAGIC) return bad('not a dedup snapshot (bad magic)');
    if (fixed.readUInt32LE(4) !== VERSION) return bad(`version ${fixed.readUInt32LE(4)} is not known`);
    const P = fixed.readUInt32LE(16 + DEDUP_KEY_BYTES);
    if (P > MAX_PARTITIONS) return bad(`it names ${P} partitions`);
    if (P !== partitions) return bad(`it is for ${P} partitions, the station has ${partitions}`);
    const headerLen = FIXED_HEADER + 8 * P;
    const body = size - headerLen - TRAILER;
    if (body < 0 || body % ENTRY !== 0) return bad(`truncated or torn (${size} bytes)`);
    const hash = createHash('sha256').update(fixed);
    const coveredBuf = await readExactly(fh, 8 * P, FIXED_HEADER);
    hash.update(coveredBuf);
    const covered = Array.from({ length: P }, (_, p) => coveredBuf.readDoubleLE(8 * p));
    if (covered.some((c) => !Number.isSafeInteger(c) || c < 0)) return bad('a covered offset is not an offset');
    const index = new DedupIndex(maxIds, Buffer.from(fixed.subarray(8, 8 + DEDUP_KEY_BYTES)));
    const entries = body / ENTRY;
    let kept = 0;
    let pos = headerLen;
    for (let done = 0; done < entries; ) {
      const n = Math.min(BLOCK_ENTRIES, entries - done);
      const buf = await readExactly(fh, n * ENTRY, pos);
      hash.update(buf);
      for (let i = 0; i < n; i++) {
        const at = i * ENTRY;
        const partition = buf.readUInt16LE(at + 16);
        const offset = buf.readDoubleLE(at + 18);
        const timestamp = buf.readDoubleLE(at + 26);
        // A bad value here is damage the checksum will name; never store it meanwhile.
        if (partition >= P || !Number.isSafeInteger(offset) || offset < 1 || !Number.isFinite(timestamp)) continue;
        if (!keep(partition, offset, timestamp)) continue;
        index.rememberDigest(buf.readUInt32LE(at), buf.readUInt32LE(at + 4), buf.readUInt32LE(at + 8), buf.readUInt32LE(at + 12), { partition, offset, timestamp });
        kept++;
      }
      done += n;
      pos += n * ENTRY;
    }
    const trailer = await readExactly(fh, TRAILER, pos);
    hash.update(trailer.subarray(0, 8));
    if (!hash.digest().equals(trailer.subarray(8))) return bad('its checksum does not match (damaged or torn)');
    if (trailer.readDoubleLE(0) !== entries) return bad(`it says ${trailer.readDoubleLE(0)} entries and holds ${entries}`);
    return { index, covered, entries, kept, writtenAt: fixed.readDoubleLE(8 + DEDUP_KEY_BYTES) };
  } catch (err) {
    return bad(`unreadable (${err instanceof Error ? err.message : String(err)})`);
  } finally {
    await fh.close().catch(() => {});
  }
}

async function readExactly(fh: import('node:fs/promises').FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let at = 0;
  while (at < length) {
    const { bytesRead } = await fh.read(buf, at, length - at, position + at);
    if (bytesRead === 0) throw new Error(`ended at byte ${position + at}, expected ${position + length}`);
    at += bytesRead;
  }
  return buf;
}
