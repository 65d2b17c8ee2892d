/**
 * Mode `schema`: the table's schema from the station's schema — one column per top-level field, records
 * as RECORD (STRUCT) columns with their own fields, arrays as REPEATED columns, maps as REPEATED RECORD
 * {key, value} (as BigQuery's own Kafka connector lays them out), untyped JSON as JSON — plus the
 * `_junction_*` columns exactly-once keys on. And how an existing table differs from it.
 */
import type { FieldType, SchemaField } from '@junction/sdk-connector/schema';

/** A field of a BigQuery table schema (tables.get / tables.insert / tables.patch). */
export interface TableField {
  name: string;
  type: string;
  mode: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  fields?: TableField[];
}

const SCALAR: Partial<Record<FieldType['kind'], string>> = {
  string: 'STRING',
  enum: 'STRING',
  boolean: 'BOOL',
  int: 'INT64',
  long: 'INT64',
  float: 'FLOAT64',
  double: 'FLOAT64',
  bytes: 'BYTES',
  timestamp: 'TIMESTAMP',
  date: 'DATE',
  json: 'JSON',
};

function field(name: string, t: FieldType, mode: 'NULLABLE' | 'REPEATED', depth: number): TableField {
  if (depth > 14) return { name, type: 'JSON', mode };
  switch (t.kind) {
    case 'record':
      if (t.fields.length === 0) return { name, type: 'JSON', mode };
      return { name, type: 'RECORD', mode, fields: t.fields.map((f) => field(f.name, f.type, 'NULLABLE', depth + 1)) };
    case 'array':
      // BigQuery has no arrays of arrays: an inner array (or an array in a repeated column) is JSON.
      if (mode === 'REPEATED' || t.items.kind === 'array') return { name, type: 'JSON', mode };
      return field(name, t.items, 'REPEATED', depth + 1);
    case 'map':
      if (mode === 'REPEATED') return { name, type: 'JSON', mode };
      return {
        name,
        type: 'RECORD',
        mode: 'REPEATED',
        fields: [{ name: 'key', type: 'STRING', mode: 'NULLABLE' }, field('value', t.values, 'NULLABLE', depth + 1)],
      };
    default:
      return { name, type: SCALAR[t.kind] ?? 'JSON', mode };
  }
}

/** The table schema of a station schema's fields, the meta columns last. */
export function tableFields(fields: readonly SchemaField[]): TableField[] {
  return [
    ...fields.map((f) => field(f.name, f.type, 'NULLABLE', 0)),
    { name: '_junction_station', type: 'STRING', mode: 'REQUIRED' },
    { name: '_junction_partition', type: 'INT64', mode: 'REQUIRED' },
    { name: '_junction_offset', type: 'INT64', mode: 'REQUIRED' },
    { name: '_junction_station_id', type: 'STRING', mode: 'NULLABLE' },
  ];
}

/** Legacy SQL names the same types differently (tables.get may answer either). */
const FAMILY: Record<string, string> = { INTEGER: 'INT64', FLOAT: 'FLOAT64', BOOLEAN: 'BOOL', STRUCT: 'RECORD' };
const family = (t: string): string => FAMILY[t.toUpperCase()] ?? t.toUpperCase();

/**
 * How `existing` must change to take `wanted`: the merged schema (existing fields kept as they are, in
 * their order; wanted fields they lack appended, at any depth — what tables.patch accepts), the paths
 * added, and the problems that cannot be applied (a type or repetition that differs, a new REQUIRED field).
 */
export function mergeFields(
  existing: readonly TableField[],
  wanted: readonly TableField[],
  prefix = '',
): { merged: TableField[]; added: string[]; problems: string[] } {
  const merged: TableField[] = existing.map((f) => ({ ...f }));
  const added: string[] = [];
  const problems: string[] = [];
  for (const w of wanted) {
    const path = `${prefix}${w.name}`;
    const i = merged.findIndex((f) => f.name.toLowerCase() === w.name.toLowerCase());
    if (i < 0) {
      if (w.mode === 'REQUIRED') problems.push(`the table lacks the REQUIRED column ${path}`);
      else {
        merged.push(w);
        added.push(path);
      }
      continue;
    }
    const e = merged[i]!;
    if (family(e.type) !== family(w.type)) {
      problems.push(`column ${path} is ${family(e.type)} in the table but the schema needs ${family(w.type)}`);
      continue;
    }
    if ((e.mode === 'REPEATED') !== (w.mode === 'REPEATED')) {
      problems.push(`column ${path} is ${e.mode ?? 'NULLABLE'} in the table but the schema needs ${w.mode}`);
      continue;
    }
    if (family(w.type) === 'RECORD') {
      const sub = mergeFields(e.fields ?? [], w.fields ?? [], `${path}.`);
      merged[i] = { ...e, fields: sub.merged };
      added.push(...sub.added);
      problems.push(...sub.problems);
    }
  }
  return { merged, added, problems };
}

/** A decoded value as insertAll's JSON takes it for its column: Dates as ISO text (DATE as the day), bytes in base64, maps as key/value entries, JSON columns as text. */
export function rowValue(v: unknown, t: FieldType, f: TableField): unknown {
  if (v === null || v === undefined) return f.mode === 'REPEATED' ? [] : null;
  if (f.type === 'JSON') return JSON.stringify(jsonable(v));
  switch (t.kind) {
    case 'date':
      return v instanceof Date ? v.toISOString().slice(0, 10) : v;
    case 'timestamp':
      return v instanceof Date ? v.toISOString() : v;
    case 'bytes':
      return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : v;
    case 'record': {
      const out: Record<string, unknown> = {};
      for (const sub of t.fields) {
        const sf = f.fields?.find((x) => x.name.toLowerCase() === sub.name.toLowerCase());
        if (sf) out[sf.name] = rowValue((v as Record<string, unknown>)[sub.name], sub.type, sf);
      }
      return out;
    }
    case 'array':
      return (v as unknown[]).map((x) => rowValue(x, t.items, { ...f, mode: 'NULLABLE' }));
    case 'map': {
      const vf = f.fields?.find((x) => x.name === 'value') ?? { name: 'value', type: 'JSON', mode: 'NULLABLE' as const };
      return Object.entries(v as Record<string, unknown>).map(([key, x]) => ({ key, value: rowValue(x, t.values, vf) }));
    }
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
