/**
 * OPEN INVESTIGATION — not part of `npm test`. In 1 of 5 runs, 13 acknowledged offsets held different
 * bytes after the heal (and in another, producers stalled for most of the cut, see core/cluster README).
 * Until the cause is known this is not a test that can run green in CI; run it by hand:
 *   npx tsc -b && npx vitest run --config test/investigations/vitest.config.ts
 *
 * A network cut of one nats-server node of three. The harness runs every route through relays in this
 * process (`cuttableRoutes`), so `cut(i)` blackholes all routes to and from node i — no RST, no FIN,
 * like a pulled cable — and `heal(i)` ends it; no root, firewall rules or namespaces are involved, and
 * the cut ends with the cluster even if the test fails (afterAll heals and stops it).
 *
 * An R3 station (3 partitions) is created; the node cut off is the leader of partition 0's stream (so
 * an election happens on the majority side for sure). Two Junction nodes connected only to the two
 * other NATS nodes take produces over REST all along. For ~10 s the node is cut off: produces keep
 * being acknowledged on the majority. After the heal every acknowledged message is there, byte for
 * byte, at its offset; the cut node catches up (its replica of every stream reaches the leader's state)
 * and, made the leader of partition 0, serves the same bytes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { JetStreamStore } from '@junction/cluster';
import { api, sleep, startBroker, startNatsCluster, type BrokerProcess, type NatsCluster, eventually, localState, streamLeader } from '../src/index.js';

const STATION = 'parted';
const PARTITIONS = 3;
const STREAM = (p: number): string => `JUNCTION_${STATION}_${p}`;

describe('network cut of one nats-server node of three (R3 station, producers through Junction on the majority)', () => {
  let cluster: NatsCluster | undefined;
  let admin: JetStreamStore | undefined;
  const brokers: BrokerProcess[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const i of cluster?.cutNodes ?? []) cluster?.heal(i);
    await admin?.close().catch(() => {});
    await Promise.all(brokers.map((b) => b.kill().catch(() => {})));
    await cluster?.stop();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('acknowledged produces keep succeeding on the majority; after the heal every one is there byte for byte and the cut node catches up', async () => {
    cluster = await startNatsCluster({ nodes: 3, cuttableRoutes: true });
    const c = cluster;
    // The metadata bucket R3 and the station R3, made before any Junction node starts.
    admin = new JetStreamStore({ servers: c.servers, replicas: 3, requestTimeoutMs: 5_000 });
    await admin.open();
    await admin.createStation(STATION, { partitions: PARTITIONS, replicas: 3 });
    const leaderName = await eventually('a leader of partition 0', 10_000, () => streamLeader(c, STREAM(0), [0, 1, 2]));
    const victim = c.node(leaderName);
    const majority = c.nodes.filter((n) => n !== victim);
    const urls = majority.map((n) => n.url).join(',');
    for (let i = 0; i < 2; i++) {
      const dir = await mkdtemp(join(tmpdir(), 'junction-cp-node-'));
      dirs.push(dir);
      brokers.push(await startBroker({ dataDir: dir, args: ['--nats', urls] }));
    }

    const acked = new Map<string, { value: Buffer; at: number }>();
    const failures = { rejected: 0, failedCalls: 0 };
    let stop = false;
    const producer = async (id: number) => {
      const b = brokers[id % brokers.length]!;
      while (!stop) {
        const values = Array.from({ length: 20 }, () => randomBytes(16 + Math.floor(Math.random() * 2048)));
        try {
          const res = await api<{ results: { partition?: number; offset?: number; error?: unknown }[] }>(b.url, 'POST', `/v1/stations/${STATION}/messages`, {
            messages: values.map((v, i) => ({ valueBase64: v.toString('base64'), key: `p${id}-k${i % 11}` })),
          });
          const now = Date.now();
          res.results.forEach((r, i) => {
            if (r.error === undefined && r.offset !== undefined) acked.set(`${r.partition}:${r.offset}`, { value: values[i]!, at: now });
            else failures.rejected++;
          });
        } catch {
          failures.failedCalls++;
          await sleep(50);
        }
      }
    };
    const producers = [0, 1, 2, 3].map(producer);

    await sleep(2_000);
    const before = acked.size;
    const cutAt = Date.now();
    c.cut(victim.index);
    await sleep(9_000);
    // The cut is real: the majority elected another leader of partition 0, and the cut node's replica
    // did not get the writes made since.
    const majorityIdx = majority.map((n) => n.index);
    const newLeader = await streamLeader(c, STREAM(0), majorityIdx);
    const cutSeq = (await localState(c, victim.index, STREAM(0)))?.last_seq ?? 0;
    const majSeq = Math.max(...(await Promise.all(majorityIdx.map(async (i) => (await localState(c, i, STREAM(0)))?.last_seq ?? 0))));
    await sleep(1_000);
    const healAt = Date.now();
    c.heal(victim.index);
    await sleep(3_000);
    stop = true;
    await Promise.all(producers);

    const during = [...acked.values()].filter((a) => a.at >= cutAt && a.at < healAt).length;
    const lateDuring = [...acked.values()].filter((a) => a.at >= healAt - 4_000 && a.at < healAt).length;
    console.log(
      `cluster-partition: cut ${victim.name} (leader of partition 0) for ${healAt - cutAt} ms; ${acked.size} acknowledged (${before} before the cut, ${during} during it, ` +
        `${lateDuring} in its last 4 s), ${failures.rejected} not acknowledged, ${failures.failedCalls} failed produce calls`,
    );
    console.log(`during the cut: leader of partition 0 on the majority ${newLeader}; last seq on ${victim.name} ${cutSeq}, on the majority ${majSeq}`);
    expect(newLeader, 'a new leader of partition 0 on the majority side').toBeDefined();
    expect(newLeader).not.toBe(victim.name);
    expect(cutSeq, 'the cut node did not receive the writes of the cut').toBeLessThan(majSeq);
    expect(before, 'acknowledged before the cut').toBeGreaterThan(0);
    expect(lateDuring, 'acknowledged in the last 4 s of the cut (the majority elected new leaders)').toBeGreaterThan(0);

    // Every acknowledged message is there, byte for byte (read through a store on the majority).
    const s = admin;
    const check = async (when: string): Promise<void> => {
      console.log(`check ${when}`);
      let missing = 0;
      let different = 0;
      const got = new Map<string, Uint8Array>();
      for (let p = 0; p < PARTITIONS; p++) {
        const ms = await s.read(STATION, { partition: p, limit: 1_000_000 });
        for (const m of ms) got.set(`${p}:${m.offset}`, m.value);
      }
      for (const [k, a] of acked) {
        const v = got.get(k);
        if (!v) missing++;
        else if (Buffer.compare(Buffer.from(v), a.value) !== 0) {
          different++;
          if (different <= 5) console.log(`different at ${k}: acked at +${a.at - cutAt} ms from the cut (heal at +${healAt - cutAt}); ${a.value.length} bytes acked, ${v.length} stored`);
        }
      }
      expect({ missing, different }).toEqual({ missing: 0, different: 0 });
    };
    await eventually('the store answering after the heal', 30_000, async () => ((await s.getStation(STATION)) ? true : undefined));
    await check('after the heal');

    // The cut node catches up: its own replica of every stream reaches the leader's state.
    for (let p = 0; p < PARTITIONS; p++) {
      const want = (await s.getStation(STATION)).partitions[p]!;
      await eventually(`${victim.name} to catch up on ${STREAM(p)}`, 30_000, async () => {
        const st = await localState(c, victim.index, STREAM(p));
        return st && st.last_seq === want.nextOffset - 1 && st.messages === want.messages ? st : undefined;
      });
    }

    // Made the leader of partition 0, it serves the same bytes.
    const nc = await connect({ servers: c.servers, noAsyncTraces: true });
    try {
      await eventually(`${victim.name} to lead ${STREAM(0)}`, 60_000, async () => {
        const leader = await streamLeader(c, STREAM(0), [0, 1, 2]);
        if (leader === victim.name) return true;
        await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM(0)}`, undefined, { timeout: 5_000 }).catch(() => undefined);
        await sleep(1_000);
        return undefined;
      });
    } finally {
      await nc.close();
    }
    await check('with the cut node leading partition 0');
  }, 180_000);
});
