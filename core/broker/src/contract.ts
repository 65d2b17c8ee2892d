/**
 * The StationStore contract: the only way the rest of Junction touches messages. The embedded engine
 * (this package) and the JetStream engine (core/cluster) implement it, and one conformance suite
 * (`@junction/broker/conformance`) runs against both.
 *
 * Every method validates its input and throws a JunctionError with a stable code on bad input or an
 * unknown station / group. Values are bytes end to end; the store never parses them.
 */
import { createHash } from 'node:crypto';
import type {
  DamagedRange,
  FsyncPolicy,
  GroupInfo,
  GroupPartitionInfo,
  PackedMessages,
  PartitionInfo,
  ReplayResult,
  SettleOutcome,
  StartPosition,
  StationConfig,
  StationConfigInput,
  StationHealth,
  StationInfo,
  StationPatch,
} from '@junction/protocol';

export type {
  DamagedRange,
  FsyncPolicy,
  GroupInfo,
  GroupPartitionInfo,
  PartitionInfo,
  ReplayResult,
  SettleOutcome,
  StartPosition,
  StationConfig,
  StationConfigInput,
  StationHealth,
  StationInfo,
  StationPatch,
};

/** A message to produce. */
export interface MessageInput {
  value: Uint8Array;
  key?: string | undefined;
  headers?: Record<string, string> | undefined;
  /** Idempotency id: a second message with the same msgId inside the station's dedup window is not stored. */
  msgId?: string | undefined;
}

/** The outcome of one produced message, in the order the messages were given. */
export type ProduceResult =
  | { status: 'stored'; partition: number; offset: number }
  | { status: 'duplicate'; partition: number; offset: number }
  | { status: 'rejected'; code: string; message: string };

/** A stored message. Offsets are per partition, start at 1, strictly increase and are never reused. */
export interface StoredMessage {
  station: string;
  partition: number;
  offset: number;
  /** ms since the epoch, set by the broker when the message was stored. */
  timestamp: number;
  key?: string | undefined;
  headers: Record<string, string>;
  value: Uint8Array;
}

/** One delivery of a message to a consumer group. `deliveryCount` starts at 1. */
export interface Delivery extends StoredMessage {
  deliveryId: string;
  deliveryCount: number;
  /** The incarnation of the station (`StationInfo.id`), when the engine reports it (not serialized over HTTP). */
  stationId?: string | undefined;
}

/**
 * Numbers per message in `DeliveryChunk.nums`, and where each sits: the wire protocol's packed layout
 * (a DeliveryChunk is a `PackedMessages` the binary fetch answer is encoded from).
 */
export { PACKED_FIELDS as CHUNK_FIELDS, PackedField as ChunkField } from '@junction/protocol';

/**
 * Deliveries of one partition in packed form (`fetchChunks`): no object per message. Message `i`'s
 * numbers are `nums[i * CHUNK_FIELDS + ChunkField.x]`; its value is `data[start, start + length)` — the
 * values lie in `data` in offset order, possibly with other bytes between them, and those are always the
 * partition's own stored data (its log's framing), never unrelated memory: a consumer may copy a region
 * from one value to another whole. `data` may be shared with other chunks and reads: it is read-only,
 * copy what you keep. Offsets increase but may skip (messages meant for another group, or lost to
 * corruption, are left out).
 */
export interface DeliveryChunk extends PackedMessages {
  /** The incarnation of the station the messages belong to (`StationInfo.id`). */
  stationId: string;
  partition: number;
  count: number;
  /** Sum of the values' lengths. */
  bytes: number;
  data: Uint8Array;
  nums: Float64Array;
  /** Distinct headers objects (read-only); `ChunkField.headers` indexes into it. */
  headers: Record<string, string>[];
  /** Keys by message; absent when no message has one. */
  keys?: (string | undefined)[] | undefined;
  /** Delivery counts by message; absent when every message is delivered for the first time. */
  attempts?: number[] | undefined;
  /**
   * The group's epoch on this partition when the messages were delivered: the ids are then the default
   * form `deliveryId(partition, offset, attempt, epoch)` of @junction/protocol, and an ack by range names
   * it (`OffsetRange.epoch`).
   */
  epoch?: string | undefined;
  /**
   * The deliveries' ids when the engine's ids are not the default form (absent from the embedded
   * engine's chunks).
   */
  deliveryIds?: string[] | undefined;
}

/** A range of offsets of one partition, both ends included. */
export interface OffsetRange {
  partition: number;
  from: number;
  to: number;
  /**
   * The epoch the offsets were delivered in (`DeliveryChunk.epoch`). When given, a range delivered in
   * an earlier epoch of the group's partition (before a seek, or by an earlier incarnation of the station
   * or group) settles nothing. Always pass it: without it, the range settles whatever waits there now.
   */
  epoch?: string | undefined;
}

export interface GroupOptions {
  /** Where a new group starts. Default earliest. */
  start?: StartPosition | undefined;
  maxAckTimeMs?: number | undefined;
  maxDeliveries?: number | undefined;
}

