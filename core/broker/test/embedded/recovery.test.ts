/**
 * Store-level recovery: damaged bytes on disk are reported with station, partition and offset range,
 * never stop the store from opening, and lose nothing else.
 */
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedStore, type StoreEvent } from '../../src/index.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function setup(n: number) {
  const dataDir = await mkdtemp(join(tmpdir(), 'junction-recovery-'));
  dirs.push(dataDir);
  const store = new EmbeddedStore({ dataDir });
  await store.open();
  await store.createStation('s', { partitions: 1 });
  const values = Array.from({ length: n }, (_, i) => Buffer.from(`message-${i}-`.padEnd(100 + (i % 7), 'x')));
  await store.produce(
    's',
    values.map((value) => ({ value })),
  );
  await store.close();
  const segDir = join(dataDir, 'stations', 's', 'partitions', '0');
  const seg = (await readdir(segDir)).filter((f) => f.endsWith('.log')).sort()[0]!;
  return { dataDir, values, segment: join(segDir, seg) };
}

async function reopen(dataDir: string) {
  const events: StoreEvent[] = [];
  const store = new EmbeddedStore({ dataDir });
  store.onEvent((e) => events.push(e));
  await store.open();
  return { store, events };
}

describe('embedded store recovery', () => {
  it('reports a corrupted record in the middle and serves every other message', async () => {
    const { dataDir, values, segment } = await setup(100);
    const bytes = await readFile(segment);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(segment, bytes);

    const { store, events } = await reopen(dataDir);
    // The checkpoint vouches for the segment and no dedup rebuild needs it (no msgIds), so start-up
    // does not read it: the crc check on read finds the damage.
    expect(events.filter((e) => e.type === 'corruption')).toHaveLength(0);
    const read = await store.read('s', { partition: 0, limit: 1000 });
    const corrupt = events.filter((e): e is Extract<StoreEvent, { type: 'corruption' }> => e.type === 'corruption');
    expect(corrupt).toHaveLength(1);
    expect(corrupt[0]!.station).toBe('s');
    expect(corrupt[0]!.partition).toBe(0);
    expect(corrupt[0]!.fromOffset).toBeGreaterThan(1);
    expect(corrupt[0]!.toOffset).toBeLessThan(100);

    const lost = new Set<number>();
    for (let o = corrupt[0]!.fromOffset; o <= corrupt[0]!.toOffset; o++) lost.add(o);
    expect(corrupt[0]!.messages).toBe(lost.size);
    expect(read.length).toBe(100 - lost.size);
    for (const m of read) expect(Buffer.from(m.value).equals(values[m.offset - 1]!)).toBe(true);

    // The station keeps working: new messages get new offsets and a group skips the damaged range.
    const [r] = await store.produce('s', [{ value: Buffer.from('after') }]);
    expect(r).toEqual({ status: 'stored', partition: 0, offset: 101 });
    const seen: number[] = [];
    for (;;) {
      const batch = await store.fetch('s', 'g', { maxMessages: 30, maxBytes: 1 << 20, waitMs: 0 });
      if (batch.length === 0) break;
      seen.push(...batch.map((d) => d.offset));
      await store.ack(
        's',
        'g',
        batch.map((d) => d.deliveryId),
      );
    }
    expect(seen.length).toBe(101 - lost.size);
    expect((await store.getGroup('s', 'g')).lag).toBe(0);
    await store.close();
  });

  it('reports an acknowledged last record cut off after a clean stop, and never reuses its offset', async () => {
    const { dataDir, values, segment } = await setup(20);
    const bytes = await readFile(segment);
    await truncate(segment, bytes.length - 5);
    const { store, events } = await reopen(dataDir);
    expect(events.filter((e) => e.type === 'corruption')).toEqual([
      { type: 'corruption', station: 's', partition: 0, fromOffset: 20, toOffset: 20, messages: 1, detail: expect.any(String) },
    ]);
    const read = await store.read('s', { partition: 0, limit: 100 });
    expect(read.map((m) => m.offset)).toEqual(Array.from({ length: 19 }, (_, i) => i + 1));
    for (const m of read) expect(Buffer.from(m.value).equals(values[m.offset - 1]!)).toBe(true);
    const [r] = await store.produce('s', [{ value: Buffer.from('next') }]);
    expect(r).toEqual({ status: 'stored', partition: 0, offset: 21 });
    await store.close();
  });

  it('never drops a station whose metadata is garbage: it is recovered, and the others open as usual', async () => {
    const { dataDir, values } = await setup(3);
    const store0 = new EmbeddedStore({ dataDir });
    await store0.open();
    await store0.createStation('other');
    await store0.close();
    await writeFile(join(dataDir, 'stations', 's', 'station.json'), '{"name": 12');
    const { store } = await reopen(dataDir);
    const list = await store.listStations();
    expect(list.map((s) => [s.name, s.health?.status])).toEqual([
      ['other', 'ok'],
      ['other.dls', 'ok'],
      ['s', 'degraded'],
      ['s.dls', 'ok'],
    ]);
    const read = await store.read('s', { partition: 0, limit: 10 });
    expect(read.map((m) => Buffer.from(m.value))).toEqual(values);
    await store.close();
  });
});
