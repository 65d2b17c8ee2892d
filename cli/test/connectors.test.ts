/**
 * Connectors created stopped (Kafka Connect KIP-980's initial state; Junction's `state: STOPPED` on
 * create) and started from the CLI, and offsets reset from the CLI (KIP-875): a sink created STOPPED
 * runs no task and consumes nothing while a running one on the same station reads everything; started,
 * it writes every message; reset to a time, it re-delivers exactly the messages at or after that time,
 * byte for byte.
 */
import { rm } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSink } from '@junction/connector-file/read';
import { api, eventually, junction, startBroker, type Broker } from './helpers.js';

interface Status {
  connector: { state: string };
  tasks: { id: number; state: string }[];
  lag?: number;
}

type Produced = Map<string, { partition: number; offset: number; value: Buffer }>;

async function produce(url: string, station: string, tag: string, n: number): Promise<Produced> {
  const values = Array.from({ length: n }, (_, i) => Buffer.from(JSON.stringify({ tag, n: i, pad: 'x'.repeat(i % 17) })));
  const res = await api<{ results: { partition: number; offset: number }[] }>(url, 'POST', `/v1/stations/${station}/messages`, {
    messages: values.map((v, i) => ({ value: v.toString('utf8'), key: `k${i % 11}` })),
  });
  expect(res.status).toBe(200);
  const out: Produced = new Map();
  res.body.results.forEach((r, i) =>
    out.set(`${r.partition}:${r.offset}`, { partition: r.partition, offset: r.offset, value: values[i]! }),
  );
  return out;
}

/** The sink's records are exactly `want`: the same partition:offset set, the same bytes, no duplicate. */
async function expectExactly(dir: string, want: Produced): Promise<void> {
  const records = await readFileSink(dir);
  const seen = new Set<string>();
  for (const r of records) {
    const k = `${r.partition}:${r.offset}`;
    expect(seen.has(k), `duplicate ${k}`).toBe(false);
    seen.add(k);
    const w = want.get(k);
    expect(w, `unexpected record ${k}`).toBeDefined();
    expect(Buffer.compare(r.value, w!.value)).toBe(0);
  }
  expect(records.length).toBe(want.size);
}

