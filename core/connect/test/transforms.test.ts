/**
 * Transforms in connectors: applied in the worker before a sink's write / after a source's read; bytes
 * of untouched messages kept; failures following errors.tolerance; dropped messages acked (exactly-once
 * file sink: no redelivery, no duplicate on replay); community transform plugins.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DLS_HEADERS } from '@junction/protocol';
import { CONNECTOR_DLS_HEADERS } from '../src/index.js';
import { harness, lagOf, waitFor } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await harness();
});
afterEach(async () => {
  await h.cleanup();
});

const enc = new TextEncoder();

interface Seen {
  offset: number;
  key: string | null;
  headers: Record<string, string>;
  value: Buffer;
}
async function seen(dir: string): Promise<Seen[]> {
  let text = '';
  try {
    text = await readFile(join(dir, 'values.log'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const o = JSON.parse(l) as Seen & { value: string };
      return { offset: o.offset, key: o.key, headers: o.headers, value: Buffer.from(o.value, 'base64') };
    });
}

/** Every line of the file sink's files under `dir`, by `<partition dir>:<offset>` (one partition: by offset). */
async function fileLines(dir: string): Promise<Map<number | string, { value: string; headers: Record<string, string> }>> {
  const out = new Map<number | string, { value: string; headers: Record<string, string> }>();
  const dirs = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.jsonl')) {
        for (const l of (await readFile(p, 'utf8')).split('\n').filter(Boolean)) {
          const o = JSON.parse(l) as { offset: number; value: string; headers: Record<string, string> };
          dirs.add(d);
          const k = `${d}:${o.offset}`;
          expect(out.has(k)).toBe(false); // each offset once
          out.set(k, { value: o.value, headers: o.headers });
        }
      }
    }
  };
  await walk(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  if (dirs.size > 1) return out;
  return new Map([...out].map(([k, v]) => [Number(String(k).slice(String(k).lastIndexOf(':') + 1)), v]));
}

async function dls(station: string) {
  const info = await h.store.getStation(`${station}.dls`);
  const out = [];
  for (const p of info.partitions) out.push(...(await h.store.read(`${station}.dls`, { partition: p.partition, limit: 1000 })));
  return out;
}

