/**
 * Cluster crash test: producers write to an R3 station (3 partitions) through JetStreamStore while one
 * nats-server node of three is SIGKILLed — the leader of partition 0's stream, so a failover happens for
 * sure. Every produce the store acknowledged must still be there, byte for byte, at its offset, and each
 * producer's batches in the order it made them. Then the node comes back: it must catch up (its own
 * replica of every stream reaches the leader's last sequence) and, made leader, serve the same bytes.
 *
 * nats-server before 2.10.23 (Debian's 2.9.10 included) has a raft bug (core/cluster README, "Network cut
 * of one node"): a leader killed with a publish in flight that it wrote but could not replicate keeps it
 * when it comes back, at a sequence where the others hold an acknowledged message, and serves it when it
 * leads again (the last check failed about 1 run in 9). On such a server the producers pause at the
 * instant of the kill (no publish in flight to the victim) and resume at once; they run through the
 * failover and the catch-up either way. CLUSTER_KILL_NO_PAUSE=1 shows the bug.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { JetStreamStore } from '@junction/cluster';
import {
  sleep,
  startNatsCluster,
  type NatsCluster,
  eventually,
  localState,
  raftDesyncFixed,
  readPartition,
  streamLeader,
} from '../src/index.js';

const STATION = 'orders';
const PARTITIONS = 3;
const PREFIX = 'killtest';

interface Acked {
  value: Buffer;
  producer: number;
  batch: number;
}

describe('SIGKILL of one nats-server node of three (R3 station)', () => {
  let cluster: NatsCluster | undefined;
  let store: JetStreamStore | undefined;
  afterAll(async () => {
    await store?.close().catch(() => {});
    await cluster?.stop();
  });

  it('keeps every acknowledged message byte for byte and in order; the node comes back and catches up', async () => {
    cluster = await startNatsCluster({ nodes: 3 });
    store = new JetStreamStore({ servers: cluster.servers, replicas: 3, prefix: PREFIX, requestTimeoutMs: 5_000 });
    await store.open();
    await store.createStation(STATION, { partitions: PARTITIONS });
    const s = store;
    const version = s.connection.info?.version ?? '0.0.0';
    const pauseAtKill = !raftDesyncFixed(version) && !process.env['CLUSTER_KILL_NO_PAUSE'];
    let paused: Promise<void> | undefined;
    let resume = (): void => {};
    let inCall = 0;

    const acked = new Map<string, Acked>();
    const notAcked = { rejected: 0, failedCalls: 0 };
    let stop = false;
    const producer = async (id: number) => {
      for (let batch = 0; !stop; batch++) {
        if (paused) await paused;
        const values = Array.from({ length: 25 }, () => randomBytes(16 + Math.floor(Math.random() * 4096)));
        inCall++;
        try {
          const results = await s.produce(
            STATION,
            values.map((value, i) => ({
              value,
              key: `p${id}-k${i % 7}`,
              headers: { producer: String(id), batch: String(batch), i: String(i) },
            })),
          );
          results.forEach((r, i) => {
            if (r.status === 'stored') acked.set(`${r.partition}:${r.offset}`, { value: values[i]!, producer: id, batch });
            else notAcked.rejected++;
          });
        } catch {
          notAcked.failedCalls++;
          await sleep(50);
        } finally {
          inCall--;
        }
      }
    };
    const producers = [0, 1, 2].map(producer);

    await sleep(1_500);
    const victimName = await streamLeader(cluster, `${PREFIX.toUpperCase()}_${STATION}_0`);
    expect(victimName, 'partition 0 has a leader').toBeDefined();
    const victim = cluster.node(victimName!);
    const before = acked.size;
    if (pauseAtKill) {
      paused = new Promise((r) => (resume = () => ((paused = undefined), r())));
      while (inCall > 0) await sleep(5);
    }
    await cluster.kill(victim.index);
    resume();
    // Publishes in flight to the dead leader time out (5 s here); a new leader is elected meanwhile.
    await sleep(6_000);
    const recovered = acked.size;
    await sleep(3_000);
    stop = true;
    await Promise.all(producers);
    const afterKill = acked.size - before;
    const lastWindow = acked.size - recovered;

    // Every acknowledged message is there, byte for byte, with its headers.
    const readAll = async () => {
      const got = new Map<string, { value: Uint8Array; headers: Record<string, string> }>();
      for (let p = 0; p < PARTITIONS; p++) {
        const ms = await readPartition((from) => s.read(STATION, { partition: p, fromOffset: from, limit: 1_000_000 }));
        for (let i = 1; i < ms.length; i++) expect(ms[i]!.offset).toBeGreaterThan(ms[i - 1]!.offset);
        for (const m of ms) got.set(`${p}:${m.offset}`, { value: m.value, headers: m.headers });
      }
      return got;
    };
    const check = (got: Map<string, { value: Uint8Array; headers: Record<string, string> }>) => {
      let missing = 0;
      let different = 0;
      for (const [k, a] of acked) {
        const m = got.get(k);
        if (!m) missing++;
        else if (
          Buffer.compare(Buffer.from(m.value), a.value) !== 0 ||
          m.headers['producer'] !== String(a.producer) ||
          m.headers['batch'] !== String(a.batch)
        )
          different++;
      }
      expect({ missing, different }).toEqual({ missing: 0, different: 0 });
    };
    const got = await readAll();
    check(got);

    // Each producer's batches are in the order it made them, in every partition.
    for (let p = 0; p < PARTITIONS; p++) {
      for (const id of [0, 1, 2]) {
        const mine = [...acked.entries()]
          .filter(([k, a]) => k.startsWith(`${p}:`) && a.producer === id)
          .map(([k, a]) => ({ offset: Number(k.split(':')[1]), batch: a.batch }))
          .sort((x, y) => x.offset - y.offset);
        for (let i = 1; i < mine.length; i++)
          expect(mine[i]!.batch, `producer ${id}, partition ${p}`).toBeGreaterThanOrEqual(mine[i - 1]!.batch);
      }
    }

    // The store kept working through the failover.
    expect(lastWindow, 'messages acknowledged 6-9 s after the kill').toBeGreaterThan(0);
    console.log(
      `cluster-kill (nats-server ${version}${pauseAtKill ? ', producers paused at the kill' : ''}): ${acked.size} acknowledged (${before} in the 1.5 s before killing ${victim.name}, leader of partition 0; ${afterKill} after, ${lastWindow} of them in the last 3 s), ` +
        `${notAcked.rejected} not acknowledged, ${notAcked.failedCalls} failed produce calls; all ${acked.size} present byte for byte`,
    );

    // The node comes back and catches up: its own replica of every stream reaches the leader's state.
    await cluster.start(victim.index);
    for (let p = 0; p < PARTITIONS; p++) {
      const stream = `${PREFIX.toUpperCase()}_${STATION}_${p}`;
      const info = await s.getStation(STATION);
      const want = info.partitions[p]!;
      await eventually(`${victim.name} to catch up on ${stream}`, 30_000, async () => {
        const st = await localState(cluster!, victim.index, stream);
        return st && st.last_seq === want.nextOffset - 1 && st.messages === want.messages ? st : undefined;
      });
    }

    // Made the leader of partition 0, it serves the same bytes.
    const nc = await connect({ servers: cluster.servers, noAsyncTraces: true });
    try {
      const stream = `${PREFIX.toUpperCase()}_${STATION}_0`;
      await eventually(`${victim.name} to lead ${stream}`, 60_000, async () => {
        const leader = await streamLeader(cluster!, stream);
        if (leader === victim.name) return true;
        await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 5_000 }).catch(() => undefined);
        await sleep(1_000);
        return undefined;
      });
    } finally {
      await nc.close();
    }
    check(await readAll());
  }, 150_000);
});
