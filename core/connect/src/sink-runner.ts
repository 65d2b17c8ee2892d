/**
 * A running sink connector: one fetch loop over the consumer group `connector.<name>`, batches cut per
 * partition, written by plugin code in piscina pools (one single-thread pool per task), and
 * the answers turned into acks, dead letters, retries or task failures.
 *
 * Guarantees kept here:
 * - a message is acked only after the sink answered `ok()` for it (or it was dead-lettered);
 * - per partition at most ONE batch is in a worker or waiting to be retried (so batches of a partition
 *   reach the sink one at a time, in offset order), and a retry batch carries only what answered retry;
 *   except for **lookahead** (each task's one thread): the next batch goes to the worker while the current
 *   one is written and waits there (unpacked) for it: a batch of another partition starts when the write
 *   before it ends; the partition's own next only if that write ended clean (every message ok or
 *   dead-lettered), else it comes back `skipped` and goes behind the retry. The plugin still sees one
 *   write at a time and each partition in offset order; the hand-over (answer, dispatch, unpacking, about
 *   6 ms for 5000 small messages) no longer sits between two writes. Piscina co-schedules no task that
 *   has an AbortSignal, so lookahead's tasks carry none: a timeout or a stop terminates the thread;
 * - memory is bounded: the fetch loop asks only for what fits in `(maxInFlight + 1) × batch.maxMessages`
 *   messages and `(maxInFlight + 1) × batch.maxBytes` bytes (one message above that at most), counting
 *   everything held — accumulating, queued, in a worker, waiting to be retried. A slow sink therefore
 *   slows the fetch; it does not make the runtime buffer;
 * - a plugin that throws a non-retryable error, hangs past `writeTimeoutMs` (its worker is terminated),
 *   exits its worker or exhausts its heap fails only its task: the task's messages are nacked (the
 *   group gives them back after the restart) and the task restarts with backoff 1 s → 60 s.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { CHUNK_FIELDS, ChunkField, type DeliveryChunk, type FetchOptions, type OffsetRange, type StationStore } from '@junction/broker';
import { DLS_HEADERS } from '@junction/protocol';
import { checkWriteResults, deserializeError, isRetryable } from '@junction/sdk-connector';
import type { WriteResult } from '@junction/sdk-connector';
import { ConnectorState, groupName } from './declaration.js';
import type { ConnectorDeclaration } from './declaration.js';
import { ConnectErrorCode, codeOf, connectError, isJunctionError, messageOf, traceOf } from './errors.js';
import type { ConnectMetrics } from './metrics.js';
import { jitteredBackoff, RateMeter, restartDelay, Wakeup } from './util.js';
import { addRanges, chunksFromDeliveries, idsOf, offsetAt, packChunks, pickChunk, sliceChunk } from './chunks.js';
import type { PackedBatch, SinkTask, SinkWriteAnswer } from './wire.js';
import { workerFile } from './worker-file.js';

/** Headers the runtime adds to a message it dead-letters (beside the broker's `junction-dls-*`). */
export const CONNECTOR_DLS_HEADERS = {
  connector: DLS_HEADERS.connector,
  errorCode: 'junction-connector-error-code',
  errorMessage: 'junction-connector-error-message',
  /** Times the runtime handed the message to the sink (the broker's `junction-dls-attempts` counts deliveries). */
  attempts: 'junction-connector-attempts',
} as const;

/** How long a stopping connector lets in-flight writes finish before it abandons them (terminating their workers). */
export const STOP_GRACE_MS = 10_000;
/** How long a sink's `open` (and a batch's wait for a worker) may take at least, before the write's own timeout starts. */
export const OPEN_TIMEOUT_MS = 30_000;
/** Base of the retry backoff (full jitter, up to `errors.retryMaxDelayMs`). */
export const RETRY_BASE_MS = 100;
/**
 * Most messages one fetch asks for: a fetch decodes its records in one go on the event loop, and a
 * worker's answer (which frees the partition for its next batch) waits behind it — 1000 keeps that
 * wait to a few ms while the per-fetch cost stays small.
 */
const FETCH_CHUNK = 1000;
/** A task that wrote successfully this long after a restart has its restart backoff reset. */
const HEALTHY_AFTER_MS = 30_000;

export interface TaskStatus {
  id: number;
  state: ConnectorState;
  trace?: string | undefined;
  worker?: string | undefined;
  /** When a failed task restarts by itself (ms since epoch); absent for a task that needs a manual restart. */
  restartAt?: number | undefined;
  restarts: number;
  lastError?: { code: string; message: string; at: number } | undefined;
  /** Sink: the partitions this task writes. */
  partitions?: number[] | undefined;
  /** Source: the read ended (the origin is exhausted). */
  finished?: boolean | undefined;
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
  logger: Logger;
  logLevel: string;
  metrics: ConnectMetrics;
  events: RunnerEvents;
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
}

interface TaskRt {
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
}

interface Batch {
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

interface Part {
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

const F = CHUNK_FIELDS;

export class SinkRunner {
  readonly group: string;
  private readonly o: SinkRunnerOptions;
  private readonly log: Logger;
  private readonly tasks: TaskRt[];
  private readonly parts = new Map<number, Part>();
  private partList: Part[] = [];
  private rr = 0;
  private preferRr = 0;
  /** One single-thread pool per task this runner runs (a task's partitions always go to its thread). */
  private readonly pools = new Map<number, Piscina<SinkTask, unknown>>();
  private readonly configHash: string;
  private readonly maxInFlight: number;
  readonly maxBufferedMessages: number;
  readonly maxBufferedBytes: number;
  private heldCount = 0;
  private heldBytes = 0;
  private writingCount = 0;
  /** Peak of `heldCount` (tests prove the bound with it). */
  peakHeld = 0;
  private stopping = false;
  private readonly fetchAbort = new AbortController();
  private readonly wake = new Wakeup();
  private fetchLoopDone: Promise<void> = Promise.resolve();
  private readonly inflight = new Set<Promise<void>>();
  /** Batches are handed over ahead (see the class notes). */
  private lookahead = false;
  /** The station's incarnation when the runner started (for deliveries that do not carry theirs). */
  private stationId = '';
  private readonly aborts = new Set<AbortController>();
  private readonly settling = new Set<Promise<unknown>>();
  /** First failure time of messages whose batch failed in a way that nacks them (crash, timeout): survives their redelivery. */
  private readonly failingSince = new Map<string, { since: number; attempts: number }>();
  readonly throughput = new RateMeter();
  /** Ids of the tasks this runner runs. */
  private readonly owned: Set<number>;
  /** Partitions to fetch when this runner runs only some tasks (undefined: all). */
  private fetchPartitions: number[] | undefined;

