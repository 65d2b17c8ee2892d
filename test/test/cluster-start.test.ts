/**
 * Three Junction nodes on one 3-node NATS cluster, started with `junction start --nats <urls>`, with
 * JUNCTION_NATS_URL, and with `cluster.nats` in junction.yaml. Any node serves any request: a station
 * made on one is used on the others, a delivery fetched from one is acked on another. Stations get
 * min(3, servers) replicas by default, `replicas` is a station option over HTTP, and a node warns at
 * start of stations with fewer replicas than the cluster could give.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, eventually, startBroker, startNatsCluster, type BrokerProcess, type NatsCluster } from '../src/index.js';

/** A request the API refuses: its status and error body. */
async function refused(url: string, method: string, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as unknown };
}

describe('junction start --nats', () => {
  let cluster: NatsCluster | undefined;
  const brokers: BrokerProcess[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.stop().catch(() => b.kill())));
    await cluster?.stop();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('runs several nodes on one JetStream cluster; any node accepts any request', async () => {
    cluster = await startNatsCluster({ nodes: 3 });
    const urls = cluster.servers.join(',');
    const dirA = await mkdtemp(join(tmpdir(), 'junction-node-a-'));
    const dirB = await mkdtemp(join(tmpdir(), 'junction-node-b-'));
    dirs.push(dirA, dirB);
    const a = await startBroker({ dataDir: dirA, args: ['--nats', urls] });
    brokers.push(a);
    const b = await startBroker({ dataDir: dirB, env: { JUNCTION_NATS_URL: urls } });
    brokers.push(b);

    await api(a.url, 'POST', '/v1/stations', { name: 'shared', partitions: 2 });
    const seen = await api<{ name: string; config: { replicas?: number } }>(b.url, 'GET', '/v1/stations/shared');
    expect(seen.name).toBe('shared');
    // The default on a three-server cluster: min(3, servers), so losing one server loses nothing.
    expect(seen.config.replicas).toBe(3);

    const produced = await api<{ results: { partition: number; offset: number }[] }>(b.url, 'POST', '/v1/stations/shared/messages', {
      messages: Array.from({ length: 10 }, (_, i) => ({ value: `m${i}`, key: `k${i}` })),
    });
    expect(produced.results).toHaveLength(10);

    const fetched = await api<{ messages: { deliveryId: string; value: string }[] }>(a.url, 'POST', '/v1/stations/shared/groups/g/fetch', {
      maxMessages: 100,
    });
    expect(fetched.messages.map((m) => m.value).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`).sort());
    const acked = await api<{ results: { status: string }[] }>(b.url, 'POST', '/v1/stations/shared/groups/g/ack', {
      deliveryIds: fetched.messages.map((m) => m.deliveryId),
    });
    expect(acked.results.map((r) => r.status)).toEqual(fetched.messages.map(() => 'acked'));
    for (const node of [a, b]) expect(await api(node.url, 'GET', '/v1/stations/shared/groups/g')).toMatchObject({ lag: 0, pending: 0 });

    const dirC = await mkdtemp(join(tmpdir(), 'junction-node-c-'));
    dirs.push(dirC);
    const configFile = join(dirC, 'junction.yaml');
    await writeFile(
      configFile,
      `cluster:\n  nats:\n    servers:\n${cluster.servers.map((u) => `      - ${u}\n`).join('')}    replicas: 3\nstations:\n  - name: declared\n    replicas: 1\n`,
    );
    const c = await startBroker({ dataDir: dirC, args: ['--config', configFile] });
    brokers.push(c);
    expect((await api<{ messages: number }>(c.url, 'GET', '/v1/stations/shared')).messages).toBe(10);
    await api(c.url, 'POST', '/v1/stations', { name: 'replicated' });
    expect(await api(a.url, 'GET', '/v1/stations/replicated')).toMatchObject({ config: { replicas: 3 } });
    // Stations as code take replicas in cluster mode.
    expect(await api(a.url, 'GET', '/v1/stations/declared')).toMatchObject({ config: { replicas: 1 } });
  }, 90_000);

  it('replicas over HTTP: set at creation, changed live, checked; a node warns at start of stations with fewer replicas than the cluster could give', async () => {
    cluster ??= await startNatsCluster({ nodes: 3 });
    const urls = cluster.servers.join(',');
    const dir = await mkdtemp(join(tmpdir(), 'junction-node-r-'));
    dirs.push(dir);
    const a = await startBroker({ dataDir: dir, args: ['--nats', urls] });
    brokers.push(a);
    expect(await api(a.url, 'POST', '/v1/stations', { name: 'single', replicas: 1 })).toMatchObject({ config: { replicas: 1 } });
    // More replicas than servers: JetStream cannot place them.
    expect(await refused(a.url, 'POST', '/v1/stations', { name: 'five', replicas: 5 })).toMatchObject({
      status: 400,
      body: { code: 'CONFIG_INVALID', issues: [{ path: 'replicas' }] },
    });
    expect(await refused(a.url, 'POST', '/v1/stations', { name: 'bad', replicas: 7 })).toMatchObject({
      status: 400,
      body: { code: 'BODY_INVALID', issues: [{ path: 'replicas' }] },
    });
    expect(await api(a.url, 'PATCH', '/v1/stations/single', { replicas: 3 })).toMatchObject({ config: { replicas: 3 } });
    expect(await api(a.url, 'PATCH', '/v1/stations/single', { replicas: 1 })).toMatchObject({ config: { replicas: 1 } });
    await a.stop();
    const again = await startBroker({ dataDir: dir, args: ['--nats', urls] });
    brokers.push(again);
    const warned = await eventually('the under-replication warning', 10_000, async () =>
      again
        .output()
        .split('\n')
        .find((l) => l.includes('"station":"single"') && l.includes('"couldHave":3')),
    );
    expect(JSON.parse(warned)).toMatchObject({ level: 40, station: 'single', replicas: 1, clusterServers: 3 });
    expect(again.output()).not.toContain('"station":"replicated"');
    expect(again.output()).toContain('"station":"declared"');
  }, 90_000);
});
