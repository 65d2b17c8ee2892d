/**
 * Layout schema against the real PostgreSQL: the table created from an Avro and from a JSON Schema
 * subject (types as PostgreSQL's catalog shows them, nested values as jsonb), evolved when a compatible
 * new version adds fields, drift that cannot be applied failing the task or dead-lettering (and a replay
 * dead-lettering the same offsets again), exactly once kept.
 */
import avro from 'avsc';
import { afterAll, describe, expect, it } from 'vitest';
import { holdExclusive } from '@junction/e2e/exclusive';
import { isJunctionError, type Sink, type SchemaVersionInfo, type StationSchemaInfo, type SinkBatch } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { admin, PG, unique } from './helpers.js';

// The machine's PostgreSQL is shared: files that use it take turns (vitest.config.ts, EXCLUSIVE).
await holdExclusive('postgres');

const db = await admin();
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
  await db.end();
});
const signal = new AbortController().signal;

const AVRO_V1 = {
  type: 'record',
  name: 'Order',
  fields: [
    { name: 'sku', type: 'string' },
    { name: 'qty', type: 'long' },
    { name: 'n', type: 'int' },
    { name: 'price', type: 'double' },
    { name: 'paid', type: 'boolean' },
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'day', type: { type: 'int', logicalType: 'date' } },
    { name: 'addr', type: { type: 'record', name: 'Addr', fields: [{ name: 'city', type: 'string' }] } },
    { name: 'tags', type: { type: 'array', items: 'string' } },
    { name: 'blob', type: 'bytes' },
    { name: 'status', type: { type: 'enum', name: 'Status', symbols: ['NEW', 'PAID'] } },
  ],
};
const AVRO_V2 = { ...AVRO_V1, fields: [...AVRO_V1.fields, { name: 'note', type: ['null', 'string'], default: null }] };
const AVRO_V3 = { ...AVRO_V1, fields: AVRO_V1.fields.map((f) => (f.name === 'qty' ? { name: 'qty', type: 'string' } : f)) };
const ver = (subject: string, version: number, id: number, schemaType: 'AVRO' | 'JSON', schema: unknown): SchemaVersionInfo => ({
  subject,
  version,
  id,
  schemaType,
  schema: JSON.stringify(schema),
  references: [],
});
const station = (bound: SchemaVersionInfo, versions: SchemaVersionInfo[]): StationSchemaInfo => ({ ...bound, versions });
const a1 = ver('orders-value', 1, 101, 'AVRO', AVRO_V1);
const a2 = ver('orders-value', 2, 102, 'AVRO', AVRO_V2);
const a3 = ver('orders-value', 3, 103, 'AVRO', AVRO_V3);

const order = (i: number) => ({
  sku: `s${i}`,
  qty: i * 1000,
  n: i,
  price: i + 0.5,
  paid: i % 2 === 0,
  at: Date.UTC(2025, 2, 3, 4, 5, 6, i),
  day: 20_100,
  addr: { city: 'Oslo\tN' },
  tags: ['a', `t${i}`],
  blob: Buffer.from([i, 0xab, 0x5c]),
  status: i % 2 ? 'NEW' : 'PAID',
});
function wire(id: number, payload: Buffer): Uint8Array<ArrayBuffer> {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return new Uint8Array(Buffer.concat([head, payload]));
}
const msg = (offset: number, value: Uint8Array<ArrayBuffer>, key?: string) => ({
  offset,
  timestamp: 1_700_000_000_000 + offset,
  headers: {},
  value,
  ...(key === undefined ? {} : { key }),
});
function batchOf(messages: ReturnType<typeof msg>[], schema?: StationSchemaInfo): SinkBatch {
  return {
    station: 'orders',
    stationId: 'orders-id',
    partition: 0,
    firstOffset: messages[0]!.offset,
    lastOffset: messages.at(-1)!.offset,
    messages,
    ...(schema && { schema }),
  };
}

async function open(schema: StationSchemaInfo | undefined, config: Record<string, unknown>, connector = unique('conn')): Promise<Sink> {
  const table = config.table as string;
  cleanup.push(() => db.query(`DROP TABLE IF EXISTS public."${table}"`));
  cleanup.push(() => db.query(`DELETE FROM junction_sink_offsets WHERE connector = $1`, [connector]));
  cleanup.push(() => db.query(`DELETE FROM junction_sink_dead_letters WHERE connector = $1`, [connector]));
  const sink = await plugin.open(
    plugin.config.parse({ ...PG, layout: 'schema', ...config }),
    fakeContext({ connector, ...(schema && { schema }) }),
  );
  cleanup.push(() => sink.close());
  return sink;
}

