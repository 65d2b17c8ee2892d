/**
 * The embedded engine against the StationStore conformance suite with the smallest budgets: one open
 * partition log (every other one is closed — cleanly — and reopened on its next use) and 16 open files.
 * Every answer must be the same as with everything open.
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
  // manifestMinStations 0: every reopen starts from the manifest (logs open on first use).
  const store = new EmbeddedStore({ dataDir, maxOpenPartitions: 1, maxOpenFiles: 16, manifestMinStations: 0 });
  await store.open();
  dataDirOf.set(store, dataDir);
  return store;
}

runStationStoreConformance({
  name: 'embedded (1 open partition log, 16 open files)',
  async create() {
    const dir = await mkdtemp(join(tmpdir(), 'junction-conformance-lru-'));
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
