import { describe, expect, it } from 'vitest';
import type { ProduceMessage } from '@junction/protocol';
import { JunctionApiError, Producer, type ProduceResult, type ProduceSender, type RetryOptions } from '../src/index.js';

/** A sender that stores messages per partition (round robin by batch), records each request, and can be told to fail. */
class FakeSender implements ProduceSender {
  retry: RetryOptions = { retries: 3, minDelayMs: 1, maxDelayMs: 4 };
  requests: ProduceMessage[][] = [];
  inFlight = 0;
  maxSeenInFlight = 0;
  delayMs = 0;
  /** Errors thrown by the next requests, in order. */
  failures: JunctionApiError[] = [];
  /** When set, the failure happens after storing (the answer was lost). */
  failAfterStore = false;
  stored: ProduceMessage[] = [];
  /**
   * Per value: refusals to answer, in order. UNAVAILABLE is not stored; NOT_ACKNOWLEDGED is stored all the
   * same (a leader stored it, the answer was lost in an election).
   */
  refusals = new Map<string, string[]>();
  private seen = new Map<string, number>();

  async produceEncoded(_station: string, messages: readonly ProduceMessage[]): Promise<ProduceResult[]> {
    this.requests.push([...messages]);
    this.inFlight++;
    this.maxSeenInFlight = Math.max(this.maxSeenInFlight, this.inFlight);
    try {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      const failure = this.failures.shift();
      if (failure && !this.failAfterStore) throw failure;
      const results = messages.map((m): ProduceResult => {
        if (m.value.byteLength > 1000) return { status: 'rejected', code: 'MESSAGE_TOO_LARGE', message: 'too large' };
        const refusal = this.refusals.get(Buffer.from(m.value).toString())?.shift();
        if (refusal === 'UNAVAILABLE') return { status: 'rejected', code: refusal, message: 'no leader right now; retry' };
        if (refusal === 'NOT_ACKNOWLEDGED' && !(m.msgId !== undefined && this.seen.has(m.msgId))) {
          this.stored.push(m);
          if (m.msgId !== undefined) this.seen.set(m.msgId, this.stored.length);
          return { status: 'rejected', code: refusal, message: 'may or may not be stored' };
        }
        if (m.msgId !== undefined && this.seen.has(m.msgId)) return { status: 'duplicate', partition: 0, offset: this.seen.get(m.msgId)! };
        this.stored.push(m);
        const offset = this.stored.length;
        if (m.msgId !== undefined) this.seen.set(m.msgId, offset);
        return { status: 'stored', partition: 0, offset };
      });
      if (failure) throw failure;
      return results;
    } finally {
      this.inFlight--;
    }
  }
}

const netErr = () => new JunctionApiError('NETWORK_ERROR', 'ECONNRESET', { retryable: true });

