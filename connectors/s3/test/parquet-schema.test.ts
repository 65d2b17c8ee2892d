/**
 * Parquet from the station's schema: columns and types come from the schema (Avro, JSON Schema,
 * Protobuf), not from the values of the first batch; values in the Confluent wire format are decoded;
 * a newer version mid-stream gives the next file its columns. The files are read back by DuckDB (a
 * reader nobody here wrote): its view of the column types, and the values.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import avro from 'avsc';
import protobuf from 'protobufjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Sink, SinkMessage, SchemaVersionInfo, StationSchemaInfo } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { batch, dataKeys, getBytes, newBucket, s3Client, signal, sinkConfig, startS3rver, type S3rverProcess } from './helpers.js';

let server: S3rverProcess;
let client: S3Client;
let duck: DuckDBConnection;
let tmp: string;
const open: Sink[] = [];

beforeAll(async () => {
  server = await startS3rver();
  client = s3Client(server);
  duck = await (await DuckDBInstance.create(':memory:')).connect();
  await duck.run("SET TimeZone = 'UTC'");
  tmp = await mkdtemp(join(tmpdir(), 'junction-s3-schema-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  duck?.closeSync();
  client?.destroy();
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

async function sink(bucket: string, extra: Record<string, unknown> = {}): Promise<Sink> {
  const s = await plugin.open(
    plugin.config.parse(sinkConfig(server, bucket, { format: 'parquet', compression: 'zstd', ...extra })),
    fakeContext(),
  );
  open.push(s);
  return s;
}

/** Each data object of the bucket as DuckDB sees it: column types (DESCRIBE) and rows (as JSON). */
async function readBack(bucket: string): Promise<{ key: string; types: Record<string, string>; rows: Record<string, unknown>[] }[]> {
  const out = [];
  for (const key of await dataKeys(client, bucket)) {
    const file = join(tmp, `${bucket}-${out.length}.parquet`);
    await writeFile(file, await getBytes(client, bucket, key));
    const desc = (await duck.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).getRowObjectsJson() as {
      column_name: string;
      column_type: string;
    }[];
    const rows = (await duck.runAndReadAll(`SELECT * FROM read_parquet('${file}') ORDER BY _offset`)).getRowObjectsJson() as Record<
      string,
      unknown
    >[];
    out.push({ key, types: Object.fromEntries(desc.map((d) => [d.column_name, d.column_type])), rows });
  }
  return out;
}

function station(versions: SchemaVersionInfo[], bound = versions.length - 1): StationSchemaInfo {
  return { ...versions[bound]!, versions };
}

function wire(id: number, payload: Uint8Array, indexes?: number[]): Uint8Array<ArrayBuffer> {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return new Uint8Array(Buffer.concat([head, Buffer.from(indexes ?? []), Buffer.from(payload)]));
}

function msg(offset: number, value: Uint8Array<ArrayBuffer>): SinkMessage {
  return { offset, timestamp: 1_700_000_000_000 + offset, headers: { h: String(offset) }, value };
}

const AVRO_V1 = {
  type: 'record',
  name: 'Order',
  namespace: 'shop',
  fields: [
    { name: 'sku', type: 'string' },
    { name: 'qty', type: 'int' },
    { name: 'total', type: 'long' },
    { name: 'ratio', type: 'float' },
    { name: 'paid', type: 'boolean' },
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'day', type: { type: 'int', logicalType: 'date' } },
    { name: 'note', type: ['null', 'string'], default: null },
    { name: 'tags', type: { type: 'array', items: 'string' } },
    { name: 'attrs', type: { type: 'map', values: 'long' } },
    {
      name: 'addr',
      type: {
        type: 'record',
        name: 'Addr',
        fields: [
          { name: 'city', type: 'string' },
          { name: 'zip', type: ['null', 'int'], default: null },
        ],
      },
    },
    { name: 'state', type: { type: 'enum', name: 'State', symbols: ['NEW', 'PAID'] } },
    { name: 'blob', type: 'bytes' },
  ],
};
const AVRO_V2 = { ...AVRO_V1, fields: [...AVRO_V1.fields, { name: 'price', type: ['null', 'double'], default: null }] };
const v1: SchemaVersionInfo = {
  subject: 'orders-value',
  version: 1,
  id: 21,
  schemaType: 'AVRO',
  schema: JSON.stringify(AVRO_V1),
  references: [],
};
const v2: SchemaVersionInfo = {
  subject: 'orders-value',
  version: 2,
  id: 34,
  schemaType: 'AVRO',
  schema: JSON.stringify(AVRO_V2),
  references: [],
};

