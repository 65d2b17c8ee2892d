/**
 * The shared pool: worker threads that run the sink tasks of trusted plugins, many tasks per thread.
 *
 * A task of a plugin with `isolation: thread` has a thread of its own (a piscina pool of one thread,
 * sink-base.ts): a V8 isolate, 10–15 MB of RSS and a thread for every task that merely exists. A task
 * of a plugin with `isolation: shared` is pinned instead to one *lane* of this pool — a single-thread
 * piscina pool that takes any number of tasks at once — for as long as it runs: its batches always go to
 * the same thread (lookahead needs that: a batch waits in the thread of the write before it), its sink
 * stays open in that thread's module state, keyed by connector and task (sink-worker.ts). Lanes are
 * given out least-loaded first; a lane's thread starts with its first task.
 *
 * One task cannot stop the others on its thread, as far as a thread allows:
 * - a throw, a retry answer, a failed open: the task's own answer (nothing else on the thread notices);
 * - a write past `writeTimeoutMs`: the plugin's `signal` aborts; a plugin that ignores it past the grace
 *   gets its thread **recycled** (terminated; piscina starts a fresh one). Every other batch that was on
 *   that thread is answered `WORKER_RECYCLED` and its task sends it again on the fresh thread, from its
 *   last acknowledged position (a batch is a unit decided by offsets: the replay is the same work, and
 *   what a killed write left behind is the sink's own replay case) — not counted as their failure;
 * - a thread that does not exit when terminated (a plugin blocked in a native call): the lane gets a
 *   fresh pool at once, the culprit's task waits for that thread to exit (as with `isolation: thread`),
 *   the others go on on the fresh thread;
 * - what cannot be contained: a plugin that crashes its thread (process.exit in a worker, a heap
 *   exhausted) takes the tasks on it down with it (each fails with WORKER_CRASHED / WORKER_OUT_OF_MEMORY
 *   and restarts after its backoff). That is why only trusted plugins share.
 */
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ConnectErrorCode, connectError } from './errors.js';
import { TERMINATE_WAIT_MS } from './sink-types.js';
import { settleWithin } from './util.js';
import type { SinkTask } from './wire.js';
import { workerFile } from './worker-file.js';

/** How a plugin's sink tasks run: on the shared pool's threads, or each on a thread of its own. */
export const Isolation = z.enum(['shared', 'thread']);
export type Isolation = z.output<typeof Isolation>;

/** Options of the shared pool (`connect.sharedPool` in junction.yaml). */
export const SharedPoolOptions = z.strictObject({
  /** Threads of the pool. Default: the cores (`os.availableParallelism()`). */
  threads: z.int().min(1).max(256).optional(),
  /** Heap limit of each pool thread (MB); a connector's `maxHeapMb` applies to its own threads only. */
  maxHeapMb: z.int().min(64).max(16_384).default(2048),
});
export type SharedPoolOptions = z.input<typeof SharedPoolOptions>;

/** A batch on a lane's thread, as the lane sees it. */
export interface LaneFlight {
  /** Its own abort (a timeout, a stop) asked for the thread to be terminated: it is a culprit, not a bystander. */
  aborted(): boolean;
  /** Answers the batch at once (its thread will never answer). */
  kill(err: Error): void;
  /** Its thread was terminated because of it and did not exit (blocked in native code). */
  onStuck(w: Worker): void;
  /** Set by the lane: the thread it was on was recycled while it ran (it was a bystander unless aborted). */
  recycled: boolean;
}

/** One thread of the shared pool (a single-thread piscina pool taking any number of tasks). */
export class SharedLane {
  /** Tasks pinned to this lane now. */
  assigned = 0;
  private current: Piscina<SinkTask, unknown> | undefined;
  private readonly flights = new Map<LaneFlight, Piscina<SinkTask, unknown>>();
  private readonly terminating = new Set<Worker>();
  private closed = false;

  constructor(
    readonly id: number,
    private readonly maxHeapMb: number,
    private readonly log: Logger,
    private readonly strand: (w: Worker) => void,
    private readonly recycled: () => void = () => {},
    /** How long a terminated thread has to exit (TERMINATE_WAIT_MS unless a test set a shorter wait). */
    private readonly terminateWaitMs: number = TERMINATE_WAIT_MS,
  ) {}

  /** The lane's pool (its thread starts with the first batch after a start or a stuck thread). */
  get pool(): Piscina<SinkTask, unknown> {
    if (this.closed) throw connectError(ConnectErrorCode.RUNTIME_CLOSED, 'the shared pool is closed');
    this.current ??= this.makePool();
    return this.current;
  }

  /** Worker threads of the lane now (0 or 1; more only while a recycled one is exiting). */
  get threads(): number {
    return (this.current?.threads.length ?? 0) + [...this.terminating].filter((w) => !this.current?.threads.includes(w)).length;
  }

