/** The Snowflake sink's config. */
import { secret, z } from '@junction/sdk-connector';

export const COLUMN_TYPES = ['NUMBER', 'FLOAT', 'VARCHAR', 'BOOLEAN', 'TIMESTAMP_NTZ', 'VARIANT'] as const;
const ident = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]{0,254}$/);

export const SnowflakeSinkConfig = z
  .strictObject({
    account: z.string().min(1).describe('Account identifier (orgname-accountname or locator)'),
    accessUrl: z.url().optional().describe('Another endpoint than https://<account>.snowflakecomputing.com (private link, tests)'),
    username: z.string().min(1).describe('User to log in as'),
    password: secret(z.string()).describe('Password of the user, by reference: ${env:NAME} or ${file:/path}'),
    role: z.string().optional().describe('Role for the session'),
    warehouse: z.string().min(1).describe('Warehouse that runs the INSERTs'),
    database: ident.describe('Database of the target table; must exist'),
    schema: ident.default('PUBLIC').describe('Schema of the target table; must exist'),
    table: ident.describe('Target table (upper-cased, as Snowflake does with unquoted names); created when missing if autoCreate'),
    mode: z
      .enum(['raw', 'columns', 'schema'])
      .default('raw')
      .describe(
        "raw: STATION, PARTITION, OFFSET, TIMESTAMP, KEY, HEADERS (VARIANT), VALUE (VARIANT); columns: first-level JSON fields into typed columns, plus _JUNCTION_STATION/_PARTITION/_OFFSET; schema: one column per field of the station's schema (Avro, JSON Schema, Protobuf; nested as VARIANT), values decoded, plus the _JUNCTION_ columns",
      ),
    columns: z
      .array(
        z.strictObject({
          name: ident.describe('Column name (upper-cased)'),
          type: z.enum(COLUMN_TYPES).describe('Snowflake type'),
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
      .default(10_000)
      .describe("Rows per INSERT statement (one JSON bind each; batch boundaries are the runtime's batch size / bytes / latency)"),
    maxBytesPerStatement: z
      .int()
      .min(1024)
      .max(100_000_000)
      .default(8_000_000)
      .describe(
        "JSON bytes of the bind of one INSERT statement, estimated on the high side from each message's value, key and headers (Snowflake takes up to 16 MB in one VARCHAR)",
      ),
    writeTimeoutMs: z
      .int()
      .min(100)
      .max(3_600_000)
      .default(25_000)
      .describe(
        "Longest one write() takes, the driver's own retries of 5xx / network errors included; past it the unconfirmed messages are answered retry(). Keep it below the connector's writeTimeoutMs (default 30 s)",
      ),
  })
  .refine((c) => c.mode !== 'columns' || c.columns.length > 0, { message: 'mode columns needs at least one column', path: ['columns'] });
export type SnowflakeSinkConfig = z.output<typeof SnowflakeSinkConfig>;
