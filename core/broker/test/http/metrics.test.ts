import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { registerBrokerMetrics } from '../../src/http/index.js';
import { createStation, makeApp, produceText, type TestApp } from './app.js';

let t: TestApp;
beforeEach(async () => {
  t = await makeApp({ fsync: 'always' });
});
afterEach(async () => {
  await t.close();
});

async function scrape(): Promise<string> {
  const res = await t.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toContain('text/plain');
  return res.body;
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('broker metrics', () => {
  it("counts what retention removed before a group settled it, and shows it in the group's info", async () => {
    await createStation(t.app, 'r');
    await produceText(t.app, 'r', ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    await t.app.inject({ method: 'POST', url: '/v1/stations/r/groups/g/fetch', payload: { maxMessages: 3 } });
    const patch = await t.app.inject({ method: 'PATCH', url: '/v1/stations/r', payload: { retention: { maxMessages: 2 } } });
    expect(patch.statusCode).toBe(200);
    let info: { lostToRetention: number; pending: number; lag: number; partitions: { lostToRetention: number }[] } | undefined;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      info = (await t.app.inject({ method: 'GET', url: '/v1/stations/r/groups/g' })).json();
      if (info!.lostToRetention === 8) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(info).toMatchObject({ lostToRetention: 8, pending: 0, lag: 2, partitions: [{ lostToRetention: 8 }] });
    expect(value(await scrape(), 'junction_group_retention_lost_total{station="r",group="g"}')).toBe(8);
  });

  it('counts msgIds that left a full dedup index early, and the station info shows the index', async () => {
    const bad = await t.app.inject({ method: 'POST', url: '/v1/stations', payload: { name: 'd0', dedupMaxIds: 999 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'dedupMaxIds' }] });
    await createStation(t.app, 'd', { dedupMaxIds: 1_000 });
    const messages = Array.from({ length: 1_200 }, (_, i) => ({ value: `v${i}`, msgId: `id-${i}` }));
    expect((await t.app.inject({ method: 'POST', url: '/v1/stations/d/messages', payload: { messages } })).statusCode).toBe(200);
    expect(value(await scrape(), 'junction_dedup_evicted_total{station="d"}')).toBe(200);
    const info = (await t.app.inject({ method: 'GET', url: '/v1/stations/d' })).json();
    expect(info.config.dedupMaxIds).toBe(1_000);
    expect(info.dedup).toMatchObject({ ids: 1_000, maxIds: 1_000, evicted: 200 });
    const patch = await t.app.inject({ method: 'PATCH', url: '/v1/stations/d', payload: { dedupMaxIds: 5_000 } });
    expect(patch.json().dedup).toMatchObject({ maxIds: 5_000 });
  });

  it('counts traffic and computes gauges at scrape time', async () => {
    await createStation(t.app, 'm', { partitions: 2 });
    await produceText(t.app, 'm', ['a', 'bb', 'ccc']);
    const f1 = await t.app.inject({ method: 'POST', url: '/v1/stations/m/groups/g/fetch', payload: { maxMessages: 3 } });
    const ids = (f1.json() as { messages: { deliveryId: string }[] }).messages.map((d) => d.deliveryId);
    expect(ids).toHaveLength(3);
    await t.app.inject({ method: 'POST', url: '/v1/stations/m/groups/g/ack', payload: { deliveryIds: [ids[0]] } });
    await t.app.inject({ method: 'POST', url: '/v1/stations/m/groups/g/nack', payload: { deliveryIds: [ids[1]] } });
    await t.app.inject({ method: 'POST', url: '/v1/stations/m/groups/g/dead-letter', payload: { deliveryIds: [ids[2]] } });
    await t.app.inject({ method: 'POST', url: '/v1/stations/m/groups/g/fetch', payload: {} }); // the redelivery

    const text = await scrape();
    expect(value(text, 'junction_messages_in_total{station="m"}')).toBe(3);
    expect(value(text, 'junction_bytes_in_total{station="m"}')).toBeGreaterThanOrEqual(6);
    expect(value(text, 'junction_messages_out_total{station="m",group="g"}')).toBe(4);
    expect(value(text, 'junction_redeliveries_total{station="m",group="g"}')).toBe(1);
    expect(value(text, 'junction_acked_total{station="m",group="g"}')).toBe(1);
    expect(value(text, 'junction_dead_lettered_total{station="m",group="g"}')).toBe(1);
    expect(value(text, 'junction_produce_duration_seconds_count{station="m"}')).toBe(1);
    expect(value(text, 'junction_fsync_duration_seconds_count')).toBeGreaterThan(0);
    expect(value(text, 'junction_station_messages{station="m"}')).toBe(3);
    expect(value(text, 'junction_station_messages{station="m.dls"}')).toBe(1);
    expect(value(text, 'junction_station_bytes{station="m"}')).toBeGreaterThan(0);
    const lag = [0, 1].map((p) => value(text, `junction_group_lag{station="m",group="g",partition="${p}"}`) ?? 0);
    const pending = [0, 1].map((p) => value(text, `junction_group_pending{station="m",group="g",partition="${p}"}`) ?? 0);
    expect(lag[0]! + lag[1]!).toBe(1);
    expect(pending[0]! + pending[1]!).toBe(1);

    // gauges follow the store: a deleted station disappears from the next scrape
    await t.app.inject({ method: 'DELETE', url: '/v1/stations/m' });
    const after = await scrape();
    expect(value(after, 'junction_station_messages{station="m"}')).toBeUndefined();
    expect(value(after, 'junction_messages_in_total{station="m"}')).toBe(3);
  });

  it("exports each group's oldest unacked age, growing while a delivery stays unacked and 0 once acked; the group API shows it", async () => {
    await createStation(t.app, 'age');
    await produceText(t.app, 'age', ['only']);
    const series = 'junction_group_oldest_unacked_age_seconds{station="age",group="g"}';
    const f = await t.app.inject({ method: 'POST', url: '/v1/stations/age/groups/g/fetch', payload: { maxMessages: 1 } });
    const ids = (f.json() as { messages: { deliveryId: string }[] }).messages.map((d) => d.deliveryId);
    expect(ids).toHaveLength(1);
    const first = value(await scrape(), series);
    expect(first).toBeGreaterThanOrEqual(0);
    let grown: number | undefined;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      grown = value(await scrape(), series);
      if (grown! > first!) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(grown).toBeGreaterThan(first!);
    const info = (await t.app.inject({ method: 'GET', url: '/v1/stations/age/groups/g' })).json();
    expect(info.oldestUnackedAgeSeconds).toBeGreaterThanOrEqual(grown!);
    const list = (await t.app.inject({ method: 'GET', url: '/v1/stations/age/groups' })).json();
    expect(list.groups[0].oldestUnackedAgeSeconds).toBeGreaterThanOrEqual(grown!);

    await t.app.inject({ method: 'POST', url: '/v1/stations/age/groups/g/ack', payload: { deliveryIds: ids } });
    expect(value(await scrape(), series)).toBe(0);
    expect((await t.app.inject({ method: 'GET', url: '/v1/stations/age/groups/g' })).json()).toMatchObject({
      lag: 0,
      oldestUnackedAgeSeconds: null,
    });
  });

  it('observes Memphis produce latency too, and close() unregisters', async () => {
    await createStation(t.app, 'mm');
    await t.app.inject({ method: 'POST', url: '/stations/mm/produce/single', headers: { 'content-type': 'text/plain' }, payload: 'x' });
    expect(value(await scrape(), 'junction_produce_duration_seconds_count{station="mm"}')).toBe(1);

    const registry = new Registry();
    const m = registerBrokerMetrics(t.store, registry);
    expect(() => registerBrokerMetrics(t.store, registry)).toThrow();
    m.close();
    m.close();
    expect(await registry.metrics()).toBe('\n');
    const again = registerBrokerMetrics(t.store, registry);
    await produceText(t.app, 'mm', ['y']);
    expect(await registry.metrics()).toContain('junction_messages_in_total{station="mm"} 1');
    again.close();
  });

  it('keeps scraping when the store is closed', async () => {
    await t.store.close();
    const text = await scrape();
    expect(value(text, 'junction_metrics_collect_errors_total')).toBeGreaterThan(0);
  });
});
