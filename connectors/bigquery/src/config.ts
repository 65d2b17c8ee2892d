/** The BigQuery sink's config. */
import { secret, z } from '@junction/sdk-connector';

export const COLUMN_TYPES = ['STRING', 'INT64', 'FLOAT64', 'NUMERIC', 'BOOL', 'TIMESTAMP', 'JSON'] as const;

const Column = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,299}$/)
    .describe('Column name in the table'),
  type: z.enum(COLUMN_TYPES).describe('BigQuery type of the column (JSON keeps nested values as JSON)'),
  field: z
    .string()
    .min(1)
    .optional()
    .describe('First-level field of the message value (a JSON object) that fills the column; default: the column name'),
  required: z.boolean().default(false).describe('Column is REQUIRED (a message without the field is dead-lettered by BigQuery)'),
});

export const BigQuerySinkConfig = z
  .strictObject({
    projectId: z.string().min(1).describe('Google Cloud project that holds the dataset'),
    dataset: z.string().min(1).describe('Dataset of the target table; it must exist (a missing dataset fails the task)'),
    table: z
      .string()
      .regex(/^[A-Za-z0-9_]{1,1024}$/)
      .describe('Target table, created when missing if autoCreate is true'),
    location: z.string().optional().describe('Dataset location for queries (e.g. US, EU)'),
    credentials: secret(z.string())
      .optional()
      .describe(
        'Service account key (JSON text), by reference: ${file:/path/key.json} or ${env:NAME}. Without it and without accessToken: Application Default Credentials',
      ),
    accessToken: secret(z.string())
      .optional()
      .describe(
        'A ready OAuth 2 access token (sent as is, never refreshed): for workload identity set up outside Junction, and for local emulators',
      ),
    apiEndpoint: z
      .url()
      .optional()
      .describe('Another API endpoint (an emulator or a private endpoint); default https://bigquery.googleapis.com'),
    mode: z
      .enum(['raw', 'columns', 'schema'])
      .default('raw')
      .describe(
        "raw: columns station, partition, offset, timestamp, key, headers (JSON), value (JSON); columns: first-level JSON fields mapped to the typed columns below, plus _junction_station/_junction_partition/_junction_offset; schema: one column per field of the station's schema (Avro, JSON Schema, Protobuf; records as RECORD, arrays REPEATED), values decoded, plus the _junction_ columns",
      ),
    columns: z.array(Column).default([]).describe('The typed columns of mode columns (ignored in raw mode)'),
    autoCreate: z.boolean().default(true).describe('Create the table with the schema of the mode when it does not exist'),
    evolve: z
      .boolean()
      .default(true)
      .describe(
        'Mode schema: add (tables.patch) the NULLABLE columns, top-level or inside RECORDs, that a new version of the station schema adds',
      ),
    onDrift: z
      .enum(['fail', 'dead-letter'])
      .default('fail')
      .describe(
        "Mode schema: when the table cannot follow the schema (a column's type or repetition differs, or new fields with evolve off): fail the task (SCHEMA_DRIFT), or dead-letter the batches",
      ),
    maxRowsPerRequest: z.int().min(1).max(50_000).default(500).describe('Rows per insertAll request (Google recommends about 500)'),
    maxBytesPerRequest: z
      .int()
      .min(1024)
      .max(10_000_000)
      .default(9_000_000)
      .describe('JSON bytes per insertAll request (the API limit is 10 MB)'),
    requestConcurrency: z.int().min(1).max(32).default(4).describe('insertAll requests in flight at once for one batch'),
    maxRetries: z
      .int()
      .min(0)
      .max(10)
      .default(3)
      .describe('Retries the Google client makes itself on 5xx / 429 before the sink answers retry()'),
  })
  .refine((c) => c.mode !== 'columns' || c.columns.length > 0, { message: 'mode columns needs at least one column', path: ['columns'] })
  .refine((c) => !(c.credentials && c.accessToken), { message: 'give credentials or accessToken, not both', path: ['accessToken'] });
export type BigQuerySinkConfig = z.output<typeof BigQuerySinkConfig>;