describe('transforms in a sink connector', () => {
  it('pipeline: datagen → filter + mask → file sink; the files hold exactly the kept messages, masked', async () => {
    await h.store.createStation('orders', { partitions: 1 });
    const N = 400;
    await h.runtime.create({
      name: 'gen',
      plugin: 'datagen',
      station: 'orders',
      config: { shape: 'order', seed: 7, maxMessages: N, startTime: '2026-01-01T00:00:00Z', batchSize: 50 },
    });
    await waitFor(async () => (await h.store.getStation('orders')).partitions[0]!.messages === N, {
      what: 'datagen done',
      timeoutMs: 60_000,
    });
    const out = join(h.dir, 'files');
    await h.runtime.create({
      name: 'to-files',
      plugin: 'file',
      station: 'orders',
      config: { dir: out, fsync: false },
      batch: { maxLatencyMs: 20, maxMessages: 64 },
      transforms: [
        { type: 'filter', keep: { field: 'country', in: ['US', 'DE'] } },
        { type: 'mask', fields: ['userId', 'city'], method: 'hash' },
        { type: 'mask', fields: ['paymentMethod'] },
      ],
    });
    await waitFor(async () => (await lagOf(h.store, 'orders', 'to-files')) === 0, { what: 'lag 0', timeoutMs: 60_000 });

    // What the chain must give, computed here from the stored messages.
    const stored = await h.store.read('orders', { partition: 0, limit: N });
    expect(stored).toHaveLength(N);
    const expected = new Map<number, string>();
    for (const m of stored) {
      const o = JSON.parse(Buffer.from(m.value).toString('utf8')) as Record<string, unknown>;
      if (o.country !== 'US' && o.country !== 'DE') continue;
      o.userId = createHash('sha256').update(String(o.userId)).digest('hex');
      o.city = createHash('sha256').update(String(o.city)).digest('hex');
      o.paymentMethod = '****';
      expected.set(m.offset, JSON.stringify(o));
    }
    expect(expected.size).toBeGreaterThan(N / 5);
    expect(expected.size).toBeLessThan(N);
    const lines = await fileLines(join(out));
    expect(lines.size).toBe(expected.size);
    for (const [offset, value] of expected) expect(lines.get(offset)?.value).toBe(value);
    const status = await h.runtime.status('to-files');
    expect(status.connector.state).toBe('RUNNING');
  });

  it('messages no step changed reach the sink byte for byte (non-JSON values through header-only steps); a filter keeps the others identical', async () => {
    await h.store.createStation('s', { partitions: 1 });
    const values: Uint8Array[] = [
      enc.encode('{"a":  1, "b" : "x"}'), // JSON with odd spacing: re-stringifying would change it
      new Uint8Array([0xff, 0xfe, 0x00, 0x80]), // not UTF-8
      enc.encode('plain text'),
      enc.encode('{"a":2,"drop":true}'),
      new Uint8Array(0),
    ];
    await h.store.produce(
      's',
      values.map((value, i) => ({ value, headers: { i: String(i), kind: i === 3 ? 'noise' : 'data' } })),
    );
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-values',
      station: 's',
      config: { dir },
      batch: { maxLatencyMs: 10 },
      transforms: [
        { type: 'setHeader', header: 'via', value: 'junction' },
        { type: 'filter', drop: { header: 'kind', eq: 'noise' } },
      ],
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const got = await seen(dir);
    expect(got.map((m) => m.offset)).toEqual([1, 2, 3, 5]);
    for (const m of got) {
      expect(Buffer.compare(m.value, Buffer.from(values[m.offset - 1]!))).toBe(0);
      expect(m.headers).toEqual({ i: String(m.offset - 1), kind: 'data', via: 'junction' });
    }
  });

  it('a failing step with errors.tolerance all: the message is dead-lettered with the step and why; the others are written', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await h.store.produce('s', [
      { value: enc.encode('{"email":"a@b.c"}') },
      { value: enc.encode('not json') },
      { value: enc.encode('{"email":"d@e.f"}') },
    ]);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-values',
      station: 's',
      config: { dir },
      batch: { maxLatencyMs: 10 },
      errors: { tolerance: 'all' },
      transforms: [{ type: 'mask', name: 'hide-email', fields: ['email'] }],
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const got = await seen(dir);
    expect(got.map((m) => [m.offset, m.value.toString()])).toEqual([
      [1, '{"email":"****"}'],
      [3, '{"email":"****"}'],
    ]);
    const dead = await waitFor(
      async () => {
        const d = await dls('s');
        return d.length === 1 ? d : undefined;
      },
      { what: 'one dead letter' },
    );
    const d = dead[0]!;
    expect(Buffer.from(d.value).toString()).toBe('not json');
    expect(d.headers[DLS_HEADERS.code]).toBe('TRANSFORM_FAILED');
    expect(d.headers[CONNECTOR_DLS_HEADERS.errorCode]).toBe('TRANSFORM_FAILED');
    expect(d.headers[CONNECTOR_DLS_HEADERS.errorMessage]).toMatch(/^transforms\[0\] \(hide-email\): the value is not JSON/);
    expect(d.headers[DLS_HEADERS.offset]).toBe('2');
    expect(d.headers[DLS_HEADERS.connector]).toBe('c');
  });

  it('a failing step with errors.tolerance none: the task fails with TRANSFORM_FAILED; nothing of the batch is written or acked', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await h.store.produce('s', [
      { value: enc.encode('{"t":1700000000000}') },
      { value: enc.encode('{"t":"soon"}') },
      { value: enc.encode('{"t":1}') },
    ]);
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-values',
      station: 's',
      config: { dir },
      batch: { maxLatencyMs: 10 },
      transforms: [{ type: 'timestamp', field: 't', to: 'iso' }],
    });
    const failed = await waitFor(
      async () => {
        const s = await h.runtime.status('c');
        return s.tasks[0]!.state === 'FAILED' ? s : undefined;
      },
      { what: 'task FAILED' },
    );
    expect(failed.tasks[0]!.lastError?.code).toBe('TRANSFORM_FAILED');
    expect(failed.tasks[0]!.lastError?.message).toMatch(/^transforms\[0\] \(timestamp\): not a valid time: soon/);
    expect(failed.connector.state).toBe('FAILED');
    expect(await seen(dir)).toEqual([]);
    expect(await lagOf(h.store, 's', 'c')).toBe(3);
    expect(await dls('s')).toEqual([]);
  });

  it('exactly-once file sink: dropped messages advance the committed position; a restart redelivers nothing; a replay from the start adds nothing', async () => {
    await h.store.createStation('s', { partitions: 2 });
    const msgs = Array.from({ length: 200 }, (_, i) => ({
      value: enc.encode(JSON.stringify({ n: i, keep: i % 3 !== 0 })),
      key: `k${i % 7}`,
    }));
    await h.store.produce('s', msgs);
    const out = join(h.dir, 'files');
    const decl = {
      name: 'c',
      plugin: 'file',
      station: 's',
      config: { dir: out, fsync: false },
      batch: { maxLatencyMs: 10, maxMessages: 16 },
      transforms: [{ type: 'filter', keep: { field: 'keep', eq: true } }],
    };
    await h.runtime.create(decl);
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const first = await fileLines(out);
    const kept = msgs
      .filter((_, i) => i % 3 !== 0)
      .map((m) => Buffer.from(m.value).toString())
      .sort();
    expect([...first.values()].map((l) => l.value).sort()).toEqual(kept);
    const group = await h.store.getGroup('s', 'connector.c');
    expect(group.lag).toBe(0);
    // Dropped ones are counted apart from the written ones.
    expect(await h.prom.getSingleMetricAsString('junction_connector_transform_dropped_total')).toMatch(/\{connector="c",task="0"\} 67$/m);
    expect(await h.prom.getSingleMetricAsString('junction_connector_messages_total')).toMatch(/\{connector="c",task="0"\} 133$/m);

    // A restart of the whole runtime (and store): nothing comes back, nothing is written again.
    await h.reopen();
    await waitFor(async () => (await h.runtime.status('c')).tasks[0]?.state === 'RUNNING', { what: 'running again' });
    expect(await lagOf(h.store, 's', 'c')).toBe(0);
    expect((await h.store.getGroup('s', 'connector.c')).pending ?? 0).toBe(0);

    // A replay from the start (offsets reset): the same chain gives the same work; the sink adds nothing.
    await h.runtime.stop('c');
    await h.runtime.resetOffsets('c');
    expect(await lagOf(h.store, 's', 'c')).toBe(200);
    await h.runtime.resume('c');
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0 after the replay', timeoutMs: 30_000 });
    // The kept ones were found present by the sink (answered ok, not written again); the dropped ones dropped again.
    const replayed = await h.prom.getSingleMetricAsString('junction_plugin_file_replayed_messages_total');
    expect(replayed).toMatch(new RegExp(`connector="c"[^}]*\\} ${kept.length}$`, 'm'));
    const again = await fileLines(out);
    expect(again.size).toBe(first.size);
    expect([...again.values()].map((l) => l.value).sort()).toEqual(kept);
  });

  it('refuses route on a sink, a transform plugin as the connector, and a bad step, with coded errors and paths', async () => {
    await h.store.createStation('s', { partitions: 1 });
    const dir = join(h.dir, 'rec');
    await expect(
      h.runtime.create({
        name: 'c',
        plugin: 'test-values',
        station: 's',
        config: { dir },
        transforms: [{ type: 'route', field: 'region' }],
      }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [{ path: 'transforms[0].type', message: expect.stringMatching(/^route is for source connectors/) }],
    });
    await expect(
      h.runtime.create({ name: 'c', plugin: 'test-values', station: 's', config: { dir }, transforms: [{ type: 'mask' }] }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [expect.objectContaining({ path: 'transforms[0].fields' })],
    });
    await expect(
      h.runtime.create({
        name: 'c',
        plugin: 'test-values',
        station: 's',
        config: { dir },
        transforms: [{ type: 'plugin', plugin: 'test-values' }],
      }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [{ path: 'transforms[0].plugin', message: 'plugin "test-values" is a sink, not a transform' }],
    });
    await expect(
      h.runtime.create({
        name: 'c',
        plugin: 'test-values',
        station: 's',
        config: { dir },
        transforms: [{ type: 'plugin', plugin: 'test-upper', config: { only: 5 } }],
      }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [expect.objectContaining({ path: 'transforms[0].config.only' })],
    });
    await expect(h.runtime.create({ name: 'c', plugin: 'test-upper', station: 's' })).rejects.toMatchObject({
      code: 'PLUGIN_KIND_MISMATCH',
      issues: [expect.objectContaining({ path: 'plugin' })],
    });
  });

  it('a community transform plugin runs in the chain; what it fails is dead-lettered with its name', async () => {
    await h.store.createStation('s', { partitions: 1 });
    await h.store.produce(
      's',
      ['hello', '', 'boom', 'hi there', 'x'].map((t) => ({ value: enc.encode(t) })),
    );
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'c',
      plugin: 'test-values',
      station: 's',
      config: { dir },
      batch: { maxLatencyMs: 10 },
      errors: { tolerance: 'all' },
      transforms: [{ type: 'plugin', plugin: 'test-upper', config: { only: 'h' } }],
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'c')) === 0, { what: 'lag 0' });
    const got = await seen(dir);
    expect(got.map((m) => [m.offset, m.value.toString(), m.headers.upper ?? null])).toEqual([
      [1, 'HELLO', 'yes'],
      [4, 'HI THERE', 'yes'],
      [5, 'x', null],
    ]);
    const d = await waitFor(
      async () => {
        const x = await dls('s');
        return x.length === 1 ? x : undefined;
      },
      { what: 'one dead letter' },
    );
    expect(d[0]!.headers[CONNECTOR_DLS_HEADERS.errorMessage]).toBe('transforms[0] (plugin:test-upper): the upper transform refuses "boom"');
  });
});

