import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BATCH_CONTENT_TYPE, decodeMessageBatch, DLS_HEADERS } from '@junction/protocol';
import { browse, createStation, makeApp, produceText, type TestApp } from './app.js';

let t: TestApp;
beforeEach(async () => {
  t = await makeApp();
  await createStation(t.app, 'orders');
});
afterEach(async () => {
  await t.close();
});

const g = '/v1/stations/orders/groups';
interface JsonDelivery {
  deliveryId: string;
  partition: number;
  offset: number;
  deliveryCount: number;
  value?: string;
  valueBase64?: string;
  headers: Record<string, string>;
}

async function fetchJson(group: string, body: object = {}): Promise<JsonDelivery[]> {
  const res = await t.app.inject({ method: 'POST', url: `${g}/${group}/fetch`, payload: body });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { messages: JsonDelivery[] }).messages;
}

describe('consumer groups over HTTP', () => {
  it('creates, lists, gets and deletes groups', async () => {
    const created = await t.app.inject({ method: 'PUT', url: `${g}/billing`, payload: { start: { type: 'latest' }, maxDeliveries: 3 } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ station: 'orders', group: 'billing', maxDeliveries: 3, lag: 0 });
    const bare = await t.app.inject({ method: 'PUT', url: `${g}/audit` });
    expect(bare.statusCode).toBe(201);
    const again = await t.app.inject({ method: 'PUT', url: `${g}/billing`, payload: {} });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'GROUP_EXISTS' });

    const list = await t.app.inject({ method: 'GET', url: g });
    expect((list.json() as { groups: { group: string }[] }).groups.map((x) => x.group)).toEqual(['audit', 'billing']);
    const one = await t.app.inject({ method: 'GET', url: `${g}/billing` });
    expect(one.json()).toMatchObject({ group: 'billing', maxDeliveries: 3 });

    const del = await t.app.inject({ method: 'DELETE', url: `${g}/billing` });
    expect(del.statusCode).toBe(204);
    const gone = await t.app.inject({ method: 'GET', url: `${g}/billing` });
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ code: 'GROUP_NOT_FOUND' });
  });

  it('rejects bad group bodies and names', async () => {
    const cases: Array<[string, unknown, number, string, string?]> = [
      [`${g}/x`, { start: { type: 'offset' } }, 400, 'BODY_INVALID', 'start.offset'],
      [`${g}/x`, { start: { type: 'sometime' } }, 400, 'BODY_INVALID', 'start.type'],
      [`${g}/x`, { maxDeliveries: 0 }, 400, 'BODY_INVALID', 'maxDeliveries'],
      [`${g}/.x`, {}, 400, 'BODY_INVALID', 'group'],
      ['/v1/stations/nope/groups/x', {}, 404, 'STATION_NOT_FOUND'],
    ];
    for (const [url, payload, status, code, path] of cases) {
      const res = await t.app.inject({ method: 'PUT', url, payload: payload as object });
      expect(res.statusCode, url + JSON.stringify(payload)).toBe(status);
      const body = res.json() as { code: string; issues?: { path: string }[] };
      expect(body.code).toBe(code);
      if (path) expect(body.issues?.map((i) => i.path)).toContain(path);
    }
    expect((await t.store.getStation('orders')).groups).toEqual([]);
  });

  it('fetches, acks and nacks; redeliveries count up', async () => {
    await produceText(t.app, 'orders', ['a', 'b', 'c']);
    const first = await fetchJson('workers', { maxMessages: 2 });
    expect(first.map((d) => [d.offset, d.value, d.deliveryCount])).toEqual([
      [1, 'a', 1],
      [2, 'b', 1],
    ]);
    expect(first[0]!.deliveryId).toMatch(/^0-1-1-[0-9a-z]{1,7}$/);

    const ack = await t.app.inject({
      method: 'POST',
      url: `${g}/workers/ack`,
      payload: { deliveryIds: [first[0]!.deliveryId, 'nonsense'] },
    });
    expect(ack.statusCode).toBe(200);
    expect(ack.json()).toEqual({
      results: [
        { deliveryId: first[0]!.deliveryId, status: 'acked' },
        { deliveryId: 'nonsense', status: 'unknown' },
      ],
    });
    const nack = await t.app.inject({ method: 'POST', url: `${g}/workers/nack`, payload: { deliveryIds: [first[1]!.deliveryId] } });
    expect(nack.json()).toEqual({ results: [{ deliveryId: first[1]!.deliveryId, status: 'nacked' }] });

    const second = await fetchJson('workers', { encoding: 'base64' });
    expect(second.map((d) => [d.offset, d.deliveryCount])).toEqual([
      [2, 2],
      [3, 1],
    ]);
    expect(second[0]!.valueBase64).toBe(Buffer.from('b').toString('base64'));

    const info = await t.app.inject({ method: 'GET', url: `${g}/workers` });
    expect(info.json()).toMatchObject({ lag: 2, pending: 2 });
  });

  it('fetches as a binary batch that carries the deliveryIds', async () => {
    const bytes = Buffer.from([0, 1, 2, 0xff]);
    await t.app.inject({
      method: 'POST',
      url: '/v1/stations/orders/messages',
      payload: { messages: [{ valueBase64: bytes.toString('base64'), key: 'k' }] },
    });
    const res = await t.app.inject({
      method: 'POST',
      url: `${g}/bin/fetch`,
      headers: { accept: BATCH_CONTENT_TYPE },
      payload: { waitMs: 0 },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(BATCH_CONTENT_TYPE);
    const [m] = decodeMessageBatch(res.rawPayload);
    expect(m).toMatchObject({ partition: 0, offset: 1, deliveryCount: 1, key: 'k' });
    expect(m!.deliveryId).toMatch(/^0-1-1-[0-9a-z]{1,7}$/);
    expect(Buffer.from(m!.value).equals(bytes)).toBe(true);
    const ack = await t.app.inject({ method: 'POST', url: `${g}/bin/ack`, payload: { deliveryIds: [m!.deliveryId] } });
    expect((ack.json() as { results: { status: string }[] }).results[0]!.status).toBe('acked');
    const empty = await t.app.inject({ method: 'POST', url: `${g}/bin/fetch`, headers: { accept: BATCH_CONTENT_TYPE } });
    expect(empty.rawPayload.length).toBe(0);
  });

  it('answers a binary fetch from packed chunks: the messages, counts and ids of a JSON fetch, no Delivery objects', async () => {
    await createStation(t.app, 'multi', { partitions: 3 });
    const messages = Array.from({ length: 60 }, (_, i) => ({
      value: `v${i}`.repeat(1 + (i % 7)),
      ...(i % 3 === 0 ? { key: `k${i % 5}` } : {}),
      ...(i % 4 === 0 ? { headers: { h: `x${i % 2}`, 'content-type': 'text/plain' } } : {}),
    }));
    const produced = await t.app.inject({ method: 'POST', url: '/v1/stations/multi/messages', payload: { messages } });
    expect(produced.statusCode).toBe(200);
    const m = '/v1/stations/multi/groups';
    const calls = { fetch: 0 };
    const fetch = t.store.fetch.bind(t.store);
    t.store.fetch = (...args) => {
      calls.fetch++;
      return fetch(...args);
    };
    const binFetch = async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: `${m}/bin/fetch`,
        headers: { accept: BATCH_CONTENT_TYPE },
        payload: { maxMessages: 1000, waitMs: 0 },
      });
      expect(res.statusCode).toBe(200);
      return decodeMessageBatch(res.rawPayload);
    };
    const bin = await binFetch();
    expect(calls.fetch).toBe(0);
    const json = await t.app.inject({ method: 'POST', url: `${m}/json/fetch`, payload: { maxMessages: 1000, waitMs: 0 } });
    const want = (json.json() as { messages: (JsonDelivery & { key?: string })[] }).messages;
    expect(calls.fetch).toBe(1);
    expect(bin).toHaveLength(60);
    const shape = (d: { partition: number; offset: number; deliveryCount: number; key?: string; headers: object; deliveryId: string }) => ({
      partition: d.partition,
      offset: d.offset,
      deliveryCount: d.deliveryCount,
      key: d.key,
      headers: d.headers,
      id: d.deliveryId.split('-').slice(0, 3).join('-'),
    });
    expect(bin.map(shape)).toEqual(want.map(shape));
    expect(bin.map((d) => Buffer.from(d.value).toString())).toEqual(want.map((d) => d.value));
    // Given back: delivered again with deliveryCount 2 and ids that settle them.
    const back = bin.filter((_, i) => i % 2 === 0).map((d) => d.deliveryId);
    const nacked = await t.app.inject({ method: 'POST', url: `${m}/bin/nack`, payload: { deliveryIds: back } });
    expect(nacked.statusCode).toBe(200);
    const again = await binFetch();
    expect(again).toHaveLength(30);
    expect(again.every((d) => d.deliveryCount === 2 && d.deliveryId.startsWith(`${d.partition}-${d.offset}-2-`))).toBe(true);
    const ids = [...bin.filter((_, i) => i % 2 === 1), ...again].map((d) => d.deliveryId);
    const ack = await t.app.inject({ method: 'POST', url: `${m}/bin/ack`, payload: { deliveryIds: ids, summary: true } });
    expect(ack.json()).toMatchObject({ count: 60 });
    expect(await t.store.getGroup('multi', 'bin')).toMatchObject({ lag: 0, pending: 0 });
  });

  it('takes settle bodies larger than the server default limit', async () => {
    await produceText(t.app, 'orders', ['a']);
    const [d] = await fetchJson('big');
    const ids = Array.from({ length: 50_000 }, (_, i) => `${i}-${1_000_000_000 + i}-1`); // ~1.3 MB of JSON
    const res = await t.app.inject({ method: 'POST', url: `${g}/big/ack`, payload: { deliveryIds: [d!.deliveryId, ...ids] } });
    expect(res.statusCode).toBe(200);
    const results = (res.json() as { results: { status: string }[] }).results;
    expect(results).toHaveLength(50_001);
    expect(results[0]!.status).toBe('acked');
  });

  it('seeks a group', async () => {
    await produceText(t.app, 'orders', ['a', 'b', 'c']);
    const d = await fetchJson('s', { maxMessages: 10 });
    await t.app.inject({ method: 'POST', url: `${g}/s/ack`, payload: { deliveryIds: d.map((x) => x.deliveryId) } });
    const seek = await t.app.inject({ method: 'POST', url: `${g}/s/seek`, payload: { type: 'offset', offset: 2 } });
    expect(seek.statusCode).toBe(200);
    expect(seek.json()).toMatchObject({ group: 's', partitions: [{ partition: 0, nextOffset: 2 }] });
    expect((await fetchJson('s')).map((x) => x.offset)).toEqual([2, 3]);

    const bad = await t.app.inject({ method: 'POST', url: `${g}/s/seek`, payload: { type: 'offset' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'offset' }] });
    const part = await t.app.inject({ method: 'POST', url: `${g}/s/seek`, payload: { type: 'offset', offset: 1, partition: 9 } });
    expect(part.statusCode).toBe(404);
    expect(part.json()).toMatchObject({ code: 'PARTITION_NOT_FOUND' });
    const unknown = await t.app.inject({ method: 'POST', url: `${g}/nobody/seek`, payload: { type: 'earliest' } });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'GROUP_NOT_FOUND' });
  });

  it('rejects bad fetch and settle bodies', async () => {
    await produceText(t.app, 'orders', ['a']);
    const cases: Array<[string, unknown, string]> = [
      ['fetch', { maxMessages: 0 }, 'maxMessages'],
      ['fetch', { waitMs: 'long' }, 'waitMs'],
      ['fetch', { encoding: 'hex' }, 'encoding'],
      ['ack', {}, 'deliveryIds'],
      ['ack', { deliveryIds: [] }, 'deliveryIds'],
      ['ack', { deliveryIds: [7] }, 'deliveryIds[0]'],
      ['nack', { deliveryIds: ['0-1-1'], delayMs: -5 }, 'delayMs'],
      ['dead-letter', { deliveryIds: ['0-1-1'], reason: 42 }, 'reason'],
    ];
    for (const [op, payload, path] of cases) {
      const res = await t.app.inject({ method: 'POST', url: `${g}/w/${op}`, payload: payload as object });
      expect(res.statusCode, `${op} ${JSON.stringify(payload)}`).toBe(400);
      expect((res.json() as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual([path]);
    }
    const unknownStation = await t.app.inject({ method: 'POST', url: '/v1/stations/nope/groups/w/fetch', payload: {} });
    expect(unknownStation.statusCode).toBe(404);
    const unknownGroup = await t.app.inject({ method: 'POST', url: `${g}/ghost/ack`, payload: { deliveryIds: ['0-1-1'] } });
    expect(unknownGroup.statusCode).toBe(404);
    expect(unknownGroup.json()).toMatchObject({ code: 'GROUP_NOT_FOUND' });
    // nothing was delivered by the rejected fetches
    expect((await fetchJson('w')).map((d) => d.deliveryCount)).toEqual([1]);
  });

  it('long-polls, and a client that goes away ends the wait', async () => {
    const quick = t.app.inject({ method: 'POST', url: `${g}/lp/fetch`, payload: { waitMs: 5000 } });
    setTimeout(() => void produceText(t.app, 'orders', ['late']), 100);
    const res = await quick;
    expect((res.json() as { messages: JsonDelivery[] }).messages.map((m) => m.value)).toEqual(['late']);

    await t.app.inject({ method: 'PUT', url: `${g}/drop`, payload: { start: { type: 'latest' } } });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const closed = new Promise<void>((resolve) => {
      const req = request({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `${g}/drop/fetch`,
        headers: { 'content-type': 'application/json' },
      });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.end(JSON.stringify({ waitMs: 30_000 }));
      setTimeout(() => req.destroy(), 200);
    });
    await closed;
    await new Promise((r) => setTimeout(r, 200));
    // Had the dropped poll still been waiting, it would have taken this message for nobody.
    await produceText(t.app, 'orders', ['after']);
    const got = await fetchJson('drop', { maxMessages: 10 });
    expect(got.map((m) => [m.value, m.deliveryCount])).toEqual([['after', 1]]);
  });
});

