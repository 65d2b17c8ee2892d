/** File helpers of the file log: a sequential window for scans, full reads and writes, errors. */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { FsyncPolicy } from '@junction/protocol';
import { ErrorCode, JunctionError } from '../errors.js';
import {
  FLAGS_KNOWN,
  FRAME_FLAG_MSG_ID,
  FRAME_MAGIC,
  FrameFault,
  MIN_FRAME_BYTES,
  checkFrame,
  frameOffset,
  frameTimestamp,
} from './record-codec.js';

const SCAN_CHUNK_BYTES = 8 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

/** A sequential window over a file, for scans and resynchronisation. */
export class FileWindow {
  buf: Buffer = EMPTY;
  start = 0;
  end = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly limit: number,
  ) {}

  has(pos: number, n: number): boolean {
    return pos >= this.start && pos + n <= this.end;
  }

  /** Loads at least [pos, pos + n) (the caller checked pos + n <= limit). */
  async load(pos: number, n: number): Promise<void> {
    const len = Math.min(Math.max(n, SCAN_CHUNK_BYTES), this.limit - pos);
    if (this.buf.length < len) this.buf = Buffer.allocUnsafeSlow(len);
    await readFully(this.handle, this.buf, len, pos);
    this.start = pos;
    this.end = pos + len;
  }

  /** checkFrame at a file position, loading as needed. */
  async check(pos: number, prevOffset: number): Promise<number> {
    if (!this.has(pos, 4)) {
      if (pos + 4 > this.limit) return FrameFault.INCOMPLETE;
      await this.load(pos, 4);
    }
    const len = this.buf.readUInt32LE(pos - this.start);
    if (len >= MIN_FRAME_BYTES - 4 && !this.has(pos, 4 + len) && pos + 4 + len <= this.limit) await this.load(pos, 4 + len);
    return checkFrame(this.buf, pos - this.start, Math.min(this.end, this.limit) - this.start, prevOffset);
  }

  /** The next position after `from` where a valid frame with an offset above prevOffset starts, or -1. */
  async resync(from: number, prevOffset: number): Promise<number> {
    for (let p = from + 1; p + MIN_FRAME_BYTES <= this.limit; p++) {
      if (!this.has(p, MIN_FRAME_BYTES)) await this.load(p, MIN_FRAME_BYTES);
      const r = p - this.start;
      const b = this.buf;
      if (b[r + 8] !== FRAME_MAGIC || ((b[r + 9] as number) & ~FLAGS_KNOWN) !== 0) continue;
      const len = b.readUInt32LE(r);
      if (len < MIN_FRAME_BYTES - 4 || p + 4 + len > this.limit) continue;
      if ((await this.check(p, prevOffset)) > 0) return p;
    }
    return -1;
  }

  offsetAt(pos: number): number {
    return frameOffset(this.buf, pos - this.start);
  }

  timestampAt(pos: number): number {
    return frameTimestamp(this.buf, pos - this.start);
  }

  /** Whether the (checked) frame at `pos` carries a msgId. */
  hasMsgIdAt(pos: number): boolean {
    return ((this.buf[pos - this.start + 9] as number) & FRAME_FLAG_MSG_ID) !== 0;
  }

  sizeAt(pos: number): number {
    return 4 + this.buf.readUInt32LE(pos - this.start);
  }
}

export async function readFully(handle: FileHandle, buf: Buffer, len: number, position: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await handle.read(buf, done, len - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at position ${position + done}`);
    done += bytesRead;
  }
}

export async function writeFully(handle: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let total = 0;
  for (const b of bufs) total += b.length;
  let { bytesWritten } =
    bufs.length === 1 ? await handle.write(bufs[0] as Buffer, 0, total, position) : await handle.writev(bufs, position);
  if (bytesWritten === total) return;
  // A short write (rare on regular files): write the rest from one joined buffer.
  const rest = Buffer.concat(bufs).subarray(bytesWritten);
  let done = 0;
  while (done < rest.length) {
    ({ bytesWritten } = await handle.write(rest, done, rest.length - done, position + (total - rest.length) + done));
    if (bytesWritten === 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export async function unlinkQuiet(file: string): Promise<void> {
  await fsp.unlink(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

export function ioError(message: string, cause: unknown): JunctionError {
  if (cause instanceof JunctionError) return cause;
  return new JunctionError(ErrorCode.IO_ERROR, `${message}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
}

export function closedError(): JunctionError {
  return new JunctionError(ErrorCode.STORE_CLOSED, 'the partition log is closed');
}

export function parseInterval(policy: FsyncPolicy): number {
  if (!policy.startsWith('interval:')) return 0;
  const ms = Number(policy.slice('interval:'.length));
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
