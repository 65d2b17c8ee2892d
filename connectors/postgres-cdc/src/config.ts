/** The PostgreSQL change-data-capture source's config. */
import { secret, z } from '@junction/sdk-connector';

const ident = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'letters, digits and _ only, not starting with a digit, at most 63');

export const PostgresCdcConfig = z.strictObject({
  host: z.string().min(1).default('127.0.0.1').describe('Server host'),
  port: z.int().min(1).max(65_535).default(5432).describe('Server port'),
  database: z.string().min(1).describe('Database whose changes are captured'),
  user: z.string().min(1).describe('Role with the REPLICATION attribute (or superuser) and SELECT on the tables for the snapshot'),
  password: secret(z.string()).optional().describe('Password of the role, by reference: ${env:NAME} or ${file:/path}'),
  publication: ident.describe(
    'Publication whose tables are captured (CREATE PUBLICATION … FOR TABLE …); created FOR the tables below when missing',
  ),
  tables: z
    .array(z.string().regex(/^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$/, 'table or schema.table'))
    .default([])
    .describe('Tables of a publication created when missing (ignored when it exists)'),
  slot: ident.optional().describe('Logical replication slot (pgoutput); default junction_<connector>; created when missing'),
  snapshot: z
    .boolean()
    .default(false)
    .describe(
      'When the slot is created: first emit every row of the published tables (op read) from the snapshot the slot was created at, then the changes after it',
    ),
  maxMessages: z.int().min(1).max(100_000).default(1000).describe('Change events per batch handed to the station'),
  maxLatencyMs: z.int().min(0).max(60_000).default(50).describe('Longest an event waits for its batch to fill'),
  maxBuffered: z
    .int()
    .min(1)
    .max(1_000_000)
    .default(10_000)
    .describe('Events held before the station took them; past it the replication stream is paused'),
  statusIntervalMs: z
    .int()
    .min(100)
    .max(60_000)
    .default(5000)
    .describe('How often the confirmed LSN (what the station stored) is reported to the server, which also keeps the connection alive'),
});
export type PostgresCdcConfig = z.output<typeof PostgresCdcConfig>;