describe('dead-letter station over HTTP', () => {
  it('dead-letters, browses, replays and purges', async () => {
    await produceText(t.app, 'orders', ['poison', 'fine']);
    const [poison] = await fetchJson('w', { maxMessages: 1 });
    const dl = await t.app.inject({
      method: 'POST',
      url: `${g}/w/dead-letter`,
      payload: { deliveryIds: [poison!.deliveryId], reason: 'cannot parse' },
    });
    expect(dl.json()).toEqual({ results: [{ deliveryId: poison!.deliveryId, status: 'dead-lettered' }] });

    const list = await t.app.inject({ method: 'GET', url: '/v1/stations/orders/dls' });
    expect(list.statusCode).toBe(200);
    const dead = (list.json() as { messages: JsonDelivery[] }).messages;
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      value: 'poison',
      headers: { [DLS_HEADERS.reason]: 'cannot parse', [DLS_HEADERS.group]: 'w', [DLS_HEADERS.offset]: '1' },
    });

    const replay = await t.app.inject({ method: 'POST', url: '/v1/stations/orders/dls/replay', payload: { group: 'w' } });
    expect(replay.statusCode).toBe(200);
    expect(replay.json()).toEqual({ replayed: 1, purged: 0 });
    expect((await browse(t.app, 'orders')).map((m) => m.value)).toEqual(['poison', 'fine', 'poison']);

    const badReplay = await t.app.inject({ method: 'POST', url: '/v1/stations/orders/dls/replay', payload: { fromOffset: 0 } });
    expect(badReplay.statusCode).toBe(400);
    expect(badReplay.json()).toMatchObject({ issues: [{ path: 'fromOffset' }] });

    const badPurge = await t.app.inject({ method: 'DELETE', url: '/v1/stations/orders/dls?upToOffset=zero' });
    expect(badPurge.statusCode).toBe(400);
    expect(badPurge.json()).toMatchObject({ issues: [{ path: 'upToOffset' }] });
    const purge = await t.app.inject({ method: 'DELETE', url: '/v1/stations/orders/dls?upToOffset=1' });
    expect(purge.statusCode).toBe(200);
    expect(purge.json()).toEqual({ purged: 1 });
    const purgeBody = await t.app.inject({ method: 'DELETE', url: '/v1/stations/orders/dls', payload: {} });
    expect(purgeBody.json()).toEqual({ purged: 0 });
    const after = await t.app.inject({ method: 'GET', url: '/v1/stations/orders/dls?limit=5' });
    expect(after.json()).toEqual({ messages: [] });

    const unknown = await t.app.inject({ method: 'GET', url: '/v1/stations/nope/dls' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'STATION_NOT_FOUND', message: expect.stringContaining('"nope"') as unknown });
    const badLimit = await t.app.inject({ method: 'GET', url: '/v1/stations/orders/dls?limit=x' });
    expect(badLimit.statusCode).toBe(400);
  });
});

