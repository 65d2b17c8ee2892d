/**
 * The HTTP API's bodies as zod schemas. The broker validates every input with these; the client
 * uses the inferred types. Field names are the API's; change them only with a new API version.
 */
import { z } from 'zod';

/** Station and group names: safe as one path segment and one directory name. */
export const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;
export const StationName = z
  .string()
  .regex(NAME_PATTERN, 'must be 1-200 characters of letters, digits, "_", "-" and ".", not starting with "." or "-"');
export const GroupName = StationName;

/**
 * Station names starting with this belong to Junction itself (the schema registry's log, ...): the API
 * reads them, but never creates, changes, produces to or deletes them.
 */
export const SYSTEM_STATION_PREFIX = '__';
export function isSystemStation(name: string): boolean {
  return name.startsWith(SYSTEM_STATION_PREFIX);
}

export const MiB = 1024 * 1024;

/** `always` (default: group commit, a produce is answered after its bytes are fsynced), `never`, or `interval:<ms>`. */
export const FsyncPolicy = z.union([
  z.literal('always'),
  z.literal('never'),
  z.string().regex(/^interval:[1-9]\d{0,6}$/, 'must be "always", "never" or "interval:<ms>"'),
]);
export type FsyncPolicy = z.infer<typeof FsyncPolicy>;

export const RetentionConfig = z.strictObject({
  /** Messages older than this are dropped. Default 7 days (Kafka's default). */
  maxAgeMs: z.int().positive().optional(),
  /** At most this many messages per partition are kept (oldest dropped first). */
  maxMessages: z.int().positive().optional(),
  /** At most this many bytes per partition are kept; dropped by whole segments. */
  maxBytes: z.int().positive().optional(),
  /** Drop what every consumer group of the station has acknowledged. */
  ackBased: z.boolean().optional(),
});
export type RetentionConfig = z.infer<typeof RetentionConfig>;

export const DeadLetterConfig = z.strictObject({
  /** When false, a message past maxDeliveries is dropped (counted in metrics) instead of dead-lettered. */
  enabled: z.boolean().default(true),
  /** Deliveries before a message goes to the dead-letter station. Groups may override. */
  maxDeliveries: z.int().min(1).max(1000).default(5),
  /** Ack deadline of a delivery. Groups may override. */
  maxAckTimeMs: z
    .int()
    .min(100)
    .max(12 * 3600_000)
    .default(30_000),
});
export type DeadLetterConfig = z.infer<typeof DeadLetterConfig>;

/**
 * The bound of a station's dedup index when `dedupMaxIds` is absent: 4M msgIds, ~33k messages/s with
 * msgIds over the default 2-minute window, ≤ ~190 MB of memory at the bound (≤ ~47 bytes per id). At
 * the bound the oldest ids leave the window early: a later copy of one of those is stored again. The
 * embedded engine counts them (`junction_dedup_evicted_total`, `StationInfo.dedup.evicted`) and logs a
 * warning. JetStream (core/cluster) keeps its own duplicate tracking and ignores the option.
 */
export const DEDUP_MAX_IDS_DEFAULT = 4_000_000;
export const DEDUP_MAX_IDS_MIN = 1_000;
export const DEDUP_MAX_IDS_MAX = 100_000_000;

/**
 * A station's schema: every produce path validates each value against a version of a registry subject
 * before it is stored. `subject` defaults to `<station>-value`; `version` is a number or "latest" (changing
 * it is the rollback); `policy` says what happens to a value that does not match: `reject` (that message
 * answers SCHEMA_VIOLATION, the rest of the batch is stored), `dead-letter` (it goes to the station's
 * dead-letter station with reason `schema-violation`; the producer is told) or `warn` (stored and counted).
 */
export const StationSchemaBinding = z.strictObject({
  subject: z.string().min(1).max(255).optional(),
  version: z
    .union([
      z
        .int()
        .min(1)
        .max(2 ** 31 - 1),
      z.literal('latest'),
    ])
    .default('latest'),
  policy: z.enum(['reject', 'dead-letter', 'warn']).default('reject'),
});
export type StationSchemaBinding = z.output<typeof StationSchemaBinding>;

