/**
 * Restoring a station's dedup index at open and keeping its snapshot on disk (file stations).
 *
 * Restore: the snapshot (dedup-snapshot.ts), minus what the log no longer holds (offsets past the
 * log's end as opened, offsets in damaged ranges: a producer's retry of those must be stored again), then
 * the log after the snapshot's `covered` offsets, partitions merged in timestamp order. A missing or
 * unusable snapshot falls back to reading the log inside the window (logged; `StationInfo.dedup.restored`
 * says which and why) — never to an index that could answer wrongly.
 *
 * Snapshots: written in the background after a produce once SNAPSHOT_MIN_IDS ids (or 1/64 of the index,
 * if more) were added since the last write, or 60 s passed with anything added; at close; and right after a restore that had to read
 * much of the log. A write appends a delta (the ids added since) unless there is no usable file or it
 * holds more than twice the ids of the index (expired ones pile up): then the whole index is written as
 * a new file. So each id is written about twice, and a crash replays at most SNAPSHOT_MIN_IDS ids or 1/64
 * of the index (or a minute of produce) from the log: what came after the last write is there. No timer: an idle station
 * costs nothing.
 */
import type { StationConfig, StationDedupInfo } from '@junction/protocol';
import type { LogRecord, PartitionLog } from '../log/types.js';
import type { DedupIndex } from './dedup.js';
import { appendDedupDelta, cutView, dedupSnapshotPath, readDedupSnapshot, writeDedupSnapshot } from './dedup-snapshot.js';
import { MinHeap } from './heap.js';

/** What a DedupRestorer needs of its station (station.ts). */
export interface DedupHost {
  readonly dir: string;
  readonly persistent: boolean;
  readonly config: StationConfig;
  readonly partitionCount: number;
  readonly logs: readonly PartitionLog[];
  /** Per partition: the log's end as opened. */
  readonly openedEnd: readonly number[];
  /** Per partition: the high watermark (every offset below is durable). */
  readonly hw: readonly number[];
  readonly closed: boolean;
  readonly dedupMaxIds: number;
  dedup: DedupIndex;
  read(partition: number, from: number, maxMessages: number, maxBytes: number, msgIds?: boolean): Promise<LogRecord[]>;
  syncPolicy(): 'always' | 'interval' | 'never';
  dedupLog(level: 'info' | 'warn' | 'error', detail: Record<string, unknown>, message: string): void;
}

/** Ids added since the last write before the next one is due. */
export const SNAPSHOT_MIN_IDS = 10_000;
/** With anything added, a snapshot at least this often (checked at produce). */
export const SNAPSHOT_MAX_AGE_MS = 60_000;
/** Records read per partition at a time, across all partitions (bounded memory for many partitions). */
const READ_RECORDS = 100_000;
const READ_BYTES = 16 * 1024 * 1024;

type Restored = NonNullable<StationDedupInfo['restored']>;

/**
 * Restores running at once in this process. A broker opening many stations starts every restore at
 * once; each holds a file open while it reads, and thousands at once would run out of descriptors
 * (EMFILE would send them all to the slow scan) and memory for their read buffers.
 */
const RESTORES_AT_ONCE = 16;
let restoresRunning = 0;
const restoresWaiting: Array<() => void> = [];

async function restoreSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (restoresRunning >= RESTORES_AT_ONCE) await new Promise<void>((resolve) => restoresWaiting.push(resolve));
  restoresRunning++;
  try {
    return await fn();
  } finally {
    restoresRunning--;
    restoresWaiting.shift()?.();
  }
}

export class DedupRestorer {
  restored: Restored | undefined;
  /** The index lacks ids (restoring, or the restore failed): never snapshot it. */
  private incomplete = false;
  private addedSince = 0;
  /** The snapshot file as this process knows it (absent: none usable, the next write is a full one). */
  private file: { bytes: number; entries: number } | undefined;
  /** The global slot number up to which the index's slots are in the file. */
  private persisted = 0;
  private lastAt = Date.now();
  private writing: Promise<void> | null = null;
  /** Snapshots written by this process (tests and the bench read it). */
  written = 0;

  constructor(private readonly st: DedupHost) {}

  get path(): string {
    return dedupSnapshotPath(this.st.dir);
  }

  /** Restores the index (see the file's comment). Rejects on a read error of the log (the index is then incomplete). */
  restore(now: number): Promise<void> {
    if (!this.st.persistent) {
      this.restored = { from: 'none', recordsRead: 0, ms: 0 };
      return Promise.resolve();
    }
    this.incomplete = true;
    return restoreSlot(() => this.restoreNow(now));
  }

