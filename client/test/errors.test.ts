import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { JunctionApiError, JunctionClient, isRetryable } from '../src/index.js';
import { errorFromResponse } from '../src/errors.js';

describe('errorFromResponse', () => {
  const body = (v: unknown) => Buffer.from(JSON.stringify(v));

  it('keeps the broker code, message, issues and status', () => {
    const e = errorFromResponse(
      400,
      body({ code: 'CONFIG_INVALID', message: 'bad', issues: [{ path: 'partitions', message: 'too big' }] }),
      'POST',
      '/v1/stations',
    );
    expect(e).toBeInstanceOf(JunctionApiError);
    expect(e).toMatchObject({
      code: 'CONFIG_INVALID',
      message: 'bad',
      status: 400,
      retryable: false,
      issues: [{ path: 'partitions', message: 'too big' }],
    });
  });

  it('marks 5xx, 429 and 408 retryable, other 4xx not', () => {
    for (const [status, retryable] of [
      [500, true],
      [503, true],
      [429, true],
      [408, true],
      [400, false],
      [404, false],
      [409, false],
    ] as const) {
      const e = errorFromResponse(status, body({ code: 'X', message: 'm' }), 'GET', '/');
      expect(isRetryable(e), String(status)).toBe(retryable);
    }
  });

  it('answers HTTP_ERROR for a body that is not a Junction error', () => {
    expect(errorFromResponse(502, Buffer.from('<html>bad gateway</html>'), 'GET', '/x')).toMatchObject({
      code: 'HTTP_ERROR',
      status: 502,
      retryable: true,
    });
    expect(errorFromResponse(404, Buffer.from('{"nope":1}'), 'GET', '/x')).toMatchObject({
      code: 'HTTP_ERROR',
      status: 404,
      retryable: false,
    });
  });
});

describe('JunctionClient over HTTP: errors and retries', () => {
  let server: Server | undefined;
  let client: JunctionClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('retries an idempotent GET on 503 and succeeds', async () => {
    let calls = 0;
    const url = await serve((_req, res) => {
      calls++;
      if (calls < 3) {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'STORE_CLOSED', message: 'closing' }));
      } else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ stations: [] }));
    });
    client = new JunctionClient({ url, retry: { retries: 3, minDelayMs: 5, maxDelayMs: 20 } });
    expect(await client.listStations()).toEqual([]);
    expect(calls).toBe(3);
  });

  it('gives up after retries with the last error', async () => {
    let calls = 0;
    const url = await serve((_req, res) => {
      calls++;
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'STORE_CLOSED', message: 'closing' }));
    });
    client = new JunctionClient({ url, retry: { retries: 2, minDelayMs: 1, maxDelayMs: 5 } });
    await expect(client.getStation('s')).rejects.toMatchObject({ code: 'STORE_CLOSED', status: 503, retryable: true });
    expect(calls).toBe(3);
  });

  it('does not retry a produce (not idempotent) nor a 4xx', async () => {
    let calls = 0;
    const url = await serve((req, res) => {
      calls++;
      if (req.method === 'POST')
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'INTERNAL', message: 'x' }));
      else
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end(JSON.stringify({ code: 'STATION_NOT_FOUND', message: 'no station "s"' }));
    });
    client = new JunctionClient({ url, retry: { retries: 3, minDelayMs: 1, maxDelayMs: 5 } });
    await expect(client.produce('s', [{ value: 'a' }])).rejects.toMatchObject({ code: 'INTERNAL', retryable: true });
    expect(calls).toBe(1);
    await expect(client.getStation('s')).rejects.toMatchObject({ code: 'STATION_NOT_FOUND', status: 404, retryable: false });
    expect(calls).toBe(2);
  });

  it('maps a refused connection to a retryable NETWORK_ERROR', async () => {
    const url = await serve((_req, res) => res.end());
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    client = new JunctionClient({ url, retry: { retries: 1, minDelayMs: 1, maxDelayMs: 2 } });
    const err = await client.health().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NETWORK_ERROR', status: undefined, retryable: true });
  });

  it('maps a connection cut mid-answer to NETWORK_ERROR and a slow answer to TIMEOUT', async () => {
    const url = await serve((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"sta');
        setTimeout(() => res.destroy(), 10);
      }
      // else: never answers
    });
    client = new JunctionClient({ url, timeoutMs: 100, retry: { retries: 0 } });
    await expect(client.health()).rejects.toMatchObject({ code: 'NETWORK_ERROR', retryable: true });
    await expect(client.listStations()).rejects.toMatchObject({ code: 'TIMEOUT', retryable: true });
  });

  it('aborts a request through its signal', async () => {
    const url = await serve(() => {});
    client = new JunctionClient({ url });
    const ac = new AbortController();
    const p = client.listStations({ signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toMatchObject({ code: 'ABORTED', retryable: false });
  });

  it('refuses requests after close', async () => {
    const url = await serve((_req, res) => res.end('{}'));
    client = new JunctionClient({ url });
    await client.close();
    await expect(client.health()).rejects.toMatchObject({ code: 'CLOSED' });
    expect(() => client!.producer('s')).toThrow(JunctionApiError);
  });
});