export const StationConfigInput = z.strictObject({
  partitions: z.int().min(1).max(1024).default(1),
  storage: z.enum(['file', 'memory']).default('file'),
  retention: RetentionConfig.default({ maxAgeMs: 7 * 24 * 3600_000 }),
  dedupWindowMs: z
    .int()
    .min(0)
    .max(7 * 24 * 3600_000)
    .default(120_000),
  /** The most msgIds the dedup window remembers (absent: DEDUP_MAX_IDS_DEFAULT); see DEDUP_MAX_IDS_DEFAULT. */
  dedupMaxIds: z.int().min(DEDUP_MAX_IDS_MIN).max(DEDUP_MAX_IDS_MAX).optional(),
  maxMessageBytes: z
    .int()
    .min(1)
    .max(64 * MiB)
    .default(8 * MiB),
  deadLetter: DeadLetterConfig.default({ enabled: true, maxDeliveries: 5, maxAckTimeMs: 30_000 }),
  /** Segment files roll at this size. */
  segmentBytes: z
    .int()
    .min(4096)
    .max(1024 * MiB)
    .default(64 * MiB),
  /** Overrides the broker's durability policy for this station. */
  fsync: FsyncPolicy.optional(),
  /** Values are validated against this schema on every produce path (see StationSchemaBinding). */
  schema: StationSchemaBinding.optional(),
});
export type StationConfigInput = z.input<typeof StationConfigInput>;
export type StationConfig = z.output<typeof StationConfigInput>;

export const CreateStationBody = StationConfigInput.extend({ name: StationName });

/**
 * Copies of a station's data on the NATS servers (cluster mode: JetStream's num_replicas, 1–5; default
 * min(3, the servers of the cluster)). The embedded engine keeps one copy and refuses the option.
 */
export const StationReplicas = z.int().min(1).max(5);

/** What can change on a live station. partitions and storage cannot (fixed at creation). */
export const StationPatch = z.strictObject({
  retention: RetentionConfig.optional(),
  dedupWindowMs: z
    .int()
    .min(0)
    .max(7 * 24 * 3600_000)
    .optional(),
  dedupMaxIds: z.int().min(DEDUP_MAX_IDS_MIN).max(DEDUP_MAX_IDS_MAX).optional(),
  maxMessageBytes: z
    .int()
    .min(1)
    .max(64 * MiB)
    .optional(),
  // Fields given are changed, the others kept: no defaults here (zod applies inner defaults under .partial()).
  deadLetter: z
    .strictObject({
      enabled: z.boolean().optional(),
      maxDeliveries: z.int().min(1).max(1000).optional(),
      maxAckTimeMs: z
        .int()
        .min(100)
        .max(12 * 3600_000)
        .optional(),
    })
    .optional(),
  segmentBytes: z
    .int()
    .min(4096)
    .max(1024 * MiB)
    .optional(),
  fsync: FsyncPolicy.optional(),
  /** A new schema binding (replaces the old one whole), or null to validate no more. */
  schema: StationSchemaBinding.nullable().optional(),
});
export type StationPatch = z.infer<typeof StationPatch>;

/**
 * A station's config with a parsed patch applied: every field the patch gives replaces the config's,
 * `deadLetter` field by field; the rest (partitions, storage, engine-specific fields) is kept.
 */
