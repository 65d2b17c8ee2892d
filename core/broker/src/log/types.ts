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

/** A damaged range found on open: reported, skipped, never fatal. */
export interface CorruptRange {
  segment: string;
  fromOffset: number;
  toOffset: number;
  detail: string;
}

export interface LogOptions {
  /** Directory of this partition's segments (file logs). Created if missing. */
  dir?: string;
  segmentBytes: number;
  fsync: FsyncPolicy;
  /** Called after each fsync with its duration (metrics). */
  onFsync?: (seconds: number) => void;
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
  /** Bytes retained on disk / in memory. */
  readonly bytes: number;
  /** Damaged ranges found when the log was opened. */
  readonly corruptRanges: readonly CorruptRange[];

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
  /** Changes the fsync policy / segment size of a live log. */
  configure(options: { fsync?: FsyncPolicy; segmentBytes?: number }): void;
  /** Forces buffered bytes to disk. */
  flush(): Promise<void>;
  /** Flushes and closes files. Appends after close reject with STORE_CLOSED. */
  close(): Promise<void>;
}
