import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startServer, buildApp } from '../src/index.js';
import type { RunningServer } from '../src/index.js';
import { EmbeddedStore } from '@junction/broker';

const logger = pino({ level: 'silent' });
let dir: string;
let server: RunningServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-server-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('startServer', () => {
  it('serves health, metrics, produce and browse on a real socket, then closes', async () => {
    server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, logger, env: {} });
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);

    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect(health.headers.get('x-request-id')).toBeTruthy();

    const created = await fetch(`${server.url}/v1/stations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'orders', partitions: 1 }),
    });
    expect(created.status).toBe(201);

    const produced = await fetch(`${server.url}/v1/stations/orders/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ value: 'one' }, { value: 'two', key: 'k', headers: { h: 'v' } }] }),
    });
    expect(produced.status).toBe(200);
    expect(await produced.json()).toEqual({
      results: [
        { partition: 0, offset: 1 },
        { partition: 0, offset: 2 },
      ],
    });

    const browsed = await fetch(`${server.url}/v1/stations/orders/messages?partition=0`);
    expect(browsed.status).toBe(200);
    const { messages } = (await browsed.json()) as { messages: { offset: number; value: string; key?: string; headers: object }[] };
    expect(messages.map((m) => [m.offset, m.value])).toEqual([
      [1, 'one'],
      [2, 'two'],
    ]);
    expect(messages[1]).toMatchObject({ key: 'k', headers: { h: 'v' } });

    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await metrics.text();
    expect(text).toMatch(/process_cpu_user_seconds_total/);
    expect(text).toMatch(/junction_/);

    const missing = await fetch(`${server.url}/v1/nothing-here`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'ROUTE_NOT_FOUND' });

    const url = server.url;
    await server.close();
    await server.close(); // idempotent
    server = undefined;
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it('applies the stations of the configuration file and survives a restart', async () => {
    const configPath = join(dir, 'junction.yaml');
    await writeFile(configPath, 'server:\n  dataDir: data\nstations:\n  - name: events\n    partitions: 3\n');
    server = await startServer({ configPath, port: 0, logger, env: {} });
    expect(server.config.server.dataDir).toBe(join(dir, 'data'));
    expect(server.stations.created).toEqual(['events']);
    expect((await server.store.getStation('events')).config.partitions).toBe(3);
    await server.close();

    await writeFile(configPath, 'server:\n  dataDir: data\nstations:\n  - name: events\n    partitions: 4\n');
    server = await startServer({ configPath, port: 0, logger, env: {} });
    expect(server.stations.errors.map((e) => e.code)).toEqual(['CONFIG_IMMUTABLE']);
    expect((await server.store.getStation('events')).config.partitions).toBe(3);
  });

  it('rejects a bad configuration with CONFIG_INVALID and leaves nothing open', async () => {
    const configPath = join(dir, 'junction.yaml');
    await writeFile(configPath, 'stations:\n  - name: a\n    partitions: 0\n');
    await expect(startServer({ configPath, dataDir: dir, port: 0, logger, env: {} })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [expect.objectContaining({ path: 'stations[0].partitions' })],
    });
  });

  it("fails at once on a data dir that cannot be created, such as one under /proc (Node 20's recursive mkdir spun there forever)", async () => {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise((resolve) => (timer = setTimeout(() => resolve('startServer did not settle within 5 s'), 5000)));
    const outcome = await Promise.race([
      startServer({ dataDir: '/proc/junction-nope/data', port: 0, logger, env: {} }).then(
        () => 'started',
        (e: unknown) => e,
      ),
      hung,
    ]);
    clearTimeout(timer);
    expect(outcome).toMatchObject({ code: 'ENOENT' });
    expect(Date.now() - started).toBeLessThan(4000); // a spin is caught at 5 s by the race above
  });

  it('reports a port in use as LISTEN_FAILED', async () => {
    server = await startServer({ dataDir: join(dir, 'a'), port: 0, logger, env: {} });
    await expect(startServer({ dataDir: join(dir, 'b'), port: server.port, logger, env: {} })).rejects.toMatchObject({
      code: 'LISTEN_FAILED',
    });
  });
});

describe('buildApp', () => {
  it('answers 503 on /healthz once the store is closed', async () => {
    const store = new EmbeddedStore({ dataDir: dir, logger });
    await store.open();
    const app = buildApp({ store, logger });
    try {
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      await store.close();
      const res = await app.inject({ method: 'GET', url: '/healthz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'unavailable' });
    } finally {
      await app.close();
      await store.close();
    }
  });

  it('keeps a request id given by the caller', async () => {
    const store = new EmbeddedStore({ dataDir: dir, logger });
    await store.open();
    const app = buildApp({ store, logger });
    try {
      const res = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } });
      expect(res.headers['x-request-id']).toBe('abc-123');
    } finally {
      await app.close();
      await store.close();
    }
  });
});
