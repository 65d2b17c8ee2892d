/**
 * Parquet through hyparquet-writer / hyparquet (pure JavaScript, maintained, no native code, run on
 * Node 20; @dsnp/parquetjs 1.9 needs Node 24 and the older parquetjs forks are unmaintained).
 *
 * One row per message. Columns come from the JSON values' top-level fields, typed per object from
 * what its rows hold: all booleans → BOOLEAN, all integers → INT64, all numbers → DOUBLE, all strings
 * → STRING, anything else (objects, arrays, mixed types) → JSON text. A missing field or `null` is a
 * null. The chosen metadata fields come first as `_offset` (INT64), `_timestamp` (TIMESTAMP_MILLIS),
 * `_key` (STRING) and `_headers` (JSON). Compression is Parquet's own, per column chunk.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { parquetMetadataAsync, parquetReadObjects, type AsyncBuffer, type CompressionCodec, type FileMetaData } from 'hyparquet';
import { ByteWriter, ParquetWriter, type SchemaElement } from 'hyparquet-writer';
import type { FieldType, SchemaField } from '@junction/sdk-connector/schema';
import type { EncodableMessage } from './jsonl.js';
import type { MetaField } from './spec.js';
import { loadZstd, zstdCompress, zstdDecompressFrame } from './zstd.js';
import { nativeSnappy } from './snappy.js';
import { GZIP_DEFAULT_LEVEL } from './compression.js';

/** Parquet's column compression. */
export type ParquetCodec = 'gzip' | 'zstd' | 'snappy' | 'none';

/** The column a metadata field becomes. */
export const PARQUET_META_COLUMNS: Record<MetaField, string> = {
  offset: '_offset',
  timestamp: '_timestamp',
  key: '_key',
  headers: '_headers',
};

type Kind = 'null' | 'boolean' | 'int' | 'double' | 'string' | 'json';

function kindOf(v: unknown): Kind {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return Number.isSafeInteger(v) ? 'int' : 'double';
  if (typeof v === 'string') return 'string';
  return 'json';
}

function merge(a: Kind, b: Kind): Kind {
  if (a === b || b === 'null') return a;
  if (a === 'null') return b;
  if ((a === 'int' && b === 'double') || (a === 'double' && b === 'int')) return 'double';
  return 'json';
}

/** Why a parsed value cannot be a Parquet row (not an object, or a field clashing with a metadata column), or undefined. */
export function parquetRowProblem(value: unknown, fields: readonly MetaField[]): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `value is JSON but not an object (${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}); Parquet rows need an object`;
  }
  for (const f of fields) {
    const col = PARQUET_META_COLUMNS[f];
    if (Object.hasOwn(value, col)) return `value has a field "${col}", which is the metadata column for ${f}`;
  }
  return undefined;
}

export interface ParquetWriteInput {
  messages: readonly EncodableMessage[];
  /** The parsed JSON value of each message (objects; see {@link parquetRowProblem}). */
  values: readonly Record<string, unknown>[];
  fields: readonly MetaField[];
  codec: ParquetCodec;
  level?: number | undefined;
  rowGroupSize: number;
  /**
   * The station schema's columns (see {@link parquetSchemaOf}): the file's columns and types come from
   * them, and `values` are rows decoded by `schemaDecoder`. Without it, columns are inferred from the values.
   */
  columns?: readonly SchemaField[] | undefined;
  /** Receives the file's bytes as they are produced (once per row group, then the footer); may apply backpressure. */
  onChunk?: (chunk: Uint8Array) => void | Promise<void>;
}

const CODEC: Record<ParquetCodec, CompressionCodec> = { gzip: 'GZIP', zstd: 'ZSTD', snappy: 'SNAPPY', none: 'UNCOMPRESSED' };

/**
 * The file's bytes as a list of chunks. A write that does not fit the current buffer hands that buffer on
 * as it is and starts a new one, so nothing is grown by copying (a ByteWriter doubles its buffer and copies
 * what it holds: ~2x the file in copies), and the chunks go out as they are: to `onChunk` on each flush
 * (after every row group), or joined once at the end. The file's offsets (`offset`) run on regardless.
 */
