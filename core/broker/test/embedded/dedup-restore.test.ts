/**
 * The embedded store's dedup index across restarts: restored from its snapshot without reading the log,
 * the log after the snapshot replayed (a crash image), a damaged or missing snapshot falling back to
 * reading the log, ids of messages the log lost never answered as duplicates, and the per-station bound.
 */
import { cp, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readDedupSnapshot } from '../../src/embedded/dedup-snapshot.js';
import { EmbeddedStore, type MessageInput, type ProduceResult, type StoreEvent } from '../../src/index.js';

const dirs: string[] = [];
const open: EmbeddedStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'junction-dedup-'));
  dirs.push(d);
  return d;
}

async function openStore(dataDir: string): Promise<{ store: EmbeddedStore; events: StoreEvent[] }> {
  const events: StoreEvent[] = [];
  const store = new EmbeddedStore({ dataDir });
  store.onEvent((e) => events.push(e));
  await store.open();
  open.push(store);
  return { store, events };
}

async function closeStore(store: EmbeddedStore): Promise<void> {
  await store.close();
  open.splice(open.indexOf(store), 1);
}

/** Produces `n` messages with ids `${prefix}${i}` (every third keyed, so both partitions fill) in batches; returns id → result. */
async function produceIds(store: EmbeddedStore, station: string, prefix: string, n: number, from = 0): Promise<Map<string, ProduceResult>> {
  const out = new Map<string, ProduceResult>();
  for (let i = from; i < from + n; i += 1000) {
    const batch: MessageInput[] = [];
    for (let j = i; j < Math.min(from + n, i + 1000); j++)
      batch.push({ msgId: `${prefix}${j}`, value: Buffer.from(`v${j}`), ...(j % 3 === 0 && { key: `k${j % 17}` }) });
    const results = await store.produce(station, batch);
    results.forEach((r, k) => {
      expect(r.status).toBe('stored');
      out.set(batch[k]!.msgId!, r);
    });
  }
  return out;
}

/** Produces every id again: each must be answered as a duplicate naming its first offset. */
async function expectAllDuplicates(store: EmbeddedStore, station: string, ids: Map<string, ProduceResult>): Promise<void> {
  const all = [...ids];
  for (let i = 0; i < all.length; i += 1000) {
    const slice = all.slice(i, i + 1000);
    const results = await store.produce(
      station,
      slice.map(([msgId]) => ({ msgId, value: Buffer.from('again') })),
    );
    results.forEach((r, k) => {
      const first = slice[k]![1] as { partition: number; offset: number };
      expect(r, slice[k]![0]).toEqual({ status: 'duplicate', partition: first.partition, offset: first.offset });
    });
  }
}

