/**
 * Many stations under a small open-file limit: a real broker started as `ulimit -n 256; exec node …`
 * gets 2,000 stations of 1 to 3 partitions (each with its dead-letter station: 4,000 stations, 6,000
 * partition logs), a produce to every one, a consumer group reading every message, a restart, and
 * every message checked byte for byte again — with no 5xx answer, and the process's descriptors
 * (/proc/<pid>/fd) staying under the limit. Before the open-file budget every partition kept its files
 * open for good and station creation failed with EMFILE (500 IO_ERROR) after ~60 stations.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, startBroker, type BrokerProcess } from '../src/index.js';

const LIMIT = 256;
const STATIONS = 2000;
const CONCURRENCY = 8;
const name = (i: number): string => `s-${String(i).padStart(5, '0')}`;
const partitionsOf = (i: number): number => (i % 3) + 1;
/** Messages per station: two per partition, so every partition holds some. */
const perStation = (i: number): number => 2 * partitionsOf(i);

interface FetchAnswer {
  messages: { deliveryId: string; partition: number; offset: number; valueBase64?: string }[];
}

/** Runs `fn` over 0..n-1, `CONCURRENCY` at a time. */
async function forEach(n: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** Every message of the station through group `group` (acking each batch), keyed partition:offset. */
async function consumeAll(url: string, station: string, group: string, expected: number): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>();
  const deadline = Date.now() + 60_000;
  while (got.size < expected) {
    if (Date.now() > deadline) throw new Error(`${station}/${group}: got ${got.size} of ${expected} messages`);
    const batch = await api<FetchAnswer>(url, 'POST', `/v1/stations/${station}/groups/${group}/fetch`, {
      maxMessages: 100,
      waitMs: 200,
      encoding: 'base64',
    });
    for (const m of batch.messages) got.set(`${m.partition}:${m.offset}`, Buffer.from(m.valueBase64 ?? '', 'base64'));
    if (batch.messages.length > 0)
      await api(url, 'POST', `/v1/stations/${station}/groups/${group}/ack`, { deliveryIds: batch.messages.map((m) => m.deliveryId) });
  }
  return got;
}

async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

describe(`${STATIONS} stations under ulimit -n ${LIMIT}`, () => {
  const dirs: string[] = [];
  let broker: BrokerProcess | undefined;
  afterAll(async () => {
    await broker?.kill().catch(() => {});
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('creates, produces to, consumes and restarts every station; every message byte for byte; descriptors under the limit', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-fdlimit-'));
    dirs.push(dataDir);
    broker = await startBroker({ dataDir, ulimitFiles: LIMIT });
    const pid = broker.child.pid!;
    let peakFds = await openFds(pid);
    const sample = async (): Promise<void> => {
      peakFds = Math.max(peakFds, await openFds(pid));
    };

    // Create and produce (any non-2xx throws: no 500 IO_ERROR from EMFILE).
    const produced = new Map<string, Map<string, Buffer>>();
    await forEach(STATIONS, async (i) => {
      const s = name(i);
      await api(broker!.url, 'POST', '/v1/stations', { name: s, partitions: partitionsOf(i) });
      const values = Array.from({ length: perStation(i) }, (_, j) =>
        Buffer.concat([Buffer.from(`${s}/${j}/`), randomBytes(8 + (j % 5) * 13)]),
      );
      const res = await api<{ results: { partition: number; offset: number; error?: unknown; duplicate?: boolean }[] }>(
        broker!.url,
        'POST',
        `/v1/stations/${s}/messages`,
        {
          messages: values.map((v) => ({ valueBase64: v.toString('base64') })),
        },
      );
      const m = new Map<string, Buffer>();
      res.results.forEach((r, j) => {
        expect(r.error ?? r.duplicate).toBeUndefined();
        m.set(`${r.partition}:${r.offset}`, values[j]!);
      });
      produced.set(s, m);
      if (i % 100 === 0) await sample();
    });

    // A consumer group reads every message of every station.
    await forEach(STATIONS, async (i) => {
      const s = name(i);
      const got = await consumeAll(broker!.url, s, 'g', perStation(i));
      expect(got).toEqual(produced.get(s));
      if (i % 100 === 0) await sample();
    });

    // Every station is listed, a page at a time.
    const listed: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await api<{ stations: { name: string }[]; next?: string }>(
        broker.url,
        'GET',
        `/v1/stations?limit=1000${after ? `&after=${after}` : ''}`,
      );
      listed.push(...page.stations.map((s) => s.name));
      if (!page.next) break;
      after = page.next;
    }
    expect(listed.filter((n) => !n.endsWith('.dls'))).toEqual(Array.from({ length: STATIONS }, (_, i) => name(i)));
    await sample();
    expect(peakFds).toBeLessThan(LIMIT);

    // Restart: everything is still there, byte for byte; group g has nothing left; a new group reads it all.
    expect(await broker.stop()).toBe(0);
    broker = await startBroker({ dataDir, ulimitFiles: LIMIT, timeoutMs: 120_000 });
    const pid2 = broker.child.pid!;
    peakFds = await openFds(pid2);
    const health = await api<{ status: string }>(broker.url, 'GET', '/healthz');
    expect(health.status).toBe('ok');
    await forEach(STATIONS, async (i) => {
      const s = name(i);
      const none = await api<FetchAnswer>(broker!.url, 'POST', `/v1/stations/${s}/groups/g/fetch`, { maxMessages: 100, waitMs: 0 });
      expect(none.messages).toEqual([]);
      const again = await consumeAll(broker!.url, s, 'g2', perStation(i));
      expect(again).toEqual(produced.get(s));
      if (i % 100 === 0) peakFds = Math.max(peakFds, await openFds(pid2));
    });
    expect(peakFds).toBeLessThan(LIMIT);
    expect(await broker.stop()).toBe(0);
  }, 900_000);
});
