/**
 * The partition log's read-path helpers (see file-log.ts), apart from the per-record loop (which stays in
 * FileLog.readSegment): a sealed segment's index loaded on first use, the end of a damaged range found
 * while reading, the offset for a timestamp and the ranges that may hold msgIds.
 */
import type { FileHandle } from 'node:fs/promises';
import { promises as fsp } from 'node:fs';
import { FileWindow, unlinkQuiet } from './file-io.js';
import { describeFault } from './record-codec.js';
import { writeIndexFile } from './recovery.js';
import { loadIndexEntries, segmentFor, type Segment } from './segment.js';
import { INDEX_INTERVAL_BYTES, SparseIndex } from './sparse-index.js';
import type { LogRecord, ReadLimits } from './types.js';

/** What skipDamage needs of the log: its segments and active segment now, and where damage is recorded. */
export interface DamageSite {
  segments(): readonly Segment[];
  active(): Segment;
  recordDamage(seg: Segment, fromOffset: number, toOffset: number, detail: string): void;
}

/** What offsetForTimestamp needs of the log: its segments when called, its bounds now, and reads. */
export interface TimestampSite {
  segments: readonly Segment[];
  next(): number;
  start(): number;
  read(fromOffset: number, limits: ReadLimits): Promise<LogRecord[]>;
}

/** Loads a sealed segment's index entries from its file, once, on first use (start-up read only its header). */
export function ensureIndex(seg: Segment): Promise<void> {
  seg.indexLoading ??= loadSegmentIndex(seg).finally(() => {
    seg.indexLoading = null;
  });
  return seg.indexLoading;
}

async function loadSegmentIndex(seg: Segment): Promise<void> {
  const buf = await fsp.readFile(seg.idxPath).catch(() => null);
  if (buf && loadIndexEntries(seg, buf)) return;
  // The entries do not check out (the header did, at open): an index is a cache of the segment, so
  // rebuild it from the frames. It stops at the first damaged frame; reads beyond find the damage.
  const handle = await seg.file.acquire();
  if (!handle) return;
  const index = new SparseIndex();
  let lastIndexed = -Infinity;
  let pos = 0;
  let whole = false;
  try {
    const w = new FileWindow(handle, seg.written);
    let prev = seg.base - 1;
    for (;;) {
      if (pos >= seg.written) {
        whole = true;
        break;
      }
      const size = await w.check(pos, prev);
      if (size <= 0) break;
      const offset = w.offsetAt(pos);
      if (pos - lastIndexed >= INDEX_INTERVAL_BYTES) {
        index.push(offset, pos, w.timestampAt(pos));
        lastIndexed = pos;
      }
      prev = offset;
      pos += size;
    }
  } finally {
    seg.file.release();
  }
  seg.index = index;
  seg.lastIndexed = lastIndexed;
  seg.indexFile = false;
  if (whole) await writeIndexFile(seg).catch(() => {});
  else {
    seg.damaged = true;
    await unlinkQuiet(seg.idxPath).catch(() => {});
  }
}

/**
 * The end of the damaged range starting at `pos`: known from the scan, or found and reported now.
 * Returns `pos` itself when the bytes read afresh from disk are a valid frame (unless `force`).
 */
export function skipDamage(
  site: DamageSite,
  seg: Segment,
  handle: FileHandle,
  pos: number,
  prev: number,
  limit: number,
  force: boolean,
): Promise<number> {
  const known = seg.skips.get(pos);
  if (known !== undefined) return Promise.resolve(known);
  let pending = seg.repairs.get(pos);
  if (!pending) {
    pending = (async () => {
      const w = new FileWindow(handle, limit);
      const fault = await w.check(pos, prev);
      if (fault > 0 && !force) return pos;
      const detail = describeFault(fault, w.buf, pos - w.start, w.end - w.start, prev, pos);
      const next = await w.resync(pos, prev);
      const end = next < 0 ? limit : next;
      const segments = site.segments();
      const nextSeg = segments[segments.indexOf(seg) + 1];
      const toOffset = next >= 0 ? w.offsetAt(next) - 1 : nextSeg ? nextSeg.base - 1 : seg.lastOffset;
      seg.skips.set(pos, end);
      site.recordDamage(seg, prev + 1, toOffset, `${detail} (found while reading); ${end - pos} bytes skipped`);
      seg.damaged = true;
      // The index no longer describes a clean segment: have the next open scan it.
      if (seg !== site.active()) await unlinkQuiet(seg.idxPath).catch(() => {});
      return end;
    })().finally(() => seg.repairs.delete(pos));
    seg.repairs.set(pos, pending);
  }
  return pending;
}

/** See PartitionLog.offsetForTimestamp: the segments' first timestamps, then the sparse index, then a short scan. */
export async function offsetForTimestamp(log: TimestampSite, ts: number): Promise<number> {
  const segs = log.segments;
  // The first segment whose first record is at or after ts; the answer lies in the one before, or is its first record.
  let lo = 0;
  let hi = segs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const s = segs[mid] as Segment;
    if (s.count === 0 || s.firstTimestamp >= ts) hi = mid;
    else lo = mid + 1;
  }
  const after = segs[lo];
  let found = after && after.count > 0 ? after.firstOffset : log.next();
  if (lo > 0) {
    const seg = segs[lo - 1] as Segment;
    if (seg.indexFile) await ensureIndex(seg);
    const k = seg.index.lastBefore(ts);
    let from = k >= 0 ? (seg.index.offsets[k] as number) : seg.firstOffset;
    // A short scan from the index entry: timestamps do not decrease, so the answer is near.
    scan: while (from < log.next()) {
      const recs = await log.read(from, { maxMessages: 256, maxBytes: 256 * 1024 });
      if (recs.length === 0) break;
      for (const r of recs) {
        if (r.timestamp >= ts) {
          found = r.offset;
          break scan;
        }
        if (r.offset >= found) break scan;
      }
      from = (recs[recs.length - 1] as LogRecord).offset + 1;
    }
  }
  return Math.min(Math.max(found, log.start()), log.next());
}

/** The offset ranges, from `from` (below `next`), of the segments that may hold msgIds, joined where adjacent. */
export function msgIdRangesOf(segs: readonly Segment[], from: number, next: number): Array<{ from: number; to: number }> {
  const out: Array<{ from: number; to: number }> = [];
  for (let i = segmentFor(segs, from); i < segs.length; i++) {
    const seg = segs[i] as Segment;
    if (seg.msgIds === false) continue;
    const lo = Math.max(from, seg.base);
    const hi = i + 1 < segs.length ? (segs[i + 1] as Segment).base - 1 : next - 1;
    if (hi < lo) continue;
    const last = out[out.length - 1];
    if (last && last.to + 1 >= lo) last.to = hi;
    else out.push({ from: lo, to: hi });
  }
  return out;
}
