/**
 * Mode schema: the table created from the station's schema (records as RECORD, arrays REPEATED, maps as
 * REPEATED RECORD {key, value}), evolved by tables.patch when a compatible version adds fields (at the
 * top and inside a RECORD), and drift that cannot be applied failing or dead-lettering. Read back through
 * the real @google-cloud/bigquery (table metadata and queries) from the fake, which keeps and checks
 * table schemas as BigQuery does.
 */
import avro from 'avsc';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sink, SchemaVersionInfo, StationSchemaInfo } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { FakeBigQuery } from '../../../test/fakes/bigquery/server.js';
import { batch, client, config, query, signal, TOKEN } from './helpers.js';

let fake: FakeBigQuery;
const sinks: Sink[] = [];
beforeEach(async () => {
  fake = await new FakeBigQuery({ token: TOKEN }).start();
  fake.createDataset('test-proj', 'ds');
});
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  await fake.close();
});

const ADDR_V1 = { type: 'record', name: 'Addr', fields: [{ name: 'city', type: 'string' }] };
const ADDR_V2 = { ...ADDR_V1, fields: [...ADDR_V1.fields, { name: 'zip', type: ['null', 'string'], default: null }] };
const base = (addr: unknown) => ({
  type: 'record',
  name: 'Order',
  fields: [
    { name: 'sku', type: 'string' },
    { name: 'qty', type: 'long' },
    { name: 'price', type: 'double' },
    { name: 'paid', type: 'boolean' },
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'day', type: { type: 'int', logicalType: 'date' } },
    { name: 'addr', type: addr },
    { name: 'tags', type: { type: 'array', items: 'string' } },
    { name: 'attrs', type: { type: 'map', values: 'long' } },
    { name: 'blob', type: 'bytes' },
  ],
});
const V1 = base(ADDR_V1);
const V2 = { ...base(ADDR_V2), fields: [...base(ADDR_V2).fields, { name: 'note', type: ['null', 'string'], default: null }] };
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
  tags: ['a', `t${i}`],
  attrs: { k: i },
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
type F = { name: string; type: string; mode: string; fields?: F[] };
const shape = (fs: F[]): unknown[] => fs.map((f) => (f.fields ? [f.name, f.type, f.mode, shape(f.fields)] : [f.name, f.type, f.mode]));
async function tableSchema(): Promise<unknown[]> {
  const [meta] = (await client(fake).dataset('ds').table('orders').getMetadata()) as unknown as [{ schema: { fields: F[] } }];
  return shape(meta.schema.fields);
}

