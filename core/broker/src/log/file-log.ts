/**
 * The file-backed partition log.
 *
 * A directory per partition:
 * - `<base>.log` segments, named by the offset their first record gets (20 digits, zero-padded), holding
 *   record frames (see record-codec.ts). The newest is the active segment; it is never deleted.
 * - `<base>.idx` beside each sealed segment: a sparse index (one entry per ~4 KiB of log: relative offset,
 *   file position, timestamp) under a header that summarises the segment (size, first/last offset, record
 *   count, timestamps) and a crc. An index that is missing, damaged, stale, or describes a segment with
 *   gaps is not trusted: the segment is scanned and the index rewritten. The active segment has no index
 *   file; it is always scanned on open.
 * - `meta`: the logical start (`truncateBefore`) when it lies inside a segment, so it survives restarts
 *   and so offsets are never reused even when every record was truncated.
 *
 * Writes go through one ordered queue (one writev per run of queued batches); fsyncs run on their own
 * chain so a write never waits for an fsync, and every `always` append that finished writing while an
 * fsync ran shares the next one (group commit).
 *
 * Beside this file: segment.ts (a segment's bookkeeping and its index file), sparse-index.ts,
 * segment-file.ts (the shared, reference-counted handle), file-io.ts (scan window, full reads/writes).
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import type { FsyncPolicy } from '@junction/protocol';
import { ErrorCode, JunctionError } from '../errors.js';
import { FileWindow, closedError, fsyncDir, ioError, parseInterval, readFully, unlinkQuiet, writeFully } from './file-io.js';
import { FrameFault, MIN_FRAME_BYTES, checkFrame, decodeRecord, newHeaderMemo, describeFault, encodeRecords, frameOffset } from './record-codec.js';
import { SEGMENT_RE, encodeIndex, loadIndex, newSegment, noteRecord, segmentFor, type Segment } from './segment.js';
import { INDEX_INTERVAL_BYTES } from './sparse-index.js';
import type { CorruptRange, LogOptions, LogRecord, PartitionLog, ReadLimits, RecordInput } from './types.js';

export { INDEX_INTERVAL_BYTES } from './sparse-index.js';
export { segmentFileName } from './segment.js';

const META_FILE = 'meta';
const READ_MIN_BYTES = 64 * 1024;
const READ_MAX_BYTES = 16 * 1024 * 1024;
const READ_SLACK_BYTES = 8 * 1024;
const CACHE_MAX_BYTES = 1024 * 1024;
const WRITE_MAX_BUFFERS = 1024;
const WRITE_MAX_BYTES = 32 * 1024 * 1024;

/**
 * Opens (creating if needed) the log in `options.dir`, recovering it: the active segment is scanned in
 * full and a torn tail is truncated; sealed segments are trusted through their index or scanned when it
 * cannot be trusted; damaged ranges are reported in `corruptRanges` and skipped. Throws IO_ERROR when the
 * directory cannot be read or written.
 */
export async function openFileLog(options: LogOptions & { dir: string }): Promise<PartitionLog> {
  const log = new FileLog(options);
  try {
    await log.open();
  } catch (err) {
    await log.close().catch(() => {});
    throw ioError(`cannot open the partition log in ${options.dir}`, err);
  }
  return log;
}

// ---------------------------------------------------------------------------------------------------
// The write queue

interface Waiter {
  first: number;
  resolve: (first: number) => void;
  reject: (err: unknown) => void;
}

type Op =
  | { kind: 'write'; seg: Segment; buf: Buffer; lastOffset: number; waiter: Waiter; sync: boolean }
  | { kind: 'roll'; old: Segment; seg: Segment }
  | { kind: 'delete'; segs: Segment[]; done: () => void };

interface ReadCache {
  seg: Segment;
  pos: number;
  buf: Buffer;
}

class FileLog implements PartitionLog {
  private readonly dir: string;
  private segmentBytes: number;
  private fsyncPolicy: FsyncPolicy;
  private readonly onFsync: ((seconds: number) => void) | undefined;

