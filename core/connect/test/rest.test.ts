import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectRoutes } from '../src/index.js';
import { harness, lagOf, produceN, waitFor, written } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
let app: FastifyInstance;

async function mount(): Promise<void> {
  app = Fastify();
  await app.register(connectRoutes, { runtime: h.runtime });
  await app.ready();
}

beforeEach(async () => {
  h = await harness({ env: { TOKEN: 's3cr3t-token' } });
  await mount();
});
afterEach(async () => {
  await app.close();
  await h.cleanup();
});

async function call(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as any) : undefined };
}

describe('/v1/connectors', () => {
  it('refuses invalid declarations with field paths', async () => {
    await h.store.createStation('s');
    let r = await call('POST', '/v1/connectors', { name: 'bad', plugin: 'file', station: 's', config: {} });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('CONFIG_INVALID');
    expect(r.body.issues).toEqual([expect.objectContaining({ path: 'config.dir' })]);
    expect(r.body.message).toContain('config.dir');

    r = await call('POST', '/v1/connectors', {
      name: 'bad',
      plugin: 'file',
      station: 's',
      config: { dir: '/tmp/x', gzip: 'yes' },
      batch: { maxMessages: 0 },
      surprise: 1,
    });
    expect(r.status).toBe(400);
    expect(r.body.issues.map((i: { path: string }) => i.path).sort()).toEqual(['', 'batch.maxMessages'].sort());

    r = await call('POST', '/v1/connectors', { name: 'bad', plugin: 'file', station: 's', config: { dir: '/tmp/x', gzip: 'yes' } });
    expect(r.status).toBe(400);
    expect(r.body.issues).toEqual([expect.objectContaining({ path: 'config.gzip' })]);

    r = await call('POST', '/v1/connectors', { name: 'bad', plugin: 'nope', station: 's', config: {} });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('PLUGIN_NOT_FOUND');
    expect(r.body.issues).toEqual([expect.objectContaining({ path: 'plugin' })]);

    r = await call('GET', '/v1/connectors/none/status');
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('CONNECTOR_NOT_FOUND');
    expect((await call('GET', '/v1/connectors')).body).toEqual({ connectors: [] });
  });

  it('create, get, list with expand, config, tasks, pause / resume, restart, delete', async () => {
    await h.store.createStation('s', { partitions: 2 });
    await produceN(h.store, 's', 100);
    const dir = join(h.dir, 'rec');
    const decl = { name: 'c1', plugin: 'test-ok', station: 's', config: { dir }, batch: { maxLatencyMs: 20 } };
    let r = await call('POST', '/v1/connectors', decl);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      name: 'c1',
      type: 'sink',
      plugin: 'test-ok',
      station: 's',
      tasks: [{ connector: 'c1', task: 0 }],
      target: 'RUNNING',
      origin: 'api',
    });
    expect(r.body.config).toMatchObject({
      ...decl,
      tasks: 1,
      batch: { maxMessages: 1000, maxBytes: 1048576, maxLatencyMs: 20 },
      errors: { tolerance: 'none' },
    });
    expect((await call('POST', '/v1/connectors', decl)).body.code).toBe('CONNECTOR_EXISTS');
    expect((await call('POST', '/v1/connectors', decl)).status).toBe(409);

    await waitFor(async () => (await lagOf(h.store, 's', 'c1')) === 0);
    expect((await call('GET', '/v1/connectors')).body).toEqual({ connectors: ['c1'] });
    r = await call('GET', '/v1/connectors?expand=status&expand=info');
    expect(r.body.connectors[0].name).toBe('c1');
    expect(r.body.connectors[0].status).toMatchObject({
      name: 'c1',
      connector: { state: 'RUNNING' },
      tasks: [{ id: 0, state: 'RUNNING' }],
      type: 'sink',
      lag: 0,
    });
    expect(r.body.connectors[0].info).toMatchObject({ name: 'c1', type: 'sink' });
    expect((await call('GET', '/v1/connectors/c1')).body.name).toBe('c1');
    expect((await call('GET', '/v1/connectors/c1/config')).body).toMatchObject(decl);
    r = await call('GET', '/v1/connectors/c1/tasks');
    expect(r.body).toEqual([{ id: { connector: 'c1', task: 0 }, config: { dir } }]);
    r = await call('GET', '/v1/connectors/c1/status');
    expect(r.body.throughput).toEqual({ msgsPerSec: expect.any(Number), bytesPerSec: expect.any(Number) });
    expect(r.body.tasks[0].worker).toMatch(/^thread-\d+$/);

    expect((await call('PUT', '/v1/connectors/c1/pause')).status).toBe(202);
    expect((await call('GET', '/v1/connectors/c1/status')).body).toMatchObject({
      connector: { state: 'PAUSED' },
      tasks: [{ state: 'PAUSED' }],
    });
    await produceN(h.store, 's', 50, { prefix: 'late' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await lagOf(h.store, 's', 'c1')).toBe(50);
    expect((await call('PUT', '/v1/connectors/c1/resume')).status).toBe(202);
    await waitFor(async () => (await lagOf(h.store, 's', 'c1')) === 0, { what: 'lag 0 after resume' });
    expect((await written(dir)).unique).toBe(150);

    r = await call('POST', '/v1/connectors/c1/restart?includeTasks=true&onlyFailed=false');
    expect(r.status).toBe(202);
    expect(r.body.connector.state).toBe('RUNNING');
    expect((await call('POST', '/v1/connectors/c1/tasks/0/restart')).status).toBe(204);
    expect((await call('POST', '/v1/connectors/c1/tasks/5/restart')).body.code).toBe('TASK_NOT_FOUND');
    expect((await call('GET', '/v1/connectors/c1/tasks/0/status')).body).toMatchObject({ id: 0, state: 'RUNNING' });

    // PUT config updates (and restarts with) the new declaration.
    r = await call('PUT', '/v1/connectors/c1/config', { plugin: 'test-ok', station: 's', config: { dir }, batch: { maxLatencyMs: 30 } });
    expect(r.status).toBe(200);
    expect(r.body.config.batch.maxLatencyMs).toBe(30);
    r = await call('PUT', '/v1/connectors/c2/config', { name: 'other', plugin: 'test-ok', station: 's', config: { dir } });
    expect(r.status).toBe(400);
    expect(r.body.issues[0].path).toBe('name');
    r = await call('PUT', '/v1/connectors/c2/config', {
      plugin: 'test-ok',
      station: 's',
      config: { dir: join(h.dir, 'rec2') },
      state: 'STOPPED',
    });
    expect(r.status).toBe(201);
    expect((await call('GET', '/v1/connectors/c2/status')).body.connector.state).toBe('STOPPED');

    expect((await call('DELETE', '/v1/connectors/c1')).status).toBe(204);
    expect((await call('GET', '/v1/connectors/c1')).status).toBe(404);
    expect((await call('GET', '/v1/connectors')).body).toEqual({ connectors: ['c2'] });
    // The group is kept (Kafka Connect keeps offsets).
    expect((await h.store.getGroup('s', 'connector.c1')).lag).toBe(0);
  });

  it('lists page by page, as GET /v1/stations does: limit, after (the cursor next gives), prefix; bad queries are 400 with their path', async () => {
    await h.store.createStation('s');
    const names = ['a-1', 'a-2', 'a-3', 'b-1', 'b-2'];
    for (const name of names.slice().reverse())
      await call('POST', '/v1/connectors', { name, plugin: 'test-ok', station: 's', config: { dir: join(h.dir, name) }, state: 'STOPPED' });
    let r = await call('GET', '/v1/connectors?limit=2');
    expect(r.body).toEqual({ connectors: ['a-1', 'a-2'], next: 'a-2' });
    r = await call('GET', `/v1/connectors?limit=2&after=${r.body.next}`);
    expect(r.body).toEqual({ connectors: ['a-3', 'b-1'], next: 'b-1' });
    r = await call('GET', `/v1/connectors?limit=2&after=${r.body.next}`);
    // The last page has no next.
    expect(r.body).toEqual({ connectors: ['b-2'] });
    expect((await call('GET', '/v1/connectors?prefix=a-&limit=3')).body).toEqual({ connectors: ['a-1', 'a-2', 'a-3'] });
    expect((await call('GET', '/v1/connectors?prefix=b-&after=b-1')).body).toEqual({ connectors: ['b-2'] });
    r = await call('GET', '/v1/connectors?prefix=a-&limit=1&expand=status');
    expect(r.body).toMatchObject({ connectors: [{ name: 'a-1', status: { name: 'a-1', connector: { state: 'STOPPED' } } }], next: 'a-1' });
    for (const bad of ['limit=0', 'limit=1001', 'limit=x', 'after=', 'expand=everything', 'page=2']) {
      r = await call('GET', `/v1/connectors?${bad}`);
      expect(r.status, bad).toBe(400);
      expect(r.body.code, bad).toBe('BODY_INVALID');
      expect(r.body.issues?.length, bad).toBeGreaterThan(0);
    }
  });

  it('offsets: get, and set / reset only while STOPPED', async () => {
    await h.store.createStation('s', { partitions: 2 });
    await produceN(h.store, 's', 40);
    const dir = join(h.dir, 'rec');
    await call('POST', '/v1/connectors', { name: 'c', plugin: 'test-ok', station: 's', config: { dir }, batch: { maxLatencyMs: 10 } });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0);
    let r = await call('GET', '/v1/connectors/c/offsets');
    expect(r.body).toEqual({
      offsets: [
        { partition: { station: 's', partition: 0 }, offset: { offset: 21 } },
        { partition: { station: 's', partition: 1 }, offset: { offset: 21 } },
      ],
    });
    r = await call('DELETE', '/v1/connectors/c/offsets');
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('CONNECTOR_NOT_STOPPED');
    expect((await call('PATCH', '/v1/connectors/c/offsets', { offsets: [] })).status).toBe(409);

    expect((await call('PUT', '/v1/connectors/c/stop')).status).toBe(202);
    expect((await call('GET', '/v1/connectors/c/status')).body.connector.state).toBe('STOPPED');
    r = await call('PATCH', '/v1/connectors/c/offsets', { offsets: [{ partition: { partition: 1 }, offset: { offset: 16 } }] });
    expect(r.status).toBe(200);
    r = await call('PATCH', '/v1/connectors/c/offsets', { offsets: [{ partition: { partition: 9 }, offset: { offset: 1 } }] });
    expect(r.status).toBe(400);
    expect(r.body.issues[0].path).toBe('offsets[0].partition.partition');
    expect((await call('GET', '/v1/connectors/c/offsets')).body.offsets[1].offset).toEqual({ offset: 16 });
    await call('PUT', '/v1/connectors/c/resume');
    await waitFor(async () => (await written(dir)).lines === 45, { what: '5 rewritten' });

    await call('PUT', '/v1/connectors/c/stop');
    expect((await call('DELETE', '/v1/connectors/c/offsets')).status).toBe(200);
    expect((await call('GET', '/v1/connectors/c/offsets')).body.offsets.map((o: any) => o.offset.offset)).toEqual([1, 1]);
    await call('PUT', '/v1/connectors/c/resume');
    await waitFor(async () => (await written(dir)).lines === 85, { what: 'all rewritten after the reset' });
  });

  it('secrets: resolved for the plugin, shown redacted or as references, never stored resolved', async () => {
    await h.store.createStation('s');
    const secretFile = join(h.dir, 'user.txt');
    await writeFile(secretFile, 'alice\n');
    const dir = join(h.dir, 'rec');
    const config = { dir, user: `\${file:${secretFile}}`, token: '${env:TOKEN}', password: 'hunter2' };
    let r = await call('POST', '/v1/connectors', { name: 'sec', plugin: 'test-secret', station: 's', config });
    expect(r.status).toBe(201);
    expect(r.body.config.config).toEqual({ dir, user: `\${file:${secretFile}}`, token: '${env:TOKEN}', password: '***' });
    await h.store.produce('s', [{ value: Buffer.from('x') }]);
    const opened = await waitFor(async () => JSON.parse(await readFile(join(dir, 'opened.json'), 'utf8')) as Record<string, string>, {
      what: 'the sink to open',
    });
    expect(opened).toEqual({ dir, user: 'alice', token: 's3cr3t-token', password: 'hunter2' });
    r = await call('GET', '/v1/connectors/sec/config');
    expect(r.body.config.password).toBe('***');
    expect(JSON.stringify((await call('GET', '/v1/connectors?expand=info')).body)).not.toContain('hunter2');
    const stored = await readFile(join(h.dir, 'connect', 'connectors.json'), 'utf8');
    expect(stored).toContain('${env:TOKEN}');
    expect(stored).not.toContain('s3cr3t-token');
    expect(stored).not.toContain('alice');

    // An unresolvable reference fails the connector with the field path (validation keeps the text).
    r = await call('POST', '/v1/connectors', {
      name: 'sec2',
      plugin: 'test-secret',
      station: 's',
      config: { dir, user: 'u', token: '${env:MISSING}' },
    });
    expect(r.status).toBe(201);
    const s = await waitFor(async () => {
      const x = (await call('GET', '/v1/connectors/sec2/status')).body;
      return x.connector.state === 'FAILED' ? x : undefined;
    });
    expect(s.connector.trace).toContain('config.token: environment variable MISSING is not set');
    expect(s.lastError.code).toBe('SECRET_UNRESOLVED');
  });

  it('connectors created over the API survive a restart of the runtime, with their target state', async () => {
    await h.store.createStation('s');
    const dir = join(h.dir, 'rec');
    await call('POST', '/v1/connectors', { name: 'a', plugin: 'test-ok', station: 's', config: { dir }, batch: { maxLatencyMs: 10 } });
    await call('POST', '/v1/connectors', { name: 'b', plugin: 'test-ok', station: 's', config: { dir: join(h.dir, 'rec-b') } });
    await call('PUT', '/v1/connectors/b/pause');
    await app.close();
    await h.reopen();
    await mount();
    expect((await call('GET', '/v1/connectors')).body).toEqual({ connectors: ['a', 'b'] });
    await waitFor(async () => (await call('GET', '/v1/connectors/a/status')).body.connector.state === 'RUNNING');
    expect((await call('GET', '/v1/connectors/b/status')).body.connector.state).toBe('PAUSED');
    await h.store.produce('s', [{ value: Buffer.from('after restart') }]);
    await waitFor(async () => (await written(dir)).unique === 1);
  });
});