export interface FetchOptions {
  maxMessages: number;
  maxBytes: number;
  /** Long poll: wait up to this long for the first message. 0 answers at once. */
  waitMs: number;
  signal?: AbortSignal | undefined;
  /**
   * Deliver from this partition first (then from the others, as usual). A consumer that batches per
   * partition fills one batch at a time with it. Engines may ignore it.
   */
  preferPartition?: number | undefined;
}

export interface ReadOptions {
  partition: number;
  /** Default: the partition's first retained offset. */
  fromOffset?: number | undefined;
  limit: number;
  /**
   * Default 64 MiB of values. A read returns at least one message and stops before this many value
   * bytes; read on from the last offset + 1 for the rest.
   */
  maxBytes?: number | undefined;
}

/** Which part of a listing to answer: names in order, after `after`, starting with `prefix`, at most `limit`. */
export interface ListOptions {
  limit?: number | undefined;
  after?: string | undefined;
  prefix?: string | undefined;
}

export interface DeadLetterDetails {
  code?: string | undefined;
  headers?: Record<string, string> | undefined;
}

export interface ReplayOptions {
  group?: string | undefined;
  fromOffset?: number | undefined;
  toOffset?: number | undefined;
  purge?: boolean | undefined;
}

/** Something that happened in a store that metrics and logs care about. */
export type StoreEvent =
  | { type: 'produced'; station: string; messages: number; bytes: number }
  | { type: 'delivered'; station: string; group: string; messages: number; bytes: number; redeliveries: number }
  | { type: 'acked'; station: string; group: string; messages: number }
  | { type: 'dead-lettered'; station: string; group: string; messages: number }
  | { type: 'fsync'; seconds: number }
  | { type: 'retention-lost'; station: string; group: string; partition: number; messages: number }
  /** msgIds left the station's dedup window early: its index was at its bound (`dedupMaxIds`). */
  | { type: 'dedup-evicted'; station: string; ids: number }
  /** A damaged range found (once per range, when found: on open or while reading); `messages` lost in it. */
  | { type: 'corruption'; station: string; partition: number; fromOffset: number; toOffset: number; messages: number; detail: string }
  /**
   * A metadata file was damaged: `previous-copy` (loaded from the copy kept beside it), `rebuilt` (from
   * the data: a station from its partitions, a group from its journal), `reset` (a group's journal was
   * lost: it restarts from the first retained offset), `lost` (nothing to recover from: the station is
   * listed as damaged). `group` names the group for group files.
   */
  | {
      type: 'metadata-repair';
      station: string;
      group?: string | undefined;
      file: string;
      outcome: 'previous-copy' | 'rebuilt' | 'reset' | 'lost';
      detail: string;
    };

/** What StationStore.healthSummary answers. */
export interface HealthSummary {
  /** Stations whose health is not `ok` (degraded or damaged). */
  degraded: number;
  /** Their reasons, prefixed with the station, at most the number asked for. */
  reasons: string[];
  /** Reasons left out of `reasons`. */
  more: number;
}

/** What StationStore.totals answers. */
export interface StoreTotals {
  stations: number;
  partitions: number;
  messages: number;
  bytes: number;
  /** Stations with recent work (a produce, fetch, ack or timer since the last background pass). */
  activeStations: number;
  /** Partition logs open now (the rest are summaries until used), where the engine has such a notion. */
  openPartitions?: number | undefined;
  openFiles?: { budget: number; open: number; peak: number; evictions: number; overBudget: number } | undefined;
}

export interface StationStore {
  /** Opens the store (recovers from disk for the embedded engine). Must be called once before use. */
  open(): Promise<void>;
  /** Flushes and closes. Pending long polls answer empty. Idempotent. */
  close(): Promise<void>;

  /**
   * Creates a station. An engine that keeps copies of stations on several servers (core/cluster) also
   * takes `replicas` in `config` and `patch`; the embedded engine refuses it (CONFIG_INVALID).
   */
  createStation(name: string, config?: StationConfigInput): Promise<StationInfo>;
  /** Changes what may change on a live station; CONFIG_IMMUTABLE for partitions / storage. */
  updateStation(name: string, patch: StationPatch): Promise<StationInfo>;
  /** Deletes the station, its groups and its dead-letter station. */
  deleteStation(name: string): Promise<void>;
  getStation(name: string): Promise<StationInfo>;
  /**
   * Stations in name order (dead-letter stations included). With options, only those after `after` and
   * starting with `prefix`, at most `limit`: a store with many stations need not build every answer.
   */
  listStations(options?: ListOptions): Promise<StationInfo[]>;
  /**
   * Optional: the stations that are not healthy (StationInfo.health), without looking at the others — an
   * engine that keeps a running set of them answers in time proportional to that set, not to every
   * station. At most `maxReasons` reasons (each prefixed "station <name>: …"); `degraded` counts the
   * stations. /healthz uses it when present.
   */
  healthSummary?(maxReasons: number): Promise<HealthSummary>;
  /**
   * Optional: totals over every station, computed without building each station's info (for /metrics,
   * whose per-station series are capped). `openFiles` is the descriptor budget's state, where there is one.
   */
  totals?(): Promise<StoreTotals>;

