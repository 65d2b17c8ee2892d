/**
 * What an object holds and how to read it back. The sink writes the spec into each object's metadata
 * (`x-amz-meta-junction-format`), so a reader (the S3 source, a tool) needs no config to decode it.
 */

/** Message metadata a format may carry beside the value. */
export const META_FIELDS = ['offset', 'timestamp', 'key', 'headers'] as const;
export type MetaField = (typeof META_FIELDS)[number];

/**
 * - `jsonl`: one JSON object per line, the chosen metadata fields then `value` (as JSON, or as a string
 *   — base64 with `"base64":true` when not UTF-8). With value `json` and no fields, each line is the value itself.
 * - `parquet`: one row per message; columns from the JSON value's top-level fields, plus `_offset`,
 *   `_timestamp`, `_key`, `_headers` for the chosen fields.
 * - `raw`: each value's bytes followed by `separator`.
 * - `lines` (read only): plain JSON Lines written by anyone; each line's bytes are a value.
 */
export type FormatSpec =
  | { type: 'jsonl'; value: 'json' | 'string'; fields: MetaField[] }
  | { type: 'parquet'; fields: MetaField[] }
  | { type: 'raw'; separator: string }
  | { type: 'lines' };

/** The spec as an object-metadata value (ASCII): `jsonl;value=json;fields=offset,key`. */
export function formatToMetadata(spec: FormatSpec): string {
  switch (spec.type) {
    case 'jsonl':
      return `jsonl;value=${spec.value};fields=${spec.fields.join(',')}`;
    case 'parquet':
      return `parquet;fields=${spec.fields.join(',')}`;
    case 'raw':
      return `raw;separator=${Buffer.from(spec.separator, 'utf8').toString('hex')}`;
    case 'lines':
      return 'lines';
  }
}

/** Parses {@link formatToMetadata}'s output; undefined when it is not one. */
export function formatFromMetadata(text: string | undefined): FormatSpec | undefined {
  if (!text) return undefined;
  const [type, ...rest] = text.split(';');
  const params = new Map(rest.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] as const));
  const fields = (): MetaField[] | undefined => {
    const raw = params.get('fields');
    if (raw === undefined) return undefined;
    const list = raw === '' ? [] : raw.split(',');
    return list.every((f) => (META_FIELDS as readonly string[]).includes(f)) ? (list as MetaField[]) : undefined;
  };
  if (type === 'jsonl') {
    const value = params.get('value');
    const f = fields();
    if ((value !== 'json' && value !== 'string') || !f) return undefined;
    return { type, value, fields: f };
  }
  if (type === 'parquet') {
    const f = fields();
    return f ? { type, fields: f } : undefined;
  }
  if (type === 'raw') {
    const hex = params.get('separator');
    if (hex === undefined || !/^(?:[0-9a-f]{2})*$/.test(hex)) return undefined;
    return { type, separator: Buffer.from(hex, 'hex').toString('utf8') };
  }
  if (type === 'lines') return { type };
  return undefined;
}

/** The file-name extension of a format, before any compression suffix. */
export function formatExtension(spec: FormatSpec): string {
  switch (spec.type) {
    case 'jsonl':
    case 'lines':
      return '.jsonl';
    case 'parquet':
      return '.parquet';
    case 'raw':
      return '.bin';
  }
}

/** The metadata keys the sink sets on every data object (S3 returns them lower-case, without x-amz-meta-). */
export const ObjectMeta = {
  format: 'junction-format',
  compression: 'junction-compression',
  station: 'junction-station',
  partition: 'junction-partition',
  firstOffset: 'junction-first-offset',
  lastOffset: 'junction-last-offset',
  count: 'junction-count',
  unit: 'junction-unit',
  /** The station incarnation (`stationIdSegment` of its id). */
  stationId: 'junction-station-id',
  /** The write that made the object (one per unit and try). */
  attempt: 'junction-attempt',
} as const;
