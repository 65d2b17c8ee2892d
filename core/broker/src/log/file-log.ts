/**
 * The file-backed partition log.
 *
 * A directory per partition:
 * - `<base>.log` segments, named by the offset their first record gets (20 digits, zero-padded), holding
 *   record frames (see record-codec.ts). The newest is the active segment; it is never deleted.
 * - `<base>.idx` beside each sealed segment: a sparse index (one entry per ~4 KiB of log: relative offset,
 *   file position, timestamp) under a header that summarises the segment (size, first/last offset, record
 *   count, timestamps, whether it holds msgIds) and a crc. An index that is missing, damaged, stale, or
 *   describes a segment with gaps is not trusted: the segment is scanned and the index rewritten.
 * - `checkpoint`: the recovery checkpoint (checkpoint.ts): how far the active segment is written (and
 *   fsynced, under `always` / `interval`), its sparse index, the offset floor and the start. Written after
 *   every fsync round (a pwrite, off the produce's path), at roll, at clean close, before segments are
 *   deleted; fsynced at most every CHECKPOINT_SYNC_MS. Start-up reads only what it does not cover
 *   (recovery.ts).
 * - `meta`: the logical start (`truncateBefore`) and the damaged ranges found so far (damage.ts), written
 *   atomically with the previous version kept as `meta.prev`.
 *
 * Writes go through one ordered queue (one writev per run of queued batches); fsyncs run on their own
 * chain so a write never waits for an fsync, and every `always` append that finished writing while an
 * fsync ran shares the next one (group commit).
 *
 * Beside this file: segment.ts (a segment's bookkeeping and its index file), sparse-index.ts,
 * segment-file.ts (the shared, reference-counted handle), file-io.ts (scan window, full reads/writes),
 * file-log-read.ts (the read path's helpers: lazy segment index, damage skip, offset for a timestamp).
 */
import { promises as fsp } from 'node:fs';
import type { FsyncPolicy } from '@junction/protocol';
import { ErrorCode, JunctionError } from '../errors.js';
import { BufferShelf } from '../buffer-shelf.js';
import { type Checkpoint, type CheckpointFile } from './checkpoint.js';
import { type DamageRegistry, type GapSet, writePartitionMeta } from './damage.js';
import { closedError, fsyncDir, ioError, parseInterval, readFully, unlinkQuiet, writeFully } from './file-io.js';
import { FrameFault, MIN_FRAME_BYTES, checkFrame, decodeRecord, newHeaderMemo, encodeRecords, frameOffset } from './record-codec.js';
import { recover, writeIndexFile } from './recovery.js';
import { ensureIndex, msgIdRangesOf, offsetForTimestamp, skipDamage, type DamageSite } from './file-log-read.js';
import { newSegment, noteRecord, segmentFor, type Segment } from './segment.js';
import { INDEX_INTERVAL_BYTES } from './sparse-index.js';
import type { CorruptRange, LogOptions, LogRecord, PartitionLog, ReadLimits, RecordInput } from './types.js';

export { INDEX_INTERVAL_BYTES } from './sparse-index.js';
export { segmentFileName } from './segment.js';

/** The checkpoint file is fsynced at most this often (and at roll, close and before deletions). */
export const CHECKPOINT_SYNC_MS = 1000;
const READ_MIN_BYTES = 64 * 1024;
const READ_MAX_BYTES = 16 * 1024 * 1024;
const READ_SLACK_BYTES = 8 * 1024;
const CACHE_MAX_BYTES = 1024 * 1024;
const WRITE_MAX_BUFFERS = 1024;
const WRITE_MAX_BYTES = 32 * 1024 * 1024;

/**
 * Opens (creating if needed) the log in `options.dir`, recovering it (recovery.ts): sealed segments are
 * trusted through their index, the active segment up to its checkpoint, and only the rest is scanned; a
 * torn tail is truncated (onTornTail); damaged ranges are skipped, recorded in `corruptRanges` and, when
 * new, passed to onDamage; offsets the checkpoint says were handed out are never handed out again. Throws
 * IO_ERROR when the directory cannot be read or written.
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

/**
 * Buffers for the frames of appends, reused once written (one shelf for every log of the process: appends
 * run on its one thread). A produce request of 1,000 messages of 1 KiB encodes ~1 MB of frames: fresh,
 * its page faults and the collections it sets off cost more than the encoding. Appends larger than 8 MiB
 * (a 64 MiB produce request) get a buffer of their own, never kept; small ones use Node's slab.
 * @internal exported for tests
 */
