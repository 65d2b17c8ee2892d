/** Messages → SQL row literals of a multi-row INSERT, and the table's columns by mode. */
import type { PartitionRef, SinkMessage } from '@junction/sdk-connector';
import type { FireboltSinkConfig } from './config.js';

export interface Col {
  name: string;
  sqlType: string;
  notNull: boolean;
}

/** Quotes an identifier, lower-cased as Firebolt stores unquoted names. */
export const q = (name: string): string => `"${name.toLowerCase().replaceAll('"', '""')}"`;

/**
 * A SQL literal. Firebolt's strings are standard (a backslash is an ordinary character), so doubling
 * the quote is the whole escape — the same rule firebolt-sdk's own formatter applies to parameters.
 * Formatting here rather than through `?` parameters: the SDK substitutes those client-side anyway,
 * with a cost that grows with the square of their number.
 */
export function lit(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : `'${String(v)}'`;
  if (typeof v === 'string') return `'${v.replaceAll("'", "''")}'`;
  return lit(JSON.stringify(v));
}

/**
 * A value of a row of the INSERT's VALUES list: always text (or NULL), cast to its column's type in the
 * SELECT over the list. One type per VALUES column whatever the rows hold, so a value of the wrong
 * type is a cast error of its own row (SQLSTATE 22…, dead-lettered), never a type clash of the list.
 */
export function textLit(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'string') return `'${v.replaceAll("'", "''")}'`;
  if (typeof v === 'number' || typeof v === 'boolean') return `'${String(v)}'`;
  return textLit(JSON.stringify(v));
}

/**
 * The raw mode's columns: the Snowflake Kafka connector's RECORD_METADATA / RECORD_CONTENT, split out.
 * station_id (the station's incarnation) comes last: a table made before it gets it appended by
 * `ALTER TABLE … ADD COLUMN`, so new tables have it in the same place; nullable for that reason.
 */
export const RAW_COLUMNS: Col[] = [
  { name: 'station', sqlType: 'TEXT', notNull: true },
  { name: 'partition', sqlType: 'INTEGER', notNull: true },
  { name: 'offset', sqlType: 'BIGINT', notNull: true },
  { name: 'timestamp', sqlType: 'TIMESTAMP', notNull: true },
  { name: 'key', sqlType: 'TEXT', notNull: false },
  { name: 'headers', sqlType: 'TEXT', notNull: false },
  { name: 'value', sqlType: 'TEXT', notNull: false },
  { name: 'station_id', sqlType: 'TEXT', notNull: false },
];

export function columnsOf(config: FireboltSinkConfig): Col[] {
  if (config.mode === 'raw') return RAW_COLUMNS;
  // Mode schema: from the station's schema when the sink opens (schema-table.ts).
  if (config.mode === 'schema') return [];
  return [
    ...config.columns.map((c) => ({ name: c.name.toLowerCase(), sqlType: c.type, notNull: c.required })),
    { name: '_junction_station', sqlType: 'TEXT', notNull: true },
    { name: '_junction_partition', sqlType: 'INTEGER', notNull: true },
    { name: '_junction_offset', sqlType: 'BIGINT', notNull: true },
    { name: '_junction_station_id', sqlType: 'TEXT', notNull: false },
  ];
}

/** The columns that record where a row came from, by mode: the sink's record of what landed. */
export interface MetaColumns {
  station: string;
  /** The station's incarnation (`SinkBatch.stationId`); NULL in rows written before the column existed. */
  stationId: string;
  partition: string;
  offset: string;
}

/** Names of the station / station id / partition / offset columns, by mode. */
export function metaColumns(config: FireboltSinkConfig): MetaColumns {
  return config.mode === 'raw'
    ? { station: 'station', stationId: 'station_id', partition: 'partition', offset: 'offset' }
    : { station: '_junction_station', stationId: '_junction_station_id', partition: '_junction_partition', offset: '_junction_offset' };
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Firebolt's TIMESTAMP text, UTC wall-clock time: `2023-11-14 22:13:20.007`. */
export const timestampText = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').slice(0, -1);

/**
 * One row as its tuple `('…', …)` of text literals (see {@link textLit}) in the order of
 * {@link columnsOf}, or the reason the message can never be one. Type errors are Firebolt's to find (the
 * INSERT's casts refuse the statement); JSON is checked here because a TEXT column takes anything, and
 * JSON functions on the table need JSON.
 */
export function toRow(config: FireboltSinkConfig, ref: PartitionRef, m: SinkMessage): { tuple: string } | { reject: string } {
  const { station, stationId, partition } = ref;
  let text: string;
  let parsed: unknown;
  try {
    text = decoder.decode(m.value);
  } catch {
    return { reject: 'value is not UTF-8 text' };
  }
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { reject: `value is not JSON text: ${(err as Error).message}` };
  }
  if (config.mode === 'raw') {
    return {
      tuple: `(${[station, partition, m.offset, timestampText(m.timestamp), m.key ?? null, JSON.stringify(m.headers), text, stationId].map(textLit).join(',')})`,
    };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { reject: 'value is not a JSON object, so it has no fields for mode columns' };
  const o = parsed as Record<string, unknown>;
  const values = config.columns.map((c) => {
    const v = o[c.field ?? c.name];
    // A TEXT column takes a scalar's text; other types get the JSON value as is, for Firebolt to cast or refuse.
    return c.type === 'TEXT' && (typeof v === 'number' || typeof v === 'boolean') ? String(v) : v;
  });
  return { tuple: `(${[...values, station, partition, m.offset, stationId].map(textLit).join(',')})` };
}
