/**
 * Lookahead (each sink task writes on a thread of its own): the partition's next batch goes to the worker
 * while the current one is written, and waits there. The plugin still sees one write at a time, a
 * partition's batches in offset order, and a batch after a retried one only once the retry is written.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { harness, lagOf, produceN, waitFor, written } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await harness();
});
afterEach(async () => {
  await h.cleanup();
});

interface Call {
  n: number;
  partition: number;
  first: number;
  last: number;
  count: number;
  enter: number;
  exit: number;
  overlapped: boolean;
  status: 'ok' | 'retry';
}

async function calls(dir: string): Promise<Call[]> {
  const text = await readFile(join(dir, 'calls.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Call)
    .sort((a, b) => a.enter - b.enter);
}

/** Writes of one partition, in the order they ran: each starts where the confirmed ones end. */
function expectInOrder(list: Call[], partition: number): void {
  let done = 0; // offsets 1..done are written
  for (const c of list.filter((x) => x.partition === partition)) {
    expect(c.first, `write #${c.n} of partition ${partition} starts at ${c.first}, after ${done}`).toBe(done + 1);
    expect(c.last - c.first + 1).toBe(c.count);
    if (c.status === 'ok') done = c.last;
  }
}

/** junction_connector_batches_ahead_total of the connector, summed over its tasks. */
async function ahead(name: string): Promise<number> {
  const m = await h.prom.getSingleMetric('junction_connector_batches_ahead_total')!.get();
  return m.values.filter((v) => v.labels['connector'] === name).reduce((a, v) => a + v.value, 0);
}

/** Produces `n` messages and samples the runner's in-worker count until the lag is 0. */
async function runAndSample(name: string, station: string, n: number): Promise<number> {
  let most = 0;
  await waitFor(
    async () => {
      most = Math.max(most, h.runtime.buffered(name)?.writing ?? 0);
      return (await lagOf(h.store, station, name)) === 0;
    },
    { what: 'lag 0', intervalMs: 2, timeoutMs: 30_000 },
  );
  expect((await written(join(h.dir, 'rec'))).unique).toBe(n);
  return most;
}

describe('lookahead: the next batch waits in the worker', () => {
  it('one partition: two batches in the worker at once, yet one write at a time, in offset order, each message once', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 2000);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-order',
      station: 's',
      config: { dir, delayMs: 30 },
      batch: { maxMessages: 200, maxLatencyMs: 10 },
    });
    const most = await runAndSample('c', 's', 2000);
    // With one partition and no lookahead, never more than one batch is in a worker.
    expect(most).toBe(2);
    // And they did wait in the worker (not in a queue before it): nearly every batch after the first.
    expect(await ahead('c')).toBeGreaterThanOrEqual(5);
    const list = await calls(dir);
    expect(list.every((c) => !c.overlapped)).toBe(true);
    for (let i = 1; i < list.length; i++) expect(list[i]!.enter).toBeGreaterThanOrEqual(list[i - 1]!.exit - 1);
    expectInOrder(list, 0);
    expect((await written(dir)).lines).toBe(2000);
  });

  it('a write answered retry: the batch waiting behind it is not written until the retried messages are', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 1000);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-order',
      station: 's',
      config: { dir, delayMs: 30, retryCalls: [1, 2, 4] },
      batch: { maxMessages: 100, maxLatencyMs: 10 },
      errors: { retryMaxDelayMs: 50 },
    });
    const most = await runAndSample('c', 's', 1000);
    expect(most).toBe(2);
    const list = await calls(dir);
    expect(list.filter((c) => c.status === 'retry').map((c) => c.n)).toEqual([1, 2, 4]);
    expectInOrder(list, 0);
    // Write #1 (101..200) was answered retry twice: 101..200 ran three times in a row, before 201.
    expect(list.slice(1, 4).map((c) => c.first)).toEqual([101, 101, 101]);
    expect((await written(dir)).lines).toBe(1000);
  });

  it('several partitions: still one write at a time, each partition in order', async () => {
    await h.store.createStation('s', { partitions: 3 });
    await produceN(h.store, 's', 1500);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-order',
      station: 's',
      config: { dir, delayMs: 15, retryCalls: [3] },
      batch: { maxMessages: 100, maxLatencyMs: 10 },
      errors: { retryMaxDelayMs: 50 },
    });
    await runAndSample('c', 's', 1500);
    const list = await calls(dir);
    expect(list.every((c) => !c.overlapped)).toBe(true);
    for (const p of [0, 1, 2]) expectInOrder(list, p);
  });

  it('a write that hangs while the next waits behind it: the task fails and restarts, nothing is lost or skipped', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 1000);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-order',
      station: 's',
      writeTimeoutMs: 300,
      config: { dir, delayMs: 20, hangCalls: [2] },
      batch: { maxMessages: 100, maxLatencyMs: 10 },
    });
    const failed = await waitFor(
      async () => {
        const s = await h.runtime.status('c');
        return s.tasks[0]!.state === 'FAILED' ? s : undefined;
      },
      { what: 'the task to fail', intervalMs: 10 },
    );
    expect(failed.tasks[0]!.lastError?.code).toBe('WRITE_TIMEOUT');
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0', timeoutMs: 30_000 });
    const w = await written(dir);
    expect(w.unique).toBe(1000);
    expect(w.lines).toBe(1000); // the hung write never recorded anything; nothing was written twice
    expectInOrder(await calls(dir), 0);
    const s = await h.runtime.status('c');
    expect(s.tasks[0]!.state).toBe('RUNNING');
    expect(s.tasks[0]!.restarts).toBeGreaterThanOrEqual(1);
  });

  it('a sink that cannot open yet (destination down): the batches waiting behind come back skipped, none is lost', async () => {
    // The next batch's open fails too (the failed open is not kept); that answer must not be taken
    // for the partition's: it had a retry pending, which was lost once and left its messages held.
    await h.store.createStation('s', { partitions: 2 });
    await produceN(h.store, 's', 2000);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-open-flaky',
      station: 's',
      config: { dir, times: 6, delayMs: 15 },
      batch: { maxMessages: 100, maxLatencyMs: 10 },
      errors: { retryMaxDelayMs: 50 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0', timeoutMs: 30_000 });
    const w = await written(dir);
    expect(w.unique).toBe(2000);
    expect(w.lines).toBe(2000);
    expect((await h.runtime.status('c')).tasks[0]!.state).toBe('RUNNING');
  });

  it('two tasks: each task has a thread of its own and looks ahead on it; a partition never has two writes at once', async () => {
    await h.store.createStation('s', { partitions: 2 });
    await produceN(h.store, 's', 2000);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-order',
      station: 's',
      tasks: 2,
      config: { dir, delayMs: 20, retryCalls: [4] },
      batch: { maxMessages: 100, maxLatencyMs: 10 },
      errors: { retryMaxDelayMs: 50 },
    });
    const most = await runAndSample('c', 's', 2000);
    expect(most).toBeGreaterThanOrEqual(3); // both tasks writing, at least one with a batch waiting
    expect(most).toBeLessThanOrEqual(4);
    expect(await ahead('c')).toBeGreaterThanOrEqual(5);
    const list = await calls(dir);
    for (const p of [0, 1]) {
      expectInOrder(list, p);
      const mine = list.filter((c) => c.partition === p);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.enter).toBeGreaterThanOrEqual(mine[i - 1]!.exit - 1);
    }
    // The tasks' threads write at the same time (the plugin's counter is per thread: no overlap seen).
    expect(list.every((c) => !c.overlapped)).toBe(true);
    expect(new Set(list.map((c) => c.partition)).size).toBe(2);
  });
});