  private async restoreNow(now: number): Promise<void> {
    const st = this.st;
    // Closed while it waited for its turn: nothing to restore (it stays incomplete, never snapshotted).
    if (st.closed) return;
    const t0 = performance.now();
    const window = st.config.dedupWindowMs;
    const P = st.partitionCount;
    let covered = new Array<number>(P).fill(0);
    let from: 'snapshot' | 'scan' = 'scan';
    let detail: string | undefined;
    const lost = st.logs.map((log) =>
      log.corruptRanges.filter((c) => c.toOffset >= c.fromOffset).map((c) => [c.fromOffset, c.toOffset] as const),
    );
    let droppedLost = 0;
    const keep = (p: number, offset: number, ts: number): boolean => {
      if (ts <= now - window) return false;
      if (offset < st.openedEnd[p]! && !lost[p]!.some(([a, b]) => offset >= a && offset <= b)) return true;
      droppedLost++;
      return false;
    };
    const snap = await readDedupSnapshot(this.path, P, st.dedupMaxIds, keep);
    if ('index' in snap) {
      st.dedup = snap.index;
      covered = snap.covered;
      from = 'snapshot';
      // Deltas go after the segments read; ids of lost messages must leave the file too: a full write then.
      this.file = droppedLost > 0 ? undefined : { bytes: snap.validBytes, entries: snap.entries };
      this.persisted = snap.index.appendedSlots;
      if (snap.ignoredTail)
        st.dedupLog(
          'info',
          { file: this.path, detail: snap.ignoredTail },
          'the end of the dedup snapshot was not used (an append a crash cut short): the log after it is replayed',
        );
      const short = covered.flatMap((c, p) => (c > st.openedEnd[p]! ? [p] : []));
      if (short.length > 0) {
        detail = `the log of partition${short.length > 1 ? 's' : ''} ${short.join(', ')} ends before what the snapshot covered: ids of messages not in the log were dropped`;
        st.dedupLog('warn', { partitions: short }, detail);
      }
    } else {
      detail = `no usable snapshot (${snap.problem}): read the log inside the window`;
      if (!snap.missing)
        st.dedupLog(
          'warn',
          { file: this.path, problem: snap.problem },
          'the dedup snapshot is damaged: rebuilding the dedup index from the log',
        );
    }
    const { read, remembered } = await this.replay(now, covered);
    // Closed while reading: the index lacks the rest, so it stays incomplete (and is never snapshotted).
    if (st.closed) return;
    this.incomplete = false;
    this.restored = { from, recordsRead: read, ms: Math.round(performance.now() - t0), ...(detail !== undefined && { detail }) };
    this.addedSince = remembered;
    // Quiet for the many stations with nothing to restore (one line each would flood a large broker's start).
    if (read > 0 || ('index' in snap && snap.entries > 0)) {
      st.dedupLog(
        'info',
        {
          from,
          recordsRead: read,
          ids: st.dedup.size,
          ms: this.restored.ms,
          ...('index' in snap && { snapshotEntries: snap.entries, kept: snap.kept }),
          ...(detail !== undefined && { detail }),
        },
        'dedup index restored',
      );
    }
    // The next start should not read all that again (a crash loop would).
    if (remembered >= SNAPSHOT_MIN_IDS || (from === 'scan' && remembered > 0) || droppedLost > 0) this.snapshot();
  }

  /**
   * Reads the log from `covered` (and from the window's start) to the high watermark, every partition
   * at once, remembering ids in timestamp order so expiry and the bound drop the oldest first.
   */
  private async replay(now: number, covered: readonly number[]): Promise<{ read: number; remembered: number }> {
    const st = this.st;
    const window = st.config.dedupWindowMs;
    const P = st.partitionCount;
    const perRead = Math.max(100, Math.floor(READ_RECORDS / P));
    const bytesPerRead = Math.max(64 * 1024, Math.floor(READ_BYTES / P));
    let read = 0;
    let remembered = 0;
    interface Cursor {
      p: number;
      spans: Array<{ from: number; to: number }>;
      at: number;
      recs: LogRecord[];
      i: number;
    }
    const fill = async (c: Cursor): Promise<boolean> => {
      c.recs = [];
      c.i = 0;
      while (c.spans.length > 0 && !st.closed) {
        const span = c.spans[0]!;
        const to = Math.min(span.to, st.hw[c.p]! - 1);
        const from = Math.max(c.at, span.from);
        if (from > to) {
          c.spans.shift();
          continue;
        }
        const recs = await st.read(c.p, from, perRead, bytesPerRead, true);
        if (recs.length === 0) {
          c.spans.shift();
          continue;
        }
        read += recs.length;
        c.at = recs[recs.length - 1]!.offset + 1;
        c.recs = recs.filter((r) => r.offset <= to && r.msgId !== undefined);
        if (c.recs.length > 0) return true;
      }
      return false;
    };
    const heap = new MinHeap<Cursor>((a, b) => {
      const ta = a.recs[a.i]!.timestamp;
      const tb = b.recs[b.i]!.timestamp;
      return ta < tb || (ta === tb && a.p < b.p);
    });
    for (let p = 0; p < P; p++) {
      const log = st.logs[p]!;
      // No segment that may hold msgIds after the snapshot: nothing to read (not even the time index).
      if (log.msgIdRanges(covered[p]!).length === 0) continue;
      const start = Math.max(covered[p]!, await log.offsetForTimestamp(now - window));
      const c: Cursor = { p, spans: log.msgIdRanges(start), at: start, recs: [], i: 0 };
      if (await fill(c)) heap.push(c);
    }
    const limit = now - window;
    // Made only when there is something to remember (a station's index is made on first use).
    const dedup = heap.size > 0 ? st.dedup : undefined;
    for (let c = heap.pop(); c && dedup; c = heap.pop()) {
      // A run of this partition's records up to the next partition's first (whole produce batches share a timestamp).
      const next = heap.peek();
      const until = next ? next.recs[next.i]!.timestamp : Infinity;
      do {
        const r = c.recs[c.i++]!;
        if (r.timestamp > limit) {
          dedup.remember(dedup.digest(r.msgId!), { partition: c.p, offset: r.offset, timestamp: r.timestamp });
          remembered++;
        }
      } while (c.i < c.recs.length && c.recs[c.i]!.timestamp <= until);
      if (c.i < c.recs.length || (await fill(c))) heap.push(c);
    }
    return { read, remembered };
  }