describe('dead letters page', () => {
  it('walks every dead letter in pages through `next` (JSON and binary), and ends on an empty page', async () => {
    const values = Array.from({ length: 25 }, (_, i) => `bad-${i}`);
    await produceText(t.app, 'orders', values);
    const got = await fetchJson('w', { maxMessages: 100 });
    const dl = await t.app.inject({
      method: 'POST',
      url: `${g}/w/dead-letter`,
      payload: { deliveryIds: got.map((m) => m.deliveryId), reason: 'no' },
    });
    expect(dl.statusCode).toBe(200);

    const seen: string[] = [];
    let cursor: number | undefined;
    let pages = 0;
    for (;;) {
      const res = await t.app.inject({
        method: 'GET',
        url: `/v1/stations/orders/dls?limit=10${cursor === undefined ? '' : `&fromOffset=${cursor}`}`,
      });
      expect(res.statusCode).toBe(200);
      const page = res.json() as { messages: JsonDelivery[]; next?: number };
      if (page.messages.length === 0) {
        expect(page.next).toBeUndefined();
        expect(res.headers['junction-next-offset']).toBeUndefined();
        break;
      }
      pages++;
      expect(page.messages.length).toBeLessThanOrEqual(10);
      expect(page.next).toBe(page.messages.at(-1)!.offset + 1);
      expect(res.headers['junction-next-offset']).toBe(String(page.next));
      seen.push(...page.messages.map((m) => m.value!));
      cursor = page.next;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(values);

    // The binary answer carries the cursor in its header.
    const bin = await t.app.inject({
      method: 'GET',
      url: '/v1/stations/orders/dls?limit=10&fromOffset=11',
      headers: { accept: BATCH_CONTENT_TYPE },
    });
    expect(bin.statusCode).toBe(200);
    const decoded = decodeMessageBatch(bin.rawPayload);
    expect(decoded.map((m) => m.value.toString())).toEqual(values.slice(10, 20));
    expect(bin.headers['junction-next-offset']).toBe('21');
  });
});

describe('settle answers in summary form', () => {
  it("counts the verb's own status and lists only the other outcomes", async () => {
    await produceText(t.app, 'orders', ['a', 'b', 'c']);
    const ds = await fetchJson('sum', { maxMessages: 3 });
    expect(ds).toHaveLength(3);
    const ids = [ds[0]!.deliveryId, 'not-an-id', ds[1]!.deliveryId];
    const res = await t.app.inject({ method: 'POST', url: `${g}/sum/ack`, payload: { deliveryIds: ids, summary: true } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ count: 2, results: [{ deliveryId: 'not-an-id', status: 'unknown' }] });
    const nack = await t.app.inject({ method: 'POST', url: `${g}/sum/nack`, payload: { deliveryIds: [ds[2]!.deliveryId], summary: true } });
    expect(nack.json()).toEqual({ count: 1, results: [] });
    const again = await fetchJson('sum');
    expect(again.map((d) => [d.offset, d.deliveryCount])).toEqual([[3, 2]]);
  });
});
