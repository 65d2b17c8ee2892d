/**
 * Mode `schema`: the table's columns from the station's schema — one column per top-level field, nested
 * values (records, arrays, maps, untyped JSON) as TEXT holding JSON (Firebolt has no struct type; its
 * JSON functions read the text) — plus the `_junction_*` columns exactly-once keys on.
 */
import type { FieldType, SchemaField } from '@junction/sdk-connector/schema';
import type { Col } from './rows.js';

/** Firebolt's type for a field. */
export function fireboltType(t: FieldType): string {
  switch (t.kind) {
    case 'string':
    case 'enum':
      return 'TEXT';
    case 'boolean':
      return 'BOOLEAN';
    case 'int':
      return 'INTEGER';
    case 'long':
      return 'BIGINT';
    case 'float':
      return 'REAL';
    case 'double':
      return 'DOUBLE PRECISION';
    case 'bytes':
      return 'BYTEA';
    case 'timestamp':
      return 'TIMESTAMPTZ';
    case 'date':
      return 'DATE';
    default:
      return 'TEXT';
  }
}

/** The table columns of a schema's fields (all nullable: a field a later version drops becomes NULL), meta columns last. */
export function schemaColumns(fields: readonly SchemaField[]): Col[] {
  return [
    ...fields.map((f) => ({ name: f.name.toLowerCase(), sqlType: fireboltType(f.type), notNull: false })),
    { name: '_junction_station', sqlType: 'TEXT', notNull: true },
    { name: '_junction_partition', sqlType: 'INTEGER', notNull: true },
    { name: '_junction_offset', sqlType: 'BIGINT', notNull: true },
    { name: '_junction_station_id', sqlType: 'TEXT', notNull: false },
  ];
}

/** A type as information_schema.columns names it, reduced to compare with ours ('timestamptz' → TIMESTAMPTZ, 'int' → INTEGER). */
export function typeFamily(type: string): string {
  const t = type
    .toUpperCase()
    .replace(/\s+/g, ' ')
    .replace(/ NULL$/, '')
    .trim();
  if (t === 'INT' || t === 'INT4') return 'INTEGER';
  if (t === 'LONG' || t === 'INT8') return 'BIGINT';
  if (t === 'DOUBLE' || t === 'FLOAT8') return 'DOUBLE PRECISION';
  if (t === 'FLOAT' || t === 'FLOAT4') return 'REAL';
  if (t === 'STRING' || t === 'VARCHAR') return 'TEXT';
  if (t === 'BOOL') return 'BOOLEAN';
  if (t === 'TIMESTAMP WITH TIME ZONE') return 'TIMESTAMPTZ';
  if (t === 'TIMESTAMPNTZ' || t === 'TIMESTAMP WITHOUT TIME ZONE') return 'TIMESTAMP';
  return t;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** A decoded value as the text its column's cast reads: TIMESTAMPTZ in UTC with +00, DATE as the day, BYTEA as \x hex, nested as JSON. */
export function columnText(v: unknown, t: FieldType): unknown {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case 'timestamp': {
      const d = v as Date;
      return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}+00`;
    }
    case 'date':
      return (v as Date).toISOString().slice(0, 10);
    case 'bytes':
      return `\\x${Buffer.from((v as Uint8Array).buffer, (v as Uint8Array).byteOffset, (v as Uint8Array).byteLength).toString('hex')}`;
    case 'record':
    case 'array':
    case 'map':
    case 'json':
      return JSON.stringify(jsonable(v));
    default:
      return v;
  }
}

function jsonable(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (Array.isArray(v)) return v.map(jsonable);
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, jsonable(x)]));
}
