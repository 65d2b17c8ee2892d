/** The Firebolt sink's config. */
import { secret, z } from '@junction/sdk-connector';

export const COLUMN_TYPES = ['INTEGER', 'BIGINT', 'DOUBLE PRECISION', 'TEXT', 'BOOLEAN', 'TIMESTAMP'] as const;
const ident = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,254}$/);

export const FireboltSinkConfig = z
  .strictObject({
    account: z.string().min(1).describe('Firebolt account name'),
    clientId: secret(z.string().min(1)).describe('Service account client id, by reference: ${env:NAME} or ${file:/path}'),
    clientSecret: secret(z.string().min(1)).describe('Service account client secret, by reference: ${env:NAME} or ${file:/path}'),
    apiEndpoint: z
      .string()
      .min(1)
      .default('api.app.firebolt.io')
      .describe('Firebolt API host (https unless an http:// URL is given: local tests)'),
    database: ident.describe('Database of the target table; must exist'),
    engine: ident.describe('Engine that runs the INSERTs; must exist (and be running, or auto-start)'),
    table: ident.describe('Target table (lower-cased, as Firebolt does with unquoted names); created when missing if autoCreate'),
    mode: z
      .enum(['raw', 'columns', 'schema'])
      .default('raw')
      .describe(
        "raw: station, partition, offset, timestamp, key, headers (JSON text), value (JSON text); columns: first-level JSON fields into typed columns, plus _junction_station/_partition/_offset; schema: one column per field of the station's schema (Avro, JSON Schema, Protobuf; nested as JSON TEXT), values decoded, plus the _junction_ columns",
      ),
    columns: z
      .array(
        z.strictObject({
          name: ident.describe('Column name (lower-cased)'),
          type: z.enum(COLUMN_TYPES).describe('Firebolt type'),
          field: z.string().min(1).optional().describe('First-level field of the JSON value; default: the column name as written'),
          required: z.boolean().default(false).describe('NOT NULL column'),
        }),
      )
      .default([])
      .describe('The typed columns of mode columns'),
    autoCreate: z.boolean().default(true).describe("CREATE TABLE IF NOT EXISTS with the mode's columns at task start"),
    evolve: z
      .boolean()
      .default(true)
      .describe('Mode schema: ALTER TABLE … ADD COLUMN for fields a new version of the station schema adds (nullable columns)'),
    onDrift: z
      .enum(['fail', 'dead-letter'])
      .default('fail')
      .describe(
        "Mode schema: when the table cannot follow the schema (a column's type differs, or new fields with evolve off): fail the task (SCHEMA_DRIFT), or dead-letter the batches",
      ),
    maxRowsPerStatement: z
      .int()
      .min(1)
      .max(100_000)
      .default(5_000)
      .describe("Rows per multi-row INSERT (batch boundaries are the runtime's batch size / bytes / latency)"),
    maxBytesPerStatement: z.int().min(1024).max(100_000_000).default(8_000_000).describe('SQL text bytes of one INSERT statement'),
    maxAttempts: z
      .int()
      .min(1)
      .max(10)
      .default(3)
      .describe(
        'Tries of one statement on 5xx / 429 / network errors within writeTimeoutMs (the SDK itself retries none of them); then retry()',
      ),
    writeTimeoutMs: z
      .int()
      .min(100)
      .max(3_600_000)
      .default(25_000)
      .describe(
        "Longest one write() takes, retries included; past it the unconfirmed messages are answered retry(). Keep it below the connector's writeTimeoutMs (default 30 s)",
      ),
  })
  .refine((c) => c.mode !== 'columns' || c.columns.length > 0, { message: 'mode columns needs at least one column', path: ['columns'] });
export type FireboltSinkConfig = z.output<typeof FireboltSinkConfig>;
