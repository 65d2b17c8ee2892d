/**
 * The postgres-cdc source in a real broker process against the real PostgreSQL of this machine
 * (wal_level=logical): every change is in the station exactly once — compared row by row — through a
 * SIGKILL of the broker mid-stream and a terminated replication backend. The slot is confirmed only
 * after the station stored the events; what comes again carries the same msgIds, which the station's
 * dedup window drops.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { holdExclusive } from '../src/exclusive.js';
import { api, eventually, startBroker, type BrokerProcess } from '../src/index.js';

// The machine's PostgreSQL is shared: files that use it take turns (vitest.config.ts, EXCLUSIVE).
await holdExclusive('postgres');

const PG = { host: '127.0.0.1', port: 5432, database: 'test', user: 'postgres' };
const STATION = 'cdc-e2e';
const RUN = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
const TABLE = `cdc_e2e_${RUN}`;
const SLOT = `cdc_e2e_slot_${RUN}`;
const PUB = `cdc_e2e_pub_${RUN}`;

interface Browsed {
  offset: number;
  key?: string;
  value: string;
  headers: Record<string, string>;
}
interface Event {
  op: string;
  table: string;
  before: { id: number; n: number } | null;
  after: { id: number; n: number } | null;
  lsn: string;
}

async function stationEvents(url: string): Promise<Event[]> {
  const out: Event[] = [];
  for (const partition of [0, 1]) {
    let from = 1;
    for (;;) {
      const page = await api<{ messages: Browsed[] }>(
        url,
        'GET',
        `/v1/stations/${STATION}/messages?partition=${partition}&fromOffset=${from}&limit=10000`,
      );
      out.push(...page.messages.map((m) => JSON.parse(m.value) as Event));
      if (page.messages.length < 10_000) break;
      from = (page.messages.at(-1) as Browsed).offset + 1;
    }
  }
  return out;
}

describe('postgres-cdc source in a real broker process', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  it('each change exactly once through a SIGKILL of the broker and a terminated replication backend', async () => {
    const db = new pg.Client(PG);
    db.on('error', () => undefined);
    await db.connect().catch((err: unknown) => {
      throw new Error(`PostgreSQL is not reachable at ${PG.host}:${PG.port} (.ci/run starts it with wal_level=logical): ${String(err)}`);
    });
    cleanup.push(() => db.end());
    await db.query(`CREATE TABLE public."${TABLE}" (id int PRIMARY KEY, n int NOT NULL)`);
    cleanup.push(() => db.query(`DROP TABLE IF EXISTS public."${TABLE}"`));
    cleanup.push(() => db.query(`DROP PUBLICATION IF EXISTS "${PUB}"`));
    cleanup.push(async () => {
      await eventually('the slot released', 30_000, async () =>
        (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [SLOT])).rowCount === 0 ? true : undefined,
      );
      await db.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [SLOT]);
    });

    const dataDir = await mkdtemp(join(tmpdir(), 'junction-cdc-e2e-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(
      configPath,
      `stations:\n  - name: ${STATION}\n    partitions: 2\n    dedupWindowMs: 600000\nconnectors:\n  - name: from-pg\n    plugin: postgres-cdc\n    station: ${STATION}\n    config:\n` +
        `      host: ${PG.host}\n      port: ${PG.port}\n      database: ${PG.database}\n      user: ${PG.user}\n      publication: ${PUB}\n      tables: [public.${TABLE}]\n      slot: ${SLOT}\n      maxMessages: 100\n      maxLatencyMs: 20\n`,
    );
    const start = async (): Promise<BrokerProcess> => {
      const b = await startBroker({ dataDir, args: ['--config', configPath] });
      cleanup.push(() => b.kill());
      return b;
    };
    let broker = await start();
    await eventually('the slot', 30_000, async () =>
      (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [SLOT])).rowCount === 1 ? true : undefined,
    );

    // 300 transactions of 10 inserts, then each row's n updated once (every 7th row deleted instead).
    const writes = async (from: number, to: number): Promise<void> => {
      for (let t = from; t < to; t++) {
        const ids = Array.from({ length: 10 }, (_, j) => t * 10 + j);
        await db.query(`INSERT INTO public."${TABLE}" (id, n) SELECT unnest($1::int[]), 0`, [ids]);
      }
    };
    const writing = writes(0, 150);
    await eventually('events flowing', 60_000, async () => ((await stationEvents(broker.url)).length > 200 ? true : undefined), 20);
    const beforeKill = (await stationEvents(broker.url)).length;
    await broker.kill();
    await writing;
    await writes(150, 250);
    broker = await start();
    const more = writes(250, 300);
    await eventually('more events', 60_000, async () => ((await stationEvents(broker.url)).length > 2550 ? true : undefined), 20);
    // The replication backend terminated mid-stream: the task restarts at the slot's confirmed LSN.
    const terminated = (
      await db.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, [SLOT])
    ).rowCount;
    await more;
    for (let id = 0; id < 3000; id++) {
      if (id % 7 === 0) await db.query(`DELETE FROM public."${TABLE}" WHERE id = $1`, [id]);
      else if (id % 3 === 0) await db.query(`UPDATE public."${TABLE}" SET n = 1 WHERE id = $1`, [id]);
    }
    const deletes = Array.from({ length: 3000 }, (_, id) => id).filter((id) => id % 7 === 0);
    const updates = Array.from({ length: 3000 }, (_, id) => id).filter((id) => id % 7 !== 0 && id % 3 === 0);
    const total = 3000 + deletes.length + updates.length;
    const got = await eventually(
      'every change in the station',
      120_000,
      async () => {
        const ev = await stationEvents(broker.url);
        return ev.length >= total ? ev : undefined;
      },
      200,
    );
    expect(beforeKill).toBeLessThan(1500); // the kill came mid-stream
    expect(terminated).toBe(1);
    expect(got.length).toBe(total);
    const inserts = got
      .filter((e) => e.op === 'insert')
      .map((e) => e.after!.id)
      .sort((a, b) => a - b);
    expect(inserts).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    expect(
      got
        .filter((e) => e.op === 'delete')
        .map((e) => e.before!.id)
        .sort((a, b) => a - b),
    ).toEqual(deletes);
    const ups = got.filter((e) => e.op === 'update');
    expect(ups.map((e) => e.after!.id).sort((a, b) => a - b)).toEqual(updates);
    expect(ups.every((e) => e.after!.n === 1)).toBe(true);
    expect(got.every((e) => e.table === TABLE)).toBe(true);
    await broker.stop();
  }, 300_000);
});
