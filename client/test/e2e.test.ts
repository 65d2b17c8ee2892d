/**
 * The client against the real broker (`@junction/server`, built), over real sockets.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '@junction/server';
import { DLS_HEADERS, JunctionApiError, JunctionClient, type ConsumerMessage, type StoredResult } from '../src/index.js';

let dir: string;
let server: RunningServer | undefined;
let client: JunctionClient | undefined;

function start(port = 0): Promise<RunningServer> {
  return startServer({ dataDir: dir, host: '127.0.0.1', port, logLevel: 'silent', env: {}, closeGraceMs: 200 });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-client-'));
  server = await start();
  client = new JunctionClient({ url: server.url, retry: { retries: 5, minDelayMs: 50, maxDelayMs: 1000 } });
});
afterEach(async () => {
  await client?.close();
  client = undefined;
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A 1 KiB value that names its message, so a consumer can check it got these very bytes. */
function valueOf(i: number): Buffer {
  const v = Buffer.alloc(1024, i % 251);
  v.write(`msg-${i}:`, 'utf8');
  return v;
}
function indexOf(value: Uint8Array): number {
  const s = Buffer.from(value.buffer, value.byteOffset, 16).toString('utf8');
  return Number(/^msg-(\d+):/.exec(s)![1]);
}

describe('admin API', () => {
  it('listStations follows the pages to the end; listStationsPage answers one page', async () => {
    const c = client!;
    // 501 stations and their dead-letter stations: 1002, more than one page of 1000.
    const names = Array.from({ length: 501 }, (_, i) => `p-${String(i).padStart(3, '0')}`);
    for (let i = 0; i < names.length; i += 50)
      await Promise.all(names.slice(i, i + 50).map((n) => c.createStation(n, { storage: 'memory' })));
    const all = await c.listStations();
    expect(all.map((s) => s.name)).toEqual(names.flatMap((n) => [n, `${n}.dls`]));
    const page = await c.listStationsPage({ limit: 3, prefix: 'p-1', after: 'p-100.dls' });
    expect(page).toMatchObject({ next: 'p-102' });
    expect(page.stations.map((s) => s.name)).toEqual(['p-101', 'p-101.dls', 'p-102']);
  });

  it('listConnectors follows the pages of GET /v1/connectors to the end; listConnectorsPage answers one page; connectorStatus', async () => {
    const c = client!;
    await c.createStation('src', { storage: 'memory' });
    const names = ['k-0', 'k-1', 'k-2', 'k-3', 'x-0'];
    for (const name of names) {
      const res = await fetch(`${server!.url}/v1/connectors`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name, plugin: 'file', station: 'src', config: { dir: join(dir, 'out', name) }, state: 'STOPPED' }),
      });
      expect(res.status).toBe(201);
    }
    expect(await c.listConnectors()).toEqual(names);
    expect(await c.listConnectors({ pageSize: 2 })).toEqual(names);
    expect(await c.listConnectors({ pageSize: 1, prefix: 'k-' })).toEqual(names.slice(0, 4));
    expect(await c.listConnectorsPage({ limit: 2, after: 'k-1' })).toEqual({ connectors: ['k-2', 'k-3'], next: 'k-3' });
    expect(await c.connectorStatus('k-0')).toMatchObject({ name: 'k-0', type: 'sink', connector: { state: 'STOPPED' } });
    await expect(c.connectorStatus('nope')).rejects.toMatchObject({ code: 'CONNECTOR_NOT_FOUND', status: 404 });
  });

  it('creates, reads, lists, updates and deletes stations and groups', async () => {
    const c = client!;
    expect((await c.health()).status).toBe('ok');
    const info = await c.createStation('orders', { partitions: 3, dedupWindowMs: 60_000 });
    expect(info).toMatchObject({ name: 'orders', config: { partitions: 3, dedupWindowMs: 60_000 }, messages: 0 });
    expect(info.partitions).toHaveLength(3);
    expect((await c.getStation('orders')).name).toBe('orders');
    expect((await c.listStations()).map((s) => s.name)).toContain('orders');
    expect((await c.updateStation('orders', { dedupWindowMs: 1000 })).config.dedupWindowMs).toBe(1000);

    const g = await c.createGroup('orders', 'billing', { start: { type: 'earliest' }, maxDeliveries: 3 });
    expect(g).toMatchObject({ station: 'orders', group: 'billing', maxDeliveries: 3, lag: 0 });
    expect((await c.getGroup('orders', 'billing')).group).toBe('billing');
    expect((await c.listGroups('orders')).map((x) => x.group)).toEqual(['billing']);
    expect((await c.seek('orders', 'billing', { type: 'latest' })).group).toBe('billing');
    await c.deleteGroup('orders', 'billing');
    expect(await c.listGroups('orders')).toEqual([]);

    await c.deleteStation('orders');
    await expect(c.getStation('orders')).rejects.toMatchObject({ code: 'STATION_NOT_FOUND', status: 404, retryable: false });
  });

  it('maps broker errors: codes, statuses and field issues', async () => {
    const c = client!;
    await c.createStation('s1');
    const exists = await c.createStation('s1').catch((e: unknown) => e);
    expect(exists).toBeInstanceOf(JunctionApiError);
    expect(exists).toMatchObject({ code: 'STATION_EXISTS', status: 409 });
    const bad = await c.createStation('s2', { partitions: 0 }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ status: 400, retryable: false });
    expect(['BODY_INVALID', 'CONFIG_INVALID']).toContain((bad as JunctionApiError).code);
    expect((bad as JunctionApiError).issues?.[0]?.path).toBe('partitions');
    await expect(c.updateStation('s1', { partitions: 4 } as never)).rejects.toMatchObject({ code: 'CONFIG_IMMUTABLE' });
    await expect(c.createGroup('s1', 'g')).resolves.toMatchObject({ group: 'g' });
    await expect(c.createGroup('s1', 'g')).rejects.toMatchObject({ code: 'GROUP_EXISTS', status: 409 });
    await expect(c.fetch('nope', 'g')).rejects.toMatchObject({ code: 'STATION_NOT_FOUND' });
  });

  it('produces and browses binary values byte for byte, keys and headers included', async () => {
    const c = client!;
    await c.createStation('raw');
    const bytes = new Uint8Array(256).map((_, i) => i); // not UTF-8: must travel untouched
    const r = await c.produce('raw', [{ value: bytes, key: 'k', headers: { a: '1' } }, { value: 'héllo' }, { value: new Uint8Array(0) }]);
    expect(r).toEqual([
      { status: 'stored', partition: 0, offset: 1 },
      { status: 'stored', partition: 0, offset: 2 },
      { status: 'stored', partition: 0, offset: 3 },
    ]);
    const read = await c.read('raw', { partition: 0, limit: 10 });
    expect(read).toHaveLength(3);
    expect(Buffer.compare(Buffer.from(read[0]!.value), Buffer.from(bytes))).toBe(0);
    expect(read[0]).toMatchObject({ key: 'k', headers: { a: '1' }, offset: 1 });
    expect(Buffer.from(read[1]!.value).toString()).toBe('héllo');
    expect(read[2]!.value.byteLength).toBe(0);
    expect(await c.read('raw', { fromOffset: 3 })).toHaveLength(1);
  });
});

