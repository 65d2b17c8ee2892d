/**
 * Opening a file log: what start-up reads, and how it tells damage from a torn write.
 *
 * - Sealed segments are trusted through the header of their index file (written at roll, after the
 *   segment's fsync) when it matches the segment's size and offsets; otherwise the segment is scanned.
 *   The entries (and the file's crc) are read when a read first needs them (FileLog.ensureIndex), so
 *   start-up reads a few bytes per sealed segment, however much is stored.
 * - The active segment is trusted up to the recovery checkpoint (checkpoint.ts) — its records, count,
 *   timestamps and sparse index come from the checkpoint — and only the bytes after it are scanned. Without
 *   a usable checkpoint, or when the segment is shorter than the checkpoint says, it is scanned in full.
 * - After the scan, the checkpoint's offset floor applies: offsets it says were handed out but that no
 *   segment holds any more (a truncated active segment, a deleted segment) become a reported gap, and the
 *   next offset stays above them.
 * - A damaged end of the active segment with nothing valid after it is cut. Beyond the checkpoint after
 *   an unclean stop that is a torn write (reported as a TornTail: nothing acknowledged was in it); after a
 *   clean stop nothing can have been written there, so it is damage.
 *
 * Damage is recorded in the partition's DamageRegistry (kept in `meta`): a range found before is not
 * reported again.
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import type { FsyncPolicy } from '@junction/protocol';
import { CheckpointFile, type Checkpoint } from './checkpoint.js';
import { DamageRegistry, GapSet, META_FILE, readPartitionMeta } from './damage.js';
import { FileWindow, fsyncDir, unlinkQuiet } from './file-io.js';
import { FrameFault, describeFault } from './record-codec.js';
import {
  INDEX_HEADER_SIZE,
  SEGMENT_RE,
  encodeIndex,
  loadIndexHeader,
  markAllWritten,
  newSegment,
  noteRecord,
  segmentFileName,
  type Segment,
} from './segment.js';
import type { CorruptRange, TornTail } from './types.js';

/** What recover needs: the directory, the fsync policy (truncations are fsynced unless `never`), and the log's callbacks. */
export interface RecoveryOptions {
  dir: string;
  fsync: FsyncPolicy;
  onTornTail?: ((tail: TornTail) => void) | undefined;
  onMetadataRepair?: ((file: string, detail: string, outcome: 'previous-copy' | 'rebuilt') => void) | undefined;
}

/** The state of an opened log directory. */
export interface Recovered {
  segments: Segment[];
  start: number;
  next: number;
  totalBytes: number;
  gaps: GapSet;
  registry: DamageRegistry;
  /** Ranges found by this open (not known before). */
  found: CorruptRange[];
  checkpoint: CheckpointFile;
  /** `meta` must be written: new damage, or a pruned range (a log without either needs none). */
  metaDirty: boolean;
  /** The active segment holds bytes no checkpoint covered: fsync it before a checkpoint vouches for them. */
  uncheckpointed: boolean;
  /** Bytes read from segment files (scans) and index / checkpoint files while opening. */
  bytesRead: number;
}

/** Opens the directory's segments (creating the directory and a first segment when needed). Throws on I/O errors. */
export async function recover(options: RecoveryOptions): Promise<Recovered> {
  return new Recovery(options).run();
}

class Recovery {
  private readonly dir: string;
  private readonly gaps = new GapSet();
  private registry!: DamageRegistry;
  private readonly found: CorruptRange[] = [];
  private bytesRead = 0;
  /** The directory's entries when it was opened. */
  private present = new Set<string>();

  constructor(private readonly o: RecoveryOptions) {
    this.dir = o.dir;
  }

