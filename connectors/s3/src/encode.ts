/**
 * An object's body from its messages, in the configured format and compression: as one buffer for
 * objects up to a part size, or as a stream (bounded memory) for multipart uploads.
 */
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import type { SinkMessage } from '@junction/sdk-connector';
import type { SchemaField } from '@junction/sdk-connector/schema';
import type { S3SinkConfig } from './config.js';
import { compressBuffer, compressStream, gzipChunks, type Compression } from './formats/compression.js';
import { encodeJsonlLine, linePrefix } from './formats/jsonl.js';
import { writeParquet } from './formats/parquet.js';
import type { FormatSpec } from './formats/spec.js';

/** Messages of one object and what validation learnt about them. */
export interface ObjectContent {
  messages: SinkMessage[];
  /**
   * Format jsonl with value json, per message: the value as one-line JSON text, or null when the value's
   * own bytes are that text (then they are copied as bytes). undefined: not validated here.
   */
  json: (string | null | undefined)[];
  /** The parsed value (format parquet), per message: the JSON value, or the row decoded with the station schema. */
  parsed: unknown[];
  /** Format parquet with a station schema: the columns (every message of the object was decoded with it). */
  columns?: readonly SchemaField[] | undefined;
}

const CHUNK = 1 << 20;

export function formatSpec(config: S3SinkConfig): FormatSpec {
  if (config.format === 'parquet') return { type: 'parquet', fields: config.parquet.fields };
  if (config.format === 'raw') return { type: 'raw', separator: config.raw.separator };
  return { type: 'jsonl', value: config.jsonl.value, fields: config.jsonl.fields };
}

/** The whole-object compression (Parquet compresses inside). */
export function objectCompression(config: S3SinkConfig): Compression {
  if (config.format === 'parquet' || config.compression === 'snappy') return 'none';
  return config.compression;
}

/** Bytes appended into ~1 MiB chunks. */
class ChunkBuilder {
  private buf = Buffer.allocUnsafe(CHUNK + 64 * 1024);
  private pos = 0;
  readonly done: Buffer[] = [];

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  text(s: string): void {
    this.room(s.length * 3);
    // Buffer's own encoder, without write()'s argument handling (it exists on every Buffer; not in @types/node).
    this.pos += (this.buf as Buffer & { utf8Write(s: string, offset: number): number }).utf8Write(s, this.pos);
  }
  bytes(b: Uint8Array): void {
    this.room(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }
  /** Hands out the chunk when it reached CHUNK bytes (or `force` and not empty). */
  take(force = false): Buffer | undefined {
    if (this.pos === 0 || (!force && this.pos < CHUNK)) return undefined;
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(CHUNK + 64 * 1024);
    this.pos = 0;
    return out;
  }
}

function* textChunks(config: S3SinkConfig, content: ObjectContent): Generator<Buffer> {
  const out = new ChunkBuilder();
  const opts = { value: config.jsonl.value, fields: config.jsonl.fields };
  const bare = opts.fields.length === 0;
  for (let i = 0; i < content.messages.length; i++) {
    const m = content.messages[i] as SinkMessage;
    const pre = content.json[i];
    if (opts.value === 'json' && pre === null) {
      // The value's bytes are its one-line JSON: the envelope as text around them, no string made of the value.
      if (bare) {
        out.bytes(m.value);
        out.text('\n');
      } else {
        out.text(`${linePrefix(m, opts)}"value":`);
        out.bytes(m.value);
        out.text('}\n');
      }
    } else {
      const enc = encodeJsonlLine(m, opts, pre ?? undefined);
      // Validated before planning; a rejection here would be a bug, not bad input.
      if ('rejected' in enc) throw new Error(`message at offset ${m.offset} became unencodable: ${enc.rejected}`);
      out.text(enc.text);
    }
    const chunk = out.take();
    if (chunk) yield chunk;
  }
  const last = out.take(true);
  if (last) yield last;
}

function* rawChunks(config: S3SinkConfig, content: ObjectContent): Generator<Buffer> {
  const sep = Buffer.from(config.raw.separator, 'utf8');
  let parts: Uint8Array[] = [];
  let size = 0;
  for (const m of content.messages) {
    parts.push(m.value, sep);
    size += m.value.byteLength + sep.length;
    if (size >= CHUNK) {
      yield Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (parts.length > 0) yield Buffer.concat(parts, size);
}

function parquetInput(config: S3SinkConfig, content: ObjectContent) {
  return {
    messages: content.messages,
    values: content.parsed as Record<string, unknown>[],
    fields: config.parquet.fields,
    codec: config.compression,
    level: config.compressionLevel,
    rowGroupSize: config.parquet.rowGroupSize,
    columns: content.columns,
  };
}

/** The object's bytes, compressed (gzip: each ~1 MiB chunk a member, compressed while the next is made). */
export async function encodeBuffer(config: S3SinkConfig, content: ObjectContent): Promise<Uint8Array> {
  if (config.format === 'parquet') return writeParquet(parquetInput(config, content));
  const made = config.format === 'raw' ? rawChunks(config, content) : textChunks(config, content);
  const compression = objectCompression(config);
  if (compression === 'gzip') return gzipChunks(made, config.compressionLevel);
  const chunks = [...made];
  const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
  return compressBuffer(data, compression, config.compressionLevel);
}

/** The object's bytes as a stream, produced as the upload consumes them. */
export async function encodeStream(config: S3SinkConfig, content: ObjectContent): Promise<Readable> {
  if (config.format === 'parquet') {
    const out = new PassThrough();
    writeParquet({
      ...parquetInput(config, content),
      onChunk: async (chunk) => {
        if (!out.write(chunk)) await once(out, 'drain');
      },
    }).then(
      () => out.end(),
      (err: unknown) => out.destroy(err as Error),
    );
    return out;
  }
  const source = Readable.from(config.format === 'raw' ? rawChunks(config, content) : textChunks(config, content), { objectMode: false });
  const compressor = await compressStream(objectCompression(config), config.compressionLevel);
  if (!compressor) return source;
  source.on('error', (err) => compressor.destroy(err));
  return source.pipe(compressor);
}
