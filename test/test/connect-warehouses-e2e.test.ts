/**
 * The warehouse sinks in a real broker process, each against its protocol-faithful fake (test/fakes/)
 * with the vendor's real SDK: N messages produced → exactly N rows, read back with a query through the
 * same SDK; SIGKILL of the broker mid-stream and a restart → still exactly N. Only the sinks' own check
 * of the offsets already in the table keeps a replayed batch from doubling rows (BigQuery's insertId
 * dedup is off in its fake).
 */
import { BigQuery } from '@google-cloud/bigquery';
import { Firebolt } from 'firebolt-sdk';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import snowflake from 'snowflake-sdk';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeBigQuery } from '../fakes/bigquery/server.js';
import { FakeFirebolt } from '../fakes/firebolt/server.js';
import { FakeSnowflake } from '../fakes/snowflake/server.js';
// The Firebolt sink's own plain-http client for the SDK (the fake speaks http, the SDK assumes https).
import { PlainOrTlsHttpClient, silentLogger } from '../../connectors/firebolt/dist/http.js';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'orders';
process.env.SF_TELEMETRY_DISABLE_CONNECTION_SHAPE = '1';
snowflake.configure({ logLevel: 'OFF' } as never);

interface Row {
  partition: unknown;
  offset: unknown;
  value: unknown;
}

/** One warehouse: its fake, the connector's YAML config block, the secret it takes by env, a read-back. */
interface Warehouse {
  plugin: string;
  start(): Promise<{ close(): Promise<void>; config: string; env: Record<string, string>; rows(): Promise<Row[]> }>;
}

const warehouses: Warehouse[] = [
  {
    plugin: 'bigquery',
    async start() {
      const fake = await new FakeBigQuery({ token: 'good-token', dedupWindowMs: 0 }).start();
      fake.createDataset('test-proj', 'ds');
      const bq = new BigQuery({
        projectId: 'test-proj',
        apiEndpoint: fake.url,
        authClient: { getRequestHeaders: async () => new Headers({ authorization: 'Bearer good-token' }) } as never,
      });
      return {
        close: () => fake.close(),
        env: { WH_SECRET: 'good-token' },
        config: `projectId: test-proj\ndataset: ds\ntable: events\napiEndpoint: ${fake.url}\naccessToken: \${env:WH_SECRET}\nmaxRetries: 0`,
        rows: async () => (await bq.query({ query: 'SELECT `partition`, `offset`, `value` FROM `test-proj.ds.events`' }))[0] as Row[],
      };
    },
  },
  {
    plugin: 'snowflake',
    async start() {
      const fake = await new FakeSnowflake().start();
      return {
        close: () => fake.close(),
        env: { WH_SECRET: 'secret' },
        config: `account: testacct\naccessUrl: ${fake.url}\nusername: junction\npassword: \${env:WH_SECRET}\nwarehouse: WH\ndatabase: DB\ntable: EVENTS`,
        async rows() {
          const conn = snowflake.createConnection({
            account: 'testacct',
            accessUrl: fake.url,
            username: 'junction',
            password: 'secret',
            database: 'DB',
            schema: 'PUBLIC',
            warehouse: 'WH',
          } as never);
          await conn.connectAsync(() => undefined);
          try {
            const got = await new Promise<Record<string, unknown>[]>((res, rej) =>
              conn.execute({
                sqlText: 'SELECT PARTITION, OFFSET, VALUE FROM EVENTS',
                complete: (e, _s, r) => (e ? rej(e) : res((r ?? []) as Record<string, unknown>[])),
              }),
            );
            return got.map((r) => ({ partition: r.PARTITION, offset: r.OFFSET, value: r.VALUE }));
          } finally {
            await new Promise<void>((r) => conn.destroy(() => r()));
          }
        },
      };
    },
  },
  {
    plugin: 'firebolt',
    async start() {
      const fake = await new FakeFirebolt().start();
      return {
        close: () => fake.close(),
        env: { WH_SECRET: 'junction-secret' },
        config: `account: acct\napiEndpoint: ${fake.url}\nclientId: junction-id\nclientSecret: \${env:WH_SECRET}\ndatabase: db\nengine: eng\ntable: events`,
        async rows() {
          const http = new PlainOrTlsHttpClient();
          try {
            const fb = Firebolt({ apiEndpoint: fake.url, dependencies: { httpClient: http as never, logger: silentLogger } });
            const conn = await fb.connect({
              account: 'acct',
              auth: { client_id: 'junction-id', client_secret: 'junction-secret' },
              database: 'db',
              engineName: 'eng',
              useCache: false,
            });
            const st = await conn.execute('SELECT "partition", "offset", "value" FROM events', { response: { normalizeData: true } });
            return (await st.fetchResult()).data as Row[];
          } finally {
            http.destroy();
          }
        },
      };
    },
  },
];

