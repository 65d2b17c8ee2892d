/**
 * Difference 12 (README, "Produce during a leader election"): a partition whose leader is cut off
 * answers quickly instead of holding the produce call for the request timeout, other partitions are
 * not held up, messages without a key go elsewhere, and a msgId'd message retried until the majority
 * elected a new leader is stored once.
 *
 * A real 3-node cluster whose routes run through relays (`cuttableRoutes`): the leader of partition 0 is
 * cut off (a blackhole: its subscription to the partition's subject stays known to the others, so a
 * publish there gets no answer, not "no responders"). The store under test is connected to the other
 * two nodes only.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { partitionForKey, type ProduceResult } from '@junction/broker';
import { startNatsCluster, type NatsCluster } from '@junction/e2e';
import { JetStreamStore } from '../src/index.js';

const STATION = 'elect';
const stream = (p: number | string) => `JUNCTION_${STATION}_${p}`;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A key that goes to partition p of 3. */
function keyFor(p: number, salt: string): string {
  for (let i = 0; ; i++) if (partitionForKey(`${salt}-${i}`, 3) === p) return `${salt}-${i}`;
}

describe('produce while a partition has no reachable leader (R3, its leader cut off)', () => {
  let cluster: NatsCluster | undefined;
  let nc: NatsConnection | undefined;
  const stores: JetStreamStore[] = [];
  afterAll(async () => {
    for (const i of cluster?.cutNodes ?? []) cluster?.heal(i);
    await Promise.all(stores.map((s) => s.close().catch(() => {})));
    await nc?.close();
    await cluster?.stop();
  });

  async function leaderOf(name: string, among = [0, 1, 2]): Promise<string | undefined> {
    const c = cluster!;
    for (const i of among) {
      const j = await c.jsz(i, { streams: true }).catch(() => undefined);
      const l = j?.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === name)?.cluster?.leader;
      if (l) return l;
    }
    return undefined;
  }

  it('answers quickly for the partition without a leader, keeps the others flowing, and a msgId retried after the election is stored once', async () => {
    cluster = await startNatsCluster({ nodes: 3, cuttableRoutes: true });
    const c = cluster;
    nc = await connect({ servers: c.servers, noAsyncTraces: true });
    const admin = new JetStreamStore({ servers: c.servers, replicas: 3 });
    stores.push(admin);
    await admin.open();
    await admin.createStation(STATION, { partitions: 3, replicas: 3 });
    // The msgId claim stream exists from the first msgId'd produce.
    expect((await admin.produce(STATION, [{ value: Buffer.from('warm'), key: keyFor(1, 'w'), msgId: 'warm' }]))[0]!.status).toBe('stored');

    let victimName: string | undefined;
    for (let i = 0; !victimName; i++) {
      victimName = await leaderOf(stream(0));
      if (i > 100) throw new Error('no leader of partition 0');
      if (!victimName) await sleep(100);
    }
    // Only partition 0 loses its leader: the others and the claim stream (else every msgId'd message
    // would wait for it too) lead elsewhere.
    for (const other of [1, 2, 'ids']) {
      for (let i = 0; ; i++) {
        const l = await leaderOf(stream(other));
        if (l && l !== victimName) break;
        if (i > 30) throw new Error(`cannot move the leader of ${stream(other)} off the node to cut`);
        if (l) await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream(other)}`, undefined, { timeout: 5_000 }).catch(() => undefined);
        await sleep(500);
      }
    }
    const victim = c.node(victimName);
    const majority = c.nodes.filter((n) => n !== victim).map((n) => n.url);
    const store = new JetStreamStore({ servers: majority, replicas: 3 });
    stores.push(store);
    await store.open();
    const k = [keyFor(0, 'k'), keyFor(1, 'k'), keyFor(2, 'k')];
    const warm = await store.produce(
      STATION,
      k.map((key) => ({ value: Buffer.from(`before ${key}`), key })),
    );
    expect(warm.map((r) => r.status)).toEqual(['stored', 'stored', 'stored']);

    c.cut(victim.index);

    // 1. In flight when nobody answers for partition 0: the call ends after the stall check (~1.5 s + a
    //    probe of ≤ 1 s), not after the 10 s request timeout; the other partitions are stored.
    const m = k.map((key, p) => ({ value: Buffer.from(`m${p}`), key, msgId: `m${p}` }));
    let t0 = performance.now();
    const first = await store.produce(STATION, m);
    const firstMs = performance.now() - t0;
    expect(firstMs).toBeLessThan(5_000);
    expect(first[0]).toMatchObject({
      status: 'rejected',
      code: 'NOT_ACKNOWLEDGED',
      message: expect.stringMatching(/partition 0 of station "elect" lost its leader/),
    });
    expect(first[1]).toMatchObject({ status: 'stored', partition: 1 });
    expect(first[2]).toMatchObject({ status: 'stored', partition: 2 });

    // 2. Known to have no leader now: a keyed message for it is refused at once (not sent: UNAVAILABLE),
    //    messages without a key go to the partitions that have one.
    t0 = performance.now();
    const second = await store.produce(STATION, [
      { value: Buffer.from('keyed'), key: k[0] },
      ...Array.from({ length: 6 }, (_, i) => ({ value: Buffer.from(`keyless ${i}`) })),
    ]);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(second[0]).toMatchObject({
      status: 'rejected',
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/^not stored: partition 0 of station "elect" has no leader right now/),
    });
    for (const r of second.slice(1)) {
      expect(r.status).toBe('stored');
      expect((r as { partition: number }).partition).not.toBe(0);
    }

    // A producer that loops on nothing but refusals does not starve the event loop (timers run between calls).
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    for (let i = 0; i < 5; i++) await store.produce(STATION, [{ value: Buffer.from('loop'), key: k[0] }]);
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(0);

    // 3. m0 retried until the majority elected a new leader (4–9 s election timeout in 2.9): every
    //    attempt answers quickly, and the one that lands is stored (the first never reached a leader).
    let landed: ProduceResult | undefined;
    const attempts: number[] = [];
    const until = performance.now() + 30_000;
    while (!landed && performance.now() < until) {
      t0 = performance.now();
      const [r] = await store.produce(STATION, [m[0]!]);
      attempts.push(Math.round(performance.now() - t0));
      if (r!.status === 'rejected') {
        expect(['UNAVAILABLE', 'NOT_ACKNOWLEDGED']).toContain(r!.code);
        await sleep(100);
      } else landed = r;
    }
    expect(landed, `m0 never stored; attempts took ${attempts.join(', ')} ms`).toMatchObject({ status: 'stored', partition: 0 });
    expect(Math.max(...attempts), `attempt durations ${attempts.join(', ')} ms`).toBeLessThan(3_000);
    // (as the majority sees it: the cut node still believes it leads)
    expect(
      await leaderOf(
        stream(0),
        [0, 1, 2].filter((i) => i !== victim.index),
      ),
    ).not.toBe(victim.name);

    // 4. Retried again (the producer never saw the answer, say): duplicates with the original offsets.
    const again = await store.produce(STATION, m);
    expect(again[0]).toEqual({ status: 'duplicate', partition: 0, offset: (landed as { offset: number }).offset });
    expect(again[1]).toEqual({ status: 'duplicate', partition: 1, offset: (first[1] as { offset: number }).offset });
    expect(again[2]).toEqual({ status: 'duplicate', partition: 2, offset: (first[2] as { offset: number }).offset });

    // 5. After the heal: m0 is in partition 0 once, at that offset.
    c.heal(victim.index);
    const msgs = await store.read(STATION, { partition: 0, limit: 1_000 });
    const m0 = msgs.filter((x) => Buffer.from(x.value).toString() === 'm0');
    expect(m0.map((x) => x.offset)).toEqual([(landed as { offset: number }).offset]);
  }, 90_000);
});
