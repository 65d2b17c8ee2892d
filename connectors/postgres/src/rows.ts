/**
 * Rows of the default layout, and their two encodings: COPY's text format (bytes, escaped) and the
 * parameters of a multi-row INSERT.
 */
import { isUtf8 } from 'node:buffer';
import type { SinkMessage } from '@junction/sdk-connector';
import type { PostgresSinkConfig } from './config.js';

/** Quotes an identifier (the config allows plain ones only; quoting keeps `offset` and `timestamp` usable). */
export const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** The message columns, in COPY / INSERT order. In upsert mode `row_key` comes first. */
export const MESSAGE_COLUMNS = ['key', 'value', 'headers', 'station', 'station_id', 'partition', 'offset', 'timestamp'] as const;

export function columnsOf(config: PostgresSinkConfig): string[] {
  return config.mode === 'upsert' ? ['row_key', ...MESSAGE_COLUMNS] : [...MESSAGE_COLUMNS];
}

/** CREATE TABLE IF NOT EXISTS of the default layout. */
export function createTableSql(config: PostgresSinkConfig, fq: string): string {
  const cols = [
    ...(config.mode === 'upsert' ? ['row_key text PRIMARY KEY'] : []),
    'key text',
    `value ${config.value}`,
    "headers jsonb NOT NULL DEFAULT '{}'",
    'station text NOT NULL',
    'station_id text NOT NULL',
    'partition integer NOT NULL',
    '"offset" bigint NOT NULL',
    '"timestamp" timestamptz NOT NULL',
  ];
  return `CREATE TABLE IF NOT EXISTS ${fq} (${cols.join(', ')})`;
}

/** One message ready to write: its place in the batch, its offset, and the row identity in upsert mode. */
export interface Row {
  index: number;
  offset: number;
  message: SinkMessage;
  rowKey?: string;
  /** Layout schema: the fields' values as PostgreSQL text (null: NULL), in the order of the followed columns. */
  cells?: (string | null)[];
}

/** Why a message cannot become a row before PostgreSQL sees it (no key to upsert by, not UTF-8 for a text column). */
export function rejectReason(config: PostgresSinkConfig, m: SinkMessage): { reject: string } | { rowKey?: string } {
  if (config.value !== 'bytea' && !isUtf8(m.value))
    return { reject: `the value is not UTF-8, which a ${config.value} column needs (use value: bytea)` };
  if (config.mode !== 'upsert') return {};
  if (config.upsertBy === 'key') {
    return m.key === undefined ? { reject: 'upsert by key: the message has no key' } : { rowKey: m.key };
  }
  const field = config.upsertBy.field;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength).toString('utf8'));
  } catch {
    return { reject: `upsert by field ${field}: the value is not JSON` };
  }
  const v =
    parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>)[field] : undefined;
  if (v === undefined || v === null) return { reject: `upsert by field ${field}: the value has no such top-level field` };
  return { rowKey: typeof v === 'string' ? v : JSON.stringify(v) };
}

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const BSL = 0x5c;

/**
 * Builds COPY FROM STDIN text-format data (tab-separated, `\N` for NULL, backslash escapes) in chunks of
 * about `chunkBytes`, so a large batch streams without one giant buffer.
 */
export class CopyEncoder {
  private buf: Buffer;
  private pos = 0;
  readonly chunks: Buffer[] = [];