async function produce(url: string, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i += 250) {
    const values = Array.from({ length: Math.min(250, from + n - i) }, (_, j) =>
      JSON.stringify({ id: i + j, amount: (i + j) * 1.5, note: 'x'.repeat((i + j) % 50) }),
    );
    await api(url, 'POST', `/v1/stations/${STATION}/messages`, { messages: values.map((value, j) => ({ value, key: `k${(i + j) % 7}` })) });
  }
}

const indent = (text: string, spaces: number) =>
  text
    .split('\n')
    .map((l) => ' '.repeat(spaces) + l)
    .join('\n');

describe('warehouse sink connectors in a real broker process', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  for (const wh of warehouses) {
    it(`${wh.plugin}: exactly N rows through a SIGKILL of the broker, read back through the SDK`, async () => {
      const target = await wh.start();
      cleanup.push(() => target.close());
      const rows = () => target.rows().catch(() => [] as Row[]);
      const dataDir = await mkdtemp(join(tmpdir(), `junction-${wh.plugin}-e2e-`));
      cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
      const configPath = join(dataDir, 'junction.yaml');
      await writeFile(
        configPath,
        `stations:\n  - name: ${STATION}\n    partitions: 2\nconnectors:\n  - name: to-wh\n    plugin: ${wh.plugin}\n    station: ${STATION}\n    config:\n${indent(target.config, 6)}\n    batch:\n      maxMessages: 200\n      maxLatencyMs: 100\n`,
      );
      const start = async (): Promise<BrokerProcess> => {
        const b = await startBroker({ dataDir, args: ['--config', configPath], env: target.env });
        cleanup.push(() => b.kill());
        return b;
      };

      let broker = await start();
      await produce(broker.url, 0, 3000);
      for (const end = Date.now() + 30_000; (await rows()).length === 0;) {
        if (Date.now() > end) throw new Error(`no rows landed:\n${broker.output()}`);
        await sleep(50);
      }
      const before = (await rows()).length;
      await broker.kill();
      broker = await start();
      await produce(broker.url, 3000, 1000);
      const total = 4000;
      for (const end = Date.now() + 60_000; (await rows()).length < total;) {
        if (Date.now() > end) throw new Error(`only ${(await rows()).length} of ${total} rows:\n${broker.output()}`);
        await sleep(200);
      }
      await sleep(1000); // anything late would show up as a duplicate now
      const got = await rows();
      expect(before).toBeLessThan(3000); // the kill came mid-stream
      expect(got.length).toBe(total);
      expect(new Set(got.map((r) => `${String(r.partition)}:${String(r.offset)}`)).size).toBe(total);
      const ids = got
        .map((r) => (JSON.parse(typeof r.value === 'string' ? r.value : JSON.stringify(r.value)) as { id: number }).id)
        .sort((a, b) => a - b);
      expect(ids).toEqual(Array.from({ length: total }, (_, i) => i));
      await broker.stop();
    });
  }
});
