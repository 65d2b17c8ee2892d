import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BATCH_CONTENT_TYPE, decodeMessageBatch, encodeProduceBatch } from '@junction/protocol';
import { browse, createStation, makeApp, messageCount, produceText, type TestApp } from './app.js';

let t: TestApp;
beforeEach(async () => {
  t = await makeApp();
  await createStation(t.app, 'orders');
});
afterEach(async () => {
  await t.close();
});

const url = '/v1/stations/orders/messages';
const NOT_UTF8 = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]);

/** Runs a bad request and asserts it stored nothing and left the earlier messages intact. */
async function expectNothingStored(run: () => Promise<void>): Promise<void> {
  const before = await browse(t.app, 'orders');
  await run();
  expect(await browse(t.app, 'orders')).toEqual(before);
  expect(await messageCount(t.store, 'orders')).toBe(before.length);
}

describe('JSON produce and browse', () => {
  it('stores value and valueBase64 messages with key, headers and msgId, and browses them back', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url,
      payload: {
        messages: [
          { value: 'héllo ✓', key: 'k1', headers: { 'x-a': '1' } },
          { valueBase64: NOT_UTF8.toString('base64') },
          { value: '{"not":"parsed"}', msgId: 'm-1' },
          { value: 'dup', msgId: 'm-1' },
        ],
      },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      results: [
        { partition: 0, offset: 1 },
        { partition: 0, offset: 2 },
        { partition: 0, offset: 3 },
        { duplicate: true, partition: 0, offset: 3 },
      ],
    });
    const msgs = await browse(t.app, 'orders');
    expect(msgs).toHaveLength(3);
    expect(msgs[0]).toMatchObject({ partition: 0, offset: 1, key: 'k1', headers: { 'x-a': '1' }, value: 'héllo ✓' });
    expect(typeof msgs[0]!.timestamp).toBe('number');
    expect(msgs[1]).toMatchObject({ offset: 2, valueBase64: NOT_UTF8.toString('base64') });
    expect(msgs[1]).not.toHaveProperty('value');
    expect(msgs[1]).not.toHaveProperty('key');
    expect(msgs[2]).toMatchObject({ offset: 3, value: '{"not":"parsed"}' });

    const b64 = await browse(t.app, 'orders', '&encoding=base64');
    expect(b64.map((m) => Buffer.from(m.valueBase64 as string, 'base64').toString('utf8'))[0]).toBe('héllo ✓');
    expect(b64.every((m) => m.value === undefined)).toBe(true);

    const page = await t.app.inject({ method: 'GET', url: `${url}?fromOffset=2&limit=1` });
    expect((page.json() as { messages: { offset: number }[] }).messages.map((m) => m.offset)).toEqual([2]);
  });

  it('answers browse with the binary batch when asked', async () => {
    await t.app.inject({ method: 'POST', url, payload: { messages: [{ valueBase64: NOT_UTF8.toString('base64'), key: 'k' }] } });
    const res = await t.app.inject({ method: 'GET', url, headers: { accept: `${BATCH_CONTENT_TYPE}, application/json;q=0.5` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(BATCH_CONTENT_TYPE);
    const [m] = decodeMessageBatch(res.rawPayload);
    expect(m).toMatchObject({ partition: 0, offset: 1, deliveryCount: 0, key: 'k' });
    expect(Buffer.from(m!.value).equals(NOT_UTF8)).toBe(true);
  });

  it('rejects malformed and wrongly typed bodies with exact field paths, storing nothing', async () => {
    await produceText(t.app, 'orders', ['first', 'second']);
    const cases: Array<[unknown, string[]]> = [
      [{ messages: [{ value: 'ok' }, { value: 5 }] }, ['messages[1].value']],
      [{ messages: [{ key: 'k' }] }, ['messages[0]']], // missing value
      [{ messages: [{ value: 'a', valueBase64: 'YQ==' }] }, ['messages[0]']], // both
      [{ messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }, { valueBase64: 'not base64!' }] }, ['messages[3].valueBase64']],
      [{ messages: [{ value: 'a', headers: { h: 1 } }] }, ['messages[0].headers.h']],
      [{ messages: [{ value: 'a', msgId: '' }] }, ['messages[0].msgId']],
      [{ messages: [] }, ['messages']],
      [{ messages: 'x' }, ['messages']],
      [{}, ['messages']],
      [[{ value: 'a' }], ['']],
    ];
    for (const [payload, paths] of cases) {
      await expectNothingStored(async () => {
        const res = await t.app.inject({ method: 'POST', url, payload: payload as object });
        expect(res.statusCode, JSON.stringify(payload)).toBe(400);
        const body = res.json() as { code: string; issues: { path: string }[] };
        expect(body.code).toBe('BODY_INVALID');
        expect(body.issues.map((i) => i.path)).toEqual(paths);
      });
    }
    await expectNothingStored(async () => {
      const res = await t.app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json' },
        payload: '{"messages":[{"value":"a"}',
      });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'BODY_INVALID', message: expect.stringMatching(/not valid JSON/) as unknown });
    });
    expect((await browse(t.app, 'orders')).map((m) => m.value)).toEqual(['first', 'second']);
  });

  it('rejects an oversized message on its own and stores the others', async () => {
    await createStation(t.app, 'small', { maxMessageBytes: 100 });
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/stations/small/messages',
      payload: { messages: [{ value: 'a' }, { value: 'x'.repeat(200) }, { value: 'c' }] },
    });
    expect(res.statusCode).toBe(200);
    const { results } = res.json() as { results: Array<Record<string, unknown>> };
    expect(results[0]).toEqual({ partition: 0, offset: 1 });
    expect(results[1]).toMatchObject({ error: { code: 'MESSAGE_TOO_LARGE' } });
    expect(results[2]).toEqual({ partition: 0, offset: 2 });
    expect((await browse(t.app, 'small')).map((m) => m.value)).toEqual(['a', 'c']);
  });

  it('takes produce bodies over the server default limit (up to 64 MiB by default)', async () => {
    const lines = Array.from({ length: 3 }, (_, i) => Buffer.alloc(1024 * 1024, 97 + i)); // 3 MiB of NDJSON
    const body = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')]));
    const res = await t.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-ndjson' }, payload: body });
    expect(res.statusCode).toBe(200);
    expect((await t.store.getStation('orders')).messages).toBe(3);
  });

  it('answers 413 for a body over the route limit and stores nothing', async () => {
    const small = await makeApp({ bodyLimit: 1024 });
    try {
      await createStation(small.app, 'orders');
      await produceText(small.app, 'orders', ['kept']);
      for (const [type, payload] of [
        ['application/json', JSON.stringify({ messages: [{ value: 'x'.repeat(2000) }] })],
        ['application/x-ndjson', 'y'.repeat(2000)],
        [BATCH_CONTENT_TYPE, encodeProduceBatch([{ value: Buffer.alloc(2000) }])],
      ] as const) {
        const res = await small.app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload });
        expect(res.statusCode, type).toBe(413);
        expect(res.json()).toMatchObject({ code: 'BODY_TOO_LARGE' });
      }
      expect((await browse(small.app, 'orders')).map((m) => m.value)).toEqual(['kept']);
    } finally {
      await small.close();
    }
  });

  it('answers 404 for unknown stations and 415 for other content types', async () => {
    await produceText(t.app, 'orders', ['kept']);
    const res = await t.app.inject({ method: 'POST', url: '/v1/stations/nope/messages', payload: { messages: [{ value: 'a' }] } });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'STATION_NOT_FOUND' });
    const get = await t.app.inject({ method: 'GET', url: '/v1/stations/nope/messages' });
    expect(get.statusCode).toBe(404);
    await expectNothingStored(async () => {
      const txt = await t.app.inject({ method: 'POST', url, headers: { 'content-type': 'text/plain' }, payload: 'hello' });
      expect(txt.statusCode).toBe(415);
      expect(txt.json()).toEqual({ code: 'UNSUPPORTED_MEDIA_TYPE', message: 'unsupported content type "text/plain"' });
      const bin = await t.app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/octet-stream' },
        payload: Buffer.from('x'),
      });
      expect(bin.statusCode).toBe(415);
    });
    const bad = await t.app.inject({ method: 'POST', url: '/v1/stations/no%2Fslash/messages', payload: { messages: [{ value: 'a' }] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'station' }] });
  });

  it('rejects bad browse queries: offsets, limits, partitions', async () => {
    await produceText(t.app, 'orders', ['a']);
    const cases: Array<[string, number, string, string?]> = [
      ['fromOffset=abc', 400, 'BODY_INVALID', 'fromOffset'],
      ['fromOffset=-1', 400, 'BODY_INVALID', 'fromOffset'],
      ['limit=0', 400, 'BODY_INVALID', 'limit'],
      ['limit=1.5', 400, 'BODY_INVALID', 'limit'],
      ['partition=x', 400, 'BODY_INVALID', 'partition'],
      ['encoding=hex', 400, 'BODY_INVALID', 'encoding'],
      ['topic=a', 400, 'BODY_INVALID', ''],
      ['partition=7', 404, 'PARTITION_NOT_FOUND'],
    ];
    for (const [q, status, code, path] of cases) {
      const res = await t.app.inject({ method: 'GET', url: `${url}?${q}` });
      expect(res.statusCode, q).toBe(status);
      const body = res.json() as { code: string; issues?: { path: string }[] };
      expect(body.code).toBe(code);
      if (path !== undefined) expect(body.issues?.map((i) => i.path)).toEqual([path]);
    }
    const past = await t.app.inject({ method: 'GET', url: `${url}?fromOffset=99` });
    expect(past.statusCode).toBe(200);
    expect(past.json()).toEqual({ messages: [] });
  });
});

