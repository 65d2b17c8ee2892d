/**
 * Junction nodes started together with the NATS servers (issue 14 item 7): the stores open while NATS does
 * not listen yet, then listens without JetStream, then runs with two of its three servers (a fresh cluster
 * cannot place three replicas until the third joins). Each open waits with backoff and says what it waits
 * for; both become usable soon after the third server starts, and stations get three replicas.
 */
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { MiB } from '@junction/protocol';
import { startNatsCluster, type NatsCluster } from '@junction/e2e';
import { ClusterPlacement, JetStreamStore } from '../src/index.js';

/** A pino logger that keeps its lines. */
function capture(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('start-up with NATS starting at the same moment', () => {
  let cluster: NatsCluster | undefined;
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    await cluster?.stop();
  });

  it('two stores opened before any NATS server listens wait for JetStream and its peers, then work with 3 replicas', async () => {
    cluster = await startNatsCluster({ nodes: 3, startNodes: [] });
    const servers = cluster.servers;
    const logs = [capture(), capture()];
    const stores = logs.map((l) => new JetStreamStore({ servers, prefix: 'startup', logger: l.logger, openTimeoutMs: 60_000 }));
    for (const s of stores) closers.push(() => s.close());
    const opening = stores.map((s) => s.open());
    // NATS comes up after the stores started waiting: two servers, then the third 6 s later.
    await new Promise((r) => setTimeout(r, 500));
    await Promise.all([cluster.start(0, { wait: false }), cluster.start(1, { wait: false })]);
    await new Promise((r) => setTimeout(r, 6_000));
    const thirdAt = Date.now();
    await cluster.start(2, { wait: false });
    await Promise.all(opening);
    const openedAfterThird = Date.now() - thirdAt;
    // Waiting with backoff (at most 2 s apart), not for a 10 s request timeout per try.
    expect(openedAfterThird).toBeLessThan(15_000);
    for (const l of logs) {
      const waits = l
        .lines()
        .filter((x) => typeof x['msg'] === 'string' && (x['msg'] as string).includes('not ready yet, trying again with backoff'));
      expect(waits.length, 'a log line says what the store waits for').toBeGreaterThan(0);
      expect(l.lines().find((x) => x['msg'] === 'jetstream store open')).toMatchObject({ clusterServers: 3, replicas: 3 });
    }
    expect(stores.map((s) => s.defaultReplicas)).toEqual([3, 3]);
    // Both serve, as two Junction nodes: the placement of connector tasks starts too.
    const placements = stores.map((store, i) => new ClusterPlacement({ store, node: `n${i}` }));
    for (const p of placements) closers.push(() => p.close());
    await Promise.all(placements.map((p) => p.start({ tasks: () => [], stateOf: () => undefined, changed: async () => {} })));
    const [a, b] = stores as [JetStreamStore, JetStreamStore];
    expect((await a.createStation('fresh')).config.replicas).toBe(3);
    await b.produce('fresh', [{ value: Buffer.from('hello') }]);
    const [d] = await a.fetch('fresh', 'g', { maxMessages: 1, maxBytes: MiB, waitMs: 1_000 });
    expect(Buffer.from(d!.value).toString()).toBe('hello');
    expect(await b.ack('fresh', 'g', [d!.deliveryId])).toEqual([{ deliveryId: d!.deliveryId, status: 'acked' }]);
  }, 120_000);
});
