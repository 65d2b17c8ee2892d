/** The S3 sink's config. Every field is described: the descriptions reach the catalog API and the dashboard. */
import { z } from '@junction/sdk-connector';
import { connectionShape } from './connection.js';
import { META_FIELDS } from './formats/spec.js';
import { compileTimeFormat } from './layout.js';

const MiB = 1024 * 1024;
const Fields = z.array(z.enum(META_FIELDS)).refine((a) => new Set(a).size === a.length, 'must not repeat a field');

export const S3SinkConfig = z
  .strictObject({
    ...connectionShape,
    format: z
      .enum(['jsonl', 'parquet', 'raw'])
      .default('jsonl')
      .describe('Object format: JSON Lines, Parquet (columns from the JSON values) or raw value bytes'),
    jsonl: z
      .strictObject({
        value: z
          .enum(['json', 'string'])
          .default('json')
          .describe(
            'json: the value is embedded as JSON (a value that is not JSON is dead-lettered); string: as a JSON string (base64 with "base64": true when not UTF-8)',
          ),
        fields: Fields.default([...META_FIELDS]).describe(
          'Message fields written before "value", in this order: offset, timestamp (ms), key, headers. With value json and no fields, each line is the value itself',
        ),
      })
      .prefault({})
      .describe('JSON Lines options'),
    parquet: z
      .strictObject({
        fields: Fields.default([...META_FIELDS]).describe(
          'Metadata columns written before the value columns: _offset, _timestamp, _key, _headers',
        ),
        rowGroupSize: z.int().min(1).max(1_000_000).default(10_000).describe('Rows per row group (the unit of memory when writing)'),
        columns: z
          .enum(['schema', 'infer'])
          .default('schema')
          .describe(
            'schema: when the station has a schema, columns and types come from it (Avro, JSON Schema or Protobuf; values decoded, plain or in the Confluent wire format), one file per schema version; infer: from the JSON values of each file (always so for a station without a schema)',
          ),
      })
      .prefault({})
      .describe('Parquet options (values must be JSON objects, or decode with the station schema; others are dead-lettered)'),
    raw: z
      .strictObject({
        separator: z
          .string()
          .max(16)
          .default('\n')
          .describe('Bytes written after each value (a value that contains them cannot be split back apart)'),
      })
      .prefault({})
      .describe('Raw options'),
    compression: z
      .enum(['gzip', 'zstd', 'snappy', 'none'])
      .default('gzip')
      .describe('gzip or zstd compress JSON Lines and raw objects whole (.gz, .zst); for Parquet they (and snappy) are the column codec'),
    compressionLevel: z
      .int()
      .min(-7)
      .max(22)
      .optional()
      .describe('gzip 1-9 (default 1: fast) or zstd 1-22 (default 3; negative: faster zstd)'),
    path: z
      .strictObject({
        layout: z
          .enum(['partition', 'time', 'field'])
          .default('partition')
          .describe(
            'partition: <station>/<partition>/; time: <station>/<format of the message time, UTC>/; field: <station>/<field>=<value>/',
          ),
        format: z
          .string()
          .min(1)
          .default('year=YYYY/month=MM/day=dd/hour=HH')
          .refine((f) => {
            try {
              compileTimeFormat(f);
              return true;
            } catch {
              return false;
            }
          }, 'must give a non-empty path with no empty, "." or ".." segment (tokens YYYY MM dd HH mm; quote literal text)')
          .describe('Time layout: YYYY, MM, dd, HH, mm of the message timestamp in UTC; text in single quotes is literal'),
        field: z
          .string()
          .regex(/^[^.]+(\.[^.]+)*$/, 'must be a field name or a dotted path such as customer.region')
          .optional()
          .describe('Field layout: the JSON value field (dotted path for nested fields) whose value names the directory'),
      })
      .prefault({})
      .describe('Where objects go under the prefix'),
    rotate: z
      .strictObject({
        maxMessages: z.int().min(1).optional().describe('Most messages in one object'),
        maxBytes: z.int().min(1024).optional().describe('Most bytes in one object, counted before compression (approximate for Parquet)'),
        intervalMs: z
          .int()
          .min(1)
          .optional()
          .describe('Record-time rotation: a message at or past the first message time + this starts a new object'),
      })
      .prefault({})
      .describe(
        "Splits a batch into several objects; objects never span batches, so the connector's batch settings set the largest object",
      ),
    upload: z
      .strictObject({
        multipartThreshold: z
          .int()
          .min(5 * MiB)
          .max(5 * 1024 * MiB)
          .default(32 * MiB)
          .describe(
            'Objects estimated larger than this (before compression) stream up as multipart uploads with bounded memory; smaller ones are encoded whole and sent in one PUT',
          ),
        partSize: z
          .int()
          .min(5 * MiB)
          .max(5 * 1024 * MiB)
          .default(8 * MiB)
          .describe('Multipart part size'),
        queueSize: z
          .int()
          .min(1)
          .max(16)
          .default(4)
          .describe('Parts of one multipart upload in flight at once (memory: partSize × (queueSize + 1))'),
        concurrency: z.int().min(1).max(64).default(8).describe('Small objects of one batch uploaded at once'),
      })
      .prefault({})
      .describe('Upload tuning'),
    conditionalWrites: z
      .boolean()
      .default(true)
      .describe(
        'Upload with If-None-Match: * so an object never replaces one it did not write (S3 since 2024, MinIO, R2); turn off for stores that reject it',
      ),
  })
  .superRefine((c, ctx) => {
    if (c.path.layout === 'field' && c.path.field === undefined) {
      ctx.addIssue({ code: 'custom', path: ['path', 'field'], message: 'is required with layout "field"' });
    }
    if (c.compression === 'snappy' && c.format !== 'parquet') {
      ctx.addIssue({ code: 'custom', path: ['compression'], message: 'snappy is only available for format parquet' });
    }
  });
export type S3SinkConfig = z.output<typeof S3SinkConfig>;
