/**
 * On both engines (the connector runtime is the same; the stores differ): a sink created STOPPED runs no
 * task and consumes nothing; resumed, it writes every message; stopped and moved to a time with
 * `PATCH …/offsets { to }`, it re-delivers exactly the messages at or after that time. The pipeline
 * routes plan without changing anything and apply through the same runtime. With auth on: planning needs
 * `read` on cluster `pipeline`, applying `manage`, and connector host paths stay confined.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { readFileSink } from '@junction/connector-file/read';
import { startNatsCluster, type NatsCluster } from '@junction/e2e';
import { startServer } from '../src/index.js';
import type { RunningServer } from '../src/index.js';

const logger = pino({ level: 'silent' });

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Produced = Map<string, Buffer>;

describe.each(['embedded', 'cluster'] as const)('connectors created stopped and offsets moved to a time, %s engine', (engine) => {
  let dir: string;
  let server: RunningServer;
  let nats: NatsCluster | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `junction-pipeline-${engine}-`));
    let configPath: string | undefined;
    if (engine === 'cluster') {
      nats = await startNatsCluster({ nodes: 1 });
      configPath = join(dir, 'junction.yaml');
      await writeFile(configPath, JSON.stringify({ cluster: { nats: { servers: nats.servers, replicas: 1 } } }));
    }
    server = await startServer({
      configPath,
      dataDir: join(dir, 'data'),
      host: '127.0.0.1',
      port: 0,
      logger,
      env: { XDG_CONFIG_HOME: join(dir, 'xdg') },
      watchConfig: false,
    });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const call = async <T = any>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await server.app.inject({
      method: method as 'GET',
      url,
      ...(body !== undefined && { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    return { status: res.statusCode, body: (res.body ? JSON.parse(res.body) : undefined) as T };
  };
  const produce = async (tag: string, n: number): Promise<Produced> => {
    const values = Array.from({ length: n }, (_, i) => Buffer.from(`{"tag":"${tag}","n":${i}}`));
    const res = await call<{ results: { partition: number; offset: number }[] }>('POST', '/v1/stations/feed/messages', {
      messages: values.map((v, i) => ({ value: v.toString(), key: `k${i % 7}` })),
    });
    expect(res.status).toBe(200);
    return new Map(res.body.results.map((r, i) => [`${r.partition}:${r.offset}`, values[i]!]));
  };
  const exactly = async (out: string, want: Produced): Promise<void> => {
    const recs = await readFileSink(out);
    expect(recs.map((r) => `${r.partition}:${r.offset}`).sort()).toEqual([...want.keys()].sort());
    for (const r of recs) expect(Buffer.compare(r.value, want.get(`${r.partition}:${r.offset}`)!)).toBe(0);
  };
  const lag0 = (name: string) =>
    waitFor(`${name} caught up`, async () => ((await call('GET', `/v1/connectors/${name}/status`)).body.lag === 0 ? true : undefined));

  it(
    'created STOPPED → nothing consumed; resumed → all; moved to a time → exactly the messages at or after it',
    { timeout: 300_000 },
    async () => {
      expect((await call('POST', '/v1/stations', { name: 'feed', partitions: 2 })).status).toBe(201);
      const a = await produce('A', 30);
      const out = join(dir, 'out');
      const ref = join(dir, 'ref');
      const batch = { maxMessages: 10, maxLatencyMs: 20 };
      expect(
        (
          await call('POST', '/v1/connectors', {
            name: 'rec',
            plugin: 'file',
            station: 'feed',
            config: { dir: out },
            batch,
            state: 'STOPPED',
          })
        ).status,
      ).toBe(201);
      expect(
        (await call('POST', '/v1/connectors', { name: 'ref', plugin: 'file', station: 'feed', config: { dir: ref }, batch })).status,
      ).toBe(201);
      await waitFor('the running connector has every message', async () => ((await readFileSink(ref)).length >= a.size ? true : undefined));
      await exactly(ref, a);
      const st = (await call('GET', '/v1/connectors/rec/status')).body;
      expect(st.connector.state).toBe('STOPPED');
      expect(st.tasks.every((t: { state: string }) => t.state === 'STOPPED')).toBe(true);
      expect(await readFileSink(out)).toEqual([]);
      expect((await call('GET', '/v1/connectors/rec/offsets')).body).toEqual({ offsets: [] });

      expect((await call('PUT', '/v1/connectors/rec/resume')).status).toBe(202);
      await waitFor('rec has every message', async () => ((await readFileSink(out)).length >= a.size ? true : undefined));
      await lag0('rec');
      await exactly(out, a);

      const t = Math.max(...(await readFileSink(out)).map((r) => r.timestamp)) + 1;
      await waitFor('the clock past t', async () => (Date.now() > t ? true : undefined));
      const b = await produce('B', 20);
      await waitFor('rec has A and B', async () => ((await readFileSink(out)).length >= a.size + b.size ? true : undefined));
      await lag0('rec');

      expect((await call('PATCH', '/v1/connectors/rec/offsets', { to: { type: 'timestamp', timestamp: t } })).body.code).toBe(
        'CONNECTOR_NOT_STOPPED',
      );
      expect((await call('PUT', '/v1/connectors/rec/stop')).status).toBe(202);
      await rm(out, { recursive: true, force: true });
      const moved = await call('PATCH', '/v1/connectors/rec/offsets', { to: { type: 'timestamp', timestamp: t } });
      expect(moved.status).toBe(200);
      const firstOf = (p: number) => Math.min(...[...b.keys()].filter((k) => k.startsWith(`${p}:`)).map((k) => Number(k.split(':')[1])));
      expect(moved.body.offsets).toEqual(
        [0, 1].map((p) => ({ partition: { station: 'feed', partition: p }, offset: { offset: firstOf(p) } })),
      );
      expect((await call('PUT', '/v1/connectors/rec/resume')).status).toBe(202);
      await waitFor('rec re-delivered B', async () => ((await readFileSink(out)).length >= b.size ? true : undefined));
      await lag0('rec');
      await exactly(out, b);

      const bad = await call('PATCH', '/v1/connectors/ref/offsets', { to: { type: 'sometime' } });
      expect(bad.status).toBe(409); // running: refused before the body is read
      expect((await call('PUT', '/v1/connectors/ref/stop')).status).toBe(202);
      const invalid = await call('PATCH', '/v1/connectors/ref/offsets', { to: { type: 'timestamp' } });
      expect(invalid.status).toBe(400);
      expect(invalid.body).toMatchObject({ code: 'CONFIG_INVALID', issues: [{ path: 'to.timestamp' }] });
    },
  );

  it(
    'the pipeline routes: plan changes nothing, apply creates through the runtime (created stopped from the body)',
    { timeout: 120_000 },
    async () => {
      const body = {
        stations: [{ name: 'piped', partitions: 1 }],
        connectors: [{ name: 'piped-files', plugin: 'file', station: 'piped', config: { dir: join(dir, 'piped') }, state: 'STOPPED' }],
      };
      const plan = await call('POST', '/v1/pipeline/plan', body);
      expect(plan.status).toBe(200);
      expect(plan.body.stations).toMatchObject([{ name: 'piped', action: 'create' }]);
      expect(plan.body.connectors).toMatchObject([{ name: 'piped-files', action: 'create', plugin: 'file', station: 'piped' }]);
      expect((await call('GET', '/v1/stations/piped')).status).toBe(404);
      const applied = await call('POST', '/v1/pipeline/apply', body);
      expect(applied.status).toBe(200);
      expect((await call('GET', '/v1/stations/piped')).status).toBe(200);
      expect((await call('GET', '/v1/connectors/piped-files/status')).body.connector.state).toBe('STOPPED');
      const again = await call('POST', '/v1/pipeline/plan', { ...body, prune: true });
      expect(again.body.connectors.map((e: { name: string; action: string }) => `${e.name}:${e.action}`)).toEqual([
        'piped-files:unchanged',
        'rec:delete',
        'ref:delete',
      ]);
      // `feed` is used by no declared connector and is not Junction's own: pruned; its DLS and `__…` never.
      expect(again.body.stations.map((e: { name: string; action: string }) => `${e.name}:${e.action}`)).toEqual([
        'piped:unchanged',
        'feed:delete',
      ]);
      const invalid = await call('POST', '/v1/pipeline/plan', {
        stations: [{ name: 'x', partitions: 0 }],
        connectors: [{ name: 'y', plugin: 'nope', station: 'x' }],
        extra: 1,
      });
      expect(invalid.status).toBe(400);
      expect(invalid.body.code).toBe('BODY_INVALID');
      expect(invalid.body.issues.map((i: { path: string }) => i.path)).toContain('stations[0].partitions');
      const unknown = await call('POST', '/v1/pipeline/plan', {
        connectors: [
          { name: 'y', plugin: 'nope', station: 'x' },
          { name: 'z', plugin: 'file', station: 'x', config: {} },
        ],
      });
      expect(unknown.status).toBe(400);
      expect(unknown.body.code).toBe('CONFIG_INVALID');
      expect(unknown.body.issues.map((i: { path: string }) => i.path)).toEqual(['connectors[0].plugin', 'connectors[1].config.dir']);
    },
  );
});

describe('the pipeline routes with auth on', () => {
  let dir: string;
  let server: RunningServer;
  const PASSWORD = 'admin-password-123';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-pipeline-auth-'));
    server = await startServer({
      dataDir: join(dir, 'data'),
      host: '127.0.0.1',
      port: 0,
      logger,
      auth: true,
      scryptLogN: 10,
      env: { JUNCTION_ADMIN_PASSWORD: PASSWORD, XDG_CONFIG_HOME: join(dir, 'xdg') },
      watchConfig: false,
    });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });
  const call = async (method: string, url: string, token: string, body?: unknown) => {
    const res = await server.app.inject({
      method: method as 'GET',
      url,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { payload: JSON.stringify(body) }),
    });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
  };

  it('plan needs read on cluster "pipeline", apply manage; host paths outside the roots are refused and nothing is made', async () => {
    const login = await server.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { username: 'admin', password: PASSWORD } });
    const admin = (JSON.parse(login.body) as { token: string }).token;
    const token = async (grants: unknown[]) => (await call('POST', '/v1/tokens', admin, { name: 't', grants })).body.token as string;
    const editor = await token([
      { resource: 'station', pattern: '*', actions: ['manage', 'read', 'produce', 'consume'] },
      { resource: 'connector', pattern: '*', actions: ['manage', 'read'] },
    ]);
    const planner = await token([{ resource: 'cluster', pattern: 'pipeline', actions: ['read'] }]);
    const body = {
      stations: [{ name: 'guarded' }],
      connectors: [{ name: 'out', plugin: 'file', station: 'guarded', config: { dir: '/etc/junction-nope' }, state: 'STOPPED' }],
    };
    expect((await call('POST', '/v1/pipeline/plan', editor, body)).status).toBe(403);
    expect((await call('POST', '/v1/pipeline/apply', editor, body)).status).toBe(403);
    const planned = await call('POST', '/v1/pipeline/plan', planner, { stations: body.stations });
    expect(planned.status).toBe(200);
    expect((await call('POST', '/v1/pipeline/apply', planner, body)).status).toBe(403);
    const refused = await call('POST', '/v1/pipeline/apply', admin, body);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'PATH_NOT_ALLOWED', issues: [{ path: 'connectors[0].config.dir' }] });
    expect((await call('GET', '/v1/stations/guarded', admin)).status).toBe(404);
    const ok = await call('POST', '/v1/pipeline/apply', admin, {
      ...body,
      connectors: [{ ...body.connectors[0], config: { dir: join(dir, 'data', 'out') } }],
    });
    expect(ok.status).toBe(200);
    expect((await call('GET', '/v1/connectors/out', admin)).status).toBe(200);
  });
});
