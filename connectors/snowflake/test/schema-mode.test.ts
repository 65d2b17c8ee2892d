/**
 * Mode schema: the table made from the station's schema, evolved when a compatible version adds fields,
 * and drift that cannot be applied failing or dead-lettering. Read back through the real snowflake-sdk
 * (DESCRIBE TABLE and SELECT) from the fake, which keeps and checks the table's columns as Snowflake does.
 */
import avro from 'avsc';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sink, SchemaVersionInfo, StationSchemaInfo } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { FakeSnowflake } from '../../../test/fakes/snowflake/server.js';
import { batch, config, query, signal } from './helpers.js';

let fake: FakeSnowflake;
const sinks: Sink[] = [];
beforeEach(async () => {
  fake = await new FakeSnowflake().start();
});
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  await fake.close();
});

const V1 = {
  type: 'record',
  name: 'Order',
  fields: [
    { name: 'sku', type: 'string' },
    { name: 'qty', type: 'int' },
    { name: 'price', type: 'double' },
    { name: 'paid', type: 'boolean' },
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'day', type: { type: 'int', logicalType: 'date' } },
    { name: 'addr', type: { type: 'record', name: 'Addr', fields: [{ name: 'city', type: 'string' }] } },
    { name: 'tags', type: { type: 'array', items: 'string' } },
    { name: 'blob', type: 'bytes' },
  ],
};
const V2 = { ...V1, fields: [...V1.fields, { name: 'note', type: ['null', 'string'], default: null }] };
const V3 = { ...V1, fields: V1.fields.map((f) => (f.name === 'qty' ? { name: 'qty', type: 'string' } : f)) };
const ver = (version: number, id: number, schema: unknown): SchemaVersionInfo => ({
  subject: 'orders-value',
  version,
  id,
  schemaType: 'AVRO',
  schema: JSON.stringify(schema),
  references: [],
});
const v1 = ver(1, 11, V1);
const v2 = ver(2, 12, V2);
const v3 = ver(3, 13, V3);
const station = (bound: SchemaVersionInfo, versions: SchemaVersionInfo[]): StationSchemaInfo => ({ ...bound, versions });

function wire(id: number, payload: Buffer) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return new Uint8Array(Buffer.concat([head, payload]));
}
const order = (i: number) => ({
  sku: `s${i}`,
  qty: i,
  price: i + 0.5,
  paid: i % 2 === 0,
  at: Date.UTC(2025, 2, 3, 4, 5, 6, i),
  day: 20_100,
  addr: { city: 'Oslo' },
  tags: ['a'],
  blob: Buffer.from([i, 0xab]),
});
const msg = (offset: number, value: Uint8Array) => ({ offset, timestamp: 1_700_000_000_000 + offset, headers: {}, value });

async function sinkOf(schema: StationSchemaInfo | undefined, extra: Record<string, unknown> = {}): Promise<Sink> {
  const s = await plugin.open(
    plugin.config.parse(config(fake, { mode: 'schema', table: 'ORDERS', ...extra })) as never,
    fakeContext({ schema }),
  );
  sinks.push(s);
  return s;
}
const describeTable = async () => (await query(fake, 'DESCRIBE TABLE "DB"."PUBLIC"."ORDERS"')).map((r) => [r.name, r.type, r['null?']]);

