/**
 * A consumer group's durable progress: an append-only journal of small CRC-framed records (delivered
 * ranges, redeliveries, settled offsets, seeks, its counts). Replaying it rebuilds the group's state;
 * when it grows past a threshold it is rewritten as the shortest journal with the same state.
 */
import { crc32 } from 'node:zlib';

export const JournalOp = {
  DELIVER: 1,
  REDELIVER: 2,
  SETTLE: 3,
  SEEK: 4,
  /** Settled offsets from..to (a range ack); journals with it are not read by versions before it. */
  SETTLE_RANGE: 5,
  /** The partition's epoch token (deliveryIds carry it); set at creation and by every seek. */
  EPOCH: 6,
  /** Settled offsets that were dead-lettered (remembered, so a late ack of one answers `stale`). */
  DEAD: 7,
  /** Retention removed what the group had not settled below `offset`: `lost` messages. */
  RETAINED: 8,
  /**
   * The partition's dead-lettered count since the group was created (absolute: the last one read wins), after
   * the DEAD entry of each move to the dead-letter station and in every snapshot. Journals with it are not
   * read by versions before it.
   */
  DEAD_TOTAL: 9,
} as const;
export type JournalOp = (typeof JournalOp)[keyof typeof JournalOp];

export type JournalEntry =
  | { op: typeof JournalOp.DELIVER; partition: number; from: number; to: number }
  | { op: typeof JournalOp.REDELIVER; partition: number; offset: number; attempt: number }
  | { op: typeof JournalOp.SETTLE; partition: number; offsets: readonly number[] }
  | { op: typeof JournalOp.SEEK; partition: number; offset: number }
  | { op: typeof JournalOp.SETTLE_RANGE; partition: number; from: number; to: number }
  | { op: typeof JournalOp.EPOCH; partition: number; epoch: number }
  | { op: typeof JournalOp.DEAD; partition: number; offsets: readonly number[] }
  | { op: typeof JournalOp.RETAINED; partition: number; offset: number; lost: number }
  | { op: typeof JournalOp.DEAD_TOTAL; partition: number; count: number };

const HEADER = 9; // u32 length (of type + payload), u32 crc32 of type + payload, u8 type

function frame(op: JournalOp, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32LE(1 + payload.length, 0);
  out[8] = op;
  payload.copy(out, HEADER);
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

export function encodeEntry(e: JournalEntry): Buffer {
  switch (e.op) {
    case JournalOp.DELIVER:
    case JournalOp.SETTLE_RANGE: {
      const p = Buffer.allocUnsafe(20);
      p.writeUInt32LE(e.partition, 0);
      p.writeDoubleLE(e.from, 4);
      p.writeDoubleLE(e.to, 12);
      return frame(e.op, p);
    }
    case JournalOp.REDELIVER: {
      const p = Buffer.allocUnsafe(16);
      p.writeUInt32LE(e.partition, 0);
      p.writeDoubleLE(e.offset, 4);
      p.writeUInt32LE(e.attempt, 12);
      return frame(e.op, p);
    }
    case JournalOp.EPOCH: {
      const p = Buffer.allocUnsafe(8);
      p.writeUInt32LE(e.partition, 0);
      p.writeUInt32LE(e.epoch >>> 0, 4);
      return frame(e.op, p);
    }
    case JournalOp.RETAINED: {
      const p = Buffer.allocUnsafe(20);
      p.writeUInt32LE(e.partition, 0);
      p.writeDoubleLE(e.offset, 4);
      p.writeDoubleLE(e.lost, 12);
      return frame(e.op, p);
    }
    case JournalOp.SETTLE:
    case JournalOp.DEAD: {
      const p = Buffer.allocUnsafe(8 + 8 * e.offsets.length);
      p.writeUInt32LE(e.partition, 0);
      p.writeUInt32LE(e.offsets.length, 4);
      for (let i = 0; i < e.offsets.length; i++) p.writeDoubleLE(e.offsets[i]!, 8 + 8 * i);
      return frame(e.op, p);
    }
    case JournalOp.SEEK: {
      const p = Buffer.allocUnsafe(12);
      p.writeUInt32LE(e.partition, 0);
      p.writeDoubleLE(e.offset, 4);
      return frame(e.op, p);
    }
    case JournalOp.DEAD_TOTAL: {
      const p = Buffer.allocUnsafe(12);
      p.writeUInt32LE(e.partition, 0);
      p.writeDoubleLE(e.count, 4);
      return frame(e.op, p);
    }
  }
}

/**
 * Decodes a journal. Stops at the first torn or corrupt record: everything after it is unusable
 * (records depend on their order), and `validBytes` says where the good part ends.
 */
export function decodeJournal(buf: Buffer): { entries: JournalEntry[]; validBytes: number; damaged: boolean } {
  const entries: JournalEntry[] = [];
  let pos = 0;
  while (pos + HEADER <= buf.length) {
    const len = buf.readUInt32LE(pos);
    if (len < 1 || pos + 8 + len > buf.length) break;
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32(body) !== buf.readUInt32LE(pos + 4)) break;
    const e = decodeBody(body);
    if (!e) break;
    entries.push(e);
    pos += 8 + len;
  }
  return { entries, validBytes: pos, damaged: pos !== buf.length };
}

function decodeBody(b: Buffer): JournalEntry | undefined {
  const op = b[0];
  const p = b.subarray(1);
  switch (op) {
    case JournalOp.DELIVER:
    case JournalOp.SETTLE_RANGE:
      return p.length === 20 ? { op, partition: p.readUInt32LE(0), from: p.readDoubleLE(4), to: p.readDoubleLE(12) } : undefined;
    case JournalOp.REDELIVER:
      return p.length === 16 ? { op, partition: p.readUInt32LE(0), offset: p.readDoubleLE(4), attempt: p.readUInt32LE(12) } : undefined;
    case JournalOp.EPOCH:
      return p.length === 8 ? { op, partition: p.readUInt32LE(0), epoch: p.readUInt32LE(4) } : undefined;
    case JournalOp.RETAINED:
      return p.length === 20 ? { op, partition: p.readUInt32LE(0), offset: p.readDoubleLE(4), lost: p.readDoubleLE(12) } : undefined;
    case JournalOp.SETTLE:
    case JournalOp.DEAD: {
      if (p.length < 8) return undefined;
      const n = p.readUInt32LE(4);
      if (p.length !== 8 + 8 * n) return undefined;
      const offsets: number[] = new Array(n);
      for (let i = 0; i < n; i++) offsets[i] = p.readDoubleLE(8 + 8 * i);
      return { op, partition: p.readUInt32LE(0), offsets };
    }
    case JournalOp.SEEK:
      return p.length === 12 ? { op, partition: p.readUInt32LE(0), offset: p.readDoubleLE(4) } : undefined;
    case JournalOp.DEAD_TOTAL:
      return p.length === 12 ? { op, partition: p.readUInt32LE(0), count: p.readDoubleLE(4) } : undefined;
    default:
      return undefined;
  }
}
