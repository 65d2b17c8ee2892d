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
   * follow when their answer comes), and schedules its restart — unless `permanent`, which waits for
   * a manual restart and makes the connector FAILED.
   */
  protected failTask(t: TaskRt, err: Error, permanent: boolean): void {
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
