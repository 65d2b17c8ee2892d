import { describe, expect, it } from 'vitest';
import { deliveryId } from '@junction/protocol';
import { Consumer, JunctionApiError, type ConsumerMessage, type Delivery, type GroupClient, type SettleResult } from '../src/index.js';

/** An in-memory group: fetch hands out queued deliveries (long-polling when empty); settles are recorded. */
class FakeGroup implements GroupClient {
  queue: Delivery[] = [];
  fetches = 0;
  concurrentFetches = 0;
  maxConcurrentFetches = 0;
  acked: string[] = [];
  nacked: string[] = [];
  deadLettered: { id: string; reason: string | undefined }[] = [];
  settleRequests = 0;
  created: unknown[] = [];
  /** Errors the next fetches throw, in order. */
  fetchErrors: JunctionApiError[] = [];
  private nextOffset = 1;
  private wake: (() => void) | undefined;

  push(n: number): void {
    for (let i = 0; i < n; i++) {
      const offset = this.nextOffset++;
      this.queue.push({
        partition: 0,
        offset,
        timestamp: Date.now(),
        headers: {},
        value: Buffer.from(`m${offset}`),
        deliveryCount: 1,
        deliveryId: deliveryId(0, offset, 1),
      });
    }
    this.wake?.();
  }

  async fetch(
    _s: string,
    _g: string,
    body: { maxMessages?: number; waitMs?: number },
    opts?: { signal?: AbortSignal },
  ): Promise<Delivery[]> {
    this.fetches++;
    this.concurrentFetches++;
    this.maxConcurrentFetches = Math.max(this.maxConcurrentFetches, this.concurrentFetches);
    try {
      const err = this.fetchErrors.shift();
      if (err) throw err;
      if (this.queue.length === 0 && (body.waitMs ?? 0) > 0) {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, body.waitMs);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
          opts?.signal?.addEventListener('abort', () => {
            clearTimeout(t);
            reject(new JunctionApiError('ABORTED', 'aborted'));
          });
        });
      }
      return this.queue.splice(0, body.maxMessages ?? 100);
    } finally {
      this.concurrentFetches--;
    }
  }
  async createGroup(_s: string, _g: string, body?: unknown): Promise<unknown> {
    this.created.push(body);
    if (this.created.length > 1) throw new JunctionApiError('GROUP_EXISTS', 'exists', { status: 409 });
    return {};
  }
  private settle(ids: readonly string[], status: SettleResult['status'], into: string[]): SettleResult[] {
    this.settleRequests++;
    into.push(...ids);
    return ids.map((id) => ({ deliveryId: id, status }));
  }
  async ack(_s: string, _g: string, ids: readonly string[]) {
    return this.settle(ids, 'acked', this.acked);
  }
  async nack(_s: string, _g: string, ids: readonly string[]) {
    return this.settle(ids, 'nacked', this.nacked);
  }
  async deadLetter(_s: string, _g: string, ids: readonly string[], reason?: string) {
    this.settleRequests++;
    for (const id of ids) this.deadLettered.push({ id, reason });
    return ids.map((id) => ({ deliveryId: id, status: 'dead-lettered' as const }));
  }
}

const netErr = () => new JunctionApiError('NETWORK_ERROR', 'ECONNREFUSED', { retryable: true });

