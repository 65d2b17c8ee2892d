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
import { ConnectorState } from './declaration.js';
import type { ConnectorDeclaration } from './declaration.js';
import { ConnectErrorCode, codeOf, connectError, messageOf } from './errors.js';
import { idsOf } from './chunks.js';
import { SinkAnswers } from './sink-answers.js';
import { hardTimeoutGrace, OPEN_TIMEOUT_MS, SHARED_CANCEL_WAIT_MS, STOP_GRACE_MS } from './sink-types.js';
import type { TaskStatus } from './sink-types.js';
import { settleWithin } from './util.js';

export {
  CLOSE_TIMEOUT_MS,
  CONNECTOR_DLS_HEADERS,
  hardTimeoutGrace,
  OPEN_TIMEOUT_MS,
  RETRY_BASE_MS,
  STOP_GRACE_MS,
  stopBoundMs,
  STOP_TIMEOUTS,
  TERMINATE_WAIT_MS,
} from './sink-types.js';
export type { RetryingStatus, RunnerEvents, SinkRunnerOptions, StopTimeouts, TaskStatus } from './sink-types.js';

/** A running sink connector (see the notes above). */
export class SinkRunner extends SinkAnswers {
  /**
   * The ack deadline the group needs so the broker does not redeliver what the runtime still works on:
   * a message may wait for the partition's current batch (its retries and write) and then go through its
   * own, plus the batching latency and a minute of slack; capped at the broker's 12 h.
   */
  static ackDeadlineMs(decl: ConnectorDeclaration): number {
    const perBatch =
      decl.errors.retryTimeoutMs +
      Math.max(OPEN_TIMEOUT_MS, decl.writeTimeoutMs) +
      decl.writeTimeoutMs +
      hardTimeoutGrace(decl.writeTimeoutMs) +
      decl.errors.retryMaxDelayMs;
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
    for (const id of this.owned) this.ensurePool(id);
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

  protected async reclaim(): Promise<void> {
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
   * Stops: no more fetches; writes that already started may finish (their answers are honoured) for
   * `min(STOP_GRACE_MS, writeTimeoutMs + grace)`, batches still opening or waiting are abandoned at once
   * (their threads terminated); acks complete; everything still held is nacked (the group delivers it
   * again when the connector runs again); the sinks are closed (CLOSE_TIMEOUT_MS) and the pools destroyed.
   * Resolves within `stopBoundMs(writeTimeoutMs)` whatever the plugin does: nothing here waits on plugin
   * code without a deadline, and a thread that does not exit when terminated is abandoned. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stopping) return this.stopped;
    this.stopping = true;
    this.stopped = this.doStop();
    return this.stopped;
  }
  protected stopped: Promise<void> = Promise.resolve();

