/**
 * A partition log that is open only while it is used: a file log (file-log.ts) behind a summary of
 * what it holds (first and next offset, count, bytes, damaged ranges, whether it may hold msgIds).
 *
 * - Built from a summary (a clean stop recorded it: embedded/manifest.ts), it opens nothing until the
 *   first call that needs the files; built from an open log, it starts open.
 * - An LRU of open logs (`LogLru`, process-wide by default) closes the least recently used idle ones
 *   past its capacity — a clean close (what a stop does: fsync, clean checkpoint) — keeping the summary,
 *   and the next call opens the log again (recovery reads its checkpoint: metadata only). An idle log
 *   costs its summary, no descriptors, no timers.
 * - Appends keep PartitionLog's contract: offsets are assigned synchronously, in call order — while the
 *   log opens they are queued (the summary's next offset moves) and handed to the log in order once it
 *   is open. A log is never closed by the LRU with a call or an append in flight, and never opened
 *   twice at once (a reopen waits for the close).
 */
import type { FsyncPolicy } from '@junction/protocol';
import { closedError } from './file-io.js';
import type { CorruptRange, LogRecord, PartitionLog, ReadLimits, RecordInput } from './types.js';

/** What a closed log is known by (see the file comment). */
export interface LogSummary {
  firstOffset: number;
  nextOffset: number;
  count: number;
  bytes: number;
  /** Some retained record may carry a msgId. */
  msgIds: boolean;
  /** PartitionLog.firstTimestamp (null: not known). */
  firstTimestamp: number | null;
}

/** The summary of an open log. */
export function summarize(log: PartitionLog): LogSummary {
  const ts = log.firstTimestamp;
  return {
    firstOffset: log.firstOffset,
    nextOffset: log.nextOffset,
    count: log.count,
    bytes: log.bytes,
    msgIds: log.msgIdRanges(log.firstOffset).length > 0,
    firstTimestamp: ts === undefined ? null : ts,
  };
}

/** Open logs by last use; closes idle ones past `capacity`. */
export class LogLru {
  private static instance: LogLru | undefined;
  /** The process-wide LRU (default capacity DEFAULT_OPEN_LOGS). */
  static get shared(): LogLru {
    LogLru.instance ??= new LogLru(DEFAULT_OPEN_LOGS);
    return LogLru.instance;
  }

  private readonly open = new Set<LazyLog>();
  evictions = 0;

  constructor(private cap: number) {}

  get capacity(): number {
    return this.cap;
  }

  get size(): number {
    return this.open.size;
  }

  setCapacity(cap: number): void {
    this.cap = Math.max(1, Math.floor(cap));
    this.trim();
  }

  touch(log: LazyLog): void {
    this.open.delete(log);
    this.open.add(log);
    if (this.open.size > this.cap) this.trim();
  }

  forget(log: LazyLog): void {
    this.open.delete(log);
  }

  private trim(): void {
    let excess = this.open.size - this.cap;
    if (excess <= 0) return;
    for (const log of this.open) {
      if (excess <= 0) break;
      if (log.evict()) {
        this.open.delete(log);
        this.evictions++;
        excess--;
      }
    }
  }
}

/** Partition logs kept open by default (the rest are summaries until used). */
export const DEFAULT_OPEN_LOGS = 4096;

// Shared empties: an idle log allocates none of its own.
const NO_APPENDS: QueuedAppend[] = [];
const NO_RANGES: readonly CorruptRange[] = [];
const NO_CONFIG: { fsync?: FsyncPolicy; segmentBytes?: number } = Object.freeze({});

interface QueuedAppend {
  records: readonly RecordInput[];
  resolve: (first: number) => void;
  reject: (err: unknown) => void;
}

/** See the file comment. `open` opens the underlying log (with the current fsync and segment size). */
export class LazyLog implements PartitionLog {
  private inner: PartitionLog | null = null;
  private opening: Promise<PartitionLog> | null = null;
  private closingInner: Promise<void> | null = null;
  private busy = 0;
  private queued: QueuedAppend[] = NO_APPENDS;
  private ranges: readonly CorruptRange[] = NO_RANGES;
  private config: { fsync?: FsyncPolicy; segmentBytes?: number } = NO_CONFIG;
  private closed = false;
  private summary: LogSummary;

  constructor(
    private readonly openLog: (config: { fsync?: FsyncPolicy; segmentBytes?: number }) => Promise<PartitionLog>,
    from: { summary: LogSummary } | { log: PartitionLog },
    private readonly lru: LogLru = LogLru.shared,
  ) {
    if ('log' in from) {
      this.inner = from.log;
      this.summary = summarize(from.log);
      this.lru.touch(this);
    } else this.summary = { ...from.summary };
  }

  /** Whether the files are open now. */
  get isOpen(): boolean {
    return this.inner !== null;
  }

  get firstOffset(): number {
    return this.inner ? this.inner.firstOffset : this.summary.firstOffset;
  }
  get nextOffset(): number {
    return this.inner ? this.inner.nextOffset : this.summary.nextOffset;
  }
  get count(): number {
    return this.inner ? this.inner.count : this.summary.count;
  }
  get bytes(): number {
    return this.inner ? this.inner.bytes : this.summary.bytes;
  }
  get corruptRanges(): readonly CorruptRange[] {
    return this.inner ? this.inner.corruptRanges : this.ranges;
  }
  get firstTimestamp(): number | undefined {
    if (this.inner) return this.inner.firstTimestamp;
    return this.summary.firstTimestamp ?? undefined;
  }
  get openBytesRead(): number | undefined {
    return this.inner?.openBytesRead;
  }