async function columns(table: string): Promise<Record<string, string>> {
  const r = await db.query<{ name: string; type: string }>(
    `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [`public."${table}"`],
  );
  return Object.fromEntries(r.rows.map((c) => [c.name, c.type]));
}

describe('postgres sink, layout schema', () => {
  it('creates the table from an Avro subject and writes decoded values (COPY and INSERT alike), each offset once', async () => {
    const type = avro.Type.forSchema(AVRO_V1 as avro.Schema);
    for (const copyMinRows of [1, 100_000]) {
      const table = unique('avro');
      const sink = await open(station(a1, [a1]), { table, copyMinRows });
      expect(await columns(table)).toEqual({
        sku: 'text',
        qty: 'bigint',
        n: 'integer',
        price: 'double precision',
        paid: 'boolean',
        at: 'timestamp with time zone',
        day: 'date',
        addr: 'jsonb',
        tags: 'jsonb',
        blob: 'bytea',
        status: 'text',
        _junction_key: 'text',
        _junction_station: 'text',
        _junction_station_id: 'text',
        _junction_partition: 'integer',
        _junction_offset: 'bigint',
        _junction_timestamp: 'timestamp with time zone',
      });
      // A plain Avro value and one in the Confluent wire format.
      const b = batchOf([msg(1, new Uint8Array(type.toBuffer(order(1))), 'k1'), msg(2, wire(a1.id, type.toBuffer(order(2))))]);
      expect((await sink.write(b, { signal })).map((r) => r.status)).toEqual(['ok', 'ok']);
      expect((await sink.write(b, { signal })).map((r) => r.status)).toEqual(['ok', 'ok']); // a replay writes nothing twice
      const rows = (await db.query(`SELECT * FROM public."${table}" ORDER BY _junction_offset`)).rows;
      expect(rows).toEqual(
        [1, 2].map((i) => ({
          sku: `s${i}`,
          qty: String(i * 1000),
          n: i,
          price: i + 0.5,
          paid: i % 2 === 0,
          at: new Date(Date.UTC(2025, 2, 3, 4, 5, 6, i)),
          day: expect.any(Date),
          addr: { city: 'Oslo\tN' },
          tags: ['a', `t${i}`],
          blob: Buffer.from([i, 0xab, 0x5c]),
          status: i % 2 ? 'NEW' : 'PAID',
          _junction_key: i === 1 ? 'k1' : null,
          _junction_station: 'orders',
          _junction_station_id: 'orders-id',
          _junction_partition: 0,
          _junction_offset: String(i),
          _junction_timestamp: new Date(1_700_000_000_000 + i),
        })),
      );
      expect((await db.query(`SELECT day::text AS d FROM public."${table}" LIMIT 1`)).rows[0].d).toBe('2025-01-12'); // day 20100 since the epoch
    }
  });

  it('creates the table from a JSON Schema subject; a value that does not decode is dead-lettered, upsert by a field', async () => {
    const js = ver('events-value', 1, 201, 'JSON', {
      type: 'object',
      properties: {
        id: { type: 'string' },
        count: { type: 'integer' },
        ratio: { type: 'number' },
        ok: { type: 'boolean' },
        at: { type: 'string', format: 'date-time' },
        meta: { type: 'object', properties: { a: { type: 'integer' } } },
      },
      required: ['id'],
    });
    const table = unique('json');
    const sink = await open(station(js, [js]), { table, mode: 'upsert', upsertBy: { field: 'id' }, poolSize: 1 }); // one connection: the start follows the schema on it
    const cols = await columns(table);
    expect(cols).toMatchObject({
      row_key: 'text',
      id: 'text',
      count: 'bigint',
      ratio: 'double precision',
      ok: 'boolean',
      at: 'timestamp with time zone',
      meta: 'jsonb',
    });
    const enc = (v: unknown) => new Uint8Array(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));
    const b = batchOf([
      msg(1, enc({ id: 'a', count: 1, ratio: 0.5, ok: true, at: '2025-03-03T04:05:06.007Z', meta: { a: 1 } })),
      msg(2, enc('not json')),
      msg(3, enc({ id: 'b', count: 2 })),
      msg(4, enc({ id: 'a', count: 3, meta: { a: 2 } })),
    ]);
    expect((await sink.write(b, { signal })).map((r) => r.status)).toEqual(['ok', 'deadLetter', 'ok', 'ok']);
    const rows = (await db.query(`SELECT row_key, id, count, ratio, ok, at, meta FROM public."${table}" ORDER BY row_key`)).rows;
    expect(rows).toEqual([
      { row_key: 'a', id: 'a', count: '3', ratio: null, ok: null, at: null, meta: { a: 2 } },
      { row_key: 'b', id: 'b', count: '2', ratio: null, ok: null, at: null, meta: null },
    ]);
  });

  it('evolves the table when a compatible new version adds a field (ALTER TABLE ADD COLUMN), and writes both versions', async () => {
    const table = unique('evolve');
    const t1 = avro.Type.forSchema(AVRO_V1 as avro.Schema);
    const t2 = avro.Type.forSchema(AVRO_V2 as avro.Schema);
    const sink = await open(station(a1, [a1]), { table });
    expect((await sink.write(batchOf([msg(1, wire(a1.id, t1.toBuffer(order(1))))]), { signal })).map((r) => r.status)).toEqual(['ok']);
    expect(await columns(table)).not.toHaveProperty('note');
    // The binding moved to version 2: the batch carries it.
    const s2 = station(a2, [a1, a2]);
    const b = batchOf([msg(2, wire(a2.id, t2.toBuffer({ ...order(2), note: 'second' }))), msg(3, wire(a1.id, t1.toBuffer(order(3))))], s2);
    expect((await sink.write(b, { signal })).map((r) => r.status)).toEqual(['ok', 'ok']);
    expect((await columns(table)).note).toBe('text');
    expect((await db.query(`SELECT _junction_offset AS o, note FROM public."${table}" ORDER BY 1`)).rows).toEqual([
      { o: '1', note: null },
      { o: '2', note: 'second' },
      { o: '3', note: null },
    ]);

    // evolve off: the same new version is drift.
    const t3 = unique('noevolve');
    const frozen = await open(station(a1, [a1]), { table: t3, evolve: false });
    const err = await frozen.write(batchOf([msg(1, wire(a2.id, t2.toBuffer({ ...order(1), note: 'x' })))], s2), { signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isJunctionError(err) && err.code).toBe('SCHEMA_DRIFT');
    expect((err as Error).message).toMatch(/lacks column\(s\) note .* evolve is off/);
  });

  it('drift that cannot be applied: fails the task (onDrift fail, at open too) or dead-letters the batches, again on replay (onDrift dead-letter)', async () => {
    const t1 = avro.Type.forSchema(AVRO_V1 as avro.Schema);
    const table = unique('drift');
    const first = await open(station(a1, [a1]), { table });
    expect((await first.write(batchOf([msg(1, wire(a1.id, t1.toBuffer(order(1))))]), { signal })).map((r) => r.status)).toEqual(['ok']);

    // Version 3 turns qty into a string: the bigint column cannot take it.
    const s3 = station(a3, [a1, a3]);
    const opened = await plugin
      .open(plugin.config.parse({ ...PG, layout: 'schema', table }), fakeContext({ connector: unique('conn'), schema: s3 }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isJunctionError(opened) && opened.code).toBe('SCHEMA_DRIFT');
    expect((opened as Error).message).toContain('column qty is bigint in the table but schema version 3 needs text');

    const t3 = avro.Type.forSchema(AVRO_V3 as avro.Schema);
    const b = batchOf(
      [msg(2, wire(a3.id, t3.toBuffer({ ...order(2), qty: 'many' }))), msg(3, wire(a3.id, t3.toBuffer({ ...order(3), qty: 'few' })))],
      s3,
    );
    const failing = await first.write(b, { signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isJunctionError(failing) && failing.code).toBe('SCHEMA_DRIFT');

    const connector = unique('conn');
    const dl = await open(station(a1, [a1]), { table, onDrift: 'dead-letter' }, connector);
    const answers = await dl.write(b, { signal });
    expect(answers).toEqual(
      [2, 3].map(() => ({ status: 'deadLetter', code: 'SCHEMA_DRIFT', reason: expect.stringContaining('column qty is bigint') })),
    );
    // Recorded with the offsets: a replay dead-letters the same messages again, even once the table could follow.
    await db.query(`ALTER TABLE public."${table}" ALTER COLUMN qty TYPE text`);
    expect((await dl.write(b, { signal })).map((r) => r.status)).toEqual(['deadLetter', 'deadLetter']);
    expect((await db.query(`SELECT count(*)::int AS n FROM public."${table}"`)).rows[0].n).toBe(1);
    // The table fixed by hand is taken up by the next batch.
    const next = batchOf([msg(4, wire(a3.id, t3.toBuffer({ ...order(4), qty: 'four' })))], s3);
    expect((await dl.write(next, { signal })).map((r) => r.status)).toEqual(['ok']);
    expect((await db.query(`SELECT qty FROM public."${table}" WHERE _junction_offset = 4`)).rows).toEqual([{ qty: 'four' }]);
  });

  it('a station without a schema cannot use layout schema (CONFIG_INVALID at layout)', async () => {
    const err = await plugin
      .open(plugin.config.parse({ ...PG, layout: 'schema', table: unique('none') }), fakeContext({ connector: unique('conn') }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isJunctionError(err) && err.code).toBe('CONFIG_INVALID');
    expect((err as { issues?: { path: string }[] }).issues?.[0]?.path).toBe('layout');
  });
});