  async run(): Promise<Recovered> {
    // readdir first: an existing directory (every start but the first) costs no mkdir.
    let names = await fsp.readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      return undefined;
    });
    if (names === undefined) {
      const made = await fsp.mkdir(this.dir, { recursive: true });
      if (made !== undefined && this.o.fsync !== 'never') await fsyncDir(path.dirname(made));
      names = await fsp.readdir(this.dir);
    }
    this.present = new Set(names);
    const bases: number[] = [];
    const present = new Set(names);
    for (const name of names) {
      const m = SEGMENT_RE.exec(name);
      if (m) bases.push(Number(m[1]));
      // Temporary files of index writes (`.tmp`) and of atomic metadata writes (`.tmp-<pid>`).
      else if (name.endsWith('.tmp') || /\.tmp-\d+(-[0-9a-f]+)?$/.test(name)) await unlinkQuiet(path.join(this.dir, name));
      else if (name.endsWith('.idx') && !present.has(name.slice(0, -4) + '.log')) await unlinkQuiet(path.join(this.dir, name));
    }
    bases.sort((a, b) => a - b);

    // Without `meta` or its copy (a partition that never recorded a start or damage) there is nothing to read.
    const { meta, problem } =
      this.present.has(META_FILE) || this.present.has(`${META_FILE}.prev`)
        ? await readPartitionMeta(this.dir)
        : { meta: { start: 0, damage: [], version: 0 }, problem: undefined };
    if (problem) this.o.onMetadataRepair?.('meta', problem.detail, problem.outcome);
    this.registry = new DamageRegistry(meta.damage);
    for (const r of meta.damage) this.gaps.add(r.fromOffset, r.toOffset);
    const checkpoint = await CheckpointFile.open(this.dir);
    const ck = checkpoint.loaded;
    if (checkpoint.damaged) {
      this.o.onMetadataRepair?.(
        'checkpoint',
        'neither checkpoint slot is whole: the active segment is scanned in full, and the offset floor comes from the segments and the consumer groups',
        'rebuilt',
      );
    } else if (!ck && meta.version >= 2) {
      this.o.onMetadataRepair?.(
        'checkpoint',
        'the checkpoint is missing: the active segment is scanned in full, and the offset floor comes from the segments and the consumer groups',
        'rebuilt',
      );
    }
    try {
      return await this.openSegments(bases, meta.start, checkpoint, ck);
    } catch (err) {
      await checkpoint.close().catch(() => {});
      throw err;
    }
  }

  private async openSegments(
    bases: number[],
    metaStart: number,
    checkpoint: CheckpointFile,
    ck: Checkpoint | undefined,
  ): Promise<Recovered> {
    const knownStart = Math.max(metaStart, ck?.start ?? 0);
    // Segments wholly below the persisted start were being deleted when the process stopped.
    while (bases.length > 1 && (bases[1] as number) <= knownStart) {
      const seg = newSegment(this.dir, bases.shift() as number);
      await unlinkQuiet(seg.logPath);
      await unlinkQuiet(seg.idxPath);
    }
    // Offsets the log held from its start on whose segments are gone (retention records the new start
    // in the checkpoint before it deletes a segment, so this is not retention).
    let leadingGap = false;
    let created = false;
    if (bases.length === 0) {
      created = true;
      const lostTo = ck ? ck.next - 1 : 0;
      if (ck && lostTo >= knownStart) {
        this.damage(segmentFileName(knownStart), knownStart, lostTo, 'every segment file of the partition is missing');
        this.gaps.add(knownStart, lostTo);
        leadingGap = true;
        bases.push(ck.next);
      } else bases.push(Math.max(1, knownStart));
    } else if (ck && knownStart >= 1 && (bases[0] as number) > knownStart) {
      const lostTo = (bases[0] as number) - 1;
      this.damage(
        segmentFileName(knownStart),
        knownStart,
        lostTo,
        'the segment files that held these offsets are missing (not deleted by retention)',
      );
      this.gaps.add(knownStart, lostTo);
      leadingGap = true;
    }

    const segments: Segment[] = [];
    let totalBytes = 0;
    let uncheckpointed = false;
    let shortActive: { size: number } | undefined;
    let prevLast = (bases[0] as number) - 1;
    let expected = bases[0] as number;
    for (let i = 0; i < bases.length; i++) {
      const seg = newSegment(this.dir, bases[i] as number);
      const isLast = i === bases.length - 1;
      const nextBase = isLast ? Infinity : (bases[i + 1] as number);
      segments.push(seg);
      if (isLast) {
        if (this.present.has(path.basename(seg.idxPath))) await unlinkQuiet(seg.idxPath);
        const covers0 = ck !== undefined && ck.base === seg.base ? ck : undefined;
        // A clean stop with nothing after the checkpoint: the segment's size is all start-up needs of it.
        if (covers0?.clean && (covers0.count === 0 || covers0.firstOffset > prevLast)) {
          const size = (await fsp.stat(seg.logPath).catch(() => undefined))?.size;
          if (size === covers0.position && (await this.trustPrefix(seg, checkpoint, covers0))) {
            expected = Math.max(expected, covers0.count > 0 ? covers0.lastOffset + 1 : seg.base);
            seg.size = seg.written = size;
            markAllWritten(seg);
            if (seg.count > 0) {
              expected = Math.max(expected, seg.lastOffset + 1);
              prevLast = seg.lastOffset;
            }
            totalBytes += seg.size;
            continue;
          }
        }
        // A handle of its own for the scan (closed after it): the log's handle is opened on first use,
        // under the descriptor budget, so start-up does not keep every partition's file open.
        const handle = await fsp.open(seg.logPath, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
        try {
          const size = (await handle.stat()).size;
          const covers = ck !== undefined && ck.base === seg.base ? ck : undefined;
          const trusted =
            covers && size >= covers.position && (covers.count === 0 || covers.firstOffset > prevLast)
              ? await this.trustPrefix(seg, checkpoint, covers)
              : undefined;
          if (trusted) {
            const ck = trusted;
            expected = Math.max(expected, ck.count > 0 ? ck.lastOffset + 1 : seg.base);
            const prev = ck.count > 0 ? ck.lastOffset : Math.max(prevLast, seg.base - 1);
            expected = await this.scan(seg, handle, { from: ck.position, prev, expected, isLast, nextBase, checkpoint: ck });
            if (seg.written > ck.position) uncheckpointed = true;
          } else {
            if (covers && size < covers.position) shortActive = { size };
            expected = await this.scan(seg, handle, {
              from: 0,
              prev: Math.max(prevLast, seg.base - 1),
              expected,
              isLast,
              nextBase,
              checkpoint: covers,
            });
            uncheckpointed = seg.written > 0;
          }
        } finally {
          await handle.close().catch(() => {});
        }
      } else {
        const fileSize = (await fsp.stat(seg.logPath)).size;
        const head = await readIndexHead(seg.idxPath);
        if (head) this.bytesRead += head.buf.length;
        if (!head || !loadIndexHeader(seg, head.buf, head.size, fileSize, prevLast, nextBase)) {
          const handle = await fsp.open(seg.logPath, 'r');
          try {
            expected = await this.scan(seg, handle, {
              from: 0,
              prev: Math.max(prevLast, seg.base - 1),
              expected,
              isLast,
              nextBase,
              checkpoint: undefined,
            });
          } finally {
            await handle.close();
          }
          if (seg.damaged || seg.count === 0 || seg.firstOffset !== seg.base || seg.lastOffset !== nextBase - 1)
            await unlinkQuiet(seg.idxPath);
          else await writeIndexFile(seg);
        }
      }
      // Offsets a sealed segment should hold up to the next base but does not (a damaged tail).
      if (seg.count > 0) {
        expected = Math.max(expected, seg.lastOffset + 1);
        prevLast = seg.lastOffset;
      }
      if (!isLast && nextBase > expected) {
        this.gaps.add(expected, nextBase - 1);
        this.damage(
          seg.name,
          expected,
          nextBase - 1,
          seg.tailDamage ?? `the segment ends at offset ${expected - 1}, before the next segment's base ${nextBase}`,
        );
        expected = nextBase;
      }
      totalBytes += seg.size;
    }

    const active = segments[segments.length - 1] as Segment;
    const first = segments[0] as Segment;
    let next = Math.max(active.count > 0 ? active.lastOffset + 1 : active.base, knownStart, 1);
    // The offset floor: what the checkpoint says was handed out is never handed out again.
    if (ck && ck.next > next) {
      const lostTo = ck.next - 1;
      let detail: string;
      if (ck.base > active.base) detail = `the active segment ${segmentFileName(ck.base)} is missing`;
      else if (shortActive)
        detail = `the active segment is ${shortActive.size} bytes, ${ck.position - shortActive.size} fewer than at the last checkpoint`;
      else detail = 'the log ends before the last offset its checkpoint vouched for';
      this.damage(ck.base > active.base ? segmentFileName(ck.base) : active.name, next, lostTo, detail);
      this.gaps.add(next, lostTo);
      next = ck.next;
    }
    const start = leadingGap ? knownStart : Math.max(first.base, knownStart, 1);
    const pruned = this.registry.prune(start);
    if (created && this.o.fsync !== 'never') await fsyncDir(this.dir);
    return {
      segments,
      start,
      next,
      totalBytes,
      gaps: this.gaps,
      registry: this.registry,
      found: this.found,
      checkpoint,
      metaDirty: this.found.length > 0 || pruned,
      uncheckpointed,
      bytesRead: this.bytesRead,
    };
  }

  /** Installs the checkpoint's view of the active segment's prefix; undefined when its index entries are not usable. */
  private async trustPrefix(seg: Segment, checkpoint: CheckpointFile, ck: Checkpoint): Promise<Checkpoint | undefined> {
    const index = await checkpoint.loadedEntries();
    if (!index) return undefined;
    this.bytesRead += ck.entries * 20;
    seg.index = index;
    seg.lastIndexed = ck.lastIndexed < 0 ? -Infinity : ck.lastIndexed;
    seg.size = seg.written = ck.position;
    seg.count = ck.count;
    seg.firstOffset = ck.firstOffset;
    seg.lastOffset = ck.lastOffset;
    seg.firstTimestamp = ck.firstTimestamp;
    seg.lastTimestamp = ck.lastTimestamp;
    seg.msgIds = ck.msgIds;
    // Offsets inside the prefix that hold no record (a raised floor) are known from the registry.
    if (ck.count > 0 && ck.count !== ck.lastOffset - ck.firstOffset + 1) seg.damaged = true;
    markAllWritten(seg);
    return ck;
  }

  /**
   * Scans a segment from byte `from`: checks every frame (length, crc, increasing offsets), extends the
   * index, records damage and gaps. A damaged tail with no valid frame after it is truncated in the active
   * segment and skipped, reported, in a sealed one. Returns the next expected offset.
   */
  private async scan(
    seg: Segment,
    handle: FileHandle,
    o: { from: number; prev: number; expected: number; isLast: boolean; nextBase: number; checkpoint: Checkpoint | undefined },
  ): Promise<number> {
    let size = (await handle.stat()).size;
    const w = new FileWindow(handle, size);
    let prev = o.prev;
    let expected = o.expected;
    let pos = o.from;
    this.bytesRead += size - pos;
    while (pos < size) {
      const fault = await w.check(pos, prev);
      if (fault > 0) {
        const offset = w.offsetAt(pos);
        if (offset > expected) {
          this.gaps.add(expected, offset - 1);
          seg.damaged = true;
        }
        noteRecord(seg, offset, pos, w.timestampAt(pos), w.hasMsgIdAt(pos));
        prev = offset;
        expected = offset + 1;
        pos += fault;
        continue;
      }
      if (fault === FrameFault.OFFSET) {
        // An intact frame whose offset does not increase: skip it, keep the bytes, report it (nothing is lost).
        const frameSize = w.sizeAt(pos);
        const raw = w.offsetAt(pos);
        const offset = Number.isSafeInteger(raw) ? raw : prev;
        this.damage(
          seg.name,
          offset,
          offset,
          `${describeFault(fault, w.buf, pos - w.start, w.end - w.start, prev, pos)}; record skipped`,
          0,
        );
        seg.skips.set(pos, pos + frameSize);
        seg.damaged = true;
        pos += frameSize;
        continue;
      }
      const detail = describeFault(fault, w.buf, pos - w.start, w.end - w.start, prev, pos);
      const next = await w.resync(pos, prev);
      if (next < 0) {
        if (o.isLast) {
          await handle.truncate(pos);
          if (this.o.fsync !== 'never') await handle.datasync();
          this.cutTail(seg, pos, size - pos, expected, detail, o.checkpoint);
          size = pos;
        } else {
          // Reported by openSegments with the offsets the segment lacks up to the next base.
          seg.tailDamage = `${detail}; ${size - pos} bytes up to the end of the segment skipped`;
          seg.skips.set(pos, size);
          seg.damaged = true;
        }
        break;
      }
      const nextOffset = w.offsetAt(next);
      this.damage(seg.name, prev + 1, nextOffset - 1, `${detail}; ${next - pos} bytes skipped`);
      seg.skips.set(pos, next);
      seg.damaged = true;
      pos = next;
    }
    seg.size = seg.written = size;
    markAllWritten(seg);
    return expected;
  }

  /** Says what the cut end of the active segment was. */
  private cutTail(seg: Segment, pos: number, bytes: number, atOffset: number, detail: string, ck: Checkpoint | undefined): void {
    // Below the checkpoint: records it vouched for are missing, reported (with their offsets) by the floor.
    if (ck && pos < ck.position) return;
    if (ck?.clean) {
      this.damage(
        seg.name,
        atOffset,
        atOffset - 1,
        `${bytes} bytes after the end of the log at its last clean stop (${detail}) were not written by Junction: cut`,
        0,
      );
      return;
    }
    // A torn write: the frame never completed and nothing valid follows; it was never acknowledged.
    this.o.onTornTail?.({ segment: seg.name, bytes, atOffset });
  }

  private damage(segment: string, fromOffset: number, toOffset: number, detail: string, messages?: number): void {
    const r = this.registry.record({ segment, fromOffset, toOffset, detail, ...(messages !== undefined && { messages }) });
    if (r) this.found.push(r);
  }
}

/** The header of an index file and the file's size, or undefined when there is none (or it cannot be read). */
async function readIndexHead(file: string): Promise<{ buf: Buffer; size: number } | undefined> {
  let h: FileHandle;
  try {
    h = await fsp.open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = (await h.stat()).size;
    const buf = Buffer.alloc(Math.min(size, INDEX_HEADER_SIZE));
    const { bytesRead } = await h.read(buf, 0, buf.length, 0);
    return { buf: buf.subarray(0, bytesRead), size };
  } catch {
    return undefined;
  } finally {
    await h.close().catch(() => {});
  }
}

/** Writes a sealed segment's index file (temp + rename: a reader never sees half of one). */
export async function writeIndexFile(seg: Segment): Promise<void> {
  const tmp = `${seg.idxPath}.tmp`;
  await fsp.writeFile(tmp, encodeIndex(seg));
  await fsp.rename(tmp, seg.idxPath);
}
