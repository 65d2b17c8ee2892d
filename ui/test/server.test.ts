/** The dashboard plugin on a real socket: the built files, the station listing, the live streams. */
import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedStore, brokerRoutes, errorHandler, notFoundHandler } from '@junction/broker';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { LiveHub, MAX_SAMPLING_SHARE, uiRoutes } from '../src/index.js';

let dir: string;
let store: EmbeddedStore;
let app: FastifyInstance;
let base: string;
const hub = new LiveHub({ intervalMs: 50 });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-ui-server-'));
  const web = join(dir, 'web');
  await mkdir(join(web, 'assets'), { recursive: true });
  await writeFile(join(web, 'index.html'), '<!doctype html><div id="app"></div>');
  await writeFile(join(web, 'assets', 'app-1234.js'), 'console.log(1)');
  store = new EmbeddedStore({ dataDir: join(dir, 'data'), fsync: 'never' });
  await store.open();
  app = Fastify({ logger: false });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  await app.register(brokerRoutes, { store });
  await app.register(uiRoutes, { store, webRoot: web, hub });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await app.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An SSE client: the raw frames it received, in order. */
function follow(path: string): Promise<{ res: IncomingMessage; frames: string[]; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers: { accept: 'text/event-stream' } }, (res) => {
      const frames: string[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          frames.push(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      });
      resolve({ res, frames, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}
const snapshots = (frames: string[]) => frames.filter((f) => f.startsWith('event: snapshot'));

describe('the built app', () => {
  it('answers index.html for client routes, the assets by name, JSON 404 for the rest', async () => {
    for (const path of ['/', '/stations', '/stations/orders/dead-letters', '/connectors/x', '/login']) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await res.text()).toBe('<!doctype html><div id="app"></div>');
    }
    const js = await fetch(`${base}/assets/app-1234.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect(await js.text()).toBe('console.log(1)');
    for (const path of ['/assets/nope.js', '/assets/../index.html', '/v1/nothing']) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { code: string }).code).toBe('ROUTE_NOT_FOUND');
    }
  });
});

describe('GET /v1/dashboard/stations', () => {
  it('filters, sorts and pages on the server', async () => {
    for (let i = 0; i < 30; i++) await store.createStation(`list-${String(i).padStart(2, '0')}`, { storage: 'memory' });
    await store.produce('list-07', [{ value: Buffer.from('a') }, { value: Buffer.from('b') }, { value: Buffer.from('c') }]);
    await store.produce('list-21', [{ value: Buffer.from('a') }]);
    const get = async (q: string) =>
      (await fetch(`${base}/v1/dashboard/stations?${q}`)).json() as Promise<{
        total: number;
        offset: number;
        stations: { name: string; messages: number }[];
      }>;
    const page = await get('q=LIST-&sort=messages&order=desc&limit=3');
    expect(page.total).toBe(30);
    expect(page.stations.map((s) => [s.name, s.messages])).toEqual([
      ['list-07', 3],
      ['list-21', 1],
      ['list-00', 0],
    ]);
    const second = await get('q=list-&offset=10&limit=5&order=desc');
    expect(second.stations.map((s) => s.name)).toEqual(['list-19', 'list-18', 'list-17', 'list-16', 'list-15']);
    expect((await get('q=list-1')).total).toBe(10);
    const bad = await fetch(`${base}/v1/dashboard/stations?sort=color`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'sort' }] });
  });
});

/** Enough of a ServerResponse for the hub: what it writes, and 'close' when the test says so. */
function fakeResponse(): ServerResponse & { written: string[]; hangUp: () => void } {
  const e = new EventEmitter() as EventEmitter & Record<string, unknown>;
  const written: string[] = [];
  Object.assign(e, {
    written,
    writableLength: 0,
    writeHead: () => e,
    write: (chunk: string) => written.push(chunk),
    end: () => e.emit('close'),
    destroy: () => e.emit('close'),
    hangUp: () => e.emit('close'),
  });
  return e as unknown as ServerResponse & { written: string[]; hangUp: () => void };
}

describe('live streams', () => {
  it('a slow sample spaces the next ones out: sampling takes at most 1/MAX_SAMPLING_SHARE of the time', async () => {
    const local = new LiveHub({ intervalMs: 10 });
    const runs: { start: number; end: number }[] = [];
    const sampler = {
      async sample() {
        const start = performance.now();
        // A sample that keeps the event loop busy for 20 ms (a store with many stations).
        while (performance.now() - start < 20);
        runs.push({ start, end: performance.now() });
        return { at: Date.now(), n: runs.length };
      },
    };
    const res = fakeResponse();
    expect(local.subscribe('slow', res, () => sampler)).toBe(true);
    await until('four samples', () => (runs.length >= 4 ? true : undefined));
    res.hangUp();
    for (let i = 1; i < runs.length; i++) {
      const took = runs[i - 1]!.end - runs[i - 1]!.start;
      // Timers fire late, never early: the gap is at least what the bound asks.
      expect(runs[i]!.start - runs[i - 1]!.end).toBeGreaterThanOrEqual(took * (MAX_SAMPLING_SHARE - 1) - 2);
    }
    expect(res.written.filter((w) => w.startsWith('event: snapshot')).length).toBeGreaterThanOrEqual(4);
    expect(local.activeStreams).toBe(0);
  });

  it('ends a stream after maxStreamMs, so that the client comes back and its credential is checked again', async () => {
    const short = new LiveHub({ intervalMs: 50, maxStreamMs: 300 });
    const local = Fastify({ logger: false });
    local.setErrorHandler(errorHandler);
    await local.register(uiRoutes, { store, webRoot: join(dir, 'web'), hub: short });
    const url = await local.listen({ port: 0, host: '127.0.0.1' });
    try {
      await store.createStation('short-1', {});
      const ended = await new Promise<string>((resolve, reject) => {
        const req = request(`${url}/v1/live/stations/short-1`, { headers: { accept: 'text/event-stream' } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      expect(ended).toContain('event: snapshot');
      await until('the hub forgot it', () => (short.clients === 0 && short.activeStreams === 0 ? true : undefined));
    } finally {
      await local.close();
    }
  });

  it('one sampler per stream for every client, the same bytes to each, only when something changed, stopped when the last leaves', async () => {
    await store.createStation('live-1', {});
    const clients = await Promise.all([
      follow('/v1/live/stations/live-1'),
      follow('/v1/live/stations/live-1'),
      follow('/v1/live/stations/live-1'),
    ]);
    for (const c of clients) expect(c.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    await until('a snapshot at each client', () => (clients.every((c) => snapshots(c.frames).length >= 1) ? true : undefined));
    expect(hub.activeStreams).toBe(1);
    expect(hub.clients).toBe(3);
    // Nothing changes: the sampler keeps sampling, nobody is sent anything new.
    const samples = hub.samples;
    await until('five more samples', () => (hub.samples >= samples + 5 ? true : undefined));
    for (const c of clients) expect(snapshots(c.frames)).toHaveLength(1);
    // A produce: every client gets the snapshot that shows it, byte for byte the same (a sample taken
    // while the produce ran may show a step between, sent to all alike).
    await store.produce('live-1', [{ value: Buffer.from('hello') }]);
    const shows = (f: string) => (JSON.parse(f.split('\ndata: ')[1]!) as { station: { messages: number } }).station.messages === 1;
    const seen = await until('the produced message at each client', () => {
      const frames = clients.map((c) => snapshots(c.frames).find(shows));
      return frames.every((f) => f !== undefined) ? frames : undefined;
    });
    expect(new Set(seen).size).toBe(1);
    expect(new Set(clients.map((c) => snapshots(c.frames).join('|'))).size).toBe(1);
    const data = JSON.parse(seen[0]!.split('\ndata: ')[1]!) as { station: { messages: number }; deadLetters: number; groups: unknown[] };
    expect(data.deadLetters).toBe(0);
    for (const c of clients) c.close();
    await until('the stream stopped', () => (hub.clients === 0 && hub.activeStreams === 0 ? true : undefined));
  });

  it('the overview counts stations, messages and dead letters, and alerts on a growing DLS', async () => {
    await store.createStation('ov-1', {});
    await store.produce('ov-1', [{ value: Buffer.from('x') }, { value: Buffer.from('y') }]);
    await store.createGroup('ov-1', 'g', { start: { type: 'earliest' } });
    const c = await follow('/v1/live/overview');
    await until('a snapshot', () => (snapshots(c.frames).length >= 1 ? true : undefined));
    const last = () =>
      JSON.parse(snapshots(c.frames).at(-1)!.split('\ndata: ')[1]!) as {
        stations: number;
        messages: number;
        deadLetters: number;
        alerts: { kind: string; subject: string }[];
      };
    expect(last().deadLetters).toBe(0);
    const [d] = await store.fetch('ov-1', 'g', { maxMessages: 1 });
    await store.deadLetter('ov-1', 'g', [d!.deliveryId], 'bad');
    const snap = await until('the dead letter in the overview', () => (last().deadLetters === 1 ? last() : undefined));
    expect(snap.alerts).toContainEqual(expect.objectContaining({ kind: 'dls-growing', subject: 'ov-1' }));
    expect(snap.messages).toBeGreaterThanOrEqual(2);
    c.close();
    await until('the stream stopped', () => (hub.clients === 0 ? true : undefined));
  });

  it('answers one JSON snapshot to a client that does not ask for an event stream', async () => {
    await store.createStation('json-1', {});
    await store.produce('json-1', [{ value: Buffer.from('a') }, { value: Buffer.from('b') }]);
    const res = await fetch(`${base}/v1/live/stations/json-1`);
    expect(res.headers.get('content-type')).toContain('application/json');
    const snap = (await res.json()) as { station: { name: string; messages: number }; produceRate: number };
    expect(snap.station).toMatchObject({ name: 'json-1', messages: 2 });
    expect(snap.produceRate).toBe(0);
    expect(hub.clients).toBe(0);
  });

  it('answers 404 for an unknown station before streaming, and 400 for a bad name', async () => {
    const res = await fetch(`${base}/v1/live/stations/nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 'STATION_NOT_FOUND' });
    const bad = await fetch(`${base}/v1/live/stations/${encodeURIComponent('.bad')}`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'BODY_INVALID' });
    expect(hub.clients).toBe(0);
  });
});
