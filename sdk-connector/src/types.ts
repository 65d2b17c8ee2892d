/**
 * The contracts between a plugin and the runtime. Everything a batch or a result carries is plain
 * data (numbers, strings, Uint8Array, plain objects), because it crosses a worker-thread boundary by
 * structured clone.
 */
import type { WriteResult } from './results.js';

/** A JSON value: what a source position may be (the runtime stores it as JSON). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

// ── Context ────────────────────────────────────────────────────────────────────────────────────────

/** A pino-style log method: `log.info({ file }, 'wrote')` or `log.info('wrote %s', file)`. */
export interface LogFn {
  (obj: object, msg?: string, ...args: unknown[]): void;
  (msg: string, ...args: unknown[]): void;
}

/**
 * The logger a plugin receives: the subset of pino's Logger a plugin may rely on (a pino logger is one).
 * It is already bound to the connector and task. Never log config values: the runtime redacts secrets
 * in what it logs, but it cannot redact what a plugin logs.
 */
export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

/** A monotonically increasing count. */
export interface Counter {
  /** Adds `n` (default 1; must be ≥ 0). */
  inc(n?: number): void;
}

/** A distribution of observed values (latencies in seconds, sizes in bytes). */
export interface Histogram {
  observe(value: number): void;
}

/**
 * Plugin-defined metrics. Names are snake_case with a unit suffix (`requests_total`, `upload_seconds`,
 * `file_bytes`); the runtime prefixes them with the plugin's name and labels them with connector and
 * task. Asking twice for the same name returns the same instrument; the same name as two kinds throws.
 */
export interface Metrics {
  counter(name: string, help: string): Counter;
  histogram(name: string, help: string): Histogram;
}

/** What every plugin instance receives from the runtime on open. */
export interface ConnectorContext {
  /** A child logger bound to `{ connector, task }`. */
  readonly logger: Logger;
  /** The connector's name (an instance of the plugin, e.g. `orders-to-files`). */
  readonly connector: string;
  /** The task's index within the connector, from 0. A task runs in one worker thread. */
  readonly task: number;
  readonly metrics: Metrics;
}

// ── Sink ───────────────────────────────────────────────────────────────────────────────────────────

/** One stored message, as the sink receives it. */
export interface SinkMessage {
  /** Its offset in its partition: ≥ 1, unique, never reused. */
  readonly offset: number;
  /** Milliseconds since the epoch when the broker stored it. */
  readonly timestamp: number;
  readonly key?: string;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The bytes as stored. Backed by a plain ArrayBuffer (never shared), so it can go straight to fetch or
   * a socket. A view into the batch's one buffer: use its byteOffset / byteLength, not `.buffer` alone.
   */
  readonly value: Uint8Array<ArrayBuffer>;
}

/**
 * The unit of work the runtime hands a sink: messages of one partition of one station, in increasing
 * offset order. The runtime never sends an empty batch.
 *
 * Offsets may have gaps (retention, a message dead-lettered or confirmed earlier, a retry batch that
 * carries only the messages that answered `retry`). A batch may also repeat messages the sink already
 * confirmed (a replay after a crash, cut into batches the same way or not), so an exactly-once sink
 * must decide per offset, not per batch. `firstOffset` / `lastOffset` are the first and last message's offsets.
 */
export interface SinkBatch {
  readonly station: string;
  /**
   * The station's incarnation (`StationInfo.id`): a station deleted and created again under the same name
   * gets a new id, and its offsets start at 1 again. An exactly-once sink keys what it remembers of
   * written offsets on (station, stationId, partition), never on the name alone.
   */
  readonly stationId: string;
  readonly partition: number;
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly messages: readonly SinkMessage[];
  /**
   * The station's schema as the runtime resolved it after fetching this batch's messages: at least as
   * new as the binding their values were validated against on this node (other nodes' changes reach it
   * within about a second). Undefined when the station has no schema. Compare `schema.id` with what the
   * sink built its table from to notice a new version mid-stream.
   */
  readonly schema?: StationSchemaInfo | undefined;
  /**
   * Offsets between firstOffset and lastOffset that the connector's transforms dropped (a filter): not in
   * `messages`, settled by the runtime (acknowledged) whatever the sink answers, and dropped again on a
   * replay (transforms are deterministic). A sink may count them as done — an exactly-once sink that
   * records offset ranges can let a range span them instead of breaking it. Absent: none dropped.
   */
  readonly dropped?: readonly number[] | undefined;
}

export interface WriteOptions {
  /**
   * Aborted when the runtime gives up on this write (its timeout, the task stopping). Pass it to I/O.
   * After an abort the answer is ignored and every message of the batch will be sent again.
   */
  readonly signal: AbortSignal;
}

