/** The sink runner's state and shared helpers (see sink-runner.ts for the whole). */
import { createHash } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import type { DeliveryChunk } from '@junction/broker';
import { ConnectorState, groupName } from './declaration.js';
import { codeOf, isJunctionError, messageOf } from './errors.js';
import { RateMeter, Wakeup } from './util.js';
import { idsOf, offsetAt } from './chunks.js';
import type { SinkTask } from './wire.js';
import { workerFile } from './worker-file.js';
import { stopTimeouts } from './sink-types.js';
import type { Flight, Part, SinkRunnerOptions, StopTimeouts, TaskRt } from './sink-types.js';
import type { SharedLane } from './shared-pool.js';

/**
 * The sink runner's state and the helpers every part of it uses (holding, releasing and settling
 * messages). The runner is one class built in layers, one module per concern:
 * base → batching (fetch, cut) → dispatch (workers, lookahead) → failure (task failure, restart) →
 * answers (acks, retries, dead letters) → SinkRunner (start, stop, status).
 */
export abstract class SinkRunnerBase {
  readonly group: string;
  protected readonly o: SinkRunnerOptions;
  protected readonly log: Logger;
  protected readonly tasks: TaskRt[];
  protected readonly parts = new Map<number, Part>();
  protected partList: Part[] = [];
  protected rr = 0;
  protected preferRr = 0;
  /** One single-thread pool per task this runner runs (a task's partitions always go to its thread). */
  protected readonly pools = new Map<number, Piscina<SinkTask, unknown>>();
  /** Isolation shared: the lane of the shared pool each task is pinned to (instead of `pools`). */
  protected readonly lanes = new Map<number, SharedLane>();
  protected readonly configHash: string;
  protected readonly maxInFlight: number;
  readonly maxBufferedMessages: number;
  readonly maxBufferedBytes: number;
  protected heldCount = 0;
  protected heldBytes = 0;
  protected writingCount = 0;
  /** Peak of `heldCount` (tests prove the bound with it). */
  peakHeld = 0;
  protected stopping = false;
  protected readonly fetchAbort = new AbortController();
  protected readonly wake = new Wakeup();
  protected fetchLoopDone: Promise<void> = Promise.resolve();
  /** Batches in workers, not answered yet. */
  protected readonly flights = new Set<Flight>();
  /** Batches are handed over ahead (see the class notes). */
  protected lookahead = false;
  /** The station's incarnation when the runner started (for deliveries that do not carry theirs). */
  protected stationId = '';
  /** Worker threads terminated and not exited yet (watched: one that does not exit in time is stuck). */
  protected readonly terminating = new Set<Worker>();
  protected readonly settling = new Set<Promise<unknown>>();
  /** First failure time of messages whose batch failed in a way that nacks them (crash, timeout): survives their redelivery. */
  protected readonly failingSince = new Map<string, { since: number; attempts: number }>();
  readonly throughput = new RateMeter();
  /** Ids of the tasks this runner runs. */
  protected readonly owned: Set<number>;
  /** Partitions to fetch when this runner runs only some tasks (undefined: all). */
  protected fetchPartitions: number[] | undefined;

  /** The stop's waits on a plugin that does not cooperate (the product's STOP_TIMEOUTS unless a test set shorter ones). */
  protected readonly timeouts: StopTimeouts;

  constructor(options: SinkRunnerOptions) {
    this.o = options;
    this.timeouts = stopTimeouts(options.stopTimeouts);
    const { decl } = options;
    this.group = groupName(decl.name);
    this.log = options.logger;
    this.maxInFlight = options.maxInFlight ?? 2 * decl.tasks;
    this.maxBufferedMessages = (this.maxInFlight + 1) * decl.batch.maxMessages;
    this.maxBufferedBytes = (this.maxInFlight + 1) * decl.batch.maxBytes;
    // The transforms are part of what a worker opens for the task: a change reopens it.
    this.configHash = createHash('sha256')
      .update(JSON.stringify(options.config) + (options.transforms ? JSON.stringify(options.transforms) : ''))
      .digest('hex')
      .slice(0, 16);
    const now = Date.now();
    this.tasks = Array.from({ length: decl.tasks }, (_, id) => ({
      id,
      state: ConnectorState.UNASSIGNED,
      failures: 0,
      restarts: 0,
      startedAt: now,
      inFlight: 0,
    }));
    this.owned = new Set((options.tasks ?? this.tasks.map((t) => t.id)).filter((t) => t >= 0 && t < decl.tasks));
  }