describe('connectors created stopped, started and reset from the CLI', () => {
  let dir: string;
  let broker: Broker;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-connectors-'));
    broker = await startBroker(dir);
  });
  afterAll(async () => {
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const run = (args: string[]) => junction(['--url', broker.url, ...args], { cwd: dir });
  const status = async (name: string) => (await api<Status>(broker.url, 'GET', `/v1/connectors/${name}/status`)).body;
  const waitForRecords = (out: string, n: number) =>
    eventually(`${n} records in ${out}`, 90_000, async () => ((await readFileSink(out)).length >= n ? true : undefined), 100);
  const waitForLag0 = (name: string) =>
    eventually(`${name} caught up`, 90_000, async () => ((await status(name)).lag === 0 ? true : undefined), 100);

  it(
    'created STOPPED: no task, nothing consumed; `connectors start`: consumes; reset --to-time: re-delivers exactly the messages at or after it',
    { timeout: 300_000 },
    async () => {
      expect((await api(broker.url, 'POST', '/v1/stations', { name: 'feed', partitions: 2 })).status).toBe(201);
      const a = await produce(broker.url, 'feed', 'A', 40);
      expect(new Set([...a.values()].map((m) => m.partition))).toEqual(new Set([0, 1]));
      const outRec = join(dir, 'rec');
      const outRef = join(dir, 'ref');
      const batch = { maxMessages: 16, maxLatencyMs: 20 };
      expect(
        (
          await api(broker.url, 'POST', '/v1/connectors', {
            name: 'rec',
            plugin: 'file',
            station: 'feed',
            config: { dir: outRec },
            batch,
            state: 'STOPPED',
          })
        ).status,
      ).toBe(201);
      expect(
        (await api(broker.url, 'POST', '/v1/connectors', { name: 'ref', plugin: 'file', station: 'feed', config: { dir: outRef }, batch }))
          .status,
      ).toBe(201);

      // By the time the running connector has every message, a running `rec` would have read some too.
      await waitForRecords(outRef, a.size);
      await expectExactly(outRef, a);
      const st = await status('rec');
      expect(st.connector.state).toBe('STOPPED');
      expect(st.tasks.map((t) => t.state)).toEqual(['STOPPED']);
      expect(await readFileSink(outRec)).toEqual([]);
      // Its consumer group was never even made: no offsets.
      expect((await api(broker.url, 'GET', '/v1/stations/feed/groups/connector.rec')).status).toBe(404);
      const none = await run(['connectors', 'offsets', 'get', 'rec']);
      expect(none.code).toBe(0);
      expect(none.stdout).toBe('PARTITION  OFFSET\n');

      const started = await run(['connectors', 'start', 'rec']);
      expect(started.stderr).toBe('');
      expect(started.stdout).toBe('connector rec: target state RUNNING\n');
      await waitForRecords(outRec, a.size);
      await waitForLag0('rec');
      await expectExactly(outRec, a);
      const end = (p: number, m: Produced) => Math.max(0, ...[...m.values()].filter((x) => x.partition === p).map((x) => x.offset)) + 1;
      const got = await run(['connectors', 'offsets', 'get', 'rec']);
      expect(got.stdout).toBe(`PARTITION  OFFSET\n0          ${end(0, a)}\n1          ${end(1, a)}\n`);

      // A time after every message of A; B is produced after it.
      const records = await readFileSink(outRec);
      const t = Math.max(...records.map((r) => r.timestamp)) + 1;
      await eventually('the clock past t', 10_000, async () => (Date.now() > t ? true : undefined), 1);
      const b = await produce(broker.url, 'feed', 'B', 30);
      await waitForRecords(outRec, a.size + b.size);
      await waitForLag0('rec');
      const iso = new Date(t).toISOString();

      const running = await run(['connectors', 'offsets', 'reset', 'rec', '--to-time', iso]);
      expect(running.code).toBe(1);
      expect(running.stderr).toMatch(/^error CONNECTOR_NOT_STOPPED: /);

      const stopped = await run(['connectors', 'stop', 'rec']);
      expect(stopped.stdout).toBe('connector rec: target state STOPPED\n');
      await rm(outRec, { recursive: true, force: true });
      const reset = await run(['connectors', 'offsets', 'reset', 'rec', '--to-time', iso]);
      expect(reset.stderr).toBe('');
      expect(reset.code).toBe(0);
      // Per partition: B's first offset there (the end when B put nothing there).
      const first = (p: number) => Math.min(...[...b.values()].filter((x) => x.partition === p).map((x) => x.offset), end(p, a));
      expect(reset.stdout).toBe(
        `the offsets of sink connector rec were moved to ${iso}\nPARTITION  OFFSET\n0          ${first(0)}\n1          ${first(1)}\n`,
      );

      expect((await run(['connectors', 'start', 'rec'])).code).toBe(0);
      await waitForRecords(outRec, b.size);
      await waitForLag0('rec');
      await expectExactly(outRec, b);
      // The other connector's group was not touched.
      await expectExactly(outRef, new Map([...a, ...b]));
    },
  );

  it(
    'reset --to-offset [--partition], --to-earliest, --to-latest print where each partition starts; bad flags are usage errors',
    { timeout: 120_000 },
    async () => {
      expect((await run(['connectors', 'stop', 'rec'])).code).toBe(0);
      const ends = (await run(['connectors', 'offsets', 'get', 'rec'])).stdout;
      const endOf = (p: number) => Number(new RegExp(`^${p}\\s+(\\d+)$`, 'm').exec(ends)![1]);

      const one = await run(['connectors', 'offsets', 'reset', 'rec', '--to-offset', '3', '--partition', '1']);
      expect(one.code).toBe(0);
      expect(one.stdout).toBe(
        `the offsets of sink connector rec were moved to offset 3\nPARTITION  OFFSET\n0          ${endOf(0)}\n1          3\n`,
      );
      const earliest = await run(['connectors', 'offsets', 'reset', 'rec', '--to-earliest', '--json']);
      expect(JSON.parse(earliest.stdout)).toEqual({
        message: 'the offsets of sink connector rec were moved to the earliest',
        offsets: [
          { partition: { station: 'feed', partition: 0 }, offset: { offset: 1 } },
          { partition: { station: 'feed', partition: 1 }, offset: { offset: 1 } },
        ],
      });
      const latest = await run(['connectors', 'offsets', 'reset', 'rec', '--to-latest']);
      expect(latest.stdout).toBe(
        `the offsets of sink connector rec were moved to the latest\nPARTITION  OFFSET\n0          ${endOf(0)}\n1          ${endOf(1)}\n`,
      );

      const neither = await run(['connectors', 'offsets', 'reset', 'rec']);
      expect(neither.code).toBe(1);
      expect(neither.stderr).toBe('error USAGE: give exactly one of --to-offset, --to-time, --to-earliest, --to-latest\n');
      const two = await run(['connectors', 'offsets', 'reset', 'rec', '--to-earliest', '--to-latest']);
      expect(two.stderr).toBe('error USAGE: give exactly one of --to-offset, --to-time, --to-earliest, --to-latest\n');
      const badTime = await run(['connectors', 'offsets', 'reset', 'rec', '--to-time', 'yesterday']);
      expect(badTime.code).toBe(1);
      expect(badTime.stderr).toMatch(/^error USAGE: option '--to-time <time>' argument 'yesterday' is invalid\. must be an ISO 8601 time/);
      const missing = await run(['connectors', 'start', 'nope']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^error CONNECTOR_NOT_FOUND: /);
    },
  );
});
