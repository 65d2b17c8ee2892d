/**
 * The in-memory partition log: the file log's semantics without files. Records live in segments (arrays
 * that roll at `segmentBytes` of encoded size), so retention drops whole chunks as the file log does, and
 * `bytes` counts what the records would take on disk.
 */
import { ErrorCode, JunctionError } from '../errors.js';
import { GapSet } from './damage.js';
import { encodedSize } from './record-codec.js';
import type { CorruptRange, LogOptions, LogRecord, PartitionLog, ReadLimits, RecordInput } from './types.js';

interface MemorySegment {
  /** The offset the segment's first record has (or would have: segments start empty). */
  base: number;
  records: LogRecord[];
  bytes: number;
}

/**
 * Creates an empty in-memory log whose first offset is 1. Appends copy the value and headers; reads
 * return the stored records themselves, so callers must not mutate them. Nothing survives the process.
 */
export function createMemoryLog(options: Pick<LogOptions, 'segmentBytes'>): PartitionLog {
  return new MemoryLog(options.segmentBytes);
}

class MemoryLog implements PartitionLog {
  private segments: MemorySegment[] = [{ base: 1, records: [], bytes: 0 }];
  private start = 1;
  private next = 1;
  private totalBytes = 0;
  /** Offsets skipped by raiseFloor (they never held a record). */
  private readonly skipped = new GapSet();
  private closed = false;
  readonly corruptRanges: readonly CorruptRange[] = [];

  constructor(private segmentBytes: number) {}

  get firstOffset(): number {
    return this.start;
  }
  get nextOffset(): number {
    return this.next;
  }
  get count(): number {
    return this.next - this.start - this.skipped.within(this.start, this.next);
  }
  get bytes(): number {
    return this.totalBytes;
  }

  append(records: readonly RecordInput[]): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    const first = this.next;
    if (records.length === 0) return Promise.resolve(first);
    const sizes: number[] = [];
    let batchBytes = 0;
    try {
      for (const r of records) {
        const size = encodedSize(r);
        sizes.push(size);
        batchBytes += size;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    let seg = this.active;
    if (seg.records.length > 0 && seg.bytes + batchBytes > this.segmentBytes) {
      seg = { base: first, records: [], bytes: 0 };
      this.segments.push(seg);
    }
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as RecordInput;
      const rec: LogRecord = {
        offset: first + i,
        timestamp: r.timestamp,
        headers: r.headers ? copyHeaders(r.headers) : {},
        value: Buffer.from(r.value),
        size: sizes[i] as number,
      };
      if (r.key !== undefined) rec.key = r.key;
      if (r.msgId !== undefined) rec.msgId = r.msgId;
      seg.records.push(rec);
    }
    seg.bytes += batchBytes;
    this.totalBytes += batchBytes;
    this.next += records.length;
    return Promise.resolve(first);
  }

  read(fromOffset: number, limits: ReadLimits): Promise<LogRecord[]> {
    if (this.closed) return Promise.reject(closedError());
    const from = Math.max(Math.ceil(fromOffset), this.start);
    const out: LogRecord[] = [];
    if (from >= this.next) return Promise.resolve(out);
    const maxMessages = Math.max(1, limits.maxMessages);
    let bytes = 0;
    for (let s = this.segmentFor(from); s < this.segments.length; s++) {
      const seg = this.segments[s] as MemorySegment;
      for (let i = Math.max(0, from - seg.base); i < seg.records.length; i++) {
        const rec = seg.records[i] as LogRecord;
        if (out.length > 0 && bytes + rec.size > limits.maxBytes) return Promise.resolve(out);
        out.push(rec);
        bytes += rec.size;
        if (out.length >= maxMessages) return Promise.resolve(out);
      }
    }
    return Promise.resolve(out);
  }

  raiseFloor(floor: number): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    const target = Math.floor(floor);
    if (target <= this.next) return Promise.resolve();
    // A fresh segment at the floor keeps `offset - base` indexing within each segment.
    if (this.active.records.length > 0) this.segments.push({ base: target, records: [], bytes: 0 });
    else this.active.base = target;
    this.skipped.add(this.next, target - 1);
    this.next = target;
    return Promise.resolve();
  }

  msgIdRanges(fromOffset: number): Array<{ from: number; to: number }> {
    const from = Math.max(fromOffset, this.start);
    return from < this.next ? [{ from, to: this.next - 1 }] : [];
  }

  offsetForTimestamp(ts: number): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    const segs = this.segments;
    // First segment whose first record is at or after ts; the answer is in the one before it, or is its first.
    let lo = 0;
    let hi = segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const first = (segs[mid] as MemorySegment).records[0];
      if (first === undefined || first.timestamp >= ts) hi = mid;
      else lo = mid + 1;
    }
    let found = this.next;
    if (lo < segs.length && (segs[lo] as MemorySegment).records.length > 0) found = (segs[lo] as MemorySegment).base;
    if (lo > 0) {
      const recs = (segs[lo - 1] as MemorySegment).records;
      let a = 0;
      let b = recs.length;
      while (a < b) {
        const mid = (a + b) >>> 1;
        if ((recs[mid] as LogRecord).timestamp >= ts) b = mid;
        else a = mid + 1;
      }
      if (a < recs.length) found = (recs[a] as LogRecord).offset;
    }
    return Promise.resolve(Math.min(Math.max(found, this.start), this.next));
  }

  truncateBefore(offset: number): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    const target = Math.min(offset, this.next);
    if (target <= this.start) return Promise.resolve();
    this.start = target;
    let drop = 0;
    while (drop < this.segments.length - 1 && (this.segments[drop + 1] as MemorySegment).base <= target) drop++;
    this.dropFirst(drop);
    // Everything is below the start: replace the active segment so its memory is freed too.
    if (target === this.next && this.active.records.length > 0) {
      this.totalBytes -= this.active.bytes;
      this.segments = [{ base: this.next, records: [], bytes: 0 }];
    }
    return Promise.resolve();
  }

  trimToBytes(maxBytes: number): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    let drop = 0;
    let bytes = this.totalBytes;
    while (drop < this.segments.length - 1 && bytes > maxBytes) {
      bytes -= (this.segments[drop] as MemorySegment).bytes;
      drop++;
    }
    this.dropFirst(drop);
    this.start = Math.max(this.start, (this.segments[0] as MemorySegment).base);
    return Promise.resolve();
  }

  configure(options: { segmentBytes?: number }): void {
    if (options.segmentBytes !== undefined) this.segmentBytes = options.segmentBytes;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private get active(): MemorySegment {
    return this.segments[this.segments.length - 1] as MemorySegment;
  }

  private dropFirst(n: number): void {
    if (n === 0) return;
    for (let i = 0; i < n; i++) this.totalBytes -= (this.segments[i] as MemorySegment).bytes;
    this.segments = this.segments.slice(n);
  }

  /** Index of the last segment whose base is <= offset (0 when none). */
  private segmentFor(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.segments[mid] as MemorySegment).base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

function copyHeaders(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(h)) {
    if (name === '__proto__') Object.defineProperty(out, name, { value: h[name], enumerable: true, writable: true, configurable: true });
    else out[name] = h[name] as string;
  }
  return out;
}

function closedError(): JunctionError {
  return new JunctionError(ErrorCode.STORE_CLOSED, 'the partition log is closed');
}
