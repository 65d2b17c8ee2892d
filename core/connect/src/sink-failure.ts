/** The sink runner's task failures and restarts. */
import { ConnectorState } from './declaration.js';
import { codeOf, traceOf } from './errors.js';
import { restartDelay } from './util.js';
import { SinkDispatch } from './sink-dispatch.js';
import type { TaskRt } from './sink-types.js';

/** Task failure and restart (one layer of the sink runner; see sink-base.ts). */
export abstract class SinkFailure extends SinkDispatch {
  // ── task failure and restart ─────────────────────────────────────────────────────────────────

  /**
   * Marks the task FAILED, nacks every message it holds that is not in a worker right now (those
   * follow when their answer comes), and schedules its restart after a backoff — unless `permanent`
   * (it waits for a manual restart and makes the connector FAILED), or one of its threads is stuck
   * (it restarts once that thread exits).
   */
  protected failTask(t: TaskRt, err: Error, permanent: boolean): void {
    const { decl, metrics } = this.o;
    const now = Date.now();
    const alreadyFailed = t.state === ConnectorState.FAILED;
    t.lastError = { code: codeOf(err) ?? 'INTERNAL', message: this.scrub(err.message), at: now };
    if (!alreadyFailed || permanent) t.trace = this.scrub(traceOf(err));
    if (!alreadyFailed) t.failures++;
    t.state = ConnectorState.FAILED;
    t.permanent = permanent;
    metrics.setTaskState(decl.name, t.id, t.state);
    clearTimeout(t.timer);
    t.timer = undefined;
    t.restartAt = undefined;
    if (permanent) t.retrying = undefined;
    else if (!t.stuck) this.scheduleRestart(t);
    this.releaseTask(t, this.giveBackDelay(t, now));
    const why = permanent ? 'it needs a restart' : t.stuck ? 'it restarts once its stuck thread exits' : 'restarting it after a backoff';
    this.log.error(
      { task: t.id, code: t.lastError.code, err: t.lastError.message, restartInMs: t.restartAt ? t.restartAt - now : undefined },
      `connector task failed; ${why}`,
    );
    if (permanent) this.o.events.onFatal(err);
    this.wake.notify();
    this.o.events.onChange?.();
  }

  /** Schedules a failed task's restart after its backoff (1 s, 2 s, 4 s … 60 s by its failures). */
  protected scheduleRestart(t: TaskRt): void {
    const { decl, metrics } = this.o;
    const delay = restartDelay(t.failures);
    t.restartAt = Date.now() + delay;
    clearTimeout(t.timer);
    t.timer = setTimeout(() => {
      t.timer = undefined;
      if (this.stopping || t.state !== ConnectorState.FAILED) return;
      metrics.restarts.inc({ connector: decl.name, task: String(t.id) });
      this.revive(t);
    }, delay);
    if (t.retrying) t.retrying.nextAttemptAt = t.restartAt;
  }

  /** Nacks what the task's partitions hold outside a worker (open, queued, waiting to be retried). */
  protected releaseTask(t: TaskRt, delayMs: number): void {
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

  protected revive(t: TaskRt): void {
    // Its pool was abandoned if its thread got stuck: a fresh one (the stuck thread stays abandoned).
    this.ensurePool(t.id);
    t.permanent = false;
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
}
