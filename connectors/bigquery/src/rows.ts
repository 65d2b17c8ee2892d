/** Messages → BigQuery rows (insertAll JSON) and the table schema of each mode. */
import type { SinkMessage } from '@junction/sdk-connector';
import type { BigQuerySinkConfig } from './config.js';

export interface Field { name: string; type: string; mode: 'NULLABLE' | 'REQUIRED' }

/** The raw mode's columns, like the Snowflake Kafka connector's RECORD_METADATA / RECORD_CONTENT, split out. */
export const RAW_SCHEMA: Field[] = [
  { name: 'station', type: 'STRING', mode: 'REQUIRED' },
  { name: 'partition', type: 'INT64', mode: 'REQUIRED' },
  { name: 'offset', type: 'INT64', mode: 'REQUIRED' },
  { name: 'timestamp', type: 'TIMESTAMP', mode: 'REQUIRED' },
  { name: 'key', type: 'STRING', mode: 'NULLABLE' },
  { name: 'headers', type: 'JSON', mode: 'NULLABLE' },
  { name: 'value', type: 'JSON', mode: 'NULLABLE' },
];

/** Names of the station / partition / offset columns, by mode: the sink's record of what landed. */
export function metaColumns(config: BigQuerySinkConfig): { station: string; partition: string; offset: string } {
  return config.mode === 'raw'
    ? { station: 'station', partition: 'partition', offset: 'offset' }
    : { station: '_junction_station', partition: '_junction_partition', offset: '_junction_offset' };
}

export function schemaOf(config: BigQuerySinkConfig): Field[] {
  if (config.mode === 'raw') return RAW_SCHEMA;
  return [
    ...config.columns.map((c): Field => ({ name: c.name, type: c.type, mode: c.required ? 'REQUIRED' : 'NULLABLE' })),
    { name: '_junction_station', type: 'STRING', mode: 'REQUIRED' },
    { name: '_junction_partition', type: 'INT64', mode: 'REQUIRED' },
    { name: '_junction_offset', type: 'INT64', mode: 'REQUIRED' },
  ];
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** A row for insertAll, or the reason the message can never be one (answered deadLetter). */
export function toRow(config: BigQuerySinkConfig, station: string, partition: number, m: SinkMessage): { row: Record<string, unknown> } | { reject: string } {
  let text: string;
  try {
    text = decoder.decode(m.value);
  } catch {
    return { reject: 'value is not valid UTF-8 text, so it cannot be JSON' };
  }
  if (config.mode === 'raw') {
    // JSON columns take JSON text; BigQuery itself refuses text that is not JSON (its reason is dead-lettered).
    return {
      row: {
        station, partition, offset: m.offset, timestamp: new Date(m.timestamp).toISOString(),
        key: m.key ?? null, headers: JSON.stringify(m.headers), value: text,
      },
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { reject: `value is not JSON: ${(err as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { reject: 'value is not a JSON object, so it has no fields for mode columns' };
  const obj = parsed as Record<string, unknown>;
  const row: Record<string, unknown> = { _junction_station: station, _junction_partition: partition, _junction_offset: m.offset };
  for (const c of config.columns) {
    const v = obj[c.field ?? c.name];
    if (v === undefined || v === null) continue;
    // Values go as the message has them: BigQuery converts or refuses them, in its own words.
    row[c.name] = c.type === 'JSON' ? JSON.stringify(v) : typeof v === 'object' ? JSON.stringify(v) : v;
  }
  return { row };
}
