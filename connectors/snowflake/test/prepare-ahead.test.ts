/**
 * `prepareAhead` (SDK): the runtime hands the Snowflake sink the batch waiting behind the running write;
 * the sink makes its rows and statement binds then, sends nothing, and the write of that batch uses them
 * — the binds only when the table holds none of the batch (a replay is cut differently).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sink } from '@junction/sdk-connector';
import { fakeContext, type FakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { FakeSnowflake } from '../../../test/fakes/snowflake/server.js';
import { batch, config, msg, query, range, signal } from './helpers.js';

let fake: FakeSnowflake;
const sinks: Sink[] = [];
beforeEach(async () => {
  fake = await new FakeSnowflake().start();
});
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  await fake.close();
});

async function sinkOf(extra: Record<string, unknown>, ctx: FakeContext = fakeContext()): Promise<Sink> {
  const s = await plugin.open(plugin.config.parse(config(fake, extra)) as never, ctx);
  sinks.push(s);
  return s;
}
const prepared = (ctx: FakeContext) => (ctx.metrics.snapshot().prepared_batches_total as { value: number } | undefined)?.value ?? 0;
/** Mode raw names the offset column OFFSET, the other modes _JUNCTION_OFFSET. */
const offsetCol = (table: string) => (table.startsWith('C') ? '_JUNCTION_OFFSET' : 'OFFSET');
const rows = (table: string) => query(fake, `SELECT * FROM "DB"."PUBLIC"."${table}" ORDER BY "${offsetCol(table)}"`);
const offsetsOf = async (table: string) => (await rows(table)).map((r) => Number(r[offsetCol(table)]));
const inserts = () => fake.statements.filter((s) => s.startsWith('INSERT')).length;
const value = (o: number) => ({ id: o, amount: o / 4, paid: o % 2 === 0, who: `c${o % 7}`, tags: [o, 'x'] });

const COLUMNS = {
  mode: 'columns',
  columns: [
    { name: 'id', type: 'NUMBER', required: true },
    { name: 'amount', type: 'FLOAT' },
    { name: 'paid', type: 'BOOLEAN' },
    { name: 'customer', type: 'VARCHAR', field: 'who' },
    { name: 'tags', type: 'VARIANT' },
  ],
};

describe('snowflake sink: prepareAhead', () => {
  for (const [name, extra] of [
    ['raw', {}],
    ['columns', COLUMNS],
  ] as const) {
    it(`${name}: prepared while the write before it runs, it sends nothing; its rows are those of an unprepared write`, async () => {
      const ctx = fakeContext();
      const table = name === 'columns' ? 'C_PREP' : 'PREP';
      const s = await sinkOf({ ...extra, table, maxRowsPerStatement: 300 }, ctx);
      const first = batch(
        'o',
        range(1, 1000).map((o) => msg(o, value(o), o % 3 ? { key: `k${o}` } : {})),
      );
      const second = batch(
        'o',
        range(1001, 2000).map((o) => msg(o, value(o), o % 3 ? { key: `k${o}` } : {})),
      );
      const writing = s.write(first, { signal: signal() });
      s.prepareAhead!(second);
      expect((await writing).every((r) => r.status === 'ok')).toBe(true);
      const before = inserts();
      expect(before).toBe(4);
      expect((await s.write(second, { signal: signal() })).every((r) => r.status === 'ok')).toBe(true);
      expect(prepared(ctx)).toBe(1);
      expect(inserts() - before).toBe(4);

      const plainTable = name === 'columns' ? 'C_PLAIN' : 'PLAIN';
      const plain = await sinkOf({ ...extra, table: plainTable, maxRowsPerStatement: 300 });
      await plain.write(
        batch(
          'o',
          range(1, 1000).map((o) => msg(o, value(o), o % 3 ? { key: `k${o}` } : {})),
        ),
        { signal: signal() },
      );
      await plain.write(
        batch(
          'o',
          range(1001, 2000).map((o) => msg(o, value(o), o % 3 ? { key: `k${o}` } : {})),
        ),
        { signal: signal() },
      );
      expect(await offsetsOf(table)).toEqual(range(1, 2000));
      expect(await rows(table)).toEqual(await rows(plainTable));
    });
  }

  it('a replay (the table holds part of the batch): the binds made ahead are not used; each offset once', async () => {
    const ctx = fakeContext();
    const s = await sinkOf({ table: 'R' }, ctx);
    await s.write(
      batch(
        'o',
        range(1, 10).map((o) => msg(o, value(o))),
      ),
      { signal: signal() },
    );
    const replay = batch(
      'o',
      range(1, 20).map((o) => msg(o, value(o))),
    );
    s.prepareAhead!(replay);
    expect((await s.write(replay, { signal: signal() })).every((r) => r.status === 'ok')).toBe(true);
    expect(prepared(ctx)).toBe(0);
    expect(ctx.metrics.snapshot()).toMatchObject({ replayed_messages_total: { value: 10 } });
    expect(await offsetsOf('R')).toEqual(range(1, 20));
  });

  it('a batch with a message to dead-letter is left to the write: the same results as without prepareAhead', async () => {
    const ctx = fakeContext();
    const s = await sinkOf({ ...COLUMNS, table: 'C_D' }, ctx);
    const b = batch('o', [msg(1, value(1)), msg(2, 'not json'), msg(3, value(3))]);
    s.prepareAhead!(b);
    expect((await s.write(b, { signal: signal() })).map((r) => r.status)).toEqual(['ok', 'deadLetter', 'ok']);
    expect(prepared(ctx)).toBe(0);
    expect(await offsetsOf('C_D')).toEqual([1, 3]);
  });
});
