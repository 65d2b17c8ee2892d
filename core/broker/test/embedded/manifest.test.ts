/**
 * Start-up from the stations manifest: after a clean close the store opens without opening any
 * partition file; every station, count and message is as before; offsets go on where they stopped; a
 * partition damaged while the store was stopped is reported when it is first used (never silently
 * served, its offsets never reused); and after a start the manifest is gone, so a crash falls back to
 * reading every station directory.
 */
import { promises as fsp } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedStore } from '../../src/embedded/store.js';
import { MANIFEST_FILE } from '../../src/embedded/manifest.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function fdsUnder(dir: string): Promise<number> {
  let n = 0;
  for (const fd of await fsp.readdir('/proc/self/fd')) {
    const target = await fsp.readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) n++;
  }
  return n;
}

const open = async (dataDir: string): Promise<EmbeddedStore> => {
  const s = new EmbeddedStore({ dataDir, manifestMinStations: 0 });
  await s.open();
  return s;
};

describe('stations manifest', () => {
  it('opens every station from it without opening a partition file; messages and offsets carry on', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-manifest-'));
    dirs.push(dataDir);
    let store = await open(dataDir);
    for (let i = 0; i < 20; i++) {
      await store.createStation(`m${i}`, { partitions: 1 + (i % 3) });
      await store.produce(
        `m${i}`,
        Array.from({ length: 5 }, (_, k) => ({ value: Buffer.from(`m${i}-${k}`), key: `k${k}` })),
      );
    }
    const before = await store.listStations();
    await store.close();
    await stat(join(dataDir, MANIFEST_FILE));

    store = await open(dataDir);
    // Taken at open: a crash from now on starts from the station directories.
    await expect(stat(join(dataDir, MANIFEST_FILE))).rejects.toThrow();
    expect(await fdsUnder(join(dataDir, 'stations'))).toBe(0);
    expect(await store.listStations()).toEqual(before);
    for (let i = 0; i < 20; i++) {
      const info = before.find((s) => s.name === `m${i}`)!;
      const got: string[] = [];
      for (const p of info.partitions) {
        const msgs = await store.read(`m${i}`, { partition: p.partition, fromOffset: 1, limit: 100 });
        got.push(...msgs.map((m) => Buffer.from(m.value).toString()));
        // The next produce to the partition continues after the last offset.
        expect(msgs.length === 0 || msgs[msgs.length - 1]!.offset === p.nextOffset - 1).toBe(true);
      }
      expect(got.sort()).toEqual(Array.from({ length: 5 }, (_, k) => `m${i}-${k}`).sort());
      const [r] = await store.produce(`m${i}`, [{ value: Buffer.from('after'), key: 'k0' }]);
      expect(r!.status).toBe('stored');
      const p0 = info.partitions.find((p) => p.partition === (r as { partition: number }).partition)!;
      expect((r as { offset: number }).offset).toBe(p0.nextOffset);
    }
    expect((await store.healthSummary(10)).degraded).toBe(0);
    await store.close();
  });

  it('a partition damaged while stopped is reported on first use; its offsets are never reused', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-manifest-'));
    dirs.push(dataDir);
    let store = await open(dataDir);
    await store.createStation('cut', { partitions: 1 });
    await store.produce(
      'cut',
      Array.from({ length: 10 }, (_, k) => ({ value: Buffer.alloc(200, k) })),
    );
    await store.close();
    const pdir = join(dataDir, 'stations', 'cut', 'partitions', '0');
    const seg = (await fsp.readdir(pdir)).find((n) => n.endsWith('.log'))!;
    const size = (await stat(join(pdir, seg))).size;
    await fsp.truncate(join(pdir, seg), Math.floor(size / 2));

    store = await open(dataDir);
    // The first use opens the partition: what is missing is found, reported and skipped.
    const msgs = await store.read('cut', { partition: 0, fromOffset: 1, limit: 100 });
    expect(msgs.length).toBeLessThan(10);
    for (const m of msgs) expect(Buffer.from(m.value)).toEqual(Buffer.alloc(200, m.offset - 1));
    const h = await store.healthSummary(10);
    expect(h.degraded).toBe(1);
    expect(h.reasons.join('\n')).toContain('station cut');
    const [r] = await store.produce('cut', [{ value: Buffer.from('x') }]);
    expect((r as { offset: number }).offset).toBe(11);
    await store.close();
  });
});