/** What a sink's `open` returns. */
export interface Sink {
  /**
   * Writes a batch; resolves with exactly one result per message, `results[i]` for `messages[i]`.
   * Resolve `ok()` only once the message is durably in the destination: the runtime acknowledges it
   * then. Throwing means "none of the batch was confirmed": a retryable error (see `isRetryable`) is
   * retried with backoff like `retry()`; any other fails the task (or, with `errors.tolerance: all`,
   * dead-letters the messages after the retry budget).
   *
   * The runtime never calls `write` again for the same station and partition before the previous
   * call for it settled; batches of different partitions may be written concurrently.
   */
  write(batch: SinkBatch, opts: WriteOptions): Promise<WriteResult[]>;
  /**
   * Releases connections and files. Called once no write is in flight; must be safe to call twice,
   * and must not throw for a sink whose destination went away.
   */
  close(): Promise<void>;
  /**
   * Optional: proves the destination is reachable with this config (used by validation and before a
   * task starts). Resolves, or throws a JunctionError such as CONNECTION_FAILED or AUTH_FAILED.
   */
  checkConnection?(): Promise<void>;
}

/** A schema format, named as the registry (and Confluent) names it. */
export type SchemaFormatName = 'AVRO' | 'JSON' | 'PROTOBUF';

/** A schema a version imports, resolved to its text (`name` is how the importing schema names it). */
export interface SchemaReferenceInfo {
  readonly name: string;
  readonly subject: string;
  readonly version: number;
  readonly schemaType: SchemaFormatName;
  readonly schema: string;
}

/** One version of a registry subject, with everything needed to parse it. */
export interface SchemaVersionInfo {
  readonly subject: string;
  readonly version: number;
  /** The registry's global id: what a value in the Confluent wire format names in its bytes 1–4. */
  readonly id: number;
  readonly schemaType: SchemaFormatName;
  /** The schema text as registered. */
  readonly schema: string;
  /** The schemas it imports, resolved (references of references first); empty when none. */
  readonly references: readonly SchemaReferenceInfo[];
}

/**
 * The schema a station is bound to (`config.schema`): the version its binding resolves to now, plus
 * every live version of the subject, since a value in the Confluent wire format may name any of them
 * (the broker accepts an id of any version of the station's subject). Decode values with
 * `@junction/sdk-connector/schema`.
 */
export interface StationSchemaInfo extends SchemaVersionInfo {
  /** Every live version of the subject, oldest first (this one included). */
  readonly versions: readonly SchemaVersionInfo[];
}

/** What a sink's `open` receives. */
export interface SinkContext extends ConnectorContext {
  /**
   * The station's schema when the task opened (resolved from the registry when the station has a
   * `schema` binding), or undefined when it has none. It does not change while the sink is open: a
   * newer binding or version arrives with the batches (`SinkBatch.schema`).
   */
  readonly schema?: StationSchemaInfo | undefined;
}

// ── Source ─────────────────────────────────────────────────────────────────────────────────────────

/** One message a source emits into its station. */
export interface SourceMessage {
  readonly value: Uint8Array;
  readonly key?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * A stable id for deduplication: the station drops a message whose msgId it stored within its dedup
   * window, so a batch replayed after a crash is not stored twice. Derive it from the origin (a row id,
   * an event id, a sequence number), never from the clock.
   */
  readonly msgId?: string;
}

/**
 * Messages plus where the source stands after them. `position` is what `open` receives back (as
 * `ctx.position`) after a restart, to resume from just after this batch. It must be JSON-serializable.
 * A batch may have no messages, to advance the position past records the source skipped.
 */
export interface SourceBatch<P extends JsonValue = JsonValue> {
  readonly messages: readonly SourceMessage[];
  readonly position: P;
}

/** What a source's `open` returns. */
export interface Source<P extends JsonValue = JsonValue> {
  /**
   * Called once per open. Yields batches until the origin is exhausted (the iterable ends) or `signal`
   * is aborted (the iterable must then end promptly, or its pending `next()` reject with an AbortError).
   * The runtime pulls the next batch only when it has room: a source waits rather than buffers.
   */
  read(signal: AbortSignal): AsyncIterable<SourceBatch<P>>;
  /**
   * Called after the runtime has stored the batches with these positions in the station and recorded
   * the newest position durably; in read order. A source may acknowledge upstream here (delete queue
   * messages, commit a consumer offset). Called with positions of batches it yielded only.
   */
  commit(positions: P[]): Promise<void>;
  /** Releases resources. Safe to call twice; after it, `read`'s iterable ends. */
  close(): Promise<void>;
  /** Optional: as for a sink. */
  checkConnection?(): Promise<void>;
}

export interface SourceContext<P extends JsonValue = JsonValue> extends ConnectorContext {
  /**
   * The newest position the runtime stored (of a batch it stored in the station), or undefined on the
   * connector's first start or after its offsets were reset. Resume from just after it. Batches the
   * source yielded after it may or may not be in the station: emit them again with the same msgIds.
   */
  readonly position: P | undefined;
}
