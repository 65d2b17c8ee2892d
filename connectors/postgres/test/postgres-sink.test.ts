/** The PostgreSQL sink's own behaviour against the real server: upsert, refused rows, lost backends, privileges. */
import { afterAll, describe, expect, it } from 'vitest';
import { holdExclusive } from '@junction/e2e/exclusive';
import { isRetryable, isJunctionError, type Sink, type SinkBatch, type SinkMessage } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { admin, PG, unique, until } from './helpers.js';

// The machine's PostgreSQL is shared: files that use it take turns (vitest.config.ts, EXCLUSIVE).
await holdExclusive('postgres');

const db = await admin();
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
  await db.end();
});

const enc = new TextEncoder();
const signal = new AbortController().signal;

function batch(
  station: string,
  offsets: number[],
  value: (o: number) => string,
  extra: Partial<SinkMessage> = {},
  stationId = `${station}-id`,
): SinkBatch {
  const messages = offsets.map((offset) => ({
    offset,
    timestamp: 1_700_000_000_000 + offset,
    headers: { h: String(offset) },
    value: enc.encode(value(offset)) as Uint8Array<ArrayBuffer>,
    ...extra,
  }));
  return { station, stationId, partition: 0, firstOffset: offsets[0] as number, lastOffset: offsets.at(-1) as number, messages };
}

async function open(config: Record<string, unknown>, connector = unique('conn')): Promise<Sink> {
  const table = config.table as string;
  cleanup.push(() => db.query(`DROP TABLE IF EXISTS public."${table}"`));
  cleanup.push(() => db.query(`DELETE FROM junction_sink_offsets WHERE connector = $1`, [connector]));
  cleanup.push(() => db.query(`DELETE FROM junction_sink_dead_letters WHERE connector = $1`, [connector]));
  const sink = await plugin.open(plugin.config.parse({ ...PG, ...config }), fakeContext({ connector }));
  cleanup.push(() => sink.close());
  return sink;
}