describe('producer and consumer', () => {
  it('10k concurrent send(): 10k results, offsets unique and contiguous per partition; consumed once each, bytes equal', async () => {
    const c = client!;
    await c.createStation('load', { partitions: 4 });
    const producer = c.producer('load');
    const N = 10_000;
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: N }, (_, i) => producer.send({ value: valueOf(i), key: `k${i % 97}` })));
    const seconds = (performance.now() - started) / 1000;
    console.log(`producer: ${N} × 1 KiB send() in ${seconds.toFixed(2)} s = ${Math.round(N / seconds)} msgs/s`);
    expect(results).toHaveLength(N);
    const byPartition = new Map<number, number[]>();
    const where = new Map<string, number>();
    results.forEach((r: StoredResult, i) => {
      expect(r.status).toBe('stored');
      (byPartition.get(r.partition) ?? byPartition.set(r.partition, []).get(r.partition)!).push(r.offset);
      where.set(`${r.partition}/${r.offset}`, i);
    });
    for (const offsets of byPartition.values()) {
      offsets.sort((a, b) => a - b);
      expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i + 1));
    }
    expect(where.size).toBe(N);
    await producer.close();

    const consumer = c.consumer('load', 'readers', { maxMessages: 500, waitMs: 200 });
    const seen = new Set<number>();
    const acks: Promise<unknown>[] = [];
    for await (const m of consumer) {
      const i = indexOf(m.value);
      expect(where.get(`${m.partition}/${m.offset}`)).toBe(i);
      expect(Buffer.compare(Buffer.from(m.value), valueOf(i))).toBe(0);
      expect(m.key).toBe(`k${i % 97}`);
      expect(m.deliveryCount).toBe(1);
      expect(seen.has(i)).toBe(false);
      seen.add(i);
      acks.push(m.ack());
      if (seen.size === N) break;
    }
    expect(new Set(await Promise.all(acks))).toEqual(new Set(['acked']));
    const group = await c.getGroup('load', 'readers');
    expect(group.lag).toBe(0);
    expect(group.pending).toBe(0);
  });

  it('msgId makes a resend a duplicate', async () => {
    const c = client!;
    await c.createStation('dedup');
    const p = c.producer('dedup');
    const a = await p.send({ value: 'x', msgId: 'order-1' });
    const b = await p.send({ value: 'x', msgId: 'order-1' });
    expect(a).toEqual({ status: 'stored', partition: 0, offset: 1 });
    expect(b).toEqual({ status: 'duplicate', partition: 0, offset: 1 });
    const batch = await p.sendBatch([{ value: 'y', msgId: 'order-2' }, { value: 'y', msgId: 'order-1' }, { value: 'z'.repeat(100) }]);
    expect(batch.map((r) => r.status)).toEqual(['stored', 'duplicate', 'stored']);
  });

  it('a message over maxMessageBytes is rejected alone', async () => {
    const c = client!;
    await c.createStation('small', { maxMessageBytes: 100 });
    const p = c.producer('small');
    const r = await Promise.allSettled([p.send('ok'), p.send(new Uint8Array(500)), p.send('ok too')]);
    expect(r.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((r[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'MESSAGE_TOO_LARGE', retryable: false });
  });

  it('nack redelivers; deadLetter moves the message to the DLS with its reason', async () => {
    const c = client!;
    await c.createStation('jobs');
    await c.producer('jobs').sendBatch(['a', 'b']);
    const consumer = c.consumer('jobs', 'workers', { waitMs: 200 });
    const events: string[] = [];
    for await (const m of consumer) {
      events.push(`${m.text()}#${m.deliveryCount}`);
      if (m.text() === 'a' && m.deliveryCount === 1) expect(await m.nack()).toBe('nacked');
      else if (m.text() === 'a') expect(await m.ack()).toBe('acked');
      else expect(await m.deadLetter('cannot parse')).toBe('dead-lettered');
      if (events.length === 3) break;
    }
    expect(events.sort()).toEqual(['a#1', 'a#2', 'b#1']);
    const dls = await c.listDeadLetters('jobs');
    expect(dls).toHaveLength(1);
    expect(Buffer.from(dls[0]!.value).toString()).toBe('b');
    expect(dls[0]!.headers[DLS_HEADERS.reason]).toBe('cannot parse');
    expect(dls[0]!.headers[DLS_HEADERS.group]).toBe('workers');
    expect((await c.getGroup('jobs', 'workers')).deadLettered).toBe(1);
    // The paging iterator walks the same dead letters, one per page here.
    const walked: string[] = [];
    for await (const m of c.deadLetters('jobs', { limit: 1 })) walked.push(Buffer.from(m.value).toString());
    expect(walked).toEqual(['b']);

    // Replay to the group: it comes back to the consumer.
    expect(await c.replayDeadLetters('jobs', { group: 'workers', purge: true })).toMatchObject({ replayed: 1, purged: 1 });
    const again = await c.consumer('jobs', 'workers', { waitMs: 1000 }).fetch();
    expect(again.map((m) => m.text())).toEqual(['b']);
    await again[0]!.ack();
    expect(await c.listDeadLetters('jobs')).toHaveLength(0);
    expect(await c.purgeDeadLetters('jobs')).toBe(0);
  });

  it('a missing station ends the loop with STATION_NOT_FOUND', async () => {
    const consumer = client!.consumer('missing', 'g', { waitMs: 100 });
    const run = async () => {
      for await (const _m of consumer) {
        /* nothing arrives */
      }
    };
    await expect(run()).rejects.toMatchObject({ code: 'STATION_NOT_FOUND', status: 404 });
    expect(consumer.isClosed).toBe(true);
  });

  it('the consumer survives a broker restart and gets the rest', async () => {
    const c = client!;
    await c.createStation('durable', { partitions: 2 });
    const N = 2000;
    const first = await c.producer('durable').sendBatch(Array.from({ length: N / 2 }, (_, i) => ({ value: valueOf(i) })));
    expect(first.every((r) => r.status === 'stored')).toBe(true);

    const errors: string[] = [];
    // A short ack deadline: deliveries whose answer or ack the restart swallowed come back soon.
    const consumer = c.consumer('durable', 'g', {
      maxMessages: 50,
      waitMs: 300,
      create: { start: { type: 'earliest' }, maxAckTimeMs: 1000 },
      onError: (e) => errors.push(e.code),
    });
    const seen = new Set<number>();
    let restart: Promise<void> | undefined;
    const t0 = Date.now();
    for await (const m of consumer) {
      seen.add(indexOf(m.value));
      void m.ack().catch(() => {}); // an ack the restart cuts off is redelivered: at-least-once
      if (!restart && seen.size >= 300) {
        // The broker goes away while the consumer long-polls, stays down a while, and comes back on
        // the same data dir and port; the second half is produced to the new broker by another client.
        restart = (async () => {
          const port = server!.port;
          await server!.close();
          server = undefined;
          await new Promise((r) => setTimeout(r, 500));
          server = await start(port);
          const other = new JunctionClient({ url: server.url });
          const second = await other
            .producer('durable')
            .sendBatch(Array.from({ length: N / 2 }, (_, i) => ({ value: valueOf(N / 2 + i) })));
          expect(second.every((r) => r.status === 'stored')).toBe(true);
          await other.close();
        })();
      }
      if (seen.size === N) break;
    }
    await restart;
    console.log(`restart test: ${N} messages in ${Date.now() - t0} ms; errors seen: ${errors.join(',')}`);
    expect(seen.size).toBe(N);
    expect(errors.length).toBeGreaterThan(0); // it did notice the restart
  });

  it('close() and break leave no sockets or timers behind', async () => {
    const c = client!;
    await c.createStation('tidy');
    const count = () => {
      const r = process.getActiveResourcesInfo();
      return { sockets: r.filter((x) => x === 'TCPSocketWrap').length, timers: r.filter((x) => x === 'Timeout').length };
    };
    await new Promise((r) => setTimeout(r, 50));
    const before = count();

    const local = new JunctionClient({ url: server!.url });
    const p = local.producer('tidy');
    await Promise.all([p.send('1'), p.send('2'), p.send('3')]);
    // A loop broken out of while its prefetch long-polls for 30 s.
    const consumer = local.consumer('tidy', 'g', { waitMs: 30_000 });
    let n = 0;
    for await (const m of consumer) {
      void m.ack();
      if (++n === 3) break;
    }
    // A second consumer stuck in a long poll, closed from outside.
    const idle = local.consumer('tidy', 'g2', { create: { start: { type: 'latest' } }, waitMs: 30_000 });
    const loop = (async () => {
      for await (const _m of idle) throw new Error('nothing should arrive');
    })();
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await local.close();
    await loop;
    expect(Date.now() - started).toBeLessThan(15_000); // the long poll was 30 s
    expect((await c.getGroup('tidy', 'g')).lag).toBe(0);

    // The broker's side of the closed sockets goes away asynchronously.
    let after = count();
    for (let i = 0; i < 50 && (after.sockets > before.sockets || after.timers > before.timers); i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = count();
    }
    expect(after.sockets).toBeLessThanOrEqual(before.sockets);
    expect(after.timers).toBeLessThanOrEqual(before.timers);
  });
});

describe('consumer messages', () => {
  it('text(), json(), headers, key, timestamp and manual fetch()', async () => {
    const c = client!;
    await c.createStation('shapes');
    const before = Date.now();
    await c.producer('shapes').send({ value: JSON.stringify({ n: 1 }), key: 'user-7', headers: { 'content-type': 'application/json' } });
    const consumer = c.consumer('shapes', 'g', { waitMs: 1000 });
    const [m] = (await consumer.fetch()) as [ConsumerMessage];
    expect(m.json()).toEqual({ n: 1 });
    expect(m.text()).toBe('{"n":1}');
    expect(m).toMatchObject({
      key: 'user-7',
      headers: { 'content-type': 'application/json' },
      partition: 0,
      offset: 1,
      deliveryCount: 1,
      station: 'shapes',
      group: 'g',
    });
    expect(m.timestamp).toBeGreaterThanOrEqual(before - 1000);
    expect(m.deliveryId).toMatch(/^0-1-1-[0-9a-z]{1,7}$/);
    expect(await m.ack()).toBe('acked');
    expect(await m.ack()).toBe('acked'); // once only; the same answer
    await consumer.close();
  });
});
