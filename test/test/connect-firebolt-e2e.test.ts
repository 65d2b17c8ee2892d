/**
 * The Firebolt sink in a real broker process, against the Firebolt fake (test/fakes/firebolt) with the
 * real firebolt-sdk: N messages produced → exactly N rows, read back with a query through the same SDK;
 * SIGKILL of the broker mid-stream and a restart → still exactly N (the sink checks which offsets the
 * table already holds before it inserts a replayed batch).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Firebolt } from 'firebolt-sdk';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeFirebolt } from '../fakes/firebolt/server.js';
// The sink's own plain-http client for the SDK (the fake speaks http, the SDK assumes https).
import { PlainOrTlsHttpClient, silentLogger } from '../../connectors/firebolt/dist/http.js';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'orders';
async function query(fake: FakeFirebolt, sql: string): Promise<Record<string, unknown>[]> {
  const http = new PlainOrTlsHttpClient();
  try {
    const fb = Firebolt({ apiEndpoint: fake.url, dependencies: { httpClient: http as never, logger: silentLogger } });
    const conn = await fb.connect({ account: 'acct', auth: { client_id: 'junction-id', client_secret: 'junction-secret' }, database: 'db', engineName: 'eng', useCache: false });
    const st = await conn.execute(sql, { response: { normalizeData: true } });
    return (await st.fetchResult()).data as Record<string, unknown>[];
  } finally {
    http.destroy();
  }
}

async function produce(url: string, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i += 250) {
    const values = Array.from({ length: Math.min(250, from + n - i) }, (_, j) => JSON.stringify({ id: i + j, sku: `s-${(i + j) % 97}` }));
    await api(url, 'POST', `/v1/stations/${STATION}/messages`, { messages: values.map((value, j) => ({ value, key: `k${(i + j) % 7}` })) });
  }
}

describe('Firebolt sink connector in a real broker process', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  it('exactly N rows through a SIGKILL of the broker, read back through the SDK', async () => {
    const fake = await new FakeFirebolt().start();
    cleanup.push(() => fake.close());
    const rows = async () => query(fake, 'SELECT "partition", "offset", "value" FROM events').catch(() => [] as Record<string, unknown>[]);

    const dataDir = await mkdtemp(join(tmpdir(), 'junction-fb-e2e-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(
      configPath,
      `stations:
  - name: ${STATION}
    partitions: 2
connectors:
  - name: to-fb
    plugin: firebolt
    station: ${STATION}
    config:
      account: acct
      apiEndpoint: ${fake.url}
      clientId: junction-id
      clientSecret: \${env:FB_SECRET}
      database: db
      engine: eng
      table: events
    batch:
      maxMessages: 200
      maxLatencyMs: 100
`,
    );
    const start = async (): Promise<BrokerProcess> => {
      const b = await startBroker({ dataDir, args: ['--config', configPath], env: { FB_SECRET: 'junction-secret' } });
      cleanup.push(() => b.kill());
      return b;
    };

    let broker = await start();
    await produce(broker.url, 0, 3000);
    for (const end = Date.now() + 30_000; (await rows()).length === 0; ) {
      if (Date.now() > end) throw new Error(`no rows landed:\n${broker.output()}`);
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
    expect(new Set(got.map((r) => `${String(r.partition)}:${String(r.offset)}`)).size).toBe(total);
    const ids = got.map((r) => (JSON.parse(typeof r.value === 'string' ? r.value : JSON.stringify(r.value)) as { id: number }).id).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: total }, (_, i) => i));
    await broker.stop();
  });
});
