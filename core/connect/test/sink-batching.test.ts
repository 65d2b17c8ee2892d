import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSink } from '@junction/connector-file/read';
import { batches, harness, lagOf, produceN, waitFor, written } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await harness();
});
afterEach(async () => {
  await h.cleanup();
});

describe('sink batching and acknowledgement', () => {
  it('writes every message through the real file sink, byte for byte, and acks them all', async () => {
    await h.store.createStation('orders', { partitions: 3 });
    await produceN(h.store, 'orders', 3000, { key: (i) => `k${i % 17}`, headers: (i) => (i % 2 === 0 ? { even: 'yes' } : undefined) });
    const out = join(h.dir, 'out');
    await h.runtime.create({
      name: 'to-files',
      plugin: 'file',
      station: 'orders',
      config: { dir: out, fsync: false },
      batch: { maxLatencyMs: 50 },
    });
    await waitFor(async () => (await lagOf(h.store, 'orders', 'to-files')) === 0, { what: 'lag 0' });
    const records = await readFileSink(out);
    expect(records.length).toBe(3000);
    const values = new Set(records.map((r) => Buffer.from(r.value).toString()));
    expect(values.size).toBe(3000);
    for (let i = 1; i <= 3000; i++) expect(values.has(`m-${i}`)).toBe(true);
    // Keys and headers cross the worker boundary too.
    for (const r of records) {
      const n = Number(Buffer.from(r.value).toString().slice(2));
      expect(r.key).toBe(`k${n % 17}`);
      expect(r.headers).toEqual(n % 2 === 0 ? { even: 'yes' } : {});
    }
    const status = await h.runtime.status('to-files');
    expect(status.connector.state).toBe('RUNNING');
    expect(status.type).toBe('sink');
    expect(status.tasks).toHaveLength(1);
    expect(status.lag).toBe(0);
  });

  it('spreads partitions over tasks (partition p → task p mod tasks), one pool thread per task', async () => {
    await h.store.createStation('wide', { partitions: 4 });
    await produceN(h.store, 'wide', 2000);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-ok',
      station: 'wide',
      tasks: 2,
      config: { dir },
      batch: { maxMessages: 100, maxLatencyMs: 20 },
    });
    await waitFor(async () => (await lagOf(h.store, 'wide', 'c')) === 0, { what: 'lag 0' });
    expect((await written(dir)).unique).toBe(2000);
    const s = await h.runtime.status('c');
    expect(s.tasks.map((t) => [t.id, t.state, t.partitions])).toEqual([
      [0, 'RUNNING', [0, 2]],
      [1, 'RUNNING', [1, 3]],
    ]);
    // Per partition, batches came in offset order.
    const perPartition = new Map<number, number>();
    for (const b of await batches(dir)) {
      expect(b.first).toBeGreaterThan(perPartition.get(b.partition) ?? 0);
      perPartition.set(b.partition, b.last);
    }
  });

  it('cuts batches by maxMessages, in offset order, contiguous', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 250);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-ok',
      station: 's',
      config: { dir },
      batch: { maxMessages: 100, maxLatencyMs: 60_000 },
    });
    await waitFor(async () => (await batches(dir)).length >= 2, { what: 'two full batches' });
    const b = await batches(dir);
    expect(b.slice(0, 2)).toEqual([
      { partition: 0, first: 1, last: 100, count: 100 },
      { partition: 0, first: 101, last: 200, count: 100 },
    ]);
    // The remaining 50 wait for maxLatencyMs (a minute): not written yet.
    await new Promise((r) => setTimeout(r, 300));
    expect((await batches(dir)).length).toBe(2);
    expect(await lagOf(h.store, 's', 'c')).toBe(50);
  });

  it('cuts batches by maxBytes', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 100, { size: 100 });
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-ok',
      station: 's',
      config: { dir },
      batch: { maxBytes: 1000, maxLatencyMs: 60_000 },
    });
    await waitFor(async () => (await batches(dir)).length >= 10, { what: 'ten batches' });
    for (const b of await batches(dir)) expect(b.count).toBe(10);
  });

  it('flushes a single message after maxLatencyMs with no more traffic', async () => {
    await h.store.createStation('s', { partitions: 1 });
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-ok',
      station: 's',
      config: { dir },
      batch: { maxMessages: 1000, maxLatencyMs: 300 },
    });
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await h.store.produce('s', [{ value: Buffer.from('alone') }]);
    await waitFor(async () => (await batches(dir)).length === 1, { what: 'the lone message', intervalMs: 10 });
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(3000);
    expect(await batches(dir)).toEqual([{ partition: 0, first: 1, last: 1, count: 1 }]);
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'ack' });
  });

  it('acks only what the sink confirmed: a sink that answers retry keeps the lag', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 20);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-retry',
      station: 's',
      config: { dir, times: -1, odd: true },
      batch: { maxLatencyMs: 10 },
      errors: { retryTimeoutMs: 60_000, retryMaxDelayMs: 50 },
    });
    // Even offsets are written and acked; odd ones keep answering retry and stay unacked.
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 10, { what: 'lag 10' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await lagOf(h.store, 's', 'c')).toBe(10);
    const w = await written(dir);
    expect(w.offsets.get(0)).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    // Retry batches carry only the messages that answered retry.
    const later = (await batches(dir)).slice(1);
    expect(later.length).toBeGreaterThan(0);
    for (const b of later) expect(b).toMatchObject({ first: 1, last: 19, count: 10 });
    const status = await h.runtime.status('c');
    expect(status.tasks[0]!.state).toBe('RUNNING');
  });

  it('writes a message the broker redelivers while the runtime still holds it once, and acks it', async () => {
    await h.store.createStation('s', { partitions: 1 });
    // A group whose ack deadline is far shorter than the connector needs: the broker hands the held
    // messages out again while the slow sink still works on the batch before them.
    await h.store.createGroup('s', 'connector.c', { maxAckTimeMs: 200, maxDeliveries: 1000 });
    await produceN(h.store, 's', 200);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-slow',
      station: 's',
      config: { dir, delayMs: 700 },
      batch: { maxMessages: 50, maxLatencyMs: 20 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0', timeoutMs: 30_000 });
    const w = await written(dir);
    expect(w.unique).toBe(200);
    expect(w.lines).toBe(200);
    expect((await h.store.getGroup('s', 'connector.c')).redeliveries).toBeGreaterThan(0);
    expect((await h.store.getStation('s.dls')).messages).toBe(0);
  });
  it('over a backlog in several partitions, fills one batch at a time: batches are cut full, not small', async () => {
    await h.store.createStation('s', { partitions: 3 });
    await produceN(h.store, 's', 18_000);
    const dir = join(h.dir, 'rec');
    // Batches larger than one fetch (1000): a batch takes several fetches to fill.
    await h.runtime.create({
      name: 'c',
      plugin: 'test-slow',
      station: 's',
      config: { dir, delayMs: 30 },
      batch: { maxMessages: 2000, maxLatencyMs: 60_000 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0', timeoutMs: 30_000 });
    expect((await written(dir)).unique).toBe(18_000);
    // 6000 per partition: three full batches each, none cut early by the runtime's buffer bound.
    const b = await batches(dir);
    expect(b.map((x) => x.count)).toEqual(new Array(9).fill(2000));
  });
  it("runs a sink's background work between batches (its worker is not parked while idle)", async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 10);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-background',
      station: 's',
      config: { dir, delayMs: 200 },
      batch: { maxLatencyMs: 20 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    // No further batch comes: the timer the plugin left behind still fires.
    const later = await waitFor(async () => (await readFile(join(dir, 'later.log'), 'utf8').catch(() => '')).trim(), {
      what: 'the background write',
      timeoutMs: 3000,
    });
    expect(later).toBe('10');
  });
  it('a partition that is caught up with a nearly full batch does not slow the fetch of the others', async () => {
    await h.store.createStation('s', { partitions: 2 });
    // One key per partition (a key routes by a stable hash).
    const keyOf = new Map<number, string>();
    for (let k = 0; keyOf.size < 2; k++) {
      const key = `k${k}`;
      const [r] = await h.store.produce('s', [{ value: Buffer.from('probe'), key }]);
      if (r!.status === 'stored' && !keyOf.has(r!.partition)) keyOf.set(r!.partition, key);
    }
    const fill = async (partition: number, n: number) => {
      const key = keyOf.get(partition)!;
      for (let i = 0; i < n; i += 1000)
        await h.store.produce(
          's',
          Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({ value: Buffer.from(`${key}-${i + j}`), key })),
        );
    };
    const count = async (partition: number) => (await h.store.getStation('s')).partitions.find((p) => p.partition === partition)!.messages;
    // Partition 0: one message short of a batch, then nothing more (it is flushed after maxLatencyMs).
    // Partition 1: a backlog.
    await fill(0, 1999 - (await count(0)));
    await fill(1, 40_000 - (await count(1)));
    const dir = join(h.dir, 'rec');
    let fetches = 0;
    const off = h.store.onEvent((e) => {
      if (e.type === 'delivered' && e.group === 'connector.c') fetches++;
    });
    await h.runtime.create({
      name: 'c',
      plugin: 'test-ok',
      station: 's',
      config: { dir },
      batch: { maxMessages: 2000, maxLatencyMs: 1000 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0', timeoutMs: 30_000, intervalMs: 20 });
    off();
    expect((await written(dir)).unique).toBe(41_999);
    // Fetches of up to 1000 messages: 40 for partition 1, a few more around partition 0 and the buffer
    // bound. Asking partition 0 — caught up, one short of a batch — again and again for the message it
    // lacks made each fetch carry one message of partition 1: thousands of fetches.
    expect(fetches).toBeLessThan(150);
  });
});
