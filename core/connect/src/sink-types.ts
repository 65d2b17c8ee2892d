/**
 * The sink runner's shared vocabulary: constants, the status and option types it exports, and the
 * internal records (task, partition, batch) its modules share. See sink-runner.ts for the guarantees.
 */
import type { StationSchemaResolver } from './sink-schema.js';
import { CHUNK_FIELDS, type DeliveryChunk } from '@junction/broker';
import { DLS_HEADERS } from '@junction/protocol';
import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { StationStore } from '@junction/broker';
import type { ConnectorDeclaration, ConnectorState } from './declaration.js';
import type { ConnectMetrics } from './metrics.js';
import { offsetAt } from './chunks.js';
import type { PackedBatch } from './wire.js';
import type { WorkerTransforms } from './transform-config.js';
import type { SharedLane, SharedSinkPool } from './shared-pool.js';
import type { Freshness, FreshnessTracker } from './freshness.js';

export const CONNECTOR_DLS_HEADERS = {
  connector: DLS_HEADERS.connector,
  errorCode: 'junction-connector-error-code',
  errorMessage: 'junction-connector-error-message',
  /** Times the runtime handed the message to the sink (the broker's `junction-dls-attempts` counts deliveries). */
  attempts: 'junction-connector-attempts',
} as const;

/**
 * How long a stopping connector lets writes that already started finish before it abandons them
 * (terminating their workers): `min(STOP_GRACE_MS, writeTimeoutMs + hardTimeoutGrace(writeTimeoutMs))`.
 * Batches still opening their sink or waiting for a worker are abandoned at once.
 */
export const STOP_GRACE_MS = 10_000;
/** How long a sink's `open` (and a batch's wait for a worker) may take at least, before the write's own timeout starts. */
export const OPEN_TIMEOUT_MS = 30_000;
/**
 * How long a terminated worker thread has to exit. One that has not is blocked in native code (a libuv
 * threadpool call that never returns, such as Node 20's recursive mkdir under /proc): it is abandoned —
 * its batches are answered WORKER_STUCK, its pool replaced — and its task restarts only once it exits.
 */
export const TERMINATE_WAIT_MS = 2_000;
/**
 * Shared threads: how long a stopping connector waits, after the grace for started writes, for the
 * batches it gave up to be answered skipped, before it terminates (recycles) their thread. Within the
 * stop bound: a shared task has no pool of its own to destroy (the last TERMINATE_WAIT_MS of the bound).
 */
export const SHARED_CANCEL_WAIT_MS = 1_000;
/** How long a stopping connector waits for its sinks' `close()`; then their threads are terminated. */
export const CLOSE_TIMEOUT_MS = 5_000;

/**
 * The longest a sink connector's stop (pause, stop, delete, restart, update, shutdown) takes, whatever
 * its plugin does: the grace for started writes, the terminate wait, the close timeout and the wait for
 * the pool's threads to exit (the store's own acks and nacks come on top, a few ms).
 */
export function stopBoundMs(writeTimeoutMs: number, timeouts: StopTimeouts = STOP_TIMEOUTS): number {
  return (
    Math.min(STOP_GRACE_MS, writeTimeoutMs + hardTimeoutGrace(writeTimeoutMs)) +
    timeouts.terminateWaitMs +
    timeouts.closeTimeoutMs +
    timeouts.terminateWaitMs
  );
}

/**
 * The two waits a stop spends on a plugin that does not cooperate. The product always runs with
 * STOP_TIMEOUTS; tests that wait these bounds out many times (the wedge matrix) may run shorter ones
 * through the runtime's `stopTimeouts` option — the same code paths, smaller numbers.
 */
export interface StopTimeouts {
  /** How long a terminated worker thread has to exit before it counts as stuck (TERMINATE_WAIT_MS). */
  terminateWaitMs: number;
  /** How long a stop waits for a sink's or source's `close()` (CLOSE_TIMEOUT_MS). */
  closeTimeoutMs: number;
}
export const STOP_TIMEOUTS: Readonly<StopTimeouts> = Object.freeze({
  terminateWaitMs: TERMINATE_WAIT_MS,
  closeTimeoutMs: CLOSE_TIMEOUT_MS,
});

