/**
 * /healthz and /metrics of a broker whose stored data was damaged while it was stopped: it serves, says
 * it is degraded and why (station, partition, offsets), counts the damage it found while opening (before
 * the metrics subscribed), and a station whose metadata is lost answers STATION_DAMAGED.
 */
import { mkdtemp, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedStore } from '@junction/broker';
import { buildApp } from '../src/index.js';

const logger = pino({ level: 'silent' });
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-health-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function seed(): Promise<void> {
  const store = new EmbeddedStore({ dataDir: dir });
  await store.open();
  await store.createStation('orders', { partitions: 2 });
  await store.createStation('audit');
  for (let i = 0; i < 10; i++)
    await store.produce(
      'orders',
      Array.from({ length: 100 }, (_, k) => ({ key: `k${k}`, value: Buffer.from(`order-${i}-${k}`.padEnd(200, '.')) })),
    );
  await store.close();
}

describe('/healthz and /metrics after damage', () => {
  it('answers 200 ok when nothing is damaged', async () => {
    await seed();
    const store = new EmbeddedStore({ dataDir: dir });
    await store.open();
    const app = buildApp({ store, logger });
    try {
      const res = await app.inject({ method: 'GET', url: '/healthz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok' });
    } finally {
      await app.close();
      await store.close();
    }
  });

  it('answers 200 degraded naming station, partition and offsets; metrics count what start-up found', async () => {
    await seed();
    const partDir = join(dir, 'stations', 'orders', 'partitions', '1');
    const seg = join(
      partDir,
      (await readdir(partDir))
        .filter((f) => f.endsWith('.log'))
        .sort()
        .at(-1)!,
    );
    await truncate(seg, Math.floor((await stat(seg)).size / 2));
    const store = new EmbeddedStore({ dataDir: dir, logger });
    await store.open();
    const app = buildApp({ store, logger });
    try {
      const res = await app.inject({ method: 'GET', url: '/healthz' });
      expect(res.statusCode).toBe(200);
      const body = res.json() as { status: string; reasons: string[] };
      expect(body.status).toBe('degraded');
      expect(body.reasons).toHaveLength(1);
      expect(body.reasons[0]).toMatch(/^station orders: partition 1: \d+ messages lost \(offsets \d+–\d+\)/);

      const info = (await app.inject({ method: 'GET', url: '/v1/stations/orders' })).json() as {
        health: { status: string };
        damage: Array<{ partition: number; messages: number }>;
      };
      expect(info.health.status).toBe('degraded');
      expect(info.damage).toHaveLength(1);
      expect(info.damage[0]!.partition).toBe(1);
      const lost = info.damage[0]!.messages;
      expect(lost).toBeGreaterThan(0);

      const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(text).toContain('junction_corrupt_ranges_total{station="orders",partition="1"} 1');
      expect(text).toContain(`junction_lost_messages_total{station="orders",partition="1"} ${lost}`);
      expect(text).toContain('junction_station_degraded{station="orders"} 1');
      expect(text).toContain('junction_station_degraded{station="audit"} 0');

      // Still serving: produce and read work on the damaged station.
      const produced = await app.inject({
        method: 'POST',
        url: '/v1/stations/orders/messages',
        payload: { messages: [{ value: 'after' }] },
      });
      expect(produced.statusCode).toBe(200);
    } finally {
      await app.close();
      await store.close();
    }
  });

  it('a station whose metadata is lost is listed damaged, answers STATION_DAMAGED (503), and /healthz says so', async () => {
    await seed();
    const sdir = join(dir, 'stations', 'audit');
    await rm(join(sdir, 'station.json'));
    await rm(join(sdir, 'station.json.prev'));
    await rm(join(sdir, 'partitions'), { recursive: true });
    const store = new EmbeddedStore({ dataDir: dir, logger });
    await store.open();
    const app = buildApp({ store, logger });
    try {
      const health = (await app.inject({ method: 'GET', url: '/healthz' })).json() as { status: string; reasons: string[] };
      expect(health.status).toBe('degraded');
      expect(health.reasons).toEqual([expect.stringMatching(/^station audit \(damaged: cannot serve\): its metadata is lost/)]);
      const list = (await app.inject({ method: 'GET', url: '/v1/stations' })).json() as {
        stations: Array<{ name: string; health: { status: string } }>;
      };
      expect(list.stations.map((s) => [s.name, s.health.status])).toEqual([
        ['audit', 'damaged'],
        ['audit.dls', 'ok'],
        ['orders', 'ok'],
        ['orders.dls', 'ok'],
      ]);
      const produced = await app.inject({ method: 'POST', url: '/v1/stations/audit/messages', payload: { messages: [{ value: 'x' }] } });
      expect(produced.statusCode).toBe(503);
      expect(produced.json()).toMatchObject({ code: 'STATION_DAMAGED' });
      expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toContain(
        'junction_metadata_repairs_total{station="audit",file="station.json",outcome="lost"} 1',
      );
      expect((await app.inject({ method: 'DELETE', url: '/v1/stations/audit' })).statusCode).toBe(204);
      expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    } finally {
      await app.close();
      await store.close();
    }
  });
});
