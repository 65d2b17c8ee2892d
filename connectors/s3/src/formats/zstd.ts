/**
 * Zstandard through @bokuweb/zstd-wasm (WebAssembly: no native build, no binary downloaded at install;
 * Node 20's zlib has no zstd — it arrived in 22.15). The wasm module is loaded once per thread.
 *
 * The sink writes a zstd object as a sequence of independent frames (one per ≤ 4 MiB of input), each
 * carrying its content size: concatenated frames are one valid zstd stream (`zstd -d` reads it), and
 * both sides keep memory bounded. {@link ZstdFrameSplitter} cuts such a stream back into frames.
 */
import { compress, decompress, init } from '@bokuweb/zstd-wasm';

let ready: Promise<void> | undefined;

/** Loads the wasm module (once); call before {@link zstdCompress} / {@link zstdDecompressFrame}. */
export function loadZstd(): Promise<void> {
  ready ??= init();
  return ready;
}

/** One zstd frame holding `data` (with its content size). {@link loadZstd} must have resolved. */
export function zstdCompress(data: Uint8Array, level = 3): Uint8Array {
  return compress(data, level);
}

const MAX_GUESS = 1 << 30;

/**
 * Decompresses one frame. Frames without a declared content size (written by a streaming zstd) are
 * decoded into a growing buffer, up to 1 GiB. Throws on corrupt input.
 */
export function zstdDecompressFrame(frame: Uint8Array, contentSize: number | undefined): Uint8Array {
  if (contentSize !== undefined) return decompress(frame);
  for (let guess = Math.max(1 << 20, frame.byteLength * 8); ; guess *= 4) {
    try {
      return decompress(frame, { defaultHeapSize: guess });
    } catch (err) {
      if (guess >= MAX_GUESS) throw err;
    }
  }
}

const MAGIC = 0xfd2fb528;

/** The frame starting at `buf[pos]`: its total length and declared content size; undefined when incomplete. */
function frameAt(buf: Uint8Array, pos: number): { length: number; contentSize: number | undefined; skippable: boolean } | undefined {
  if (buf.length - pos < 8) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(pos, true);
  if ((magic & 0xfffffff0) === 0x184d2a50) {
    const len = 8 + view.getUint32(pos + 4, true);
    return buf.length - pos >= len ? { length: len, contentSize: 0, skippable: true } : undefined;
  }
  if (magic !== MAGIC) throw new Error(`not a zstd frame (magic 0x${magic.toString(16)} at byte ${pos})`);
  const fhd = buf[pos + 4] as number;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  let p = pos + 5;
  if (!singleSegment) p += 1;
  p += [0, 1, 2, 4][dictFlag] as number;
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : ([0, 2, 4, 8][fcsFlag] as number);
  if (buf.length < p + fcsSize) return undefined;
  let contentSize: number | undefined;
  if (fcsSize === 1) contentSize = buf[p] as number;
  else if (fcsSize === 2) contentSize = view.getUint16(p, true) + 256;
  else if (fcsSize === 4) contentSize = view.getUint32(p, true);
  else if (fcsSize === 8) contentSize = Number(view.getBigUint64(p, true));
  p += fcsSize;
  for (;;) {
    if (buf.length < p + 3) return undefined;
    const header = (buf[p] as number) | ((buf[p + 1] as number) << 8) | ((buf[p + 2] as number) << 16);
    const last = header & 1;
    const type = (header >> 1) & 3;
    const size = header >> 3;
    p += 3 + (type === 1 ? 1 : size);
    if (type === 3) throw new Error('corrupt zstd frame (reserved block type)');
    if (last) break;
  }
  if (checksum) p += 4;
  return buf.length >= p ? { length: p - pos, contentSize, skippable: false } : undefined;
}

/**
 * Cuts a zstd stream (chunks as they arrive) into whole frames and decompresses each: push chunks,
 * get the decompressed bytes of every frame they completed. Memory: one frame at a time.
 */
export class ZstdFrameSplitter {
  private pending: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Uint8Array[] = [];
    let pos = 0;
    for (;;) {
      const frame = frameAt(this.pending, pos);
      if (!frame) break;
      if (!frame.skippable) out.push(zstdDecompressFrame(this.pending.subarray(pos, pos + frame.length), frame.contentSize));
      pos += frame.length;
    }
    this.pending = pos === 0 ? this.pending : this.pending.subarray(pos);
    return out;
  }

  /** Throws when the stream ended inside a frame. */
  end(): void {
    if (this.pending.length > 0) throw new Error(`zstd stream ends inside a frame (${this.pending.length} bytes left)`);
  }
}
