/**
 * Mode schema: the table made from the station's schema (nested values as JSON TEXT), evolved when a
 * compatible version adds fields, drift that cannot be applied failing or dead-lettering. Read back
 * through the real firebolt-sdk (information_schema.columns and SELECT) from the fake, which keeps and
 * checks the table's columns as Firebolt does.
 */
import avro from 'avsc';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Sink, SchemaVersionInfo, StationSchemaInfo } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { FakeFirebolt } from '../../../test/fakes/firebolt/server.js';
import { batch, config, query, signal } from './helpers.js';

let fake: FakeFirebolt;
const sinks: Sink[] = [];
beforeEach(async () => {
  fake = await new FakeFirebolt().start();
  vi.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  await fake.close();
  vi.restoreAllMocks();
});

const V1 = {
  type: 'record',
  name: 'Order',
  fields: [
    { name: 'sku', type: 'string' },
    { name: 'qty', type: 'int' },
    { name: 'total', type: 'long' },
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
  sku: `s'${i}`,
  qty: i,
  total: 10_000_000_000 + i,
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
    plugin.config.parse(config(fake, { mode: 'schema', table: 'orders', ...extra })) as never,
    fakeContext({ schema }),
  );
  sinks.push(s);
  return s;
}
const columns = async () =>
  (await query(fake, "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'orders'")).map((r) => [
    r.column_name,
    r.data_type,
    r.is_nullable,
  ]);

describe('firebolt mode schema', () => {
  it('autoCreate makes the table from the schema (nested as JSON TEXT), values decoded from the wire format, replays write nothing twice', async () => {
    const s = await sinkOf(station(v1, [v1]));
    expect(await columns()).toEqual([
      ['sku', 'text', 'YES'],
      ['qty', 'integer', 'YES'],
      ['total', 'bigint', 'YES'],
      ['price', 'double precision', 'YES'],
      ['paid', 'boolean', 'YES'],
      ['at', 'timestamptz', 'YES'],
      ['day', 'date', 'YES'],
      ['addr', 'text', 'YES'],
      ['tags', 'text', 'YES'],
      ['blob', 'bytea', 'YES'],
      ['_junction_station', 'text', 'NO'],
      ['_junction_partition', 'integer', 'NO'],
      ['_junction_offset', 'bigint', 'NO'],
      ['_junction_station_id', 'text', 'YES'],
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
    const rows = await query(fake, 'SELECT * FROM "orders" ORDER BY "_junction_offset"');
    expect(rows).toHaveLength(2);
    expect(rows[1]).toMatchObject({
      sku: "s'2",
      qty: 2,
      total: 10_000_000_002,
      price: 2.5,
      paid: true,
      addr: '{"city":"Oslo"}',
      tags: '["a"]',
      _junction_station: 'orders',
      _junction_offset: 2,
      _junction_station_id: 'orders-id',
    });
    expect((rows[1]!.at as Date).getTime()).toBe(Date.UTC(2025, 2, 3, 4, 5, 6, 2));
    expect((rows[1]!.day as Date).toISOString()).toBe('2025-01-12T00:00:00.000Z');
    expect([...(rows[1]!.blob as Buffer)]).toEqual([2, 0xab]);
    expect(fake.statements.find((x) => x.startsWith('INSERT'))).toContain("'\\x02ab'");
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
    expect((await columns()).at(-1)).toEqual(['note', 'text', 'YES']);
    expect(fake.statements.filter((x) => x.startsWith('ALTER TABLE'))).toEqual([
      'ALTER TABLE "orders" ADD COLUMN IF NOT EXISTS "note" TEXT NULL',
    ]);
    const rows = await query(fake, 'SELECT "_junction_offset", "note" FROM "orders" ORDER BY "_junction_offset"');
    expect(rows).toEqual([
      { _junction_offset: 1, note: null },
      { _junction_offset: 2, note: null },
      { _junction_offset: 3, note: 'hi' },
    ]);
  });

  it('drift that cannot be applied: onDrift fail throws SCHEMA_DRIFT (not retryable); dead-letter dead-letters; evolve off refuses new columns; no schema refused at open', async () => {
    const T3 = avro.Type.forSchema(V3 as avro.Schema);
    const s = await sinkOf(station(v1, [v1]));
    const b3 = { ...batch('orders', [msg(1, wire(13, T3.toBuffer({ ...order(1), qty: 'one' })))]), schema: station(v3, [v1, v3]) };
    await expect(s.write(b3, { signal: signal() })).rejects.toMatchObject({
      code: 'SCHEMA_DRIFT',
      retryable: false,
      message: expect.stringContaining('column qty is INTEGER in the table but schema version 3 needs TEXT'),
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
      expect.objectContaining({ status: 'deadLetter', code: 'SCHEMA_DRIFT', reason: expect.stringContaining('lacks column(s) note') }),
    ]);
    expect(Number((await query(fake, 'SELECT COUNT(*) FROM "orders"'))[0]?.['COUNT(*)'])).toBe(0);
    await expect(sinkOf(undefined)).rejects.toMatchObject({ code: 'CONFIG_INVALID', retryable: false });
  });
});
