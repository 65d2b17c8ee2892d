/**
 * A running source connector: `tasks` readers, each a dedicated worker thread (see source-worker.ts
 * for why not piscina), whose batches are produced into the station. Only after a produce is durable
 * is the batch's position recorded; positions are written to the `PositionStore` (by default
 * `<dataDir>/connect/offsets/<name>.json`, atomically; in a cluster the shared metadata bucket, fenced by
 * the task's lease) coalesced: one write covers every batch produced meanwhile, and only after that write
 * does the worker's `commit(positions)` run. A restarted task opens with the last written position;
 * what it emits again carries the same msgIds, so the station's dedup window drops the repeats.
 *
 * Backpressure: the worker reads at most one batch ahead of the one being produced.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { dlsName, type MessageInput, type StationStore } from '@junction/broker';
import { DLS_HEADERS } from '@junction/protocol';
import { deserializeError } from '@junction/sdk-connector';
import type { JsonValue } from '@junction/sdk-connector';
import { ConnectorState } from './declaration.js';
import type { ConnectorDeclaration } from './declaration.js';
import { ConnectErrorCode, codeOf, connectError, messageOf, traceOf } from './errors.js';
import type { PositionStore } from './positions.js';
import type { ConnectMetrics } from './metrics.js';
import type { RetryingStatus, RunnerEvents, TaskStatus } from './sink-runner.js';
import { stopTimeouts, type StopTimeouts } from './sink-types.js';
import { RateMeter, restartDelay, settleWithin } from './util.js';
import type { FromSourceWorker, SourceWorkerData, ToSourceWorker } from './wire.js';
import { workerFile } from './worker-file.js';
import type { WorkerTransforms } from './transform-config.js';
import { produceRouted } from './source-transforms.js';

export { readSourcePositions, writeSourcePositions, type SourceOffsetsFile } from './positions.js';

export interface SourceRunnerOptions {
  store: StationStore;
  decl: ConnectorDeclaration;
  pluginName: string;
  entry: string;
  config: Record<string, unknown>;
  /** Hides the config's secret values in a text (error messages and traces may quote them). Default: none to hide. */
  scrub?: ((text: string) => string) | undefined;
  positions: PositionStore;
  /**
   * The fencing token of the lease this runner runs under (cluster placement), read at each write;
   * undefined from the function = the lease is lost (nothing more is written). Absent: one node, no fencing.
   */
  fence?: (() => number | undefined) | undefined;
  logger: Logger;
  logLevel: string;
  metrics: ConnectMetrics;
  events: RunnerEvents;
  /** The connector's transforms, applied in the worker after each read (absent: none). */
  transforms?: WorkerTransforms | undefined;
  /** Shorter stop waits than the product's STOP_TIMEOUTS (tests only). */
  stopTimeouts?: Partial<StopTimeouts> | undefined;
}

type NextAnswer = Extract<FromSourceWorker, { type: 'batch' | 'end' | 'error' }> | { type: 'gone'; error: Error };

interface SourceTaskRt {
  id: number;
  state: ConnectorState;
  trace?: string | undefined;
  failures: number;
  restarts: number;
  startedAt: number;
  restartAt?: number | undefined;
  timer?: NodeJS.Timeout | undefined;
  lastError?: { code: string; message: string; at: number } | undefined;
  retrying?: RetryingStatus | undefined;
  /** A worker of this task that did not exit when terminated (abandoned); the task restarts once it exits. */
  stuck?: Worker | undefined;
  /** Settles once the failed worker exited or was found stuck. */
  exitWatch?: Promise<unknown> | undefined;
  finished: boolean;
  worker?: Worker | undefined;
  /** Resolves when the current worker exited. */
  exited?: Promise<unknown> | undefined;
  /** Bumped per worker: commits go only to the worker that read those batches. */
  generation: number;
  pendingNext?: ((a: NextAnswer) => void) | undefined;
  loop?: Promise<void> | undefined;
  stopping: boolean;
}

const MAX_UNCOMMITTED = 256;

export class SourceRunner {
  private readonly o: SourceRunnerOptions;
  private readonly log: Logger;
  private readonly tasks: SourceTaskRt[];
  private positions: Record<string, JsonValue> = {};
  private pendingCommits = new Map<number, { generation: number; positions: JsonValue[] }>();
  private uncommitted = 0;
  private dirty = false;
  private writing: Promise<void> | undefined;
  private stopping = false;
  /** A newer owner claimed the positions (or the lease is lost): this runner writes nothing more. */
  private fenced = false;
  readonly throughput = new RateMeter();