  /**
   * Stores a batch. Each message is stored, answered as a duplicate, or rejected (too large) on its
   * own; the promise resolves once every stored message is durable under the station's fsync policy.
   */
  produce(station: string, messages: readonly MessageInput[]): Promise<ProduceResult[]>;
  /** Reads a range of one partition for browsing; touches no group. */
  read(station: string, options: ReadOptions): Promise<StoredMessage[]>;

  /** Creates a group; GROUP_EXISTS if it exists. Groups are also created on first fetch (at earliest). */
  createGroup(station: string, group: string, options?: GroupOptions): Promise<GroupInfo>;
  getGroup(station: string, group: string): Promise<GroupInfo>;
  /** The station's groups in name order; options as for listStations. */
  listGroups(station: string, options?: ListOptions): Promise<GroupInfo[]>;
  deleteGroup(station: string, group: string): Promise<void>;
  /**
   * Delivers up to maxMessages / maxBytes (at least one message even if larger than maxBytes):
   * redeliveries first, then new messages, in offset order per partition.
   */
  fetch(station: string, group: string, options: FetchOptions): Promise<Delivery[]>;
  ack(station: string, group: string, deliveryIds: readonly string[]): Promise<SettleOutcome[]>;
  /**
   * Optional fast path of `fetch` for consumers inside the broker's process (the connector runtime): the
   * same deliveries, with the same group bookkeeping, packed per partition instead of one object each.
   */
  fetchChunks?(station: string, group: string, options: FetchOptions): Promise<DeliveryChunk[]>;
  /**
   * Optional, with `fetchChunks`: acks every delivered, unsettled offset in the ranges — what `ack` does
   * for their ids (an ack of any attempt acks a waiting message); offsets not waiting are skipped.
   * Resolves once the acks are durable under the station's fsync policy. Returns how many were acked.
   */
  ackRanges?(station: string, group: string, ranges: readonly OffsetRange[]): Promise<number>;
  /** Makes the deliveries available again after delayMs (default at once). */
  nack(station: string, group: string, deliveryIds: readonly string[], delayMs?: number): Promise<SettleOutcome[]>;
  /**
   * Moves the deliveries' messages to the dead-letter station with the reason. `details.code` replaces
   * the default code (CONSUMER_DEAD_LETTER) and `details.headers` are added to each dead letter (the
   * connector runtime names the connector and the error there).
   */
  deadLetter(
    station: string,
    group: string,
    deliveryIds: readonly string[],
    reason?: string,
    details?: DeadLetterDetails,
  ): Promise<SettleOutcome[]>;
  /** Moves the group's cursor; pending deliveries are forgotten. */
  seek(station: string, group: string, position: StartPosition): Promise<GroupInfo>;
  /**
   * Optional, for engines whose deliveries other processes may hold (core/cluster): makes every delivery
   * of these partitions that is outstanding in the group — handed out and not settled, by any node, or
   * still to come from a fetch that is waiting — available again now, instead of after its ack deadline,
   * whoever holds it. What the group settled stays settled (an engine may deliver again what was acked out
   * of order above its ack floor: at least once). Ids handed out before settle nothing afterwards (`stale`):
   * their holder has lost them. Resolves once a fetch of those partitions gets them. For a consumer that
   * takes partitions over from another (the connector runtime's sink task hand-over).
   * PARTITION_NOT_FOUND / GROUP_NOT_FOUND / STATION_NOT_FOUND as the other calls.
   */
  releaseDeliveries?(station: string, group: string, partitions: readonly number[]): Promise<void>;

  /** Re-produces dead letters into their origin station (or for one group only). */
  replayDeadLetters(station: string, options?: ReplayOptions): Promise<ReplayResult>;
  /** Drops dead letters up to an offset (all when absent). Returns how many were dropped. */
  purgeDeadLetters(station: string, upToOffset?: number): Promise<number>;

  /**
   * Subscribes to store events (metrics). Returns an unsubscribe function. `corruption` and
   * `metadata-repair` events emitted before the subscription (found while the store opened) are
   * replayed to the new listener first, so none is lost to a late subscriber.
   */
  onEvent(listener: (event: StoreEvent) => void): () => void;
}

/**
 * The incarnation id of a station whose metadata predates ids: derived from its name and creation time,
 * so it is stable across restarts and differs between incarnations created at different milliseconds.
 */
export function legacyStationId(name: string, createdAt: number): string {
  const h = createHash('sha256').update(`${name}\u0000${createdAt}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * Applies ListOptions to names (any order in, name order out): the engines' shared implementation, and
 * what the HTTP layer applies again to whatever an engine answers.
 */
export function pageOfNames(names: Iterable<string>, options: ListOptions = {}): string[] {
  const { after, prefix, limit } = options;
  const out: string[] = [];
  for (const n of names) if ((after === undefined || n > after) && (prefix === undefined || n.startsWith(prefix))) out.push(n);
  out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return limit === undefined ? out : out.slice(0, limit);
}

/** The dead-letter station of a station. */
export function dlsName(station: string): string {
  return `${station}.dls`;
}
