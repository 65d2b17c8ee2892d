/** The PostgreSQL sink's config. */
import { secret, z } from '@junction/sdk-connector';

/** A plain identifier (no quoting surprises): letters, digits, underscores, at most 63 bytes like PostgreSQL's own limit. */
const ident = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'letters, digits and _ only, not starting with a digit, at most 63');

export const PostgresSinkConfig = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1').describe('Server host (name or address)'),
    port: z.int().min(1).max(65_535).default(5432).describe('Server port'),
    database: z.string().min(1).describe('Database; must exist'),
    user: z.string().min(1).describe('Role to log in as'),
    password: secret(z.string()).optional().describe('Password of the role, by reference: ${env:NAME} or ${file:/path}'),
    ssl: z.boolean().default(false).describe('TLS to the server (certificate verified)'),
    schema: ident.default('public').describe('Schema of the target table and of the offsets tables; must exist'),
    table: ident.describe('Target table; created with its layout when missing if autoCreate'),
    autoCreate: z.boolean().default(true).describe('CREATE TABLE IF NOT EXISTS (target, offsets, dead letters) at task start'),
    layout: z
      .enum(['default', 'schema'])
      .default('default')
      .describe(
        "default: columns key, value, headers, station, station_id, partition, offset, timestamp; schema: one column per field of the station's schema (Avro, JSON Schema, Protobuf; nested values as jsonb), values decoded, plus the _junction_ columns",
      ),
    evolve: z
      .boolean()
      .default(true)
      .describe('Layout schema: add the nullable columns that a new version of the station schema adds (ALTER TABLE … ADD COLUMN)'),
    onDrift: z
      .enum(['fail', 'dead-letter'])
      .default('fail')
      .describe(
        "Layout schema: when the table cannot follow the schema (a column's type differs, new fields with evolve off, a NOT NULL column the schema does not fill): fail the task (SCHEMA_DRIFT), or dead-letter the batches",
      ),
    value: z
      .enum(['jsonb', 'bytea', 'text'])
      .default('jsonb')
      .describe(
        'Type of the value column: jsonb (a value that is not JSON is dead-lettered with SQLSTATE 22P02), bytea (any bytes, as stored), text (UTF-8)',
      ),
    mode: z
      .enum(['insert', 'upsert'])
      .default('insert')
      .describe('insert: one row per message; upsert: one row per row_key, the newest message wins'),
    upsertBy: z
      .union([z.literal('key'), z.strictObject({ field: z.string().min(1).describe('Top-level field of the JSON value') })])
      .default('key')
      .describe('upsert: the row identity (column row_key, PRIMARY KEY) — the message key, or a top-level field of the JSON value'),
    offsetsTable: ident
      .default('junction_sink_offsets')
      .describe('Table of the last written offset per (connector, station id, partition), written in the same transaction as the rows'),
    deadLettersTable: ident
      .default('junction_sink_dead_letters')
      .describe('Offsets the sink dead-lettered (with SQLSTATE), so a replay dead-letters them again instead of losing them'),
    copyMinRows: z
      .int()
      .min(1)
      .default(1)
      .describe(
        'Insert mode: batches with at least this many rows to insert go through COPY FROM STDIN, smaller ones through multi-row INSERTs. COPY measured faster from 10 rows up (README), hence 1',
      ),
    maxRowsPerStatement: z
      .int()
      .min(1)
      .max(8000)
      .default(1000)
      .describe('Rows per multi-row INSERT (8 parameters each, PostgreSQL takes at most 65,535)'),
    maxBytesPerStatement: z
      .int()
      .min(1024)
      .max(256_000_000)
      .default(16_000_000)
      .describe('Bytes of values per INSERT statement or COPY chunk sent before the next'),
    poolSize: z.int().min(1).max(64).default(4).describe('Connections per task (one per partition written at once)'),
    writeTimeoutMs: z
      .int()
      .min(100)
      .max(3_600_000)
      .default(25_000)
      .describe(
        "Longest one write() takes (statement_timeout and lock_timeout of its transaction); keep it below the connector's writeTimeoutMs (default 30 s)",
      ),
  })
  .refine((c) => c.mode === 'upsert' || c.upsertBy === 'key', { message: 'upsertBy applies to mode upsert only', path: ['upsertBy'] })
  .refine((c) => c.layout === 'schema' || (c.evolve && c.onDrift === 'fail'), {
    message: 'evolve and onDrift apply to layout schema only',
    path: ['layout'],
  });
export type PostgresSinkConfig = z.output<typeof PostgresSinkConfig>;