const snapshotFile = (dataDir: string, station: string) => join(dataDir, 'stations', station, 'dedup.snapshot');

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('dedup index across restarts (embedded)', () => {
  it('restores from the snapshot written at close without reading a record of the log', async () => {
    const dataDir = await tempDir();
    const { store } = await openStore(dataDir);
    await store.createStation('s', { partitions: 2 });
    const ids = await produceIds(store, 's', 'a-', 3_000);
    await store.produce('s', [{ value: Buffer.from('no id') }]);
    await closeStore(store);
    expect((await stat(snapshotFile(dataDir, 's'))).size).toBeGreaterThan(3_000 * 34);

    const { store: again } = await openStore(dataDir);
    const info = await again.getStation('s');
    // Produces wait for the restore; getStation does not: the produce below is what waits.
    await expectAllDuplicates(again, 's', ids);
    const after = (await again.getStation('s')).dedup!;
    expect(after.restored).toMatchObject({ from: 'snapshot', recordsRead: 0 });
    expect(after.ids).toBe(3_000);
    expect(after.maxIds).toBe(4_000_000);
    expect(after.evicted).toBe(0);
    expect(after.bytes / after.ids).toBeLessThanOrEqual(48);
    expect(info.config).not.toHaveProperty('dedupMaxIds');
    // A new id is stored, at the next offset.
    const [r] = await again.produce('s', [{ msgId: 'new', value: Buffer.from('n') }]);
    expect(r?.status).toBe('stored');
  });

  it('a crash image: a snapshot and a delta written while producing, then only the log after them is read', async () => {
    const dataDir = await tempDir();
    const { store } = await openStore(dataDir);
    await store.createStation('s', { partitions: 2 });
    // 22,000 ids: the 10th batch reaches the snapshot threshold (10,000 ids added), so a full snapshot of
    // the first 10,000 is written in the background; the 20th, a delta of the next 10,000 appended to it.
    const ids = await produceIds(store, 's', 'b-', 22_000);
    // 700 more (below the next threshold), and both segments whole on disk.
    const tail = await produceIds(store, 's', 'b-', 700, 22_000);
    const segments = async (dir: string) => {
      const r = await readDedupSnapshot(snapshotFile(dir, 's'), 2, 1e8, () => true);
      return 'index' in r && !r.ignoredTail ? r : undefined;
    };
    await waitFor('the snapshot and its delta', async () => ((await segments(dataDir))?.segments ?? 0) >= 2);
    // What a kill -9 leaves now (every produce above was answered, so it is in the files).
    const image = await tempDir();
    await cp(dataDir, image, { recursive: true });
    await closeStore(store);

    // The log after what the segments cover is all a restart reads: at least the 700, at most 2,700 + a batch.
    const snap = (await segments(image))!;
    const { store: again } = await openStore(image);
    const ends = (await again.getStation('s')).partitions.map((p) => p.nextOffset);
    const after = ends.reduce((n, end, p) => n + (end - snap.covered[p]!), 0);
    expect(after).toBeGreaterThanOrEqual(700);
    expect(after).toBeLessThanOrEqual(3_700);
    expect(snap.entries).toBe(22_700 - after);
    await expectAllDuplicates(again, 's', new Map([...ids, ...tail]));
    const d = (await again.getStation('s')).dedup!;
    expect(d.restored).toMatchObject({ from: 'snapshot', recordsRead: after });
    expect(d.ids).toBe(22_700);
  });

  it('falls back to reading the log when the snapshot is damaged or missing, and writes a good one again', async () => {
    const dataDir = await tempDir();
    const { store } = await openStore(dataDir);
    await store.createStation('s', { partitions: 2 });
    const ids = await produceIds(store, 's', 'c-', 2_000);
    await closeStore(store);
    const file = snapshotFile(dataDir, 's');
    const bytes = await readFile(file);
    bytes[bytes.length >> 1] ^= 0x40;
    await writeFile(file, bytes);

    const { store: s2 } = await openStore(dataDir);
    await expectAllDuplicates(s2, 's', ids);
    const d2 = (await s2.getStation('s')).dedup!;
    expect(d2.restored?.from).toBe('scan');
    expect(d2.restored?.detail).toContain('checksum');
    expect(d2.restored?.recordsRead).toBe(2_000);
    await closeStore(s2);

    await rm(file);
    const { store: s3 } = await openStore(dataDir);
    await expectAllDuplicates(s3, 's', ids);
    expect((await s3.getStation('s')).dedup!.restored).toMatchObject({
      from: 'scan',
      recordsRead: 2_000,
      detail: expect.stringContaining('missing'),
    });
    await closeStore(s3);

    const { store: s4 } = await openStore(dataDir);
    await expectAllDuplicates(s4, 's', ids);
    expect((await s4.getStation('s')).dedup!.restored).toMatchObject({ from: 'snapshot', recordsRead: 0 });
  });

  it('never answers duplicate for an id whose message the log lost after the snapshot was written', async () => {
    const dataDir = await tempDir();
    const { store } = await openStore(dataDir);
    await store.createStation('s', { partitions: 1 });
    const ids = await produceIds(store, 's', 'd-', 20);
    await closeStore(store);
    // Cut the last record (written, snapshotted, then damaged on disk).
    const segDir = join(dataDir, 'stations', 's', 'partitions', '0');
    const seg = join(segDir, (await readdir(segDir)).filter((f) => f.endsWith('.log')).sort()[0]!);
    await truncate(seg, (await stat(seg)).size - 3);

    const { store: again, events } = await openStore(dataDir);
    expect(events.filter((e) => e.type === 'corruption')).toMatchObject([{ fromOffset: 20, toOffset: 20, messages: 1 }]);
    ids.delete('d-19');
    await expectAllDuplicates(again, 's', ids);
    // The lost message's id is stored again (a producer retrying it gets it stored), at a new offset.
    expect(await again.produce('s', [{ msgId: 'd-19', value: Buffer.from('retry') }])).toEqual([
      { status: 'stored', partition: 0, offset: 21 },
    ]);
    expect((await again.getStation('s')).dedup!.restored?.from).toBe('snapshot');
  });

  it('restores many stations at once, each from its own snapshot', async () => {
    const dataDir = await tempDir();
    const { store } = await openStore(dataDir);
    const names = Array.from({ length: 40 }, (_, i) => `m${i}`);
    const ids = new Map<string, Map<string, ProduceResult>>();
    for (const n of names) {
      await store.createStation(n, { partitions: 2 });
      ids.set(n, await produceIds(store, n, `${n}-`, 300));
    }
    await closeStore(store);
    const { store: again } = await openStore(dataDir);
    for (const n of names) await expectAllDuplicates(again, n, ids.get(n)!);
    for (const n of names)
      expect((await again.getStation(n)).dedup).toMatchObject({ ids: 300, restored: { from: 'snapshot', recordsRead: 0 } });
  });

  it('bounds the index per station (dedupMaxIds): the oldest ids leave early, counted in events and in the station info', async () => {
    const dataDir = await tempDir();
    const { store, events } = await openStore(dataDir);
    await expect(store.createStation('bad', { dedupMaxIds: 10 })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [{ path: 'dedupMaxIds' }],
    });
    const info = await store.createStation('s', { partitions: 1, dedupMaxIds: 1_000 });
    expect(info.config.dedupMaxIds).toBe(1_000);
    const ids = await produceIds(store, 's', 'e-', 1_500);
    const d = (await store.getStation('s')).dedup!;
    expect(d).toMatchObject({ ids: 1_000, maxIds: 1_000, evicted: 500 });
    expect(events.filter((e) => e.type === 'dedup-evicted').reduce((n, e) => n + (e.type === 'dedup-evicted' ? e.ids : 0), 0)).toBe(500);
    // The newest 1,000 are still duplicates; the oldest left the window early: a copy is stored again.
    await expectAllDuplicates(store, 's', new Map([...ids].slice(500)));
    const [old] = await store.produce('s', [{ msgId: 'e-0', value: Buffer.from('again') }]);
    expect(old).toEqual({ status: 'stored', partition: 0, offset: 1_501 });

    // The bound changes on a live station and survives a restart, as does what the index held.
    await store.updateStation('s', { dedupMaxIds: 2_000 });
    await closeStore(store);
    const { store: again } = await openStore(dataDir);
    await expectAllDuplicates(again, 's', new Map([...ids].slice(501)));
    expect((await again.getStation('s')).dedup).toMatchObject({ maxIds: 2_000, ids: 1_000, evicted: 0, restored: { from: 'snapshot' } });
    await expect(again.updateStation('s', { dedupMaxIds: 1e9 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
