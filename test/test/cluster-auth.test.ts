/**
 * Auth on a cluster: two Junction processes with `--auth` on a 3-node NATS cluster share users, tokens,
 * sessions and the signing secret through the metadata bucket. A token made on one node works on the
 * other; a revocation or a logout on one node stops the credential on the other within 2 s; both nodes
 * bootstrap at once without making two admins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JunctionNodes, startBroker, startNatsCluster, type BrokerProcess, type NatsCluster } from '../src/index.js';

const PASSWORD = 'cluster-admin-password';
let cluster: NatsCluster | undefined;
const nodes = new JunctionNodes();
let a: BrokerProcess;
let b: BrokerProcess;

async function req(url: string, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { ...(token && { authorization: `Bearer ${token}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** How long until `path` answers 401 on `url` with `token` (polls every 20 ms, up to 10 s). */
async function msUntil401(url: string, path: string, token: string): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < 10_000) {
    if ((await req(url, 'GET', path, token)).status === 401) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  return Infinity;
}

beforeAll(async () => {
  cluster = await startNatsCluster({ nodes: 3 });
  const servers = cluster.servers.join(',');
  const start = async () =>
    startBroker({
      dataDir: await nodes.tempDir('junction-auth-node-'),
      args: ['--nats', servers, '--auth'],
      env: { JUNCTION_ADMIN_PASSWORD: PASSWORD },
      timeoutMs: 90_000,
    });
  // Both at once: the bootstrap races on the shared state.
  [a, b] = await Promise.all([start(), start()]);
  nodes.brokers.push(a, b);
}, 180_000);

afterAll(async () => {
  await nodes.stop();
  await cluster?.stop();
});

describe('auth across the nodes of a cluster', () => {
  it('one admin, one secret: a session and a service token made on one node work on the other; grants hold', async () => {
    const login = await req(a.url, 'POST', '/v1/auth/login', undefined, { username: 'admin', password: PASSWORD });
    expect(login.status).toBe(200);
    const session = login.json.token as string;
    expect((await req(b.url, 'GET', '/v1/auth/whoami', session)).json).toMatchObject({ kind: 'user', name: 'admin', role: 'admin' });
    const users = await req(b.url, 'GET', '/v1/users', session);
    expect(users.json.map((u: { name: string }) => u.name)).toEqual(['admin']);
    expect((await req(b.url, 'GET', '/v1/stations')).status).toBe(401);

    expect((await req(a.url, 'POST', '/v1/stations', session, { name: 'orders', partitions: 1 })).status).toBe(201);
    expect((await req(a.url, 'POST', '/v1/stations', session, { name: 'payments', partitions: 1 })).status).toBe(201);
    const made = await req(a.url, 'POST', '/v1/tokens', session, {
      name: 'app',
      grants: [{ resource: 'station', pattern: 'orders', actions: ['produce'] }],
    });
    expect(made.status).toBe(201);
    const token = made.json.token as string;
    expect((await req(b.url, 'POST', '/v1/stations/orders/messages', token, { messages: [{ value: 'x' }] })).status).toBe(200);
    const denied = await req(b.url, 'POST', '/v1/stations/payments/messages', token, { messages: [{ value: 'x' }] });
    expect(denied.status).toBe(403);
    expect(denied.json.message).toBe('missing "produce" on station "payments"');
  });

  it('a revocation or a logout on one node stops the credential on the other within 2 s', async () => {
    const session = (await req(a.url, 'POST', '/v1/auth/login', undefined, { username: 'admin', password: PASSWORD })).json.token as string;
    const made = await req(b.url, 'POST', '/v1/tokens', session, {
      name: 'doomed',
      grants: [{ resource: 'station', pattern: '*', actions: ['read'] }],
    });
    const token = made.json.token as string;
    // Used (and so cached) on both nodes first.
    expect((await req(a.url, 'GET', '/v1/stations', token)).status).toBe(200);
    expect((await req(b.url, 'GET', '/v1/stations', token)).status).toBe(200);
    expect((await req(a.url, 'DELETE', `/v1/tokens/${made.json.id}`, session)).status).toBe(204);
    expect(await msUntil401(b.url, '/v1/stations', token)).toBeLessThan(2000);

    const other = (await req(b.url, 'POST', '/v1/auth/login', undefined, { username: 'admin', password: PASSWORD })).json.token as string;
    expect((await req(a.url, 'GET', '/v1/auth/whoami', other)).status).toBe(200);
    expect((await req(b.url, 'POST', '/v1/auth/logout', other)).status).toBe(204);
    expect(await msUntil401(a.url, '/v1/auth/whoami', other)).toBeLessThan(2000);
    // The first session is untouched.
    expect((await req(a.url, 'GET', '/v1/auth/whoami', session)).status).toBe(200);
  });
});
