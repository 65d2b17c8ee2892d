/**
 * Sinks that use the station's schema, in a real broker process: an Avro schema registered through the
 * Confluent REST API, a station bound to it, values produced in the Confluent wire format; the S3 sink
 * writes Parquet with the schema's columns and types (read back by DuckDB) and the Snowflake sink in mode
 * schema creates its table from it (read back through snowflake-sdk). A compatible version 2 registered
 * mid-stream (the station follows "latest") reaches both: the next Parquet files have its new column and
 * the table gets it by ALTER TABLE, and values of version 1 still land.
 */
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import avro from 'avsc';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import snowflake from 'snowflake-sdk';
import { afterAll, describe, expect, it } from 'vitest';
import { startS3rver, s3ClientConfig } from '../fakes/s3rver.js';
import { FakeSnowflake } from '../fakes/snowflake/server.js';
import { api, eventually, startBroker } from '../src/index.js';

process.env.SF_TELEMETRY_DISABLE_CONNECTION_SHAPE = '1';
snowflake.configure({ logLevel: 'OFF' } as never);

const SR = '/v1/schema-registry';
const V1 = {
  type: 'record',
  name: 'Order',
  fields: [
    { name: 'sku', type: 'string' },
    { name: 'qty', type: 'int' },
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
  ],
};
const V2 = { ...V1, fields: [...V1.fields, { name: 'note', type: ['null', 'string'], default: null }] };