  private segments: Segment[] = [];
  private active!: Segment;
  private start = 1;
  private next = 1;
  /** Every offset below this has been written to its file. */
  private writtenNext = 1;
  private totalBytes = 0;
  /** Offsets known to hold no record (damage, torn tails of sealed segments), for `count`. */
  private gaps: Array<[number, number]> = [];
  private lost = 0;
  private readonly corrupt: CorruptRange[] = [];

  private queue: Op[] = [];
  private pumping: Promise<void> | null = null;
  private readonly dirty = new Set<Segment>();
  private syncWaiters: Waiter[] = [];
  private syncing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private writeTick: { promise: Promise<void>; resolve: () => void } | null = null;
  /**
   * The last chunk read, reused while reads stay inside it (a consumer reading a few records at a time
   * should not cost a disk read each). Segment bytes never change once written, so it never goes stale.
   */
  private cache: ReadCache | null = null;
  private metaChain: Promise<void> = Promise.resolve();
  private metaPending: Promise<void> | null = null;
  private metaStart = 0;

  private failure: JunctionError | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(options: LogOptions & { dir: string }) {
    this.dir = options.dir;
    this.segmentBytes = options.segmentBytes;
    this.fsyncPolicy = options.fsync;
    this.onFsync = options.onFsync;
  }

  get firstOffset(): number {
    return this.start;
  }
  get nextOffset(): number {
    return this.next;
  }
  get count(): number {
    return this.next - this.start - this.lost;
  }
  get bytes(): number {
    return this.totalBytes;
  }
  get corruptRanges(): readonly CorruptRange[] {
    return this.corrupt;
  }

  // ----- open / recovery -------------------------------------------------------------------------

