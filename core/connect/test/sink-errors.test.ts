import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DLS_HEADERS } from '@junction/protocol';
import { CONNECTOR_DLS_HEADERS } from '../src/index.js';
import { batches, harness, lagOf, produceN, waitFor, written } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await harness();
});
afterEach(async () => {
  await h.cleanup();
});

async function dls(station: string) {
  const info = await h.store.getStation(`${station}.dls`);
  const out = [];
  for (const p of info.partitions) out.push(...(await h.store.read(`${station}.dls`, { partition: p.partition, limit: 1000 })));
  return out;
}

describe('sink results and errors', () => {
  it('retries with backoff until the sink answers ok, then acks', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 10);
    const dir = join(h.dir, 'rec');
    const t0 = Date.now();
    await h.runtime.create({
      name: 'c',
      plugin: 'test-retry',
      station: 's',
      config: { dir, times: 3 },
      batch: { maxLatencyMs: 10 },
      errors: { retryMaxDelayMs: 200 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const b = await batches(dir);
    expect(b).toHaveLength(4); // three retry answers, then ok
    for (const x of b) expect(x).toEqual({ partition: 0, first: 1, last: 10, count: 10 });
    expect((await written(dir)).lines).toBe(10);
    expect(Date.now() - t0).toBeLessThan(5000);
    const metrics = await h.prom.getSingleMetricAsString('junction_connector_retries_total');
    expect(metrics).toMatch(/junction_connector_retries_total\{connector="c",task="0"\} 30/);
  });

  it('a sink whose destination is down shows it: lastError, retrying since / attempts, the retrying metric; all clear once it writes', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 10);
    const dir = join(h.dir, 'rec');
    const t0 = Date.now();
    await h.runtime.create({
      name: 'c',
      plugin: 'test-retry',
      station: 's',
      config: { dir, times: 6 },
      batch: { maxLatencyMs: 10 },
      errors: { retryMaxDelayMs: 300 },
    });
    const down = await waitFor(
      async () => {
        const s = await h.runtime.status('c');
        return (s.tasks[0]!.retrying?.attempts ?? 0) >= 2 ? s : undefined;
      },
      { what: 'two failed attempts' },
    );
    const task = down.tasks[0]!;
    expect(task.state).toBe('RUNNING');
    expect(task.lastError).toMatchObject({ code: 'RETRY', message: 'the test sink says later' });
    expect(task.retrying!.since).toBeGreaterThanOrEqual(t0);
    expect(task.retrying!.since).toBeLessThanOrEqual(task.lastError!.at);
    expect(task.retrying!.nextAttemptAt).toBeGreaterThanOrEqual(task.lastError!.at);
    expect(down.retrying).toMatchObject({ since: task.retrying!.since, attempts: task.retrying!.attempts });
    expect(down.lastError?.code).toBe('RETRY');
    const gauge = await h.prom.getSingleMetricAsString('junction_connector_task_retrying');
    const secs = Number(/junction_connector_task_retrying\{connector="c",task="0"\} ([0-9.e-]+)/.exec(gauge)?.[1]);
    expect(secs).toBeGreaterThan(0);
    expect(secs).toBeLessThanOrEqual((Date.now() - t0) / 1000);

    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const after = await h.runtime.status('c');
    expect(after.tasks[0]!.retrying).toBeUndefined();
    expect(after.retrying).toBeUndefined();
    // The last error stays, with when it happened.
    expect(after.tasks[0]!.lastError?.code).toBe('RETRY');
    expect(await h.prom.getSingleMetricAsString('junction_connector_task_retrying')).toMatch(
      /junction_connector_task_retrying\{connector="c",task="0"\} 0$/m,
    );
    expect((await written(dir)).lines).toBe(10);
  });

  it('pausing while a batch waits to be retried hands its messages back; after resume they are written once', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 10);
    const dir = join(h.dir, 'rec');
    // Odd offsets answer retry for the first 3 writes: a retry batch of only those waits when we pause
    // (each retry answer asks for 1.5 s at least: the batch cannot be retried twice before the pause).
    await h.runtime.create({
      name: 'c',
      plugin: 'test-retry',
      station: 's',
      config: { dir, times: 3, odd: true, delayMs: 1500 },
      batch: { maxLatencyMs: 10 },
      errors: { retryMaxDelayMs: 2000 },
    });
    await waitFor(async () => (await batches(dir)).length >= 2, { what: 'a retried batch' });
    await h.runtime.pause('c');
    const g = await h.store.getGroup('s', 'connector.c');
    expect(g.pending).toBe(0); // nothing left out with a worker or in the runtime
    expect(g.lag).toBe(5); // the odd offsets, not yet written
    await h.runtime.resume('c');
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const w = await written(dir);
    expect(w.unique).toBe(10);
    expect(w.lines).toBe(10);
  });

  it('dead-letters what the sink answers deadLetter, with the connector and the error in headers', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await h.store.produce('s', [{ value: Buffer.from('good-1') }, { value: Buffer.from('poison') }, { value: Buffer.from('good-2') }]);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({ name: 'c', plugin: 'test-dead', station: 's', config: { dir }, batch: { maxLatencyMs: 10 } });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const dead = await waitFor(async () => ((await dls('s')).length === 1 ? dls('s') : undefined), { what: 'the dead letter' });
    expect(Buffer.from(dead[0]!.value).toString()).toBe('poison');
    expect(dead[0]!.headers).toMatchObject({
      [DLS_HEADERS.code]: 'SINK_REJECTED',
      [DLS_HEADERS.reason]: 'poison is not accepted',
      [DLS_HEADERS.connector]: 'c',
      [DLS_HEADERS.group]: 'connector.c',
      [CONNECTOR_DLS_HEADERS.errorCode]: 'SINK_REJECTED',
      [CONNECTOR_DLS_HEADERS.attempts]: '1',
    });
    expect((await written(dir)).offsets.get(0)).toEqual([1, 3]);
  });

  it('tolerance none: retries run out → the task and the connector are FAILED with the trace; messages stay unacked', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 5);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-retry',
      station: 's',
      config: { dir, times: -1 },
      batch: { maxLatencyMs: 10 },
      errors: { tolerance: 'none', retryTimeoutMs: 300, retryMaxDelayMs: 50 },
    });
    const status = await waitFor(
      async () => {
        const s = await h.runtime.status('c');
        return s.connector.state === 'FAILED' ? s : undefined;
      },
      { what: 'FAILED' },
    );
    expect(status.connector.trace).toMatch(/RETRIES_EXHAUSTED/);
    expect(status.tasks[0]!.state).toBe('FAILED');
    expect(status.tasks[0]!.trace).toMatch(/RETRIES_EXHAUSTED[\s\S]*the test sink says later[\s\S]*at /);
    expect(status.tasks[0]!.restartAt).toBeUndefined();
    expect(status.lastError?.code).toBe('RETRIES_EXHAUSTED');
    expect(await lagOf(h.store, 's', 'c')).toBe(5);
    const g = await h.store.getGroup('s', 'connector.c');
    // Nacked back to the group (not pending on the runtime's ack deadline).
    expect(g.pending).toBe(0);
    const m = await h.prom.getSingleMetricAsString('junction_connector_task_state');
    expect(m).toMatch(/junction_connector_task_state\{connector="c",task="0",state="FAILED"\} 1/);
    // A manual restart brings it back (and it fails again, since the sink still answers retry).
    await h.runtime.restart('c', { includeTasks: true });
    expect((await h.runtime.status('c')).connector.state).toBe('RUNNING');
  });

  it('a sink answering fewer results than messages fails its task with PLUGIN_INVALID; nothing is acked', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 5);
    await h.runtime.create({
      name: 'c',
      plugin: 'test-short',
      station: 's',
      config: {},
      batch: { maxLatencyMs: 10 },
      errors: { tolerance: 'none', retryTimeoutMs: 0 },
    });
    const status = await waitFor(
      async () => {
        const s = await h.runtime.status('c');
        return s.tasks[0]?.state === 'FAILED' ? s : undefined;
      },
      { what: 'a FAILED task' },
    );
    expect(status.tasks[0]!.lastError?.message).toMatch(/answered 4 results for 5 messages/);
    expect(await lagOf(h.store, 's', 'c')).toBe(5);
  });

  it('tolerance all: retries run out → dead letters with the last error', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await produceN(h.store, 's', 4);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-retry',
      station: 's',
      config: { dir, times: -1 },
      batch: { maxLatencyMs: 10 },
      errors: { tolerance: 'all', retryTimeoutMs: 300, retryMaxDelayMs: 50 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const dead = await waitFor(async () => ((await dls('s')).length === 4 ? dls('s') : undefined), { what: 'four dead letters' });
    expect(dead.map((d) => Buffer.from(d.value).toString())).toEqual(['m-1', 'm-2', 'm-3', 'm-4']);
    const hdr = dead[0]!.headers;
    expect(hdr[DLS_HEADERS.code]).toBe('RETRIES_EXHAUSTED');
    expect(hdr[DLS_HEADERS.connector]).toBe('c');
    expect(hdr[CONNECTOR_DLS_HEADERS.errorMessage]).toBe('the test sink says later');
    expect(Number(hdr[CONNECTOR_DLS_HEADERS.attempts])).toBeGreaterThan(1);
    expect((await h.runtime.status('c')).connector.state).toBe('RUNNING');
  });

  it('a connector whose station is missing is FAILED with the reason and starts once the station exists', async () => {
    const dir = join(h.dir, 'rec');
    await h.runtime.create({ name: 'c', plugin: 'test-ok', station: 'later', config: { dir }, batch: { maxLatencyMs: 10 } });
    const s = await h.runtime.status('c');
    expect(s.connector.state).toBe('FAILED');
    expect(s.connector.trace).toContain('STATION_NOT_FOUND');
    expect(s.tasks).toEqual([{ id: 0, state: 'UNASSIGNED', restarts: 0, freshness: null }]);
    await h.store.createStation('later');
    await h.store.produce('later', [{ value: Buffer.from('x') }]);
    await waitFor(async () => (await written(dir)).unique === 1, { what: 'the start after the backoff', timeoutMs: 10_000 });
    expect((await h.runtime.status('c')).connector.state).toBe('RUNNING');
  });
});
