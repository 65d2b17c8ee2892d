/**
 * What a hostile or broken client can do to the HTTP app (issue 14, item 12): malformed URLs, bodies
 * on methods that take none, abandoned uploads, and bodies built to blow up memory. Each answers a
 * coded 4xx in our shape, on a connection that stays usable, logs nothing at error, and leaves the
 * broker serving.
 */
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startServer } from '../src/index.js';
import type { RunningServer } from '../src/index.js';

let dir: string;
let server: RunningServer;
let lines: { level: number; msg: string }[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-hardening-'));
  lines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, logger: pino({ level: 'debug' }, sink), env: {} });
  const res = await fetch(`${server.url}/v1/stations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"name":"s"}',
  });
  expect(res.status).toBe(201);
});
afterEach(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

/** Writes raw bytes on one connection and collects everything the server sends back until it goes quiet or closes. */
function rawExchange(bytes: string | Buffer, opts: { destroyAfterWrite?: boolean; quietMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port: server.port, host: '127.0.0.1' });
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(out);
    };
    const quiet = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, opts.quietMs ?? 300);
    };
    sock.on('data', (d) => {
      out += d.toString('latin1');
      quiet();
    });
    sock.on('close', finish);
    sock.on('error', (e) => (opts.destroyAfterWrite ? finish() : reject(e)));
    sock.write(bytes, () => {
      if (opts.destroyAfterWrite) sock.destroy();
      else quiet();
    });
  });
}

/** The responses in `raw`, in order; `bodiless`: the first answers a HEAD (headers only). */
function responses(raw: string, bodiless = false): { status: number; body: string }[] {
  const out: { status: number; body: string }[] = [];
  const re = /HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n/g;
  for (let m = re.exec(raw); m; m = re.exec(raw)) {
    const len = bodiless && out.length === 0 ? 0 : Number(/content-length: (\d+)/i.exec(m[2]!)?.[1] ?? 0);
    const body = raw.slice(re.lastIndex, re.lastIndex + len);
    re.lastIndex += len;
    out.push({ status: Number(m[1]), body });
  }
  return out;
}

describe('HTTP hardening', () => {
  it('a malformed percent-encoding answers 400 in our error shape', async () => {
    const res = await fetch(`${server.url}/v1/stations/%zz`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ code: 'BAD_REQUEST' });
    expect(Object.keys(body).sort()).toEqual(['code', 'message']);
  });

  it('GET, HEAD and DELETE with a body answer 400 BODY_INVALID and the connection keeps serving', async () => {
    const body = JSON.stringify({ a: 'x'.repeat(5000) });
    for (const [method, path] of [
      ['GET', '/v1/stations/s'],
      ['HEAD', '/v1/stations/s'],
      ['DELETE', '/v1/stations/s'],
      ['GET', '/healthz'],
    ] as const) {
      const raw = await rawExchange(
        `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}` +
          `GET /v1/stations/s HTTP/1.1\r\nHost: x\r\n\r\n`,
      );
      const rs = responses(raw, method === 'HEAD');
      expect(
        rs.map((r) => r.status),
        `${method} ${path}`,
      ).toEqual([400, 200]);
      if (method !== 'HEAD') expect(JSON.parse(rs[0]!.body)).toMatchObject({ code: 'BODY_INVALID' });
      expect(JSON.parse(rs[1]!.body)).toMatchObject({ name: 's' });
    }
    // The station was not deleted by the refused DELETE; a DELETE route that takes a body still does.
    expect((await fetch(`${server.url}/v1/stations/s`)).status).toBe(200);
    const purge = await fetch(`${server.url}/v1/stations/s/dls`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(purge.status).toBe(200);
    expect(await purge.json()).toEqual({ purged: 0 });
  });

  it('an upload the client abandons is logged below error', async () => {
    for (let i = 0; i < 20; i++) {
      await rawExchange(
        `POST /v1/stations/s/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"messages":[`,
        { destroyAfterWrite: true },
      );
    }
    // The server has seen the aborts once a later request on a new connection was answered.
    for (const deadline = Date.now() + 5_000; !lines.some((l) => l.msg === 'request rejected') && Date.now() < deadline;)
      await new Promise((r) => setTimeout(r, 20));
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });

  it('bodies built to blow up memory are refused early and the broker keeps serving', async () => {
    const before = process.memoryUsage().rss;
    // 8 MiB of newlines is 8 million NDJSON messages: refused at the 100,001st line, not split in full.
    const newlines = Buffer.alloc(8 * 1024 * 1024, 0x0a);
    const nd = await fetch(`${server.url}/v1/stations/s/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: newlines,
    });
    expect(nd.status).toBe(400);
    expect(await nd.json()).toMatchObject({ code: 'BODY_INVALID' });
    // JSON larger than the JSON limit is refused before it is read or parsed.
    const big = Buffer.alloc(17 * 1024 * 1024, 0x20);
    const tooBig = await fetch(`${server.url}/v1/stations/s/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    }).catch(() => undefined);
    if (tooBig) expect(tooBig.status).toBe(413);
    // Other routes take 1 MiB.
    const station = await fetch(`${server.url}/v1/stations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x', pad: 'y'.repeat(2 * 1024 * 1024) }),
    });
    expect(station.status).toBe(413);
    // Several hostile JSON arrays at once: parsed one at a time, every one a 4xx or a 503, then service as usual.
    const arr = Buffer.from(`{"messages":[${'0,'.repeat(1_500_000)}0]}`);
    const statuses = await Promise.all(
      Array.from({ length: 6 }, () =>
        fetch(`${server.url}/v1/stations/s/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: arr }).then(
          (r) => r.status,
        ),
      ),
    );
    for (const s of statuses) expect([400, 503]).toContain(s);
    expect(process.memoryUsage().rss - before).toBeLessThan(1024 * 1024 * 1024);
    const ok = await fetch(`${server.url}/v1/stations/s/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"messages":[{"value":"fine"}]}',
    });
    expect(await ok.json()).toEqual({ results: [{ partition: 0, offset: 1 }] });
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });
});