/** `STOP_TIMEOUTS` with what `partial` sets. */
export function stopTimeouts(partial: Partial<StopTimeouts> | undefined): StopTimeouts {
  return { ...STOP_TIMEOUTS, ...partial };
}
/** Base of the retry backoff (full jitter, up to `errors.retryMaxDelayMs`). */
export const RETRY_BASE_MS = 100;
/**
 * Most messages one fetch asks for: a fetch decodes its records in one go on the event loop, and a
 * worker's answer (which frees the partition for its next batch) waits behind it — 1000 keeps that
 * wait to a few ms while the per-fetch cost stays small.
 */
export const FETCH_CHUNK = 1000;
/**
 * The long poll of a sink's fetch: how long the store holds a fetch that finds nothing. An idle connector
 * then costs one fetch per FETCH_WAIT_MS (a timer in the store, no thread); messages produced, nacks and
 * redeliveries falling due answer it at once, and a stop aborts it.
 */
export const FETCH_WAIT_MS = 30_000;
/** A task that wrote successfully this long after a restart has its restart backoff reset. */
export const HEALTHY_AFTER_MS = 30_000;

export interface TaskStatus {
  id: number;
  state: ConnectorState;
  trace?: string | undefined;
  worker?: string | undefined;
  /** When a failed task restarts by itself (ms since epoch); absent for a task that needs a manual restart. */
  restartAt?: number | undefined;
  restarts: number;
  /** The last error the task met (a retry answer, a retryable error, a failure), kept after it recovered. */
  lastError?: { code: string; message: string; at: number } | undefined;
  /**
   * Present while the task's messages keep failing and are being retried (retry answers, retryable
   * errors, a failed open, restarts after a crash or timeout): since when (ms since epoch, the first
   * failure of the oldest failing messages), how many attempts failed since then, and when the next one
   * is due. Gone once they are written (or dead-lettered, or the task failed for good).
   */
  retrying?: RetryingStatus | undefined;
  /** Sink: the partitions this task writes. */
  partitions?: number[] | undefined;
  /** Source: the read ended (the origin is exhausted). */
  finished?: boolean | undefined;
  /** Sink: when the task last landed a batch and the produce time of its last message landed; null until it landed one. */
  freshness?: Freshness | null | undefined;
}

/** A task (or connector) whose messages keep failing and are retried; see `TaskStatus.retrying`. */
export interface RetryingStatus {
  /** The first failure of the oldest failing messages (ms since epoch). */
  since: number;
  /** Failed attempts since then (writes or opens answered retry / a retryable error, crashes, timeouts). */
  attempts: number;
  /** When the next attempt is due (ms since epoch), when known. */
  nextAttemptAt?: number | undefined;
}

export interface RunnerEvents {
  /** A task failed for good (retries exhausted with tolerance none): the connector is FAILED too. */
  onFatal(err: Error): void;
  /** Anything worth re-reading status for (tests and logs). */
  onChange?(): void;
}

export interface SinkRunnerOptions {
  store: StationStore;
  decl: ConnectorDeclaration;
  pluginName: string;
  entry: string;
  /** Config with references resolved (never stored, never logged). */
  config: Record<string, unknown>;
  /** Hides the config's secret values in a text (error messages and traces may quote them). Default: none to hide. */
  scrub?: ((text: string) => string) | undefined;
  /** The connector's transforms, applied in the worker before the plugin's write (absent: none). */
  transforms?: WorkerTransforms | undefined;
  logger: Logger;
  logLevel: string;
  metrics: ConnectMetrics;
  events: RunnerEvents;
  /**
   * Run the tasks on the shared pool's threads (the plugin's isolation is `shared`): each task is pinned
   * to one lane while it runs. Absent: each task has a thread of its own (`isolation: thread`).
   */
  shared?: SharedSinkPool | undefined;
  /** Shorter stop waits than the product's STOP_TIMEOUTS (tests only). */
  stopTimeouts?: Partial<StopTimeouts> | undefined;
  /** Batches in workers at once; default 2 × tasks. */
  maxInFlight?: number | undefined;
  /**
   * Hand the next batch to a task's worker while its current one is written
   * (see `lookahead` in the class notes). Default true; false for comparisons.
   */
  lookahead?: boolean | undefined;
  /**
   * The tasks this runner runs (cluster placement: the ones whose lease this node holds). Default all.
   * The others stay UNASSIGNED here and their partitions are not fetched.
   */
  tasks?: readonly number[] | undefined;
  /** The `worker` reported for the tasks this runner runs (the node's name in cluster mode). */
  worker?: string | undefined;
  /**
   * Cluster placement: the tasks may have run on another node (dead, paused, cut off) that held deliveries
   * without acking them. Before fetching, release every outstanding delivery of the owned partitions
   * (`StationStore.releaseDeliveries`) so the group hands them out again now rather than after the (long)
   * ack deadline.
   */
  reclaim?: boolean | undefined;
  /** Resolves the station's schema for the plugin (see sink-schema.ts). Default: no schema. */
  stationSchemaOf?: StationSchemaResolver | undefined;
  /** Told of every batch a task landed (kept by the runtime per connector, so it outlives the runner). */
  freshness?: FreshnessTracker | undefined;
}

