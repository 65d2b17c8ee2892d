/**
 * What crosses between the main thread and the worker threads that run plugin code. Plain data only
 * (structured clone); message values travel packed in one transferred ArrayBuffer per batch, so a
 * batch crosses without copying each value.
 */
import type { SerializedError, WriteResult, JsonValue, StationSchemaInfo } from '@junction/sdk-connector';
import type { WorkerTransforms } from './transform-config.js';

/**
 * A batch for the worker, in a compact form: structured clone is slow for many small objects, so
 * per-message numbers travel in one Float64Array, the distinct headers as one JSON array text (most
 * batches have one or a few), keys as one array; the values in one buffer, copied there region by region
 * from where the store read them (see chunks.ts). All buffers are transferred.
 */
export interface PackedBatch {
  station: string;
  /** The station's incarnation (`StationInfo.id`). */
  stationId: string;
  partition: number;
  firstOffset: number;
  lastOffset: number;
  count: number;
  /** The values, in offset order (other bytes may lie between them). */
  buf: ArrayBuffer;
  /** Float64Array: per message [offset, timestamp, value start in `buf`, value length, headers index]. */
  nums: ArrayBuffer;
  /** The distinct headers objects as one JSON array text; `nums` points into the array. */
  headers: string;
  /** Keys (undefined where a message has none); absent when no message has one. */
  keys?: (string | undefined)[] | undefined;
}

/** Per-message fields in `PackedBatch.nums`. */
export const PACKED_FIELDS = 5;

/** Plugin metrics recorded in a worker since its last report. */
export interface MetricReport {
  name: string;
  help: string;
  kind: 'counter' | 'histogram';
  task: number;
  /** Counter: the increment. */
  inc?: number;
  /** Histogram: the observations (at most a few hundred per report). */
  values?: number[];
}

export interface SinkWriteTask {
  op: 'write';
  connector: string;
  plugin: string;
  task: number;
  entry: string;
  /** Raw config with references resolved; the worker parses it with the plugin's schema. */
  config: Record<string, unknown>;
  configHash: string;
  /** The connector's transforms (part of `configHash`); absent: none. */
  transforms?: WorkerTransforms | undefined;
  logLevel: string;
  writeTimeoutMs: number;
  /**
   * Int32Array over it: [0] becomes ms since `dispatchedAt` + 1 when the worker starts the write (after
   * the sink is open), so the runtime's timeout counts the write, not the time queued or opening. [1]
   * (when present) is set by the runtime to give the batch up before it reaches the plugin (a stopping
   * connector on a shared thread): the worker then answers `skipped` instead of opening or writing.
   */
  started: SharedArrayBuffer;
  dispatchedAt: number;
  batch: PackedBatch;
  /**
   * Int32Array over it: [0] becomes 1 when this write ended with every message ok or dead-lettered,
   * 2 when it ended otherwise (an error, a retry answer, skipped); the runtime sets 3 when the worker
   * died without answering. The write handed over after this one waits for it (`after`).
   */
  settled: SharedArrayBuffer;
  /**
   * Lookahead (a task's one thread): the `settled` flag of the write handed over just before this one.
   * The worker unpacks this batch at once, then waits for that flag before it calls the plugin, so one
   * write runs at a time and the next is ready the moment the previous ends.
   */
  after?: SharedArrayBuffer | undefined;
  /**
   * This batch follows the previous one of its own partition: written only if that one ended clean
   * (flag 1); otherwise the worker answers `skipped` and the runtime queues the batch again behind the
   * retry, so a partition's batches still reach the plugin in offset order, one at a time.
   */
  requireClean?: boolean | undefined;
  /** The station's schema when it has one (SinkContext.schema at open, SinkBatch.schema always). */
  schema?: StationSchemaInfo | undefined;
}

export interface SinkCloseTask {
  op: 'close';
  connector: string;
  /** Only this task's sink (a shared thread holds other tasks' sinks); absent: every sink of the connector on the thread. */
  task?: number | undefined;
}

export type SinkTask = SinkWriteTask | SinkCloseTask;

export interface SinkWriteAnswer {
  /** One result per message (checked in the worker); absent when every message was ok (`okCount`). */
  results?: WriteResult[];
  /** Every message of the batch answered ok(): their number, instead of that many result objects to clone. */
  okCount?: number;
  error?: SerializedError;
  /**
   * Where `error` came from: opening the sink (loading the plugin, parsing its config, `open()`, opening
   * the transforms), the write, or a transform that failed a message under `errors.tolerance: none`.
   */
  phase?: 'open' | 'write' | 'transform' | undefined;
  /** The write was not attempted: the previous batch of its partition did not end clean (see `requireClean`). */
  skipped?: boolean;
  /** Messages of the batch the transforms dropped (answered ok: acknowledged, not written). */
  dropped?: number;
  /** The batch reached the worker while the write before it was still running (lookahead), and waited. */
  waited?: boolean;
  /**
   * The batch's buffers, handed back (transferred) after a clean write of a sink that does not keep values
   * (`SinkManifest.keepsValues: false`) and no transforms: the runner packs later batches into them.
   */
  spare?: { buf: ArrayBuffer; nums: ArrayBuffer } | undefined;
  /** Time inside the plugin (open + write), ms. */
  pluginMs: number;
  metrics: MetricReport[];
  threadId: number;
}

// ── source worker (a dedicated worker_threads Worker per source task) ─────────────────────────────

export interface SourceWorkerData {
  connector: string;
  plugin: string;
  task: number;
  entry: string;
  config: Record<string, unknown>;
  position: JsonValue | undefined;
  logLevel: string;
  /** The connector's transforms, applied in the worker after each read (absent: none). */
  transforms?: WorkerTransforms | undefined;
}

export type ToSourceWorker = { type: 'next' } | { type: 'commit'; positions: JsonValue[] } | { type: 'stop' };

export interface PackedSourceMessage {
  key?: string | undefined;
  headers?: Record<string, string> | undefined;
  msgId?: string | undefined;
  len: number;
  /** The station a route transform chose (absent: the connector's). */
  station?: string | undefined;
}

export type FromSourceWorker =
  | { type: 'opened' }
  | {
      type: 'batch';
      buf: ArrayBuffer;
      messages: PackedSourceMessage[];
      position: JsonValue;
      pluginMs: number;
      metrics: MetricReport[];
      /** Messages the transforms dropped (not in `messages`), and the ones they failed (dead-lettered by the runner, tolerance all). */
      dropped?: number;
      failed?: { error: SerializedError; value: Uint8Array; key?: string | undefined; headers?: Record<string, string> | undefined }[];
    }
  | { type: 'end'; metrics: MetricReport[] }
  | { type: 'error'; error: SerializedError; phase: 'open' | 'read' | 'commit' }
  | { type: 'closed' };
