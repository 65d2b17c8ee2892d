/**
 * Whole-object compression for JSON Lines and raw objects (Parquet compresses inside the file):
 * gzip through node's zlib, zstd through {@link ./zstd.ts}. Both have a buffer form (small objects)
 * and a streaming form (multipart uploads, reading back) with bounded memory.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip, createGzip, gzip as gzipCb } from 'node:zlib';
import { loadZstd, zstdCompress, ZstdFrameSplitter } from './zstd.js';

const gzip = promisify(gzipCb);

/** How an object's bytes are compressed as a whole. */
export const Compression = { gzip: 'gzip', zstd: 'zstd', none: 'none' } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

/**
 * The gzip level when none is configured: 1. On JSON Lines here level 1 compresses ~75 MB/s per core
 * to 31 % of the input, zlib's default 6 ~21 MB/s to 25 %: at 6 a single core cannot keep up with
 * one busy station, and a sink that cannot keep up is worse than objects a quarter larger.
 * `compressionLevel` sets another (and zstd is both faster and smaller).
 */
export const GZIP_DEFAULT_LEVEL = 1;

/** Input bytes per gzip member when a buffer is compressed in parallel. */
export const GZIP_MEMBER = 1024 * 1024;

/** Input bytes per zstd frame: the unit of memory on both sides. */
export const ZSTD_FRAME_INPUT = 4 * 1024 * 1024;

/** The file-name suffix for a compression ('' for none). */
export function compressionSuffix(c: Compression): string {
  return c === 'gzip' ? '.gz' : c === 'zstd' ? '.zst' : '';
}

/** The compression a key's suffix says (`.gz`, `.zst`), or none. */
export function compressionFromKey(key: string): Compression {
  if (key.endsWith('.gz')) return 'gzip';
  if (key.endsWith('.zst') || key.endsWith('.zstd')) return 'zstd';
  return 'none';
}

/** Compresses a whole buffer (gzip runs on libuv's pool, off the calling thread). */
export async function compressBuffer(data: Uint8Array, c: Compression, level?: number): Promise<Uint8Array> {
  if (c === 'none') return data;
  if (c === 'gzip') {
    // Members of ≤ 1 MiB compressed side by side on libuv's pool: a gzip file may be a sequence of
    // members (RFC 1952; gunzip, zlib, Java, Python, Spark and Trino read them all), and deflate's
    // 32 KiB window makes the cost in ratio negligible.
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const members: Buffer[] = [];
    for (let i = 0; i < bytes.byteLength; i += GZIP_MEMBER) members.push(bytes.subarray(i, i + GZIP_MEMBER));
    return gzipChunks(members, level);
  }
  await loadZstd();
  const frames: Uint8Array[] = [];
  for (let i = 0; i < data.byteLength; i += ZSTD_FRAME_INPUT) frames.push(zstdCompress(data.subarray(i, i + ZSTD_FRAME_INPUT), level));
  if (frames.length === 0) frames.push(zstdCompress(new Uint8Array(0), level));
  return frames.length === 1 ? (frames[0] as Uint8Array) : Buffer.concat(frames);
}

/**
 * gzip of a body that arrives in chunks (each ~{@link GZIP_MEMBER} bytes): one member per chunk, each
 * started on libuv's pool as soon as its chunk is made, so compressing one chunk overlaps making the
 * next and the whole uncompressed body is never joined in memory.
 */
export async function gzipChunks(chunks: Iterable<Buffer>, level?: number): Promise<Uint8Array> {
  const opts = { level: level ?? GZIP_DEFAULT_LEVEL };
  const members: Promise<Buffer>[] = [];
  for (const chunk of chunks) {
    const member = gzip(chunk, opts);
    // Awaited below; this only keeps a member that fails while a later chunk is made from counting as unhandled.
    member.catch(() => undefined);
    members.push(member);
  }
  if (members.length === 0) return gzip(Buffer.alloc(0), opts);
  return members.length === 1 ? (members[0] as Promise<Buffer>) : Buffer.concat(await Promise.all(members));
}

/** A zstd compressor stream: one frame per {@link ZSTD_FRAME_INPUT} bytes of input. */
class ZstdCompressStream extends Transform {
  private chunks: Buffer[] = [];
  private size = 0;
  private wroteFrame = false;
  constructor(private readonly level: number | undefined) {
    super();
  }
  private emitFrame(): void {
    const input = Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.size = 0;
    this.wroteFrame = true;
    this.push(zstdCompress(input, this.level));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.chunks.push(chunk);
      this.size += chunk.length;
      if (this.size >= ZSTD_FRAME_INPUT) this.emitFrame();
      done();
    } catch (err) {
      done(err as Error);
    }
  }
  override _flush(done: TransformCallback): void {
    try {
      if (this.size > 0 || !this.wroteFrame) this.emitFrame();
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** A zstd decompressor stream over {@link ZstdFrameSplitter}. */
class ZstdDecompressStream extends Transform {
  private readonly splitter = new ZstdFrameSplitter();
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      for (const out of this.splitter.push(chunk)) this.push(out);
      done();
    } catch (err) {
      done(err as Error);
    }
  }
  override _flush(done: TransformCallback): void {
    try {
      this.splitter.end();
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** A compressing transform, or undefined for none. zstd needs {@link loadZstd} first. */
export async function compressStream(c: Compression, level?: number): Promise<Transform | undefined> {
  if (c === 'none') return undefined;
  if (c === 'gzip') return createGzip({ level: level ?? GZIP_DEFAULT_LEVEL });
  await loadZstd();
  return new ZstdCompressStream(level);
}

/** A decompressing transform (gzip: all members; zstd: all frames), or undefined for none. */
export async function decompressStream(c: Compression): Promise<Transform | undefined> {
  if (c === 'none') return undefined;
  if (c === 'gzip') return createGunzip();
  await loadZstd();
  return new ZstdDecompressStream();
}
