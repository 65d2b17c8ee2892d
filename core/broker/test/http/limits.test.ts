import { describe, expect, it } from 'vitest';
import { BodyGate } from '../../src/http/limits.js';

describe('BodyGate', () => {
  it('admits within its budget, queues beyond it in order, and admits a body larger than the budget alone', async () => {
    const gate = new BodyGate({ maxBytes: 100, maxWaitMs: 5_000 });
    const a = await gate.acquire(60);
    const order: string[] = [];
    const b = gate.acquire(60).then((r) => (order.push('b'), r));
    const c = gate.acquire(10).then((r) => (order.push('c'), r)); // fits, but waits behind b: no overtaking
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([]);
    expect(gate.inUse).toBe(60);
    a();
    a(); // idempotent
    const rb = await b;
    const rc = await c;
    expect(order).toEqual(['b', 'c']);
    expect(gate.inUse).toBe(70);
    rb();
    rc();
    expect(gate.inUse).toBe(0);
    const huge = await gate.acquire(1_000);
    expect(gate.inUse).toBe(1_000);
    huge();
  });

  it('answers SERVER_BUSY (retryable) after maxWaitMs, and REQUEST_ABORTED when the client leaves while waiting', async () => {
    const gate = new BodyGate({ maxBytes: 10, maxWaitMs: 50 });
    const held = await gate.acquire(10);
    await expect(gate.acquire(5)).rejects.toMatchObject({ code: 'SERVER_BUSY', retryable: true });
    const ac = new AbortController();
    const waiting = gate.acquire(5, ac.signal);
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'REQUEST_ABORTED' });
    held();
    expect(gate.inUse).toBe(0);
    (await gate.acquire(10))();
  });
});