export function applyStationPatch<C extends StationConfig>(config: C, patch: z.output<typeof StationPatch>): C {
  const { schema: _old, ...rest } = config;
  const schema = patch.schema === undefined ? config.schema : (patch.schema ?? undefined);
  return {
    ...(rest as C),
    ...(schema !== undefined && { schema }),
    ...(patch.retention !== undefined && { retention: patch.retention }),
    ...(patch.dedupWindowMs !== undefined && { dedupWindowMs: patch.dedupWindowMs }),
    ...(patch.dedupMaxIds !== undefined && { dedupMaxIds: patch.dedupMaxIds }),
    ...(patch.maxMessageBytes !== undefined && { maxMessageBytes: patch.maxMessageBytes }),
    ...(patch.segmentBytes !== undefined && { segmentBytes: patch.segmentBytes }),
    ...(patch.fsync !== undefined && { fsync: patch.fsync }),
    deadLetter: { ...config.deadLetter, ...patch.deadLetter },
  };
}

const Headers = z.record(z.string().min(1).max(1024), z.string());

export const JsonProduceMessage = z
  .strictObject({
    value: z.string().optional(),
    valueBase64: z.base64().optional(),
    key: z.string().max(4096).optional(),
    headers: Headers.optional(),
    msgId: z.string().min(1).max(1024).optional(),
  })
  .refine((m) => (m.value === undefined) !== (m.valueBase64 === undefined), {
    message: 'exactly one of "value" and "valueBase64" is required',
  });
export const ProduceBody = z.strictObject({ messages: z.array(JsonProduceMessage).min(1).max(100_000) });

/** One outcome per produced message, in order. */
export type ProduceOutcome =
  | { partition: number; offset: number }
  | { duplicate: true; partition: number; offset: number }
  | { error: { code: string; message: string } };

export const BrowseQuery = z.strictObject({
  partition: z.coerce.number().int().min(0).default(0),
  fromOffset: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
  encoding: z.enum(['utf8', 'base64']).optional(),
});

/** Most items one page of a listing holds, and the default when `limit` is absent. */
export const MAX_PAGE = 1000;

/**
 * A page of a listing (stations, groups): items in name order, those after the cursor `after` (a name the
 * previous page ended with), starting with `prefix`, at most `limit`.
 */
export const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(MAX_PAGE),
  after: z.string().min(1).max(200).optional(),
  prefix: z.string().min(1).max(200).optional(),
});
export type ListQuery = z.input<typeof ListQuery>;

/** The station listing's query: a page, and whether Junction's own stations (`__…`) are in it (default not). */
export const StationListQuery = ListQuery.extend({
  system: z.enum(['true', 'false']).optional(),
});

export const FetchBody = z.strictObject({
  maxMessages: z.int().min(1).max(10_000).default(100),
  maxBytes: z
    .int()
    .min(1)
    .max(256 * MiB)
    .default(8 * MiB),
  waitMs: z.int().min(0).max(300_000).default(0),
  /** "utf8" puts each value in `value` when it is valid UTF-8 (else `valueBase64`); "base64" always uses `valueBase64`. */
  encoding: z.enum(['utf8', 'base64']).default('utf8'),
});
export type FetchBody = z.input<typeof FetchBody>;

export const StartPosition = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('earliest') }),
  z.strictObject({ type: z.literal('latest') }),
  z.strictObject({ type: z.literal('offset'), offset: z.int().min(1), partition: z.int().min(0).optional() }),
  z.strictObject({ type: z.literal('timestamp'), timestamp: z.int().min(0) }),
]);
export type StartPosition = z.infer<typeof StartPosition>;

export const CreateGroupBody = z.strictObject({
  start: StartPosition.default({ type: 'earliest' }),
  maxAckTimeMs: z
    .int()
    .min(100)
    .max(12 * 3600_000)
    .optional(),
  maxDeliveries: z.int().min(1).max(1000).optional(),
});
export type CreateGroupBody = z.input<typeof CreateGroupBody>;

export const SeekBody = StartPosition;

export const AckBody = z.strictObject({
  deliveryIds: z.array(z.string().max(64)).min(1).max(100_000),
  /**
   * Answer `{ count, results }` where `results` lists only the deliveries whose status is not the
   * verb's (acked / nacked / dead-lettered) and `count` says how many had it: at 1000 ids a request
   * that saves the broker building, and the client parsing, 1000 objects it already knows.
   */
  summary: z.boolean().optional(),
});
export const NackBody = AckBody.extend({
  delayMs: z
    .int()
    .min(0)
    .max(24 * 3600_000)
    .optional(),
});
export const DeadLetterBody = AckBody.extend({ reason: z.string().max(4096).optional() });

