import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { browse, createStation, makeApp, messageCount, produceText, type TestApp } from './app.js';

let t: TestApp;
beforeEach(async () => {
  t = await makeApp();
});
afterEach(async () => {
  await t.close();
});

describe('stations over HTTP', () => {
  it('creates, lists, gets, patches and deletes a station', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/stations',
      payload: { name: 'orders', partitions: 3, retention: { maxMessages: 1000 } },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      name: 'orders',
      config: { partitions: 3, storage: 'file', retention: { maxMessages: 1000 } },
      messages: 0,
    });

    const list = await t.app.inject({ method: 'GET', url: '/v1/stations' });
    expect(list.statusCode).toBe(200);
    expect((list.json() as { stations: { name: string }[] }).stations.map((s) => s.name)).toContain('orders');

    const one = await t.app.inject({ method: 'GET', url: '/v1/stations/orders' });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ name: 'orders', partitions: [{ partition: 0 }, { partition: 1 }, { partition: 2 }] });

    const patched = await t.app.inject({
      method: 'PATCH',
      url: '/v1/stations/orders',
      payload: { dedupWindowMs: 5000, deadLetter: { maxDeliveries: 2 } },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ config: { dedupWindowMs: 5000, deadLetter: { maxDeliveries: 2 }, partitions: 3 } });

    const del = await t.app.inject({ method: 'DELETE', url: '/v1/stations/orders' });
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');
    const gone = await t.app.inject({ method: 'GET', url: '/v1/stations/orders' });
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ code: 'STATION_NOT_FOUND' });
  });

  it('lists stations and groups in pages: limit, after (the cursor in next), prefix; bad queries answer 400', async () => {
    const names = Array.from({ length: 25 }, (_, i) => `st-${String(i).padStart(2, '0')}`);
    for (const n of names) await createStation(t.app, n);
    await createStation(t.app, 'other');
    const all: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const res = await t.app.inject({ method: 'GET', url: `/v1/stations?limit=10&prefix=st-${next ? `&after=${next}` : ''}` });
      expect(res.statusCode).toBe(200);
      const body = res.json() as { stations: { name: string }[]; next?: string };
      expect(body.stations.length).toBeLessThanOrEqual(10);
      all.push(...body.stations.map((s) => s.name));
      next = body.next;
      pages++;
    } while (next !== undefined);
    // Dead-letter stations are stations too: st-00, st-00.dls, st-01, ...
    expect(all).toEqual(names.flatMap((n) => [n, `${n}.dls`]));
    expect(pages).toBe(5);
    // Without a query: the first 1000 in name order, no next.
    const first = (await t.app.inject({ method: 'GET', url: '/v1/stations' })).json() as { stations: { name: string }[]; next?: string };
    expect(first.stations).toHaveLength(52);
    expect(first.next).toBeUndefined();
    for (const bad of ['limit=0', 'limit=1001', 'limit=x', 'after=', 'nope=1']) {
      const res = await t.app.inject({ method: 'GET', url: `/v1/stations?${bad}` });
      expect(res.statusCode, bad).toBe(400);
      expect(res.json()).toMatchObject({ code: 'BODY_INVALID' });
    }
    for (const g of ['c', 'a', 'b']) await t.app.inject({ method: 'PUT', url: `/v1/stations/other/groups/${g}`, payload: {} });
    const g1 = (await t.app.inject({ method: 'GET', url: '/v1/stations/other/groups?limit=2' })).json() as {
      groups: { group: string }[];
      next?: string;
    };
    expect([g1.groups.map((g) => g.group), g1.next]).toEqual([['a', 'b'], 'b']);
    const g2 = (await t.app.inject({ method: 'GET', url: '/v1/stations/other/groups?limit=2&after=b' })).json() as {
      groups: { group: string }[];
      next?: string;
    };
    expect([g2.groups.map((g) => g.group), g2.next]).toEqual([['c'], undefined]);
  });

  it('answers 409 for an existing station and keeps its data', async () => {
    await createStation(t.app, 'orders');
    await produceText(t.app, 'orders', ['kept']);
    const again = await t.app.inject({ method: 'POST', url: '/v1/stations', payload: { name: 'orders', partitions: 2 } });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'STATION_EXISTS' });
    expect((await browse(t.app, 'orders')).map((m) => m.value)).toEqual(['kept']);
    expect((await t.store.getStation('orders')).config.partitions).toBe(1);
  });

  it('rejects bad create bodies with field paths and creates nothing', async () => {
    const cases: Array<[unknown, string]> = [
      [{ name: '.hidden' }, 'name'],
      [{ name: 'a/b' }, 'name'],
      [{ partitions: 1 }, 'name'],
      [{ name: 'x', partitions: '3' }, 'partitions'],
      [{ name: 'x', partitions: 0 }, 'partitions'],
      [{ name: 'x', retention: { maxAgeMs: -1 } }, 'retention.maxAgeMs'],
      [{ name: 'x', deadLetter: { maxDeliveries: 'five' } }, 'deadLetter.maxDeliveries'],
      [{ name: 'x', fsync: 'sometimes' }, 'fsync'],
    ];
    for (const [payload, path] of cases) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/stations', payload: payload as object });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      const body = res.json() as { code: string; issues: { path: string }[] };
      expect(body.code).toBe('BODY_INVALID');
      expect(body.issues.map((i) => i.path)).toContain(path);
    }
    const unknownKey = await t.app.inject({ method: 'POST', url: '/v1/stations', payload: { name: 'x', topic: 'no' } });
    expect(unknownKey.statusCode).toBe(400);
    expect(unknownKey.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: '' }] });
    expect((await t.store.listStations()).length).toBe(0);
  });

  it('answers replicas (a cluster-mode option) with a coded error on the embedded engine, creating and changing nothing', async () => {
    const created = await t.app.inject({ method: 'POST', url: '/v1/stations', payload: { name: 'copies', replicas: 3 } });
    expect(created.statusCode).toBe(400);
    expect(created.json()).toMatchObject({ code: 'CONFIG_INVALID', issues: [{ path: 'replicas' }] });
    expect(created.json<{ message: string }>().message).toMatch(/cluster mode/);
    expect((await t.app.inject({ method: 'GET', url: '/v1/stations/copies' })).statusCode).toBe(404);
    await createStation(t.app, 'copies');
    const patched = await t.app.inject({ method: 'PATCH', url: '/v1/stations/copies', payload: { replicas: 3, dedupWindowMs: 1000 } });
    expect(patched.statusCode).toBe(400);
    expect(patched.json()).toMatchObject({ code: 'CONFIG_INVALID', issues: [{ path: 'replicas' }] });
    expect((await t.app.inject({ method: 'GET', url: '/v1/stations/copies' })).json()).toMatchObject({
      config: { dedupWindowMs: 120_000 },
    });
    // Out of range is a body error whatever the engine.
    const bad = await t.app.inject({ method: 'POST', url: '/v1/stations', payload: { name: 'copies2', replicas: 9 } });
    expect(bad.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'replicas' }] });
  });

  it('refuses names reserved for dead-letter stations', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/stations', payload: { name: 'orders.dls' } });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ code: 'STATION_RESERVED' });
  });

  it('answers malformed JSON with 400 BODY_INVALID and the parser message', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/stations',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": "x",',
    });
    expect(res.statusCode).toBe(400);
    const body = res.json() as { code: string; message: string };
    expect(body.code).toBe('BODY_INVALID');
    expect(body.message).toMatch(/^body is not valid JSON: /);
    const proto = await t.app.inject({
      method: 'POST',
      url: '/v1/stations',
      headers: { 'content-type': 'application/json' },
      payload: '{"name":"x","__proto__":{"a":1}}',
    });
    expect(proto.statusCode).toBe(400);
    expect(proto.json()).toMatchObject({ code: 'BODY_INVALID' });
    expect((await t.store.listStations()).length).toBe(0);
  });

  it('answers 415 for content types it does not read', async () => {
    for (const type of ['text/plain', 'application/xml', 'application/x-www-form-urlencoded']) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/stations', headers: { 'content-type': type }, payload: 'name=x' });
      expect(res.statusCode, type).toBe(415);
      expect(res.json()).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
    }
    const none = await t.app.inject({ method: 'POST', url: '/v1/stations', payload: Buffer.from('{"name":"x"}') });
    expect(none.statusCode).toBe(415);
    expect((await t.store.listStations()).length).toBe(0);
  });

  it('validates station names in the path', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/stations/bad%20name' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'station' }] });
    const dot = await t.app.inject({ method: 'DELETE', url: '/v1/stations/-x' });
    expect(dot.statusCode).toBe(400);
  });

  it('refuses to change partitions or storage, and bad patch values, keeping the config', async () => {
    await createStation(t.app, 'orders', { partitions: 2 });
    const imm = await t.app.inject({ method: 'PATCH', url: '/v1/stations/orders', payload: { partitions: 4 } });
    expect(imm.statusCode).toBe(422);
    expect(imm.json()).toMatchObject({ code: 'CONFIG_IMMUTABLE', issues: [{ path: 'partitions' }] });
    const bad = await t.app.inject({
      method: 'PATCH',
      url: '/v1/stations/orders',
      payload: { dedupWindowMs: 'soon', retention: { maxBytes: 0 } },
    });
    expect(bad.statusCode).toBe(400);
    expect((bad.json() as { issues: { path: string }[] }).issues.map((i) => i.path).sort()).toEqual([
      'dedupWindowMs',
      'retention.maxBytes',
    ]);
    const unknown = await t.app.inject({ method: 'PATCH', url: '/v1/stations/nope', payload: { dedupWindowMs: 1 } });
    expect(unknown.statusCode).toBe(404);
    const info = await t.store.getStation('orders');
    expect(info.config.partitions).toBe(2);
    expect(info.config.dedupWindowMs).toBe(120_000);
  });

  it('answers unknown stations and routes with 404', async () => {
    const del = await t.app.inject({ method: 'DELETE', url: '/v1/stations/nope' });
    expect(del.statusCode).toBe(404);
    expect(del.json()).toMatchObject({ code: 'STATION_NOT_FOUND' });
    const route = await t.app.inject({ method: 'GET', url: '/v1/nothing' });
    expect(route.statusCode).toBe(404);
    expect(route.json()).toMatchObject({ code: 'ROUTE_NOT_FOUND' });
    expect(await messageCount(t.store, 'nope').catch((e: { code: string }) => e.code)).toBe('STATION_NOT_FOUND');
  });
});

