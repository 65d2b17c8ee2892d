/**
 * The answers of the broker's routes as zod schemas, for the OpenAPI document only (the routes answer
 * the store's objects as they are; nothing parses with these). The type checks at the end fail the
 * build when an answer's interface (@junction/protocol) no longer fits its documented shape.
 */
import { z } from 'zod';
import { StationConfigInput, StationName } from '@junction/protocol';
import type { GroupInfo, ProduceOutcome, ReplayResult, SettleOutcome, StationInfo } from '@junction/protocol';
import type { AnswerFits } from '@junction/openapi/describe';
import type { JsonDelivery, JsonMessage } from './routes.js';

const ms = (what: string) => z.number().describe(`${what} (ms since the epoch)`);

export const PartitionInfoAnswer = z.object({
  partition: z.int(),
  firstOffset: z.int().describe('lowest offset still retained (equals nextOffset when empty)'),
  nextOffset: z.int().describe('the offset the next stored message gets'),
  messages: z.int(),
  bytes: z.int(),
});

export const StationInfoAnswer = z
  .object({
    name: StationName,
    id: z.string().describe("the station's incarnation: new each time a station of this name is created"),
    config: StationConfigInput,
    createdAt: ms('created'),
    deadLetterOf: z.string().optional().describe('the station this one holds dead letters of'),
    partitions: z.array(PartitionInfoAnswer),
    messages: z.int(),
    bytes: z.int(),
    groups: z.array(z.string()),
    dedup: z
      .object({
        ids: z.int(),
        maxIds: z.int(),
        evicted: z.int(),
        bytes: z.int(),
        restored: z
          .object({ from: z.enum(['snapshot', 'scan', 'none']), recordsRead: z.int(), ms: z.number(), detail: z.string().optional() })
          .optional(),
      })
      .optional()
      .describe('the dedup index (embedded engine)'),
    health: z.object({ status: z.enum(['ok', 'degraded', 'damaged']), reasons: z.array(z.string()) }).optional(),
    damage: z
      .array(
        z.object({
          partition: z.int(),
          fromOffset: z.int(),
          toOffset: z.int(),
          messages: z.int(),
          detail: z.string(),
          foundAt: z.number(),
        }),
      )
      .optional()
      .describe('ranges lost or skipped that are still retained'),
  })
  .loose();

export const StationPageAnswer = z.object({
  stations: z.array(StationInfoAnswer),
  next: z.string().optional().describe('the `after` of the next page; absent on the last page'),
});

export const ProduceAnswer = z.object({
  results: z
    .array(
      z.union([
        z.object({ partition: z.int(), offset: z.int() }).describe('stored'),
        z
          .object({ duplicate: z.literal(true), partition: z.int(), offset: z.int() })
          .describe('a msgId seen inside the dedup window: not stored again'),
        z
          .object({ error: z.object({ code: z.string(), message: z.string() }) })
          .describe('rejected (e.g. MESSAGE_TOO_LARGE, SCHEMA_VIOLATION)'),
      ]),
    )
    .describe('one outcome per message, in order'),
});

const messageFields = {
  partition: z.int(),
  offset: z.int(),
  timestamp: ms('stored'),
  key: z.string().optional(),
  headers: z.record(z.string(), z.string()),
  value: z.string().optional().describe('the value as UTF-8 text (when it is valid UTF-8 and base64 was not asked for)'),
  valueBase64: z.string().optional().describe('the value in base64 otherwise'),
};

export const MessageAnswer = z.object(messageFields);
export const MessagePageAnswer = z.object({
  messages: z.array(MessageAnswer),
  next: z
    .int()
    .optional()
    .describe('the `fromOffset` of the page after this one (also the junction-next-offset header); absent when the page is empty'),
});

export const FetchAnswer = z.object({
  messages: z.array(
    z.object({ deliveryId: z.string().describe('ack / nack / dead-letter it by this id'), ...messageFields, deliveryCount: z.int() }),
  ),
});

export const GroupInfoAnswer = z
  .object({
    station: z.string(),
    group: z.string(),
    createdAt: ms('created'),
    maxAckTimeMs: z.int(),
    maxDeliveries: z.int(),
    partitions: z.array(
      z.object({
        partition: z.int(),
        nextOffset: z.int(),
        ackFloor: z.int(),
        lag: z.int(),
        pending: z.int(),
        redeliveryQueued: z.int(),
        lostToRetention: z.int(),
        deadLettered: z.int().describe('messages of this partition the group moved to the dead-letter station since it was created'),
      }),
    ),
    lag: z.int().describe('messages stored and not yet acknowledged by the group'),
    pending: z.int().describe('delivered and waiting for ack / nack / deadline'),
    redeliveries: z.int(),
    deadLettered: z.int().describe("messages the group moved to the dead-letter station: the sum of the partitions' deadLettered"),
    lostToRetention: z.int(),
    oldestUnackedAgeSeconds: z
      .number()
      .nullable()
      .describe('age of the oldest message the group has not settled (delivered or not); null when nothing is unsettled'),
  })
  .loose();

export const GroupPageAnswer = z.object({ groups: z.array(GroupInfoAnswer), next: z.string().optional() });

const SettleOutcomeAnswer = z.object({ deliveryId: z.string(), status: z.enum(['acked', 'nacked', 'dead-lettered', 'unknown', 'stale']) });
export const SettleAnswer = z.union([
  z.object({ results: z.array(SettleOutcomeAnswer).describe('one per id, in order') }),
  z.object({
    count: z.int().describe("ids that got the verb's own status"),
    results: z.array(SettleOutcomeAnswer).describe('the others (with `summary: true`)'),
  }),
]);

export const ReplayAnswer = z.object({ replayed: z.int(), purged: z.int() });
export const PurgeAnswer = z.object({ purged: z.int().describe('dead letters removed') });

// ---- the documented shapes fit what the routes answer (a build error otherwise)
type Fits<Answer, Doc> = AnswerFits<Answer, Doc>;
const fits: [
  Fits<StationInfo, z.output<typeof StationInfoAnswer>>,
  Fits<GroupInfo, z.output<typeof GroupInfoAnswer>>,
  Fits<ProduceOutcome, z.output<typeof ProduceAnswer>['results'][number]>,
  Fits<JsonMessage, z.output<typeof MessageAnswer>>,
  Fits<JsonDelivery, z.output<typeof FetchAnswer>['messages'][number]>,
  Fits<SettleOutcome, z.output<typeof SettleOutcomeAnswer>>,
  Fits<ReplayResult, z.output<typeof ReplayAnswer>>,
] = [true, true, true, true, true, true, true];
void fits;