  /** The summary now (of the open log, or the one kept). */
  currentSummary(): LogSummary {
    return this.inner ? summarize(this.inner) : { ...this.summary };
  }

  private ensure(): Promise<PartitionLog> {
    if (this.inner) return Promise.resolve(this.inner);
    this.opening ??= (async () => {
      try {
        if (this.closingInner) await this.closingInner.catch(() => {});
        if (this.closed) throw closedError();
        const log = await this.openLog(this.config);
        if (this.closed) {
          await log.close().catch(() => {});
          throw closedError();
        }
        this.inner = log;
        // Appends made while it opened, in their order (their offsets were assigned from the summary).
        const q = this.queued;
        this.queued = NO_APPENDS;
        for (const a of q) this.track(log.append(a.records)).then(a.resolve, a.reject);
        this.lru.touch(this);
        return log;
      } catch (err) {
        const q = this.queued;
        this.queued = NO_APPENDS;
        for (const a of q) a.reject(err);
        throw err;
      } finally {
        this.opening = null;
      }
    })();
    return this.opening;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.busy++;
    return p.finally(() => {
      this.busy--;
      if (this.inner && !this.closed) this.lru.touch(this);
    });
  }

  private async use<T>(fn: (log: PartitionLog) => Promise<T>): Promise<T> {
    if (this.closed) throw closedError();
    this.busy++;
    try {
      return await fn(await this.ensure());
    } finally {
      this.busy--;
      if (this.inner && !this.closed) this.lru.touch(this);
    }
  }

  append(records: readonly RecordInput[]): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    if (this.inner) return this.track(this.inner.append(records));
    const first = this.summary.nextOffset;
    if (records.length === 0) return Promise.resolve(first);
    this.summary.nextOffset += records.length;
    this.summary.count += records.length;
    if (this.queued === NO_APPENDS) this.queued = [];
    const p = new Promise<number>((resolve, reject) => this.queued.push({ records, resolve, reject }));
    void this.ensure().catch(() => {
      // The queued appends were rejected with the error.
    });
    return this.track(p);
  }

  read(fromOffset: number, limits: ReadLimits): Promise<LogRecord[]> {
    return this.use((l) => l.read(fromOffset, limits));
  }

  offsetForTimestamp(ts: number): Promise<number> {
    if (!this.inner && !this.closed && this.queued.length === 0) {
      // Nothing stored, or the oldest record is not older than ts: no need to open the files.
      if (this.summary.count === 0) return Promise.resolve(this.summary.nextOffset);
      const first = this.summary.firstTimestamp;
      if (first !== null && first >= ts) return Promise.resolve(this.summary.firstOffset);
    }
    return this.use((l) => l.offsetForTimestamp(ts));
  }

  truncateBefore(offset: number): Promise<void> {
    if (!this.inner && !this.closed && Math.min(Math.floor(offset), this.summary.nextOffset) <= this.summary.firstOffset)
      return Promise.resolve();
    return this.use((l) => l.truncateBefore(offset));
  }

  trimToBytes(maxBytes: number): Promise<void> {
    if (!this.inner && !this.closed && this.summary.bytes <= maxBytes) return Promise.resolve();
    return this.use((l) => l.trimToBytes(maxBytes));
  }

  raiseFloor(floor: number, detail: string): Promise<void> {
    if (!this.inner && !this.closed && floor <= this.summary.nextOffset) return Promise.resolve();
    return this.use((l) => l.raiseFloor(floor, detail));
  }

  msgIdRanges(fromOffset: number): Array<{ from: number; to: number }> {
    if (this.inner) return this.inner.msgIdRanges(fromOffset);
    const from = Math.max(Math.ceil(fromOffset), this.summary.firstOffset);
    // Not known segment by segment while closed: the whole retained range, when it may hold any.
    return this.summary.msgIds && from < this.summary.nextOffset ? [{ from, to: this.summary.nextOffset - 1 }] : [];
  }

  configure(options: { fsync?: FsyncPolicy; segmentBytes?: number }): void {
    if (this.config === NO_CONFIG) this.config = {};
    if (options.fsync !== undefined) this.config.fsync = options.fsync;
    if (options.segmentBytes !== undefined) this.config.segmentBytes = options.segmentBytes;
    this.inner?.configure(options);
  }

  flush(): Promise<void> {
    if (!this.inner && !this.opening && this.queued.length === 0) return this.closed ? Promise.reject(closedError()) : Promise.resolve();
    return this.use((l) => l.flush());
  }

  /** Called by the LRU: closes the files when idle (true), keeping the summary; false when in use. */
  evict(): boolean {
    const log = this.inner;
    if (!log || this.busy > 0 || this.opening || this.queued.length > 0 || this.closed) return false;
    this.summary = summarize(log);
    this.ranges = log.corruptRanges;
    this.inner = null;
    this.closingInner = log.close().finally(() => {
      this.closingInner = null;
    });
    // A failed close leaves the files as a crash would; the next open recovers them.
    this.closingInner.catch(() => {});
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Queued appends and calls in flight finish first.
    if (this.opening) await this.opening.catch(() => {});
    this.closed = true;
    this.lru.forget(this);
    const log = this.inner;
    if (log) {
      this.summary = summarize(log);
      this.ranges = log.corruptRanges;
      this.inner = null;
      await log.close();
    } else if (this.closingInner) await this.closingInner.catch(() => {});
  }
}