describe('snowflake mode schema', () => {
  it('autoCreate makes the table from the schema (VARIANT for nested), values decoded from the wire format, replays write nothing twice', async () => {
    const s = await sinkOf(station(v1, [v1]));
    expect(await describeTable()).toEqual([
      ['SKU', 'VARCHAR(16777216)', 'Y'],
      ['QTY', 'NUMBER(38,0)', 'Y'],
      ['PRICE', 'FLOAT', 'Y'],
      ['PAID', 'BOOLEAN', 'Y'],
      ['AT', 'TIMESTAMP_TZ(9)', 'Y'],
      ['DAY', 'DATE', 'Y'],
      ['ADDR', 'VARIANT', 'Y'],
      ['TAGS', 'VARIANT', 'Y'],
      ['BLOB', 'BINARY(8388608)', 'Y'],
      ['_JUNCTION_STATION', 'VARCHAR(16777216)', 'N'],
      ['_JUNCTION_PARTITION', 'NUMBER(38,0)', 'N'],
      ['_JUNCTION_OFFSET', 'NUMBER(38,0)', 'N'],
      ['_JUNCTION_STATION_ID', 'VARCHAR(16777216)', 'Y'],
    ]);
    const T = avro.Type.forSchema(V1 as avro.Schema);
    const b = {
      ...batch(
        'orders',
        [1, 2].map((o) => msg(o, wire(11, T.toBuffer(order(o))))),
      ),
      schema: station(v1, [v1]),
    };
    expect((await s.write(b, { signal: signal() })).map((r) => r.status)).toEqual(['ok', 'ok']);
    expect((await s.write(b, { signal: signal() })).map((r) => r.status)).toEqual(['ok', 'ok']);
    const rows = await query(fake, 'SELECT * FROM "DB"."PUBLIC"."ORDERS" ORDER BY "_JUNCTION_OFFSET"');
    expect(rows).toHaveLength(2);
    expect(rows[1]).toMatchObject({
      SKU: 's2',
      QTY: 2,
      PRICE: 2.5,
      PAID: true,
      ADDR: { city: 'Oslo' },
      TAGS: ['a'],
      BLOB: '02AB',
      _JUNCTION_STATION: 'orders',
      _JUNCTION_PARTITION: 0,
      _JUNCTION_OFFSET: 2,
      _JUNCTION_STATION_ID: 'orders-id',
    });
    const at = rows[1]!.AT as { getEpochSeconds(): number; getNanoSeconds(): number };
    expect(at.getEpochSeconds() * 1000 + Math.round(at.getNanoSeconds() / 1e6)).toBe(Date.UTC(2025, 2, 3, 4, 5, 6, 2));
    const day = rows[1]!.DAY as { getEpochSeconds(): number };
    expect(day.getEpochSeconds()).toBe(20_100 * 86_400);
  });

  it('evolve: a version that adds a field adds its column; older rows keep NULL there; values of the old version still land', async () => {
    const s = await sinkOf(station(v1, [v1]));
    const T1 = avro.Type.forSchema(V1 as avro.Schema);
    const T2 = avro.Type.forSchema(V2 as avro.Schema);
    await s.write({ ...batch('orders', [msg(1, wire(11, T1.toBuffer(order(1))))]), schema: station(v1, [v1]) }, { signal: signal() });
    const r = await s.write(
      {
        ...batch('orders', [msg(2, wire(11, T1.toBuffer(order(2)))), msg(3, wire(12, T2.toBuffer({ ...order(3), note: 'hi' })))]),
        schema: station(v2, [v1, v2]),
      },
      { signal: signal() },
    );
    expect(r.map((x) => x.status)).toEqual(['ok', 'ok']);
    expect((await describeTable()).at(-1)).toEqual(['NOTE', 'VARCHAR(16777216)', 'Y']);
    expect(fake.statements.filter((x) => x.startsWith('ALTER TABLE'))).toEqual([
      'ALTER TABLE "DB"."PUBLIC"."ORDERS" ADD COLUMN IF NOT EXISTS "NOTE" VARCHAR',
    ]);
    const rows = await query(fake, 'SELECT "_JUNCTION_OFFSET", "NOTE" FROM "DB"."PUBLIC"."ORDERS" ORDER BY "_JUNCTION_OFFSET"');
    expect(rows).toEqual([
      { _JUNCTION_OFFSET: 1, NOTE: null },
      { _JUNCTION_OFFSET: 2, NOTE: null },
      { _JUNCTION_OFFSET: 3, NOTE: 'hi' },
    ]);
  });

  it('drift that cannot be applied: onDrift fail throws SCHEMA_DRIFT (not retryable); dead-letter dead-letters; evolve off refuses new columns', async () => {
    const T3 = avro.Type.forSchema(V3 as avro.Schema);
    const s = await sinkOf(station(v1, [v1]));
    const b3 = { ...batch('orders', [msg(1, wire(13, T3.toBuffer({ ...order(1), qty: 'one' })))]), schema: station(v3, [v1, v3]) };
    await expect(s.write(b3, { signal: signal() })).rejects.toMatchObject({
      code: 'SCHEMA_DRIFT',
      retryable: false,
      message: expect.stringContaining('column QTY is NUMBER(38,0) in the table but schema version 3 needs VARCHAR'),
    });

    const d = await sinkOf(station(v1, [v1]), { onDrift: 'dead-letter' });
    expect(await d.write(b3, { signal: signal() })).toEqual([expect.objectContaining({ status: 'deadLetter', code: 'SCHEMA_DRIFT' })]);

    const off = await sinkOf(station(v1, [v1]), { evolve: false, onDrift: 'dead-letter' });
    const T2 = avro.Type.forSchema(V2 as avro.Schema);
    const r = await off.write(
      { ...batch('orders', [msg(5, wire(12, T2.toBuffer({ ...order(5), note: 'x' })))]), schema: station(v2, [v1, v2]) },
      { signal: signal() },
    );
    expect(r).toEqual([
      expect.objectContaining({ status: 'deadLetter', code: 'SCHEMA_DRIFT', reason: expect.stringContaining('lacks column(s) NOTE') }),
    ]);
    expect((await describeTable()).map((c) => c[0])).not.toContain('NOTE');
    expect(Number((await query(fake, 'SELECT COUNT(*) FROM "DB"."PUBLIC"."ORDERS"'))[0]?.['COUNT(*)'])).toBe(0);
  });

  it('JSON Schema values (plain JSON); mode schema on a station without a schema is refused at open', async () => {
    const json: SchemaVersionInfo = {
      subject: 'j-value',
      version: 1,
      id: 3,
      schemaType: 'JSON',
      schema: JSON.stringify({
        type: 'object',
        properties: { id: { type: 'integer' }, at: { type: 'string', format: 'date-time' }, extra: { type: 'object' } },
        required: ['id'],
      }),
      references: [],
    };
    const s = await sinkOf(station(json, [json]));
    const enc = (v: unknown) => new Uint8Array(Buffer.from(JSON.stringify(v)));
    const r = await s.write(
      {
        ...batch('j', [msg(1, enc({ id: 1, at: '2025-01-01T00:00:00Z', extra: { a: [1] } })), msg(2, enc({ id: 2 })), msg(3, enc([1]))]),
        schema: station(json, [json]),
      },
      { signal: signal() },
    );
    expect(r.map((x) => x.status)).toEqual(['ok', 'ok', 'deadLetter']);
    expect((await describeTable()).slice(0, 3)).toEqual([
      ['ID', 'NUMBER(38,0)', 'Y'],
      ['AT', 'TIMESTAMP_TZ(9)', 'Y'],
      ['EXTRA', 'VARIANT', 'Y'],
    ]);
    expect(await query(fake, 'SELECT "ID", "EXTRA" FROM "DB"."PUBLIC"."ORDERS" ORDER BY "ID"')).toEqual([
      { ID: 1, EXTRA: { a: [1] } },
      { ID: 2, EXTRA: null },
    ]);

    await expect(sinkOf(undefined)).rejects.toMatchObject({ code: 'CONFIG_INVALID', retryable: false });
  });
});