const order = (i: number) => ({
  sku: `sku-${i}`,
  qty: i,
  total: 10_000_000_000 + i,
  ratio: 0.5,
  paid: i % 2 === 0,
  at: Date.UTC(2025, 0, 2, 3, 4, 5, i),
  day: 20_000 + i,
  note: i === 1 ? null : `n${i}`,
  tags: ['a', `t${i}`],
  attrs: { k: i },
  addr: { city: 'Oslo', zip: i === 1 ? null : 100 + i },
  state: i % 2 === 0 ? 'PAID' : 'NEW',
  blob: Buffer.from([i, 255]),
});

describe('S3 Parquet with the station schema', () => {
  it('Avro: columns and Parquet logical types from the schema (UTC timestamps, DATE, LIST, MAP, STRUCT), values decoded from the wire format', async () => {
    const bucket = await newBucket(client, 'avro');
    const s = await sink(bucket);
    const T1 = avro.Type.forSchema(AVRO_V1 as avro.Schema);
    const b = {
      ...batch(
        'orders',
        0,
        [1, 2, 3].map((o) => msg(o, wire(21, T1.toBuffer(order(o))))),
      ),
      schema: station([v1]),
    };
    expect((await s.write(b, { signal })).map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);

    const [file] = await readBack(bucket);
    expect(file!.types).toEqual({
      _offset: 'BIGINT',
      _timestamp: 'TIMESTAMP',
      _key: 'VARCHAR',
      _headers: 'JSON',
      sku: 'VARCHAR',
      qty: 'INTEGER',
      total: 'BIGINT',
      ratio: 'FLOAT',
      paid: 'BOOLEAN',
      at: 'TIMESTAMP WITH TIME ZONE',
      day: 'DATE',
      note: 'VARCHAR',
      tags: 'VARCHAR[]',
      attrs: 'MAP(VARCHAR, BIGINT)',
      addr: 'STRUCT(city VARCHAR, zip INTEGER)',
      state: 'VARCHAR',
      blob: 'BLOB',
    });
    expect(file!.rows.map(({ _timestamp, _headers, _key, ...r }) => r)).toEqual(
      [1, 2, 3].map((i) => ({
        _offset: String(i),
        sku: `sku-${i}`,
        qty: i,
        total: String(10_000_000_000 + i),
        ratio: 0.5,
        paid: i % 2 === 0,
        at: `2025-01-02 03:04:05.00${i}+00`,
        day: `2024-10-${String(4 + i).padStart(2, '0')}`,
        note: i === 1 ? null : `n${i}`,
        tags: ['a', `t${i}`],
        attrs: [{ key: 'k', value: String(i) }],
        addr: { city: 'Oslo', zip: i === 1 ? null : 100 + i },
        state: i % 2 === 0 ? 'PAID' : 'NEW',
        blob: `\\x0${i}\\xFF`,
      })),
    );
  });

  it('columns come from the schema, not the first values; a version added mid-stream gives the next file its column; old-version values are read as the new one', async () => {
    const bucket = await newBucket(client, 'evolve');
    const s = await sink(bucket, { parquet: { fields: ['offset'] } });
    const T1 = avro.Type.forSchema(AVRO_V1 as avro.Schema);
    const T2 = avro.Type.forSchema(AVRO_V2 as avro.Schema);
    await s.write({ ...batch('orders', 0, [msg(1, wire(21, T1.toBuffer(order(1))))]), schema: station([v1]) }, { signal });
    // Version 2 bound: one value still written with version 1, one with version 2, one bare version-2 Avro.
    const r = await s.write(
      {
        ...batch('orders', 0, [
          msg(2, wire(21, T1.toBuffer(order(2)))),
          msg(3, wire(34, T2.toBuffer({ ...order(3), price: 9.25 }))),
          msg(4, new Uint8Array(T2.toBuffer({ ...order(4), price: 1.5 }))),
        ]),
        schema: station([v1, v2]),
      },
      { signal },
    );
    expect(r.map((x) => x.status)).toEqual(['ok', 'ok', 'ok']);
    const files = await readBack(bucket);
    expect(files.map((f) => 'price' in f.types)).toEqual([false, true]);
    expect(files[1]!.types.price).toBe('DOUBLE');
    expect(files[1]!.rows.map((x) => [x._offset, x.price])).toEqual([
      ['2', null],
      ['3', 9.25],
      ['4', 1.5],
    ]);
  });

  it('JSON Schema: typed columns even when the first values leave optional fields out; date-time as UTC timestamps', async () => {
    const bucket = await newBucket(client, 'json');
    const s = await sink(bucket, { parquet: { fields: ['offset'] } });
    const schema = {
      type: 'object',
      required: ['id'],
      properties: {
        id: { type: 'integer' },
        at: { type: 'string', format: 'date-time' },
        price: { type: 'number' },
        ok: { type: 'boolean' },
        who: { type: 'object', properties: { name: { type: 'string' } } },
        extra: {},
      },
    };
    const info = station([{ subject: 'j-value', version: 1, id: 5, schemaType: 'JSON', schema: JSON.stringify(schema), references: [] }]);
    const values = ['{"id":1}', '{"id":2,"at":"2025-06-01T12:00:00.5+02:00","price":2.5,"ok":true,"who":{"name":"x"},"extra":[1,{"a":2}]}'];
    const r = await s.write(
      {
        ...batch(
          'j',
          0,
          values.map((v, i) => msg(i + 1, new Uint8Array(Buffer.from(v)))),
        ),
        schema: info,
      },
      { signal },
    );
    expect(r.map((x) => x.status)).toEqual(['ok', 'ok']);
    const [file] = await readBack(bucket);
    expect(file!.types).toEqual({
      _offset: 'BIGINT',
      id: 'BIGINT',
      at: 'TIMESTAMP WITH TIME ZONE',
      price: 'DOUBLE',
      ok: 'BOOLEAN',
      who: 'STRUCT("name" VARCHAR)',
      extra: 'JSON',
    });
    expect(file!.rows).toEqual([
      { _offset: '1', id: '1', at: null, price: null, ok: null, who: null, extra: null },
      { _offset: '2', id: '2', at: '2025-06-01 10:00:00.5+00', price: 2.5, ok: true, who: { name: 'x' }, extra: '[1,{"a":2}]' },
    ]);
  });

  it('Protobuf in the wire format (with and without message indexes): int64, Timestamp, repeated, nested messages', async () => {
    const bucket = await newBucket(client, 'proto');
    const s = await sink(bucket, { parquet: { fields: ['offset'] } });
    const proto = `syntax = "proto3"; package shop; import "google/protobuf/timestamp.proto";
      message Order { string sku = 1; int64 big = 2; google.protobuf.Timestamp at = 3; repeated int32 n = 4; Addr addr = 5; }
      message Addr { string city = 1; }`;
    const info = station([{ subject: 'p-value', version: 1, id: 8, schemaType: 'PROTOBUF', schema: proto, references: [] }]);
    const root = protobuf.parse(proto, { keepCase: true }).root;
    root.addJSON(protobuf.common.get('google/protobuf/timestamp.proto')!.nested!);
    const T = root.lookupType('shop.Order');
    const enc = (i: number) =>
      T.encode(
        T.fromObject({
          sku: `s${i}`,
          big: 9_000_000_000 + i,
          at: { seconds: 1_750_000_000 + i, nanos: 7_000_000 },
          n: [i, i + 1],
          addr: { city: `c${i}` },
        }),
      ).finish();
    const r = await s.write({ ...batch('p', 0, [msg(1, wire(8, enc(1), [0])), msg(2, wire(8, enc(2)))]), schema: info }, { signal });
    expect(r.map((x) => x.status)).toEqual(['ok', 'ok']);
    const [file] = await readBack(bucket);
    expect(file!.types).toEqual({
      _offset: 'BIGINT',
      sku: 'VARCHAR',
      big: 'BIGINT',
      at: 'TIMESTAMP WITH TIME ZONE',
      n: 'INTEGER[]',
      addr: 'STRUCT(city VARCHAR)',
    });
    expect(file!.rows).toEqual(
      [1, 2].map((i) => ({
        _offset: String(i),
        sku: `s${i}`,
        big: String(9_000_000_000 + i),
        at: `2025-06-15 15:06:${String(40 + i)}.007+00`,
        n: [i, i + 1],
        addr: { city: `c${i}` },
      })),
    );
  });

  it('a value the schema cannot decode is dead-lettered, the rest written; parquet.columns infer keeps inferring', async () => {
    const bucket = await newBucket(client, 'bad');
    const s = await sink(bucket, { parquet: { fields: ['offset'] } });
    const T1 = avro.Type.forSchema(AVRO_V1 as avro.Schema);
    const r = await s.write(
      {
        ...batch('orders', 0, [msg(1, wire(21, T1.toBuffer(order(1)))), msg(2, new Uint8Array([0, 0, 0, 0, 99, 1]))]),
        schema: station([v1]),
      },
      { signal },
    );
    expect(r[0]!.status).toBe('ok');
    expect(r[1]).toMatchObject({ status: 'deadLetter', code: 'SINK_REJECTED' });
    expect((await readBack(bucket))[0]!.rows.map((x) => x._offset)).toEqual(['1']);

    const inferBucket = await newBucket(client, 'infer');
    const si = await sink(inferBucket, { parquet: { fields: ['offset'], columns: 'infer' } });
    const json = station([
      {
        subject: 'j-value',
        version: 1,
        id: 5,
        schemaType: 'JSON',
        schema: '{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}}}',
        references: [],
      },
    ]);
    await si.write({ ...batch('j', 0, [msg(1, new Uint8Array(Buffer.from('{"a":1}')))]), schema: json }, { signal });
    expect((await readBack(inferBucket))[0]!.types).toEqual({ _offset: 'BIGINT', a: 'BIGINT' });
  });
});
