import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
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

/**
 * Runs a misbehaving plugin over N messages in 2 partitions and checks: the task fails with `code`,
 * restarts by itself, every message lands (each offset at least once), the lag drains, and the
 * store kept answering meanwhile (its event loop never stalled).
 */
async function isolationCase(
  plugin: string,
  code: string,
  extra: Record<string, unknown> = {},
  decl: Record<string, unknown> = {},
): Promise<void> {
  await h.store.createStation('s', { partitions: 2 });
  await produceN(h.store, 's', 400);
  const dir = join(h.dir, 'rec');
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let pings = 0;
  let slowest = 0;
  let pinging = true;
  const pinger = (async () => {
    while (pinging) {
      const t = performance.now();
      await h.store.getStation('s');
      slowest = Math.max(slowest, performance.now() - t);
      pings++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await h.runtime.create({
    name: 'c',
    plugin,
    station: 's',
    config: { dir, times: 1, ...extra },
    batch: { maxMessages: 50, maxLatencyMs: 20 },
    ...decl,
  });
  const failed = await waitFor(
    async () => {
      const s = await h.runtime.status('c');
      return s.tasks[0]!.state === 'FAILED' ? s : undefined;
    },
    { what: 'the task to fail', intervalMs: 10 },
  );
  expect(failed.tasks[0]!.trace).toContain(code);
  expect(failed.tasks[0]!.restartAt).toBeGreaterThan(Date.now() - 100);
  expect(failed.lastError?.code).toBe(code);
  await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0', timeoutMs: 30_000 });
  const w = await written(dir);
  expect(w.unique).toBe(400);
  const status = await h.runtime.status('c');
  expect(status.tasks[0]!.state).toBe('RUNNING');
  expect(status.tasks[0]!.restarts).toBeGreaterThanOrEqual(1);
  expect(status.connector.state).toBe('RUNNING');
  pinging = false;
  await pinger;
  loop.disable();
  expect(pings).toBeGreaterThan(10);
  expect(slowest).toBeLessThan(500);
  expect(loop.max / 1e6).toBeLessThan(500);
  const m = await h.prom.getSingleMetricAsString('junction_connector_task_restarts_total');
  expect(m).toMatch(/junction_connector_task_restarts_total\{connector="c",task="0"\} [1-9]/);
}

describe('isolation: a misbehaving plugin fails only its task, which restarts; nothing is lost', () => {
  it('throws a non-retryable error', async () => {
    await isolationCase('test-throw', 'SINK_BROKEN');
  });

  it('hangs past writeTimeoutMs (the worker is terminated)', async () => {
    await isolationCase('test-hang', 'WRITE_TIMEOUT', {}, { writeTimeoutMs: 300 });
  });

  it('exits its worker (process.exit)', async () => {
    await isolationCase('test-exit', 'WORKER_CRASHED');
  });

  it('exhausts its heap', async () => {
    await isolationCase('test-leak', 'WORKER_OUT_OF_MEMORY', {}, { maxHeapMb: 32 });
  });

  it('a retryable error is retried without failing the task', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 10);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-throw',
      station: 's',
      config: { dir, times: 2, retryable: true },
      batch: { maxLatencyMs: 10 },
      errors: { retryMaxDelayMs: 50 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const s = await h.runtime.status('c');
    expect(s.tasks[0]!.restarts).toBe(0);
    expect(s.tasks[0]!.state).toBe('RUNNING');
  });
});