class ChunkWriter extends ByteWriter {
  private readonly chunks: Uint8Array[] = [];

  constructor(private readonly onChunk?: (chunk: Uint8Array) => void | Promise<void>) {
    super(CHUNK_BYTES);
  }

  override ensure(size: number): void {
    if (this.index + size <= this.buffer.byteLength) return;
    this.cut(Math.max(CHUNK_BYTES, size));
  }

  /** Hands on what the current buffer holds and starts a fresh one of `next` bytes (the old one now belongs to its chunk). */
  private cut(next = CHUNK_BYTES): void {
    if (this.index === 0 && this.buffer.byteLength >= next) return;
    if (this.index > 0) this.chunks.push(new Uint8Array(this.buffer, 0, this.index));
    this.buffer = new ArrayBuffer(next);
    this.view = new DataView(this.buffer);
    this.index = 0;
  }

  /** Without `onChunk`, keeps the chunks for {@link bytes}. */
  async flush(): Promise<void> {
    if (!this.onChunk) return;
    this.cut();
    for (const chunk of this.chunks.splice(0)) await this.onChunk(chunk);
  }

  // hyparquet-writer awaits what flush() and finish() return (its ByteWriter types them void).
  // eslint-disable-next-line @typescript-eslint/no-misused-promises
  override finish(): void | Promise<void> {
    return this.flush();
  }

