/** The sink runner's dispatch: batches handed to the task's worker thread, lookahead, and the answers' routing. */
import { performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { ConnectorState } from './declaration.js';
import { ConnectErrorCode, connectError } from './errors.js';
import { packChunks } from './chunks.js';
import { SparePool } from './spares.js';
import { SinkBatching } from './sink-batching.js';
import { hardTimeoutGrace, OPEN_TIMEOUT_MS } from './sink-types.js';
import type { Batch, Flight, Part, TaskRt } from './sink-types.js';
import type { PackedBatch, SinkTask, SinkWriteAnswer } from './wire.js';
import type { LaneFlight } from './shared-pool.js';

/** Handing batches to the tasks' worker threads, with lookahead (one layer of the sink runner; see sink-base.ts). */
export abstract class SinkDispatch extends SinkBatching {
  // ── dispatch ───────────────────────────────────────────────────────────────────────────────────

  /** Hands ready batches to workers while there is room, one per partition at a time (plus lookahead's next). */
  protected pump(): void {
    if (this.stopping || (this.pools.size === 0 && this.lanes.size === 0)) return;
    const n = this.partList.length;
    for (let i = 0; i < n && this.writingCount < this.maxInFlight; i++) {
      const p = this.partList[(this.rr + i) % n]!;
      const t = this.tasks[p.task]!;
      if (t.state !== ConnectorState.RUNNING || !this.hasPool(t.id)) continue;
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

  /** Buffers the workers handed back (see spares.ts): later batches are packed into them. */
  protected readonly spares = new SparePool();

  protected pack(p: Part, batch: Batch): PackedBatch {
    return packChunks(this.o.decl.station, p.id, batch.pieces, batch.count, this.spares);
  }

  protected dispatch(p: Part, batch: Batch, asNext: boolean): void {
    const { decl } = this.o;
    const t = this.tasks[p.task]!;
    const lane = this.lanes.get(t.id);
    const pool = lane ? lane.pool : this.pools.get(t.id)!;
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
    // Aborting terminates the task's thread. With lookahead the abort is ours alone (piscina answers the
    // tasks with the thread's exit); without, piscina terminates it too. Either way the thread is watched:
    // one that does not exit is declared stuck and its batches are answered (terminateThreads).
    // On a shared thread the abort recycles the lane's thread: the other tasks on it send their batches again.
    ac.signal.addEventListener(
      'abort',
      () =>
        lane
          ? lane.recycle(
              `connector ${decl.name} task ${t.id}: ${String(ac.signal.reason instanceof Error ? ac.signal.reason.message : ac.signal.reason)}`,
            )
          : this.terminateThreads(t.id),
      { once: true },
    );
    let timedOut: 'write' | 'open' | undefined;
    const dispatchedAt = Date.now();
    // [0]: the write started (ms since dispatch + 1); [1]: the runtime gave the batch up (see wire.ts).
    const startedFlag = new SharedArrayBuffer(8);
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
    let kill!: (err: Error) => void;
    const killed = new Promise<never>((_, reject) => (kill = reject));
    const laneFlight: LaneFlight | undefined = lane && {
      recycled: false,
      aborted: () => ac.signal.aborted,
      kill: (err) => kill(err),
      onStuck: (w) => this.onLaneStuck(t.id, w),
    };
    const untrack = lane && laneFlight ? lane.track(laneFlight, pool) : undefined;
    const answered = pool.run(
      {
        op: 'write',
        connector: decl.name,
        plugin: this.o.pluginName,
        task: t.id,
        entry: this.o.entry,
        config: this.o.config,
        configHash: this.configHash,
        transforms: this.o.transforms,
        logLevel: this.o.logLevel,
        writeTimeoutMs: decl.writeTimeoutMs,
        started: startedFlag,
        dispatchedAt,
        batch: packed,
        settled,
        after,
        requireClean: asNext,
        schema: this.schemaWatch?.current,
      },
      // Piscina never gives a worker a second task while it runs one with a signal (aborting it
      // terminates the thread under both), so with lookahead the abort is ours: it terminates the
      // task's one thread, and piscina answers both tasks with the thread's exit.
      // On a shared thread never a signal either: piscina would co-schedule nothing else, and its abort
      // would terminate a thread that other tasks use.
      this.lookahead || lane ? { transferList: [packed.buf, packed.nums] } : { signal: ac.signal, transferList: [packed.buf, packed.nums] },
    );
    const run: Promise<void> = Promise.race([answered, killed])
      .then(
        (answer) => {
          clearTimeout(hard);
          batch.inWorker = false;
          const a = answer as SinkWriteAnswer;
          if (a.spare) this.spares.give(a.spare);
          if (a.waited) this.o.metrics.ahead.inc({ connector: decl.name, task: String(t.id) });
          if (a.skipped) return this.giveBack(p, t, batch);
          this.o.metrics.writeSeconds.observe({ connector: decl.name, task: String(t.id) }, (performance.now() - started) / 1000);
          // A next that was written: the previous batch of its partition ended clean, so current is
          // free (the worker writes a next only after a clean current; see requireClean).
          if (p.next === batch) {
            if (p.current !== undefined) {
              // Never expected; if it happens, current (a retry) must not be lost: send this one again.
              this.log.error(
                { partition: p.id },
                'sink runner bug: a lookahead batch was answered while its partition still had a batch to retry; it is sent again',
              );
              return this.giveBack(p, t, batch);
            }
            this.promote(p);
          }
          this.onAnswer(p, t, batch, a);
        },
        (err: unknown) => {
          clearTimeout(hard);
          batch.inWorker = false;
          // A bystander on a shared thread recycled for another task: sent again on the fresh thread, not a failure.
          if (laneFlight?.recycled && !ac.signal.aborted && timedOut === undefined) return this.giveBack(p, t, batch);
          // Lookahead: it died waiting in a worker that was terminated for the write before it (a
          // timeout, a crash): it never reached the plugin; it is queued again, not counted as a failure.
          // (It was handed over behind a running write whose worker then died without answering: not
          // this batch's own crash. A batch handed over alone that dies unstarted is a failure as ever,
          // or a plugin crashing its worker at open would be handed over again and again.)
          const before = after ? Atomics.load(new Int32Array(after), 0) : 1;
          if (behind && (before === 0 || before === 3) && timedOut === undefined && !this.stopping && Atomics.load(flag, 0) === 0)
            return this.giveBack(p, t, batch);
          this.onRejected(p, t, batch, err, timedOut);
        },
      )
      .catch((err: unknown) => this.log.error({ err }, 'sink runner bug while handling an answer'))
      .finally(() => {
        untrack?.();
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
        this.flights.delete(flight);
        this.o.metrics.buffered.set({ connector: decl.name }, this.heldCount);
        this.pump();
        this.wake.notify();
        this.o.events.onChange?.();
      });
    const flight: Flight = { task: t.id, run, started: flag, ac, kill, lane };
    this.flights.add(flight);
  }

  /**
   * A timeout's or a stop's abort: terminates the task's thread (piscina starts another), and watches it.
   * A thread that has not exited TERMINATE_WAIT_MS later is blocked in native code (a libuv threadpool
   * call that never returns): it will never answer, so `onStuck` answers its batches instead.
   */
  protected terminateThreads(task: number): void {
    const pool = this.pools.get(task);
    if (!pool) return;
    for (const w of pool.threads) {
      if (this.terminating.has(w)) continue;
      this.terminating.add(w);
      const timer = setTimeout(() => this.onStuck(task, w, pool), this.timeouts.terminateWaitMs);
      w.once('exit', () => {
        clearTimeout(timer);
        this.terminating.delete(w);
        this.onThreadExit(task, w);
      });
      void w.terminate();
    }
  }

  /**
   * A terminated thread that did not exit: abandoned (unref'd, its pool destroyed without waiting and
   * replaced when the task runs again), its batches answered WORKER_STUCK at once. The task does not
   * restart by itself until the thread exits: each restart could strand another of the process's libuv
   * threads, which the broker's own disk I/O needs.
   */
  protected onStuck(task: number, w: Worker, pool: Piscina<SinkTask, unknown>): void {
    const { decl, metrics } = this.o;
    const t = this.tasks[task]!;
    w.unref();
    t.stuck = w;
    metrics.strand(w);
    const err = connectError(
      ConnectErrorCode.WORKER_STUCK,
      `the worker thread of task ${task} did not exit within ${this.timeouts.terminateWaitMs} ms of being terminated: the plugin is blocked in a native call that does not return ` +
        '(a file system or DNS request on the libuv threadpool); the thread is abandoned and the task restarts once it exits, or by hand',
    );
    this.log.error({ task, code: err.code }, err.message);
    // Answered before the pool goes: destroying it rejects its tasks with an error of its own.
    let answered = 0;
    for (const f of this.flights) {
      if (f.task !== task) continue;
      f.kill(err);
      answered++;
    }
    if (this.pools.get(task) === pool) {
      this.pools.delete(task);
      void pool.destroy().catch(() => undefined);
    }
    // Batches answered WORKER_STUCK fail the task through their answer (with t.stuck set: no restart).
    if (this.stopping || answered > 0) return;
    if (t.state === ConnectorState.RUNNING) this.failTask(t, err, false);
    else if (t.state === ConnectorState.FAILED && t.timer) {
      // Failed already (the timeout): its restart waits for the thread now.
      clearTimeout(t.timer);
      t.timer = undefined;
      t.restartAt = undefined;
      t.lastError = { code: err.code, message: err.message, at: Date.now() };
      this.o.events.onChange?.();
    }
  }

  /**
   * A shared thread recycled because of this task (its write overran, its stop could not wait) did not
   * exit: the lane already has a fresh thread for the others; this task waits for that one to exit, as
   * a task with a thread of its own does (onStuck).
   */
  protected onLaneStuck(task: number, w: Worker): void {
    const t = this.tasks[task]!;
    if (t.stuck === w) return;
    t.stuck = w;
    w.once('exit', () => this.onThreadExit(task, w));
    const err = connectError(
      ConnectErrorCode.WORKER_STUCK,
      `the shared thread running task ${task} did not exit within ${this.timeouts.terminateWaitMs} ms of being terminated: the plugin is blocked in a native call that does not return; ` +
        'the thread is abandoned (the other tasks on it moved to a fresh one) and this task restarts once it exits, or by hand',
    );
    this.log.error({ task, code: err.code }, err.message);
    let answered = 0;
    for (const f of this.flights) {
      if (f.task !== task) continue;
      f.kill(err);
      answered++;
    }
    if (this.stopping || answered > 0) return;
    if (t.state === ConnectorState.RUNNING) this.failTask(t, err, false);
  }

  /** A thread this runner terminated exited: if it was the task's stuck one, the task may run again. */
  protected onThreadExit(task: number, w: Worker): void {
    const t = this.tasks[task]!;
    if (t.stuck !== w) return;
    t.stuck = undefined;
    this.log.info({ task }, 'the stuck worker thread exited at last');
    if (!this.stopping && t.state === ConnectorState.FAILED && !t.permanent && !t.timer) this.scheduleRestart(t);
  }

  /** Lookahead: the next batch is in the worker and the partition's current was answered clean. */
  protected promote(p: Part): void {
    p.current = p.next;
    p.next = undefined;
  }

  /**
   * Lookahead: a batch that never reached the plugin (skipped because the write before it did not end
   * clean, or its worker was terminated for that write) goes back where it was: a next to the front of
   * the queue (behind the partition's retry), a current stays current — or, the task having failed,
   * back to the group.
   */
  protected giveBack(p: Part, t: TaskRt, batch: Batch): void {
    batch.attempts--;
    const wasNext = p.next === batch;
    if (wasNext) p.next = undefined;
    else if (p.current !== batch) return;
    if (this.stopping || t.state === ConnectorState.RUNNING) {
      if (wasNext) p.ready.unshift(batch);
      return;
    }
    if (!wasNext) p.current = undefined;
    this.nackReleased(p, batch.pieces, this.giveBackDelay(t));
  }

  /** Turns a worker's answer into acks, dead letters, retries or a task failure (sink-answers.ts). */
  protected abstract onAnswer(p: Part, t: TaskRt, batch: Batch, answer: SinkWriteAnswer): void;
  /** A worker that died, timed out or was terminated (sink-answers.ts). */
  protected abstract onRejected(p: Part, t: TaskRt, batch: Batch, err: unknown, timedOut: 'write' | 'open' | undefined): void;
  /** Marks the task FAILED and schedules its restart unless `permanent` (sink-failure.ts). */
  protected abstract failTask(t: TaskRt, err: Error, permanent: boolean): void;
  /** Schedules a failed task's restart after its backoff (sink-failure.ts). */
  protected abstract scheduleRestart(t: TaskRt): void;
}
