/**
 * The partition's recovery checkpoint (Kafka's recovery point): what the log knows to be written — and,
 * under the `always` and `interval` fsync policies, fsynced — so that start-up reads only what it does
 * not cover, and so that a truncation of acknowledged data is told apart from a torn, unacknowledged tail.
 *
 * File `checkpoint`, little-endian:
 *
 * ```
 *    0  slot 0 (128 bytes)      two slots, written in turn (seq decides which is newer), so a torn write
 *  128  slot 1 (128 bytes)      of one slot leaves the other one whole
 *  256  index entries           the active segment's sparse index, 20 bytes each (relative offset u32,
 *                               position f64, timestamp f64), appended as the segment grows
 * ```
 *
 * A slot:
 *
 * ```
 *   0 u32 magic "JCKP"     4 u8 version (1)     5 u8 flags (bit 0: clean stop, bit 1: the covered prefix
 *   8 f64 seq                                    holds msgIds)
 *  16 f64 base             the active segment   24 f64 position   bytes of it covered
 *  32 f64 next             every offset below was handed out (the offset floor)
 *  40 f64 count            records in the covered prefix
 *  48 f64 firstOffset      56 f64 lastOffset    of those records
 *  64 f64 firstTimestamp   72 f64 lastTimestamp
 *  80 f64 start            the log's first offset (its logical start)
 *  88 u32 entries          index entries of the covered prefix in the file
 *  92 u32 entriesCrc       crc32 of those entries' bytes
 *  96 f64 lastIndexed      position of the last entry (-1: none)
 * 124 u32 crc32 of bytes [0, 124)
 * ```
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { PooledFile } from './fd-pool.js';
import { readFully } from './file-io.js';
import { SparseIndex } from './sparse-index.js';

/** The checkpoint's file name in the partition's directory. */
export const CHECKPOINT_FILE = 'checkpoint';
const MAGIC = 0x504b434a; // "JCKP"
const VERSION = 1;
const SLOT_BYTES = 128;
const ENTRIES_AT = 2 * SLOT_BYTES;
/** Bytes of one index entry (the same layout as in a sealed segment's index file). */
export const CHECKPOINT_ENTRY_BYTES = 20;
const FLAG_CLEAN = 1;
const FLAG_MSG_IDS = 2;

/** What one slot says (see the file comment for each field). */
export interface Checkpoint {
  seq: number;
  /** Written by a clean close: nothing was written after it. */
  clean: boolean;
  base: number;
  position: number;
  next: number;
  count: number;
  firstOffset: number;
  lastOffset: number;
  firstTimestamp: number;
  lastTimestamp: number;
  msgIds: boolean;
  start: number;
  entries: number;
  entriesCrc: number;
  lastIndexed: number;
}

/** One slot's bytes (its crc included). */
export function encodeSlot(c: Checkpoint): Buffer {
  const b = Buffer.alloc(SLOT_BYTES);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt8(VERSION, 4);
  b.writeUInt8((c.clean ? FLAG_CLEAN : 0) | (c.msgIds ? FLAG_MSG_IDS : 0), 5);
  b.writeDoubleLE(c.seq, 8);
  b.writeDoubleLE(c.base, 16);
  b.writeDoubleLE(c.position, 24);
  b.writeDoubleLE(c.next, 32);
  b.writeDoubleLE(c.count, 40);
  b.writeDoubleLE(c.firstOffset, 48);
  b.writeDoubleLE(c.lastOffset, 56);
  b.writeDoubleLE(c.firstTimestamp, 64);
  b.writeDoubleLE(c.lastTimestamp, 72);
  b.writeDoubleLE(c.start, 80);
  b.writeUInt32LE(c.entries, 88);
  b.writeUInt32LE(c.entriesCrc, 92);
  b.writeDoubleLE(c.lastIndexed, 96);
  b.writeUInt32LE(crc32(b.subarray(0, 124)), 124);
  return b;
}

