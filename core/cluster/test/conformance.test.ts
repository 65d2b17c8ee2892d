/**
 * The StationStore conformance suite against JetStreamStore on a real 3-node nats-server cluster
 * (loopback ports, own store dirs), every station with 3 replicas. Each store gets its own prefix, so
 * stores see only their own stations; reopen closes the store and opens a new one on the same prefix.
 * After each test the test's streams and metadata bucket are deleted, so the cluster stays small.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { runStationStoreConformance } from '@junction/broker/conformance';
import type { StationStore } from '@junction/broker';
import { startNatsCluster, type NatsCluster } from '@junction/e2e';
import { JetStreamStore } from '../src/index.js';
import { dropPrefix } from './helpers.js';

let cluster: NatsCluster | undefined;
const prefixOf = new WeakMap<StationStore, string>();
const used: string[] = [];
const runId = Math.random().toString(36).slice(2, 7);
let n = 0;

beforeAll(async () => {
  cluster = await startNatsCluster({ nodes: 3 });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

async function openStore(prefix: string): Promise<StationStore> {
  const store = new JetStreamStore({ servers: cluster!.servers, replicas: 3, prefix });
  await store.open();
  prefixOf.set(store, prefix);
  return store;
}

afterEach(async () => {
  const doomed = used.splice(0);
  await Promise.all(doomed.map((p) => dropPrefix(cluster!.servers, p)));
});

runStationStoreConformance({
  name: 'jetstream (3 nodes, R3)',
  async create() {
    const prefix = `c${runId}_${++n}`;
    used.push(prefix);
    return openStore(prefix);
  },
  async reopen(store) {
    const prefix = prefixOf.get(store);
    if (prefix === undefined) throw new Error('reopen: store was not created by this target');
    await store.close();
    return openStore(prefix);
  },
  deadlineSlackMs: 1_500,
});
