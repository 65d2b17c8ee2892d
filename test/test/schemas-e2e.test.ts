/**
 * The schema registry kept in the broker, with real broker processes: a kill -9 in the middle of
 * registrations leaves every acknowledged one in place with its id, no half-written schema, and ids that
 * are never given again; two nodes of a JetStream cluster share one registry and enforce the same.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, eventually, startBroker, startNatsCluster, type BrokerProcess, type NatsCluster } from '../src/index.js';

const SR = '/v1/schema-registry';
const headers = { 'content-type': 'application/vnd.schemaregistry.v1+json' };

async function register(url: string, subject: string, schema: string): Promise<{ id: number } | undefined> {
  try {
    const res = await fetch(`${url}${SR}/subjects/${subject}/versions`, { method: 'POST', headers, body: JSON.stringify({ schema }) });
    return res.ok ? ((await res.json()) as { id: number }) : undefined;
  } catch {
    return undefined; // the broker went away with the request in flight
  }
}

const record = (i: number, fields: number): string =>
  JSON.stringify({
    type: 'record',
    name: `R${i}`,
    fields: Array.from({ length: fields }, (_, f) => ({ name: `f${f}`, type: 'long', ...(f > 0 ? { default: 0 } : {}) })),
  });

const brokers: BrokerProcess[] = [];
const dirs: string[] = [];
let cluster: NatsCluster | undefined;
afterAll(async () => {
  await Promise.all(brokers.map((b) => b.kill().catch(() => undefined)));
  await cluster?.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('the schema registry in the broker', () => {
  it('kill -9 during registrations: every acknowledged registration survives with its id, nothing half-written, ids never reused', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-schemas-kill-'));
    dirs.push(dataDir);
    const broker = await startBroker({ dataDir });
    brokers.push(broker);
    const acked: { subject: string; version: number; id: number }[] = [];
    let stop = false;
    // Six writers, each evolving its own subject (version n adds a field with a default: BACKWARD holds).
    const writers = Array.from({ length: 6 }, async (_, w) => {
      for (let n = 1; !stop; n++) {
        const r = await register(broker.url, `s${w}`, record(w, n));
        if (!r) return;
        acked.push({ subject: `s${w}`, version: n, id: r.id });
      }
    });
    await eventually('150 acknowledged registrations', 60_000, async () => (acked.length >= 150 ? true : undefined));
    await broker.kill();
    stop = true;
    await Promise.all(writers);

    const again = await startBroker({ dataDir });
    brokers.push(again);
    for (const a of acked) {
      const v = await api<{ id: number; version: number; schema: string }>(
        again.url,
        'GET',
        `${SR}/subjects/${a.subject}/versions/${a.version}`,
      );
      expect(v, `${a.subject} v${a.version}`).toMatchObject({ id: a.id, version: a.version });
      expect(JSON.parse(v.schema)).toEqual(JSON.parse(record(Number(a.subject.slice(1)), a.version)));
    }
    // Versions of a subject are 1..n without holes, whatever was in flight.
    for (let w = 0; w < 6; w++) {
      const versions = await api<number[]>(again.url, 'GET', `${SR}/subjects/s${w}/versions`);
      expect(versions).toEqual(Array.from({ length: versions.length }, (_, i) => i + 1));
    }
    const ids = new Set(acked.map((a) => a.id));
    expect(ids.size).toBe(acked.length);
    const fresh = await register(again.url, 'after-restart', '"string"');
    expect(fresh!.id).toBeGreaterThan(Math.max(...ids));
    await again.kill();
  });

  it('two nodes of a JetStream cluster share one registry: concurrent registrations agree, a binding made on one is enforced on the other', async () => {
    cluster = await startNatsCluster({ nodes: 3 });
    const urls = cluster.servers.join(',');
    const dirA = await mkdtemp(join(tmpdir(), 'junction-schemas-a-'));
    const dirB = await mkdtemp(join(tmpdir(), 'junction-schemas-b-'));
    dirs.push(dirA, dirB);
    const a = await startBroker({ dataDir: dirA, args: ['--nats', urls] });
    brokers.push(a);
    const b = await startBroker({ dataDir: dirB, args: ['--nats', urls] });
    brokers.push(b);

    // The same schemas registered on both nodes at once: one id and one version each.
    const schemas = Array.from({ length: 8 }, (_, i) => record(100 + i, 1));
    const [onA, onB] = await Promise.all([
      Promise.all(schemas.map((s, i) => register(a.url, `c${i}`, s))),
      Promise.all(schemas.map((s, i) => register(b.url, `c${i}`, s))),
    ]);
    expect(onA.every((r) => r !== undefined)).toBe(true);
    expect(onB).toEqual(onA);
    for (let i = 0; i < 8; i++) expect(await api<number[]>(b.url, 'GET', `${SR}/subjects/c${i}/versions`)).toEqual([1]);

    // A JSON Schema registered on A, a station bound to it created on B, a produce on A checked.
    const res = await fetch(`${a.url}${SR}/subjects/pay-value/versions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ schemaType: 'JSON', schema: JSON.stringify({ type: 'object', required: ['cents'] }) }),
    });
    expect(res.status).toBe(200);
    await eventually('node B sees the subject', 10_000, async () =>
      (await fetch(`${b.url}${SR}/subjects/pay-value/versions`)).ok ? true : undefined,
    );
    await api(b.url, 'POST', '/v1/stations', { name: 'pay', schema: { policy: 'reject' } });
    await eventually('node A enforces the binding made on node B', 10_000, async () => {
      const r = await api<{ results: { error?: { code: string } }[] }>(a.url, 'POST', '/v1/stations/pay/messages', {
        messages: [{ value: '{"no":1}' }],
      });
      return r.results[0]?.error?.code === 'SCHEMA_VIOLATION' ? true : undefined;
    });
    const ok = await api<{ results: { offset?: number }[] }>(a.url, 'POST', '/v1/stations/pay/messages', {
      messages: [{ value: '{"cents":5}' }],
    });
    expect(ok.results[0]!.offset).toBeGreaterThan(0);
  });
});
