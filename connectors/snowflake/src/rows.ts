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

/** The raw mode's columns: the Snowflake Kafka connector's RECORD_METADATA / RECORD_CONTENT, split out. */
export const RAW_COLUMNS: Col[] = [
  { name: 'STATION', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: true },
  { name: 'PARTITION', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
  { name: 'OFFSET', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
  { name: 'TIMESTAMP', sqlType: 'TIMESTAMP_NTZ', cast: 'TIMESTAMP_NTZ', notNull: true },
  { name: 'KEY', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: false },
  { name: 'HEADERS', sqlType: 'VARIANT', cast: '', notNull: false },
  { name: 'VALUE', sqlType: 'VARIANT', cast: '', notNull: false },
];

const CAST: Record<string, string> = { NUMBER: 'NUMBER(38,0)', FLOAT: 'FLOAT', VARCHAR: 'VARCHAR', BOOLEAN: 'BOOLEAN', TIMESTAMP_NTZ: 'TIMESTAMP_NTZ', VARIANT: '' };

export function columnsOf(config: SnowflakeSinkConfig): Col[] {
  if (config.mode === 'raw') return RAW_COLUMNS;
  return [
    ...config.columns.map((c) => ({ name: c.name.toUpperCase(), sqlType: c.type === 'NUMBER' ? 'NUMBER(38,0)' : c.type, cast: CAST[c.type] ?? '', notNull: c.required })),
    { name: '_JUNCTION_STATION', sqlType: 'VARCHAR', cast: 'VARCHAR', notNull: true },
    { name: '_JUNCTION_PARTITION', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
    { name: '_JUNCTION_OFFSET', sqlType: 'NUMBER(38,0)', cast: 'NUMBER(38,0)', notNull: true },
  ];
}

/** Names of the station / partition / offset columns, by mode: the sink's record of what landed. */
export function metaColumns(config: SnowflakeSinkConfig): { station: string; partition: string; offset: string } {
  return config.mode === 'raw'
    ? { station: 'STATION', partition: 'PARTITION', offset: 'OFFSET' }
    : { station: '_JUNCTION_STATION', partition: '_JUNCTION_PARTITION', offset: '_JUNCTION_OFFSET' };
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The last timestamp formatted (messages of a batch mostly share their millisecond). */
let lastTs = NaN;
let lastTsText = '';

/** TIMESTAMP_NTZ text: UTC wall-clock time without the zone. */
function ntz(ms: number): string {
  if (ms !== lastTs) {
    lastTs = ms;
    lastTsText = new Date(ms).toISOString().slice(0, -1);
  }
  return lastTsText;
}

/**
 * One row as the positional array the INSERT's `VALUE[i]` picks from, or the reason the message can
 * never be one. The value has to be parsed here (it travels inside the JSON bind), so text that is
 * not JSON is refused locally; type errors are Snowflake's to find (its casts refuse the row).
 */
export function toRow(config: SnowflakeSinkConfig, station: string, partition: number, m: SinkMessage): { row: unknown[] } | { reject: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(m.value));
  } catch (err) {
    return { reject: `value is not JSON text (a VARIANT needs JSON): ${(err as Error).message}` };
  }
  if (config.mode === 'raw') {
    return { row: [station, partition, m.offset, ntz(m.timestamp), m.key ?? null, m.headers, parsed] };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { reject: 'value is not a JSON object, so it has no fields for mode columns' };
  const o = parsed as Record<string, unknown>;
  return { row: [...config.columns.map((c) => o[c.field ?? c.name] ?? null), station, partition, m.offset] };
}
