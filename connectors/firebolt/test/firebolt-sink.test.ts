/** The Firebolt sink's behaviour on the local fake, read back with queries through the real firebolt-sdk. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isRetryable, type Sink } from '@junction/sdk-connector';
import { FakeFirebolt } from '../../../test/fakes/firebolt/server.js';
import { batch, config, msg, open, query, range, signal } from './helpers.js';

let fake: FakeFirebolt;
const sinks: Sink[] = [];
beforeEach(async () => {
  fake = await new FakeFirebolt().start();
  // The SDK warns on the console when it renews an expired token.
  vi.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  await fake.close();
  vi.restoreAllMocks();
});
async function sinkOf(extra: Record<string, unknown> = {}): Promise<Sink> {
  const s = await open(config(fake, extra));
  sinks.push(s);
  return s;
}
const count = async (table = 'events') => Number((await query(fake, `SELECT COUNT(*) FROM "${table}"`))[0]?.['COUNT(*)']);
const offsets = async (table = 'events', col = 'offset') =>
  (await query(fake, `SELECT "${col}" FROM "${table}" ORDER BY "${col}"`)).map((r) => Number(r[col]));
const inserts = () => fake.statements.filter((s) => s.startsWith('INSERT')).length;

const COLUMNS = {
  mode: 'columns',
  table: 'orders',
  columns: [
    { name: 'id', type: 'BIGINT', required: true },
    { name: 'amount', type: 'DOUBLE PRECISION' },
    { name: 'paid', type: 'BOOLEAN' },
    { name: 'at', type: 'TIMESTAMP' },
    { name: 'customer', type: 'TEXT', field: 'who' },
    { name: 'tags', type: 'TEXT' },
  ],
};

describe('firebolt sink', () => {
  it('writes N messages as exactly N rows, values and types right, in few multi-row INSERTs', async () => {
    const s = await sinkOf({ maxRowsPerStatement: 500 });
    const N = 1200;
    const results = await s.write(
      batch(
        'orders',
        range(1, N).map((o) => msg(o, { n: o, nested: { ok: true }, q: "it's a \\ backslash" }, o % 2 ? { key: `k${o}` } : {})),
      ),
      { signal: signal() },
    );
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(await count()).toBe(N);
    expect(await offsets()).toEqual(range(1, N));
    expect(inserts()).toBe(3); // 500 rows a statement, never one per row
    const [row] = await query(fake, 'SELECT * FROM "events" WHERE "offset" = 7');
    expect(row).toMatchObject({ station: 'orders', partition: 0, offset: 7, key: 'k7', timestamp: new Date(1_700_000_000_007) });
    expect(JSON.parse(String(row?.headers))).toEqual({ h: '7' });
    expect(JSON.parse(String(row?.value))).toEqual({ n: 7, nested: { ok: true }, q: "it's a \\ backslash" });
    expect((await query(fake, 'SELECT "key" FROM "events" WHERE "offset" = 8'))[0]?.key).toBeNull();
  });

  it('maps first-level JSON fields to typed columns (mode columns)', async () => {
    const s = await sinkOf(COLUMNS);
    const results = await s.write(
      batch('orders', [
        msg(1, { id: 1, amount: 9.5, paid: true, at: '2024-01-02 03:04:05', who: 'ada', tags: ['a', 'b'], extra: 'ignored' }),
        msg(2, { id: 2 }),
      ]),
      { signal: signal() },
    );
    expect(results).toEqual([{ status: 'ok' }, { status: 'ok' }]);
    const rows = await query(fake, 'SELECT * FROM "orders" ORDER BY "id"');
    expect(rows[0]).toMatchObject({
      id: 1,
      amount: 9.5,
      paid: true,
      at: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
      customer: 'ada',
      tags: '["a","b"]',
      _junction_station: 'orders',
      _junction_partition: 0,
      _junction_offset: 1,
    });
    expect(rows[1]).toMatchObject({ id: 2, amount: null, paid: null, customer: null });
    expect(fake.db.table('orders')?.columns.map((c) => `${c.name}:${c.type}${c.notNull ? '!' : ''}`)).toEqual([
      'id:BIGINT!',
      'amount:DOUBLE PRECISION',
      'paid:BOOLEAN',
      'at:TIMESTAMP',
      'customer:TEXT',
      'tags:TEXT',
      '_junction_station:TEXT!',
      '_junction_partition:INTEGER!',
      '_junction_offset:BIGINT!',
      '_junction_station_id:TEXT',
    ]);
  });

  it("dead-letters a schema-mismatched message with Firebolt's reason, writes the rest in the same batch", async () => {
    const s = await sinkOf(COLUMNS);
    const results = await s.write(
      batch('orders', [
        msg(1, { id: 1 }),
        msg(2, { id: 'two' }),
        msg(3, { id: 3, paid: 'maybe' }),
        msg(4, { amount: 1 }),
        msg(5, 'not json'),
        msg(6, { id: 6 }),
      ]),
      { signal: signal() },
    );
    expect(results.map((r) => r.status)).toEqual(['ok', 'deadLetter', 'deadLetter', 'deadLetter', 'deadLetter', 'ok']);
    expect(results[1]).toMatchObject({
      code: 'SINK_REJECTED',
      reason: expect.stringContaining("Unable to cast text 'two' to integer (column 'id') (22P02)"),
    });
    expect(results[2]).toMatchObject({ reason: expect.stringContaining("Unable to cast text 'maybe' to boolean") });
    expect(results[3]).toMatchObject({ reason: expect.stringContaining("NULL result in a non-nullable column 'id' (23502)") });
    expect(results[4]).toMatchObject({ reason: expect.stringContaining('not JSON') });
    expect(await offsets('orders', '_junction_offset')).toEqual([1, 6]);
  });

  it('replays of the same batch and of overlapping batches, by new sinks, leave each offset once', async () => {
    const b = batch(
      's',
      range(1, 100).map((o) => msg(o, { o })),
    );
    await (await sinkOf()).write(b, { signal: signal() });
    const again = await (await sinkOf()).write(b, { signal: signal() });
    expect(again.every((r) => r.status === 'ok')).toBe(true);
    const s = await sinkOf();
    await s.write(
      batch(
        's',
        range(50, 150).map((o) => msg(o, { o })),
      ),
      { signal: signal() },
    );
    await s.write(
      batch(
        's',
        range(1, 10).map((o) => msg(o, { o })),
      ),
      { signal: signal() },
    );
    await s.write(
      batch(
        's',
        [151, 155, 160].map((o) => msg(o, { o })),
      ),
      { signal: signal() },
    );
    await s.write(
      batch(
        's',
        range(140, 160).map((o) => msg(o, { o })),
      ),
      { signal: signal() },
    );
    expect(await offsets()).toEqual(range(1, 160));
  });

  it('short 5xx / throttling: the sink tries again within the write and succeeds', async () => {
    const s = await sinkOf();
    fake.fail(503, 1);
    fake.fail(429, 1);
    expect(
      (
        await s.write(
          batch(
            's',
            range(1, 3).map((o) => msg(o, o)),
          ),
          { signal: signal() },
        )
      ).every((r) => r.status === 'ok'),
    ).toBe(true);
    expect(await offsets()).toEqual([1, 2, 3]);
  });

  it('5xx for longer: retry() after maxAttempts, within writeTimeoutMs; after healing ok, no duplicates', async () => {
    const s = await sinkOf({ writeTimeoutMs: 1500 });
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    fake.fail(503, 100_000);
    const t0 = Date.now();
    const r = await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() });
    expect(Date.now() - t0).toBeLessThan(6000); // writeTimeoutMs is 1.5 s; without it the 503s go on and on
    expect(r.map((x) => x.status)).toEqual(['retry', 'retry']);
    expect(r[0]).toMatchObject({ reason: expect.stringContaining('HTTP 503') });
    fake.heal();
    expect((await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() })).map((x) => x.status)).toEqual(['ok', 'ok']);
    expect(await offsets()).toEqual([1, 2, 3]);
  });

  it('a slow answer: retry() at writeTimeoutMs, never a hang; the partition is fenced until the late INSERT settles', async () => {
    const s = await sinkOf({ writeTimeoutMs: 800 });
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    fake.slow(1500);
    const t0 = Date.now();
    const r = await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() });
    expect(Date.now() - t0).toBeLessThan(1300);
    expect(r.map((x) => x.status)).toEqual(['retry', 'retry']);
    expect(r[0]).toMatchObject({ reason: expect.stringContaining('no answer within writeTimeoutMs') });
    fake.heal();
    // The late INSERT lands; the write after it asks the table and sends nothing again.
    let last = r;
    for (let i = 0; i < 10 && last.some((x) => x.status !== 'ok'); i++)
      last = await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() });
    expect(last.map((x) => x.status)).toEqual(['ok', 'ok']);
    // The INSERT of offsets 2 and 3 was sent once: the late one.
    expect(fake.statements.filter((x) => x.startsWith('INSERT') && x.includes("('s','0','2',")).length).toBe(1);
    expect(await offsets()).toEqual([1, 2, 3]);
  });

  it('an aborted write settles at once with retry()', async () => {
    const s = await sinkOf({ writeTimeoutMs: 20_000 });
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    fake.slow(3000);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t0 = Date.now();
    const r = await s.write(batch('s', [msg(2, 2)]), { signal: ac.signal });
    expect(Date.now() - t0).toBeLessThan(2500); // aborted at 0.2 s; unaborted it would wait for the 3 s answer
    expect(r[0]).toMatchObject({ status: 'retry', reason: expect.stringContaining('aborted') });
    fake.heal();
  });

  it('an expired token: the SDK fetches a new one and the write succeeds', async () => {
    const s = await sinkOf();
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    const tokens = fake.counts.token ?? 0;
    fake.expireTokens();
    expect((await s.write(batch('s', [msg(2, 2)]), { signal: signal() }))[0]?.status).toBe('ok');
    expect(fake.counts.token).toBe(tokens + 1);
    expect(await offsets()).toEqual([1, 2]);
  });

  it('a connection dropped after the INSERT committed: the table is asked again, nothing is inserted twice', async () => {
    const s = await sinkOf();
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    fake.dropAfterCommit();
    const first = await s.write(
      batch(
        's',
        range(2, 10).map((o) => msg(o, o)),
      ),
      { signal: signal() },
    );
    expect(first.every((r) => r.status === 'ok')).toBe(true);
    expect(inserts()).toBe(2); // the dropped INSERT had landed: the re-query found it, no re-send
    const second = await s.write(
      batch(
        's',
        range(2, 10).map((o) => msg(o, o)),
      ),
      { signal: signal() },
    );
    expect(second.every((r) => r.status === 'ok')).toBe(true);
    expect(await offsets()).toEqual(range(1, 10));
  });

  it('refused credentials fail the task with AUTH_FAILED, not retryable', async () => {
    const err = await open(config(fake, { clientSecret: 'wrong' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AUTH_FAILED', message: expect.stringContaining('Invalid client_id or client_secret') });
    expect(isRetryable(err)).toBe(false);
  });

  it('a missing engine, database or account fails the task with NOT_FOUND; a missing table is created or refused', async () => {
    for (const [extra, text] of [
      [{ engine: 'nope' }, "Engine 'nope' does not exist"],
      [{ database: 'nope' }, "Database 'nope' does not exist"],
      [{ account: 'nope' }, "Account 'nope' does not exist"],
    ] as const) {
      const err = await open(config(fake, extra)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(text) });
      expect(isRetryable(err)).toBe(false);
    }
    await expect(open(config(fake, { table: 'absent', autoCreate: false }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    fake.createDatabase('other');
    await sinkOf({ database: 'other', table: 'Made' });
    expect(
      fake.databases
        .get('other')
        ?.table('made')
        ?.columns.map((c) => `${c.name}:${c.type}`),
    ).toEqual([
      'station:TEXT',
      'partition:INTEGER',
      'offset:BIGINT',
      'timestamp:TIMESTAMP',
      'key:TEXT',
      'headers:TEXT',
      'value:TEXT',
      'station_id:TEXT',
    ]);
  });

  it('keys on the station incarnation: a station created again writes its offsets anew, in this sink and in a fresh one', async () => {
    const s = await sinkOf();
    await s.write(
      batch(
        'st',
        range(1, 10).map((o) => msg(o, { o })),
        0,
        'first',
      ),
      { signal: signal() },
    );
    const again = await s.write(
      batch(
        'st',
        range(1, 4).map((o) => msg(o, { o, again: true })),
        0,
        'second',
      ),
      { signal: signal() },
    );
    expect(again.every((r) => r.status === 'ok')).toBe(true);
    const fresh = await sinkOf();
    await fresh.write(
      batch(
        'st',
        range(1, 12).map((o) => msg(o, { o, again: true })),
        0,
        'second',
      ),
      { signal: signal() },
    );
    const rows = await query(fake, 'SELECT "offset", "station_id" FROM "events" ORDER BY "offset"');
    const of = (id: string) =>
      rows
        .filter((r) => r.station_id === id)
        .map((r) => Number(r.offset))
        .sort((a, b) => a - b);
    expect(of('first')).toEqual(range(1, 10));
    expect(of('second')).toEqual(range(1, 12));
    expect(rows).toHaveLength(22);
  });

  it('adds station_id to a table made before it; the first write of a station claims its old rows (NULL) for its incarnation', async () => {
    const t = fake.db.createTable('old', [
      { name: 'station', type: 'TEXT', notNull: true },
      { name: 'partition', type: 'INTEGER', notNull: true },
      { name: 'offset', type: 'BIGINT', notNull: true },
      { name: 'timestamp', type: 'TIMESTAMP', notNull: true },
      { name: 'key', type: 'TEXT', notNull: false },
      { name: 'headers', type: 'TEXT', notNull: false },
      { name: 'value', type: 'TEXT', notNull: false },
    ]);
    for (const o of range(1, 5)) t.rows.push(['legacy', 0, o, 1_700_000_000_000 + o, null, '{}', JSON.stringify({ o })]);
    t.rows.push(['other', 0, 1, 1_700_000_000_000, null, '{}', '{}']);
    const s = await sinkOf({ table: 'old' });
    expect(t.columns.map((c) => c.name)).toContain('station_id');
    const results = await s.write(
      batch(
        'legacy',
        range(1, 8).map((o) => msg(o, { o })),
        0,
        'now',
      ),
      { signal: signal() },
    );
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    const rows = await query(fake, 'SELECT "station", "offset", "station_id" FROM "old" ORDER BY "offset"');
    expect(rows.filter((r) => r.station === 'legacy').map((r) => [Number(r.offset), r.station_id])).toEqual(
      range(1, 8).map((o) => [o, 'now']),
    );
    expect(rows.filter((r) => r.station === 'other').map((r) => r.station_id)).toEqual([null]);
  });
});