describe('NDJSON produce', () => {
  it('stores each line as raw bytes and browses them back byte for byte', async () => {
    const lines = [Buffer.from('{"a": 1.0}'), Buffer.from('plain text'), Buffer.alloc(0), NOT_UTF8, Buffer.from('last')];
    // \r\n on the second line, a trailing newline at the end
    const body = Buffer.concat([
      lines[0]!,
      Buffer.from('\n'),
      lines[1]!,
      Buffer.from('\r\n'),
      lines[2]!,
      Buffer.from('\n'),
      lines[3]!,
      Buffer.from('\n'),
      lines[4]!,
      Buffer.from('\n'),
    ]);
    const res = await t.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-ndjson' }, payload: body });
    expect(res.statusCode).toBe(200);
    expect((res.json() as { results: unknown[] }).results).toEqual(lines.map((_, i) => ({ partition: 0, offset: i + 1 })));

    const bin = await t.app.inject({ method: 'GET', url, headers: { accept: BATCH_CONTENT_TYPE } });
    const got = decodeMessageBatch(bin.rawPayload).map((m) => Buffer.from(m.value));
    expect(got).toHaveLength(lines.length);
    got.forEach((v, i) => expect(v.equals(lines[i]!), `line ${i}`).toBe(true));

    const json = await browse(t.app, 'orders');
    expect(json[0]!.value).toBe('{"a": 1.0}'); // not parsed, not re-serialised
    expect(json[3]!.valueBase64).toBe(NOT_UTF8.toString('base64'));
  });

  it('takes a last line without newline and rejects an empty body', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/x-ndjson; charset=utf-8' },
      payload: 'one\ntwo',
    });
    expect((res.json() as { results: unknown[] }).results).toHaveLength(2);
    await expectNothingStored(async () => {
      const empty = await t.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-ndjson' }, payload: '' });
      expect(empty.statusCode).toBe(400);
      expect(empty.json()).toMatchObject({ code: 'BODY_INVALID' });
    });
  });
});