  constructor(private readonly chunkBytes: number) {
    this.buf = Buffer.allocUnsafe(Math.min(chunkBytes, 1 << 20) + 1024);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** Plain ASCII that needs no escaping (numbers, ISO timestamps, `\N`, separators). */
  raw(s: string): void {
    this.room(s.length);
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }

  /** Bytes already in COPY form. */
  rawBytes(b: Buffer): void {
    this.room(b.length);
    this.pos += b.copy(this.buf, this.pos);
  }

  /** Text, escaped for COPY. */
  text(s: string): void {
    if (!/[\\\t\n\r]/.test(s)) {
      this.room(Buffer.byteLength(s));
      this.pos += this.buf.write(s, this.pos, 'utf8');
      return;
    }
    this.bytes(Buffer.from(s, 'utf8'));
  }

  /** Bytes of a text value (already UTF-8), escaped for COPY. */
  bytes(b: Uint8Array): void {
    const v = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    if (v.indexOf(BSL) < 0 && v.indexOf(LF) < 0 && v.indexOf(TAB) < 0 && v.indexOf(CR) < 0) {
      this.room(v.length);
      this.pos += v.copy(this.buf, this.pos);
      return;
    }
    this.room(v.length * 2);
    for (let i = 0; i < v.length; i++) {
      const c = v[i] as number;
      if (c === BSL || c === TAB || c === LF || c === CR) {
        this.buf[this.pos++] = BSL;
        this.buf[this.pos++] = c === BSL ? BSL : c === TAB ? 0x74 : c === LF ? 0x6e : 0x72;
      } else this.buf[this.pos++] = c;
    }
  }

  /** A bytea value: `\\x` and hex (the backslash escaped for COPY). */
  bytea(b: Uint8Array): void {
    const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.room(3 + v.length * 2);
    this.pos += this.buf.write('\\\\x', this.pos, 'latin1');
    this.pos += this.buf.write(v.toString('hex'), this.pos, 'latin1');
  }

  /** Ends a row; starts a new chunk past `chunkBytes`. */
  endRow(): void {
    this.room(1);
    this.buf[this.pos++] = LF;
    if (this.pos >= this.chunkBytes) this.cut();
  }

  private cut(): void {
    this.chunks.push(Buffer.from(this.buf.subarray(0, this.pos)));
    this.pos = 0;
  }

  /** The chunks, the last one included. */
  finish(): Buffer[] {
    if (this.pos > 0) this.cut();
    return this.chunks;
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Layout schema: rows for COPY — `row_key` (upsert), the field cells, then `_junction_key`, station,
 * station id, partition, offset, timestamp (schema-table.ts `SCHEMA_META_COLUMNS`).
 */
export function encodeSchemaCopy(
  chunkBytes: number,
  station: string,
  stationId: string,
  partition: number,
  rows: readonly Row[],
): Buffer[] {
  const enc = new CopyEncoder(Math.min(chunkBytes, 4 << 20));
  const stationText = new CopyEncoder(256);
  stationText.text(station);
  stationText.raw('\t');
  stationText.text(stationId);
  const stationCols = Buffer.concat(stationText.finish());
  for (const r of rows) {
    if (r.rowKey !== undefined) {
      enc.text(r.rowKey);
      enc.raw('\t');
    }
    for (const c of r.cells ?? []) {
      if (c === null) enc.raw('\\N');
      else enc.text(c);
      enc.raw('\t');
    }
    const m = r.message;
    if (m.key === undefined) enc.raw('\\N');
    else enc.text(m.key);
    enc.raw('\t');
    enc.rawBytes(stationCols);
    enc.raw(`\t${partition}\t${m.offset}\t${iso(m.timestamp)}`);
    enc.endRow();
  }
  return enc.finish();
}

/** Layout schema: the parameters of one row of a multi-row INSERT, in the order of {@link encodeSchemaCopy}. */
export function schemaRowParams(station: string, stationId: string, partition: number, r: Row): unknown[] {
  const m = r.message;
  return [
    ...(r.rowKey === undefined ? [] : [r.rowKey]),
    ...(r.cells ?? []),
    m.key ?? null,
    station,
    stationId,
    partition,
    m.offset,
    iso(m.timestamp),
  ];
}

/** Encodes rows for COPY in the order of {@link columnsOf}. */
export function encodeCopy(
  config: PostgresSinkConfig,
  station: string,
  stationId: string,
  partition: number,
  rows: readonly Row[],
): Buffer[] {
  const enc = new CopyEncoder(Math.min(config.maxBytesPerStatement, 4 << 20));
  const tail = `\t${partition}\t`;
  const stationText = new CopyEncoder(256);
  stationText.text(station);
  stationText.raw('\t');
  stationText.text(stationId);
  const stationCols = Buffer.concat(stationText.finish());
  for (const r of rows) {
    const m = r.message;
    if (r.rowKey !== undefined) {
      enc.text(r.rowKey);
      enc.raw('\t');
    }
    if (m.key === undefined) enc.raw('\\N');
    else enc.text(m.key);
    enc.raw('\t');
    if (config.value === 'bytea') enc.bytea(m.value);
    else enc.bytes(m.value);
    enc.raw('\t');
    enc.text(headersJson(m.headers));
    enc.raw('\t');
    enc.rawBytes(stationCols);
    enc.raw(`${tail}${m.offset}\t${iso(m.timestamp)}`);
    enc.endRow();
  }
  return enc.finish();
}

let lastHeaders: object | undefined;
let lastJson = '{}';
/** JSON of a headers object (the runtime often hands the same empty object to every message). */
export function headersJson(h: Readonly<Record<string, string>>): string {
  if (h === lastHeaders) return lastJson;
  // Most messages carry no headers, each its own empty object.
  let empty = true;
  for (const _ in h) {
    empty = false;
    break;
  }
  if (empty) return '{}';
  lastHeaders = h;
  lastJson = JSON.stringify(h);
  return lastJson;
}

/** The parameters of one row of a multi-row INSERT, in the order of {@link columnsOf}. */
export function rowParams(config: PostgresSinkConfig, station: string, stationId: string, partition: number, r: Row): unknown[] {
  const m = r.message;
  const value = Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength);
  const out: unknown[] = [
    m.key ?? null,
    config.value === 'bytea' ? value : value.toString('utf8'),
    headersJson(m.headers),
    station,
    stationId,
    partition,
    m.offset,
    iso(m.timestamp),
  ];
  if (r.rowKey !== undefined) out.unshift(r.rowKey);
  return out;
}