  constructor(options: SinkRunnerOptions) {
    this.o = options;
    const { decl } = options;
    this.group = groupName(decl.name);
    this.log = options.logger;
    this.maxInFlight = options.maxInFlight ?? 2 * decl.tasks;
    this.maxBufferedMessages = (this.maxInFlight + 1) * decl.batch.maxMessages;
    this.maxBufferedBytes = (this.maxInFlight + 1) * decl.batch.maxBytes;
    this.configHash = createHash('sha256').update(JSON.stringify(options.config)).digest('hex').slice(0, 16);
    const now = Date.now();
    this.tasks = Array.from({ length: decl.tasks }, (_, id) => ({ id, state: ConnectorState.UNASSIGNED, failures: 0, restarts: 0, startedAt: now, inFlight: 0 }));
    this.owned = new Set((options.tasks ?? this.tasks.map((t) => t.id)).filter((t) => t >= 0 && t < decl.tasks));
  }

  /**
   * The ack deadline the group needs so the broker does not redeliver what the runtime still works on:
   * a message may wait for the partition's current batch (its retries and write) and then go through its
   * own, plus the batching latency and a minute of slack; capped at the broker's 12 h.
   */
  static ackDeadlineMs(decl: ConnectorDeclaration): number {
    const perBatch = decl.errors.retryTimeoutMs + Math.max(OPEN_TIMEOUT_MS, decl.writeTimeoutMs) + decl.writeTimeoutMs + hardTimeoutGrace(decl.writeTimeoutMs) + decl.errors.retryMaxDelayMs;
    return Math.min(12 * 3_600_000, 2 * perBatch + decl.batch.maxLatencyMs + 60_000);
  }

  /** Creates the group when missing, starts the pool and the fetch loop. Throws what the store throws (STATION_NOT_FOUND). */
  async start(): Promise<void> {
    const { store, decl } = this.o;
    const station = await store.getStation(decl.station);
    this.stationId = station.id;
    const want = SinkRunner.ackDeadlineMs(decl);
    try {
      await store.createGroup(decl.station, this.group, { start: { type: 'earliest' }, maxAckTimeMs: want, maxDeliveries: 1000 });
    } catch (err) {
      if (codeOf(err) !== 'GROUP_EXISTS') throw err;
      const g = await store.getGroup(decl.station, this.group);
      if (g.maxAckTimeMs < want) {
        this.log.warn(
          { group: this.group, maxAckTimeMs: g.maxAckTimeMs, needed: want },
          'the connector group has a shorter ack deadline than this connector needs: messages may be redelivered while a batch is still retried',
        );
      }
    }
    for (const p of station.partitions) this.partition(p.partition);
    if (this.owned.size < decl.tasks) this.fetchPartitions = this.partList.filter((p) => this.owned.has(p.task)).map((p) => p.id);
    this.lookahead = this.maxInFlight >= 2 && (this.o.lookahead ?? true);
    for (const id of this.owned) {
      const pool = new Piscina<SinkTask, unknown>({
        filename: workerFile('sink-worker.js'),
        name: 'default',
        minThreads: 1,
        maxThreads: 1,
        // Lookahead puts the next batch in the worker while a write runs; it waits there (see wire.ts).
        concurrentTasksPerWorker: this.lookahead ? 2 : 1,
        // Piscina's default parks an idle worker in Atomics.wait, which freezes whatever the plugin still
        // has going between batches (timers, keep-alive sockets, a driver's background retries).
        atomics: 'disabled',
        idleTimeout: 2 ** 31 - 1,
        resourceLimits: { maxOldGenerationSizeMb: decl.maxHeapMb },
      });
      // A worker that dies between tasks (nothing to reject) is reported as an 'error' event.
      pool.on('error', (err: unknown) => this.log.warn({ err: messageOf(err), task: id }, 'sink worker died between batches'));
      this.pools.set(id, pool);
    }
    const now = Date.now();
    for (const t of this.tasks) {
      if (!this.owned.has(t.id)) continue;
      t.state = ConnectorState.RUNNING;
      t.worker = this.o.worker;
      t.startedAt = now;
      this.o.metrics.setTaskState(decl.name, t.id, t.state);
    }
    if (this.o.reclaim) await this.reclaim();
    this.fetchLoopDone = this.fetchLoop();
  }

  private async reclaim(): Promise<void> {
    const { store, decl } = this.o;
    if (!store.releaseDeliveries) return;
    const partitions = this.partList.filter((p) => this.owned.has(p.task)).map((p) => p.id);
    try {
      // Whatever an earlier owner (dead, paused, cut off) still holds or may still receive comes back now.
      await store.releaseDeliveries(decl.station, this.group, partitions);
      this.log.info({ group: this.group, partitions }, 'deliveries left by an earlier owner released to this node');
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, 'could not release the deliveries of an earlier owner; they return after the ack deadline');
    }
  }

