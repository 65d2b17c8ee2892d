/**
 * The BigQuery sink in a real broker process, against the BigQuery fake (test/fakes/bigquery) with the
 * real @google-cloud/bigquery: N messages produced → exactly N rows, read back with a query through the
 * same SDK; SIGKILL of the broker mid-stream and a restart → still exactly N. The fake's insertId dedup
 * is off (window 0), so only the sink's own check of the offsets already in the table keeps the rows
 * exactly once.
 */
import { BigQuery } from '@google-cloud/bigquery';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeBigQuery } from '../fakes/bigquery/server.js';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'orders';
const PROJECT = 'test-proj';
const TOKEN = 'good-token';

async function produce(url: string, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i += 250) {
    const values = Array.from({ length: Math.min(250, from + n - i) }, (_, j) => JSON.stringify({ id: i + j, amount: (i + j) * 1.5, note: 'x'.repeat((i + j) % 50) }));
    await api(url, 'POST', `/v1/stations/${STATION}/messages`, { messages: values.map((value, j) => ({ value, key: `k${(i + j) % 7}` })) });
  }
}

describe('BigQuery sink connector in a real broker process', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  it('exactly N rows through a SIGKILL of the broker, read back through the SDK', async () => {
    const fake = await new FakeBigQuery({ token: TOKEN, dedupWindowMs: 0 }).start();
    cleanup.push(() => fake.close());
    fake.createDataset(PROJECT, 'ds');
    const bq = new BigQuery({ projectId: PROJECT, apiEndpoint: fake.url, authClient: { getRequestHeaders: async () => new Headers({ authorization: `Bearer ${TOKEN}` }) } as never });
    const rows = async () => (await bq.query({ query: 'SELECT `partition`, `offset`, `value` FROM `test-proj.ds.events`' }))[0] as { partition: number; offset: number; value: unknown }[];

    const dataDir = await mkdtemp(join(tmpdir(), 'junction-bq-e2e-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(
      configPath,
      `stations:
  - name: ${STATION}
    partitions: 2
connectors:
  - name: to-bq
    plugin: bigquery
    station: ${STATION}
    config:
      projectId: ${PROJECT}
      dataset: ds
      table: events
      apiEndpoint: ${fake.url}
      accessToken: \${env:BQ_TOKEN}
      maxRetries: 0
    batch:
      maxMessages: 200
      maxLatencyMs: 100
`,
    );
    const start = async (): Promise<BrokerProcess> => {
      const b = await startBroker({ dataDir, args: ['--config', configPath], env: { BQ_TOKEN: TOKEN } });
      cleanup.push(() => b.kill());
      return b;
    };

    let broker = await start();
    await produce(broker.url, 0, 3000);
    const deadline = Date.now() + 30_000;
    while ((await rows().catch(() => [])).length === 0) {
      if (Date.now() > deadline) throw new Error(`no rows landed:\n${broker.output()}`);
      await sleep(50);
    }
    const before = (await rows()).length;
    await broker.kill();
    broker = await start();
    await produce(broker.url, 3000, 1000);
    const total = 4000;
    for (const end = Date.now() + 60_000; (await rows()).length < total; ) {
      if (Date.now() > end) throw new Error(`only ${(await rows()).length} of ${total} rows:\n${broker.output()}`);
      await sleep(200);
    }
    await sleep(1000); // anything late would show up as a duplicate now
    const got = await rows();
    expect(before).toBeLessThan(3000); // the kill came mid-stream
    expect(got.length).toBe(total);
    expect(new Set(got.map((r) => `${r.partition}:${r.offset}`)).size).toBe(total);
    const ids = got.map((r) => (JSON.parse(typeof r.value === 'string' ? r.value : JSON.stringify(r.value)) as { id: number }).id).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: total }, (_, i) => i));
    await broker.stop();
  });
});