/** Per-delivery outcome of ack / nack / dead-letter. */
export type SettleStatus = 'acked' | 'nacked' | 'dead-lettered' | 'unknown' | 'stale';
export interface SettleOutcome {
  deliveryId: string;
  status: SettleStatus;
}

/** The answer of ack / nack / dead-letter with `summary: true`. */
export interface SettleSummary {
  /** Deliveries that got the verb's own status. */
  count: number;
  /** Every other outcome, in request order. */
  results: SettleOutcome[];
}

/** The status a settle verb gives a delivery it applied to. */
export const SETTLE_STATUS = { ack: 'acked', nack: 'nacked', 'dead-letter': 'dead-lettered' } as const;

/** Expands a summary answer back to one outcome per requested id, in order. */
export function expandSettleSummary(ids: readonly string[], summary: SettleSummary, status: SettleStatus): SettleOutcome[] {
  const other = new Map(summary.results.map((r) => [r.deliveryId, r.status]));
  return ids.map((deliveryId) => ({ deliveryId, status: other.get(deliveryId) ?? status }));
}

export const DlsReplayBody = z.strictObject({
  /** Re-deliver only to this group (other groups skip the replayed copies). */
  group: GroupName.optional(),
  /** Dead letters (by their offset in the DLS, on partition 0) to replay; all when absent. */
  fromOffset: z.int().min(1).optional(),
  toOffset: z.int().min(1).optional(),
  /** Remove replayed dead letters from the DLS afterwards. */
  purge: z.boolean().default(false),
});
export type DlsReplayBody = z.input<typeof DlsReplayBody>;

export const DlsPurgeBody = z.strictObject({ upToOffset: z.int().min(1).optional() });

/** The error answer of every route. */
export interface ApiError {
  code: string;
  message: string;
  issues?: { path: string; message: string }[];
}

/** Headers the broker writes on every dead letter. */
export const DLS_HEADERS = {
  reason: 'junction-dls-reason',
  code: 'junction-dls-code',
  group: 'junction-dls-group',
  attempts: 'junction-dls-attempts',
  station: 'junction-dls-station',
  partition: 'junction-dls-partition',
  offset: 'junction-dls-offset',
  timestamp: 'junction-dls-timestamp',
  key: 'junction-dls-key',
  connector: 'junction-dls-connector',
} as const;

/** Header that restricts a replayed dead letter to one group. */
export const REPLAY_GROUP_HEADER = 'junction-replay-group';

// ---- answers: the JSON shapes of stations and groups (StationStore returns the same) --------------

export interface PartitionInfo {
  partition: number;
  /** Lowest offset still retained; equals nextOffset when the partition is empty. */
  firstOffset: number;
  /** The offset the next stored message gets. */
  nextOffset: number;
  messages: number;
  bytes: number;
}

export interface StationInfo {
  name: string;
  /**
   * The station's incarnation: a new id each time a station of this name is created (deleting a station
   * and creating it again gives a new id, and its offsets start at 1 again). Anything that remembers
   * offsets of a station — a consumer's progress, a sink's exactly-once ledger — keys on it, as Kafka
   * keys on topic ids (KIP-516).
   */
  id: string;
  config: StationConfig;
  createdAt: number;
  /** The station this one holds dead letters of, when it is a dead-letter station. */
  deadLetterOf?: string | undefined;
  partitions: PartitionInfo[];
  messages: number;
  bytes: number;
  groups: string[];

  /** The dedup index of the station (the embedded engine fills it). */
  dedup?: StationDedupInfo | undefined;

  // ---- storage health (the embedded engine fills these; an engine that does not track damage leaves them out)
  /** Whether the station's stored data and metadata are whole; see StationHealth. */
  health?: StationHealth | undefined;
  /** Ranges of messages lost or skipped that are still retained, oldest first (empty when none). */
  damage?: DamagedRange[] | undefined;
}