export const FRAME_SHELF = new BufferShelf(8, 8 * 1024 * 1024);

type Op =
  | {
      kind: 'write';
      seg: Segment;
      /** From FRAME_SHELF: back on the shelf once written. */
      buf: Buffer;
      lastOffset: number;
      count: number;
      lastTimestamp: number;
      msgIds: boolean;
      waiter: Waiter;
      sync: boolean;
    }
  | { kind: 'roll'; old: Segment; seg: Segment }
  | { kind: 'delete'; segs: Segment[]; done: () => void };

/** A checkpoint to write: the slot's fields, and how many of the segment's index entries it covers. */
interface CheckpointState {
  c: Omit<Checkpoint, 'seq' | 'entries' | 'entriesCrc'>;
  seg: Segment;
  entries: number;
}

interface ReadCache {
  seg: Segment;
  pos: number;
  buf: Buffer;
}

class FileLog implements PartitionLog {
  /** What skipDamage (file-log-read.ts) needs of this log. */
  private readonly site: DamageSite = {
    segments: () => this.segments,
    active: () => this.active,
    recordDamage: (seg, fromOffset, toOffset, detail) => this.recordDamage(seg, fromOffset, toOffset, detail),
  };
  private readonly dir: string;
  private segmentBytes: number;
  private fsyncPolicy: FsyncPolicy;
  private readonly onFsync: ((seconds: number) => void) | undefined;
  private readonly onDamage: ((range: CorruptRange) => void) | undefined;

  private segments: Segment[] = [];
  private active!: Segment;
  /** The segment the writer appends to (the active one once its roll ran): what a checkpoint describes. */
  private writing!: Segment;
  private start = 1;
  private next = 1;
  /** Every offset below this has been written to its file. */
  private writtenNext = 1;
  private totalBytes = 0;
  /**
   * Bytes of the first segment that lie below the start (records truncated but not yet deleted with
   * their segment): not retained, so not in `bytes`. Exact to the sparse index's interval.
   */
  private deadBytes = 0;
  /** Offsets known to hold no record (damage, missing ranges, a raised floor), for `count`. */
  private gaps!: GapSet;
  private registry!: DamageRegistry;

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

  private checkpoint: CheckpointFile | null = null;
  /** The newest checkpoint asked for and not written yet; written by one loop at a time. */
  private ckWanted: CheckpointState | null = null;
  private ckBusy = false;
  private ckDone: Promise<void> = Promise.resolve();
  private ckWritten: CheckpointState['c'] | null = null;
  private ckTimer: NodeJS.Timeout | null = null;
  /**
   * A checkpoint that does not say "clean" is on disk (written by this process, or left by a crash):
   * writes may go ahead. Until then the first write writes one (markUnclean).
   */
  private markedUnclean = false;
  /** Bytes read from disk by open (scans, indexes, the checkpoint): what start-up cost. */
  openBytesRead = 0;