  /** The whole file (no `onChunk`): the chunks joined once. */
  bytes(): Uint8Array {
    if (this.index > 0) this.chunks.push(new Uint8Array(this.buffer, 0, this.index)); // the writer is done: no fresh buffer
    if (this.chunks.length === 1) return this.chunks[0] as Uint8Array;
    const out = new Uint8Array(this.chunks.reduce((n, c) => n + c.byteLength, 0));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}

/** A chunk of the file: the unit handed on, and what a ChunkWriter holds beyond the row group being written. */
const CHUNK_BYTES = 1 << 20;

/**
 * Writes one Parquet file. Without `onChunk` resolves with the whole file; with it, streams the
 * bytes out row group by row group and resolves with an empty array.
 */
export async function writeParquet(input: ParquetWriteInput): Promise<Uint8Array> {
  const { messages, values, fields } = input;
  if (input.codec === 'zstd') await loadZstd();
  const kinds = new Map<string, Kind>();
  // for…in, not Object.entries: no array per row (values are JSON.parse's plain objects: own keys only).
  if (!input.columns) for (const v of values) for (const k in v) kinds.set(k, merge(kinds.get(k) ?? 'null', kindOf(v[k])));
  const schema: SchemaElement[] = [{ name: 'root', num_children: fields.length + (input.columns ? input.columns.length : kinds.size) }];
  for (const f of fields) {
    const name = PARQUET_META_COLUMNS[f];
    if (f === 'offset') schema.push({ name, type: 'INT64', repetition_type: 'REQUIRED' });
    else if (f === 'timestamp') schema.push({ name, type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', repetition_type: 'REQUIRED' });
    else if (f === 'key') schema.push({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
    else schema.push({ name, type: 'BYTE_ARRAY', converted_type: 'JSON', repetition_type: 'REQUIRED' });
  }
  if (input.columns) for (const c of input.columns) schema.push(...parquetSchemaOf(c.name, c.type, 0));
  for (const [name, kind] of kinds) {
    if (kind === 'boolean') schema.push({ name, type: 'BOOLEAN', repetition_type: 'OPTIONAL' });
    else if (kind === 'int') schema.push({ name, type: 'INT64', repetition_type: 'OPTIONAL' });
    else if (kind === 'double') schema.push({ name, type: 'DOUBLE', repetition_type: 'OPTIONAL' });
    else if (kind === 'string' || kind === 'null')
      schema.push({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
    else schema.push({ name, type: 'BYTE_ARRAY', converted_type: 'JSON', repetition_type: 'OPTIONAL' });
  }
  const level = input.level;
  const writer = new ChunkWriter(input.onChunk);
  const snappy = input.codec === 'snappy' ? nativeSnappy() : undefined;
  const pq = new ParquetWriter({
    writer,
    schema,
    codec: CODEC[input.codec],
    compressors: {
      GZIP: (b: Uint8Array) => gzipSync(b, { level: level ?? GZIP_DEFAULT_LEVEL }),
      ZSTD: (b: Uint8Array) => zstdCompress(b, level),
      ...(snappy && { SNAPPY: snappy }),
    },
    createdBy: 'junction connector-s3',
  });
  for (let start = 0; start < messages.length; start += input.rowGroupSize) {
    const end = Math.min(messages.length, start + input.rowGroupSize);
    const group = messages.slice(start, end);
    const rows = values.slice(start, end);
    const columnData: { name: string; data: unknown[] }[] = [];
    for (const f of fields) {
      const name = PARQUET_META_COLUMNS[f];
      if (f === 'offset') columnData.push({ name, data: group.map((m) => BigInt(m.offset)) });
      else if (f === 'timestamp') columnData.push({ name, data: group.map((m) => m.timestamp) });
      else if (f === 'key') columnData.push({ name, data: group.map((m) => m.key ?? null) });
      else columnData.push({ name, data: group.map((m) => m.headers) });
    }
    if (input.columns) {
      for (const c of input.columns) columnData.push({ name: c.name, data: rows.map((r) => parquetValue(r[c.name], c.type)) });
    }
    for (const [name, kind] of kinds) {
      columnData.push({
        name,
        data: rows.map((r) => {
          const v = r[name];
          if (v === undefined || v === null) return null;
          return kind === 'int' ? BigInt(v as number) : v;
        }),
      });
    }
    // One write() per row group so a streaming writer flushes (and may wait) between groups.
    await pq.write({ columnData: columnData as never, rowGroupSize: end - start });
  }
  await pq.finish();
  return input.onChunk ? new Uint8Array(0) : writer.bytes();
}

/**
 * The Parquet schema elements of one column of a station schema (depth first). Every column is OPTIONAL
 * (a value the schema says is required but that decodes to null must not fail the whole file). Types:
 * string and enum → STRING; boolean → BOOLEAN; int → INT32; long → INT64; float → FLOAT; double → DOUBLE;
 * bytes → BYTE_ARRAY; timestamp → INT64 TIMESTAMP(MILLIS, isAdjustedToUTC = true); date → INT32 DATE;
 * record → a group (STRUCT); array → LIST (three-level); map → MAP with STRING keys; json → JSON text.
 */
export function parquetSchemaOf(name: string, t: FieldType, depth: number): SchemaElement[] {
  const repetition_type = 'OPTIONAL' as const;
  if (depth > 16) return [{ name, type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' }, repetition_type }];
  switch (t.kind) {
    case 'string':
    case 'enum':
      return [{ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' }, repetition_type }];
    case 'boolean':
      return [{ name, type: 'BOOLEAN', repetition_type }];
    case 'int':
      return [{ name, type: 'INT32', repetition_type }];
    case 'long':
      return [{ name, type: 'INT64', repetition_type }];
    case 'float':
      return [{ name, type: 'FLOAT', repetition_type }];
    case 'double':
      return [{ name, type: 'DOUBLE', repetition_type }];
    case 'bytes':
      return [{ name, type: 'BYTE_ARRAY', repetition_type }];
    case 'timestamp':
      return [
        {
          name,
          type: 'INT64',
          converted_type: 'TIMESTAMP_MILLIS',
          logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' },
          repetition_type,
        },
      ];
    case 'date':
      return [{ name, type: 'INT32', converted_type: 'DATE', logical_type: { type: 'DATE' }, repetition_type }];
    case 'record':
      if (t.fields.length === 0)
        return [{ name, type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' }, repetition_type }];
      return [
        { name, num_children: t.fields.length, repetition_type },
        ...t.fields.flatMap((f) => parquetSchemaOf(f.name, f.type, depth + 1)),
      ];
    case 'array':
      return [
        { name, num_children: 1, converted_type: 'LIST', logical_type: { type: 'LIST' }, repetition_type },
        { name: 'list', num_children: 1, repetition_type: 'REPEATED' },
        ...parquetSchemaOf('element', t.items, depth + 1),
      ];
    case 'map':
      return [
        { name, num_children: 1, converted_type: 'MAP', logical_type: { type: 'MAP' }, repetition_type },
        { name: 'key_value', num_children: 2, repetition_type: 'REPEATED' },
        { name: 'key', type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' }, repetition_type: 'REQUIRED' },
        ...parquetSchemaOf('value', t.values, depth + 1),
      ];
    case 'json':
      return [{ name, type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' }, repetition_type }];
  }
}

/** A decoded value (schemaDecoder's row field) as the writer takes it for {@link parquetSchemaOf}'s column. */
function parquetValue(v: unknown, t: FieldType, depth = 0): unknown {
  if (v === null || v === undefined) return null;
  if (depth > 16) return v;
  switch (t.kind) {
    case 'long':
      return typeof v === 'number' ? BigInt(Math.trunc(v)) : v;
    case 'int':
      return typeof v === 'number' ? Math.trunc(v) : v;
    case 'record':
      if (t.fields.length === 0) return v;
      return Object.fromEntries(t.fields.map((f) => [f.name, parquetValue((v as Record<string, unknown>)[f.name], f.type, depth + 1)]));
    case 'array':
      return (v as unknown[]).map((x) => parquetValue(x, t.items, depth + 1));
    case 'map':
      return Object.entries(v as Record<string, unknown>).map(([key, x]) => ({ key, value: parquetValue(x, t.values, depth + 1) }));
    default:
      return v;
  }
}

const DECOMPRESSORS = {
  GZIP: (input: Uint8Array) => gunzipSync(input),
  ZSTD: (input: Uint8Array, outputLength: number) => zstdDecompressFrame(input, outputLength),
};

/** Parquet metadata of a file (reads its footer). */
export async function readParquetMetadata(file: AsyncBuffer): Promise<FileMetaData> {
  return parquetMetadataAsync(file);
}

/** A row read back: the value as the JSON object it came from, and the metadata columns present. */
export interface ParquetRecord {
  value: Record<string, unknown>;
  offset?: number;
  timestamp?: number;
  key?: string;
  headers?: Record<string, string>;
}

function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Date) return v.getTime();
  return v;
}

/**
 * Rows `[rowStart, rowEnd)` of a Parquet file written by {@link writeParquet} (or any flat Parquet
 * file: every column not named as a metadata column becomes a field of the value; nulls are left out).
 */
export async function readParquetRows(
  file: AsyncBuffer,
  metadata: FileMetaData,
  fields: readonly MetaField[],
  rowStart: number,
  rowEnd: number,
): Promise<ParquetRecord[]> {
  await loadZstd();
  const rows = (await parquetReadObjects({ file, metadata, rowStart, rowEnd, compressors: DECOMPRESSORS })) as Record<string, unknown>[];
  const meta = new Map(fields.map((f) => [PARQUET_META_COLUMNS[f], f] as const));
  return rows.map((row) => {
    const rec: ParquetRecord = { value: {} };
    for (const [col, raw] of Object.entries(row)) {
      const v = plain(raw);
      const f = meta.get(col);
      if (f === 'offset') rec.offset = v as number;
      else if (f === 'timestamp') rec.timestamp = v as number;
      else if (f === 'key') {
        if (typeof v === 'string') rec.key = v;
      } else if (f === 'headers') rec.headers = (typeof v === 'string' ? JSON.parse(v) : v) as Record<string, string>;
      else if (v !== null && v !== undefined) rec.value[col] = v;
    }
    return rec;
  });
}
