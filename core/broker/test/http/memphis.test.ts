import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BATCH_CONTENT_TYPE, decodeMessageBatch } from '@junction/protocol';
import { browse, createStation, makeApp, messageCount, produceText, type TestApp } from './app.js';

let t: TestApp;
beforeEach(async () => {
  t = await makeApp();
  await createStation(t.app, 'events');
});
afterEach(async () => {
  await t.close();
});

async function storedValues(station: string): Promise<Buffer[]> {
  const res = await t.app.inject({
    method: 'GET',
    url: `/v1/stations/${station}/messages?limit=1000`,
    headers: { accept: BATCH_CONTENT_TYPE },
  });
  return decodeMessageBatch(res.rawPayload).map((m) => Buffer.from(m.value));
}

describe('Memphis produce/single', () => {
  it('stores the raw body of any content type, with request headers as message headers', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/stations/events/produce/single',
      headers: { 'content-type': 'text/plain', 'x-trace-id': 'abc', authorization: 'Bearer anything', 'msg-id': 'm1', cookie: 'c=1' },
      payload: 'hello memphis',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ success: true, error: null });
    const [m] = await browse(t.app, 'events');
    expect(m!.value).toBe('hello memphis');
    const headers = m!.headers as Record<string, string>;
    expect(headers['x-trace-id']).toBe('abc');
    expect(headers['content-type']).toBe('text/plain');
    for (const h of ['authorization', 'host', 'content-length', 'msg-id', 'cookie']) expect(headers).not.toHaveProperty(h);

    // msg-id is the idempotency id: the same id again is answered ok but not stored twice
    const dup = await t.app.inject({
      method: 'POST',
      url: '/stations/events/produce/single',
      headers: { 'content-type': 'text/plain', 'msg-id': 'm1' },
      payload: 'again',
    });
    expect(dup.json()).toEqual({ success: true, error: null });
    expect(await messageCount(t.store, 'events')).toBe(1);

    const json = '{"price": 1.0,  "tags":[]}';
    const proto = Buffer.from([0x08, 0x96, 0x01, 0xff, 0x00]);
    for (const [type, payload] of [
      ['application/json', json],
      ['application/x-protobuf', proto],
      ['application/octet-stream', proto],
      ['text/csv; charset=latin1', 'a,b'],
    ] as const) {
      const r = await t.app.inject({ method: 'POST', url: '/stations/events/produce/single', headers: { 'content-type': type }, payload });
      expect(r.statusCode, type).toBe(200);
    }
    const noType = await t.app.inject({ method: 'POST', url: '/stations/events/produce/single', payload: Buffer.from('untyped') });
    expect(noType.statusCode).toBe(200);
    const values = await storedValues('events');
    expect(values.slice(1).map((v) => v.toString('latin1'))).toEqual([
      json,
      proto.toString('latin1'),
      proto.toString('latin1'),
      'a,b',
      'untyped',
    ]);
    expect(values[2]!.equals(proto)).toBe(true);
  });

  it('answers failures as success:false with a 4xx and stores nothing', async () => {
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/stations/nope/produce/single',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ success: false, error: expect.stringContaining('nope') as unknown, code: 'STATION_NOT_FOUND' });

    await createStation(t.app, 'tiny', { maxMessageBytes: 10 });
    const big = await t.app.inject({
      method: 'POST',
      url: '/stations/tiny/produce/single',
      headers: { 'content-type': 'text/plain' },
      payload: 'x'.repeat(50),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ success: false, code: 'MESSAGE_TOO_LARGE' });
    expect(await messageCount(t.store, 'tiny')).toBe(0);

    const badName = await t.app.inject({
      method: 'POST',
      url: '/stations/.x/produce/single',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(badName.statusCode).toBe(400);
    expect(badName.json()).toMatchObject({ success: false });
  });

  it('creates unknown stations when autoCreateStations is set', async () => {
    const auto = await makeApp({ autoCreateStations: true });
    try {
      const res = await auto.app.inject({
        method: 'POST',
        url: '/stations/fresh/produce/single',
        headers: { 'content-type': 'text/plain' },
        payload: 'first',
      });
      expect(res.json()).toEqual({ success: true, error: null });
      expect((await browse(auto.app, 'fresh')).map((m) => m.value)).toEqual(['first']);
    } finally {
      await auto.close();
    }
  });
});

