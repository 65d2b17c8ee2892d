/**
 * A sink stopped while its fetch is in flight: what that fetch still returns (an engine may answer a fetch
 * after its signal aborted: the JetStream store hands out what its pulls received) is handed back to the
 * group at once, not left out until the group's ack deadline (minutes for a connector group).
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry as PromRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeliveryChunk, FetchOptions, StationStore } from '@junction/broker';
import { ConnectRuntime } from '../src/index.js';
import { harness, produceN, sharedCatalog, waitFor, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
});

describe('stopping a sink with a fetch in flight', () => {
  it('hands back what the fetch returns after the stop began', async () => {
    h = await harness();
    const store = h.store;
    await h.runtime.close();
    await store.createStation('s', { partitions: 1 });
    await produceN(store, 's', 10);
    let parked = 0;
    // The store's fetch answers only once the runner aborted it, and then with the messages.
    const late: StationStore = Object.create(store) as StationStore;
    late.fetchChunks = async (station: string, group: string, o: FetchOptions): Promise<DeliveryChunk[]> => {
      parked++;
      await new Promise<void>((resolve) =>
        o.signal?.aborted ? resolve() : o.signal?.addEventListener('abort', () => resolve(), { once: true }),
      );
      return store.fetchChunks!(station, group, { ...o, signal: undefined, waitMs: 0 });
    };
    const runtime = new ConnectRuntime({
      store: late,
      catalog: await sharedCatalog(),
      dataDir: join(h.dir, 'rt'),
      logger: pino({ level: 'silent' }),
      registry: new PromRegistry(),
      env: {},
    });
    await runtime.start();
    try {
      await runtime.create({ name: 'c', plugin: 'test-ok', station: 's', config: { dir: join(h.dir, 'rec') } });
      await waitFor(() => parked > 0, { what: 'the fetch in flight' });
      await runtime.pause('c');
      const g = await store.getGroup('s', 'connector.c');
      expect(g).toMatchObject({ lag: 10, pending: 0 });
    } finally {
      await runtime.close();
    }
  });
});