describe('transforms in a source connector', () => {
  it('route produces to the station a field names; filter drops before the produce', async () => {
    for (const s of ['orders', 'orders-paid', 'orders-placed', 'orders-shipped', 'orders-delivered', 'orders-cancelled'])
      await h.store.createStation(s, { partitions: 1 });
    const N = 120;
    await h.runtime.create({
      name: 'gen',
      plugin: 'datagen',
      station: 'orders',
      config: { shape: 'order', seed: 3, maxMessages: N, startTime: '2026-01-01T00:00:00Z', batchSize: 40 },
      errors: { tolerance: 'all' },
      transforms: [
        { type: 'filter', drop: { field: 'country', eq: 'JP' } },
        { type: 'keep', fields: ['orderId', 'status', 'total'] },
        { type: 'route', field: 'status', station: 'orders-{value}' },
      ],
    });
    await waitFor(async () => (await h.runtime.status('gen')).tasks[0]?.finished === true, { what: 'datagen finished', timeoutMs: 60_000 });
    let routed = 0;
    for (const status of ['paid', 'placed', 'shipped', 'delivered', 'cancelled']) {
      const msgs = await h.store.read(`orders-${status}`, { partition: 0, limit: N });
      for (const m of msgs) {
        const o = JSON.parse(Buffer.from(m.value).toString()) as Record<string, unknown>;
        expect(Object.keys(o).sort()).toEqual(['orderId', 'status', 'total']);
        expect(o.status).toBe(status);
      }
      routed += msgs.length;
    }
    // The same generator without transforms tells how many were from JP.
    await h.store.createStation('plain', { partitions: 1 });
    await h.runtime.create({
      name: 'gen2',
      plugin: 'datagen',
      station: 'plain',
      config: { shape: 'order', seed: 3, maxMessages: N, startTime: '2026-01-01T00:00:00Z', batchSize: 40 },
    });
    await waitFor(async () => (await h.runtime.status('gen2')).tasks[0]?.finished === true, { what: 'gen2 finished', timeoutMs: 60_000 });
    const plain = await h.store.read('plain', { partition: 0, limit: N });
    const jp = plain.filter((m) => (JSON.parse(Buffer.from(m.value).toString()) as { country: string }).country === 'JP').length;
    expect(jp).toBeGreaterThan(0);
    expect(routed).toBe(N - jp);
    expect((await h.store.read('orders', { partition: 0, limit: N })).length).toBe(0);
  });

  it("a failing step: tolerance all puts the message in the station's DLS with the step and why; none fails the task", async () => {
    await h.store.createStation('orders', { partitions: 1 });
    await h.store.createStation('plain', { partitions: 1 });
    const N = 100;
    const config = { shape: 'order', seed: 5, maxMessages: N, startTime: '2026-01-01T00:00:00Z', batchSize: 25 };
    await h.runtime.create({ name: 'plain', plugin: 'datagen', station: 'plain', config });
    const noJp = { type: 'map' as const, name: 'no-jp', expression: 'country = "JP" ? $error("no orders from JP") : $' };
    await h.runtime.create({ name: 'gen', plugin: 'datagen', station: 'orders', config, errors: { tolerance: 'all' }, transforms: [noJp] });
    await waitFor(
      async () =>
        (await h.runtime.status('gen')).tasks[0]?.finished === true && (await h.runtime.status('plain')).tasks[0]?.finished === true,
      { what: 'both finished', timeoutMs: 60_000 },
    );
    const plain = await h.store.read('plain', { partition: 0, limit: N });
    const isJp = (v: Uint8Array): boolean => (JSON.parse(Buffer.from(v).toString()) as { country: string }).country === 'JP';
    const jp = plain.filter((m) => isJp(m.value));
    expect(jp.length).toBeGreaterThan(0);
    const stored = await h.store.read('orders', { partition: 0, limit: N });
    // Not JP: stored byte for byte as generated (the map's result is the same object, encoded again the same way).
    expect(stored.map((m) => Buffer.from(m.value).toString())).toEqual(
      plain.filter((m) => !isJp(m.value)).map((m) => Buffer.from(m.value).toString()),
    );
    const dead = await dls('orders');
    expect(dead.map((m) => Buffer.from(m.value).toString())).toEqual(jp.map((m) => Buffer.from(m.value).toString()));
    for (const d of dead) {
      expect(d.headers[DLS_HEADERS.code]).toBe('TRANSFORM_FAILED');
      expect(d.headers[DLS_HEADERS.reason]).toMatch(/^transforms\[0\] \(no-jp\): the expression failed.*no orders from JP/);
      expect(d.headers[DLS_HEADERS.connector]).toBe('gen');
    }

    await h.store.createStation('strict', { partitions: 1 });
    await h.runtime.create({ name: 'strict', plugin: 'datagen', station: 'strict', config, transforms: [noJp] });
    const failed = await waitFor(
      async () => {
        const s = await h.runtime.status('strict');
        return s.tasks[0]?.state === 'FAILED' ? s : undefined;
      },
      { what: 'source task FAILED' },
    );
    expect(failed.tasks[0]!.lastError?.code).toBe('TRANSFORM_FAILED');
    // Nothing of the failing batch was produced: at most the batches before it.
    const strict = await h.store.read('strict', { partition: 0, limit: N });
    const firstJp = plain.findIndex((m) => isJp(m.value));
    expect(strict.length).toBeLessThanOrEqual(firstJp);
    expect(strict.length % 25 === 0 || strict.length === firstJp - (firstJp % 25)).toBe(true);
  });
});
