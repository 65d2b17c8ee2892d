/** The webhook sink's own behaviour: statuses, ordering, batch splitting, headers, secrets. */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configJsonSchema, parseConfig, redact, secretPaths, type Sink, type SinkBatch, type SinkMessage } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { retryAfterMs } from '../src/sink.js';
import { FakeEndpoint, POISON } from './fake-endpoint.js';

const enc = new TextEncoder();

function message(offset: number, value: string, extra: Partial<SinkMessage> = {}): SinkMessage {
  return { offset, timestamp: 1_700_000_000_000 + offset, headers: {}, value: enc.encode(value), ...extra };
}

function batch(...messages: SinkMessage[]): SinkBatch {
  return {
    station: 'orders',
    stationId: 'orders-1',
    partition: 2,
    firstOffset: messages[0]!.offset,
    lastOffset: messages.at(-1)!.offset,
    messages,
  };
}

let endpoint: FakeEndpoint;
const sinks: Sink[] = [];
beforeAll(async () => {
  endpoint = await FakeEndpoint.start();
});
afterAll(() => endpoint.close());
afterEach(async () => {
  endpoint.heal();
  endpoint.requests.length = 0;
  endpoint.accepted.length = 0;
  await Promise.all(sinks.splice(0).map((s) => s.close()));
});

async function open(config: Record<string, unknown>): Promise<Sink> {
  const sink = await plugin.open(parseConfig(plugin.config, { url: `${endpoint.url}/message`, ...config }), fakeContext());
  sinks.push(sink);
  return sink;
}

const signal = new AbortController().signal;