  protected async doStop(): Promise<void> {
    const { decl } = this.o;
    this.fetchAbort.abort();
    this.wake.notify();
    await this.fetchLoopDone;
    for (const p of this.partList) {
      clearTimeout(p.openTimer);
      clearTimeout(p.retryTimer);
    }
    for (const t of this.tasks) clearTimeout(t.timer);
    const shared = this.lanes.size > 0;
    // On a shared thread a batch that has not reached the plugin is given up rather than its thread
    // terminated: the worker answers it skipped when it gets to it.
    if (shared) for (const f of this.flights) if (Atomics.load(f.started, 0) === 0) Atomics.store(f.started, 1, 1);
    await this.letStartedWritesFinish(Math.min(STOP_GRACE_MS, decl.writeTimeoutMs + hardTimeoutGrace(decl.writeTimeoutMs)));
    if (shared && this.flights.size > 0)
      await settleWithin(
        Promise.allSettled([...this.flights].map((f) => f.run)),
        Math.min(SHARED_CANCEL_WAIT_MS, this.timeouts.terminateWaitMs),
      );
    // What is left (a write past the grace, an open that hangs) has its thread terminated (a shared one recycled).
    for (const f of this.flights) f.ac.abort(new Error('connector stopping'));
    // A terminated thread answers with its exit, or is declared stuck after TERMINATE_WAIT_MS and its
    // batches are answered then (see terminateThreads): this settles within that bound.
    await settleWithin(Promise.allSettled([...this.flights].map((f) => f.run)), this.timeouts.terminateWaitMs + 1000);
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
    this.o.metrics.buffered.set({ connector: decl.name }, 0);
    if (ids.length > 0)
      await this.o.store
        .nack(decl.station, this.group, ids, 0)
        .catch((err: unknown) => this.log.warn({ err: messageOf(err) }, 'nack on stop failed; the ack deadline will return the messages'));
    await this.closeSinks();
    for (const lane of this.lanes.values()) this.o.shared?.release(lane);
    this.lanes.clear();
    const pools = [...this.pools.values()];
    this.pools.clear();
    const threads = pools.flatMap((pool) => [...pool.threads]);
    if (!(await settleWithin(Promise.allSettled(pools.map((pool) => pool.destroy())), this.timeouts.terminateWaitMs))) {
      // A thread blocked in native code never exits: leave it, it must not keep the process alive.
      for (const w of threads) {
        w.unref();
        this.o.metrics.strand(w);
      }
      this.log.error(
        { connector: decl.name },
        `a worker thread did not exit within ${this.timeouts.terminateWaitMs} ms of being terminated; it is abandoned`,
      );
    }
  }

  /**
   * Waits while some batch in a worker has started its write (the sink is open and writing), up to
   * `graceMs`. Returns at once when none has: a batch still opening its sink, or waiting behind a
   * write, is not worth waiting for.
   */
  protected async letStartedWritesFinish(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    for (;;) {
      const started = [...this.flights].filter((f) => Atomics.load(f.started, 0) !== 0);
      const left = deadline - Date.now();
      if (started.length === 0 || left <= 0) return;
      // Re-checked every 50 ms: the write after the one running may start meanwhile (lookahead), or
      // what remains may be batches that never will.
      await settleWithin(Promise.allSettled(started.map((f) => f.run)), Math.min(50, left));
    }
  }

  /**
   * One close task per task's pool (its one thread closes the sinks it opened), each within
   * CLOSE_TIMEOUT_MS; a close that does not finish has its thread terminated (by the abort).
   */
  protected async closeSinks(): Promise<void> {
    await Promise.allSettled(
      [...this.lanes].map(async ([task, lane]) => {
        // No signal on a shared thread; a close that does not finish has the lane's thread recycled.
        const closing = lane.pool.run({ op: 'close', connector: this.o.decl.name, task }).catch(() => undefined);
        const closeMs = this.timeouts.closeTimeoutMs;
        if (!(await settleWithin(closing, closeMs))) {
          lane.recycle(`connector ${this.o.decl.name} task ${task}: close() did not finish within ${closeMs} ms`);
          this.log.warn({ task }, `the sink's close() did not finish within ${closeMs} ms; its shared thread is recycled`);
        }
      }),
    );
    await Promise.allSettled(
      [...this.pools].map(async ([task, pool]) => {
        const ac = new AbortController();
        const closing = pool.run({ op: 'close', connector: this.o.decl.name }, { signal: ac.signal }).catch(() => undefined);
        const closeMs = this.timeouts.closeTimeoutMs;
        if (!(await settleWithin(closing, closeMs))) {
          ac.abort(new Error('close timed out'));
          this.log.warn({ task }, `the sink's close() did not finish within ${closeMs} ms; its thread is terminated`);
        }
      }),
    );
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
      retrying: t.retrying && { ...t.retrying },
      partitions: this.partList.filter((p) => p.task === t.id).map((p) => p.id),
      freshness: this.o.freshness?.ofTask(t.id) ?? null,
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

  /** Group lag (messages of the station not yet acknowledged by this connector). */
  async lag(): Promise<number | undefined> {
    try {
      return (await this.o.store.getGroup(this.o.decl.station, this.group)).lag;
    } catch {
      return undefined;
    }
  }
}