describe('binary produce', () => {
  it('round-trips values, keys and headers byte for byte', async () => {
    const values = [NOT_UTF8, Buffer.from('text'), Buffer.alloc(0), Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256))];
    const payload = encodeProduceBatch(
      values.map((value, i) => ({ value, key: `k${i}`, headers: { n: String(i) }, ...(i === 1 && { msgId: 'once' }) })),
    );
    const res = await t.app.inject({ method: 'POST', url, headers: { 'content-type': BATCH_CONTENT_TYPE }, payload });
    expect(res.statusCode).toBe(200);
    expect((res.json() as { results: unknown[] }).results).toEqual(values.map((_, i) => ({ partition: 0, offset: i + 1 })));

    const again = await t.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': BATCH_CONTENT_TYPE },
      payload: encodeProduceBatch([{ value: Buffer.from('x'), msgId: 'once' }]),
    });
    expect(again.json()).toEqual({ results: [{ duplicate: true, partition: 0, offset: 2 }] });

    const bin = await t.app.inject({ method: 'GET', url, headers: { accept: BATCH_CONTENT_TYPE } });
    const got = decodeMessageBatch(bin.rawPayload);
    expect(got.map((m) => m.key)).toEqual(['k0', 'k1', 'k2', 'k3']);
    expect(got.map((m) => m.headers)).toEqual(values.map((_, i) => ({ n: String(i) })));
    got.forEach((m, i) => expect(Buffer.from(m.value).equals(values[i]!), `value ${i}`).toBe(true));

    const json = await browse(t.app, 'orders', '&encoding=base64');
    json.forEach((m, i) => expect(Buffer.from(m.valueBase64 as string, 'base64').equals(values[i]!)).toBe(true));
  });

  it('names the broken frame and stores nothing', async () => {
    await produceText(t.app, 'orders', ['kept']);
    const good = encodeProduceBatch([{ value: Buffer.from('a') }, { value: Buffer.from('b') }]);
    const cases: Array<[Buffer, string]> = [
      [good.subarray(0, good.length - 3), 'messages[1]'],
      [Buffer.concat([good, Buffer.from([1, 0])]), 'messages[2]'],
      [Buffer.from([3, 0, 0, 0, 0x80, 0, 0]), 'messages[0]'], // unknown flag
    ];
    for (const [payload, path] of cases) {
      await expectNothingStored(async () => {
        const res = await t.app.inject({ method: 'POST', url, headers: { 'content-type': BATCH_CONTENT_TYPE }, payload });
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path }] });
      });
    }
    await expectNothingStored(async () => {
      const meta = encodeProduceBatch([{ value: Buffer.from('a') }, { value: Buffer.from('b'), key: 'k'.repeat(5000) }]);
      const res = await t.app.inject({ method: 'POST', url, headers: { 'content-type': BATCH_CONTENT_TYPE }, payload: meta });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'messages[1].key' }] });
      // Each of key, msgId and headers alone still gets the JSON route's checks (a message with none skips them).
      for (const [bad, path] of [
        [{ msgId: '' }, 'messages[2].msgId'],
        [{ headers: { '': 'v' } }, 'messages[2].headers'],
        [{ headers: { ['h'.repeat(1025)]: 'v' } }, 'messages[2].headers'],
      ] as const) {
        const body = encodeProduceBatch([{ value: Buffer.from('a') }, { value: Buffer.from('b') }, { value: Buffer.from('c'), ...bad }]);
        const r = await t.app.inject({ method: 'POST', url, headers: { 'content-type': BATCH_CONTENT_TYPE }, payload: body });
        expect(r.statusCode, JSON.stringify(bad)).toBe(400);
        expect((r.json() as { issues: Array<{ path: string }> }).issues[0]?.path, JSON.stringify(bad)).toMatch(
          new RegExp(`^${path.replace(/[[\].]/g, '\\$&')}`),
        );
      }
      const empty = await t.app.inject({ method: 'POST', url, headers: { 'content-type': BATCH_CONTENT_TYPE }, payload: Buffer.alloc(0) });
      expect(empty.statusCode).toBe(400);
    });
  });
});