describe('bigquery mode schema', () => {
  it('autoCreate makes the table from the schema (RECORD, REPEATED, map as REPEATED RECORD); rows read back through the SDK; replays add nothing', async () => {
    const s = await sinkOf(station(v1, [v1]));
    expect(await tableSchema()).toEqual([
      ['sku', 'STRING', 'NULLABLE'],
      ['qty', 'INTEGER', 'NULLABLE'],
      ['price', 'FLOAT', 'NULLABLE'],
      ['paid', 'BOOLEAN', 'NULLABLE'],
      ['at', 'TIMESTAMP', 'NULLABLE'],
      ['day', 'DATE', 'NULLABLE'],
      ['addr', 'RECORD', 'NULLABLE', [['city', 'STRING', 'NULLABLE']]],
      ['tags', 'STRING', 'REPEATED'],
      [
        'attrs',
        'RECORD',
        'REPEATED',
        [
          ['key', 'STRING', 'NULLABLE'],
          ['value', 'INTEGER', 'NULLABLE'],
        ],
      ],
      ['blob', 'BYTES', 'NULLABLE'],
      ['_junction_station', 'STRING', 'REQUIRED'],
      ['_junction_partition', 'INTEGER', 'REQUIRED'],
      ['_junction_offset', 'INTEGER', 'REQUIRED'],
      ['_junction_station_id', 'STRING', 'NULLABLE'],
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
    const rows = await query(fake, 'SELECT * FROM `test-proj.ds.orders` ORDER BY `_junction_offset`');
    expect(rows).toHaveLength(2);
    const r = rows[1]!;
    expect(r).toMatchObject({
      sku: 's2',
      qty: 2,
      price: 2.5,
      paid: true,
      addr: { city: 'Oslo' },
      tags: ['a', 't2'],
      attrs: [{ key: 'k', value: 2 }],
      _junction_station: 'orders',
      _junction_offset: 2,
      _junction_station_id: 'orders-id',
    });
    expect((r.at as { value: string }).value).toBe(new Date(Date.UTC(2025, 2, 3, 4, 5, 6, 2)).toISOString());
    expect((r.day as { value: string }).value).toBe('2025-01-12');
    expect([...(r.blob as Buffer)]).toEqual([2, 0xab]);
  });

  it('evolve: fields a version adds (top level and inside a RECORD) are patched in; old rows have NULL there; old-version values still land', async () => {
    const s = await sinkOf(station(v1, [v1]));
    const T1 = avro.Type.forSchema(V1 as avro.Schema);
    const T2 = avro.Type.forSchema(V2 as avro.Schema);
    await s.write({ ...batch('orders', [msg(1, wire(11, T1.toBuffer(order(1))))]), schema: station(v1, [v1]) }, { signal: signal() });
    const res = await s.write(
      {
        ...batch('orders', [
          msg(2, wire(11, T1.toBuffer(order(2)))),
          msg(3, wire(12, T2.toBuffer({ ...order(3), addr: { city: 'Rome', zip: '00100' }, note: 'hi' }))),
        ]),
        schema: station(v2, [v1, v2]),
      },
      { signal: signal() },
    );
    expect(res.map((x) => x.status)).toEqual(['ok', 'ok']);
    const schema = await tableSchema();
    expect(schema).toContainEqual([
      'addr',
      'RECORD',
      'NULLABLE',
      [
        ['city', 'STRING', 'NULLABLE'],
        ['zip', 'STRING', 'NULLABLE'],
      ],
    ]);
    expect(schema.at(-1)).toEqual(['note', 'STRING', 'NULLABLE']);
    const rows = await query(fake, 'SELECT `_junction_offset`, `note`, `addr` FROM `test-proj.ds.orders` ORDER BY `_junction_offset`');
    expect(rows).toEqual([
      { _junction_offset: 1, note: null, addr: { city: 'Oslo', zip: null } },
      { _junction_offset: 2, note: null, addr: { city: 'Oslo', zip: null } },
      { _junction_offset: 3, note: 'hi', addr: { city: 'Rome', zip: '00100' } },
    ]);
  });

  it('drift that cannot be applied: fail throws SCHEMA_DRIFT (not retryable), dead-letter dead-letters, evolve off refuses new fields; the fake refuses a type change as BigQuery does', async () => {
    const T3 = avro.Type.forSchema(V3 as avro.Schema);
    const s = await sinkOf(station(v1, [v1]));
    const b3 = { ...batch('orders', [msg(1, wire(13, T3.toBuffer({ ...order(1), qty: 'one' })))]), schema: station(v3, [v1, v3]) };
    await expect(s.write(b3, { signal: signal() })).rejects.toMatchObject({
      code: 'SCHEMA_DRIFT',
      retryable: false,
      message: expect.stringContaining('column qty is INT64 in the table but the schema needs STRING'),
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
      expect.objectContaining({ status: 'deadLetter', code: 'SCHEMA_DRIFT', reason: expect.stringContaining('addr.zip, note') }),
    ]);

    // What the sink avoids, the service refuses: a patch that changes a column's type.
    const table = client(fake).dataset('ds').table('orders');
    const [meta] = (await table.getMetadata()) as unknown as [{ schema: { fields: F[] } }];
    const changed = meta.schema.fields.map((f) => (f.name === 'qty' ? { ...f, type: 'STRING' } : f));
    await expect(table.setMetadata({ schema: { fields: changed } })).rejects.toThrow(/Field qty has changed type from INTEGER to STRING/);
    expect(Number((await query(fake, 'SELECT COUNT(*) FROM `test-proj.ds.orders`'))[0]?.f0_)).toBe(0);
  });

  it('JSON Schema values (plain JSON) with an untyped field as JSON; mode schema on a station without a schema is refused at open', async () => {
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
    expect((await tableSchema()).slice(0, 3)).toEqual([
      ['id', 'INTEGER', 'NULLABLE'],
      ['at', 'TIMESTAMP', 'NULLABLE'],
      ['extra', 'JSON', 'NULLABLE'],
    ]);
    const rows = await query(fake, 'SELECT `id`, `extra` FROM `test-proj.ds.orders` ORDER BY `id`');
    expect(rows.map((x) => [x.id, x.extra === null ? null : JSON.parse(String(x.extra))])).toEqual([
      [1, { a: [1] }],
      [2, null],
    ]);
    await expect(sinkOf(undefined)).rejects.toMatchObject({ code: 'CONFIG_INVALID', retryable: false });
  });
});