async function register(url: string, schema: unknown): Promise<number> {
  const res = await fetch(`${url}${SR}/subjects/orders-value/versions`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ schema: JSON.stringify(schema) }),
  });
  if (!res.ok) throw new Error(`register: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: number }).id;
}

function wire(id: number, payload: Buffer): string {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return Buffer.concat([head, payload]).toString('base64');
}

async function sfRows(fake: FakeSnowflake, sqlText: string): Promise<Record<string, unknown>[]> {
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
    return await new Promise((res, rej) =>
      conn.execute({ sqlText, complete: (e, _s, r) => (e ? rej(e) : res((r ?? []) as Record<string, unknown>[])) }),
    );
  } finally {
    await new Promise<void>((r) => conn.destroy(() => r()));
  }
}

describe('sinks that use the station schema, in a real broker process', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  it('S3 Parquet and Snowflake tables follow the registered schema, a new version mid-stream included', async () => {
    const s3 = await startS3rver();
    cleanup.push(() => s3.close());
    const s3c = new S3Client(s3ClientConfig(s3));
    cleanup.push(async () => s3c.destroy());
    const bucket = `schema-e2e-${Date.now().toString(36)}`;
    await s3c.send(new CreateBucketCommand({ Bucket: bucket }));
    const sf = await new FakeSnowflake().start();
    cleanup.push(() => sf.close());
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-schema-sinks-e2e-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const broker = await startBroker({ dataDir, env: { WH_SECRET: 'secret' } });
    cleanup.push(() => broker.kill());

    const id1 = await register(broker.url, V1);
    await api(broker.url, 'POST', '/v1/stations', { name: 'orders', partitions: 1, schema: { policy: 'reject' } });
    const batch = { maxMessages: 20, maxLatencyMs: 100 };
    await api(broker.url, 'POST', '/v1/connectors', {
      name: 'to-s3',
      plugin: 's3',
      station: 'orders',
      batch,
      config: {
        bucket,
        endpoint: s3.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        checksums: 'when-required',
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        format: 'parquet',
        compression: 'none',
        parquet: { fields: ['offset'] },
      },
    });
    await api(broker.url, 'POST', '/v1/connectors', {
      name: 'to-sf',
      plugin: 'snowflake',
      station: 'orders',
      batch,
      config: {
        account: 'testacct',
        accessUrl: sf.url,
        username: 'junction',
        password: '${env:WH_SECRET}',
        warehouse: 'WH',
        database: 'DB',
        table: 'ORDERS',
        mode: 'schema',
      },
    });

    const T1 = avro.Type.forSchema(V1 as avro.Schema);
    const T2 = avro.Type.forSchema(V2 as avro.Schema);
    const at = (i: number) => Date.UTC(2025, 5, 1, 0, 0, 0, i);
    const first = Array.from({ length: 30 }, (_, i) => ({
      valueBase64: wire(id1, T1.toBuffer({ sku: `s${i + 1}`, qty: i + 1, at: at(i + 1) })),
    }));
    await api(broker.url, 'POST', '/v1/stations/orders/messages', { messages: first });
    await eventually('30 rows in Snowflake', 60_000, async () =>
      (await sfRows(sf, 'SELECT "_JUNCTION_OFFSET" FROM "DB"."PUBLIC"."ORDERS"')).length === 30 ? true : undefined,
    );

    // Version 2 adds a nullable field; the station follows "latest". Values of both versions follow.
    const id2 = await register(broker.url, V2);
    expect(id2).not.toBe(id1);
    const second = Array.from({ length: 10 }, (_, i) => {
      const n = 31 + i;
      return {
        valueBase64:
          i % 2 === 0
            ? wire(id2, T2.toBuffer({ sku: `s${n}`, qty: n, at: at(n), note: `note ${n}` }))
            : wire(id1, T1.toBuffer({ sku: `s${n}`, qty: n, at: at(n) })),
      };
    });
    await api(broker.url, 'POST', '/v1/stations/orders/messages', { messages: second });
    const rows = await eventually('40 rows in Snowflake', 60_000, async () => {
      const r = await sfRows(sf, 'SELECT "_JUNCTION_OFFSET", "SKU", "QTY", "NOTE" FROM "DB"."PUBLIC"."ORDERS" ORDER BY "_JUNCTION_OFFSET"');
      return r.length === 40 ? r : undefined;
    });
    expect(rows.map((r) => [r._JUNCTION_OFFSET, r.SKU, r.QTY, r.NOTE])).toEqual(
      Array.from({ length: 40 }, (_, i) => [i + 1, `s${i + 1}`, i + 1, i >= 30 && (i - 30) % 2 === 0 ? `note ${i + 1}` : null]),
    );
    expect(sf.statements.filter((s) => s.startsWith('ALTER TABLE'))).toEqual([
      'ALTER TABLE "DB"."PUBLIC"."ORDERS" ADD COLUMN IF NOT EXISTS "NOTE" VARCHAR',
    ]);

    // The bucket: every offset once; typed columns from the schema; files of version 2 carry its column.
    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    cleanup.push(async () => duck.closeSync());
    await duck.run("SET TimeZone = 'UTC'");
    const files = await eventually('40 rows in Parquet', 60_000, async () => {
      const out: { types: Record<string, string>; rows: Record<string, unknown>[] }[] = [];
      const page = await s3c.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const o of page.Contents ?? []) {
        if (!o.Key?.endsWith('.parquet')) continue;
        const res = await s3c.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
        const file = join(dataDir, `f${out.length}.parquet`);
        await writeFile(file, Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()));
        const desc = (await duck.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).getRowObjectsJson() as {
          column_name: string;
          column_type: string;
        }[];
        const rs = (await duck.runAndReadAll(`SELECT * FROM read_parquet('${file}')`)).getRowObjectsJson() as Record<string, unknown>[];
        out.push({ types: Object.fromEntries(desc.map((d) => [d.column_name, d.column_type])), rows: rs });
      }
      return out.reduce((n, f) => n + f.rows.length, 0) === 40 ? out : undefined;
    });
    const all = files.flatMap((f) => f.rows.map((r) => ({ ...r, hasNote: 'note' in f.types })));
    expect(all.map((r) => Number(r._offset)).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    for (const f of files)
      expect(f.types).toMatchObject({ _offset: 'BIGINT', sku: 'VARCHAR', qty: 'INTEGER', at: 'TIMESTAMP WITH TIME ZONE' });
    for (const r of all) {
      const n = Number(r._offset);
      expect(r.sku).toBe(`s${n}`);
      expect(Date.parse(String(r.at).replace(' ', 'T').replace(/\+00$/, 'Z'))).toBe(at(n));
      if (n <= 30) expect(r.hasNote).toBe(false);
      else expect(r.note ?? null).toBe((n - 31) % 2 === 0 ? `note ${n}` : null);
    }
    expect(files.some((f) => 'note' in f.types)).toBe(true);
    await broker.stop();
  });
});