/** The slot's checkpoint, or undefined when it is not a whole, plausible slot. */
export function decodeSlot(b: Buffer): Checkpoint | undefined {
  if (b.length < SLOT_BYTES || b.readUInt32LE(0) !== MAGIC || b.readUInt8(4) !== VERSION) return undefined;
  if (crc32(b.subarray(0, 124)) !== b.readUInt32LE(124)) return undefined;
  const flags = b.readUInt8(5);
  const c: Checkpoint = {
    seq: b.readDoubleLE(8),
    clean: (flags & FLAG_CLEAN) !== 0,
    msgIds: (flags & FLAG_MSG_IDS) !== 0,
    base: b.readDoubleLE(16),
    position: b.readDoubleLE(24),
    next: b.readDoubleLE(32),
    count: b.readDoubleLE(40),
    firstOffset: b.readDoubleLE(48),
    lastOffset: b.readDoubleLE(56),
    firstTimestamp: b.readDoubleLE(64),
    lastTimestamp: b.readDoubleLE(72),
    start: b.readDoubleLE(80),
    entries: b.readUInt32LE(88),
    entriesCrc: b.readUInt32LE(92),
    lastIndexed: b.readDoubleLE(96),
  };
  const ints = [c.seq, c.base, c.position, c.next, c.count, c.start];
  if (!ints.every((v) => Number.isSafeInteger(v) && v >= 0) || c.base < 1 || c.next < c.base || c.start < 1) return undefined;
  return c;
}

/** Encodes index entries [from, to) of `index` (offsets relative to `base`). */
export function encodeEntries(index: SparseIndex, base: number, from: number, to: number): Buffer {
  const buf = Buffer.allocUnsafe((to - from) * CHECKPOINT_ENTRY_BYTES);
  for (let i = from; i < to; i++) {
    const p = (i - from) * CHECKPOINT_ENTRY_BYTES;
    buf.writeUInt32LE((index.offsets[i] as number) - base, p);
    buf.writeDoubleLE(index.positions[i] as number, p + 4);
    buf.writeDoubleLE(index.timestamps[i] as number, p + 12);
  }
  return buf;
}

/**
 * The sparse index a checkpoint vouches for, or undefined when the entries in the file do not match it
 * (crc, order, or positions outside the covered prefix).
 */
export function decodeEntries(buf: Buffer, c: Checkpoint): SparseIndex | undefined {
  if (buf.length !== c.entries * CHECKPOINT_ENTRY_BYTES || crc32(buf) !== c.entriesCrc) return undefined;
  const index = new SparseIndex(c.entries);
  let prevOff = -1;
  let prevPos = -1;
  for (let i = 0; i < c.entries; i++) {
    const p = i * CHECKPOINT_ENTRY_BYTES;
    const off = c.base + buf.readUInt32LE(p);
    const pos = buf.readDoubleLE(p + 4);
    if (off <= prevOff || pos <= prevPos || pos >= c.position || off > c.lastOffset || (i === 0 && (off !== c.firstOffset || pos !== 0)))
      return undefined;
    index.push(off, pos, buf.readDoubleLE(p + 12));
    prevOff = off;
    prevPos = pos;
  }
  if ((c.entries === 0 ? -1 : prevPos) !== c.lastIndexed) return undefined;
  return index;
}

/**
 * The open checkpoint file: reads the newest whole slot, writes the next one. Writes are pwrites on one
 * handle (no fsync); `sync()` makes what was written durable. Not safe for concurrent writes: the log
 * chains them.
 */
export class CheckpointFile {
  private seq: number;
  /** Entries of the current base already in the file, and their running crc. */
  private entries = 0;
  private crc = 0;
  private base = 0;

  private constructor(
    private readonly file: PooledFile,
    readonly loaded: Checkpoint | undefined,
    /** The file existed but neither slot was whole. */
    readonly damaged: boolean,
    /** The bytes of the loaded checkpoint's index entries (undefined when they could not be read). */
    private loadedEntryBytes: Buffer | undefined,
  ) {
    this.seq = loaded?.seq ?? 0;
    if (loaded) {
      this.base = loaded.base;
      this.entries = loaded.entries;
      this.crc = loaded.entriesCrc;
    }
  }

