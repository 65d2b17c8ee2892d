/**
 * Mode `schema`: the table's columns from the station's schema — one column per top-level field, nested
 * values (records, arrays, maps, untyped JSON) as VARIANT, which Snowflake queries with paths
 * (`ADDR:city`) — plus the `_JUNCTION_*` columns exactly-once keys on.
 */
import type { FieldType, SchemaField } from '@junction/sdk-connector/schema';
import type { Col } from './rows.js';

/** Snowflake's type for a field: VARCHAR, NUMBER(38,0), FLOAT, BOOLEAN, BINARY, TIMESTAMP_TZ, DATE or VARIANT. */
export function snowflakeType(t: FieldType): string {
  switch (t.kind) {
    case 'string':
    case 'enum':
      return 'VARCHAR';
    case 'boolean':
      return 'BOOLEAN';
    case 'int':
    case 'long':
      return 'NUMBER(38,0)';
    case 'float':
    case 'double':
      return 'FLOAT';
    case 'bytes':
      return 'BINARY';
    case 'timestamp':
      return 'TIMESTAMP_TZ';
    case 'date':
      return 'DATE';
    default:
      return 'VARIANT';
  }
}

/** The table columns of a schema's fields (all nullable: a field a later version drops becomes NULL), meta columns last. */
export function schemaColumns(fields: readonly SchemaField[]): Col[] {
  return [
    ...fields.map((f) => {
      const sqlType = snowflakeType(f.type);
      return { name: f.name.toUpperCase(), sqlType, cast: sqlType === 'VARIANT' ? '' : sqlType, notNull: false };
    }),
    { name: '_JUNCTION_STATION', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: true },
    { name: '_JUNCTION_PARTITION', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
    { name: '_JUNCTION_OFFSET', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
    { name: '_JUNCTION_STATION_ID', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: false },
  ];
}

/** A type as DESCRIBE TABLE shows it, reduced to what decides compatibility (VARCHAR(16777216) → VARCHAR, TIMESTAMP_TZ(9) → TIMESTAMP_TZ). */
export function typeFamily(type: string): string {
  const t = type.toUpperCase().replace(/\s+/g, '');
  const base = t.replace(/\(.*\)/, '');
  if (['VARCHAR', 'STRING', 'TEXT', 'CHAR', 'CHARACTER'].includes(base)) return 'VARCHAR';
  if (['NUMBER', 'DECIMAL', 'NUMERIC'].includes(base)) return /,0\)$/.test(t) || !t.includes(',') ? 'NUMBER(38,0)' : t;
  if (['INT', 'INTEGER', 'BIGINT', 'SMALLINT', 'TINYINT', 'BYTEINT'].includes(base)) return 'NUMBER(38,0)';
  if (['FLOAT', 'FLOAT4', 'FLOAT8', 'DOUBLE', 'DOUBLEPRECISION', 'REAL'].includes(base)) return 'FLOAT';
  if (['BINARY', 'VARBINARY'].includes(base)) return 'BINARY';
  if (base === 'TIMESTAMP' || base === 'DATETIME') return 'TIMESTAMP_NTZ';
  return base;
}

/** A decoded row's value as the JSON bind carries it: Dates as ISO text (DATE as the day), bytes as hex (BINARY) or base64 (inside VARIANT). */
export function bindValue(v: unknown, t: FieldType): unknown {
  if (v === null || v === undefined) return null;
  if (t.kind === 'date' && v instanceof Date) return v.toISOString().slice(0, 10);
  if (t.kind === 'bytes' && v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex').toUpperCase();
  return jsonable(v);
}

function jsonable(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (Array.isArray(v)) return v.map(jsonable);
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, jsonable(x)]));
}
