/**
 * Layout `schema`: the table from the station's schema — one column per top-level field of the bound
 * version, typed as PostgreSQL does best (nested records, arrays, maps and untyped JSON as jsonb), all
 * nullable — plus the `_junction_*` columns (the message's place and key). How an existing table differs
 * from it is the SDK's `compareColumns`; what may be applied (nullable columns added) is decided here.
 */
import { Buffer } from 'node:buffer';
import { compareColumns, type ColumnLike, type FieldType, type SchemaField } from '@junction/sdk-connector/schema';
import { q } from './rows.js';

/** PostgreSQL's type for a field, spelled as `format_type()` answers (so a table's columns compare as text). */
export function pgType(t: FieldType): string {
  switch (t.kind) {
    case 'string':
    case 'enum':
      return 'text';
    case 'boolean':
      return 'boolean';
    case 'int':
      return 'integer';
    case 'long':
      return 'bigint';
    case 'float':
      return 'real';
    case 'double':
      return 'double precision';
    case 'bytes':
      return 'bytea';
    case 'timestamp':
      return 'timestamp with time zone';
    case 'date':
      return 'date';
    default:
      return 'jsonb';
  }
}

/** The columns the sink fills after the fields, in COPY / INSERT order. */
export const SCHEMA_META_COLUMNS: readonly ColumnLike[] = [
  { name: '_junction_key', type: 'text', nullable: true },
  { name: '_junction_station', type: 'text', nullable: false },
  { name: '_junction_station_id', type: 'text', nullable: false },
  { name: '_junction_partition', type: 'integer', nullable: false },
  { name: '_junction_offset', type: 'bigint', nullable: false },
  { name: '_junction_timestamp', type: 'timestamp with time zone', nullable: false },
];

const ROW_KEY: ColumnLike = { name: 'row_key', type: 'text', nullable: false };

/** The table a schema's fields ask for: `row_key` first in upsert mode, the fields, the meta columns. */
export function schemaColumns(fields: readonly SchemaField[], upsert: boolean): ColumnLike[] {
  return [
    ...(upsert ? [ROW_KEY] : []),
    ...fields.map((f) => ({ name: f.name, type: pgType(f.type), nullable: true })),
    ...SCHEMA_META_COLUMNS,
  ];
}

/** Field names the table cannot take: longer than PostgreSQL's 63 bytes, or one of the sink's own columns. */
export function unusableNames(fields: readonly SchemaField[]): string[] {
  const own = new Set([ROW_KEY.name, ...SCHEMA_META_COLUMNS.map((c) => c.name)]);
  const out: string[] = [];
  for (const f of fields) {
    if (Buffer.byteLength(f.name) > 63) out.push(`field ${f.name} is longer than PostgreSQL's 63-byte names`);
    else if (own.has(f.name)) out.push(`field ${f.name} has the name of a column the sink fills itself`);
  }
  return out;
}

/** CREATE TABLE IF NOT EXISTS of the columns (row_key the primary key). */
export function createSchemaTableSql(fq: string, columns: readonly ColumnLike[]): string {
  const defs = columns.map(
    (c) => `${q(c.name)} ${c.type}${c.name === ROW_KEY.name ? ' PRIMARY KEY' : c.nullable === false ? ' NOT NULL' : ''}`,
  );
  return `CREATE TABLE IF NOT EXISTS ${fq} (${defs.join(', ')})`;
}

/** A table column as the catalog describes it (`pg_attribute`). */
export interface TableColumn extends ColumnLike {
  readonly hasDefault: boolean;
}

/**
 * What following the schema takes: the columns to add (nullable ones a newer version brings), or the
 * problems that keep the table from following (a type that differs, a NOT NULL column the table lacks or
 * that the schema does not fill, new fields with `evolve` off, names it cannot take).
 */
export function planTable(
  existing: readonly TableColumn[],
  wanted: readonly ColumnLike[],
  fields: readonly SchemaField[],
  version: number,
  evolve: boolean,
): { add: ColumnLike[]; problems: string[] } {
  const drift = compareColumns(existing, wanted);
  const problems = [...unusableNames(fields)];
  for (const c of drift.changed) problems.push(`column ${c.name} is ${c.from} in the table but schema version ${version} needs ${c.to}`);
  if (drift.required.length > 0) problems.push(`the table lacks the NOT NULL column(s) ${drift.required.join(', ')} the sink fills`);
  const left = new Set(drift.missing);
  for (const c of existing) {
    if (left.has(c.name) && c.nullable === false && !c.hasDefault)
      problems.push(`column ${c.name} is NOT NULL without a default and schema version ${version} has no such field`);
  }
  const add = drift.added.filter((c) => c.nullable !== false);
  if (add.length > 0 && !evolve)
    problems.push(`the table lacks column(s) ${add.map((c) => c.name).join(', ')} of schema version ${version} and evolve is off`);
  return { add, problems };
}

/**
 * A decoded field value as PostgreSQL's text input for its column (what COPY's text format and an
 * untyped parameter both take), or null. Bytes as `\x` hex, instants as ISO 8601 (UTC), days as
 * YYYY-MM-DD, jsonb as JSON (bytes inside it in base64).
 */
export function pgText(v: unknown, t: FieldType): string | null {
  if (v === null || v === undefined) return null;
  switch (pgType(t)) {
    case 'boolean':
      return v === true ? 't' : v === false ? 'f' : null;
    case 'integer':
    case 'bigint':
    case 'real':
    case 'double precision':
      return typeof v === 'number'
        ? Number.isNaN(v)
          ? 'NaN'
          : v === Infinity
            ? 'Infinity'
            : v === -Infinity
              ? '-Infinity'
              : String(v)
        : null;
    case 'bytea':
      return v instanceof Uint8Array ? `\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}` : null;
    case 'timestamp with time zone':
      return v instanceof Date && !Number.isNaN(v.getTime()) ? v.toISOString() : null;
    case 'date':
      return v instanceof Date && !Number.isNaN(v.getTime()) ? v.toISOString().slice(0, 10) : null;
    case 'jsonb':
      return JSON.stringify(jsonable(v));
    default:
      return typeof v === 'string' ? v : String(v);
  }
}

function jsonable(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return typeof v === 'bigint' ? Number(v) : v;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (Array.isArray(v)) return v.map(jsonable);
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, jsonable(x)]));
}
