/** The CDC source against the real PostgreSQL of this machine (wal_level=logical; .ci/run sets it). */
import { afterAll, describe, expect, it } from 'vitest';
import { holdExclusive } from '@junction/e2e/exclusive';
import type { Source, SourceBatch } from '@junction/sdk-connector';
import { fakeContext, sourceConformanceSuite } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import type { CdcPosition, ChangeEvent } from '../src/source.js';
import { admin, PG, unique } from './helpers.js';

// The machine's PostgreSQL is shared: files that use it take turns (vitest.config.ts, EXCLUSIVE).
await holdExclusive('postgres');

const db = await admin();
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
  await db.end();
});

/** A table (REPLICA IDENTITY FULL), its publication and the slot name, all dropped afterwards. */
async function fixture(prefix: string): Promise<{ table: string; publication: string; slot: string }> {
  const table = unique(prefix);
  const publication = `${table}_pub`;
  const slot = `${table}_slot`;
  await db.query(`CREATE TABLE public."${table}" (id int PRIMARY KEY, name text, data jsonb, raw bytea, at timestamptz)`);
  await db.query(`ALTER TABLE public."${table}" REPLICA IDENTITY FULL`);
  cleanup.push(() => db.query(`DROP TABLE IF EXISTS public."${table}"`));
  cleanup.push(() => db.query(`DROP PUBLICATION IF EXISTS "${publication}"`));
  cleanup.push(async () => {
    // The slot may still be in use for a moment after the source closed.
    for (let i = 0; i < 50; i++) {
      const r = await db.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      if (r.rowCount === 0) return;
      if (!r.rows[0].active) {
        await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
        return;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  });
  return { table, publication, slot };
}

async function open(config: Record<string, unknown>, position?: CdcPosition): Promise<Source<CdcPosition>> {
  const s = (await plugin.open(
    plugin.config.parse({ ...PG, maxLatencyMs: 20, ...config }),
    fakeContext(position === undefined ? {} : { position }),
  )) as Source<CdcPosition>;
  cleanup.push(() => s.close());
  return s;
}

async function take(
  source: Source<CdcPosition>,
  n: number | ((got: SourceBatch<CdcPosition>[]) => boolean),
  commit: boolean,
): Promise<SourceBatch<CdcPosition>[]> {
  const enough = typeof n === 'function' ? n : (got: SourceBatch<CdcPosition>[]) => got.reduce((s, x) => s + x.messages.length, 0) >= n;
  const ac = new AbortController();
  const out: SourceBatch<CdcPosition>[] = [];
  const timer = setTimeout(() => ac.abort(), 20_000);
  try {
    for await (const b of source.read(ac.signal)) {
      out.push(b);
      if (commit) await source.commit([b.position]);
      if (enough(out)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

const events = (b: SourceBatch<CdcPosition>[]): ChangeEvent[] =>
  b.flatMap((x) => x.messages.map((m) => JSON.parse(new TextDecoder().decode(m.value)) as ChangeEvent));
const confirmed = async (slot: string): Promise<string> =>
  (await db.query('SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.l;

describe('postgres-cdc source', () => {
  it('emits insert / update / delete / truncate with before, after, LSN and commit time', async () => {
    const f = await fixture('cdc_shape');
    const source = await open({ publication: f.publication, tables: [`public.${f.table}`], slot: f.slot });
    const t = `public."${f.table}"`;
    await db.query(
      `BEGIN; INSERT INTO ${t} VALUES (1, 'a', '{"x":1}', '\\x00ff', '2024-01-02T03:04:05Z'), (2, 'b', null, null, null); COMMIT`,
    );
    await db.query(`UPDATE ${t} SET name = 'a2' WHERE id = 1`);
    await db.query(`DELETE FROM ${t} WHERE id = 2`);
    await db.query(`TRUNCATE ${t}`);
    const got = await take(source, 5, true);
    const ev = events(got);
    expect(ev.map((e) => e.op)).toEqual(['insert', 'insert', 'update', 'delete', 'truncate']);
    expect(ev[0]).toMatchObject({
      schema: 'public',
      table: f.table,
      before: null,
      after: { id: 1, name: 'a', data: { x: 1 }, raw: '\\x00ff', at: '2024-01-02T03:04:05.000Z' },
    });
    expect(ev[2]).toMatchObject({ before: { id: 1, name: 'a' }, after: { id: 1, name: 'a2' } });
    expect(ev[3]).toMatchObject({ before: { id: 2, name: 'b' }, after: null });
    expect(ev[0]?.lsn).toBe(ev[1]?.lsn); // one transaction
    expect(new Set(ev.map((e) => e.lsn)).size).toBe(4);
    for (const e of ev) expect(Date.now() - Date.parse(e.commitTime)).toBeLessThan(120_000);
    const messages = got.flatMap((b) => b.messages);
    expect(new Set(messages.map((m) => m.msgId)).size).toBe(5);
    expect(messages[0]?.headers).toEqual({ 'pg-table': `public.${f.table}`, 'pg-op': 'insert', 'pg-lsn': ev[0]?.lsn });
    expect(messages[0]?.key).toBe(`public.${f.table}:[1]`);
  });

  it('the slot is confirmed only after commit: uncommitted changes come again with the same msgIds', async () => {
    const f = await fixture('cdc_confirm');
    const config = { publication: f.publication, tables: [`public.${f.table}`], slot: f.slot, maxMessages: 10 };
    const first = await open(config);
    const start = await confirmed(f.slot);
    for (let i = 0; i < 30; i++) await db.query(`INSERT INTO public."${f.table}" (id, name) VALUES ($1, 'n')`, [i]);
    const batches = await take(first, 30, false);
    await first.close();
    expect(await confirmed(f.slot)).toBe(start); // nothing stored, nothing confirmed
    const second = await open(config);
    const again = await take(second, 30, false);
    expect(again.flatMap((b) => b.messages.map((m) => m.msgId))).toEqual(batches.flatMap((b) => b.messages.map((m) => m.msgId)));
    // Commit the first batches up to 20 rows (a batch may close early at maxLatencyMs on a busy machine, so
    // their sizes vary): the slot moves to their position, and a new session starts after them.
    let k = 1;
    while (k < again.length && again.slice(0, k + 1).reduce((s, b) => s + b.messages.length, 0) <= 20) k++;
    const committedBatches = again.slice(0, k);
    const n = committedBatches.reduce((s, b) => s + b.messages.length, 0);
    expect(n).toBeLessThanOrEqual(20);
    const upTo = committedBatches[k - 1] as SourceBatch<CdcPosition>;
    await second.commit(committedBatches.map((b) => b.position));
    await second.close();
    expect(await confirmed(f.slot)).toBe(upTo.position.lsn); // confirmed by close() at the latest
    const third = await open(config, upTo.position);
    // A batch may end inside the stream before its transaction's commit arrived: its position is then the
    // transaction before, and that last transaction comes again with the same msgIds (the station drops them).
    const committedIds = new Set(committedBatches.flatMap((b) => b.messages.map((m) => m.msgId)));
    const rest = await take(third, (got) => got.flatMap((b) => b.messages).filter((m) => !committedIds.has(m.msgId)).length >= 10, true);
    const fresh = rest.flatMap((b) => b.messages).filter((m) => !committedIds.has(m.msgId));
    const repeated = rest.flatMap((b) => b.messages).filter((m) => committedIds.has(m.msgId));
    expect(fresh.map((m) => (JSON.parse(new TextDecoder().decode(m.value)) as ChangeEvent).after?.id).slice(0, 10)).toEqual(
      Array.from({ length: 10 }, (_, i) => n + i),
    );
    expect(repeated.length).toBeLessThanOrEqual(1);
  });

  it('an initial snapshot consistent with the slot: every existing row once as read, then the changes after it', async () => {
    const f = await fixture('cdc_snap');
    await db.query(`INSERT INTO public."${f.table}" (id, name) SELECT g, 'old' FROM generate_series(1, 2500) g`);
    const source = await open({ publication: f.publication, tables: [`public.${f.table}`], slot: f.slot, snapshot: true });
    await db.query(`INSERT INTO public."${f.table}" (id, name) VALUES (9001, 'new')`);
    await db.query(`UPDATE public."${f.table}" SET name = 'changed' WHERE id = 1`);
    const ev = events(await take(source, 2502, true));
    const reads = ev.filter((e) => e.op === 'read');
    expect(reads.map((e) => e.after?.id).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    expect(reads.every((e) => e.after?.name === 'old')).toBe(true);
    expect(ev.slice(2500).map((e) => [e.op, e.after?.id, e.after?.name])).toEqual([
      ['insert', 9001, 'new'],
      ['update', 1, 'changed'],
    ]);
  });

  it('fails clearly: a publication that does not exist (NOT_FOUND), a server that is down (retryable)', async () => {
    const missing = await plugin
      .open(plugin.config.parse({ ...PG, publication: 'junction_no_such_pub', slot: unique('s') }), fakeContext())
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((missing as { code?: string }).code).toBe('NOT_FOUND');
    const down = await plugin.open(plugin.config.parse({ ...PG, port: 1, publication: 'p' }), fakeContext()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(down as { code?: string; retryable?: boolean }).toMatchObject({ code: 'CONNECTION_FAILED', retryable: true });
  });
});

// The kit against the real server: a writer keeps the published table busy while the checks read.
const kit = await fixture('cdc_kit');
let n = 0;
const writer = setInterval(
  () => void db.query(`INSERT INTO public."${kit.table}" (id, name) VALUES ($1, 'k')`, [n++]).catch(() => undefined),
  5,
);
cleanup.push(async () => clearInterval(writer));
sourceConformanceSuite(
  { describe, it },
  {
    plugin,
    config: { ...PG, publication: kit.publication, tables: [`public.${kit.table}`], slot: kit.slot, maxMessages: 5, maxLatencyMs: 20 },
    timeoutMs: 15_000,
  },
);