  /**
   * Stops: no more fetches, in-flight writes settle (each within its timeout), their acks complete,
   * everything still held is nacked (the group delivers it again when the connector runs again), the
   * sinks are closed and the pool is destroyed. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stopping) return this.stopped;
    this.stopping = true;
    this.stopped = this.doStop();
    return this.stopped;
  }
  private stopped: Promise<void> = Promise.resolve();

  private async doStop(): Promise<void> {
    this.fetchAbort.abort();
    this.wake.notify();
    await this.fetchLoopDone;
    for (const p of this.partList) {
      clearTimeout(p.openTimer);
      clearTimeout(p.retryTimer);
    }
    for (const t of this.tasks) clearTimeout(t.timer);
    // In-flight writes may finish (their answers are honoured) for a while; then they are abandoned.
    const grace = new Promise<void>((r) => setTimeout(r, STOP_GRACE_MS).unref());
    await Promise.race([Promise.allSettled([...this.inflight]), grace]);
    for (const ac of this.aborts) ac.abort(new Error('connector stopping'));
    await Promise.allSettled([...this.inflight]);
    await Promise.allSettled([...this.settling]);
    const ids: string[] = [];
    for (const p of this.partList) {
      for (const c of this.heldPieces(p, true)) idsOf(c, ids);
      p.held = 0;
      p.open = [];
      p.openCount = 0;
      p.openBytes = 0;
      p.ready = [];
      p.current = undefined;
      p.next = undefined;
    }
    this.heldCount = 0;
    this.heldBytes = 0;
    this.o.metrics.buffered.set({ connector: this.o.decl.name }, 0);
    if (ids.length > 0) await this.o.store.nack(this.o.decl.station, this.group, ids, 0).catch((err: unknown) => this.log.warn({ err: messageOf(err) }, 'nack on stop failed; the ack deadline will return the messages'));
    await this.closeSinks();
    await Promise.allSettled([...this.pools.values()].map((pool) => pool.destroy()));
    this.pools.clear();
  }

  /** One close task per task's pool (its one thread closes the sinks it opened). */
  private async closeSinks(): Promise<void> {
    if (this.pools.size === 0) return;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 5000);
    await Promise.allSettled([...this.pools.values()].map((pool) => pool.run({ op: 'close', connector: this.o.decl.name }, { signal: ac.signal })));
    clearTimeout(timer);
  }

  // ── status ──────────────────────────────────────────────────────────────────────────────────────

  taskStatuses(): TaskStatus[] {
    return this.tasks.map((t) => ({
      id: t.id,
      state: t.state,
      trace: t.state === ConnectorState.FAILED ? t.trace : undefined,
      worker: t.worker,
      restartAt: t.state === ConnectorState.FAILED ? t.restartAt : undefined,
      restarts: t.restarts,
      lastError: t.lastError,
      partitions: this.partList.filter((p) => p.task === t.id).map((p) => p.id),
    }));
  }

  /** What the runtime holds now (for the backpressure bound and metrics). */
  buffered(): { messages: number; bytes: number; writing: number; peakMessages: number } {
    return { messages: this.heldCount, bytes: this.heldBytes, writing: this.writingCount, peakMessages: this.peakHeld };
  }

  /**
   * Restarts a task now: a failed one (waiting for its backoff or failed for good) or, with `force`,
   * a running one (its held messages are nacked first). Unknown ids throw TASK_NOT_FOUND.
   */
  restartTask(id: number, force = false): void {
    const t = this.tasks[id];
    if (!t) throw connectError(ConnectErrorCode.TASK_NOT_FOUND, `connector ${this.o.decl.name} has no task ${id}`);
    if (!this.owned.has(id)) return; // runs on another node
    if (t.state !== ConnectorState.FAILED && !force) return;
    if (t.state !== ConnectorState.FAILED) this.releaseTask(t, 0);
    clearTimeout(t.timer);
    t.failures = 0;
    this.revive(t);
  }

  // ── fetch and batching ─────────────────────────────────────────────────────────────────────────

  private partition(id: number): Part {
    let p = this.parts.get(id);
    if (!p) {
      p = { id, task: id % this.o.decl.tasks, held: 0, top: -1, caughtUp: false, open: [], openCount: 0, openBytes: 0, openLast: -1, ready: [], writing: false };
      this.parts.set(id, p);
      this.partList = [...this.parts.values()].sort((a, b) => a.id - b.id);
    }
    return p;
  }

  /** What a partition holds: open, ready and (when `withCurrent`, or not in a worker) current pieces. */
  private heldPieces(p: Part, withCurrent: boolean): DeliveryChunk[] {
    const out = [...p.open];
    for (const b of p.ready) out.push(...b.pieces);
    if (p.current && (withCurrent || !p.writing)) out.push(...p.current.pieces);
    if (p.next && withCurrent) out.push(...p.next.pieces);
    return out;
  }

  private anyTaskRunning(): boolean {
    return this.tasks.some((t) => t.state === ConnectorState.RUNNING);
  }

