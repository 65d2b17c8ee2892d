import { describe, expect, it } from 'vitest';
import { JunctionApiError, SettleBatcher, type SettleKind, type SettleResult } from '../src/index.js';

interface Sent {
  kind: SettleKind;
  ids: string[];
  arg: number | string | undefined;
}

function recorder(answer?: (s: Sent) => Promise<SettleResult[]>) {
  const sent: Sent[] = [];
  const send = (kind: SettleKind, ids: string[], arg: number | string | undefined) => {
    const s = { kind, ids, arg };
    sent.push(s);
    const status = kind === 'ack' ? 'acked' : kind === 'nack' ? 'nacked' : 'dead-lettered';
    return answer ? answer(s) : Promise.resolve(ids.map((deliveryId) => ({ deliveryId, status }) as SettleResult));
  };
  return { sent, send };
}

describe('SettleBatcher', () => {
  it('coalesces acks made close together into one request', async () => {
    const r = recorder();
    const b = new SettleBatcher(r.send, { lingerMs: 5 });
    const all = Array.from({ length: 250 }, (_, i) => b.add('ack', `0-${i + 1}-1`));
    expect(r.sent).toHaveLength(0);
    expect(await Promise.all(all)).toEqual(Array(250).fill('acked'));
    expect(r.sent).toHaveLength(1);
    expect(r.sent[0]!.ids).toHaveLength(250);
  });

  it('sends at once when maxIds are waiting', async () => {
    const r = recorder();
    const b = new SettleBatcher(r.send, { lingerMs: 10_000, maxIds: 100 });
    const all = Array.from({ length: 250 }, (_, i) => b.add('ack', `0-${i + 1}-1`));
    expect(r.sent.map((s) => s.ids.length)).toEqual([100, 100]);
    await b.flush();
    expect(r.sent.map((s) => s.ids.length)).toEqual([100, 100, 50]);
    await Promise.all(all);
  });

  it('keeps kinds, nack delays and dead-letter reasons apart', async () => {
    const r = recorder();
    const b = new SettleBatcher(r.send, { lingerMs: 1 });
    await Promise.all([
      b.add('ack', 'a'),
      b.add('nack', 'b'),
      b.add('nack', 'c', 1000),
      b.add('nack', 'd', 1000),
      b.add('dead-letter', 'e', 'bad'),
      b.add('dead-letter', 'f', 'worse'),
      b.add('ack', 'g'),
    ]);
    const summary = r.sent.map((s) => `${s.kind}:${String(s.arg)}:${s.ids.join(',')}`).sort();
    expect(summary).toEqual(['ack:undefined:a,g', 'dead-letter:bad:e', 'dead-letter:worse:f', 'nack:1000:c,d', 'nack:undefined:b']);
  });

  it('resolves ids the answer left out as unknown, and passes each status through', async () => {
    const r = recorder(async (s) => s.ids.slice(1).map((deliveryId) => ({ deliveryId, status: 'stale' as const })));
    const b = new SettleBatcher(r.send, { lingerMs: 1 });
    expect(await Promise.all([b.add('ack', 'x'), b.add('ack', 'y')])).toEqual(['unknown', 'stale']);
  });

  it('rejects every id of a failed request with the error', async () => {
    const r = recorder(() => Promise.reject(new JunctionApiError('NETWORK_ERROR', 'down', { retryable: true })));
    const b = new SettleBatcher(r.send, { lingerMs: 1 });
    const res = await Promise.allSettled([b.add('ack', 'x'), b.add('ack', 'y')]);
    expect(res.map((x) => x.status)).toEqual(['rejected', 'rejected']);
    await b.flush(); // never rejects
  });

  it('flush waits for requests in flight and leaves no timer behind', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const r = recorder(async (s) => {
      await gate;
      return s.ids.map((deliveryId) => ({ deliveryId, status: 'acked' as const }));
    });
    const b = new SettleBatcher(r.send, { lingerMs: 10_000 });
    const p = b.add('ack', 'x');
    let flushed = false;
    const f = b.flush().then(() => (flushed = true));
    await new Promise((res) => setTimeout(res, 10));
    expect(flushed).toBe(false);
    release();
    await f;
    await expect(p).resolves.toBe('acked');
    expect(b.waiting).toBe(0);
  });

  it('gathers settles while a request is out and sends them together when it is answered', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let first = true;
    const r = recorder(async (s) => {
      if (first) {
        first = false;
        await gate;
      }
      return s.ids.map((deliveryId) => ({ deliveryId, status: 'acked' as const }));
    });
    const b = new SettleBatcher(r.send, { lingerMs: 10_000 });
    const a = b.add('ack', 'a');
    await new Promise((res) => setImmediate(res));
    expect(r.sent).toHaveLength(1); // left at the end of its turn
    const later = ['b', 'c', 'd'].map((id) => b.add('ack', id));
    await new Promise((res) => setTimeout(res, 20));
    expect(r.sent).toHaveLength(1); // waiting for the first answer
    release();
    await Promise.all([a, ...later]);
    expect(r.sent.map((s) => s.ids)).toEqual([['a'], ['b', 'c', 'd']]);
  });

  it('an awaited ack pays a round trip, not the linger', async () => {
    const r = recorder();
    const b = new SettleBatcher(r.send, { lingerMs: 10_000 });
    const started = Date.now();
    for (let i = 0; i < 20; i++) await b.add('ack', `id${i}`);
    // One linger paid anywhere would take 10 s; the bound leaves a loaded machine room.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.sent).toHaveLength(20);
  });
});