/** A station's dedup index: what it holds, its bound, and how it was restored at start. */
export interface StationDedupInfo {
  /** msgIds remembered (inside the window, or expired and not yet dropped). */
  ids: number;
  /** The bound (`dedupMaxIds`, or DEDUP_MAX_IDS_DEFAULT). */
  maxIds: number;
  /** Ids that left the window early because the bound was reached, since the broker opened the station. */
  evicted: number;
  /** Memory the index holds. */
  bytes: number;
  /**
   * How the index was rebuilt when the station opened: `snapshot` (its snapshot, then the log after it),
   * `scan` (the log inside the window: no usable snapshot; `detail` says why), `none` (nothing to restore).
   * `recordsRead`: log records read to do it.
   */
  restored?: { from: 'snapshot' | 'scan' | 'none'; recordsRead: number; ms: number; detail?: string | undefined } | undefined;
}

/**
 * `ok`; `degraded`: the station serves, but messages were lost (see `damage`) or its metadata had to
 * be repaired (see `reasons`); `damaged`: its metadata could not be recovered, so it cannot serve —
 * message and group operations answer `STATION_DAMAGED` until it is deleted (or its files are restored
 * and the broker restarted).
 */
export interface StationHealth {
  status: 'ok' | 'degraded' | 'damaged';
  /** One sentence per problem (station, partition, offsets, what was done); empty when `ok`. */
  reasons: string[];
}

/** A range of offsets of one partition whose messages were lost or skipped (found on start or while reading). */
export interface DamagedRange {
  partition: number;
  /** First and last offset of the range (both included). */
  fromOffset: number;
  toOffset: number;
  /** Messages lost: `toOffset - fromOffset + 1`, or 0 when nothing was lost (stray bytes were cut). */
  messages: number;
  /** What was found and what was done (bytes skipped, a file cut, how the loss was known). */
  detail: string;
  /** ms since the epoch when the range was first found (a range stays listed across restarts until retention passes it). */
  foundAt: number;
}

export interface GroupPartitionInfo {
  partition: number;
  /** Next offset never delivered to the group. */
  nextOffset: number;
  /** Every offset below this is acknowledged or dead-lettered. */
  ackFloor: number;
  /** Messages stored but not yet acknowledged by the group (includes pending). */
  lag: number;
  /** Delivered and waiting for ack / nack / deadline. */
  pending: number;
  /** Waiting to be redelivered (nacked or past their deadline). */
  redeliveryQueued: number;
  /**
   * Messages that retention removed before the group settled them (never delivered, or delivered and
   * not yet acknowledged), since the group was created.
   */
  lostToRetention: number;
  /**
   * Messages of this partition the group moved to the dead-letter station (after maxDeliveries, or by a
   * deadLetter verb) since it was created; a seek keeps the count. The partitions' counts add up to the
   * group's `deadLettered`.
   */
  deadLettered: number;
}

export interface GroupInfo {
  station: string;
  group: string;
  createdAt: number;
  maxAckTimeMs: number;
  maxDeliveries: number;
  partitions: GroupPartitionInfo[];
  lag: number;
  pending: number;
  redeliveries: number;
  /** Messages the group moved to the dead-letter station since it was created: the sum of the partitions' `deadLettered`. */
  deadLettered: number;
  /** The sum of the partitions' `lostToRetention`. */
  lostToRetention: number;
  /**
   * Seconds since the produce time of the oldest message the group has not settled (acked or
   * dead-lettered): the message at the ack floor of a partition with lag, delivered-and-unacked or not
   * yet delivered alike — Kafka's consumer lag in time. null when nothing retained is unsettled.
   * Computed when asked (one read per partition whose floor moved).
   */
  oldestUnackedAgeSeconds: number | null;
}

export interface ReplayResult {
  replayed: number;
  purged: number;
}
