/** The Snowflake sink's behaviour on the local fake, read back with queries through the real snowflake-sdk. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRetryable, type Sink } from '@junction/sdk-connector';
import { FakeSnowflake } from '../../../test/fakes/snowflake/server.js';
import { batch, config, msg, open, query, range, signal } from './helpers.js';

let fake: FakeSnowflake;
const sinks: Sink[] = [];
beforeEach(async () => {
  fake = await new FakeSnowflake().start();
});
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  await fake.close();
});
async function sinkOf(extra: Record<string, unknown> = {}): Promise<Sink> {
  const s = await open(config(fake, extra));
  sinks.push(s);
  return s;
}
const count = async (table = 'EVENTS') => Number((await query(fake, `SELECT COUNT(*) FROM "DB"."PUBLIC"."${table}"`))[0]?.['COUNT(*)']);
const offsets = async (table = 'EVENTS', col = 'OFFSET') =>
  (await query(fake, `SELECT "${col}" FROM "DB"."PUBLIC"."${table}" ORDER BY "${col}"`)).map((r) => Number(r[col]));
const inserts = () => fake.statements.filter((s) => s.startsWith('INSERT')).length;

const COLUMNS = {
  mode: 'columns',
  table: 'ORDERS',
  columns: [
    { name: 'id', type: 'NUMBER', required: true },
    { name: 'amount', type: 'FLOAT' },
    { name: 'paid', type: 'BOOLEAN' },
    { name: 'at', type: 'TIMESTAMP_NTZ' },
    { name: 'customer', type: 'VARCHAR', field: 'who' },
    { name: 'tags', type: 'VARIANT' },
  ],
};

describe('snowflake sink', () => {
  it('writes N messages as exactly N rows, values and types right, in few INSERT statements', async () => {
    const s = await sinkOf({ maxRowsPerStatement: 500 });
    const N = 1200;
    const results = await s.write(
      batch(
        'orders',
        range(1, N).map((o) => msg(o, { n: o, nested: { ok: true } }, o % 2 ? { key: `k${o}` } : {})),
      ),
      { signal: signal() },
    );
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(await count()).toBe(N);
    expect(await offsets()).toEqual(range(1, N));
    expect(inserts()).toBe(3); // 500 rows a statement, never one per row
    const [row] = await query(fake, 'SELECT * FROM "DB"."PUBLIC"."EVENTS" WHERE "OFFSET" = ?', [7]);
    expect(row).toMatchObject({
      STATION: 'orders',
      PARTITION: 0,
      OFFSET: 7,
      KEY: 'k7',
      HEADERS: { h: '7' },
      VALUE: { n: 7, nested: { ok: true } },
    });
    const ts = row?.TIMESTAMP as { getEpochSeconds(): number; getNanoSeconds(): number };
    expect(ts.getEpochSeconds() * 1000 + Math.round(ts.getNanoSeconds() / 1e6)).toBe(1_700_000_000_007);
  });

  it('keeps each INSERT within maxBytesPerStatement, headers and keys counted, and still writes every row once', async () => {
    const s = await sinkOf({ maxBytesPerStatement: 4096 });
    const N = 120;
    const big = { trace: 'ü'.repeat(60), span: 'x'.repeat(100) };
    const results = await s.write(
      batch(
        'orders',
        range(1, N).map((o) => msg(o, { n: o, text: 'é'.repeat(100) }, { key: `key-${o}-${'k'.repeat(40)}`, headers: big })),
      ),
      { signal: signal() },
    );
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(await offsets()).toEqual(range(1, N));
    const sizes = fake.statements.flatMap((sql, i) => (sql.startsWith('INSERT') ? [fake.bindBytes[i]!] : []));
    expect(sizes.length).toBeGreaterThan(5);
    for (const n of sizes) expect(n).toBeLessThanOrEqual(4096);
  });

  it('binds station, station id and partition once per INSERT, not in each row of the JSON bind; the rows still hold them', async () => {
    const s = await sinkOf();
    const station = `orders_${'s'.repeat(200)}`;
    const stationId = `id-${'i'.repeat(200)}`;
    const N = 100;
    const results = await s.write(
      batch(
        station,
        range(1, N).map((o) => msg(o, { n: o })),
        3,
        stationId,
      ),
      { signal: signal() },
    );
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    const sizes = fake.statements.flatMap((sql, i) => (sql.startsWith('INSERT') ? [fake.bindBytes[i]!] : []));
    expect(sizes).toHaveLength(1);
    // Each row carried them before: 100 rows × 400+ bytes. Now offset, time, key, headers and value only.
    expect(sizes[0]).toBeLessThan(N * 100);
    const rows = await query(fake, 'SELECT "STATION", "STATION_ID", "PARTITION", "OFFSET" FROM "DB"."PUBLIC"."EVENTS" ORDER BY "OFFSET"');
    expect(rows).toEqual(range(1, N).map((o) => ({ STATION: station, STATION_ID: stationId, PARTITION: 3, OFFSET: o })));
  });

  it('maps first-level JSON fields to typed columns (mode columns)', async () => {
    const s = await sinkOf(COLUMNS);
    const results = await s.write(
      batch('orders', [
        msg(1, { id: 1, amount: 9.5, paid: true, at: '2024-01-02T03:04:05', who: 'ada', tags: ['a', 'b'], extra: 'ignored' }),
        msg(2, { id: 2 }),
      ]),
      { signal: signal() },
    );
    expect(results).toEqual([{ status: 'ok' }, { status: 'ok' }]);
    const rows = await query(fake, 'SELECT * FROM "DB"."PUBLIC"."ORDERS" ORDER BY "ID"');
    expect(rows[0]).toMatchObject({
      ID: 1,
      AMOUNT: 9.5,
      PAID: true,
      CUSTOMER: 'ada',
      TAGS: ['a', 'b'],
      _JUNCTION_STATION: 'orders',
      _JUNCTION_PARTITION: 0,
      _JUNCTION_OFFSET: 1,
    });
    expect((rows[0]?.AT as { getEpochSeconds(): number }).getEpochSeconds()).toBe(Date.UTC(2024, 0, 2, 3, 4, 5) / 1000);
    expect(rows[1]).toMatchObject({ ID: 2, AMOUNT: null, PAID: null, CUSTOMER: null });
  });

  it("dead-letters a schema-mismatched message with Snowflake's reason, writes the rest in the same batch", async () => {
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
      reason: expect.stringContaining("Numeric value 'two' is not recognized (100038"),
    });
    expect(results[2]).toMatchObject({ reason: expect.stringContaining("Boolean value 'maybe' is not recognized") });
    expect(results[3]).toMatchObject({ reason: expect.stringContaining("NULL result in a non-nullable column 'ID'") });
    expect(results[4]).toMatchObject({ reason: expect.stringContaining('not JSON') });
    expect(await offsets('ORDERS', '_JUNCTION_OFFSET')).toEqual([1, 6]);
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

  it('short 5xx / throttling: the driver retries on its own and the write succeeds', async () => {
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

  it('5xx for minutes: retry() within writeTimeoutMs, never a hang; after healing ok, no duplicates', async () => {
    const s = await sinkOf({ writeTimeoutMs: 1500 });
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    fake.fail(503, 100_000);
    const t0 = Date.now();
    const r = await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() });
    expect(Date.now() - t0).toBeLessThan(6000); // writeTimeoutMs is 1.5 s; without it the 503s go on for minutes
    expect(r.map((x) => x.status)).toEqual(['retry', 'retry']);
    expect(r[0]).toMatchObject({ reason: expect.stringContaining('no answer within writeTimeoutMs') });
    // Still broken: the partition stays fenced while the driver retries the abandoned INSERT.
    const again = await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() });
    expect(again.map((x) => x.status)).toEqual(['retry', 'retry']);
    fake.heal();
    let last = again;
    // As the runtime does: a retryable throw is a retry too (on a busy machine the presence query asked
    // while the driver still backs off from the 503s can outlast writeTimeoutMs).
    for (let i = 0; i < 20 && last.some((x) => x.status !== 'ok'); i++) {
      last = await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() }).catch((err: unknown) => {
        if (!isRetryable(err)) throw err;
        return last;
      });
    }
    expect(last.map((x) => x.status)).toEqual(['ok', 'ok']);
    expect(await offsets()).toEqual([1, 2, 3]);
  }, 30_000);

  it('an aborted write settles at once with retry()', async () => {
    const s = await sinkOf({ writeTimeoutMs: 20_000 });
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    fake.fail(503, 100_000);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t0 = Date.now();
    const r = await s.write(batch('s', [msg(2, 2)]), { signal: ac.signal });
    expect(Date.now() - t0).toBeLessThan(5000); // aborted at 0.2 s; unaborted it would wait out writeTimeoutMs (20 s)
    expect(r[0]).toMatchObject({ status: 'retry', reason: expect.stringContaining('aborted') });
    fake.heal();
  });

  it('session expiry: the driver renews the session token; an expired master token means a new login', async () => {
    const s = await sinkOf();
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    fake.expireSession();
    expect((await s.write(batch('s', [msg(2, 2)]), { signal: signal() }))[0]?.status).toBe('ok');
    expect(fake.counts['/session/token-request']).toBe(1);
    fake.expireSession({ master: true });
    const logins = fake.counts['/session/v1/login-request'] ?? 0;
    let r = await s.write(batch('s', [msg(3, 3)]), { signal: signal() });
    if (r[0]?.status === 'retry') r = await s.write(batch('s', [msg(3, 3)]), { signal: signal() });
    expect(r[0]?.status).toBe('ok');
    expect(fake.counts['/session/v1/login-request']).toBe(logins + 1);
    expect(await offsets()).toEqual([1, 2, 3]);
  });

  it('a connection dropped after the INSERT committed: the re-sent statement inserts nothing twice', async () => {
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
    expect(first.every((r) => r.status === 'ok' || r.status === 'retry')).toBe(true);
    const second = await s.write(
      batch(
        's',
        range(2, 10).map((o) => msg(o, o)),
      ),
      { signal: signal() },
    );
    expect(second.every((r) => r.status === 'ok')).toBe(true);
    expect(await offsets()).toEqual(range(1, 10));
    expect(inserts()).toBeGreaterThanOrEqual(3); // the driver did re-send the INSERT
  });

  it('refused credentials fail the task with AUTH_FAILED, not retryable', async () => {
    const err = await open(config(fake, { password: 'wrong' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AUTH_FAILED', message: expect.stringContaining('Incorrect username or password') });
    expect(isRetryable(err)).toBe(false);
  });

  it('a missing database or schema fails the task with NOT_FOUND; a missing table is created or refused', async () => {
    for (const extra of [{ database: 'NOPE' }, { schema: 'NOPE' }]) {
      const err = await open(config(fake, extra)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('does not exist or not authorized') });
      expect(isRetryable(err)).toBe(false);
    }
    await expect(open(config(fake, { table: 'ABSENT', autoCreate: false }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    fake.createSchema('DB', 'OTHER');
    await sinkOf({ schema: 'OTHER', table: 'MADE' });
    expect(
      fake.schemas
        .get('DB.OTHER')
        ?.table('MADE')
        ?.columns.map((c) => `${c.name}:${c.type}`),
    ).toEqual([
      'STATION:VARCHAR',
      'PARTITION:NUMBER(38,0)',
      'OFFSET:NUMBER(38,0)',
      'TIMESTAMP:TIMESTAMP_NTZ',
      'KEY:VARCHAR',
      'HEADERS:VARIANT',
      'VALUE:VARIANT',
      'STATION_ID:VARCHAR',
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
    // The station was deleted and created again: offsets from 1, a new stationId.
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
    const rows = await query(fake, 'SELECT "OFFSET", "STATION_ID" FROM "DB"."PUBLIC"."EVENTS" ORDER BY "OFFSET"');
    const of = (id: string) =>
      rows
        .filter((r) => r.STATION_ID === id)
        .map((r) => Number(r.OFFSET))
        .sort((a, b) => a - b);
    expect(of('first')).toEqual(range(1, 10));
    expect(of('second')).toEqual(range(1, 12));
    expect(rows).toHaveLength(22);
  });

  it('adds STATION_ID to a table made before it; the first write of a station claims its old rows (NULL) for its incarnation', async () => {
    const store = fake.schemas.get('DB.PUBLIC')!;
    const t = store.createTable('OLD', [
      { name: 'STATION', type: 'VARCHAR', notNull: true },
      { name: 'PARTITION', type: 'NUMBER(38,0)', notNull: true },
      { name: 'OFFSET', type: 'NUMBER(38,0)', notNull: true },
      { name: 'TIMESTAMP', type: 'TIMESTAMP_NTZ', notNull: true },
      { name: 'KEY', type: 'VARCHAR', notNull: false },
      { name: 'HEADERS', type: 'VARIANT', notNull: false },
      { name: 'VALUE', type: 'VARIANT', notNull: false },
    ]);
    for (const o of range(1, 5)) t.rows.push(['legacy', 0, o, 1_700_000_000_000 + o, null, { json: {} }, { json: { o } }]);
    t.rows.push(['other', 0, 1, 1_700_000_000_000, null, { json: {} }, { json: { o: 1 } }]);
    const s = await sinkOf({ table: 'OLD' });
    expect(t.columns.map((c) => c.name)).toContain('STATION_ID');
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
    const rows = await query(fake, 'SELECT "STATION", "OFFSET", "STATION_ID" FROM "DB"."PUBLIC"."OLD" ORDER BY "OFFSET"');
    expect(rows.filter((r) => r.STATION === 'legacy').map((r) => [Number(r.OFFSET), r.STATION_ID])).toEqual(
      range(1, 8).map((o) => [o, 'now']),
    );
    // Another station's old rows wait for their own station's first write.
    expect(rows.filter((r) => r.STATION === 'other').map((r) => r.STATION_ID)).toEqual([null]);
  });
});
