/**
 * The PostgreSQL sink in a real broker process against the real PostgreSQL of this machine: messages
 * produced → exactly those rows, compared value by value; a SIGKILL of the broker mid-stream and
 * backends terminated mid-stream (pg_terminate_backend) → still each offset once; values that violate
 * the column type (not JSON into jsonb) dead-lettered with their SQLSTATE and their original bytes.
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
const STATION = 'pg-e2e';
const CONNECTOR = `to-pg-${randomBytes(3).toString('hex')}`;
const TABLE = `e2e_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

const isBad = (id: number): boolean => id % 500 === 250;
const valueOf = (id: number): string =>
  isBad(id)
    ? `not-json-${id}`
    : JSON.stringify({ id, amount: id * 1.5, note: 'x'.repeat(id % 50), tab: id % 97 === 0 ? 'a\tb\\c\nd' : '' });

async function produce(url: string, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i += 250) {
    const ids = Array.from({ length: Math.min(250, from + n - i) }, (_, j) => i + j);
    await api(url, 'POST', `/v1/stations/${STATION}/messages`, { messages: ids.map((id) => ({ value: valueOf(id), key: `k${id % 7}` })) });
  }
}

describe('postgres sink in a real broker process', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  it('exactly the good rows through a SIGKILL of the broker and terminated backends; bad values dead-lettered with SQLSTATE', async () => {
    const db = new pg.Client(PG);
    db.on('error', () => undefined);
    await db.connect().catch((err: unknown) => {
      throw new Error(`PostgreSQL is not reachable at ${PG.host}:${PG.port} (.ci/run starts it): ${String(err)}`);
    });
    cleanup.push(() => db.end());
    cleanup.push(() => db.query(`DROP TABLE IF EXISTS public."${TABLE}"`));
    cleanup.push(() => db.query(`DELETE FROM junction_sink_offsets WHERE connector = $1`, [CONNECTOR]));
    cleanup.push(() => db.query(`DELETE FROM junction_sink_dead_letters WHERE connector = $1`, [CONNECTOR]));
    const count = async (): Promise<number> =>
      Number((await db.query(`SELECT count(*) AS n FROM public."${TABLE}"`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0]?.n ?? 0);
    const terminate = async (): Promise<number> =>
      (
        await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1`, [
          `junction-sink:${CONNECTOR}:%`,
        ])
      ).rowCount ?? 0;

    const dataDir = await mkdtemp(join(tmpdir(), 'junction-pg-e2e-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(
      configPath,
      `stations:\n  - name: ${STATION}\n    partitions: 2\nconnectors:\n  - name: ${CONNECTOR}\n    plugin: postgres\n    station: ${STATION}\n    config:\n` +
        `      host: ${PG.host}\n      port: ${PG.port}\n      database: ${PG.database}\n      user: ${PG.user}\n      table: ${TABLE}\n      copyMinRows: 50\n` +
        `    batch:\n      maxMessages: 200\n      maxLatencyMs: 100\n`,
    );
    const start = async (): Promise<BrokerProcess> => {
      const b = await startBroker({ dataDir, args: ['--config', configPath] });
      cleanup.push(() => b.kill());
      return b;
    };

    let broker = await start();
    await produce(broker.url, 0, 3000);
    await eventually('the first rows', 30_000, async () => ((await count()) > 0 ? true : undefined));
    const beforeKill = await count();
    await broker.kill();
    broker = await start();

    // Backends terminated while the sink writes the rest.
    const producing = produce(broker.url, 3000, 3000);
    let terminated = 0;
    for (let round = 0; round < 3; round++) {
      const seen = await count();
      await eventually('more rows', 60_000, async () => ((await count()) > seen ? true : undefined), 20);
      terminated += await terminate();
    }
    await producing;

    const total = 6000;
    const good = Array.from({ length: total }, (_, id) => id).filter((id) => !isBad(id));
    const bad = Array.from({ length: total }, (_, id) => id).filter(isBad);
    // Settled: every message acknowledged by the connector's group (written or dead-lettered).
    await eventually(
      'the connector group to settle',
      90_000,
      async () => {
        const g = await api<{ lag: number; pending: number }>(broker.url, 'GET', `/v1/stations/${STATION}/groups/connector.${CONNECTOR}`);
        return g.lag === 0 && g.pending === 0 && (await count()) >= good.length ? true : undefined;
      },
      100,
    );

    const rows = (
      await db.query<{ key: string; value: unknown; partition: number; offset: string; station: string }>(
        `SELECT key, value, partition, "offset", station FROM public."${TABLE}"`,
      )
    ).rows;
    expect(beforeKill).toBeLessThan(3000); // the kill came mid-stream
    expect(terminated).toBeGreaterThan(0);
    expect(rows.length).toBe(good.length);
    expect(new Set(rows.map((r) => `${r.partition}:${r.offset}`)).size).toBe(good.length);
    const byId = new Map(rows.map((r) => [(r.value as { id: number }).id, r]));
    expect([...byId.keys()].sort((a, b) => a - b)).toEqual(good);
    for (const id of good) {
      const r = byId.get(id)!;
      expect(r.value).toEqual(JSON.parse(valueOf(id)));
      expect(r.key).toBe(`k${id % 7}`);
      expect(r.station).toBe(STATION);
    }

    const dls = await api<{ messages: { value: string; headers: Record<string, string> }[] }>(
      broker.url,
      'GET',
      `/v1/stations/${STATION}/dls?limit=1000`,
    );
    const deadIds = dls.messages.map((m) => Number(m.value.replace('not-json-', '')));
    expect([...new Set(deadIds)].sort((a, b) => a - b)).toEqual(bad);
    for (const m of dls.messages) {
      expect(m.value).toMatch(/^not-json-\d+$/);
      expect(m.headers['junction-dls-code']).toBe('SQLSTATE_22P02');
      expect(m.headers['junction-dls-reason']).toContain('invalid input syntax for type json');
      expect(m.headers['junction-dls-connector']).toBe(CONNECTOR);
    }
    await broker.stop();
  });
});