  /** A text with the config's secret values hidden (for status, logs and dead-letter headers). */
  protected scrub(text: string): string {
    return this.o.scrub ? this.o.scrub(text) : text;
  }

  protected partition(id: number): Part {
    let p = this.parts.get(id);
    if (!p) {
      p = {
        id,
        task: id % this.o.decl.tasks,
        held: 0,
        top: -1,
        caughtUp: false,
        open: [],
        openCount: 0,
        openBytes: 0,
        openLast: -1,
        ready: [],
        writing: false,
      };
      this.parts.set(id, p);
      this.partList = [...this.parts.values()].sort((a, b) => a.id - b.id);
    }
    return p;
  }

  /** What a partition holds: open, ready and (when `withCurrent`, or not in a worker) current pieces. */
  protected heldPieces(p: Part, withCurrent: boolean): DeliveryChunk[] {
    const out = [...p.open];
    for (const b of p.ready) out.push(...b.pieces);
    if (p.current && (withCurrent || !p.writing)) out.push(...p.current.pieces);
    if (p.next && withCurrent) out.push(...p.next.pieces);
    return out;
  }

  protected anyTaskRunning(): boolean {
    return this.tasks.some((t) => t.state === ConnectorState.RUNNING);
  }

  /**
   * How long the messages a failed task gives back stay away from the group: until its restart; for a
   * task that restarts only by hand (or once its stuck thread exits), 60 s while other tasks fetch (they
   * would get them and refuse them at once), else not at all — so a fixed and restarted connector finds
   * them straight away.
   */
  protected giveBackDelay(t: TaskRt, now = Date.now()): number {
    if (t.restartAt !== undefined) return Math.max(0, t.restartAt - now - 100);
    return this.anyTaskRunning() ? 60_000 : 0;
  }

  protected nackReleased(p: Part, pieces: readonly DeliveryChunk[], delayMs: number): void {
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

  /** Forgets held messages (settled, or nacked back to the group). */
  protected release(p: Part, pieces: readonly DeliveryChunk[], count: number, bytes: number, settled: boolean): void {
    p.held -= count;
    this.heldCount -= count;
    this.heldBytes -= bytes;
    if (settled && this.failingSince.size > 0) {
      for (const c of pieces) for (let i = 0; i < c.count; i++) this.failingSince.delete(`${p.id}:${offsetAt(c, i)}`);
    }
    this.wake.notify();
  }

  protected settle(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => {
      if (!isJunctionError(err) || err.code !== 'STORE_CLOSED')
        this.log.warn({ err: messageOf(err), code: codeOf(err) }, 'settling messages failed; the ack deadline will return them');
    });
    this.settling.add(tracked);
    void tracked.finally(() => this.settling.delete(tracked));
  }

  /**
   * The task's pool of one thread, made when missing (at start, and when a task whose thread was
   * abandoned as stuck runs again).
   */
  protected ensurePool(id: number): Piscina<SinkTask, unknown> {
    if (this.o.shared) {
      let lane = this.lanes.get(id);
      if (!lane) {
        lane = this.o.shared.acquire();
        this.lanes.set(id, lane);
      }
      return lane.pool;
    }
    let pool = this.pools.get(id);
    if (pool) return pool;
    pool = new Piscina<SinkTask, unknown>({
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
      resourceLimits: { maxOldGenerationSizeMb: this.o.decl.maxHeapMb },
    });
    // A worker that dies between tasks (nothing to reject) is reported as an 'error' event.
    pool.on('error', (err: unknown) => this.log.warn({ err: this.scrub(messageOf(err)), task: id }, 'sink worker died between batches'));
    this.pools.set(id, pool);
    return pool;
  }

  /** The task has somewhere to run its batches (its thread's pool, or its lane of the shared pool). */
  protected hasPool(id: number): boolean {
    return this.o.shared ? this.lanes.has(id) : this.pools.has(id);
  }

  /** Hands ready batches to workers (sink-dispatch.ts). */
  protected abstract pump(): void;
}