  /** Ids were added by a produce (now durable): writes a snapshot when enough were. */
  added(n: number, now: number): void {
    this.addedSince += n;
    if (this.writing || this.incomplete || !this.st.persistent) return;
    // A delta per 1/64 of the index at most: a file of at most ~128 segments a window, each worth a read.
    const due = this.addedSince >= Math.max(SNAPSHOT_MIN_IDS, this.st.dedup.size / 64) || now - this.lastAt >= SNAPSHOT_MAX_AGE_MS;
    if (due) this.snapshot();
  }

  /** Starts writing a snapshot in the background (one at a time); failures are logged and retried later. */
  private snapshot(): void {
    if (this.writing) return;
    const w = this.write().then(
      () => {},
      (err: unknown) =>
        this.st.dedupLog('error', { err, file: this.path }, 'could not write the dedup snapshot; a restart will read more of the log'),
    );
    this.writing = w;
    void w.finally(() => {
      if (this.writing === w) this.writing = null;
    });
  }

  /**
   * Writes what the file lacks: a delta of the slots added since the last write, or — with no usable
   * file, or one holding more than twice the ids the index holds (expired ones pile up) — the whole
   * index as a new file. The slots and the high watermarks are taken together, synchronously.
   */
  async write(): Promise<number> {
    const st = this.st;
    const index = st.dedup;
    const sync = st.syncPolicy() !== 'never';
    const pending = index.appendedSlots - this.persisted;
    const full = !this.file || this.file.entries + pending > 2 * Math.max(index.size, SNAPSHOT_MIN_IDS);
    const what = cutView(index.view(full ? 0 : this.persisted), st.hw);
    const added = this.addedSince;
    this.addedSince = 0;
    this.lastAt = Date.now();
    try {
      let entries: number;
      if (full || !this.file) {
        const out = await writeDedupSnapshot(this.path, index.key, what, sync);
        this.file = { bytes: out.bytes, entries: out.entries };
        entries = out.entries;
      } else {
        // Not fsynced: a delta is a cache of what the log holds (durable before its offsets are covered);
        // lost or torn by a power cut, it is ignored and the log after the segment before is replayed.
        // An fsync per delta would compete with the partitions' own, which produces wait for.
        const out = await appendDedupDelta(this.path, this.file.bytes, index.key, what, false);
        this.file = { bytes: this.file.bytes + out.bytes, entries: this.file.entries + out.entries };
        entries = out.entries;
      }
      this.persisted = what.cut;
      this.written++;
      return entries;
    } catch (err) {
      this.addedSince += added;
      throw err;
    }
  }

  /**
   * At the station's close: waits for the restore and any snapshot being written, then writes a last
   * one when ids were added since (so the next start reads no log). Never throws.
   */
  async close(restoring: Promise<void> | null): Promise<void> {
    await restoring?.catch(() => {});
    await this.writing?.catch(() => {});
    const st = this.st;
    if (!st.persistent || this.incomplete || st.config.dedupWindowMs <= 0 || this.addedSince === 0) return;
    try {
      await this.write();
    } catch (err) {
      st.dedupLog(
        'error',
        { err, file: this.path },
        'could not write the dedup snapshot at close; the next start will read more of the log',
      );
    }
  }
}
