/**
 * The answers of the dashboard's routes as zod schemas, for the OpenAPI document only (nothing parses
 * with them). The checks at the end fail the build when an answer's type no longer fits its shape.
 */
import { z } from 'zod';
import type { AnswerFits } from '@junction/openapi/describe';
import type { StationRow } from './server.js';
import type { Alert, ConnectorRow, ConnectorsSnapshot, OverviewSnapshot, StationSnapshot } from './snapshots.js';

const at = z.number().describe('when the snapshot was taken (ms since the epoch)');
const rate = (what: string) => z.number().describe(`${what} per second since the previous snapshot (0 on the first)`);

const AlertAnswer = z.object({
  kind: z.enum(['task-failed', 'dls-growing', 'group-behind', 'station-health']),
  subject: z.string().describe('a station, `station/group`, or a connector'),
  message: z.string(),
});
const ErrorAt = z.object({ code: z.string(), message: z.string(), at: z.number() });

const ConnectorRowAnswer = z
  .object({
    name: z.string(),
    type: z.string(),
    state: z.string(),
    tasks: z.array(z.object({ id: z.int(), state: z.string(), trace: z.string().optional(), lastError: ErrorAt.optional() })),
    lag: z.number().optional(),
    throughput: z.object({ msgsPerSec: z.number(), bytesPerSec: z.number() }),
    lastError: ErrorAt.optional(),
    freshness: z
      .object({ lastLandedAt: z.string(), lastProducedAt: z.string(), seconds: z.number() })
      .nullable()
      .describe('produce → landed of the last message a sink landed; null until one landed'),
  })
  .loose();

export const OverviewAnswer = z.object({
  at,
  stations: z.int(),
  messages: z.int(),
  bytes: z.int(),
  deadLetters: z.int().describe('messages held by every dead-letter station'),
  produceRate: rate('messages produced'),
  consumeRate: rate('messages settled by consumer groups'),
  truncated: z.boolean().describe('a scan stopped at its bound (100,000 stations, 500 groups)'),
  connectors: z
    .object({ total: z.int(), byState: z.record(z.string(), z.int()), rows: z.array(ConnectorRowAnswer) })
    .optional()
    .describe('for a caller who may read every connector'),
  alerts: z.array(AlertAnswer),
});

export const StationSnapshotAnswer = z.object({
  at,
  station: z
    .object({ name: z.string(), messages: z.int(), bytes: z.int() })
    .loose()
    .describe('StationInfo, as GET /v1/stations/:station answers it'),
  deadLetters: z.int(),
  groups: z
    .array(z.object({ group: z.string(), lag: z.int() }).loose())
    .describe('GroupInfo of each group, as GET /v1/stations/:station/groups/:group answers it'),
  produceRate: rate('messages produced'),
  consumeRates: z.record(z.string(), z.number()).describe('per group: messages settled per second'),
});

export const ConnectorsAnswer = z.object({ at, connectors: z.array(ConnectorRowAnswer), truncated: z.boolean() });

export const StationRowsAnswer = z.object({
  total: z.int().describe('stations that match'),
  offset: z.int(),
  stations: z.array(
    z.object({
      name: z.string(),
      partitions: z.int(),
      messages: z.int(),
      bytes: z.int(),
      groups: z.int(),
      deadLetters: z.int().describe('messages in its dead-letter station'),
      createdAt: z.number(),
      health: z.enum(['ok', 'degraded', 'damaged']),
    }),
  ),
});

// ---- the documented shapes fit what the routes answer (a build error otherwise)
type Fits<Answer, Doc> = AnswerFits<Answer, Doc>;
const fits: [
  Fits<Alert, z.output<typeof AlertAnswer>>,
  Fits<StationRow, z.output<typeof StationRowsAnswer>['stations'][number]>,
  Fits<OverviewSnapshot['stations'], z.output<typeof OverviewAnswer>['stations']>,
  Fits<StationSnapshot['consumeRates'], z.output<typeof StationSnapshotAnswer>['consumeRates']>,
  Fits<ConnectorsSnapshot['truncated'], z.output<typeof ConnectorsAnswer>['truncated']>,
  Fits<ConnectorRow['throughput'], z.output<typeof ConnectorRowAnswer>['throughput']>,
] = [true, true, true, true, true, true];
void fits;
