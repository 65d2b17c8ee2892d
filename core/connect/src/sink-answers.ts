/** The sink runner's answers: acks, dead letters, retries with backoff, and giving up. */
import type { DeliveryChunk, OffsetRange } from '@junction/broker';
import { checkWriteResults, deserializeError, isRetryable } from '@junction/sdk-connector';
import type { WriteResult } from '@junction/sdk-connector';
import { ConnectorState } from './declaration.js';
import { ConnectErrorCode, codeOf, connectError, messageOf } from './errors.js';
import { jitteredBackoff } from './util.js';
import { addRanges, idsOf, offsetAt, pickChunk, timestampAt } from './chunks.js';
import { SinkFailure } from './sink-failure.js';
import { CONNECTOR_DLS_HEADERS, HEALTHY_AFTER_MS, OPEN_TIMEOUT_MS, RETRY_BASE_MS } from './sink-types.js';
import type { Batch, Part, TaskRt } from './sink-types.js';
import type { SinkWriteAnswer } from './wire.js';

/** Workers' answers turned into acks, dead letters, retries and failures (one layer of the sink runner; see sink-base.ts). */
export abstract class SinkAnswers extends SinkFailure {
  // ── answers ────────────────────────────────────────────────────────────────────────────────────

  protected onAnswer(p: Part, t: TaskRt, batch: Batch, answer: SinkWriteAnswer): void {
    const { decl, metrics } = this.o;
    metrics.addWorkerTime(decl.name, answer.pluginMs);
    if (answer.metrics.length > 0) metrics.applyPluginMetrics(this.o.pluginName, decl.name, answer.metrics);
    t.worker = `thread-${answer.threadId}`;
    if (answer.error !== undefined) {
      const err = deserializeError(answer.error);
      if (isRetryable(err)) this.retryLater(p, t, batch, batch.pieces, err, 0);
      else if (answer.phase === 'open') this.unusable(p, t, batch, err);
      else if (answer.phase === 'transform') this.transformFailed(p, t, batch, err);
      else this.fatal(p, t, batch, err);
      return;
    }
    // All ok comes as a count (see sink-worker.ts); otherwise one result per message, checked here again.
    let results: WriteResult[] | undefined;
    try {
      if (answer.okCount === undefined) results = checkWriteResults(answer.results, batch.count);
      else if (answer.okCount !== batch.count)
        throw connectError('PLUGIN_INVALID', `the worker answered ${answer.okCount} ok results for ${batch.count} messages`);
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
    // Dropped by the transforms: acknowledged with the written ones, counted apart (not written).
    if (answer.dropped) metrics.transformDropped.inc(labels, answer.dropped);
    if (okCount > 0) {
      if (okCount > (answer.dropped ?? 0)) metrics.messages.inc(labels, okCount - (answer.dropped ?? 0));
      metrics.bytes.inc(labels, okBytes);
      this.throughput.add(okCount, okBytes);
      const last = ok[ok.length - 1]!;
      this.o.freshness?.landed(t.id, timestampAt(last, last.count - 1));
      this.release(p, ok, okCount, okBytes, true);
      this.settle(this.ackPieces(ok));
    }
    for (const e of dead.values()) {
      metrics.deadLetters.inc(labels, e.count);
      this.release(p, e.pieces, e.count, e.bytes, true);
      const ids: string[] = [];
      for (const c of e.pieces) idsOf(c, ids);
      const reason = this.scrub(e.reason);
      this.settle(
        this.o.store.deadLetter(decl.station, this.group, ids, reason, {
          code: e.code,
          headers: this.dlsHeaders(e.code, reason, batch.attempts),
        }),
      );
    }
    if (okCount > 0 && t.failures > 0 && Date.now() - t.startedAt >= HEALTHY_AFTER_MS) t.failures = 0;
    if (again.length > 0) {
      this.retryLater(p, t, batch, again, connectError('RETRY', lastReason, { retryable: true }), minDelay);
    } else {
      p.current = undefined;
      if (t.retrying) this.maybeRecovered(t);
    }
  }

  /** The task's messages are written again: it is not retrying any more unless another of its partitions still has a batch to retry. */
  protected maybeRecovered(t: TaskRt): void {
    for (const q of this.partList) if (q.task === t.id && q.current?.firstFailureAt !== undefined) return;
    this.log.info(
      { task: t.id, attempts: t.retrying?.attempts, sinceMs: t.retrying ? Date.now() - t.retrying.since : undefined },
      'the task writes again',
    );
    t.retrying = undefined;
    this.o.events.onChange?.();
  }

  /** Counts a failed attempt of messages failing since `since`: the task is retrying (status, metrics). */
  protected noteRetrying(t: TaskRt, err: Error, since: number, nextAttemptAt: number | undefined): void {
    const now = Date.now();
    t.lastError = { code: codeOf(err) ?? 'INTERNAL', message: this.scrub(err.message), at: now };
    const r = t.retrying;
    if (!r)
      this.log.warn(
        { task: t.id, code: t.lastError.code, err: t.lastError.message },
        'the task retries: its messages could not be written',
      );
    t.retrying = { since: Math.min(r?.since ?? since, since), attempts: (r?.attempts ?? 0) + 1, nextAttemptAt };
  }

  /**
   * `open()` threw a non-retryable error: the destination cannot be used as configured (a directory that
   * cannot be made, a refused login, a missing bucket). Retrying will not help, so the task fails for
   * good with that code (the connector too), and its messages go back to the group — never dead-lettered,
   * whatever `errors.tolerance` says: they are not at fault.
   */
  protected unusable(p: Part, t: TaskRt, batch: Batch, err: Error): void {
    if (this.stopping) return; // the batch stays current: the stop nacks it
    this.log.error(
      { task: t.id, code: codeOf(err), err: this.scrub(err.message) },
      'the sink cannot open with this configuration; the task fails until the connector is restarted or its config changed',
    );
    this.failTask(t, err, true);
    if (p.current === batch) p.current = undefined;
    this.nackReleased(p, batch.pieces, this.giveBackDelay(t));
  }

  /**
   * A transform failed a message and `errors.tolerance` is `none` (Kafka Connect's rule for SMTs): the
   * task fails for good with TRANSFORM_FAILED (the step and the reason in its trace), nothing of the batch
   * is written or acked, and the batch goes back to the group. A transform is deterministic, so retrying
   * would fail the same way: fix the chain (or set tolerance all to dead-letter such messages), restart.
   */
  protected transformFailed(p: Part, t: TaskRt, batch: Batch, err: Error): void {
    if (this.stopping) return;
    this.log.error(
      { task: t.id, partition: p.id, code: codeOf(err), err: this.scrub(err.message) },
      'a transform failed a message (errors.tolerance none): the task fails until the connector is restarted or its config changed',
    );
    this.failTask(t, err, true);
    if (p.current === batch) p.current = undefined;
    this.nackReleased(p, batch.pieces, this.giveBackDelay(t));
  }

  /** Acks written messages: by offset range where the store takes ranges, else by delivery id. */
  protected ackPieces(pieces: readonly DeliveryChunk[]): Promise<unknown> {
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

  protected onRejected(p: Part, t: TaskRt, batch: Batch, err: unknown, timedOut: 'write' | 'open' | undefined): void {
    if (this.stopping && !timedOut) return; // the stop nacks what is held
    const { decl } = this.o;
    let e: Error;
    if (codeOf(err) === ConnectErrorCode.WORKER_STUCK) {
      const what =
        timedOut === 'write'
          ? `a write of partition ${p.id} timed out`
          : timedOut === 'open'
            ? `the sink's open timed out`
            : 'the connector was stopping';
      e = connectError(ConnectErrorCode.WORKER_STUCK, `${what}, and ${messageOf(err)}`, { cause: err });
    } else if (timedOut === 'write') {
      e = connectError(
        ConnectErrorCode.WRITE_TIMEOUT,
        `write of ${batch.count} messages (partition ${p.id}) did not settle within ${decl.writeTimeoutMs} ms; the worker was terminated`,
      );
    } else if (timedOut === 'open') {
      e = connectError(
        ConnectErrorCode.OPEN_TIMEOUT,
        `the sink did not open (or the batch of partition ${p.id} did not reach a worker) within ${Math.max(OPEN_TIMEOUT_MS, decl.writeTimeoutMs)} ms; the worker was terminated`,
      );
    } else if ((err as { code?: unknown })?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      e = connectError(
        ConnectErrorCode.WORKER_OUT_OF_MEMORY,
        `the worker ran out of heap (maxHeapMb ${decl.maxHeapMb}) writing partition ${p.id}: ${messageOf(err)}`,
        { cause: err },
      );
    } else {
      e = connectError(ConnectErrorCode.WORKER_CRASHED, `the worker writing partition ${p.id} died: ${messageOf(err)}`, { cause: err });
    }
    t.worker = undefined;
    this.fatal(p, t, batch, e);
  }

  /** Keeps `pieces` as the partition's current batch and sends them again after a backoff — or gives up. */
  protected retryLater(p: Part, t: TaskRt, batch: Batch, pieces: DeliveryChunk[], err: Error, minDelayMs: number): void {
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
    const delay = Math.min(
      Math.max(minDelayMs, jitteredBackoff(retryBatch.attempts, RETRY_BASE_MS, decl.errors.retryMaxDelayMs)),
      Math.max(0, left),
    );
    retryBatch.notBefore = now + delay;
    this.noteRetrying(t, err, since, now + delay);
    p.current = retryBatch;
    clearTimeout(p.retryTimer);
    p.retryTimer = setTimeout(() => {
      p.retryTimer = undefined;
      this.pump();
    }, delay);
    this.log.debug(
      { partition: p.id, messages: count, attempt: retryBatch.attempts, delayMs: delay, reason: this.scrub(err.message) },
      'retrying',
    );
  }

  /** A failure that takes the task down (non-retryable error, timeout, crash, heap, broken answer). */
  protected fatal(p: Part, t: TaskRt, batch: Batch, err: Error): void {
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
      for (const c of batch.pieces)
        for (let i = 0; i < c.count; i++) this.failingSince.set(`${p.id}:${offsetAt(c, i)}`, { since, attempts: batch.attempts });
      this.o.metrics.retries.inc({ connector: decl.name, task: String(t.id) }, batch.count);
      this.noteRetrying(t, err, since, undefined);
      this.failTask(t, err, false);
      // The failed batch itself is still marked as writing, so failTask left it: give it back too.
      if (p.current === batch) p.current = undefined;
      this.nackReleased(p, batch.pieces, this.giveBackDelay(t));
    }
  }

  /** The retry budget ran out: dead-letter the messages (tolerance all) or fail the task for good (none). */
  protected exhausted(p: Part, t: TaskRt, batch: Batch, err: Error): void {
    const { decl, metrics } = this.o;
    p.current = undefined;
    if (decl.errors.tolerance === 'all') {
      const code = codeOf(err) && codeOf(err) !== 'RETRY' ? codeOf(err)! : ConnectErrorCode.RETRIES_EXHAUSTED;
      const reason = this.scrub(`${err.message} (gave up after ${batch.attempts} attempts in ${decl.errors.retryTimeoutMs} ms)`);
      const ids: string[] = [];
      for (const c of batch.pieces) idsOf(c, ids);
      this.release(p, batch.pieces, batch.count, batch.bytes, true);
      metrics.deadLetters.inc({ connector: decl.name, task: String(t.id) }, ids.length);
      this.settle(
        this.o.store.deadLetter(decl.station, this.group, ids, reason, {
          code,
          headers: this.dlsHeaders(code, this.scrub(err.message), batch.attempts),
        }),
      );
      this.log.warn({ partition: p.id, messages: ids.length, code }, 'retries exhausted: messages dead-lettered (errors.tolerance all)');
      if (t.retrying) this.maybeRecovered(t);
      return;
    }
    const e = connectError(
      ConnectErrorCode.RETRIES_EXHAUSTED,
      `${batch.count} messages of partition ${p.id} still failed after ${batch.attempts} attempts in ${decl.errors.retryTimeoutMs} ms (errors.tolerance none): ${err.message}`,
      { cause: err },
    );
    this.failTask(t, e, true);
    this.nackReleased(p, batch.pieces, this.giveBackDelay(t));
  }

  protected dlsHeaders(code: string, message: string, attempts: number): Record<string, string> {
    return {
      [CONNECTOR_DLS_HEADERS.connector]: this.o.decl.name,
      [CONNECTOR_DLS_HEADERS.errorCode]: code,
      [CONNECTOR_DLS_HEADERS.errorMessage]: message.slice(0, 1000),
      [CONNECTOR_DLS_HEADERS.attempts]: String(attempts),
    };
  }
}
