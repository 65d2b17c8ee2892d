/** The sink runner's fetch loop and batching: what is fetched, and how it is cut into batches. */
import type { DeliveryChunk, FetchOptions } from '@junction/broker';
import { ChunkField } from '@junction/broker';
import { ConnectorState } from './declaration.js';
import { codeOf, messageOf } from './errors.js';
import { chunksFromDeliveries, idsOf, offsetAt, pickChunk, sliceChunk } from './chunks.js';
import { SinkRunnerBase } from './sink-base.js';
import { F, FETCH_CHUNK, FETCH_WAIT_MS, indexOfOffset } from './sink-types.js';
import type { Batch, Part } from './sink-types.js';
import type { PackedBatch } from './wire.js';
import { SchemaWatch } from './sink-schema.js';

/** The fetch loop and the cutting of batches (one layer of the sink runner; see sink-base.ts). */
export abstract class SinkBatching extends SinkRunnerBase {
  /** The station's schema for the plugin, resolved again after each fetch that brought messages. */
  protected readonly schemaWatch = this.o.stationSchemaOf
    ? new SchemaWatch(this.o.decl.station, this.o.stationSchemaOf, this.log)
    : undefined;

  // ── fetch and batching ─────────────────────────────────────────────────────────────────────────

  protected async fetchLoop(): Promise<void> {
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
          waitMs: FETCH_WAIT_MS,
          signal,
          preferPartition: prefer?.id,
          ...(this.fetchPartitions && { partitions: this.fetchPartitions }),
        };
        // The packed path when the store has it: no object per message on the broker's event loop.
        chunks = store.fetchChunks
          ? await store.fetchChunks(decl.station, this.group, options)
          : chunksFromDeliveries(await store.fetch(decl.station, this.group, options), this.stationId);
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
      if (chunks.length === 0) continue;
      // Before these messages are cut into batches: a batch's schema is at least as new as their binding.
      if (this.schemaWatch) await this.schemaWatch.refresh();
      if (this.stopping) {
        // Delivered while the stop began (the abort came after the store took them): hand them back
        // now, or they would stay pending on the group until the ack deadline, hours away.
        const ids: string[] = [];
        for (const c of chunks) idsOf(c, ids);
        await store
          .nack(decl.station, this.group, ids, 0)
          .catch((err: unknown) =>
            this.log.warn({ err: messageOf(err) }, 'nack on stop failed; the ack deadline will return the messages'),
          );
        break;
      }
      this.ingest(chunks);
    }
  }

  /**
   * The partition to fetch for first: the one with the fullest accumulating batch and nothing queued
   * behind its current one; else the next (round-robin) with nothing queued or being written, whose
   * batch can go to a worker as soon as it is cut; else none.
   */
  protected preferred(): Part | undefined {
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

  protected fetchable(p: Part): boolean {
    return this.owned.has(p.task) && this.tasks[p.task]!.state === ConnectorState.RUNNING;
  }

  protected ingest(chunks: DeliveryChunk[]): void {
    const { decl } = this.o;
    const touched = new Set<Part>();
    const refused = new Map<number, string[]>();
    const now = Date.now();
    for (const fetched of chunks) {
      const p = this.partition(fetched.partition);
      const t = this.tasks[p.task]!;
      if (t.state !== ConnectorState.RUNNING) {
        const delay = this.giveBackDelay(t, now);
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
  protected withoutHeld(p: Part, c: DeliveryChunk): DeliveryChunk | undefined {
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
  protected take(p: Part, c: DeliveryChunk): void {
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
  protected cut(p: Part): void {
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

  /** Packs a batch for a worker (sink-dispatch.ts). */
  protected abstract pack(p: Part, batch: Batch): PackedBatch;
}