/** A task's runtime state (internal to the sink runner's modules). */
export interface TaskRt {
  id: number;
  /** Batches handed to this task's pool and not answered yet (lookahead: the write running and the next). */
  inFlight: number;
  /** Lookahead: the `settled` flag of the task's last dispatch; the next one waits for it in the worker. */
  tail?: SharedArrayBuffer | undefined;
  state: ConnectorState;
  trace?: string | undefined;
  worker?: string | undefined;
  failures: number;
  restarts: number;
  startedAt: number;
  restartAt?: number | undefined;
  timer?: NodeJS.Timeout | undefined;
  lastError?: { code: string; message: string; at: number } | undefined;
  retrying?: RetryingStatus | undefined;
  /** Failed for good (needs a manual restart): no restart is scheduled, not even once a stuck thread exits. */
  permanent?: boolean | undefined;
  /** A worker thread of this task that did not exit when terminated (abandoned); the task restarts once it exits. */
  stuck?: Worker | undefined;
}

/** A batch handed to a worker and not answered yet (internal to the sink runner's modules). */
export interface Flight {
  task: number;
  /** Settles once the answer (or the rejection) was handled. */
  run: Promise<void>;
  /** Over the batch's `started` flag: non-zero once the plugin's write started (the sink is open). */
  started: Int32Array;
  /** Aborting it terminates the task's thread (a timeout, a stop). */
  ac: AbortController;
  /** Rejects the batch's run with `err` at once: its worker is stuck and will never answer. */
  kill(err: Error): void;
  /** The shared lane it runs on (isolation shared). */
  lane?: SharedLane | undefined;
}

/** A batch of one partition (internal to the sink runner's modules). */
export interface Batch {
  /** The messages, in offset order: pieces of fetched chunks (see chunks.ts). */
  pieces: DeliveryChunk[];
  count: number;
  bytes: number;
  /** Times this batch's messages were handed to the sink. */
  attempts: number;
  firstFailureAt?: number | undefined;
  lastError?: Error | undefined;
  notBefore: number;
  /**
   * The batch packed for a worker ahead of its dispatch (when it was cut, while the partition's previous
   * batch was still being written), so that handing it over after the previous answer is only a post.
   * Dropped once sent (its buffers move to the worker).
   */
  packed?: PackedBatch | undefined;
  /** Handed to a worker and not answered yet. */
  inWorker?: boolean | undefined;
}

/** A partition's runtime state (internal to the sink runner's modules). */
export interface Part {
  id: number;
  task: number;
  /** Messages of this partition the runtime holds: open, ready, current. */
  held: number;
  /** Highest offset taken in: a first delivery above it cannot be one the runtime holds already. */
  top: number;
  /** The last fetch that preferred this partition got less than it asked: not preferred until it delivers again. */
  caughtUp: boolean;
  open: DeliveryChunk[];
  openCount: number;
  openBytes: number;
  openLast: number;
  openTimer?: NodeJS.Timeout | undefined;
  ready: Batch[];
  /** The batch in a worker or waiting to be retried: at most one per partition. */
  current?: Batch | undefined;
  /** `current` is in a worker. */
  writing: boolean;
  /**
   * Lookahead: the partition's next batch, handed to the worker while `current` is written; it reaches
   * the plugin only if `current` ends clean (else it comes back `skipped` and is queued again).
   */
  next?: Batch | undefined;
  retryTimer?: NodeJS.Timeout | undefined;
}

/** Fields per message in a chunk's `nums`. */
export const F = CHUNK_FIELDS;

/** Index of `offset` in a chunk (offsets ascend), or -1. */
export function indexOfOffset(c: DeliveryChunk, offset: number): number {
  let lo = 0;
  let hi = c.count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const o = offsetAt(c, mid);
    if (o === offset) return mid;
    if (o < offset) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** How long after `writeTimeoutMs` (when the plugin's signal fires) the runtime terminates the worker. */
export function hardTimeoutGrace(writeTimeoutMs: number): number {
  return Math.min(5000, Math.max(200, Math.floor(writeTimeoutMs / 4)));
}
