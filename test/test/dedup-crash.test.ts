/**
 * SIGKILL of the broker between a dedup snapshot and the log written after it: after the restart, the
 * index is the snapshot plus the log after it, and every msgId whose produce was acknowledged before
 * the kill is answered as a duplicate naming the offset it was stored at — that message byte for byte.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StationInfo } from '@junction/protocol';
import { api, eventually, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'dedup-crashy';

type Outcome = { partition: number; offset: number; duplicate?: true } | { error: { code: string } };

describe('SIGKILL between a dedup snapshot and the log after it', () => {
  const dirs: string[] = [];
  // Whatever fails, no broker outlives the test.
  const brokers: BrokerProcess[] = [];
  afterAll(async () => {
    for (const b of brokers) await b.kill();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('dedups every msgId acknowledged before the kill, naming its stored message', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-dedup-crash-'));
    dirs.push(dataDir);
    let broker = await startBroker({ dataDir });
    brokers.push(broker);
    await api(broker.url, 'POST', '/v1/stations', { name: STATION, partitions: 3 });
    const acked = new Map<string, { partition: number; offset: number }>();
    let next = 0;
    const produce = async (url: string, n: number): Promise<void> => {
      const ids = Array.from({ length: n }, () => `order-${next++}`);
      const res = await api<{ results: Outcome[] }>(url, 'POST', `/v1/stations/${STATION}/messages`, {
        messages: ids.map((id, i) => ({ msgId: id, value: `value of ${id}`, ...(i % 4 === 0 && { key: id }) })),
      });
      res.results.forEach((r, i) => {
        if (!('partition' in r) || r.duplicate) throw new Error(`${ids[i]} was not stored: ${JSON.stringify(r)}`);
        acked.set(ids[i]!, { partition: r.partition, offset: r.offset });
      });
    };

    // 12,000 ids: a snapshot is written in the background after the 10,000th.
    for (let i = 0; i < 24; i++) await produce(broker.url, 500);
    const stationDir = join(dataDir, 'stations', STATION);
    await eventually('the dedup snapshot', 60_000, async () =>
      existsSync(join(stationDir, 'dedup.snapshot')) && (await readdir(stationDir)).every((f) => !f.endsWith('.tmp')) ? true : undefined,
    );
    // The log after the snapshot: acknowledged produces, then produces in flight when the broker dies.
    for (let i = 0; i < 6; i++) await produce(broker.url, 500);
    const url = broker.url;
    const inFlight = Array.from({ length: 3 }, () => produce(url, 500).catch(() => {}));
    await broker.kill();
    await Promise.all(inFlight);
    expect(acked.size).toBeGreaterThanOrEqual(15_000);

    broker = await startBroker({ dataDir });
    brokers.push(broker);
    const all = [...acked];
    for (let i = 0; i < all.length; i += 1000) {
      const slice = all.slice(i, i + 1000);
      const res = await api<{ results: Outcome[] }>(broker.url, 'POST', `/v1/stations/${STATION}/messages`, {
        messages: slice.map(([id]) => ({ msgId: id, value: 'a retry' })),
      });
      res.results.forEach((r, k) => expect(r, slice[k]![0]).toEqual({ duplicate: true, ...slice[k]![1] }));
    }
    const info = await api<StationInfo>(broker.url, 'GET', `/v1/stations/${STATION}`);
    expect(info.dedup?.restored?.from).toBe('snapshot');
    // Only the log after the snapshot was read: at least the 3,000 acknowledged after it, not all 15,000.
    expect(info.dedup!.restored!.recordsRead).toBeGreaterThanOrEqual(3_000);
    expect(info.dedup!.restored!.recordsRead).toBeLessThan(acked.size - 5_000);
    // The offsets named are the messages of those ids, byte for byte.
    const byOffset = new Map<string, string>();
    for (let p = 0; p < 3; p++) {
      for (let from = 1; ;) {
        const page = await api<{ messages: { offset: number; value: string }[] }>(
          broker.url,
          'GET',
          `/v1/stations/${STATION}/messages?partition=${p}&fromOffset=${from}&limit=10000`,
        );
        if (page.messages.length === 0) break;
        for (const m of page.messages) byOffset.set(`${p}:${m.offset}`, m.value);
        from = page.messages[page.messages.length - 1]!.offset + 1;
      }
    }
    for (const [id, at] of acked) expect(byOffset.get(`${at.partition}:${at.offset}`), id).toBe(`value of ${id}`);
    await broker.stop();
  });
});