  private async fetchLoop(): Promise<void> {
    const { store, decl } = this.o;
    const signal = this.fetchAbort.signal;
    let failures = 0;
    while (!this.stopping) {
      if (!this.anyTaskRunning()) {
        await this.wake.wait(1000);
        continue;
      }
      const roomMessages = this.maxBufferedMessages - this.heldCount;
      const roomBytes = this.maxBufferedBytes - this.heldBytes;
      if (roomMessages <= 0 || roomBytes <= 0) {
        // Full: write what accumulates now rather than wait for maxLatencyMs with the fetch stopped.
        for (const p of this.partList) this.cut(p);
        this.pump();
        await this.wake.wait(1000);
        continue;
      }
      let chunks: DeliveryChunk[];
      try {
        // Fill one partition's batch at a time (up to exactly its size), so that batches are cut full
        // rather than all partitions' batches growing together until the buffer bound cuts them small.
        const prefer = this.preferred();
        let maxMessages = Math.min(decl.batch.maxMessages, roomMessages, FETCH_CHUNK);
        if (prefer && prefer.openCount > 0) maxMessages = Math.min(maxMessages, decl.batch.maxMessages - prefer.openCount);
        // `partitions` is understood by the cluster store (this node runs only some tasks); others ignore it.
        const options: FetchOptions & { partitions?: number[] } = {
          maxMessages,
          maxBytes: Math.min(decl.batch.maxBytes, roomBytes),
          waitMs: 1000,
          signal,
          preferPartition: prefer?.id,
          ...(this.fetchPartitions && { partitions: this.fetchPartitions }),
        };
        // The packed path when the store has it: no object per message on the broker's event loop.
        chunks = store.fetchChunks ? await store.fetchChunks(decl.station, this.group, options) : chunksFromDeliveries(await store.fetch(decl.station, this.group, options), this.stationId);
        failures = 0;
        if (prefer) {
          // Fewer than asked from the preferred partition: it is caught up; prefer others until it has more.
          let got = 0;
          for (const c of chunks) if (c.partition === prefer.id) got += c.count;
          if (got < maxMessages) prefer.caughtUp = true;
        }
      } catch (err) {
        if (this.stopping) break;
        failures++;
        this.log.warn({ err: messageOf(err), code: codeOf(err) }, 'fetch for the sink connector failed; trying again');
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(6, failures))));
        continue;
      }
      if (chunks.length > 0 && this.stopping) {
        // Fetched as the stop began (an engine may answer an aborted fetch): back to the group now, not at the ack deadline.
        const ids: string[] = [];
        for (const c of chunks) idsOf(c, ids);
        this.settle(store.nack(decl.station, this.group, ids, 0));
      } else if (chunks.length > 0) this.ingest(chunks);
    }
  }

  /**
   * The partition to fetch for first: the one with the fullest accumulating batch and nothing queued
   * behind its current one; else the next (round-robin) with nothing queued or being written, whose
   * batch can go to a worker as soon as it is cut; else none.
   */
  private preferred(): Part | undefined {
    let best: Part | undefined;
    for (const p of this.partList) {
      if (p.ready.length > 0 || p.openCount === 0 || p.caughtUp || !this.fetchable(p)) continue;
      if (!best || p.openCount > best.openCount) best = p;
    }
    if (best) return best;
    const n = this.partList.length;
    for (let i = 0; i < n; i++) {
      const p = this.partList[(this.preferRr + i) % n]!;
      if (p.ready.length > 0 || p.current || p.caughtUp || !this.fetchable(p)) continue;
      this.preferRr = (this.preferRr + i + 1) % n;
      return p;
    }
    return undefined;
  }

  private fetchable(p: Part): boolean {
    return this.owned.has(p.task) && this.tasks[p.task]!.state === ConnectorState.RUNNING;
  }

  private ingest(chunks: DeliveryChunk[]): void {
    const { decl } = this.o;
    const touched = new Set<Part>();
    const refused = new Map<number, string[]>();
    const now = Date.now();
    for (const fetched of chunks) {
      const p = this.partition(fetched.partition);
      const t = this.tasks[p.task]!;
      if (t.state !== ConnectorState.RUNNING) {
        const delay = Math.max(0, (t.restartAt ?? now + 60_000) - now - 100);
        let ids = refused.get(delay);
        if (!ids) refused.set(delay, (ids = []));
        idsOf(fetched, ids);
        continue;
      }
      // The broker redelivers what we still hold when its ack deadline passed: keep one copy.
      const c = p.held > 0 && offsetAt(fetched, 0) <= p.top ? this.withoutHeld(p, fetched) : fetched;
      p.caughtUp = false;
      if (c === undefined) continue;
      p.top = Math.max(p.top, offsetAt(c, c.count - 1));
      this.take(p, c);
      touched.add(p);
    }
    if (this.heldCount > this.peakHeld) this.peakHeld = this.heldCount;
    if (decl.batch.maxLatencyMs === 0) for (const p of touched) this.cut(p);
    for (const [delay, ids] of refused) this.settle(this.o.store.nack(decl.station, this.group, ids, delay));
    this.o.metrics.buffered.set({ connector: decl.name }, this.heldCount);
    this.pump();
  }

  /**
   * The messages of `c` the partition does not hold yet; for those it holds, the held copy takes the
   * new delivery's attempt (and id), so that a later nack names the delivery that is out.
   */
  private withoutHeld(p: Part, c: DeliveryChunk): DeliveryChunk | undefined {
    const held = this.heldPieces(p, true);
    const keep: number[] = [];
    for (let i = 0; i < c.count; i++) {
      const o = offsetAt(c, i);
      let found = false;
      for (const h of held) {
        if (o < offsetAt(h, 0) || o > offsetAt(h, h.count - 1)) continue;
        const k = indexOfOffset(h, o);
        if (k < 0) continue;
        (h.attempts ??= new Array<number>(h.count).fill(1))[k] = c.attempts?.[i] ?? 1;
        if (h.deliveryIds && c.deliveryIds) h.deliveryIds[k] = c.deliveryIds[i]!;
        found = true;
        break;
      }
      if (!found) keep.push(i);
    }
    return keep.length === 0 ? undefined : pickChunk(c, keep);
  }

  /** Adds a fetched chunk to the partition's open batch, cutting batches by size, count and contiguity. */
  private take(p: Part, c: DeliveryChunk): void {
    const { maxMessages, maxBytes, maxLatencyMs } = this.o.decl.batch;
    const nums = c.nums;
    const n = c.count;
    let i = 0;
    while (i < n) {
      // A batch holds contiguous offsets (a sink names and replays by its first and last offset).
      // And messages of one incarnation of the station (a station deleted and created again restarts at 1).
      if (p.openCount > 0 && (nums[i * F + ChunkField.offset] !== p.openLast + 1 || p.open[0]!.stationId !== c.stationId)) this.cut(p);
      let j = i;
      let bytes = 0;
      while (j < n) {
        const len = nums[j * F + ChunkField.length]!;
        if (j > i && nums[j * F + ChunkField.offset] !== nums[(j - 1) * F + ChunkField.offset]! + 1) break;
        if (p.openCount + (j - i) >= maxMessages) break;
        // At least one message per batch, even one larger than maxBytes.
        if (p.openCount + (j - i) > 0 && p.openBytes + bytes + len > maxBytes) break;
        bytes += len;
        j++;
      }
      if (j === i) {
        this.cut(p);
        continue;
      }
      const wasEmpty = p.openCount === 0;
      p.open.push(sliceChunk(c, i, j));
      p.openCount += j - i;
      p.openBytes += bytes;
      p.openLast = nums[(j - 1) * F + ChunkField.offset]!;
      p.held += j - i;
      this.heldCount += j - i;
      this.heldBytes += bytes;
      if (wasEmpty && maxLatencyMs > 0) {
        p.openTimer = setTimeout(() => {
          p.openTimer = undefined;
          this.cut(p);
          this.pump();
        }, maxLatencyMs);
      }
      if (p.openCount >= maxMessages || p.openBytes >= maxBytes) this.cut(p);
      i = j;
    }
  }

  /** Closes the partition's accumulating batch (if any) and queues it. */
  private cut(p: Part): void {
    if (p.openCount === 0) return;
    clearTimeout(p.openTimer);
    p.openTimer = undefined;
    const batch: Batch = { pieces: p.open, count: p.openCount, bytes: p.openBytes, attempts: 0, notBefore: 0 };
    if (this.failingSince.size > 0) {
      for (const c of batch.pieces) {
        for (let i = 0; i < c.count; i++) {
          const f = this.failingSince.get(`${p.id}:${offsetAt(c, i)}`);
          if (f) {
            batch.firstFailureAt = Math.min(batch.firstFailureAt ?? Infinity, f.since);
            batch.attempts = Math.max(batch.attempts, f.attempts);
          }
        }
      }
    }
    // Packed now, off the critical path: the partition's current batch is usually still in a worker.
    batch.packed = this.pack(p, batch);
    p.ready.push(batch);
    p.open = [];
    p.openCount = 0;
    p.openBytes = 0;
  }

  /** Hands ready batches to workers while there is room, one per partition at a time (plus lookahead's next). */
  private pump(): void {
    if (this.stopping || this.pools.size === 0) return;
    const n = this.partList.length;
    for (let i = 0; i < n && this.writingCount < this.maxInFlight; i++) {
      const p = this.partList[(this.rr + i) % n]!;
      const t = this.tasks[p.task]!;
      if (t.state !== ConnectorState.RUNNING || !this.pools.has(t.id)) continue;
      if (p.writing) {
        // Lookahead: the partition's next batch goes to the worker now and waits there for `current`.
        if (this.lookahead && !p.next && p.ready.length > 0 && t.inFlight === 1) {
          p.next = p.ready.shift()!;
          this.dispatch(p, p.next, true);
        }
        continue;
      }
      // A next still in the worker comes back (skipped) first: the retry of `current` goes before it.
      if (p.next) continue;
      // Lookahead: a task's thread holds the write running and the one waiting behind it.
      if (this.lookahead && t.inFlight >= 2) continue;
      if (p.current) {
        // Its retry timer decides when (Date.now may lag the timer by a millisecond).
        if (p.retryTimer) continue;
        this.dispatch(p, p.current, false);
      } else if (p.ready.length > 0) {
        p.current = p.ready.shift()!;
        this.dispatch(p, p.current, false);
      }
    }
    this.rr = (this.rr + 1) % Math.max(1, n);
  }

  private pack(p: Part, batch: Batch): PackedBatch {
    return packChunks(this.o.decl.station, p.id, batch.pieces, batch.count);
  }

  private dispatch(p: Part, batch: Batch, asNext: boolean): void {
    const { decl } = this.o;
    const t = this.tasks[p.task]!;
    const pool = this.pools.get(t.id)!;
    this.writingCount++;
    t.inFlight++;
    if (!asNext) p.writing = true;
    batch.inWorker = true;
    batch.attempts++;
    const settled = new SharedArrayBuffer(4);
    const after = this.lookahead ? t.tail : undefined;
    // The write before it is still running: this batch waits behind it in the same worker.
    const behind = after !== undefined && Atomics.load(new Int32Array(after), 0) === 0;
    if (this.lookahead) t.tail = settled;
    const packed = batch.packed ?? this.pack(p, batch);
    batch.packed = undefined;
    const ac = new AbortController();
    this.aborts.add(ac);
    if (this.lookahead) ac.signal.addEventListener('abort', () => this.terminateThreads(t.id), { once: true });
    let timedOut: 'write' | 'open' | undefined;
    const dispatchedAt = Date.now();
    const startedFlag = new SharedArrayBuffer(4);
    const flag = new Int32Array(startedFlag);
    const writeLimit = decl.writeTimeoutMs + hardTimeoutGrace(decl.writeTimeoutMs);
    // Time queued for a worker, a fresh worker starting and the sink opening is not the write's.
    const openLimit = Math.max(OPEN_TIMEOUT_MS, decl.writeTimeoutMs) + writeLimit;
    let hard: NodeJS.Timeout | undefined;
    const check = (): void => {
      const now = Date.now();
      const s = Atomics.load(flag, 0);
      const deadline = s === 0 ? dispatchedAt + openLimit : dispatchedAt + s - 1 + writeLimit;
      if (now >= deadline) {
        timedOut = s === 0 ? 'open' : 'write';
        ac.abort(new Error('write timeout'));
        return;
      }
      hard = setTimeout(check, s === 0 ? Math.min(deadline - now, writeLimit) : deadline - now);
    };
    hard = setTimeout(check, writeLimit);
    const started = performance.now();
    const run = pool
      .run(
        {
          op: 'write',
          connector: decl.name,
          plugin: this.o.pluginName,
          task: t.id,
          entry: this.o.entry,
          config: this.o.config,
          configHash: this.configHash,
          logLevel: this.o.logLevel,
          writeTimeoutMs: decl.writeTimeoutMs,
          started: startedFlag,
          dispatchedAt,
          batch: packed,
          settled,
          after,
          requireClean: asNext,
        },
        // Piscina never gives a worker a second task while it runs one with a signal (aborting it
        // terminates the thread under both), so with lookahead the abort is ours: it terminates the
        // task's one thread, and piscina answers both tasks with the thread's exit.
        this.lookahead ? { transferList: [packed.buf, packed.nums] } : { signal: ac.signal, transferList: [packed.buf, packed.nums] },
      )
      .then(
        (answer) => {
          clearTimeout(hard);
          batch.inWorker = false;
          const a = answer as SinkWriteAnswer;
          if (a.waited) this.o.metrics.ahead.inc({ connector: decl.name, task: String(t.id) });
          if (a.skipped) return this.giveBack(p, t, batch);
          this.o.metrics.writeSeconds.observe({ connector: decl.name, task: String(t.id) }, (performance.now() - started) / 1000);
          // A next that was written: the previous batch of its partition ended clean, so current is
          // free (the worker writes a next only after a clean current; see requireClean).
          if (p.next === batch) {
            if (p.current !== undefined) {
              // Never expected; if it happens, current (a retry) must not be lost: send this one again.
              this.log.error({ partition: p.id }, 'sink runner bug: a lookahead batch was answered while its partition still had a batch to retry; it is sent again');
              return this.giveBack(p, t, batch);
            }
            this.promote(p);
          }
          this.onAnswer(p, t, batch, a);
        },
        (err: unknown) => {
          clearTimeout(hard);
          batch.inWorker = false;
          // Lookahead: it died waiting in a worker that was terminated for the write before it (a
          // timeout, a crash): it never reached the plugin; it is queued again, not counted as a failure.
          // (It was handed over behind a running write whose worker then died without answering: not
          // this batch's own crash. A batch handed over alone that dies unstarted is a failure as ever,
          // or a plugin crashing its worker at open would be handed over again and again.)
          const before = after ? Atomics.load(new Int32Array(after), 0) : 1;
          if (behind && (before === 0 || before === 3) && timedOut === undefined && !this.stopping && Atomics.load(flag, 0) === 0) return this.giveBack(p, t, batch);
          this.onRejected(p, t, batch, err, timedOut);
        },
      )
      .catch((err: unknown) => this.log.error({ err }, 'sink runner bug while handling an answer'))
      .finally(() => {
        this.writingCount--;
        t.inFlight--;
        // The worker died before it could say: whatever waits for this write must not wait forever.
        const s = new Int32Array(settled);
        if (Atomics.load(s, 0) === 0) {
          Atomics.store(s, 0, 3);
          Atomics.notify(s, 0);
        }
        // Lookahead: once current is answered and settled, a next still in the worker becomes current.
        if (p.current === undefined && p.next?.inWorker) this.promote(p);
        p.writing = p.current?.inWorker === true;
        this.inflight.delete(run);
        this.aborts.delete(ac);
        this.o.metrics.buffered.set({ connector: decl.name }, this.heldCount);
        this.pump();
        this.wake.notify();
        this.o.events.onChange?.();
      });
    this.inflight.add(run);
  }

  /** Lookahead's abort: terminates the task's thread (piscina starts another). */
  private terminateThreads(task: number): void {
    for (const w of this.pools.get(task)?.threads ?? []) void w.terminate();
  }

  /** Lookahead: the next batch is in the worker and the partition's current was answered clean. */
  private promote(p: Part): void {
    p.current = p.next;
    p.next = undefined;
  }

  /**
   * Lookahead: a batch that never reached the plugin (skipped because the write before it did not end
   * clean, or its worker was terminated for that write) goes back where it was: a next to the front of
   * the queue (behind the partition's retry), a current stays current — or, the task having failed,
   * back to the group.
   */
  private giveBack(p: Part, t: TaskRt, batch: Batch): void {
    batch.attempts--;
    const wasNext = p.next === batch;
    if (wasNext) p.next = undefined;
    else if (p.current !== batch) return;
    if (this.stopping || t.state === ConnectorState.RUNNING) {
      if (wasNext) p.ready.unshift(batch);
      return;
    }
    if (!wasNext) p.current = undefined;
    this.nackReleased(p, batch.pieces, Math.max(0, (t.restartAt ?? Date.now()) - Date.now() - 100));
  }

  // ── answers ────────────────────────────────────────────────────────────────────────────────────

  private onAnswer(p: Part, t: TaskRt, batch: Batch, answer: SinkWriteAnswer): void {
    const { decl, metrics } = this.o;
    metrics.addWorkerTime(decl.name, answer.pluginMs);
    if (answer.metrics.length > 0) metrics.applyPluginMetrics(this.o.pluginName, decl.name, answer.metrics);
    t.worker = `thread-${answer.threadId}`;
    if (answer.error !== undefined) {
      const err = deserializeError(answer.error);
      if (isRetryable(err)) this.retryLater(p, t, batch, batch.pieces, err, 0);
      else this.fatal(p, t, batch, err);
      return;
    }
    // All ok comes as a count (see sink-worker.ts); otherwise one result per message, checked here again.
    let results: WriteResult[] | undefined;
    try {
      if (answer.okCount === undefined) results = checkWriteResults(answer.results, batch.count);
      else if (answer.okCount !== batch.count) throw connectError('PLUGIN_INVALID', `the worker answered ${answer.okCount} ok results for ${batch.count} messages`);
    } catch (err) {
      this.fatal(p, t, batch, err as Error);
      return;
    }
    const ok: DeliveryChunk[] = [];
    let okCount = 0;
    let okBytes = 0;
    const dead = new Map<string, { code: string; reason: string; pieces: DeliveryChunk[]; count: number; bytes: number }>();
    const again: DeliveryChunk[] = [];
    let minDelay = 0;
    let lastReason = '';
    if (results === undefined) {
      ok.push(...batch.pieces);
      okCount = batch.count;
      okBytes = batch.bytes;
    } else {
      let g = 0;
      for (const c of batch.pieces) {
        const okIdx: number[] = [];
        const againIdx: number[] = [];
        const deadIdx = new Map<string, number[]>();
        for (let i = 0; i < c.count; i++, g++) {
          const r = results[g]!;
          if (r.status === 'ok') okIdx.push(i);
          else if (r.status === 'deadLetter') {
            const key = `${r.code}\u0000${r.reason}`;
            let e = dead.get(key);
            if (!e) dead.set(key, (e = { code: r.code, reason: r.reason, pieces: [], count: 0, bytes: 0 }));
            let idx = deadIdx.get(key);
            if (!idx) deadIdx.set(key, (idx = []));
            idx.push(i);
          } else {
            againIdx.push(i);
            minDelay = Math.max(minDelay, r.delayMs ?? 0);
            lastReason = r.reason;
          }
        }
        if (okIdx.length > 0) {
          const piece = pickChunk(c, okIdx);
          ok.push(piece);
          okCount += piece.count;
          okBytes += piece.bytes;
        }
        for (const [key, idx] of deadIdx) {
          const e = dead.get(key)!;
          const piece = pickChunk(c, idx);
          e.pieces.push(piece);
          e.count += piece.count;
          e.bytes += piece.bytes;
        }
        if (againIdx.length > 0) again.push(pickChunk(c, againIdx));
      }
    }
    const labels = { connector: decl.name, task: String(t.id) };
    metrics.batches.inc(labels);
    if (okCount > 0) {
      metrics.messages.inc(labels, okCount);
      metrics.bytes.inc(labels, okBytes);
      this.throughput.add(okCount, okBytes);
      this.release(p, ok, okCount, okBytes, true);
      this.settle(this.ackPieces(ok));
    }
    for (const e of dead.values()) {
      metrics.deadLetters.inc(labels, e.count);
      this.release(p, e.pieces, e.count, e.bytes, true);
      const ids: string[] = [];
      for (const c of e.pieces) idsOf(c, ids);
      this.settle(
        this.o.store.deadLetter(decl.station, this.group, ids, e.reason, {
          code: e.code,
          headers: this.dlsHeaders(e.code, e.reason, batch.attempts),
        }),
      );
    }
    if (okCount > 0 && t.failures > 0 && Date.now() - t.startedAt >= HEALTHY_AFTER_MS) t.failures = 0;
    if (again.length > 0) {
      this.retryLater(p, t, batch, again, connectError('RETRY', lastReason, { retryable: true }), minDelay);
    } else {
      p.current = undefined;
    }
  }

  /** Acks written messages: by offset range where the store takes ranges, else by delivery id. */
  private ackPieces(pieces: readonly DeliveryChunk[]): Promise<unknown> {
    const { store, decl } = this.o;
    if (store.ackRanges && pieces.every((c) => c.deliveryIds === undefined)) {
      const ranges: OffsetRange[] = [];
      for (const c of pieces) addRanges(c, ranges);
      return store.ackRanges(decl.station, this.group, ranges);
    }
    const ids: string[] = [];
    for (const c of pieces) idsOf(c, ids);
    return store.ack(decl.station, this.group, ids);
  }

  private onRejected(p: Part, t: TaskRt, batch: Batch, err: unknown, timedOut: 'write' | 'open' | undefined): void {
    if (this.stopping && !timedOut) return; // the stop nacks what is held
    const { decl } = this.o;
    let e: Error;
    if (timedOut === 'write') {
      e = connectError(ConnectErrorCode.WRITE_TIMEOUT, `write of ${batch.count} messages (partition ${p.id}) did not settle within ${decl.writeTimeoutMs} ms; the worker was terminated`);
    } else if (timedOut === 'open') {
      e = connectError(ConnectErrorCode.WRITE_TIMEOUT, `the sink did not open (or the batch of partition ${p.id} did not reach a worker) within ${Math.max(OPEN_TIMEOUT_MS, decl.writeTimeoutMs)} ms; the worker was terminated`);
    } else if ((err as { code?: unknown })?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      e = connectError(ConnectErrorCode.WORKER_OUT_OF_MEMORY, `the worker ran out of heap (maxHeapMb ${decl.maxHeapMb}) writing partition ${p.id}: ${messageOf(err)}`, { cause: err });
    } else {
      e = connectError(ConnectErrorCode.WORKER_CRASHED, `the worker writing partition ${p.id} died: ${messageOf(err)}`, { cause: err });
    }
    t.worker = undefined;
    this.fatal(p, t, batch, e);
  }

  /** Keeps `pieces` as the partition's current batch and sends them again after a backoff — or gives up. */
  private retryLater(p: Part, t: TaskRt, batch: Batch, pieces: DeliveryChunk[], err: Error, minDelayMs: number): void {
    const { decl, metrics } = this.o;
    const now = Date.now();
    const since = batch.firstFailureAt ?? now;
    const labels = { connector: decl.name, task: String(t.id) };
    let count = 0;
    let bytes = 0;
    for (const c of pieces) {
      count += c.count;
      bytes += c.bytes;
    }
    const retryBatch: Batch = { pieces, count, bytes, attempts: batch.attempts, firstFailureAt: since, lastError: err, notBefore: 0 };
    if (this.stopping) {
      p.current = retryBatch; // held; nacked by stop
      return;
    }
    if (t.state !== ConnectorState.RUNNING) {
      p.current = undefined;
      this.nackReleased(p, pieces, Math.max(0, (t.restartAt ?? now) - now));
      return;
    }
    if (now - since >= decl.errors.retryTimeoutMs) {
      this.exhausted(p, t, retryBatch, err);
      return;
    }
    metrics.retries.inc(labels, count);
    const left = since + decl.errors.retryTimeoutMs - now;
    const delay = Math.min(Math.max(minDelayMs, jitteredBackoff(retryBatch.attempts, RETRY_BASE_MS, decl.errors.retryMaxDelayMs)), Math.max(0, left));
    retryBatch.notBefore = now + delay;
    p.current = retryBatch;
    clearTimeout(p.retryTimer);
    p.retryTimer = setTimeout(() => {
      p.retryTimer = undefined;
      this.pump();
    }, delay);
    this.log.debug({ partition: p.id, messages: count, attempt: retryBatch.attempts, delayMs: delay, reason: err.message }, 'retrying');
  }

  /** A failure that takes the task down (non-retryable error, timeout, crash, heap, broken answer). */
  private fatal(p: Part, t: TaskRt, batch: Batch, err: Error): void {
    const { decl } = this.o;
    if (this.stopping) return; // the batch stays current: the stop nacks it
    const now = Date.now();
    let since = batch.firstFailureAt ?? now;
    if (this.failingSince.size > 0) {
      for (const c of batch.pieces) {
        for (let i = 0; i < c.count; i++) {
          const f = this.failingSince.get(`${p.id}:${offsetAt(c, i)}`);
          if (f) since = Math.min(since, f.since);
        }
      }
    }
    if (now - since >= decl.errors.retryTimeoutMs) {
      this.exhausted(p, t, { ...batch, firstFailureAt: since }, err);
      if (decl.errors.tolerance === 'all') return;
    } else {
      for (const c of batch.pieces) for (let i = 0; i < c.count; i++) this.failingSince.set(`${p.id}:${offsetAt(c, i)}`, { since, attempts: batch.attempts });
      this.o.metrics.retries.inc({ connector: decl.name, task: String(t.id) }, batch.count);
      this.failTask(t, err, false);
      // The failed batch itself is still marked as writing, so failTask left it: give it back too.
      if (p.current === batch) p.current = undefined;
      this.nackReleased(p, batch.pieces, Math.max(0, (t.restartAt ?? now) - Date.now() - 100));
    }
  }

  /** The retry budget ran out: dead-letter the messages (tolerance all) or fail the task for good (none). */
  private exhausted(p: Part, t: TaskRt, batch: Batch, err: Error): void {
    const { decl, metrics } = this.o;
    p.current = undefined;
    if (decl.errors.tolerance === 'all') {
      const code = codeOf(err) && codeOf(err) !== 'RETRY' ? codeOf(err)! : ConnectErrorCode.RETRIES_EXHAUSTED;
      const reason = `${err.message} (gave up after ${batch.attempts} attempts in ${decl.errors.retryTimeoutMs} ms)`;
      const ids: string[] = [];
      for (const c of batch.pieces) idsOf(c, ids);
      this.release(p, batch.pieces, batch.count, batch.bytes, true);
      metrics.deadLetters.inc({ connector: decl.name, task: String(t.id) }, ids.length);
      this.settle(this.o.store.deadLetter(decl.station, this.group, ids, reason, { code, headers: this.dlsHeaders(code, err.message, batch.attempts) }));
      this.log.warn({ partition: p.id, messages: ids.length, code }, 'retries exhausted: messages dead-lettered (errors.tolerance all)');
      return;
    }
    const e = connectError(
      ConnectErrorCode.RETRIES_EXHAUSTED,
      `${batch.count} messages of partition ${p.id} still failed after ${batch.attempts} attempts in ${decl.errors.retryTimeoutMs} ms (errors.tolerance none): ${err.message}`,
      { cause: err },
    );
    this.failTask(t, e, true);
    this.nackReleased(p, batch.pieces, 60_000);
  }

  private dlsHeaders(code: string, message: string, attempts: number): Record<string, string> {
    return {
      [CONNECTOR_DLS_HEADERS.connector]: this.o.decl.name,
      [CONNECTOR_DLS_HEADERS.errorCode]: code,
      [CONNECTOR_DLS_HEADERS.errorMessage]: message.slice(0, 1000),
      [CONNECTOR_DLS_HEADERS.attempts]: String(attempts),
    };
  }

  // ── task failure and restart ─────────────────────────────────────────────────────────────────

  /**
   * Marks the task FAILED, nacks every message it holds that is not in a worker right now (those
   * follow when their answer comes), and schedules its restart — unless `permanent`, which waits for
   * a manual restart and makes the connector FAILED.
   */
  private failTask(t: TaskRt, err: Error, permanent: boolean): void {
    const { decl, metrics } = this.o;
    const now = Date.now();
    const alreadyFailed = t.state === ConnectorState.FAILED;
    t.lastError = { code: codeOf(err) ?? 'INTERNAL', message: err.message, at: now };
    if (!alreadyFailed || permanent) t.trace = traceOf(err);
    if (!alreadyFailed) t.failures++;
    t.state = ConnectorState.FAILED;
    metrics.setTaskState(decl.name, t.id, t.state);
    clearTimeout(t.timer);
    t.timer = undefined;
    if (permanent) {
      t.restartAt = undefined;
    } else {
      const delay = restartDelay(t.failures);
      t.restartAt = now + delay;
      t.timer = setTimeout(() => {
        t.timer = undefined;
        if (this.stopping || t.state !== ConnectorState.FAILED) return;
        metrics.restarts.inc({ connector: decl.name, task: String(t.id) });
        this.revive(t);
      }, delay);
    }
    this.releaseTask(t, permanent ? 60_000 : Math.max(0, (t.restartAt ?? now) - now - 100));
    this.log.error(
      { task: t.id, code: t.lastError.code, err: err.message, restartInMs: t.restartAt ? t.restartAt - now : undefined },
      permanent ? 'connector task failed; it needs a restart' : 'connector task failed; restarting it after a backoff',
    );
    if (permanent) this.o.events.onFatal(err);
    this.wake.notify();
    this.o.events.onChange?.();
  }

  /** Nacks what the task's partitions hold outside a worker (open, queued, waiting to be retried). */
  private releaseTask(t: TaskRt, delayMs: number): void {
    for (const p of this.partList) {
      if (p.task !== t.id) continue;
      clearTimeout(p.openTimer);
      p.openTimer = undefined;
      clearTimeout(p.retryTimer);
      p.retryTimer = undefined;
      const pieces = this.heldPieces(p, false);
      p.open = [];
      p.openCount = 0;
      p.openBytes = 0;
      p.ready = [];
      if (!p.writing) p.current = undefined;
      this.nackReleased(p, pieces, delayMs);
    }
  }

  private nackReleased(p: Part, pieces: readonly DeliveryChunk[], delayMs: number): void {
    let count = 0;
    let bytes = 0;
    const ids: string[] = [];
    for (const c of pieces) {
      count += c.count;
      bytes += c.bytes;
      idsOf(c, ids);
    }
    if (count === 0) return;
    this.release(p, pieces, count, bytes, false);
    this.settle(this.o.store.nack(this.o.decl.station, this.group, ids, delayMs));
  }

  private revive(t: TaskRt): void {
    t.state = ConnectorState.RUNNING;
    t.trace = undefined;
    t.restartAt = undefined;
    t.restarts++;
    t.startedAt = Date.now();
    this.o.metrics.setTaskState(this.o.decl.name, t.id, t.state);
    this.log.info({ task: t.id, restarts: t.restarts }, 'connector task restarted');
    this.wake.notify();
    this.pump();
    this.o.events.onChange?.();
  }

  /** Forgets held messages (settled, or nacked back to the group). */
  private release(p: Part, pieces: readonly DeliveryChunk[], count: number, bytes: number, settled: boolean): void {
    p.held -= count;
    this.heldCount -= count;
    this.heldBytes -= bytes;
    if (settled && this.failingSince.size > 0) {
      for (const c of pieces) for (let i = 0; i < c.count; i++) this.failingSince.delete(`${p.id}:${offsetAt(c, i)}`);
    }
    this.wake.notify();
  }

  private settle(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => {
      if (!isJunctionError(err) || err.code !== 'STORE_CLOSED') this.log.warn({ err: messageOf(err), code: codeOf(err) }, 'settling messages failed; the ack deadline will return them');
    });
    this.settling.add(tracked);
    void tracked.finally(() => this.settling.delete(tracked));
  }

  /** Group lag (messages of the station not yet acknowledged by this connector). */
  async lag(): Promise<number | undefined> {
    try {
      return (await this.o.store.getGroup(this.o.decl.station, this.group)).lag;
    } catch {
      return undefined;
    }
  }
}

/** Index of `offset` in a chunk (offsets ascend), or -1. */
function indexOfOffset(c: DeliveryChunk, offset: number): number {
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
