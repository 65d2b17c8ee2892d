/**
 * The partition log: one partition's append-only record log. File-backed (segment files with a sparse
 * index) or in memory. The station layer (stations, groups, dedup, retention policy) sits above it.
 */
import type { FsyncPolicy } from '@junction/protocol';

export interface RecordInput {
  timestamp: number;
  key?: string | undefined;
  msgId?: string | undefined;
  headers?: Record<string, string> | undefined;
  value: Uint8Array;
}

export interface LogRecord {
  offset: number;
  timestamp: number;
  key?: string | undefined;
  msgId?: string | undefined;
  headers: Record<string, string>;
  /** May be a view into a shared read buffer; copy it to keep it beyond the next read. */
  value: Buffer;
  /** Bytes this record takes on disk (framing included). */
  size: number;
}

/**
 * A damaged range: records lost or bytes skipped, found on open or while reading; reported once (when
 * found), skipped, never fatal.
 */
export interface CorruptRange {
  /** The segment file it lies in (or, for offsets missing altogether, the segment they should be in). */
  segment: string;
  /** First and last offset of the range. A range that lost no offset (stray bytes only) has `toOffset = fromOffset - 1`. */
  fromOffset: number;
  toOffset: number;
  /** Offsets lost: `toOffset - fromOffset + 1`, or 0. */
  messages: number;
  detail: string;
  /** ms since the epoch when it was first found (possibly by an earlier process). */
  foundAt: number;
}

/** A torn tail cut on open: bytes of writes that never completed (after a crash), holding no acknowledged record. */
export interface TornTail {
  segment: string;
  /** Bytes cut. */
  bytes: number;
  /** The offset the cut bytes would have started at (the partition's next offset). */
  atOffset: number;
}

export interface LogOptions {
  /** Directory of this partition's segments (file logs). Created if missing. */
  dir?: string;
  segmentBytes: number;
  fsync: FsyncPolicy;
  /** Called after each fsync with its duration (metrics). */
  onFsync?: (seconds: number) => void;
  /**
   * Called once for each damaged range when it is first found: during open (before openFileLog
   * resolves), while reading, or by raiseFloor. Ranges found by an earlier process are in
   * `corruptRanges` but are not passed here again.
   */
  onDamage?: (range: CorruptRange) => void;
  /** Called during open for each torn tail cut (see TornTail). */
  onTornTail?: (tail: TornTail) => void;
  /**
   * Called during open when a metadata file of the partition (`meta`, `checkpoint`) was damaged: read
   * from its previous copy, or rebuilt from the segments (what was lost is in `detail`).
   */
  onMetadataRepair?: (file: string, detail: string, outcome: 'previous-copy' | 'rebuilt') => void;
}

export interface ReadLimits {
  maxMessages: number;
  maxBytes: number;
  /** Decode each record's msgId (default true). A reader that has no use for them saves a string a record. */
  msgIds?: boolean | undefined;
}

export interface PartitionLog {
  /** Lowest retained offset; equals nextOffset when empty. Offsets start at 1. */
  readonly firstOffset: number;
  readonly nextOffset: number;
  /** Retained records (nextOffset - firstOffset, minus records lost to corruption). */
  readonly count: number;
  /**
   * Bytes of the retained records (from firstOffset on). The file log counts its first segment from the
   * sparse-index entry at or below firstOffset (up to ~4 KiB more); the files may hold more until whole
   * segments below the start are deleted.
   */
  readonly bytes: number;
  /**
   * Damaged ranges that still hold retained offsets: found on open, while reading, by raiseFloor, or by
   * an earlier process (file logs remember them until retention passes them).
   */
  readonly corruptRanges: readonly CorruptRange[];
  /**
   * File logs: a lower bound of the first retained record's timestamp (the first segment's first record);
   * Infinity when nothing is stored; undefined when not known. Lets age retention skip a log unopened.
   */
  readonly firstTimestamp?: number | undefined;
  /** File logs: bytes read from disk while opening (segment scans, index and checkpoint files) — what start-up cost. */
  readonly openBytesRead?: number;

  /**
   * Appends records. Offsets are assigned synchronously, in call order, before this returns its
   * promise; the promise resolves with the first offset once the records are durable under the fsync
   * policy (`always`: after an fsync shared by every append waiting at that moment).
   */
  append(records: readonly RecordInput[]): Promise<number>;
  /**
   * Reads records from `fromOffset` (clamped up to firstOffset) in offset order, up to the limits;
   * always at least one record when one exists at or after fromOffset. Never returns records past
   * what was appended; may return records that are not yet fsynced.
   */
  read(fromOffset: number, limits: ReadLimits): Promise<LogRecord[]>;
  /**
   * The first offset whose timestamp is >= ts (nextOffset when none). Timestamps are broker-assigned
   * and non-decreasing per partition, so this is a binary search (sparse index, then a short scan).
   * Used by maxAge retention and by groups that start at a timestamp.
   */
  offsetForTimestamp(ts: number): Promise<number>;
  /**
   * Moves the logical start to `offset` (monotonic; never past nextOffset) and deletes the segments
   * that lie wholly below it. Records below the start are never returned again.
   */
  truncateBefore(offset: number): Promise<void>;
  /** Deletes the oldest whole segments while retained bytes exceed maxBytes (never the active segment). */
  trimToBytes(maxBytes: number): Promise<void>;
  /**
   * Offsets below `floor` were handed out before (a consumer group was delivered one, say). When
   * nextOffset is lower — records were lost from the end — the offsets in between become a reported gap
   * (`detail` says how it was known) and nextOffset moves up to `floor`, so they are never handed out
   * again. Resolves once that is durable. No-op when nextOffset is at or above `floor`.
   */
  raiseFloor(floor: number, detail: string): Promise<void>;
  /**
   * Offset ranges at or after `fromOffset` whose records may carry msgIds (ranges known to have none are
   * left out), for rebuilding a dedup index without reading what cannot hold one.
   */
  msgIdRanges(fromOffset: number): Array<{ from: number; to: number }>;
  /** Changes the fsync policy / segment size of a live log. */
  configure(options: { fsync?: FsyncPolicy; segmentBytes?: number }): void;
  /** Forces buffered bytes to disk. */
  flush(): Promise<void>;
  /** Flushes and closes files. Appends after close reject with STORE_CLOSED. */
  close(): Promise<void>;
}