describe("Junction's own stations (__…)", () => {
  it('are read over the API but never created, changed, produced to, purged or deleted through it', async () => {
    await t.store.createStation('__system', { retention: {} });
    await t.store.produce('__system', [{ value: Buffer.from('kept') }]);
    const writes = [
      { method: 'POST' as const, url: '/v1/stations', payload: { name: '__mine' } },
      { method: 'PATCH' as const, url: '/v1/stations/__system', payload: { dedupWindowMs: 1 } },
      { method: 'DELETE' as const, url: '/v1/stations/__system' },
      { method: 'POST' as const, url: '/v1/stations/__system/messages', payload: { messages: [{ value: 'x' }] } },
      { method: 'POST' as const, url: '/v1/stations/__system/dls/replay', payload: {} },
      { method: 'DELETE' as const, url: '/v1/stations/__system/dls' },
      { method: 'POST' as const, url: '/stations/__system/produce/single', payload: 'x', headers: { 'content-type': 'text/plain' } },
      { method: 'POST' as const, url: '/stations/__system/produce/batch', payload: [{ payload: 'x' }] },
    ];
    for (const w of writes) {
      const res = await t.app.inject(w);
      expect(res.statusCode, `${w.method} ${w.url}: ${res.body}`).toBe(422);
      expect(res.json(), `${w.method} ${w.url}`).toMatchObject({ code: 'STATION_RESERVED' });
    }
    expect((await browse(t.app, '__system')).map((m) => m.value)).toEqual(['kept']);
    expect((await t.app.inject({ method: 'GET', url: '/v1/stations/__system' })).statusCode).toBe(200);
  });
});
