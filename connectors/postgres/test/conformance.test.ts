/** The PostgreSQL sink against the SDK's conformance kit, on the real server of this machine. */
import { afterAll, describe, expect, it } from 'vitest';
import { holdExclusive } from '@junction/e2e/exclusive';
import { fakeContext, runSinkCheck, runSinkConformance, sinkConformanceSuite } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { admin, closedPort, PG, TcpProxy, unique } from './helpers.js';

// The machine's PostgreSQL is shared: files that use it take turns (vitest.config.ts, EXCLUSIVE).
await holdExclusive('postgres');

const db = await admin();
const proxy = await new TcpProxy(PG).start();
const downPort = await closedPort();
const tables: string[] = [];
afterAll(async () => {
  for (const t of tables) await db.query(`DROP TABLE IF EXISTS public."${t}"`);
  await db.query(`DELETE FROM junction_sink_offsets WHERE station LIKE 'kit%' OR connector = 'test'`).catch(() => undefined);
  await db.query(`DELETE FROM junction_sink_dead_letters WHERE connector = 'test'`).catch(() => undefined);
  await proxy.close();
  await db.end();
});

function table(prefix: string): string {
  const t = unique(prefix);
  tables.push(t);
  return t;
}

const kitTable = table('kit_jsonb');
const base = { host: PG.host, port: proxy.port, database: PG.database, user: PG.user, writeTimeoutMs: 3000 };
// A lock held on the table by another session: the sink's COPY / INSERT is accepted and never answered.
async function stall(): Promise<() => Promise<void>> {
  const holder = await admin();
  await holder.query(`BEGIN; LOCK TABLE public."${kitTable}" IN ACCESS EXCLUSIVE MODE`);
  return async () => {
    await holder.query('ROLLBACK');
    await holder.end();
  };
}

sinkConformanceSuite(
  { describe, it },
  {
    plugin,
    // The test server trusts the role and never asks for the password: it is here for secrets-not-logged.
    config: { ...base, table: kitTable, password: 'kit-password-never-asked' },
    readBack: async () => (await db.query<{ v: string }>(`SELECT value::text AS v FROM public."${kitTable}"`)).rows.map((r) => r.v),
    // Not JSON, into a jsonb column: SQLSTATE 22P02.
    deadLetter: { value: '{"broken json' },
    // The network between sink and server reset (every connection, new ones refused) until healed.
    retry: {
      breakDestination: async () => {
        proxy.break();
        return async () => proxy.heal();
      },
    },
    // A database that does not exist (3D000): fails at open, non-retryable.
    unusable: { config: { ...base, database: 'junction_no_such_database', table: kitTable } },
    stall,
    lateWrite: {
      notApplicable:
        'the offsets row of the partition is locked (INSERT … ON CONFLICT DO UPDATE) by the transaction that decides which offsets are new: a late transaction of a dead writer and a replay serialize on it, so the late one finds the offsets already written and inserts nothing (the e2e kill -9 test covers replays)',
    },
    timeoutMs: 20_000,
  },
);

describe('postgres sink conformance, other layouts', () => {
  for (const [name, extra] of [
    ['bytea values', { value: 'bytea' }],
    ['text values, INSERT only (copyMinRows above every batch)', { value: 'text', copyMinRows: 100_000 }],
  ] as const) {
    it(`passes every check with ${name}`, async () => {
      const t = table('kit_other');
      const col = 'value' in extra && extra.value === 'bytea' ? `convert_from(value, 'UTF8')` : 'value::text';
      const results = await runSinkConformance({
        plugin,
        config: { ...base, table: t, ...extra },
        readBack: async () => (await db.query<{ v: string }>(`SELECT ${col} AS v FROM public."${t}"`)).rows.map((r) => r.v),
        retry: {
          breakDestination: async () => {
            proxy.break();
            return async () => proxy.heal();
          },
        },
        unusable: { config: { ...base, database: 'junction_no_such_database', table: t } },
        lateWrite: { notApplicable: 'see the jsonb suite' },
        timeoutMs: 20_000,
      });
      const bad = results.filter((r) => r.status === 'failed');
      expect(bad).toEqual([]);
      // No dead-letter case (bytea and text take any value) and no stall here: the jsonb suite has them; the test role has no password (secrets-not-logged).
      expect(
        results
          .filter((r) => r.status === 'not-applicable')
          .map((r) => r.check)
          .sort(),
      ).toEqual(['dead-letter', 'late-write', 'open-unreachable', 'secrets-not-logged', 'write-stalled-abort']);
    });
  }

  it('passes every check in layout schema (the kit values as a JSON Schema subject)', async () => {
    const t = table('kit_schema');
    const kit = {
      subject: 'kit-value',
      version: 1,
      id: 1,
      schemaType: 'JSON' as const,
      references: [],
      schema: JSON.stringify({
        type: 'object',
        properties: {
          junctionConformance: { type: 'string' },
          station: { type: 'string' },
          partition: { type: 'integer' },
          offset: { type: 'integer' },
          text: { type: 'string' },
          incarnation: { type: 'integer' },
        },
      }),
    };
    const results = await runSinkConformance({
      plugin,
      context: () => fakeContext({ schema: { ...kit, versions: [kit] } }),
      config: { ...base, table: t, layout: 'schema', password: 'kit-password-never-asked' }, // for secrets-not-logged
      readBack: async () =>
        (await db.query(`SELECT "junctionConformance", station, partition, "offset", text, incarnation FROM public."${t}"`)).rows.map((r) =>
          JSON.stringify({
            junctionConformance: r.junctionConformance,
            station: r.station,
            partition: Number(r.partition),
            offset: Number(r.offset),
            text: r.text,
            ...(r.incarnation == null ? {} : { incarnation: Number(r.incarnation) }),
          }),
        ),
      // Not JSON: it does not decode with the station schema.
      deadLetter: { value: '{"broken json' },
      retry: {
        breakDestination: async () => {
          proxy.break();
          return async () => proxy.heal();
        },
      },
      unusable: { config: { ...base, database: 'junction_no_such_database', table: t, layout: 'schema' } },
      lateWrite: { notApplicable: 'see the jsonb suite' },
      timeoutMs: 20_000,
    });
    expect(results.filter((r) => r.status === 'failed')).toEqual([]);
    expect(
      results
        .filter((r) => r.status === 'not-applicable')
        .map((r) => r.check)
        .sort(),
    ).toEqual(['late-write', 'open-unreachable', 'write-stalled-abort']);
  });

  // The sink connects at open(), so the kit's retry case (open, then break) cannot also be a down
  // destination at open: open-unreachable runs on its own, against a port nothing listens on.
  it('open-unreachable: open() against a server that is down fails in time, retryable', async () => {
    const [r] = await Promise.all([
      runSinkCheck(
        {
          plugin,
          config: { ...base, table: kitTable },
          retry: { config: { ...base, port: downPort, table: kitTable } },
          timeoutMs: 20_000,
        },
        'open-unreachable',
      ),
    ]);
    expect(r?.status, r?.detail).toBe('passed');
    expect(r?.detail).toContain('CONNECTION_FAILED');
  });
});
