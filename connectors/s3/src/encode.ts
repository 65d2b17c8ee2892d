/**
 * An object's body from its messages, in the configured format and compression: as one buffer for
 * objects up to a part size, or as a stream (bounded memory) for multipart uploads.
 */
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import type { SinkMessage } from '@junction/sdk-connector';
import type { S3SinkConfig } from './config.js';
import { compressBuffer, compressStream, type Compression } from './formats/compression.js';
import { encodeJsonlLine } from './formats/jsonl.js';
import { writeParquet } from './formats/parquet.js';
import type { FormatSpec } from './formats/spec.js';

/** Messages of one object and what validation learnt about them. */
export interface ObjectContent {
  messages: SinkMessage[];
  /** The value as one-line JSON text (format jsonl with value json), per message. */
  json: (string | undefined)[];
  /** The parsed value (format parquet), per message. */
  parsed: unknown[];
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

function* textChunks(config: S3SinkConfig, content: ObjectContent): Generator<Buffer> {
  let parts: string[] = [];
  let size = 0;
  const opts = { value: config.jsonl.value, fields: config.jsonl.fields };
  for (let i = 0; i < content.messages.length; i++) {
    const enc = encodeJsonlLine(content.messages[i] as SinkMessage, opts, content.json[i]);
    // Validated before planning; a rejection here would be a bug, not bad input.
    if ('rejected' in enc) throw new Error(`message at offset ${content.messages[i]?.offset} became unencodable: ${enc.rejected}`);
    parts.push(enc.text);
    size += enc.text.length;
    if (size >= CHUNK) {
      yield Buffer.from(parts.join(''), 'utf8');
      parts = [];
      size = 0;
    }
  }
  if (parts.length > 0) yield Buffer.from(parts.join(''), 'utf8');
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
  };
}

/** The object's bytes, compressed. */
export async function encodeBuffer(config: S3SinkConfig, content: ObjectContent): Promise<Uint8Array> {
  if (config.format === 'parquet') return writeParquet(parquetInput(config, content));
  const chunks = [...(config.format === 'raw' ? rawChunks(config, content) : textChunks(config, content))];
  const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
  return compressBuffer(data, objectCompression(config), config.compressionLevel);
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