  private failure: JunctionError | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: LogOptions & { dir: string }) {
    this.dir = options.dir;
    this.segmentBytes = options.segmentBytes;
    this.fsyncPolicy = options.fsync;
    this.onFsync = options.onFsync;
    this.onDamage = options.onDamage;
  }

  get firstOffset(): number {
    return this.start;
  }
  get nextOffset(): number {
    return this.next;
  }
  get count(): number {
    return this.next - this.start - this.gaps.within(this.start, this.next);
  }
  get bytes(): number {
    return this.totalBytes - this.deadBytes;
  }
  get corruptRanges(): readonly CorruptRange[] {
    return this.registry.retained(this.start);
  }
  get firstTimestamp(): number | undefined {
    const seg = this.segments[0];
    if (!seg) return undefined;
    if (seg.count > 0) return seg.firstTimestamp;
    return this.segments.length === 1 ? Infinity : undefined;
  }

  // ----- open / recovery -------------------------------------------------------------------------

  async open(): Promise<void> {
    const r = await recover({
      dir: this.dir,
      fsync: this.fsyncPolicy,
      onTornTail: this.options.onTornTail,
      onMetadataRepair: this.options.onMetadataRepair,
    });
    this.checkpoint = r.checkpoint;
    this.segments = r.segments;
    this.active = this.writing = r.segments[r.segments.length - 1] as Segment;
    this.start = r.start;
    this.next = this.writtenNext = r.next;
    this.totalBytes = r.totalBytes;
    this.gaps = r.gaps;
    this.registry = r.registry;
    this.openBytesRead = r.bytesRead;
    for (const range of r.found) this.reportFound(range);
    this.applySyncOnEvict();
    if (r.uncheckpointed || !r.checkpoint.loaded) {
      // Bytes found after the checkpoint may exist only in the page cache (a killed process): make them
      // durable before a checkpoint vouches for them.
      if (r.uncheckpointed && this.fsyncPolicy !== 'never') await this.active.file.datasync();
      // A crash must not look like a clean stop. A pwrite is enough against a killed process; the
      // checkpoint's fsync follows within CHECKPOINT_SYNC_MS (not one fsync per partition at start-up).
      await this.checkpointNow(this.captureCheckpoint(false), false);
    } else {
      // Checkpoint in place and nothing after it: start-up read only metadata and writes nothing. The
      // checkpoint stops saying "clean" before the first write (markUnclean), so an idle partition costs
      // no write at start and none at close.
      this.markedUnclean = !r.checkpoint.loaded.clean;
    }
    if (r.metaDirty) await this.persistMeta();
    await this.measureDeadBytes();
  }

  /** Segments and the checkpoint are fsynced before the descriptor budget closes them, unless the policy is `never`. */
  private applySyncOnEvict(): void {
    const sync = this.fsyncPolicy !== 'never';
    for (const seg of this.segments) seg.file.syncOnEvict = sync;
    if (this.checkpoint) this.checkpoint.syncOnEvict = sync;
  }

  private reportFound(range: CorruptRange): void {
    try {
      this.onDamage?.(range);
    } catch {
      // A reporting callback must not break the log.
    }
  }

  /** A damaged range found after open (while reading, or by raiseFloor): recorded once, reported once. */
  private recordDamage(seg: Segment, fromOffset: number, toOffset: number, detail: string): void {
    const r = this.registry.record({ segment: seg.name, fromOffset, toOffset, detail });
    if (!r) return;
    this.gaps.add(fromOffset, toOffset);
    this.reportFound(r);
    this.persistMeta().catch(() => {
      // Not fatal: the range is found again (and recorded then) by a later open or read.
    });
  }

  // ----- checkpoint ------------------------------------------------------------------------------

  /**
   * What a checkpoint may say now: the writer's segment up to the bytes written. Under `always` and
   * `interval` it is taken as an fsync starts (runSync), so it vouches only for fsynced bytes.
   */
  private captureCheckpoint(clean: boolean): CheckpointState {
    const seg = this.writing;
    const pos = seg.written;
    // Index entries of the written prefix (entries are pushed as records are assigned, ahead of writes).
    const idx = seg.index;
    let lo = 0;
    let hi = idx.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((idx.positions[mid] as number) < pos) lo = mid + 1;
      else hi = mid;
    }
    const entries = lo;
    return {
      seg,
      entries,
      c: {
        clean,
        base: seg.base,
        position: pos,
        next: Math.max(this.writtenNext, seg.base),
        count: seg.writtenCount,
        firstOffset: seg.writtenCount > 0 ? seg.firstOffset : 0,
        lastOffset: seg.writtenCount > 0 ? seg.writtenLastOffset : 0,
        firstTimestamp: seg.writtenCount > 0 ? seg.firstTimestamp : 0,
        lastTimestamp: seg.writtenCount > 0 ? seg.writtenLastTimestamp : 0,
        msgIds: seg.writtenMsgIds,
        start: this.start,
        lastIndexed: entries > 0 ? (idx.positions[entries - 1] as number) : -1,
      },
    };
  }

  /** Writes `s` (or a newer one asked for meanwhile) soon; resolves once written. Older states are skipped. */
  private checkpointSoon(s: CheckpointState): Promise<void> {
    this.ckWanted = s;
    if (!this.ckBusy) {
      this.ckBusy = true;
      this.ckDone = this.runCheckpoints();
    }
    return this.ckDone;
  }

  private async runCheckpoints(): Promise<void> {
    try {
      while (this.ckWanted) {
        const s = this.ckWanted;
        this.ckWanted = null;
        const w = this.ckWritten;
        // Never step back (a capture taken before a roll that was written after it, say).
        if (w && (s.c.base < w.base || (s.c.base === w.base && (s.c.position < w.position || s.c.next < w.next)))) continue;
        if (!this.checkpoint) return;
        await this.checkpoint.write(s.c, s.seg.index, s.entries);
        this.ckWritten = s.c;
        if (!s.c.clean) this.markedUnclean = true;
        this.armCheckpointTick();
      }
    } finally {
      this.ckBusy = false;
    }
  }

  /** Writes a checkpoint now (after any in flight) and, with `sync`, fsyncs the file. */
  private async checkpointNow(s: CheckpointState, sync: boolean): Promise<void> {
    await this.checkpointSoon(s);
    if (sync) await this.checkpoint?.sync();
  }

  /** The periodic part: `never` checkpoints what is written; the others fsync the checkpoint file. */
  private checkpointTick(): void {
    if (this.closed || this.failure || !this.checkpoint) return;
    if (this.fsyncPolicy === 'never') {
      const s = this.captureCheckpoint(false);
      const w = this.ckWritten;
      if (!w || s.c.position !== w.position || s.c.base !== w.base || s.c.next !== w.next || s.c.start !== w.start)
        void this.checkpointSoon(s).catch(() => {});
      return;
    }
    void this.ckDone
      .then(() => this.checkpoint?.sync())
      .catch(() => {
        // Retried at the next tick; the segments' own fsyncs are what acknowledgements wait for.
      });
  }

  /** Persists the start and the damage registry in `meta` (coalescing calls made while one waits). */
  private persistMeta(): Promise<void> {
    if (this.metaPending) return this.metaPending;
    const p = this.metaChain.then(async () => {
      this.metaPending = null;
      this.registry.prune(this.start);
      await writePartitionMeta(this.dir, this.start, this.registry.all, this.fsyncPolicy !== 'never');
    });
    this.metaPending = p;
    this.metaChain = p.catch(() => {});
    return p.catch((err: unknown) => {
      throw ioError('cannot persist the partition meta', err);
    });
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
      buf = encodeRecords(records, first, starts, (n) => FRAME_SHELF.buffer(n));
    } catch (err) {
      return Promise.reject(err);
    }
    let seg = this.active;
    if (seg.size > 0 && seg.size + buf.length > this.segmentBytes) seg = this.roll();
    const basePos = seg.size;
    let msgIds = false;
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as RecordInput;
      const hasMsgId = r.msgId !== undefined;
      if (hasMsgId) msgIds = true;
      noteRecord(seg, first + i, basePos + (starts[i] as number), r.timestamp, hasMsgId);
    }
    seg.size += buf.length;
    this.totalBytes += buf.length;
    this.next = first + records.length;
    const sync = this.fsyncPolicy === 'always';
    const lastTimestamp = (records[records.length - 1] as RecordInput).timestamp;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({
        kind: 'write',
        seg,
        buf,
        lastOffset: this.next - 1,
        count: records.length,
        lastTimestamp,
        msgIds,
        sync,
        waiter: { first, resolve, reject },
      });
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
      if (!this.markedUnclean) await this.markUnclean();
      const handle = await seg.file.acquire();
      if (!handle) throw new Error(`segment ${seg.name} is no longer open`);
      try {
        await writeFully(
          handle,
          ops.map((o) => o.buf),
          seg.written,
        );
        seg.file.noteWrite();
      } finally {
        seg.file.release();
      }
      // Written: nothing reads these frames' buffers any more (reads go to the file).
      for (const op of ops) FRAME_SHELF.release(op.buf);
    } catch (err) {
      this.fail(err);
      for (const op of ops) op.waiter.reject(this.failure);
      return;
    }
    const before = seg.written;
    for (const op of ops) {
      seg.written += op.buf.length;
      seg.writtenCount += op.count;
      if (op.msgIds) seg.writtenMsgIds = true;
    }
    const lastOp = ops[ops.length - 1] as (typeof ops)[number];
    seg.writtenLastOffset = lastOp.lastOffset;
    seg.writtenLastTimestamp = lastOp.lastTimestamp;
    if (seg.verified === before) seg.verified = seg.written;
    this.writtenNext = (ops[ops.length - 1] as (typeof ops)[number]).lastOffset + 1;
    this.dirty.add(seg);
    this.armSyncTimer();
    if (this.fsyncPolicy === 'never') this.armCheckpointTick();
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
      seg.file.syncOnEvict = this.fsyncPolicy !== 'never';
      seg.file.adopt(handle);
      if (this.fsyncPolicy !== 'never') await fsyncDir(this.dir);
      this.writing = seg;
      // The sealed segment's bytes go to disk before the index and the checkpoint that vouch for them.
      const t0 = process.hrtime.bigint();
      await old.file.datasync();
      this.reportFsync(t0);
      // A segment with damage or gaps gets no index: the next open scans it.
      if (!old.damaged) await writeIndexFile(old);
      // The checkpoint moves to the new segment (its index entries start over).
      await this.checkpointNow(this.captureCheckpoint(false), this.fsyncPolicy !== 'never');
    } catch (err) {
      this.fail(err);
    }
  }

  private async runDelete(segs: Segment[]): Promise<void> {
    // The new start goes into the checkpoint first: a segment missing below a checkpoint's start is
    // retention's doing; one missing above it is damage.
    await this.checkpointNow(this.captureCheckpoint(false), this.fsyncPolicy !== 'never').catch(() => {
      // Deleting anyway is safe: the next open then reports the deleted range as missing, never serves it.
    });
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
    this.failure = new JunctionError(
      ErrorCode.IO_ERROR,
      `partition log in ${this.dir} failed: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
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
    // Taken with `segs`: every byte written so far is either in them or was fsynced before.
    const ck = this.checkpoint && segs.length > 0 ? this.captureCheckpoint(false) : null;
    try {
      if (this.failure) throw this.failure;
      if (segs.length > 0) {
        const t0 = process.hrtime.bigint();
        for (const seg of segs) await seg.file.datasync();
        this.reportFsync(t0);
      }
    } catch (err) {
      this.fail(err);
      for (const w of waiters) w.reject(this.failure);
      return;
    }
    for (const w of waiters) w.resolve(w.first);
    // After the answers: a checkpoint is a pwrite (no fsync), and a crash before it only means the
    // next open scans the bytes this fsync covered.
    if (ck) void this.checkpointSoon(ck).catch(() => {});
  }

  private reportFsync(t0: bigint): void {
    try {
      this.onFsync?.(Number(process.hrtime.bigint() - t0) / 1e9);
    } catch {
      // A metrics callback must not break durability.
    }
  }

  /**
   * Timers run only while there is work for them (an idle log has none): the `interval:<ms>` fsync is
   * armed by a write that left a segment dirty and fires once, within <ms> of it; the checkpoint tick by
   * a checkpoint written (its fsync) or, under `never`, by a write (a checkpoint of it).
   */
  private armSyncTimer(): void {
    if (this.timer || this.closed) return;
    const ms = parseInterval(this.fsyncPolicy);
    if (ms <= 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.kickSync(true);
    }, ms);
    this.timer.unref();
  }

  private armCheckpointTick(): void {
    if (this.ckTimer || this.closed) return;
    this.ckTimer = setTimeout(() => {
      this.ckTimer = null;
      this.checkpointTick();
    }, CHECKPOINT_SYNC_MS);
    this.ckTimer.unref();
  }

  /** Before the first write after a clean open: the checkpoint stops saying "clean". */
  private async markUnclean(): Promise<void> {
    if (this.checkpoint) await this.checkpointNow(this.captureCheckpoint(false), false);
    this.markedUnclean = true;
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
  private async readSegment(
    seg: Segment,
    from: number,
    out: LogRecord[],
    st: { bytes: number; maxMessages: number; maxBytes: number; msgIds: boolean },
  ): Promise<boolean> {
    const limit = seg.written;
    if (limit === 0 || (seg.count > 0 && seg.lastOffset < from)) return false;
    let pos = 0;
    let prev = seg.base - 1;
    let skipping = true;
    if (seg.indexFile) await ensureIndex(seg);
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
      const want =
        Math.min(st.maxBytes - st.bytes, (st.maxMessages - out.length) * avg) +
        (skipping ? INDEX_INTERVAL_BYTES + avg : 0) +
        READ_SLACK_BYTES;
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
          const end = await skipDamage(this.site, seg, handle, damagedAt, prev, limit, recheckedAt === damagedAt);
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

  // ----- timestamps ------------------------------------------------------------------------------

  async offsetForTimestamp(ts: number): Promise<number> {
    if (this.closed) throw closedError();
    return offsetForTimestamp(
      { segments: this.segments, next: () => this.next, start: () => this.start, read: (from, limits) => this.read(from, limits) },
      ts,
    );
  }

  // ----- floor and msgIds ------------------------------------------------------------------------

  async raiseFloor(floor: number, detail: string): Promise<void> {
    if (this.closed) throw closedError();
    const target = Math.floor(floor);
    if (!(target > this.next)) return;
    // The jump is made between writes, so that every offset below writtenNext is written or a gap.
    while (this.pumping) await this.pumping;
    if (this.failure) throw this.failure;
    if (!(target > this.next)) return;
    this.recordDamage(this.active, this.next, target - 1, detail);
    this.next = this.writtenNext = target;
    const tick = this.writeTick;
    this.writeTick = null;
    tick?.resolve();
    try {
      await this.checkpointNow(this.captureCheckpoint(false), this.fsyncPolicy !== 'never');
      await this.persistMeta();
    } catch (err) {
      throw ioError('cannot persist the raised offset floor', err);
    }
  }

  msgIdRanges(fromOffset: number): Array<{ from: number; to: number }> {
    return msgIdRangesOf(this.segments, Math.max(Math.ceil(fromOffset), this.start), this.next);
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
    await Promise.all([this.dropSegments(drop), this.persistMeta()]);
    await this.measureDeadBytes();
  }

  /** Recomputes `deadBytes`: where the start lies in the first segment (by its sparse index). */
  private async measureDeadBytes(): Promise<void> {
    const seg = this.segments[0];
    if (!seg || this.start <= seg.base) {
      this.deadBytes = 0;
      return;
    }
    if (seg.count > 0 && this.start > seg.lastOffset) {
      this.deadBytes = seg.size;
      return;
    }
    if (seg.indexFile) await ensureIndex(seg).catch(() => {});
    const k = seg.index.floorOffset(this.start);
    this.deadBytes = k >= 0 ? Math.min(seg.size, seg.index.positions[k] as number) : 0;
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
    this.deadBytes = 0;
    this.start = Math.max(this.start, (this.segments[0] as Segment).base);
    if (this.registry.prune(this.start)) this.persistMeta().catch(() => {});
    return new Promise<void>((resolve) => {
      this.queue.push({ kind: 'delete', segs: gone, done: resolve });
      this.kick();
    });
  }

  // ----- lifecycle -------------------------------------------------------------------------------

  configure(options: { fsync?: FsyncPolicy; segmentBytes?: number }): void {
    if (options.segmentBytes !== undefined) this.segmentBytes = options.segmentBytes;
    if (options.fsync !== undefined && options.fsync !== this.fsyncPolicy) {
      this.fsyncPolicy = options.fsync;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.applySyncOnEvict();
      if (!this.closed && this.dirty.size > 0) this.armSyncTimer();
    }
  }

  async flush(): Promise<void> {
    if (this.closed) throw closedError();
    await this.syncEverything();
    await this.checkpointNow(this.captureCheckpoint(false), true);
  }

  close(): Promise<void> {
    this.closed = true;
    this.closing ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      if (this.ckTimer) clearTimeout(this.ckTimer);
      this.timer = this.ckTimer = null;
      const failedBefore = this.failure;
      let error: unknown = null;
      try {
        if (this.segments.length > 0) {
          await this.syncEverything();
          // A clean stop: the next open knows nothing can follow the end written now. A log not written
          // since a clean open still has that checkpoint on disk.
          if (this.checkpoint && !this.failure && this.markedUnclean) await this.checkpointNow(this.captureCheckpoint(true), true);
        }
      } catch (err) {
        // A log that had already failed reported it to its appenders; closing it still succeeds.
        if (!failedBefore) error = err;
      }
      await this.ckDone.catch(() => {});
      await this.metaChain;
      await this.checkpoint?.close().catch(() => {});
      await Promise.all(this.segments.map((s) => s.file.dispose()));
      if (error) throw ioError('closing the partition log failed', error);
    })();
    return this.closing;
  }
}
