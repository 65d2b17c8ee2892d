import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSink } from '@junction/connector-file/read';
import { harness, lagOf, waitFor } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await harness();
});
afterEach(async () => {
  await h.cleanup();
});

async function values(station: string): Promise<string[]> {
  const info = await h.store.getStation(station);
  const out: string[] = [];
  for (const p of info.partitions) {
    for (let from = 1; ;) {
      const msgs = await h.store.read(station, { partition: p.partition, fromOffset: from, limit: 1000 });
      if (msgs.length === 0) break;
      out.push(...msgs.map((m) => Buffer.from(m.value).toString()));
      from = msgs[msgs.length - 1]!.offset + 1;
    }
  }
  return out;
}

const lines = async (path: string): Promise<string[]> => (await readFile(path, 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('source connectors', () => {
  it('produces every batch, stores the position durably, then commits; a restart resumes without duplicates', async () => {
    await h.store.createStation('nums', { partitions: 2 });
    const dir = join(h.dir, 'src');
    await h.runtime.create({ name: 'count', plugin: 'test-counter', station: 'nums', config: { dir, max: 500, batchSize: 50 } });
    await waitFor(async () => (await h.store.getStation('nums')).messages === 500, { what: '500 messages' });
    await waitFor(async () => (await lines(join(dir, 'commits.log'))).at(-1) === '500', { what: 'the last commit' });
    const commits = (await lines(join(dir, 'commits.log'))).map(Number);
    expect(commits).toEqual([...commits].sort((a, b) => a - b)); // in read order
    const stored = JSON.parse(await readFile(h.runtime.offsetsPath('count'), 'utf8')) as { positions: Record<string, { n: number }> };
    expect(stored.positions['0']).toEqual({ n: 500 });
    const status = await h.runtime.status('count');
    expect(status.type).toBe('source');
    expect(status.tasks[0]!.finished).toBe(true);
    expect((await h.runtime.offsets('count')).offsets).toEqual([{ partition: { task: 0 }, offset: { n: 500 } }]);

    await h.reopen();
    await waitFor(async () => (await lines(join(dir, 'opens.log'))).length === 2, { what: 'the second open' });
    expect(await lines(join(dir, 'opens.log'))).toEqual(['0', '500']);
    await new Promise((r) => setTimeout(r, 200));
    const v = await values('nums');
    expect(v.length).toBe(500);
    expect(new Set(v).size).toBe(500);
  });

  it('a source worker that dies mid-stream restarts at the stored position; the station holds each message once', async () => {
    await h.store.createStation('nums');
    const dir = join(h.dir, 'src');
    await h.runtime.create({
      name: 'count',
      plugin: 'test-counter',
      station: 'nums',
      config: { dir, max: 600, batchSize: 20, exitAt: 333 },
    });
    const failed = await waitFor(
      async () => {
        const s = await h.runtime.status('count');
        return s.tasks[0]!.state === 'FAILED' ? s : undefined;
      },
      { what: 'the crash', intervalMs: 10 },
    );
    expect(failed.tasks[0]!.trace).toContain('WORKER_CRASHED');
    await waitFor(async () => (await h.store.getStation('nums')).messages === 600, { what: '600 messages', timeoutMs: 20_000 });
    const v = await values('nums');
    expect(v).toEqual(Array.from({ length: 600 }, (_, i) => String(i + 1)));
    const opens = (await lines(join(dir, 'opens.log'))).map(Number);
    expect(opens[0]).toBe(0);
    expect(opens[1]).toBeGreaterThan(0);
    expect(opens[1]).toBeLessThan(333);
  });

  it('pause stops reading; offsets reset (only when stopped) starts over; dedup keeps the station exact', async () => {
    await h.store.createStation('nums');
    const dir = join(h.dir, 'src');
    await h.runtime.create({
      name: 'count',
      plugin: 'test-counter',
      station: 'nums',
      config: { dir, max: 100_000, batchSize: 10, delayMs: 20 },
    });
    await waitFor(async () => (await h.store.getStation('nums')).messages >= 50);
    await h.runtime.pause('count');
    const n = (await h.store.getStation('nums')).messages;
    await new Promise((r) => setTimeout(r, 200));
    expect((await h.store.getStation('nums')).messages).toBe(n);
    await expect(h.runtime.resetOffsets('count')).rejects.toMatchObject({ code: 'CONNECTOR_NOT_STOPPED' });
    await h.runtime.stop('count');
    await h.runtime.resetOffsets('count');
    expect((await h.runtime.offsets('count')).offsets).toEqual([]);
    await h.runtime.resume('count');
    await waitFor(async () => (await h.store.getStation('nums')).messages >= n + 20);
    await h.runtime.stop('count');
    const v = await values('nums');
    expect(new Set(v).size).toBe(v.length);
    // Opened at the start and again after the reset (pause and stop open nothing).
    expect(await lines(join(dir, 'opens.log'))).toEqual(['0', '0']);
  });

  it('datagen → station → file sink: every generated event lands, exactly once', async () => {
    await h.store.createStation('events', { partitions: 3 });
    const out = join(h.dir, 'out');
    await h.runtime.applyDesired([
      {
        name: 'gen',
        plugin: 'datagen',
        station: 'events',
        config: { shape: 'order', seed: 7, maxMessages: 2000, batchSize: 200, keyField: 'userId' },
      },
      { name: 'files', plugin: 'file', station: 'events', config: { dir: out, fsync: false }, batch: { maxLatencyMs: 50 } },
    ]);
    await waitFor(async () => (await h.store.getStation('events')).messages === 2000, { what: '2000 events' });
    await waitFor(async () => (await lagOf(h.store, 'events', 'files')) === 0, { what: 'the sink to catch up' });
    const records = await readFileSink(out);
    expect(records.length).toBe(2000);
    const orders = records.map((r) => JSON.parse(Buffer.from(r.value).toString()) as { type: string; orderId: string });
    expect(new Set(orders.map((o) => o.orderId)).size).toBe(2000);
    expect(orders.every((o) => o.type === 'order')).toBe(true);
  });
});