describe('Consumer iteration', () => {
  it('yields every message once, in order, with batched acks', async () => {
    const g = new FakeGroup();
    g.push(1000);
    const c = new Consumer(g, 'st', 'grp', { maxMessages: 100, waitMs: 50 });
    const seen: number[] = [];
    for await (const m of c) {
      seen.push(m.offset);
      expect(m.text()).toBe(`m${m.offset}`);
      void m.ack();
      if (seen.length === 1000) break;
    }
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(c.isClosed).toBe(true);
    expect(g.acked).toHaveLength(1000);
    expect(g.settleRequests).toBeLessThanOrEqual(20); // ~one per batch, not one per message
  });

  it('prefetches at most one batch ahead', async () => {
    const g = new FakeGroup();
    g.push(500);
    const c = new Consumer(g, 'st', 'grp', { maxMessages: 50, waitMs: 20 });
    let n = 0;
    for await (const m of c) {
      // While the loop works on a batch, the next is fetched, but never a third.
      await new Promise((r) => setTimeout(r, 1));
      expect(g.fetches).toBeLessThanOrEqual(Math.floor((m.offset - 1) / 50) + 2);
      void m.ack();
      if (++n === 500) break;
    }
    expect(g.maxConcurrentFetches).toBe(1);
  });

  it('autoAck acks each message when the loop moves on, not the one it breaks on', async () => {
    const g = new FakeGroup();
    g.push(10);
    const c = new Consumer(g, 'st', 'grp', { autoAck: true, waitMs: 10 });
    for await (const m of c) if (m.offset === 5) break;
    expect(g.acked.sort()).toEqual(['0-1-1', '0-2-1', '0-3-1', '0-4-1']);
    // Prefetched and never seen: handed back at once.
    expect(g.nacked.sort()).toEqual(['0-10-1', '0-6-1', '0-7-1', '0-8-1', '0-9-1']);
  });

  it('settles once: the first of ack / nack / deadLetter wins', async () => {
    const g = new FakeGroup();
    g.push(2);
    const c = new Consumer(g, 'st', 'grp', { waitMs: 10 });
    const [a, b] = await c.fetch();
    expect(await a!.deadLetter('bad input')).toBe('dead-lettered');
    expect(await a!.ack()).toBe('dead-lettered');
    expect(await b!.nack(100)).toBe('nacked');
    expect(g.deadLettered).toEqual([{ id: '0-1-1', reason: 'bad input' }]);
    expect(g.acked).toEqual([]);
    await c.close();
  });

  it('close() from inside the loop ends it and aborts the long poll', async () => {
    const g = new FakeGroup();
    g.push(3);
    const c = new Consumer(g, 'st', 'grp', { waitMs: 60_000 });
    const started = Date.now();
    let n = 0;
    for await (const m of c) {
      void m.ack();
      if (++n === 3) await c.close(); // the prefetch is a 60 s long poll: close must cut it
    }
    expect(n).toBe(3);
    expect(Date.now() - started).toBeLessThan(30_000); // the long poll was 60 s
  });

  it('close() from outside ends a loop that is waiting for messages', async () => {
    const g = new FakeGroup();
    const c = new Consumer(g, 'st', 'grp', { waitMs: 60_000 });
    const loop = (async () => {
      let n = 0;
      for await (const _m of c) n++;
      return n;
    })();
    await new Promise((r) => setTimeout(r, 20));
    await c.close();
    await expect(loop).resolves.toBe(0);
  });

  it('reconnects with backoff on retryable errors and keeps iterating', async () => {
    const g = new FakeGroup();
    g.fetchErrors = [netErr(), netErr(), new JunctionApiError('STORE_CLOSED', 'restarting', { status: 503 })];
    g.push(5);
    const errors: string[] = [];
    const c = new Consumer(g, 'st', 'grp', {
      waitMs: 10,
      reconnect: { minDelayMs: 5, maxDelayMs: 20 },
      onError: (e) => errors.push(e.code),
    });
    const seen: number[] = [];
    for await (const m of c) {
      seen.push(m.offset);
      void m.ack();
      if (seen.length === 5) break;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(errors).toEqual(['NETWORK_ERROR', 'NETWORK_ERROR', 'STORE_CLOSED']);
  });

  it('ends the loop with a non-retryable error, after the messages already fetched', async () => {
    const g = new FakeGroup();
    g.push(3);
    const c = new Consumer(g, 'st', 'grp', { waitMs: 10 });
    const seen: number[] = [];
    let caught: unknown;
    try {
      for await (const m of c) {
        seen.push(m.offset);
        void m.ack();
        g.fetchErrors = [new JunctionApiError('STATION_NOT_FOUND', 'gone', { status: 404 })];
      }
    } catch (err) {
      caught = err;
    }
    expect(seen).toEqual([1, 2, 3]);
    expect(caught).toMatchObject({ code: 'STATION_NOT_FOUND', status: 404 });
    expect(c.isClosed).toBe(true);
    expect(g.acked).toHaveLength(3);
  });

  it('creates the group first when asked, and tolerates GROUP_EXISTS', async () => {
    const g = new FakeGroup();
    g.push(1);
    await g.createGroup('st', 'grp', {}); // exists already
    const c = new Consumer(g, 'st', 'grp', { create: { start: { type: 'latest' } }, waitMs: 10 });
    const ms = await c.fetch();
    expect(ms).toHaveLength(1);
    expect(g.created).toEqual([{}, { start: { type: 'latest' } }]);
    await c.close();
  });

  it('allows one loop at a time, and fetch() after close rejects with CLOSED', async () => {
    const g = new FakeGroup();
    g.push(2);
    const c = new Consumer(g, 'st', 'grp', { waitMs: 10 });
    const it1 = c[Symbol.asyncIterator]();
    const first = await it1.next();
    expect((first.value as ConsumerMessage).offset).toBe(1);
    await expect(c[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await it1.return?.();
    await expect(c.fetch()).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
