/** The BigQuery sink's behaviour on the local fake, read back with queries through the real Google client. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRetryable, type Sink } from '@junction/sdk-connector';
import { FakeBigQuery } from '../../../test/fakes/bigquery/server.js';
import { batch, config, msg, open, PROJECT, query, range, signal, TOKEN } from './helpers.js';

let fake: FakeBigQuery;
const sinks: Sink[] = [];
beforeEach(async () => {
  // No insertId dedup in the fake: exactly-once must hold without it (it is best effort in BigQuery).
  fake = await new FakeBigQuery({ token: TOKEN, dedupWindowMs: 0 }).start();
  fake.createDataset(PROJECT, 'ds');
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
const count = async (table = 'events') => Number((await query(fake, `SELECT COUNT(*) FROM \`test-proj.ds.${table}\``))[0]?.f0_);
const offsets = async (table = 'events', col = 'offset') =>
  (await query(fake, `SELECT \`${col}\` FROM \`test-proj.ds.${table}\` ORDER BY \`${col}\``)).map((r) => Number(r[col]));

const COLUMNS = {
  mode: 'columns',
  table: 'orders',
  columns: [
    { name: 'id', type: 'INT64', required: true },
    { name: 'amount', type: 'FLOAT64' },
    { name: 'paid', type: 'BOOL' },
    { name: 'at', type: 'TIMESTAMP' },
    { name: 'customer', type: 'STRING', field: 'who' },
    { name: 'tags', type: 'JSON' },
  ],
};

describe('bigquery sink', () => {
  it('writes N messages as exactly N rows, values and types right, in few insertAll requests', async () => {
    const s = await sinkOf();
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
    expect(fake.counts.insertAll).toBe(3); // 500 rows a request, never one per row
    const [row] = await query(fake, 'SELECT * FROM `test-proj.ds.events` WHERE `offset` = @o', { o: 7 });
    expect(row).toMatchObject({ station: 'orders', partition: 0, offset: 7, key: 'k7', headers: '{"h":"7"}' });
    expect(JSON.parse(String(row?.value))).toEqual({ n: 7, nested: { ok: true } });
    expect((row?.timestamp as { value: string }).value).toBe(new Date(1_700_000_000_007).toISOString());
  });

  it('maps first-level JSON fields to typed columns (mode columns)', async () => {
    const s = await sinkOf(COLUMNS);
    const results = await s.write(
      batch('orders', [
        msg(1, { id: 1, amount: 9.5, paid: true, at: '2024-01-02T03:04:05Z', who: 'ada', tags: ['a', 'b'], extra: 'ignored' }),
        msg(2, { id: 2 }),
      ]),
      { signal: signal() },
    );
    expect(results).toEqual([{ status: 'ok' }, { status: 'ok' }]);
    const rows = await query(fake, 'SELECT * FROM `test-proj.ds.orders` ORDER BY `id`');
    expect(rows[0]).toMatchObject({
      id: 1,
      amount: 9.5,
      paid: true,
      customer: 'ada',
      tags: '["a","b"]',
      _junction_station: 'orders',
      _junction_partition: 0,
      _junction_offset: 1,
    });
    expect((rows[0]?.at as { value: string }).value).toBe('2024-01-02T03:04:05.000Z');
    expect(rows[1]).toMatchObject({ id: 2, amount: null, paid: null, customer: null });
  });

  it("dead-letters a schema-mismatched message with BigQuery's reason, writes the rest", async () => {
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
      reason: expect.stringContaining('Cannot convert value to integer (bad value): two'),
    });
    expect(results[2]).toMatchObject({ reason: expect.stringContaining('boolean') });
    expect(results[3]).toMatchObject({ reason: expect.stringContaining('Missing required field: id') });
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

  it('5xx and throttling: retry(), then ok after healing, no duplicates', async () => {
    const s = await sinkOf();
    await s.write(batch('s', [msg(1, 1)]), { signal: signal() });
    for (const status of [503, 500, 429]) {
      fake.fail(status, { op: 'insertAll' });
      const r = await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() });
      expect(r.map((x) => x.status)).toEqual(['retry', 'retry']);
      expect(r[0]).toMatchObject({ reason: expect.stringContaining(String(status)) });
    }
    expect((await s.write(batch('s', [msg(2, 2), msg(3, 3)]), { signal: signal() })).map((x) => x.status)).toEqual(['ok', 'ok']);
    expect(await offsets()).toEqual([1, 2, 3]);
  });

  it('the client retries 5xx itself when maxRetries > 0', async () => {
    const s = await sinkOf({ maxRetries: 2 });
    fake.fail(503, { op: 'insertAll' });
    expect((await s.write(batch('s', [msg(1, 1)]), { signal: signal() }))[0]?.status).toBe('ok');
    expect(await offsets()).toEqual([1]);
  });

  it('slow answers: the write waits and succeeds', async () => {
    const s = await sinkOf();
    fake.slow(300);
    const t0 = Date.now();
    expect(
      (
        await s.write(
          batch(
            's',
            range(1, 5).map((o) => msg(o, o)),
          ),
          { signal: signal() },
        )
      ).every((r) => r.status === 'ok'),
    ).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(await count()).toBe(5);
  });

  it('a connection dropped after the insert committed: retry(), and the retry does not duplicate', async () => {
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
    expect(first.every((r) => r.status === 'retry')).toBe(true);
    expect(await count()).toBe(10); // it did land
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
    await expect(open(config(fake, { accessToken: 'wrong' }))).rejects.toMatchObject({ code: 'AUTH_FAILED', retryable: false });
    const s = await sinkOf();
    fake.fail(403, { op: 'insertAll', reason: 'accessDenied' });
    const err = await s.write(batch('s', [msg(1, 1)]), { signal: signal() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AUTH_FAILED' });
    expect(isRetryable(err)).toBe(false);
  });

  it('a missing dataset fails the task with NOT_FOUND and a clear message; a missing table is created or refused', async () => {
    const err = await open(config(fake, { dataset: 'nope' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('dataset test-proj.nope does not exist') });
    expect(isRetryable(err)).toBe(false);
    await expect(open(config(fake, { table: 'absent', autoCreate: false }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await sinkOf({ table: 'made' });
    expect(
      fake
        .dataset(PROJECT, 'ds')
        ?.table('made')
        ?.columns.map((c) => `${c.name}:${c.type}`),
    ).toEqual([
      'station:STRING',
      'partition:INT64',
      'offset:INT64',
      'timestamp:TIMESTAMP',
      'key:STRING',
      'headers:JSON',
      'value:JSON',
      'station_id:STRING',
    ]);
  });

  it('a network failure on the presence query throws a retryable error', async () => {
    const s = await sinkOf();
    fake.fail(503, { op: 'query' });
    const err = await s.write(batch('s', [msg(1, 1)]), { signal: signal() }).catch((e: unknown) => e);
    expect(isRetryable(err)).toBe(true);
    expect((await s.write(batch('s', [msg(1, 1)]), { signal: signal() }))[0]?.status).toBe('ok');
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
    const rows = await query(fake, 'SELECT `offset`, `station_id` FROM `test-proj.ds.events` ORDER BY `offset`');
    const of = (id: string) =>
      rows
        .filter((r) => r.station_id === id)
        .map((r) => Number(r.offset))
        .sort((a, b) => a - b);
    expect(of('first')).toEqual(range(1, 10));
    expect(of('second')).toEqual(range(1, 12));
    expect(rows).toHaveLength(22);
  });

  it('adds station_id to a table made before it; its old rows (NULL there) count for whichever incarnation writes the station', async () => {
    const t = fake.dataset(PROJECT, 'ds')!.createTable('old', [
      { name: 'station', type: 'STRING', notNull: true },
      { name: 'partition', type: 'INT64', notNull: true },
      { name: 'offset', type: 'INT64', notNull: true },
      { name: 'timestamp', type: 'TIMESTAMP', notNull: true },
      { name: 'key', type: 'STRING', notNull: false },
      { name: 'headers', type: 'JSON', notNull: false },
      { name: 'value', type: 'JSON', notNull: false },
    ]);
    for (const o of range(1, 5)) t.rows.push(['legacy', 0, o, 1_700_000_000_000 + o, null, { json: {} }, { json: { o } }]);
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
    const rows = await query(fake, 'SELECT `offset`, `station_id` FROM `test-proj.ds.old` ORDER BY `offset`');
    expect(rows.map((r) => [Number(r.offset), r.station_id ?? null])).toEqual([
      ...range(1, 5).map((o) => [o, null]),
      ...range(6, 8).map((o) => [o, 'now']),
    ]);
  });

  it('at least once, exactly as documented: a late insertAll (its writer killed) duplicates only its own rows, each the same message', async () => {
    const dead = await sinkOf();
    const held = fake.holdWrites();
    const ac = new AbortController();
    void dead
      .write(
        batch(
          'late',
          range(1, 30).map((o) => msg(o, { o })),
        ),
        { signal: ac.signal },
      )
      .catch(() => undefined);
    await held.held();
    ac.abort();
    held.stop();
    const s = await sinkOf();
    for (const offsets of [range(1, 20), range(15, 40)]) {
      const r = await s.write(
        batch(
          'late',
          offsets.map((o) => msg(o, { o })),
        ),
        { signal: signal() },
      );
      expect(r.every((x) => x.status === 'ok')).toBe(true);
    }
    await held.release();
    const rows = await query(
      fake,
      'SELECT `station`, `station_id`, `partition`, `offset`, `value` FROM `test-proj.ds.events` ORDER BY `offset`',
    );
    const byKey = new Map<string, unknown[]>();
    for (const r of rows) {
      const k = [r.station, r.station_id, r.partition, r.offset].join('/');
      byKey.set(k, [...(byKey.get(k) ?? []), JSON.stringify(r.value)]);
    }
    // Every offset is there; the held request's 30 rows are there twice, as the same message.
    expect([...new Set(rows.map((r) => Number(r.offset)))]).toEqual(range(1, 40));
    const twice = [...byKey].filter(([, v]) => v.length > 1);
    expect(twice.map(([k]) => Number(k.split('/')[3])).sort((a, b) => a - b)).toEqual(range(1, 30));
    for (const [, v] of twice) expect(new Set(v).size).toBe(1);
    expect(rows).toHaveLength(70);
  });
});