describe('Producer batching', () => {
  it('batches concurrent sends into few requests and maps results back in order', async () => {
    const s = new FakeSender();
    const p = new Producer(s, 'st', { lingerMs: 5, maxBatchMessages: 100 });
    const results = await Promise.all(Array.from({ length: 250 }, (_, i) => p.send(`m${i}`)));
    expect(s.requests.map((r) => r.length)).toEqual([100, 100, 50]);
    results.forEach((r, i) => {
      expect(r).toEqual({ status: 'stored', partition: 0, offset: i + 1 });
      expect(Buffer.from(s.stored[i]!.value).toString()).toBe(`m${i}`);
    });
    await p.close();
  });

  it('sends a batch after lingerMs even when it is not full', async () => {
    const s = new FakeSender();
    const p = new Producer(s, 'st', { lingerMs: 20 });
    const started = Date.now();
    const r = await p.send({ value: new Uint8Array([1, 2, 3]), key: 'k', headers: { h: 'v' } });
    expect(r.offset).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    expect(s.requests[0]![0]).toMatchObject({ key: 'k', headers: { h: 'v' } });
    await p.close();
  });

  it('closes a batch at maxBatchBytes; an oversized message travels alone', async () => {
    const s = new FakeSender();
    const p = new Producer(s, 'st', { lingerMs: 5, maxBatchBytes: 1000 });
    const v = new Uint8Array(300);
    await Promise.all([p.send(v), p.send(v), p.send(v), p.send(v), p.send(new Uint8Array(900)).catch(() => {}), p.send(v)]);
    // 3 × (300 + overhead) fit under 1000; the 4th opens a new batch, the 900-byte one goes alone.
    expect(s.requests.map((r) => r.length)).toEqual([3, 1, 1, 1]);
    await p.close();
  });

  it('keeps at most maxInFlight requests out, and batches grow while it waits', async () => {
    const s = new FakeSender();
    s.delayMs = 20;
    const p = new Producer(s, 'st', { lingerMs: 0, maxInFlight: 2, maxBatchMessages: 1000 });
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      for (let j = 0; j < 50; j++) all.push(p.send('x'));
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    expect(s.maxSeenInFlight).toBe(2);
    expect(s.stored).toHaveLength(1000);
    // With both slots busy, later sends pile into bigger batches instead of 20 small requests.
    expect(s.requests.length).toBeLessThan(20);
    await p.close();
  });

  it('sendBatch sends one request and returns per-message results, rejected ones included', async () => {
    const s = new FakeSender();
    const p = new Producer(s, 'st');
    const r = await p.sendBatch(['a', new Uint8Array(2000), { value: 'c', key: 'k' }]);
    expect(s.requests).toHaveLength(1);
    expect(r).toEqual([
      { status: 'stored', partition: 0, offset: 1 },
      { status: 'rejected', code: 'MESSAGE_TOO_LARGE', message: 'too large' },
      { status: 'stored', partition: 0, offset: 2 },
    ]);
    expect(await p.sendBatch([])).toEqual([]);
    await p.close();
  });

  it('send() rejects a message the broker refused without failing its neighbours', async () => {
    const s = new FakeSender();
    const p = new Producer(s, 'st');
    const [a, b, c] = await Promise.allSettled([p.send('a'), p.send(new Uint8Array(5000)), p.send('c')]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { offset: 1 } });
    expect(b).toMatchObject({ status: 'rejected', reason: { code: 'MESSAGE_TOO_LARGE', retryable: false } });
    expect(c).toMatchObject({ status: 'fulfilled', value: { offset: 2 } });
    expect(s.requests).toHaveLength(1);
    await p.close();
  });

  it('flush() sends at once and waits; close() refuses later sends', async () => {
    const s = new FakeSender();
    const p = new Producer(s, 'st', { lingerMs: 10_000 });
    const r = p.send('a');
    await p.flush();
    expect(s.requests).toHaveLength(1);
    await expect(r).resolves.toMatchObject({ offset: 1 });
    void p.send('b');
    expect(p.pending).toBe(1);
    await p.close();
    expect(p.pending).toBe(0);
    expect(s.stored).toHaveLength(2);
    await expect(p.send('c')).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(p.sendBatch(['c'])).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('refuses metadata the broker would refuse with INVALID_INPUT, before it can spoil a batch', async () => {
    const s = new FakeSender();
    const p = new Producer(s, 'st');
    await expect(p.sendBatch([{ value: 'a', key: 'k'.repeat(5000) }])).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(p.send({ value: 'a', msgId: '' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(p.send({ value: 'a', headers: { '': 'x' } })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(p.send({ value: 42 as unknown as string })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(s.requests).toHaveLength(0);
    await p.close();
  });
});

describe('Producer failures', () => {
  it('a network failure rejects messages without msgId with the retryable error', async () => {
    const s = new FakeSender();
    s.failures = [netErr()];
    const p = new Producer(s, 'st');
    const r = await Promise.allSettled([p.send('a'), p.send('b')]);
    expect(r.map((x) => x.status)).toEqual(['rejected', 'rejected']);
    expect((r[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'NETWORK_ERROR', retryable: true });
    expect(s.requests).toHaveLength(1);
    await p.close();
  });

  it('retries messages with a msgId itself; dedup turns a lost answer into duplicate', async () => {
    const s = new FakeSender();
    s.failures = [netErr()];
    s.failAfterStore = true; // stored, but the answer never arrived
    const p = new Producer(s, 'st');
    const r = await Promise.allSettled([p.send({ value: 'a', msgId: 'id-a' }), p.send('b'), p.send({ value: 'c', msgId: 'id-c' })]);
    expect(r[0]).toMatchObject({ status: 'fulfilled', value: { status: 'duplicate', offset: 1 } });
    expect(r[1]).toMatchObject({ status: 'rejected', reason: { code: 'NETWORK_ERROR' } });
    expect(r[2]).toMatchObject({ status: 'fulfilled', value: { status: 'duplicate', offset: 3 } });
    // The retry carried only the msgId messages.
    expect(s.requests.map((q) => q.map((m) => m.msgId ?? '-'))).toEqual([
      ['id-a', '-', 'id-c'],
      ['id-a', 'id-c'],
    ]);
    expect(s.stored).toHaveLength(3);
    await p.close();
  });

  it('gives up after retry.retries and rejects with the last error', async () => {
    const s = new FakeSender();
    s.failures = [netErr(), netErr(), netErr()];
    const p = new Producer(s, 'st', { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 } });
    await expect(p.send({ value: 'a', msgId: 'x' })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    expect(s.requests).toHaveLength(3);
    await p.close();
  });

  it('does not retry a non-retryable failure even with a msgId', async () => {
    const s = new FakeSender();
    s.failures = [new JunctionApiError('STATION_NOT_FOUND', 'no station', { status: 404 })];
    const p = new Producer(s, 'st');
    await expect(p.send({ value: 'a', msgId: 'x' })).rejects.toMatchObject({ code: 'STATION_NOT_FOUND', retryable: false });
    expect(s.requests).toHaveLength(1);
    await p.close();
  });

  it('sends again what a leader election refused: UNAVAILABLE always, NOT_ACKNOWLEDGED only with a msgId; each stored once', async () => {
    const s = new FakeSender();
    s.refusals.set('a', ['UNAVAILABLE', 'UNAVAILABLE']);
    s.refusals.set('b', ['NOT_ACKNOWLEDGED']);
    s.refusals.set('c', ['NOT_ACKNOWLEDGED']);
    s.refusals.set('d', ['UNAVAILABLE']);
    const p = new Producer(s, 'st');
    const r = await Promise.allSettled([
      p.send('a'),
      p.send({ value: 'b', msgId: 'id-b' }),
      p.send('c'),
      p.send({ value: 'd', msgId: 'id-d' }),
      p.send('e'),
    ]);
    expect(r[0]).toMatchObject({ status: 'fulfilled', value: { status: 'stored' } });
    // Stored by the refused attempt: the msgId makes the resend a duplicate of it.
    expect(r[1]).toMatchObject({ status: 'fulfilled', value: { status: 'duplicate', offset: 1 } });
    // Perhaps stored, no msgId: not resent (it might be stored twice); the application decides.
    expect(r[2]).toMatchObject({ status: 'rejected', reason: { code: 'NOT_ACKNOWLEDGED', retryable: true } });
    expect(r[3]).toMatchObject({ status: 'fulfilled', value: { status: 'stored' } });
    expect(r[4]).toMatchObject({ status: 'fulfilled', value: { status: 'stored' } });
    expect(s.requests.map((q) => q.map((m) => Buffer.from(m.value).toString()))).toEqual([
      ['a', 'b', 'c', 'd', 'e'],
      ['a', 'b', 'd'],
      ['a'],
    ]);
    expect(s.stored.map((m) => Buffer.from(m.value).toString()).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    await p.close();
  });

  it('a message refused UNAVAILABLE past retry.retries rejects with the refusal, retryable', async () => {
    const s = new FakeSender();
    s.refusals.set('a', ['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE']);
    const p = new Producer(s, 'st', { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 } });
    await expect(p.send('a')).rejects.toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(s.requests).toHaveLength(3);
    expect(s.stored).toHaveLength(0);
    await p.close();
  });

  it('validates its options', () => {
    expect(() => new Producer(new FakeSender(), 'st', { maxInFlight: 0 })).toThrow(/maxInFlight/);
  });
});
