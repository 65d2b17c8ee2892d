/**
 * The embedded engine against the StationStore conformance suite: a fresh data dir per store; reopen
 * closes the store and opens a new EmbeddedStore on the same data dir.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { StationStore } from '../src/contract.js';
import { EmbeddedStore } from '../src/embedded/store.js';
import { runStationStoreConformance } from '../src/testing/conformance.js';

const dirs: string[] = [];
const dataDirOf = new WeakMap<StationStore, string>();

async function openAt(dataDir: string): Promise<StationStore> {
  const store = new EmbeddedStore({ dataDir });
  await store.open();
  dataDirOf.set(store, dataDir);
  return store;
}

runStationStoreConformance({
  name: 'embedded',
  async create() {
    const dir = await mkdtemp(join(tmpdir(), 'junction-conformance-'));
    dirs.push(dir);
    return openAt(dir);
  },
  async reopen(store) {
    const dir = dataDirOf.get(store);
    if (dir === undefined) throw new Error('reopen: store was not created by this target');
    await store.close();
    return openAt(dir);
  },
});

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
