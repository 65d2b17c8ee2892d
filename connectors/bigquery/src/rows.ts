/** Messages → BigQuery rows (insertAll JSON) and the table schema of each mode. */
import type { PartitionRef, SinkMessage } from '@junction/sdk-connector';
import type { BigQuerySinkConfig } from './config.js';

export interface Field {
  name: string;
  type: string;
  mode: 'NULLABLE' | 'REQUIRED';
}

/**
 * The raw mode's columns, like the Snowflake Kafka connector's RECORD_METADATA / RECORD_CONTENT, split
 * out. station_id (the station's incarnation) comes last: a table made before it gets it appended
 * (`ALTER TABLE … ADD COLUMN`), so new tables have it in the same place; NULLABLE for that reason.
 */
export const RAW_SCHEMA: Field[] = [
  { name: 'station', type: 'STRING', mode: 'REQUIRED' },
  { name: 'partition', type: 'INT64', mode: 'REQUIRED' },
  { name: 'offset', type: 'INT64', mode: 'REQUIRED' },
  { name: 'timestamp', type: 'TIMESTAMP', mode: 'REQUIRED' },
  { name: 'key', type: 'STRING', mode: 'NULLABLE' },
  { name: 'headers', type: 'JSON', mode: 'NULLABLE' },
  { name: 'value', type: 'JSON', mode: 'NULLABLE' },
  { name: 'station_id', type: 'STRING', mode: 'NULLABLE' },
];

/** The columns that record where a row came from, by mode: the sink's record of what landed. */
export interface MetaColumns {
  station: string;
  /** The station's incarnation (`SinkBatch.stationId`); NULL in rows written before the column existed. */
  stationId: string;
  partition: string;
  offset: string;
}

/** Names of the station / station id / partition / offset columns, by mode. */
export function metaColumns(config: BigQuerySinkConfig): MetaColumns {
  return config.mode === 'raw'
    ? { station: 'station', stationId: 'station_id', partition: 'partition', offset: 'offset' }
    : { station: '_junction_station', stationId: '_junction_station_id', partition: '_junction_partition', offset: '_junction_offset' };
}

export function schemaOf(config: BigQuerySinkConfig): Field[] {
  if (config.mode === 'raw') return RAW_SCHEMA;
  return [
    ...config.columns.map((c): Field => ({ name: c.name, type: c.type, mode: c.required ? 'REQUIRED' : 'NULLABLE' })),
    { name: '_junction_station', type: 'STRING', mode: 'REQUIRED' },
    { name: '_junction_partition', type: 'INT64', mode: 'REQUIRED' },
    { name: '_junction_offset', type: 'INT64', mode: 'REQUIRED' },
    { name: '_junction_station_id', type: 'STRING', mode: 'NULLABLE' },
  ];
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** A row for insertAll, or the reason the message can never be one (answered deadLetter). */
export function toRow(
  config: BigQuerySinkConfig,
  ref: PartitionRef,
  m: SinkMessage,
): { row: Record<string, unknown> } | { reject: string } {
  const { station, stationId, partition } = ref;
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
        station,
        partition,
        offset: m.offset,
        timestamp: new Date(m.timestamp).toISOString(),
        key: m.key ?? null,
        headers: JSON.stringify(m.headers),
        value: text,
        station_id: stationId,
      },
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { reject: `value is not JSON: ${(err as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { reject: 'value is not a JSON object, so it has no fields for mode columns' };
  const obj = parsed as Record<string, unknown>;
  const row: Record<string, unknown> = {
    _junction_station: station,
    _junction_partition: partition,
    _junction_offset: m.offset,
    _junction_station_id: stationId,
  };
  for (const c of config.columns) {
    const v = obj[c.field ?? c.name];
    if (v === undefined || v === null) continue;
    // Values go as the message has them: BigQuery converts or refuses them, in its own words.
    row[c.name] = c.type === 'JSON' ? JSON.stringify(v) : typeof v === 'object' ? JSON.stringify(v) : v;
  }
  return { row };
}