  /**
   * Opens (creating) `dir/checkpoint` and reads its newest whole slot. The file's descriptor is under the
   * descriptor budget (fd-pool.ts): it is closed while idle and reopened on the next write.
   */
  static async open(dir: string): Promise<CheckpointFile> {
    const path_ = path.join(dir, CHECKPOINT_FILE);
    const raw = await fsp.open(path_, 'a+');
    let size: number;
    let best: Checkpoint | undefined;
    let entries: Buffer | undefined;
    try {
      size = (await raw.stat()).size;
      const head = Buffer.alloc(Math.min(size, ENTRIES_AT));
      if (head.length > 0) await readFully(raw, head, head.length, 0);
      const a = decodeSlot(head.subarray(0, SLOT_BYTES));
      const b = decodeSlot(head.subarray(SLOT_BYTES, ENTRIES_AT));
      best = a && b ? (a.seq >= b.seq ? a : b) : (a ?? b);
      // The entries too, while the file is open: start-up then keeps no checkpoint descriptor open.
      if (best && ENTRIES_AT + best.entries * CHECKPOINT_ENTRY_BYTES <= size) {
        entries = Buffer.alloc(best.entries * CHECKPOINT_ENTRY_BYTES);
        if (entries.length > 0) await readFully(raw, entries, entries.length, ENTRIES_AT).catch(() => (entries = undefined));
      }
    } finally {
      await raw.close().catch(() => {});
    }
    return new CheckpointFile(new PooledFile(path_, 'r+'), best, size > 0 && !best, entries);
  }

  /** fsync the file before the descriptor budget closes it when it holds unsynced writes (not under `never`). */
  set syncOnEvict(v: boolean) {
    this.file.syncOnEvict = v;
  }

  /** The index entries the loaded checkpoint vouches for (read from the file), or undefined. */
  async loadedEntries(): Promise<SparseIndex | undefined> {
    const c = this.loaded;
    const bytes = this.loadedEntryBytes;
    // Read once, by recovery: not kept for the life of the log.
    this.loadedEntryBytes = undefined;
    if (!c || !bytes) return undefined;
    return decodeEntries(bytes, c);
  }

  /**
   * Writes a checkpoint of the active segment `base`: first the index entries [known, total) of `index`
   * that the file does not hold yet (all of them after a roll), then the next slot.
   */
  async write(c: Omit<Checkpoint, 'seq' | 'entries' | 'entriesCrc'>, index: SparseIndex, total: number): Promise<void> {
    if (c.base !== this.base || total < this.entries) {
      this.base = c.base;
      this.entries = 0;
      this.crc = 0;
    }
    const h = await this.file.acquire();
    if (!h) throw new Error('the checkpoint file is closed');
    try {
      if (total > this.entries) {
        const buf = encodeEntries(index, c.base, this.entries, total);
        await h.write(buf, 0, buf.length, ENTRIES_AT + this.entries * CHECKPOINT_ENTRY_BYTES);
        this.file.noteWrite();
        this.crc = crc32(buf, this.crc);
        this.entries = total;
      }
      this.seq++;
      const slot = encodeSlot({ ...c, seq: this.seq, entries: this.entries, entriesCrc: this.crc });
      await h.write(slot, 0, SLOT_BYTES, (this.seq % 2) * SLOT_BYTES);
      this.file.noteWrite();
    } finally {
      this.file.release();
    }
  }

  /** Whether writes were made that no fsync covered yet. */
  get unsynced(): boolean {
    return this.file.unsynced;
  }

  /** fsyncs what was written since the last sync (nothing when nothing was). */
  async sync(): Promise<void> {
    if (!this.file.unsynced) return;
    await this.file.datasync();
  }

  async close(): Promise<void> {
    await this.file.dispose();
  }
}
