/** Messages → Snowflake rows (positional arrays inside one JSON bind) and the table's columns by mode. */
import type { SinkMessage } from '@junction/sdk-connector';
import type { SnowflakeSinkConfig } from './config.js';

export interface Col {
  name: string;
  sqlType: string;
  /** The cast applied to `VALUE[i]` in the INSERT … SELECT; empty for VARIANT (kept as is). */
  cast: string;
  notNull: boolean;
}

/** Quotes an identifier, upper-cased as Snowflake stores unquoted names. */
export const q = (name: string): string => `"${name.toUpperCase().replaceAll('"', '""')}"`;

/**
 * The raw mode's columns: the Snowflake Kafka connector's RECORD_METADATA / RECORD_CONTENT, split out.
 * STATION_ID (the station's incarnation) comes last: a table made before it gets it appended by
 * `ALTER TABLE … ADD COLUMN`, so new tables have it in the same place. It is nullable for that reason.
 */
export const RAW_COLUMNS: Col[] = [
  { name: 'STATION', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: true },
  { name: 'PARTITION', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
  { name: 'OFFSET', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
  { name: 'TIMESTAMP', sqlType: 'TIMESTAMP_NTZ', cast: 'TIMESTAMP_NTZ', notNull: true },
  { name: 'KEY', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: false },
  { name: 'HEADERS', sqlType: 'VARIANT', cast: '', notNull: false },
  { name: 'VALUE', sqlType: 'VARIANT', cast: '', notNull: false },
  { name: 'STATION_ID', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: false },
];

const CAST: Record<string, string> = {
  NUMBER: 'NUMBER(38,0)',
  FLOAT: 'FLOAT',
  VARCHAR: 'VARCHAR',
  BOOLEAN: 'BOOLEAN',
  TIMESTAMP_NTZ: 'TIMESTAMP_NTZ',
  VARIANT: '',
};

export function columnsOf(config: SnowflakeSinkConfig): Col[] {
  if (config.mode === 'raw') return RAW_COLUMNS;
  // Mode schema: from the station's schema when the sink opens (schema-table.ts); meta columns only until then.
  if (config.mode === 'schema') return [];
  return [
    ...config.columns.map((c) => ({
      name: c.name.toUpperCase(),
      sqlType: c.type === 'NUMBER' ? 'NUMBER(38,0)' : c.type,
      cast: CAST[c.type] ?? '',
      notNull: c.required,
    })),
    { name: '_JUNCTION_STATION', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: true },
    { name: '_JUNCTION_PARTITION', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
    { name: '_JUNCTION_OFFSET', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
    { name: '_JUNCTION_STATION_ID', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: false },
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
export function metaColumns(config: SnowflakeSinkConfig): MetaColumns {
  return config.mode === 'raw'
    ? { station: 'STATION', stationId: 'STATION_ID', partition: 'PARTITION', offset: 'OFFSET' }
    : { station: '_JUNCTION_STATION', stationId: '_JUNCTION_STATION_ID', partition: '_JUNCTION_PARTITION', offset: '_JUNCTION_OFFSET' };
}

const decoder = new TextDecoder('utf-8', { fatal: true });

const DAY_MS = 86_400_000;
/** The day of the last timestamp formatted, as `YYYY-MM-DDT`, and the last timestamp and its text. */
let dayStart = NaN;
let dayText = '';
let lastTs = NaN;
let lastTsText = '';

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));
const pad3 = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n));

/**
 * TIMESTAMP_NTZ text (`toISOString()` without the `Z`: UTC wall-clock time) of an integral ms
 * timestamp: the date part through Date once per day, the time of day by arithmetic — a Date and
 * its ISO string per row cost more than the rest of the row.
 */
export function ntz(ms: number): string {
  if (ms === lastTs) return lastTsText;
  if (!Number.isSafeInteger(ms)) return new Date(ms).toISOString().slice(0, -1);
  const day = Math.floor(ms / DAY_MS) * DAY_MS;
  if (day !== dayStart) {
    dayStart = day;
    dayText = new Date(day).toISOString().slice(0, -13);
  }
  let r = ms - day;
  const h = Math.floor(r / 3_600_000);
  r -= h * 3_600_000;
  const m = Math.floor(r / 60_000);
  r -= m * 60_000;
  const sec = Math.floor(r / 1000);
  lastTs = ms;
  lastTsText = `${dayText}${pad2(h)}:${pad2(m)}:${pad2(sec)}.${pad3(r - sec * 1000)}`;
  return lastTsText;
}

/**
 * Whether a column takes the same value in every row of a statement — station, station id, partition —
 * so the INSERT binds it once (`?`) instead of each row of the JSON bind carrying it.
 */
export function constantColumn(meta: MetaColumns, name: string): 'station' | 'stationId' | 'partition' | undefined {
  return name === meta.station ? 'station' : name === meta.stationId ? 'stationId' : name === meta.partition ? 'partition' : undefined;
}

/**
 * One row as the positional array the INSERT's `VALUE[i]` picks from — the table's columns in order
 * without the {@link constantColumn}s, which the statement binds once — or the reason the message can
 * never be one. The value has to be parsed here (it travels inside the JSON bind), so text that is
 * not JSON is refused locally; type errors are Snowflake's to find (its casts refuse the row).
 */
export function toRow(config: SnowflakeSinkConfig, m: SinkMessage): { row: unknown[] } | { reject: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(m.value));
  } catch (err) {
    return { reject: `value is not JSON text (a VARIANT needs JSON): ${(err as Error).message}` };
  }
  if (config.mode === 'raw') {
    return { row: [m.offset, ntz(m.timestamp), m.key ?? null, m.headers, parsed] };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { reject: 'value is not a JSON object, so it has no fields for mode columns' };
  const o = parsed as Record<string, unknown>;
  return { row: [...config.columns.map((c) => o[c.field ?? c.name] ?? null), m.offset] };
}
