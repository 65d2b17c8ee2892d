/**
 * Connectors at scale, in one real broker process (`junction start`): 200 file sinks on 200 stations.
 * Every message lands exactly once, byte for byte, across a SIGKILL of the broker in the middle of the
 * writing; the broker's threads stay bounded by the cores (the file sink is a built-in plugin: its tasks
 * share the pool's threads) instead of one thread per task, and so does its memory.
 *
 * Runs under the machine's default open-file limit: 200 stations of one partition and 200 groups fit in
 * it without the stations' file-descriptor work (issue 16, first bullet).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSink } from '@junction/connector-file/read';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const N = 200;
const ids = Array.from({ length: N }, (_, i) => String(i).padStart(3, '0'));
/** Threads of the broker beside the shared pool's: main, libuv's four, V8's platform workers, a few of Node's own. */
const THREAD_SLACK = 16;

function procStatus(pid: number): { threads: number; rssMb: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const num = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { threads: num('Threads'), rssMb: num('VmRSS') / 1024 };
}

/** Produces `n` messages to each station (text and binary values); adds their bytes to `produced` by `station/partition:offset`. */
async function produceAll(url: string, n: number, round: string, produced: Map<string, Buffer>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        const values = Array.from({ length: n }, (_, j) =>
          j % 5 === 0
            ? randomBytes(1 + (j % 200))
            : Buffer.from(`{"station":"${id}","round":"${round}","n":${j},"pad":"${'x'.repeat((j * 7) % 300)}"}`),
        );
        const res = await api<{ results: { partition: number; offset: number }[] }>(url, 'POST', `/v1/stations/s-${id}/messages`, {
          messages: values.map((v) => ({ valueBase64: v.toString('base64') })),
        });
        res.results.forEach((r, j) => produced.set(`s-${id}/${r.partition}:${r.offset}`, values[j]!));
      }
    }),
  );
}

async function landed(out: string): Promise<number> {
  const counts = await Promise.all(ids.map(async (id) => (await readFileSink(join(out, id)).catch(() => [])).length));
  return counts.reduce((a, b) => a + b, 0);
}

describe('connectors at scale in one broker process', () => {
  const dirs: string[] = [];
  const brokers: BrokerProcess[] = [];
  afterAll(async () => {
    for (const b of brokers) await b.kill();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('200 file sinks on 200 stations: threads bounded by the cores, every message exactly once byte for byte across a SIGKILL', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-connect-scale-'));
    dirs.push(dataDir);
    const out = join(dataDir, 'out');
    let broker = await startBroker({ dataDir });
    brokers.push(broker);
    const base = procStatus(broker.child.pid!);
    for (let i = 0; i < ids.length; i += 10) {
      await Promise.all(
        ids.slice(i, i + 10).map(async (id) => {
          await api(broker.url, 'POST', '/v1/stations', { name: `s-${id}`, partitions: 1 });
          await api(broker.url, 'POST', '/v1/connectors', {
            name: `c-${id}`,
            plugin: 'file',
            station: `s-${id}`,
            config: { dir: join(out, id) },
            batch: { maxMessages: 20, maxLatencyMs: 50 },
          });
        }),
      );
    }
    const listed: string[] = [];
    for (let after: string | undefined; ;) {
      const page = await api<{ connectors: string[]; next?: string }>(
        broker.url,
        'GET',
        `/v1/connectors?limit=64${after ? `&after=${after}` : ''}`,
      );
      listed.push(...page.connectors);
      if (!page.next) break;
      after = page.next;
    }
    expect(listed).toEqual(ids.map((id) => `c-${id}`));

    const produced = new Map<string, Buffer>();
    await produceAll(broker.url, 60, 'one', produced);
    // Somewhere in the middle of the writing: kill -9, and start again on the same data dir.
    const deadline = Date.now() + 60_000;
    while ((await landed(out)) < (N * 60) / 4 && Date.now() < deadline) await sleep(20);
    const busy = procStatus(broker.child.pid!);
    await broker.kill();
    broker = await startBroker({ dataDir });
    brokers.push(broker);
    await produceAll(broker.url, 40, 'two', produced);
    const total = N * 100;
    const until = Date.now() + 120_000;
    for (;;) {
      const have = await landed(out);
      if (have >= total) break;
      if (Date.now() > until) throw new Error(`only ${have} of ${total} records landed\n${broker.output()}`);
      await sleep(200);
    }
    const after = procStatus(broker.child.pid!);
    await sleep(300); // nothing more comes

    // Exactly the produced messages, each once, byte for byte.
    let seen = 0;
    for (const id of ids) {
      const records = await readFileSink(join(out, id));
      const keys = new Set<string>();
      for (const r of records) {
        const k = `s-${id}/${r.partition}:${r.offset}`;
        expect(keys.has(k), `${k} written twice`).toBe(false);
        keys.add(k);
        const want = produced.get(k);
        expect(want, `unexpected record ${k}`).toBeDefined();
        expect(Buffer.compare(Buffer.from(r.value), want!), `bytes of ${k}`).toBe(0);
      }
      seen += keys.size;
    }
    expect(seen).toBe(produced.size);
    expect(seen).toBe(total);

    // Threads: the shared pool is sized to the cores; no thread per connector task. Memory: far below a
    // thread per task (10-15 MB each: 200 tasks were ~2.9 GB before the shared pool).
    const cores = availableParallelism();
    for (const [when, s] of [
      ['while writing', busy],
      ['after the restart, fed', after],
    ] as const) {
      expect(s.threads, `threads ${when} (${base.threads} before any connector)`).toBeLessThanOrEqual(cores + THREAD_SLACK);
      expect(s.rssMb, `RSS ${when}`).toBeLessThan(1024);
    }
    const statuses = await api<{
      connectors: { name: string; status: { isolation?: string; tasks: { state: string }[]; lag?: number } }[];
    }>(broker.url, 'GET', '/v1/connectors?expand=status&limit=1000');
    expect(statuses.connectors).toHaveLength(N);
    for (const c of statuses.connectors)
      expect(c.status, c.name).toMatchObject({ isolation: 'shared', lag: 0, tasks: [{ state: 'RUNNING' }] });
    await broker.stop();
  }, 300_000);
});