describe('Memphis produce/batch', () => {
  it('stores each element as its JSON text', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/stations/events/produce/batch',
      headers: { 'x-source': 'batch' },
      payload: [{ id: 1, nested: { a: [1, 2] } }, 'plain', 3, null, [true]],
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ success: true, error: null });
    const msgs = await browse(t.app, 'events');
    expect(msgs.map((m) => m.value)).toEqual(['{"id":1,"nested":{"a":[1,2]}}', '"plain"', '3', 'null', '[true]']);
    expect(msgs.every((m) => (m.headers as Record<string, string>)['x-source'] === 'batch')).toBe(true);
  });

  it('answers partial failure with counts; rejects non-arrays', async () => {
    // the size counts the headers too, and every element carries the request's headers
    await createStation(t.app, 'tiny', { maxMessageBytes: 300 });
    const res = await t.app.inject({ method: 'POST', url: '/stations/tiny/produce/batch', payload: ['ok', 'x'.repeat(400), 1] });
    expect(res.statusCode).toBe(413);
    const body = res.json() as { success: boolean; sent: number; fail: number; errors: string[] };
    expect(body).toMatchObject({ success: false, sent: 2, fail: 1 });
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]).toMatch(/^message 1: /);
    expect((await browse(t.app, 'tiny')).map((m) => m.value)).toEqual(['"ok"', '1']);

    await produceText(t.app, 'events', ['kept']);
    for (const [payload, type] of [
      ['{"a":1}', 'application/json'],
      ['[]', 'application/json'],
      ['[1,', 'application/json'],
      ['a,b', 'text/plain'],
    ] as const) {
      const r = await t.app.inject({ method: 'POST', url: '/stations/events/produce/batch', headers: { 'content-type': type }, payload });
      expect(r.statusCode, payload).toBeGreaterThanOrEqual(400);
      expect(r.statusCode).toBeLessThan(500);
      expect(r.json()).toMatchObject({ success: false, error: expect.any(String) as unknown });
    }
    expect((await browse(t.app, 'events')).map((m) => m.value)).toEqual(['kept']);
  });
});

describe('Memphis consume/batch', () => {
  it('hands out batches and acks them on delivery', async () => {
    await t.app.inject({
      method: 'POST',
      url: '/stations/events/produce/single',
      headers: { 'content-type': 'text/plain', 'x-h': '1' },
      payload: 'm1',
    });
    await produceText(t.app, 'events', ['m2', 'm3']);
    const first = await t.app.inject({
      method: 'POST',
      url: '/stations/events/consume/batch',
      payload: { consumer_name: 'c1', batch_size: 2, batch_max_wait_time_ms: 0 },
    });
    expect(first.statusCode).toBe(200);
    const got = first.json() as Array<{ message: string; headers: Record<string, string> }>;
    expect(got.map((m) => m.message)).toEqual(['m1', 'm2']);
    expect(got[0]!.headers['x-h']).toBe('1');

    const second = await t.app.inject({
      method: 'POST',
      url: '/stations/events/consume/batch',
      payload: { consumer_name: 'c1', batch_max_wait_time_ms: 0 },
    });
    expect((second.json() as Array<{ message: string }>).map((m) => m.message)).toEqual(['m3']);
    const group = await t.store.getGroup('events', 'c1');
    expect(group).toMatchObject({ lag: 0, pending: 0 });

    // consumer_group shares progress among consumers; a new group starts at the beginning
    const other = await t.app.inject({
      method: 'POST',
      url: '/stations/events/consume/batch',
      payload: { consumer_name: 'c2', consumer_group: 'g', batch_size: 10, batch_max_wait_time_ms: 0 },
    });
    expect((other.json() as unknown[]).length).toBe(3);
    const empty = await t.app.inject({
      method: 'POST',
      url: '/stations/events/consume/batch',
      payload: { consumer_name: 'c3', consumer_group: 'g', batch_max_wait_time_ms: 50 },
    });
    expect(empty.json()).toEqual([]);
  });

  it('rejects bad consume bodies', async () => {
    const cases: unknown[] = [
      {},
      { consumer_name: 'c', batch_size: 0 },
      { consumer_name: 'c', batch_size: 5001 },
      { consumer_name: 'c', batch_max_wait_time_ms: 'x' },
      { consumer_name: '.bad' },
    ];
    for (const payload of cases) {
      const r = await t.app.inject({ method: 'POST', url: '/stations/events/consume/batch', payload: payload as object });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json()).toMatchObject({ success: false, code: 'BODY_INVALID' });
    }
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/stations/nope/consume/batch',
      payload: { consumer_name: 'c', batch_max_wait_time_ms: 0 },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ success: false });
  });
});

describe('Memphis auth shim and monitoring', () => {
  it('answers JWT-shaped unsigned tokens and refreshes them', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/authenticate',
      payload: { username: 'root', password: 'memphis', token_expiry_in_minutes: 30 },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { jwt: string; expires_in: number; jwt_refresh_token: string; refresh_token_expires_in: number };
    expect(body.expires_in).toBe(30 * 60_000);
    const [header, payload, signature] = body.jwt.split('.');
    expect(JSON.parse(Buffer.from(header!, 'base64url').toString())).toEqual({ alg: 'none', typ: 'JWT' });
    expect(JSON.parse(Buffer.from(payload!, 'base64url').toString())).toMatchObject({ username: 'root', type: 'access' });
    expect(signature).toBe('');

    const refreshed = await t.app.inject({
      method: 'POST',
      url: '/auth/refreshToken',
      payload: { jwt_refresh_token: body.jwt_refresh_token },
    });
    expect(refreshed.statusCode).toBe(200);
    const r = refreshed.json() as { jwt: string; expires_in: number };
    expect(JSON.parse(Buffer.from(r.jwt.split('.')[1]!, 'base64url').toString())).toMatchObject({ username: 'root' });
    expect(r.expires_in).toBe(15 * 60_000);

    const missing = await t.app.inject({ method: 'POST', url: '/auth/authenticate', payload: { username: 'root' } });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({ success: false });

    // any bearer token is accepted by every route
    const produce = await t.app.inject({
      method: 'POST',
      url: '/stations/events/produce/single?authorization=whatever',
      headers: { authorization: `Bearer ${body.jwt}`, 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(produce.json()).toEqual({ success: true, error: null });
  });

  it('reports status', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/monitoring/status' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });
});