  async open(): Promise<void> {
    const made = await fsp.mkdir(this.dir, { recursive: true });
    if (made !== undefined && this.fsyncPolicy !== 'never') await fsyncDir(path.dirname(made));
    const names = await fsp.readdir(this.dir);
    const bases: number[] = [];
    const present = new Set(names);
    for (const name of names) {
      const m = SEGMENT_RE.exec(name);
      if (m) bases.push(Number(m[1]));
      else if (name.endsWith('.tmp')) await unlinkQuiet(path.join(this.dir, name));
      else if (name.endsWith('.idx') && !present.has(name.slice(0, -4) + '.log')) await unlinkQuiet(path.join(this.dir, name));
    }
    bases.sort((a, b) => a - b);
    this.metaStart = await this.readMeta();

    // Segments wholly below the persisted start were being deleted when the process stopped.
    while (bases.length > 1 && (bases[1] as number) <= this.metaStart) {
      const base = bases.shift() as number;
      const seg = newSegment(this.dir, base);
      await unlinkQuiet(seg.logPath);
      await unlinkQuiet(seg.idxPath);
    }
    let created = false;
    if (bases.length === 0) {
      bases.push(Math.max(1, this.metaStart));
      created = true;
    }

    let prevLast = (bases[0] as number) - 1;
    let expected = bases[0] as number;
    for (let i = 0; i < bases.length; i++) {
      const seg = newSegment(this.dir, bases[i] as number);
      const isLast = i === bases.length - 1;
      const nextBase = isLast ? Infinity : (bases[i + 1] as number);
      this.segments.push(seg);
      if (isLast) {
        const handle = await fsp.open(seg.logPath, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
        seg.file.adopt(handle);
        await unlinkQuiet(seg.idxPath);
        expected = await this.scanSegment(seg, handle, prevLast, true, nextBase, expected);
      } else {
        const fileSize = (await fsp.stat(seg.logPath)).size;
        const idx = await fsp.readFile(seg.idxPath).catch(() => null);
        if (!idx || !loadIndex(seg, idx, fileSize, prevLast, nextBase)) {
          const handle = await fsp.open(seg.logPath, 'r');
          try {
            expected = await this.scanSegment(seg, handle, prevLast, false, nextBase, expected);
          } finally {
            await handle.close();
          }
          if (seg.damaged || seg.count === 0 || seg.firstOffset !== seg.base || seg.lastOffset !== nextBase - 1) await unlinkQuiet(seg.idxPath);
          else await this.writeIndex(seg);
        }
      }
      // Offsets a sealed segment should hold up to the next base but does not (a damaged tail).
      if (seg.count > 0) {
        expected = Math.max(expected, seg.lastOffset + 1);
        prevLast = seg.lastOffset;
      }
      if (!isLast && nextBase > expected) {
        this.addGap(expected, nextBase - 1);
        this.reportDamage(seg, expected, nextBase - 1, seg.tailDamage ?? `the segment ends at offset ${expected - 1}, before the next segment's base ${nextBase}`);
        expected = nextBase;
      }
      this.totalBytes += seg.size;
    }
    this.active = this.segments[this.segments.length - 1] as Segment;
    const first = this.segments[0] as Segment;
    this.next = Math.max(this.active.count > 0 ? this.active.lastOffset + 1 : this.active.base, this.metaStart, 1);
    this.writtenNext = this.next;
    this.start = Math.max(first.base, this.metaStart, 1);
    this.recomputeLost();
    if (created && this.fsyncPolicy !== 'never') await fsyncDir(this.dir);
    this.startTimer();
  }

  /**
   * Scans a segment: checks every frame (length, crc, increasing offsets), rebuilds the index, records
   * damage and gaps. A damaged tail with no valid frame after it is truncated in the active segment
   * (a torn write) and skipped, reported, in a sealed one.
   */
  private async scanSegment(seg: Segment, handle: FileHandle, prevLast: number, isLast: boolean, nextBase: number, expectedFrom: number): Promise<number> {
    let size = (await handle.stat()).size;
    const w = new FileWindow(handle, size);
    let prev = Math.max(prevLast, seg.base - 1);
    let expected = expectedFrom;
    let pos = 0;
    while (pos < size) {
      const fault = await w.check(pos, prev);
      if (fault > 0) {
        const offset = w.offsetAt(pos);
        if (offset > expected) {
          this.addGap(expected, offset - 1);
          seg.damaged = true;
        }
        noteRecord(seg, offset, pos, w.timestampAt(pos));
        prev = offset;
        expected = offset + 1;
        pos += fault;
        continue;
      }
      if (fault === FrameFault.OFFSET) {
        // An intact frame whose offset does not increase: skip it, keep the bytes, report it.
        const frameSize = w.sizeAt(pos);
        const raw = w.offsetAt(pos);
        const offset = Number.isSafeInteger(raw) ? raw : prev;
        this.reportDamage(seg, offset, offset, `${describeFault(fault, w.buf, pos - w.start, w.end - w.start, prev, pos)}; record skipped`);
        seg.skips.set(pos, pos + frameSize);
        seg.damaged = true;
        pos += frameSize;
        continue;
      }
      const detail = describeFault(fault, w.buf, pos - w.start, w.end - w.start, prev, pos);
      const next = await w.resync(pos, prev);
      if (next < 0) {
        if (isLast) {
          // A torn write: the frame never completed, nothing valid follows. Its offsets were never durable.
          await handle.truncate(pos);
          if (this.fsyncPolicy !== 'never') await handle.datasync();
          size = pos;
        } else {
          // Reported by open() with the offsets the segment lacks up to the next base.
          seg.tailDamage = `${detail}; ${size - pos} bytes up to the end of the segment skipped`;
          seg.skips.set(pos, size);
          seg.damaged = true;
        }
        break;
      }
      const nextOffset = w.offsetAt(next);
      this.reportDamage(seg, prev + 1, nextOffset - 1, `${detail}; ${next - pos} bytes skipped`);
      seg.skips.set(pos, next);
      seg.damaged = true;
      pos = next;
    }
    seg.size = seg.written = size;
    return expected;
  }

  private reportDamage(seg: Segment, fromOffset: number, toOffset: number, detail: string): void {
    this.corrupt.push({ segment: seg.name, fromOffset, toOffset, detail });
  }

  private addGap(from: number, to: number): void {
    if (to >= from) this.gaps.push([from, to]);
  }

  private recomputeLost(): void {
    let lost = 0;
    for (const [a, b] of this.gaps) {
      const lo = Math.max(a, this.start);
      const hi = Math.min(b, this.next - 1);
      if (hi >= lo) lost += hi - lo + 1;
    }
    this.lost = lost;
  }

  private async readMeta(): Promise<number> {
    try {
      const parsed: unknown = JSON.parse(await fsp.readFile(path.join(this.dir, META_FILE), 'utf8'));
      const start = (parsed as { start?: unknown }).start;
      return typeof start === 'number' && Number.isSafeInteger(start) && start >= 1 ? start : 0;
    } catch {
      return 0;
    }
  }

  private async writeIndex(seg: Segment): Promise<void> {
    const tmp = `${seg.idxPath}.tmp`;
    await fsp.writeFile(tmp, encodeIndex(seg));
    await fsp.rename(tmp, seg.idxPath);
  }

  // ----- append ----------------------------------------------------------------------------------

  append(records: readonly RecordInput[]): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    if (this.failure) return Promise.reject(this.failure);
    const first = this.next;
    if (records.length === 0) return Promise.resolve(first);
    const starts: number[] = [];
    let buf: Buffer;
    try {
      buf = encodeRecords(records, first, starts);
    } catch (err) {
      return Promise.reject(err);
    }
    let seg = this.active;
    if (seg.size > 0 && seg.size + buf.length > this.segmentBytes) seg = this.roll();
    const basePos = seg.size;
    for (let i = 0; i < records.length; i++) noteRecord(seg, first + i, basePos + (starts[i] as number), (records[i] as RecordInput).timestamp);
    seg.size += buf.length;
    this.totalBytes += buf.length;
    this.next = first + records.length;
    const sync = this.fsyncPolicy === 'always';
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ kind: 'write', seg, buf, lastOffset: this.next - 1, sync, waiter: { first, resolve, reject } });
      this.kick();
    });
  }

  private roll(): Segment {
    const old = this.active;
    const seg = newSegment(this.dir, this.next);
    this.segments.push(seg);
    this.active = seg;
    this.queue.push({ kind: 'roll', old, seg });
    return seg;
  }

  private kick(): void {
    if (this.pumping) return;
    this.pumping = this.pump()
      .catch((err: unknown) => this.fail(err))
      .finally(() => {
        this.pumping = null;
        if (this.queue.length > 0) this.kick();
      });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      const ops = this.queue;
      this.queue = [];
      let i = 0;
      while (i < ops.length) {
        const op = ops[i] as Op;
        if (op.kind === 'write') {
          let j = i + 1;
          let bytes = op.buf.length;
          while (j < ops.length && j - i < WRITE_MAX_BUFFERS && bytes < WRITE_MAX_BYTES) {
            const o = ops[j] as Op;
            if (o.kind !== 'write' || o.seg !== op.seg) break;
            bytes += o.buf.length;
            j++;
          }
          await this.runWrites(ops.slice(i, j) as Array<Extract<Op, { kind: 'write' }>>);
          i = j;
        } else if (op.kind === 'roll') {
          await this.runRoll(op.old, op.seg);
          i++;
        } else {
          await this.runDelete(op.segs);
          op.done();
          i++;
        }
      }
    }
  }

  private async runWrites(ops: Array<Extract<Op, { kind: 'write' }>>): Promise<void> {
    if (this.failure) {
      for (const op of ops) op.waiter.reject(this.failure);
      return;
    }
    const seg = (ops[0] as (typeof ops)[number]).seg;
    try {
      const handle = await seg.file.acquire();
      if (!handle) throw new Error(`segment ${seg.name} is no longer open`);
      try {
        await writeFully(
          handle,
          ops.map((o) => o.buf),
          seg.written,
        );
      } finally {
        seg.file.release();
      }
    } catch (err) {
      this.fail(err);
      for (const op of ops) op.waiter.reject(this.failure);
      return;
    }
    const before = seg.written;
    for (const op of ops) seg.written += op.buf.length;
    if (seg.verified === before) seg.verified = seg.written;
    this.writtenNext = (ops[ops.length - 1] as (typeof ops)[number]).lastOffset + 1;
    this.dirty.add(seg);
    const tick = this.writeTick;
    this.writeTick = null;
    tick?.resolve();
    let needSync = false;
    for (const op of ops) {
      if (op.sync) {
        this.syncWaiters.push(op.waiter);
        needSync = true;
      } else op.waiter.resolve(op.waiter.first);
    }
    if (needSync) this.kickSync();
  }

  private async runRoll(old: Segment, seg: Segment): Promise<void> {
    if (this.failure) return;
    try {
      const handle = await fsp.open(seg.logPath, 'wx+', 0o644);
      seg.file.adopt(handle);
      if (this.fsyncPolicy !== 'never') await fsyncDir(this.dir);
      if (!old.damaged) {
        // The sealed segment's bytes go to disk before the index that vouches for them.
        const oldHandle = await old.file.acquire();
        if (oldHandle) {
          try {
            const t0 = process.hrtime.bigint();
            await oldHandle.datasync();
            this.reportFsync(t0);
          } finally {
            old.file.release();
          }
          await this.writeIndex(old);
        }
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private async runDelete(segs: Segment[]): Promise<void> {
    for (const seg of segs) {
      this.dirty.delete(seg);
      if (this.cache?.seg === seg) this.cache = null;
      try {
        await unlinkQuiet(seg.logPath);
        await unlinkQuiet(seg.idxPath);
      } catch {
        // A file that cannot be removed is retried by the next open (it lies below the start).
      }
      await seg.file.dispose();
    }
    // Make the removal durable, so a crash cannot bring back records below the start.
    if (this.fsyncPolicy !== 'never') await fsyncDir(this.dir).catch(() => {});
  }

  /** Puts the log into a failed state: data on disk is in doubt, so every later append is refused. */
  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = new JunctionError(ErrorCode.IO_ERROR, `partition log in ${this.dir} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    const tick = this.writeTick;
    this.writeTick = null;
    tick?.resolve();
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const w of waiters) w.reject(this.failure);
  }

  // ----- fsync -----------------------------------------------------------------------------------

  private kickSync(force = false): void {
    if (this.syncing) return;
    if (this.syncWaiters.length === 0 && !(force && this.dirty.size > 0)) return;
    this.syncing = this.runSync()
      .catch((err: unknown) => this.fail(err))
      .finally(() => {
        this.syncing = null;
        this.kickSync();
      });
  }

  private async runSync(): Promise<void> {
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    const segs = [...this.dirty];
    this.dirty.clear();
    try {
      if (this.failure) throw this.failure;
      if (segs.length > 0) {
        const t0 = process.hrtime.bigint();
        for (const seg of segs) {
          const handle = await seg.file.acquire();
          if (!handle) continue;
          try {
            await handle.datasync();
          } finally {
            seg.file.release();
          }
        }
        this.reportFsync(t0);
      }
    } catch (err) {
      this.fail(err);
      for (const w of waiters) w.reject(this.failure);
      return;
    }
    for (const w of waiters) w.resolve(w.first);
  }

  private reportFsync(t0: bigint): void {
    try {
      this.onFsync?.(Number(process.hrtime.bigint() - t0) / 1e9);
    } catch {
      // A metrics callback must not break durability.
    }
  }

  private startTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const ms = parseInterval(this.fsyncPolicy);
    if (ms > 0) {
      this.timer = setInterval(() => this.kickSync(true), ms);
      this.timer.unref();
    }
  }

  /** Waits until every queued write is done, then fsyncs whatever is dirty. */
  private async syncEverything(): Promise<void> {
    while (this.pumping) await this.pumping;
    if (this.failure) throw this.failure;
    await new Promise<number>((resolve, reject) => {
      this.syncWaiters.push({ first: 0, resolve, reject });
      this.kickSync();
    });
  }

  // ----- read ------------------------------------------------------------------------------------

  async read(fromOffset: number, limits: ReadLimits): Promise<LogRecord[]> {
    if (this.closed) throw closedError();
    try {
      return await this.readRecords(fromOffset, limits);
    } catch (err) {
      throw ioError(`reading the partition log in ${this.dir} failed`, err);
    }
  }

  private async readRecords(fromOffset: number, limits: ReadLimits): Promise<LogRecord[]> {
    const from = Math.max(Math.ceil(fromOffset), this.start);
    if (!(from < this.next)) return [];
    // A read sees every append called before it: wait for the writes of the records it may return.
    const maxMessages = Math.max(1, limits.maxMessages);
    const needed = Math.min(this.next, from + maxMessages);
    while (this.writtenNext < needed) {
      if (this.failure) throw this.failure;
      if (!this.writeTick) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        this.writeTick = { promise, resolve };
      }
      await this.writeTick.promise;
    }
    const out: LogRecord[] = [];
    const state = { bytes: 0, maxMessages, maxBytes: limits.maxBytes, msgIds: limits.msgIds !== false };
    const segs = this.segments;
    for (let i = segmentFor(segs, from); i < segs.length; i++) {
      if (await this.readSegment(segs[i] as Segment, from, out, state)) break;
    }
    if (out.length > 0 && (out[0] as LogRecord).offset < this.start) {
      const start = this.start;
      return out.filter((r) => r.offset >= start);
    }
    return out;
  }

  /** Appends to `out` the records of one segment at or after `from`; true when a limit was reached. */
  private async readSegment(seg: Segment, from: number, out: LogRecord[], st: { bytes: number; maxMessages: number; maxBytes: number; msgIds: boolean }): Promise<boolean> {
    const limit = seg.written;
    if (limit === 0 || (seg.count > 0 && seg.lastOffset < from)) return false;
    let pos = 0;
    let prev = seg.base - 1;
    let skipping = true;
    const k = seg.index.floorOffset(from);
    if (k >= 0) {
      pos = seg.index.positions[k] as number;
      prev = (seg.index.offsets[k] as number) - 1;
      skipping = (seg.index.offsets[k] as number) < from;
    }
    const handle = await seg.file.acquire();
    if (!handle) return false;
    try {
      const avg = seg.count > 0 ? seg.size / seg.count : 1024;
      const want = Math.min(st.maxBytes - st.bytes, (st.maxMessages - out.length) * avg) + (skipping ? INDEX_INTERVAL_BYTES + avg : 0) + READ_SLACK_BYTES;
      let chunk = Math.ceil(Math.min(Math.max(want, READ_MIN_BYTES), READ_MAX_BYTES));
      let bypassCache = false;
      let recheckedAt = -1;
      while (pos < limit) {
        let buf: Buffer;
        const c: ReadCache | null = bypassCache ? null : this.cache;
        const fromCache: boolean = c !== null && c.seg === seg && pos >= c.pos && pos < c.pos + c.buf.length;
        if (c !== null && fromCache) {
          buf = c.buf.subarray(pos - c.pos);
        } else {
          // Never from Node's shared pool: a read buffer holds this segment's bytes and nothing else, so
          // what lies between two records' values in it is the log's own data (fetchChunks relies on it).
          buf = Buffer.allocUnsafeSlow(Math.min(chunk, limit - pos));
          await readFully(handle, buf, buf.length, pos);
          if (buf.length <= CACHE_MAX_BYTES) this.cache = { seg, pos, buf };
        }
        bypassCache = false;
        const len = buf.length;
        let p = 0;
        let damagedAt = -1;
        const memo = newHeaderMemo();
        while (p < len) {
          const at = pos + p;
          // Not for bytes from the read cache: a caller may have scribbled on a value it was handed (a
          // view into that buffer); the CRC tells, and the frame is then read again from the file.
          const known = !fromCache && at < seg.verified;
          const size = checkFrame(buf, p, len, prev, !known);
          if (size > 0) {
            if (!known && at === seg.verified) seg.verified = at + size;
            const offset = frameOffset(buf, p);
            if (offset >= from) {
              if (out.length > 0 && st.bytes + size > st.maxBytes) return true;
              out.push(decodeRecord(buf, p, memo, st.msgIds));
              st.bytes += size;
              if (out.length >= st.maxMessages) return true;
            }
            prev = offset;
            p += size;
            continue;
          }
          if (size === FrameFault.INCOMPLETE) {
            const need = p + 4 <= len ? 4 + buf.readUInt32LE(p) : MIN_FRAME_BYTES;
            if (pos + p + need <= limit) {
              // The frame continues past this chunk: read on from its start.
              if (p === 0) chunk = Math.max(chunk, need);
              bypassCache = fromCache;
              break;
            }
          }
          damagedAt = pos + p;
          break;
        }
        if (damagedAt >= 0) {
          const end = await this.skipDamage(seg, handle, damagedAt, prev, limit, recheckedAt === damagedAt);
          if (end === damagedAt) {
            // The bytes on disk are fine (the cached chunk was changed by a caller): read them afresh.
            recheckedAt = damagedAt;
            bypassCache = true;
            if (this.cache?.seg === seg) this.cache = null;
          }
          pos = end;
          // Continue as a fresh chunk; prev stays: the frame after damage has a greater offset.
          continue;
        }
        pos += p;
      }
      return false;
    } finally {
      seg.file.release();
    }
  }

  /**
   * The end of the damaged range starting at `pos`: known from the scan, or found and reported now.
   * Returns `pos` itself when the bytes read afresh from disk are a valid frame (unless `force`).
   */
  private skipDamage(seg: Segment, handle: FileHandle, pos: number, prev: number, limit: number, force: boolean): Promise<number> {
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
        const nextSeg = this.segments[this.segments.indexOf(seg) + 1];
        const toOffset = next >= 0 ? w.offsetAt(next) - 1 : nextSeg ? nextSeg.base - 1 : seg.lastOffset;
        this.reportDamage(seg, prev + 1, toOffset, `${detail} (found while reading); ${end - pos} bytes skipped`);
        seg.skips.set(pos, end);
        if (toOffset >= prev + 1) {
          this.addGap(prev + 1, toOffset);
          this.recomputeLost();
        }
        seg.damaged = true;
        // The index no longer describes a clean segment: have the next open scan it.
        if (seg !== this.active) await unlinkQuiet(seg.idxPath).catch(() => {});
        return end;
      })().finally(() => seg.repairs.delete(pos));
      seg.repairs.set(pos, pending);
    }
    return pending;
  }

  // ----- timestamps ------------------------------------------------------------------------------

  async offsetForTimestamp(ts: number): Promise<number> {
    if (this.closed) throw closedError();
    const segs = this.segments;
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
    let found = after && after.count > 0 ? after.firstOffset : this.next;
    if (lo > 0) {
      const seg = segs[lo - 1] as Segment;
      const k = seg.index.lastBefore(ts);
      let from = k >= 0 ? (seg.index.offsets[k] as number) : seg.firstOffset;
      // A short scan from the index entry: timestamps do not decrease, so the answer is near.
      scan: while (from < this.next) {
        const recs = await this.read(from, { maxMessages: 256, maxBytes: 256 * 1024 });
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
    return Math.min(Math.max(found, this.start), this.next);
  }

  // ----- retention -------------------------------------------------------------------------------

  async truncateBefore(offset: number): Promise<void> {
    if (this.closed) throw closedError();
    const target = Math.min(Math.floor(offset), this.next);
    if (target <= this.start) return;
    this.start = target;
    // Everything is below the start: roll, so the old active segment can go (unless it is small, to
    // avoid a file per call when a fast consumer truncates after every batch).
    if (target === this.next && this.active.size >= Math.min(this.segmentBytes / 4, 1024 * 1024)) {
      this.roll();
      this.kick();
    }
    let drop = 0;
    while (drop < this.segments.length - 1 && (this.segments[drop + 1] as Segment).base <= target) drop++;
    await Promise.all([this.dropSegments(drop), this.persistStart()]);
  }

  async trimToBytes(maxBytes: number): Promise<void> {
    if (this.closed) throw closedError();
    let drop = 0;
    let bytes = this.totalBytes;
    while (drop < this.segments.length - 1 && bytes > maxBytes) {
      bytes -= (this.segments[drop] as Segment).size;
      drop++;
    }
    if (drop === 0) return;
    await this.dropSegments(drop);
  }

  private dropSegments(n: number): Promise<void> {
    if (n === 0) return Promise.resolve();
    const gone = this.segments.slice(0, n);
    this.segments = this.segments.slice(n);
    for (const seg of gone) this.totalBytes -= seg.size;
    this.start = Math.max(this.start, (this.segments[0] as Segment).base);
    this.recomputeLost();
    return new Promise<void>((resolve) => {
      this.queue.push({ kind: 'delete', segs: gone, done: resolve });
      this.kick();
    });
  }

  /** Persists the start when it lies inside the first segment (otherwise the segment names say it). */
  private persistStart(): Promise<void> {
    this.recomputeLost();
    if (this.start <= (this.segments[0] as Segment).base || this.start <= this.metaStart) return Promise.resolve();
    if (this.metaPending) return this.metaPending;
    const p = this.metaChain.then(async () => {
      this.metaPending = null;
      const start = this.start;
      const file = path.join(this.dir, META_FILE);
      const tmp = `${file}.tmp`;
      const h = await fsp.open(tmp, 'w', 0o644);
      try {
        await h.writeFile(JSON.stringify({ version: 1, start }));
        if (this.fsyncPolicy !== 'never') await h.datasync();
      } finally {
        await h.close();
      }
      await fsp.rename(tmp, file);
      if (this.fsyncPolicy !== 'never') await fsyncDir(this.dir);
      this.metaStart = Math.max(this.metaStart, start);
    });
    this.metaPending = p;
    this.metaChain = p.catch(() => {});
    return p.catch((err: unknown) => {
      throw ioError('cannot persist the log start', err);
    });
  }

  // ----- lifecycle -------------------------------------------------------------------------------

  configure(options: { fsync?: FsyncPolicy; segmentBytes?: number }): void {
    if (options.segmentBytes !== undefined) this.segmentBytes = options.segmentBytes;
    if (options.fsync !== undefined && options.fsync !== this.fsyncPolicy) {
      this.fsyncPolicy = options.fsync;
      if (!this.closed) this.startTimer();
    }
  }

  async flush(): Promise<void> {
    if (this.closed) throw closedError();
    await this.syncEverything();
  }

  close(): Promise<void> {
    this.closed = true;
    this.closing ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      const failedBefore = this.failure;
      let error: unknown = null;
      try {
        if (this.segments.length > 0) await this.syncEverything();
      } catch (err) {
        // A log that had already failed reported it to its appenders; closing it still succeeds.
        if (!failedBefore) error = err;
      }
      await this.metaChain;
      await Promise.all(this.segments.map((s) => s.file.dispose()));
      if (error) throw ioError('closing the partition log failed', error);
    })();
    return this.closing;
  }
}