  constructor(options: SourceRunnerOptions) {
    this.o = options;
    this.log = options.logger;
    const now = Date.now();
    this.tasks = Array.from({ length: options.decl.tasks }, (_, id) => ({
      id,
      state: ConnectorState.UNASSIGNED,
      failures: 0,
      restarts: 0,
      startedAt: now,
      finished: false,
      generation: 0,
      stopping: false,
    }));
  }

  async start(): Promise<void> {
    await this.o.store.getStation(this.o.decl.station);
    this.positions = await this.o.positions.load(this.o.decl.name, this.currentFence());
    for (const t of this.tasks) this.startTask(t);
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.all(this.tasks.map((t) => this.stopTask(t)));
    await this.flush();
  }

  taskStatuses(): TaskStatus[] {
    return this.tasks.map((t) => ({
      id: t.id,
      state: t.state,
      trace: t.state === ConnectorState.FAILED ? t.trace : undefined,
      worker: t.worker ? `thread-${t.worker.threadId}` : undefined,
      restartAt: t.state === ConnectorState.FAILED ? t.restartAt : undefined,
      restarts: t.restarts,
      lastError: t.lastError,
      retrying: t.retrying && { ...t.retrying },
      finished: t.finished || undefined,
    }));
  }

  restartTask(id: number, force = false): void {
    const t = this.tasks[id];
    if (!t) throw connectError(ConnectErrorCode.TASK_NOT_FOUND, `connector ${this.o.decl.name} has no task ${id}`);
    if (t.state !== ConnectorState.FAILED && !force && !t.finished) return;
    clearTimeout(t.timer);
    t.failures = 0;
    void (async () => {
      await this.stopTask(t);
      if (this.stopping) return;
      t.restarts++;
      this.startTask(t);
    })();
  }

  // ── one task ─────────────────────────────────────────────────────────────────────────────────

