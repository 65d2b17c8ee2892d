/**
 * The Snowflake sink in a real broker process, against the Snowflake fake (test/fakes/snowflake) with
 * the real snowflake-sdk: N messages produced → exactly N rows, read back with a query through the same
 * driver; SIGKILL of the broker mid-stream and a restart → still exactly N (the sink's anti-join on the
 * offsets already in the table is what keeps a replayed batch from doubling rows).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import snowflake from 'snowflake-sdk';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeSnowflake } from '../fakes/snowflake/server.js';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'orders';
process.env.SF_TELEMETRY_DISABLE_CONNECTION_SHAPE = '1';
snowflake.configure({ logLevel: 'OFF' } as never);

async function query(fake: FakeSnowflake, sqlText: string): Promise<Record<string, unknown>[]> {
  const conn = snowflake.createConnection({ account: 'testacct', accessUrl: fake.url, username: 'junction', password: 'secret', database: 'DB', schema: 'PUBLIC', warehouse: 'WH' } as never);
  await conn.connectAsync(() => undefined);
  try {
    return await new Promise((res, rej) => conn.execute({ sqlText, complete: (e, _s, rows) => (e ? rej(e) : res((rows ?? []) as Record<string, unknown>[])) }));
  } finally {
    await new Promise<void>((r) => conn.destroy(() => r()));
  }
}

async function produce(url: string, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i += 250) {
    const values = Array.from({ length: Math.min(250, from + n - i) }, (_, j) => JSON.stringify({ id: i + j, sku: `s-${(i + j) % 97}` }));
    await api(url, 'POST', `/v1/stations/${STATION}/messages`, { messages: values.map((value, j) => ({ value, key: `k${(i + j) % 7}` })) });
  }
}

describe('Snowflake sink connector in a real broker process', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  it('exactly N rows through a SIGKILL of the broker, read back through the driver', async () => {
    const fake = await new FakeSnowflake().start();
    cleanup.push(() => fake.close());
    const rows = async () => query(fake, 'SELECT PARTITION, OFFSET, VALUE FROM EVENTS').catch(() => [] as Record<string, unknown>[]);

    const dataDir = await mkdtemp(join(tmpdir(), 'junction-sf-e2e-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(
      configPath,
      `stations:
  - name: ${STATION}
    partitions: 2
connectors:
  - name: to-sf
    plugin: snowflake
    station: ${STATION}
    config:
      account: testacct
      accessUrl: ${fake.url}
      username: junction
      password: \${env:SF_PASSWORD}
      warehouse: WH
      database: DB
      table: EVENTS
    batch:
      maxMessages: 200
      maxLatencyMs: 100
`,
    );
    const start = async (): Promise<BrokerProcess> => {
      const b = await startBroker({ dataDir, args: ['--config', configPath], env: { SF_PASSWORD: 'secret' } });
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
    expect(new Set(got.map((r) => `${String(r.PARTITION)}:${String(r.OFFSET)}`)).size).toBe(total);
    const ids = got.map((r) => (JSON.parse(typeof r.VALUE === 'string' ? r.VALUE : JSON.stringify(r.VALUE)) as { id: number }).id).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: total }, (_, i) => i));
    await broker.stop();
  });
});