describe('webhook sink', () => {
  it('POSTs each message with its identity headers and the bearer token', async () => {
    const sink = await open({ token: 's3cret', headers: { 'x-api-key': 'k' } });
    const results = await sink.write(
      batch(message(7, 'a', { key: 'ключ' }), message(8, 'b', { headers: { 'content-type': 'text/plain' } })),
      { signal },
    );
    expect(results).toEqual([{ status: 'ok' }, { status: 'ok' }]);
    expect(endpoint.acceptedText()).toEqual(['a', 'b']);
    const [first, second] = endpoint.requests;
    expect(first!.headers).toMatchObject({
      authorization: 'Bearer s3cret',
      'x-api-key': 'k',
      'idempotency-key': 'orders/2/7',
      'x-junction-station': 'orders',
      'x-junction-partition': '2',
      'x-junction-offset': '7',
      'x-junction-key': encodeURIComponent('ключ'),
      'content-type': 'application/octet-stream',
    });
    expect(second!.headers['content-type']).toBe('text/plain');
  });

  it('dead-letters what the endpoint refuses with a 4xx, and goes on with the rest', async () => {
    const sink = await open({});
    const results = await sink.write(batch(message(1, 'a'), message(2, POISON), message(3, 'c')), { signal });
    expect(results.map((r) => r.status)).toEqual(['ok', 'deadLetter', 'ok']);
    expect(results[1]).toMatchObject({ code: 'SINK_REJECTED' });
    expect(endpoint.acceptedText()).toEqual(['a', 'c']);
  });

  it('answers retry on 429 with the Retry-After delay, and sends nothing after it (order kept)', async () => {
    const sink = await open({});
    endpoint.failWith(429, { 'retry-after': '3' });
    const results = await sink.write(batch(message(1, 'a'), message(2, 'b'), message(3, 'c')), { signal });
    expect(results.map((r) => r.status)).toEqual(['retry', 'retry', 'retry']);
    expect(results[0]).toMatchObject({ delayMs: 3000 });
    expect(endpoint.requests).toHaveLength(1);
  });

  it('answers retry on 5xx and on an unreachable endpoint', async () => {
    const sink = await open({});
    endpoint.failWith(502);
    expect((await sink.write(batch(message(1, 'a')), { signal }))[0]!.status).toBe('retry');

    const gone = await FakeEndpoint.start();
    const url = gone.url;
    await gone.close();
    const unreachable = await open({ url: `${url}/message`, timeoutMs: 1000 });
    const [r] = await unreachable.write(batch(message(1, 'a')), { signal });
    expect(r).toMatchObject({ status: 'retry' });
    expect((r as { reason: string }).reason).toMatch(/cannot reach/);
  });

  it('in batch mode POSTs one JSON body per batch', async () => {
    const sink = await open({ url: `${endpoint.url}/batch`, mode: 'batch' });
    const results = await sink.write(batch(message(4, 'x'), message(5, 'y', { key: 'k' })), { signal });
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(endpoint.requests).toHaveLength(1);
    const body = JSON.parse(endpoint.requests[0]!.body.toString('utf8')) as Record<string, unknown>;
    expect(body).toMatchObject({
      station: 'orders',
      partition: 2,
      firstOffset: 4,
      lastOffset: 5,
      messages: [
        { offset: 4, value: 'x' },
        { offset: 5, key: 'k', value: 'y' },
      ],
    });
    expect(endpoint.requests[0]!.headers['idempotency-key']).toBe('orders/2/4-5');
  });

  it('in batch mode sends bytes that are not UTF-8 as base64', async () => {
    const sink = await open({ url: `${endpoint.url}/batch`, mode: 'batch' });
    await sink.write(batch({ offset: 1, timestamp: 1, headers: {}, value: new Uint8Array([0xff, 0x00, 0xfe]) }), { signal });
    const body = JSON.parse(endpoint.requests[0]!.body.toString('utf8')) as { messages: { valueBase64?: string }[] };
    expect(body.messages[0]!.valueBase64).toBe(Buffer.from([0xff, 0x00, 0xfe]).toString('base64'));
  });

  it('in batch mode splits a refused batch to dead-letter only the poison', async () => {
    const sink = await open({ url: `${endpoint.url}/batch`, mode: 'batch' });
    const results = await sink.write(batch(message(1, 'a'), message(2, POISON), message(3, 'c')), { signal });
    expect(results.map((r) => r.status)).toEqual(['ok', 'deadLetter', 'ok']);
    expect(endpoint.acceptedText()).toEqual(['a', 'c']);
    expect(endpoint.requests).toHaveLength(4);
  });

  it('rejects a write whose signal is aborted, as retryable', async () => {
    const sink = await open({});
    const ac = new AbortController();
    ac.abort();
    await expect(sink.write(batch(message(1, 'a')), { signal: ac.signal })).rejects.toMatchObject({ code: 'TIMEOUT', retryable: true });
  });

  it('checkConnection: resolves when reachable, AUTH_FAILED on 401, CONNECTION_FAILED when unreachable', async () => {
    const sink = await open({});
    await expect(sink.checkConnection!()).resolves.toBeUndefined();
    endpoint.failWith(401);
    await expect(sink.checkConnection!()).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    const gone = await FakeEndpoint.start();
    const url = gone.url;
    await gone.close();
    const unreachable = await open({ url });
    await expect(unreachable.checkConnection!()).rejects.toMatchObject({ code: 'CONNECTION_FAILED' });
  });

  it('close is idempotent', async () => {
    const sink = await open({});
    await sink.close();
    await expect(sink.close()).resolves.toBeUndefined();
  });
});

describe('webhook config', () => {
  it('marks the token and header values secret', () => {
    expect(secretPaths(plugin.config).sort()).toEqual(['headers.*', 'token']);
    expect(redact(plugin.config, { url: 'http://h', token: 't', headers: { a: 'b' } })).toEqual({
      url: 'http://h',
      token: '***',
      headers: { a: '***' },
    });
    const schema = configJsonSchema(plugin.config) as { properties: Record<string, Record<string, unknown>>; required: string[] };
    expect(schema.properties.token).toMatchObject({ writeOnly: true, 'x-secret': true });
    expect(schema.required).toEqual(['url']);
  });

  it('refuses a URL that is not http(s), with the field path', () => {
    expect(() => parseConfig(plugin.config, { url: 'ftp://h/x' })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', issues: [expect.objectContaining({ path: 'url' })] }),
    );
  });

  it('reads Retry-After as seconds or a date, capped', () => {
    expect(retryAfterMs('2', 60_000)).toBe(2000);
    expect(retryAfterMs('9999', 60_000)).toBe(60_000);
    expect(retryAfterMs(new Date(Date.now() + 5000).toUTCString(), 60_000)).toBeGreaterThan(3000);
    expect(retryAfterMs('soon', 60_000)).toBeUndefined();
    expect(retryAfterMs(null, 60_000)).toBeUndefined();
  });
});