  private startTask(t: SourceTaskRt): void {
    const { decl } = this.o;
    t.stopping = false;
    t.finished = false;
    t.generation++;
    t.state = ConnectorState.RUNNING;
    t.trace = undefined;
    t.restartAt = undefined;
    t.startedAt = Date.now();
    this.o.metrics.setTaskState(decl.name, t.id, t.state);
    const data: SourceWorkerData = {
      connector: decl.name,
      plugin: this.o.pluginName,
      task: t.id,
      entry: this.o.entry,
      config: this.o.config,
      position: this.positions[String(t.id)],
      logLevel: this.o.logLevel,
      transforms: this.o.transforms,
    };
    const worker = new Worker(workerFile('source-worker.js'), {
      workerData: data,
      resourceLimits: { maxOldGenerationSizeMb: decl.maxHeapMb },
    });
    t.worker = worker;
    t.exited = once(worker, 'exit');
    const generation = t.generation;
    let opened: ((a: FromSourceWorker | { type: 'gone'; error: Error }) => void) | undefined;
    const openedP = new Promise<FromSourceWorker | { type: 'gone'; error: Error }>((r) => (opened = r));
    let lastError: unknown;
    worker.on('message', (m: FromSourceWorker) => {
      if (m.type === 'opened' || (m.type === 'error' && m.phase === 'open')) {
        opened?.(m);
        opened = undefined;
      } else if (m.type === 'batch' || m.type === 'end' || (m.type === 'error' && m.phase === 'read')) {
        const p = t.pendingNext;
        t.pendingNext = undefined;
        p?.(m);
      } else if (m.type === 'error' && m.phase === 'commit') {
        if (t.generation === generation) this.failTask(t, deserializeError(m.error));
      }
    });
    worker.on('error', (err) => {
      lastError = err;
    });
    worker.on('exit', (code) => {
      if (t.worker === worker) t.worker = undefined;
      const gone = (): Error =>
        (lastError as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? connectError(ConnectErrorCode.WORKER_OUT_OF_MEMORY, `the source worker ran out of heap (maxHeapMb ${decl.maxHeapMb})`, {
              cause: lastError,
            })
          : connectError(
              ConnectErrorCode.WORKER_CRASHED,
              `the source worker exited (code ${code})${lastError ? `: ${messageOf(lastError)}` : ''}`,
              { cause: lastError },
            );
      opened?.({ type: 'gone', error: gone() });
      opened = undefined;
      const p = t.pendingNext;
      t.pendingNext = undefined;
      p?.({ type: 'gone', error: gone() });
      if (!t.stopping && t.generation === generation && !t.finished && t.state === ConnectorState.RUNNING && !t.loop)
        this.failTask(t, gone());
    });
    t.loop = (async () => {
      const first = await openedP;
      if (first.type === 'gone') throw first.error;
      if (first.type === 'error') throw deserializeError(first.error);
      await this.readLoop(t, worker, generation);
    })()
      .catch((err: unknown) => {
        if (!t.stopping && t.generation === generation) this.failTask(t, err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => {
        if (t.generation === generation) t.loop = undefined;
      });
  }

  private next(t: SourceTaskRt, worker: Worker): Promise<NextAnswer> {
    return new Promise((resolve) => {
      t.pendingNext = resolve;
      worker.postMessage({ type: 'next' } satisfies ToSourceWorker);
    });
  }

  private async readLoop(t: SourceTaskRt, worker: Worker, generation: number): Promise<void> {
    const { decl, metrics, store } = this.o;
    const labels = { connector: decl.name, task: String(t.id) };
    let pending = this.next(t, worker);
    for (;;) {
      const a = await pending;
      if (t.stopping) return;
      if (a.type === 'gone') throw a.error;
      if (a.type === 'error') throw deserializeError(a.error);
      if (a.type === 'end') {
        if (a.metrics.length > 0) metrics.applyPluginMetrics(this.o.pluginName, decl.name, a.metrics);
        t.finished = true;
        this.log.info({ task: t.id }, 'source finished: its read ended');
        await this.flush();
        worker.postMessage({ type: 'stop' } satisfies ToSourceWorker);
        this.o.events.onChange?.();
        return;
      }
      // Read the next batch while this one is produced (one batch ahead, no more).
      pending = this.next(t, worker);
      metrics.addWorkerTime(decl.name, a.pluginMs);
      if (a.metrics.length > 0) metrics.applyPluginMetrics(this.o.pluginName, decl.name, a.metrics);
      metrics.batches.inc(labels);
      if (a.dropped) metrics.transformDropped.inc(labels, a.dropped);
      if (a.messages.length > 0) {
        const msgs: MessageInput[] = new Array(a.messages.length);
        let pos = 0;
        for (let i = 0; i < a.messages.length; i++) {
          const m = a.messages[i]!;
          msgs[i] = { value: new Uint8Array(a.buf, pos, m.len), key: m.key, headers: m.headers, msgId: m.msgId };
          pos += m.len;
        }
        // A route transform may have picked other stations: produced there, each station's in order.
        const results = a.messages.some((m) => m.station !== undefined)
          ? await produceRouted(store, decl.station, a.messages, msgs)
          : await store.produce(decl.station, msgs);
        let stored = 0;
        let bytes = 0;
        let rejected: { code: string; message: string } | undefined;
        let rejectedCount = 0;
        results.forEach((r, i) => {
          if (r.status === 'stored') {
            stored++;
            bytes += a.messages[i]!.len;
          } else if (r.status === 'rejected') {
            rejectedCount++;
            rejected ??= { code: r.code, message: r.message };
          }
        });
        metrics.messages.inc(labels, stored);
        metrics.bytes.inc(labels, bytes);
        this.throughput.add(stored, bytes);
        if (rejected) {
          t.lastError = {
            code: rejected.code,
            message: (this.o.scrub ?? String)(`${rejectedCount} messages refused by the station: ${rejected.message}`),
            at: Date.now(),
          };
          this.log.warn({ task: t.id, rejected: rejectedCount, code: rejected.code }, 'the station refused messages from the source');
        }
      }
      if (a.failed) await this.deadLetterFailed(t, a.failed);
      await this.record(t, generation, a.position);
      if (t.retrying) {
        this.log.info({ task: t.id, attempts: t.retrying.attempts }, 'the source task reads and stores again');
        t.retrying = undefined;
      }
    }
  }

  /** Messages a transform failed (errors.tolerance all): into the station's DLS, with the step and why. */
  private async deadLetterFailed(
    t: SourceTaskRt,
    failed: NonNullable<Extract<FromSourceWorker, { type: 'batch' }>['failed']>,
  ): Promise<void> {
    const { decl, metrics, store } = this.o;
    const scrub = this.o.scrub ?? String;
    const results = await store.produce(
      dlsName(decl.station),
      failed.map((f) => ({
        value: f.value,
        key: f.key,
        headers: {
          ...f.headers,
          [DLS_HEADERS.reason]: scrub(f.error.message).slice(0, 1000),
          [DLS_HEADERS.code]: f.error.code ?? 'TRANSFORM_FAILED',
          [DLS_HEADERS.connector]: decl.name,
          [DLS_HEADERS.station]: decl.station,
        },
      })),
    );
    metrics.deadLetters.inc({ connector: decl.name, task: String(t.id) }, failed.length);
    const refused = results.filter((r) => r.status === 'rejected').length;
    this.log.warn(
      { task: t.id, messages: failed.length, refusedByDls: refused, err: scrub(failed[0]!.error.message) },
      'a transform failed messages of the source: dead-lettered (errors.tolerance all)',
    );
  }

  private async stopTask(t: SourceTaskRt): Promise<void> {
    t.stopping = true;
    clearTimeout(t.timer);
    t.timer = undefined;
    const worker = t.worker;
    const exited = t.exited;
    const p = t.pendingNext;
    t.pendingNext = undefined;
    p?.({ type: 'gone', error: new Error('stopping') });
    // The loop ends at its next await of the worker (answered 'gone' just now) or of the store.
    await t.loop;
    if (worker && exited) {
      await this.flush();
      const closed = new Promise<void>((resolve) => {
        worker.on('message', (m: FromSourceWorker) => {
          if (m.type === 'closed') resolve();
        });
      });
      worker.postMessage({ type: 'stop' } satisfies ToSourceWorker);
      // close() gets CLOSE_TIMEOUT_MS; then the thread is terminated, and one that does not exit is left.
      const { closeTimeoutMs, terminateWaitMs } = stopTimeouts(this.o.stopTimeouts);
      await settleWithin(Promise.race([closed, exited]), closeTimeoutMs);
      void worker.terminate();
      if (!(await settleWithin(exited, terminateWaitMs))) {
        worker.unref();
        this.o.metrics.strand(worker);
        this.log.error({ task: t.id }, `the source worker did not exit within ${terminateWaitMs} ms of being terminated; it is abandoned`);
      }
    }
    t.worker = undefined;
    if (t.state !== ConnectorState.FAILED) t.state = ConnectorState.UNASSIGNED;
  }

  private failTask(t: SourceTaskRt, err: Error): void {
    if (this.stopping || t.stopping) return;
    const { decl, metrics } = this.o;
    const now = Date.now();
    t.failures++;
    t.state = ConnectorState.FAILED;
    const scrub = this.o.scrub ?? ((text: string) => text);
    t.trace = scrub(traceOf(err));
    t.lastError = { code: codeOf(err) ?? 'INTERNAL', message: scrub(err.message), at: now };
    metrics.setTaskState(decl.name, t.id, t.state);
    const delay = restartDelay(t.failures);
    t.restartAt = now + delay;
    t.retrying = { since: t.retrying?.since ?? now, attempts: (t.retrying?.attempts ?? 0) + 1, nextAttemptAt: t.restartAt };
    this.log.error(
      { task: t.id, code: t.lastError.code, err: t.lastError.message, restartInMs: delay },
      'source task failed; restarting it after a backoff',
    );
    const worker = t.worker;
    const exited = t.exited;
    t.worker = undefined;
    t.generation++;
    const p = t.pendingNext;
    t.pendingNext = undefined;
    p?.({ type: 'gone', error: err });
    t.exitWatch = worker && exited ? this.terminateWatched(t, worker, exited) : undefined;
    this.scheduleRestart(t, delay);
    this.o.events.onChange?.();
  }

  /**
   * Terminates a failed task's worker and watches it: one that has not exited TERMINATE_WAIT_MS later is
   * blocked in native code; it is abandoned, and the task waits for it to exit before it restarts (each
   * restart could strand another of the process's libuv threads).
   */
  private terminateWatched(t: SourceTaskRt, worker: Worker, exited: Promise<unknown>): Promise<unknown> {
    const { decl, metrics } = this.o;
    const { terminateWaitMs } = stopTimeouts(this.o.stopTimeouts);
    void worker.terminate();
    return settleWithin(exited, terminateWaitMs).then((inTime) => {
      if (inTime || this.stopping) return;
      worker.unref();
      t.stuck = worker;
      metrics.strand(worker);
      clearTimeout(t.timer);
      t.timer = undefined;
      t.restartAt = undefined;
      const message = `the source worker of task ${t.id} did not exit within ${terminateWaitMs} ms of being terminated: the plugin is blocked in a native call that does not return; the thread is abandoned and the task restarts once it exits, or by hand`;
      t.lastError = { code: ConnectErrorCode.WORKER_STUCK, message, at: Date.now() };
      this.log.error({ connector: decl.name, task: t.id, code: ConnectErrorCode.WORKER_STUCK }, message);
      this.o.events.onChange?.();
      void exited.then(() => {
        if (t.stuck !== worker) return;
        t.stuck = undefined;
        if (!this.stopping && t.state === ConnectorState.FAILED && !t.timer) this.scheduleRestart(t, restartDelay(t.failures));
      });
    });
  }

  private scheduleRestart(t: SourceTaskRt, delay: number): void {
    const { decl, metrics } = this.o;
    t.restartAt = Date.now() + delay;
    if (t.retrying) t.retrying.nextAttemptAt = t.restartAt;
    t.timer = setTimeout(() => {
      t.timer = undefined;
      if (this.stopping || t.state !== ConnectorState.FAILED) return;
      void (async () => {
        await t.loop;
        await this.flush();
        // The old worker exited, or was found stuck (then its exit reschedules the restart).
        await t.exitWatch;
        if (this.stopping || t.state !== ConnectorState.FAILED || t.stuck) return;
        t.restarts++;
        metrics.restarts.inc({ connector: decl.name, task: String(t.id) });
        if (Date.now() - t.startedAt >= 30_000) t.failures = 0;
        this.startTask(t);
        this.o.events.onChange?.();
      })();
    }, delay);
    this.o.events.onChange?.();
  }

  // ── positions ────────────────────────────────────────────────────────────────────────────────

  private async record(t: SourceTaskRt, generation: number, position: JsonValue): Promise<void> {
    this.positions[String(t.id)] = position;
    let c = this.pendingCommits.get(t.id);
    if (!c || c.generation !== generation) this.pendingCommits.set(t.id, (c = { generation, positions: [] }));
    c.positions.push(position);
    this.uncommitted++;
    this.dirty = true;
    this.kick();
    if (this.uncommitted >= MAX_UNCOMMITTED) await this.flush();
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = (async () => {
      while (this.dirty) {
        this.dirty = false;
        const snapshot = { ...this.positions };
        const commits = this.pendingCommits;
        this.pendingCommits = new Map();
        this.uncommitted = 0;
        if (this.fenced) break;
        try {
          await this.o.positions.save(this.o.decl.name, snapshot, this.currentFence());
        } catch (err) {
          if (codeOf(err) === ConnectErrorCode.POSITION_FENCED) {
            // Another node owns the task now: what this runner produced since its last write stays
            // uncommitted (the new owner re-reads it; msgIds make the repeats duplicates).
            this.fenced = true;
            this.log.warn({ err: messageOf(err) }, 'source positions are fenced by a newer owner; this runner stores nothing more');
            break;
          }
          this.log.error({ err: messageOf(err) }, 'cannot store source positions; will try again');
          // Keep the commits for the next write: positions are committed only once stored.
          for (const [task, c] of commits) {
            const cur = this.pendingCommits.get(task);
            if (cur && cur.generation === c.generation) cur.positions.unshift(...c.positions);
            else if (!cur) this.pendingCommits.set(task, c);
          }
          this.dirty = true;
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        for (const [task, c] of commits) {
          const t = this.tasks[task];
          if (t?.worker && t.generation === c.generation && c.positions.length > 0) {
            t.worker.postMessage({ type: 'commit', positions: c.positions } satisfies ToSourceWorker);
          }
        }
      }
    })().finally(() => {
      this.writing = undefined;
    });
  }

  private currentFence(): number | undefined {
    if (!this.o.fence) return undefined;
    const f = this.o.fence();
    if (f === undefined)
      throw connectError(ConnectErrorCode.POSITION_FENCED, `connector ${this.o.decl.name}: this node no longer holds the task's lease`);
    return f;
  }

  /** Resolves once every recorded position is written (and its commit posted), or the runner is fenced. */
  async flush(): Promise<void> {
    while ((this.writing || this.dirty) && !this.fenced) {
      if (!this.writing) this.kick();
      await this.writing;
    }
  }
}