describe('postgres sink', () => {
  it('writes the default layout: key, value jsonb, headers, station, station_id, partition, offset, timestamp', async () => {
    const table = unique('layout');
    const sink = await open({ table });
    const b = batch('orders', [1, 2, 3], (o) => JSON.stringify({ id: o, note: 'tab\there, newline\nthere, back\\slash, ünïcödé' }), {
      key: 'k',
    });
    const results = await sink.write(b, { signal });
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    const rows = (
      await db.query(
        `SELECT key, value, headers, station, station_id, partition, "offset", "timestamp" FROM public."${table}" ORDER BY "offset"`,
      )
    ).rows;
    expect(rows).toEqual(
      [1, 2, 3].map((o) => ({
        key: 'k',
        value: { id: o, note: 'tab\there, newline\nthere, back\\slash, ünïcödé' },
        headers: { h: String(o) },
        station: 'orders',
        station_id: 'orders-id',
        partition: 0,
        offset: String(o),
        timestamp: new Date(1_700_000_000_000 + o),
      })),
    );
  });

  it('COPY and multi-row INSERT write the same rows (bytea values, every byte value)', async () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    for (const copyMinRows of [1, 100_000]) {
      const table = unique('bytes');
      const sink = await open({ table, value: 'bytea', copyMinRows });
      const b = batch('bin', [1, 2], () => '');
      const messages = b.messages.map((m) => ({ ...m, value: new Uint8Array(all) as Uint8Array<ArrayBuffer> }));
      expect((await sink.write({ ...b, messages }, { signal })).map((r) => r.status)).toEqual(['ok', 'ok']);
      const rows = (await db.query<{ value: Buffer }>(`SELECT value FROM public."${table}" ORDER BY "offset"`)).rows;
      expect(rows.map((r) => r.value.equals(all))).toEqual([true, true]);
    }
  });

  it('upsert by key keeps the newest message per key; by field uses the JSON field', async () => {
    const table = unique('upk');
    const sink = await open({ table, mode: 'upsert' });
    const keys = ['a', 'b', 'a', 'c', 'b', 'a'];
    const b = batch('u', [1, 2, 3, 4, 5, 6], (o) => JSON.stringify({ v: o }));
    const messages = b.messages.map((m, i) => ({ ...m, key: keys[i] as string }));
    expect((await sink.write({ ...b, messages }, { signal })).every((r) => r.status === 'ok')).toBe(true);
    const rows = (await db.query(`SELECT row_key, value FROM public."${table}" ORDER BY row_key`)).rows;
    expect(rows).toEqual([
      { row_key: 'a', value: { v: 6 } },
      { row_key: 'b', value: { v: 5 } },
      { row_key: 'c', value: { v: 4 } },
    ]);

    const t2 = unique('upf');
    const s2 = await open({ table: t2, mode: 'upsert', upsertBy: { field: 'id' } });
    const r2 = await s2.write(
      batch('u', [1, 2, 3, 4], (o) => (o === 3 ? '{"no":"id"}' : JSON.stringify({ id: o % 2, v: o }))),
      { signal },
    );
    expect(r2.map((r) => r.status)).toEqual(['ok', 'ok', 'deadLetter', 'ok']);
    expect((await db.query(`SELECT row_key, value FROM public."${t2}" ORDER BY row_key`)).rows).toEqual([
      { row_key: '0', value: { id: 0, v: 4 } },
      { row_key: '1', value: { id: 1, v: 1 } },
    ]);
  });

  it('dead-letters rows the server refuses with their SQLSTATE, writes the others, and dead-letters them again on replay', async () => {
    const table = unique('refused');
    await db.query(
      `CREATE TABLE public."${table}" (key text, value jsonb CHECK (value ? 'id'), headers jsonb NOT NULL, station text NOT NULL, station_id text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL, "timestamp" timestamptz NOT NULL)`,
    );
    const sink = await open({ table, autoCreate: false });
    const value = (o: number): string => (o === 3 ? 'not json' : o === 7 ? '{"other":1}' : JSON.stringify({ id: o }));
    const offsets = Array.from({ length: 100 }, (_, i) => i + 1);
    const results = await sink.write(batch('s', offsets, value), { signal });
    const dead = results.flatMap((r, i) => (r.status === 'deadLetter' ? [[offsets[i], r.code]] : []));
    expect(dead).toEqual([
      [3, 'SQLSTATE_22P02'],
      [7, 'SQLSTATE_23514'],
    ]);
    expect(Number((await db.query(`SELECT count(*) AS n FROM public."${table}"`)).rows[0].n)).toBe(98);
    // The same batch again (a crash before the runtime settled it): nothing written twice, the dead letters again.
    const again = await sink.write(batch('s', offsets, value), { signal });
    expect(again.flatMap((r, i) => (r.status === 'deadLetter' ? [[offsets[i], r.code]] : []))).toEqual(dead);
    expect(Number((await db.query(`SELECT count(*) AS n FROM public."${table}"`)).rows[0].n)).toBe(98);
  });

  it('a backend terminated mid-write: retryable, and the replay writes each offset once', async () => {
    const table = unique('terminated');
    const connector = unique('term');
    const sink = await open({ table, copyMinRows: 1 }, connector);
    const big = 'x'.repeat(2000);
    let failures = 0;
    // Every other batch: the table is locked by another session, so the sink's transaction waits inside
    // its write; its backend is terminated exactly then (no race with a fast write), and the lock let go.
    const locker = await admin();
    try {
      for (let start = 1; start <= 20_000; start += 2000) {
        const offsets = Array.from({ length: 2000 }, (_, i) => start + i);
        // Not the first batch: it makes the table.
        const kill = ((start - 1) / 2000) % 2 === 1;
        let killer: Promise<unknown> = Promise.resolve();
        if (kill) {
          await locker.query('BEGIN');
          await locker.query(`LOCK TABLE public."${table}" IN ACCESS EXCLUSIVE MODE`);
          killer = (async () => {
            await until(
              async () =>
                (
                  await db.query(
                    `SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
                    [`junction-sink:${connector}:0`],
                  )
                ).rowCount,
              'the sink waiting on the lock',
              30_000,
            ).finally(() => locker.query('COMMIT'));
          })();
        }
        for (;;) {
          try {
            const r = await sink.write(
              batch('t', offsets, (o) => JSON.stringify({ id: o, big })),
              { signal },
            );
            expect(r.every((x) => x.status === 'ok')).toBe(true);
            break;
          } catch (err) {
            expect(isRetryable(err), String(err)).toBe(true);
            failures++;
          }
        }
        await killer;
      }
    } finally {
      await locker.end();
    }
    expect(failures).toBeGreaterThan(0);
    const n = await db.query(
      `SELECT count(*) AS n, count(DISTINCT "offset") AS d, min("offset") AS lo, max("offset") AS hi FROM public."${table}"`,
    );
    expect(n.rows[0]).toEqual({ n: '20000', d: '20000', lo: '1', hi: '20000' });
  });

  it('a role without the privileges fails clearly: AUTH_FAILED at open, non-retryable at write once revoked', async () => {
    const role = unique('jrole');
    const table = unique('priv');
    await db.query(`CREATE ROLE ${role} LOGIN`);
    cleanup.push(() => db.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`));
    await db.query(
      `CREATE TABLE IF NOT EXISTS junction_sink_offsets (connector text NOT NULL, station text NOT NULL, station_id text NOT NULL, partition integer NOT NULL, written int8multirange NOT NULL, last_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (connector, station_id, partition))`,
    );
    await db.query(
      `CREATE TABLE IF NOT EXISTS junction_sink_dead_letters (connector text NOT NULL, station text NOT NULL, station_id text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL, code text NOT NULL, reason text NOT NULL, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (connector, station_id, partition, "offset"))`,
    );
    await db.query(
      `CREATE TABLE public."${table}" (key text, value jsonb, headers jsonb NOT NULL, station text NOT NULL, station_id text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL, "timestamp" timestamptz NOT NULL)`,
    );
    cleanup.push(() => db.query(`DROP TABLE IF EXISTS public."${table}"`));
    await db.query(
      `GRANT SELECT, INSERT, UPDATE ON junction_sink_offsets TO ${role}; GRANT SELECT, INSERT ON junction_sink_dead_letters TO ${role}`,
    );
    const config = plugin.config.parse({ ...PG, user: role, table, autoCreate: false });
    const refused = await plugin.open(config, fakeContext()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isJunctionError(refused) && refused.code).toBe('AUTH_FAILED');
    expect(isRetryable(refused)).toBe(false);
    expect(String((refused as Error).message)).toContain(`lacks INSERT on "public"."${table}"`);

    await db.query(`GRANT INSERT ON public."${table}" TO ${role}`);
    const connector = unique('priv');
    cleanup.push(() => db.query(`DELETE FROM junction_sink_offsets WHERE connector = $1`, [connector]));
    const sink = await plugin.open(config, fakeContext({ connector }));
    cleanup.push(() => sink.close());
    expect(
      (
        await sink.write(
          batch('p', [1], () => '{"a":1}'),
          { signal },
        )
      )[0]?.status,
    ).toBe('ok');
    await db.query(`REVOKE INSERT ON public."${table}" FROM ${role}`);
    const thrown = await sink
      .write(
        batch('p', [2], () => '{"a":2}'),
        { signal },
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isJunctionError(thrown) && thrown.code).toBe('AUTH_FAILED');
    expect(isRetryable(thrown)).toBe(false);
    expect(String((thrown as Error).message)).toContain('42501');
  });
});