  private makePool(): Piscina<SinkTask, unknown> {
    const pool = new Piscina<SinkTask, unknown>({
      filename: workerFile('sink-worker.js'),
      name: 'default',
      minThreads: 1,
      maxThreads: 1,
      // Any number of tasks at once: each task has at most two batches here (its write and the next, lookahead).
      concurrentTasksPerWorker: 2 ** 20,
      // Piscina's default parks an idle worker in Atomics.wait, which would freeze every sink on the thread.
      atomics: 'disabled',
      idleTimeout: 2 ** 31 - 1,
      recordTiming: false,
      resourceLimits: { maxOldGenerationSizeMb: this.maxHeapMb },
    });
    pool.on('error', (err: unknown) =>
      this.log.warn({ lane: this.id, err: err instanceof Error ? err.message : String(err) }, 'a shared sink thread died between batches'),
    );
    return pool;
  }

  /** Registers a batch sent to `pool` (the lane's pool when it was sent); returns its untrack. */
  track(f: LaneFlight, pool: Piscina<SinkTask, unknown>): () => void {
    // Sent while the thread is being recycled: it went to the dying thread, or waits for the fresh one.
    if (this.terminating.size > 0 && pool === this.current) f.recycled = true;
    this.flights.set(f, pool);
    return () => this.flights.delete(f);
  }

  /**
   * Terminates the lane's thread (piscina starts a fresh one): a write that ignored its timeout, a stop
   * that could not wait, a close that hung. Every batch on it is marked recycled: the bystanders send
   * theirs again. A thread that has not exited TERMINATE_WAIT_MS later is stuck in native code: the lane
   * gets a fresh pool at once; the culprits hear of it (`onStuck`), the bystanders are answered
   * WORKER_RECYCLED.
   */
  recycle(why: string): void {
    const pool = this.current;
    if (!pool) return;
    for (const [f, p] of this.flights) if (p === pool) f.recycled = true;
    for (const w of pool.threads) {
      if (this.terminating.has(w)) continue;
      this.terminating.add(w);
      this.recycled();
      this.log.warn({ lane: this.id, why }, 'a shared sink thread is recycled; the other tasks on it send their batches again');
      const timer = setTimeout(() => this.onStuck(w, pool), this.terminateWaitMs);
      w.once('exit', () => {
        clearTimeout(timer);
        this.terminating.delete(w);
      });
      void w.terminate();
    }
  }

  private onStuck(w: Worker, pool: Piscina<SinkTask, unknown>): void {
    w.unref();
    this.strand(w);
    this.log.error(
      { lane: this.id },
      `a shared sink thread did not exit within ${this.terminateWaitMs} ms of being terminated (a plugin blocked in a native call); it is abandoned and the lane gets a fresh thread`,
    );
    if (this.current === pool) this.current = undefined;
    this.terminating.delete(w);
    const recycled = connectError(ConnectErrorCode.WORKER_RECYCLED, `the shared thread this batch ran on was recycled (lane ${this.id})`);
    for (const [f, p] of [...this.flights]) {
      if (p !== pool) continue;
      this.flights.delete(f);
      if (f.aborted()) f.onStuck(w);
      else f.kill(recycled);
    }
    void pool.destroy().catch(() => undefined);
  }

  /**
   * Destroys the lane's pool (after every task left it), waiting TERMINATE_WAIT_MS at most: a thread that
   * does not exit by then (blocked in native code, perhaps being recycled right now) is abandoned, as a
   * task's own thread is (it must not keep the process alive).
   */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.current;
    this.current = undefined;
    if (!pool) return;
    const threads = [...pool.threads, ...this.terminating];
    if (!(await settleWithin(pool.destroy(), this.terminateWaitMs))) {
      for (const w of threads) {
        w.unref();
        this.strand(w);
      }
      this.log.error(
        { lane: this.id },
        `a shared sink thread did not exit within ${this.terminateWaitMs} ms of being terminated; it is abandoned`,
      );
    }
  }
}

/** The pool of shared sink threads (see the notes above). Made by the runtime when a shared task first runs. */
export class SharedSinkPool {
  readonly lanes: SharedLane[];

  constructor(options: {
    threads: number;
    maxHeapMb: number;
    logger: Logger;
    strand: (w: Worker) => void;
    recycled?: (() => void) | undefined;
    /** How long a terminated thread has to exit; default TERMINATE_WAIT_MS (tests may set a shorter one). */
    terminateWaitMs?: number | undefined;
  }) {
    const log = options.logger.child({ component: 'shared-pool' });
    this.lanes = Array.from(
      { length: options.threads },
      (_, i) => new SharedLane(i, options.maxHeapMb, log, options.strand, options.recycled, options.terminateWaitMs),
    );
  }

  /** The lane a task is pinned to while it runs: the least loaded (ties: the lowest id). Give it back with `release`. */
  acquire(): SharedLane {
    let best = this.lanes[0]!;
    for (const l of this.lanes) if (l.assigned < best.assigned) best = l;
    best.assigned++;
    return best;
  }

  release(lane: SharedLane): void {
    lane.assigned = Math.max(0, lane.assigned - 1);
  }

  /** Threads the pool runs now. */
  get threads(): number {
    return this.lanes.reduce((n, l) => n + l.threads, 0);
  }

  /** Tasks pinned to the pool now. */
  get tasks(): number {
    return this.lanes.reduce((n, l) => n + l.assigned, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.close()));
  }
}
