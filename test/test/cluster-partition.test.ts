/**
 * A network cut of one nats-server node of three. The harness runs every route through relays in this
 * process (`cuttableRoutes`), so `cut(i)` blackholes all routes to and from node i — no RST, no FIN, like
 * a pulled cable — and `heal(i)` ends it; no root, firewall rules or namespaces are involved, and the cut
 * ends with the cluster even if the test fails (afterAll heals and stops it).
 *
 * An R3 station (3 partitions); the node cut off is the leader of partition 0's stream (so an election
 * happens on the majority side for sure) and of the station's msgId claim stream (which every message
 * goes through first). Two Junction nodes (broker processes) connected only to the two
 * other NATS nodes take produces over REST all along: 4 producers, keyed messages, each with a msgId
 * (its value's first 16 bytes), a rejected one sent again in the producer's next call, as a client
 * should. What is checked:
 *
 * - produce keeps going on the majority: messages for healthy partitions are acknowledged throughout,
 *   no produce call waits out the 10 s request timeout (the partition without a leader answers
 *   UNAVAILABLE / NOT_ACKNOWLEDGED within ~2.5 s and within 0.1 s after that, a publish lost to the former
 *   leader within ~3 s; README of core/cluster, "Produce during a leader election"), and only those two
 *   retryable codes are answered;
 * - the majority elects a new leader of partition 0 and stores writes the cut node does not have;
 * - after the heal every message is stored exactly once (msgId retries deduplicated), every
 *   acknowledged one byte for byte at its acknowledged offset; the cut node's replica of every stream
 *   catches up and, made leader of partition 0, serves the same bytes.
 *
 * nats-server before 2.10.23 has a raft bug (README of core/cluster, "Network cut of one node";
 * reproduced alone by test/investigations/jetstream-desync.investigation.ts): a leader that takes a
 * publish it cannot replicate — one in flight at the instant of the cut, or one that reaches it after
 * the heal before it learns of the new leader — keeps it after the heal, at a sequence where the others
 * hold an acknowledged message, and serves it when it leads again. On such a server the producers pause
 * around those two instants (no publish in flight when the cut starts; none until the cut node stepped
 * down after the heal); on a fixed server they never pause.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { JetStreamStore } from '@junction/cluster';
import {
  api,
  eventually,
  localState,
  raftDesyncFixed,
  readPartition,
  sleep,
  startBroker,
  startNatsCluster,
  streamLeader,
  type BrokerProcess,
  type NatsCluster,
} from '../src/index.js';

const STATION = 'parted';
const PARTITIONS = 3;
const STREAM = (p: number | string): string => `JUNCTION_${STATION}_${p}`;
const STREAMS = [...Array.from({ length: PARTITIONS }, (_, p) => STREAM(p)), STREAM('ids')];
const CUT_MS = 10_000;

interface Sent {
  id: string;
  value: Buffer;
  key: string;
  /** Where the produce that stored it said it is, and when it said so. */
  at?: string | undefined;
  ackedAt?: number | undefined;
}

describe('network cut of one nats-server node of three (R3 station, producers through Junction on the majority)', () => {
  let cluster: NatsCluster | undefined;
  let admin: JetStreamStore | undefined;
  const brokers: BrokerProcess[] = [];
  /** What each broker logged (warnings: the store's leader checks among them), for a failure's diagnosis. */
  const brokerLogs: string[][] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const i of cluster?.cutNodes ?? []) cluster?.heal(i);
    await admin?.close().catch(() => {});
    await Promise.all(brokers.map((b) => b.kill().catch(() => {})));
    await cluster?.stop();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('produce keeps going on the majority and never waits out the timeout; afterwards every message is there once, byte for byte, also on the cut node', async () => {
    const started = Date.now();
    // CLUSTER_PARTITION_NATS_LOG=<file>: the servers' debug log, for a failure's diagnosis.
    const natsLog = process.env['CLUSTER_PARTITION_NATS_LOG'];
    cluster = await startNatsCluster({ nodes: 3, cuttableRoutes: true, extraConfig: natsLog ? `debug: true\nlog_file: "${natsLog}"` : '' });
    if (natsLog) console.log(`nats-server pids: ${cluster.nodes.map((n) => `${n.name}=${n.pid}`).join(' ')}`);
    const c = cluster;
    admin = new JetStreamStore({ servers: c.servers, replicas: 3 });
    await admin.open();
    const version = admin.connection.info?.version ?? '0.0.0';
    // CLUSTER_PARTITION_NO_PAUSE=1 shows the server bug on an affected server (the test then fails at times).
    const pauseAroundCut = !raftDesyncFixed(version) && !process.env['CLUSTER_PARTITION_NO_PAUSE'];
    await admin.createStation(STATION, { partitions: PARTITIONS, replicas: 3 });
    const victim = c.node(await eventually('a leader of partition 0', 10_000, () => streamLeader(c, STREAM(0), [0, 1, 2])));
    // The hardest placement: the cut node also leads the msgId claim stream, which every message of the
    // producers goes through first (it exists from the first msgId'd produce).
    const seed: Sent = { id: '', value: randomBytes(16), key: '' };
    seed.id = seed.value.toString('hex');
    const [seeded] = await admin.produce(STATION, [{ value: seed.value, msgId: seed.id }]);
    const claimsCreatedAt = Date.now();
    expect(seeded!.status).toBe('stored');
    if (seeded!.status === 'stored') seed.at = `${seeded!.partition}:${seeded!.offset}`;
    const snc = await connect({ servers: c.servers, noAsyncTraces: true });
    try {
      await eventually(`${victim.name} to lead ${STREAM('ids')}`, 30_000, async () => {
        const l = await streamLeader(c, STREAM('ids'), [0, 1, 2]);
        if (l === victim.name) return true;
        if (l) await snc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM('ids')}`, undefined, { timeout: 5_000 }).catch(() => undefined);
        await sleep(500);
        return undefined;
      });
    } finally {
      await snc.close();
    }
    const majority = c.nodes.filter((n) => n !== victim);
    const majorityIdx = majority.map((n) => n.index);
    for (let i = 0; i < 2; i++) {
      const dir = await mkdtemp(join(tmpdir(), 'junction-cp-node-'));
      dirs.push(dir);
      const b = await startBroker({ dataDir: dir, args: ['--nats', majority.map((n) => n.url).join(',')] });
      brokers.push(b);
      const lines: string[] = [];
      brokerLogs.push(lines);
      b.child.stdout!.on('data', (d: Buffer) => lines.push(d.toString()));
    }

    // ---- producers
    const sent = new Map<string, Sent>([[seed.id, seed]]);
    const acked = new Map<string, Sent>(); // "partition:offset" -> message
    const collisions: string[] = [];
    const codes = new Map<string, number>();
    const calls: { start: number; ms: number }[] = [];
    let failedCalls = 0;
    let stop = false;
    let paused: Promise<void> | undefined;
    let inCall = 0;
    const producer = async (id: number): Promise<Sent[]> => {
      const b = brokers[id % brokers.length]!;
      let retry: Sent[] = [];
      while (!stop || retry.length > 0) {
        if (stop && Date.now() - stopAt > 40_000) break;
        if (paused) await paused;
        const fresh = stop
          ? []
          : Array.from({ length: 20 - Math.min(retry.length, 20) }, (_, i): Sent => {
              const value = Buffer.concat([randomBytes(16), randomBytes(Math.floor(Math.random() * 1024))]);
              const m = { id: value.subarray(0, 16).toString('hex'), value, key: `p${id}-k${i % 11}` };
              sent.set(m.id, m);
              return m;
            });
        const batch = [...retry.slice(0, 20), ...fresh];
        retry = retry.slice(20);
        const t0 = Date.now();
        inCall++;
        try {
          const res = await api<{ results: { partition?: number; offset?: number; duplicate?: boolean; error?: { code: string } }[] }>(
            b.url,
            'POST',
            `/v1/stations/${STATION}/messages`,
            {
              messages: batch.map((m) => ({ valueBase64: m.value.toString('base64'), key: m.key, msgId: m.id })),
            },
          );
          calls.push({ start: t0, ms: Date.now() - t0 });
          res.results.forEach((r, i) => {
            const m = batch[i]!;
            if (r.error === undefined && r.offset !== undefined) {
              const at = `${r.partition}:${r.offset}`;
              if (m.at !== undefined && m.at !== at) collisions.push(`${m.id} acknowledged at ${m.at} and at ${at}`);
              const other = acked.get(at);
              if (other && other.id !== m.id) collisions.push(`${at} acknowledged for ${other.id} and ${m.id}`);
              m.at = at;
              m.ackedAt ??= Date.now();
              acked.set(at, m);
            } else {
              codes.set(r.error?.code ?? 'none', (codes.get(r.error?.code ?? 'none') ?? 0) + 1);
              retry.push(m);
            }
          });
          if (retry.length > 0) await sleep(100); // a client backs off a little before sending again
        } catch {
          failedCalls++;
          retry.push(...batch);
          await sleep(100);
        } finally {
          inCall--;
        }
      }
      return retry;
    };
    /** Stops new calls until resume() and waits for the calls in flight to end. */
    let resume = (): void => {};
    const pause = async (): Promise<void> => {
      paused = new Promise((r) => (resume = () => ((paused = undefined), r())));
      while (inCall > 0) await sleep(5);
    };
    let stopAt = 0;
    const producers = [0, 1, 2, 3].map(producer);

    // The streams have settled (README of core/cluster: for 10 s after a stream is created the store
    // waits for its leader rather than refusing a produce).
    await sleep(Math.max(2_000, claimsCreatedAt + 10_500 - Date.now()));
    const before = acked.size;
    if (pauseAroundCut) await pause();
    const cutAt = Date.now();
    c.cut(victim.index);
    resume();
    // At least CUT_MS, and until the majority's new leader of partition 0 stored writes the cut node lacks.
    let newLeader: string | undefined;
    let cutSeq = 0;
    let majSeq = 0;
    for (;;) {
      await sleep(500);
      newLeader = await streamLeader(c, STREAM(0), majorityIdx);
      cutSeq = (await localState(c, victim.index, STREAM(0)))?.last_seq ?? 0;
      majSeq = Math.max(
        ...(await Promise.all(majorityIdx.map(async (i) => (await localState(c, i, STREAM(0)).catch(() => undefined))?.last_seq ?? 0))),
      );
      const elapsed = Date.now() - cutAt;
      if ((elapsed >= CUT_MS && newLeader && newLeader !== victim.name && majSeq > cutSeq) || elapsed > 2 * CUT_MS) break;
    }
    if (pauseAroundCut) await pause();
    const healAt = Date.now();
    c.heal(victim.index);
    if (pauseAroundCut) {
      // Until the cut node knows it leads nothing any more (it steps down on the new leader's first message).
      await eventually('the cut node to step down', 20_000, async () =>
        (await c.jsz(victim.index, { streams: true })).account_details
          ?.flatMap((a) => a.stream_detail ?? [])
          .some((s) => STREAMS.includes(s.name) && s.cluster?.leader === victim.name)
          ? undefined
          : true,
      );
      resume();
    }
    await sleep(3_000);
    stop = true;
    stopAt = Date.now();
    const unsent = (await Promise.all(producers)).flat();

    const cutCalls = calls.filter((x) => x.start >= cutAt && x.start < healAt);
    const ackedDuring = [...acked.values()].filter((m) => m.ackedAt! >= cutAt && m.ackedAt! < healAt).length;
    const lateAcked = [...acked.values()].filter((m) => m.ackedAt! >= healAt - 4_000 && m.ackedAt! < healAt).length;
    const maxCallMs = Math.max(0, ...cutCalls.map((x) => x.ms));
    console.log(
      `cluster-partition (nats-server ${version}${pauseAroundCut ? ', producers paused at the cut and the heal' : ''}): cut ${victim.name} (leader of partition 0) for ${healAt - cutAt} ms, ` +
        `new leader ${newLeader}; ${sent.size} messages, ${acked.size} acknowledged (${before} before the cut, ${ackedDuring} during it, ${lateAcked} in its last 4 s), rejections ${JSON.stringify([...codes])}, ` +
        `${failedCalls} failed calls; ${cutCalls.length} calls during the cut, slowest ${maxCallMs} ms; partition 0 last seq ${cutSeq} on ${victim.name}, ${majSeq} on the majority`,
    );
    const slow = cutCalls.filter((x) => x.ms >= 6_000);
    if (slow.length > 0) {
      console.log(`slow calls (start after the cut: ms): ${slow.map((x) => `+${x.start - cutAt}: ${x.ms}`).join(', ')}`);
      brokerLogs.forEach((lines, i) => console.log(`--- broker ${i}\n${lines.join('').slice(0, 30_000)}`));
    }
    const logged = brokerLogs.map((l) => l.join('')).join('');
    const count = (re: RegExp) => logged.match(re)?.length ?? 0;
    console.log(
      `cluster-partition: the brokers' stores saw ${count(/stream has no reachable leader/g)} streams lose their leader, failed ${count(/without a reachable leader answered NOT_ACKNOWLEDGED/g)} times ` +
        `publishes in flight to one, ${count(/sent again/g)} times sent msgId'd publishes again to a new leader, and ${count(/former leader answered NOT_ACKNOWLEDGED/g)} times failed publishes sent to a former leader`,
    );
    expect(collisions).toEqual([]);
    expect(failedCalls).toBe(0);
    expect([...codes.keys()].filter((k) => k !== 'UNAVAILABLE' && k !== 'NOT_ACKNOWLEDGED')).toEqual([]);
    expect(before, 'acknowledged before the cut').toBeGreaterThan(0);
    expect(newLeader, 'a new leader of partition 0 on the majority side').toBeDefined();
    expect(newLeader).not.toBe(victim.name);
    expect(cutSeq, 'the cut node did not receive the writes of the cut').toBeLessThan(majSeq);
    expect(lateAcked, 'acknowledged in the last 4 s of the cut').toBeGreaterThan(0);
    expect(maxCallMs, 'no produce call during the cut waits out the 10 s request timeout').toBeLessThan(6_000);
    expect(
      unsent.map((m) => m.id),
      'messages still not stored when the producers gave up',
    ).toEqual([]);

    // ---- every message exactly once, each acknowledged one byte for byte where it was acknowledged
    const s = admin;
    const readAll = async (partitions: number[]): Promise<Map<string, Uint8Array>> => {
      const got = new Map<string, Uint8Array>();
      for (const p of partitions) {
        // After the heal a partition can be without a leader for a few seconds (README): read until it answers.
        const ms = await eventually(`a read of partition ${p}`, 40_000, () =>
          readPartition((from) => s.read(STATION, { partition: p, fromOffset: from, limit: 1_000_000 })),
        );
        for (const m of ms) got.set(`${p}:${m.offset}`, m.value);
      }
      return got;
    };
    const verify = (got: Map<string, Uint8Array>, partitions: number[]) => {
      const seen = new Map<string, string[]>();
      for (const [at, v] of got) {
        const id = Buffer.from(v).subarray(0, 16).toString('hex');
        seen.set(id, [...(seen.get(id) ?? []), at]);
      }
      let missing = 0;
      let different = 0;
      const twice: string[] = [];
      for (const m of sent.values()) {
        const where = seen.get(m.id) ?? [];
        if (where.length > 1) twice.push(`${m.id} at ${where.join(', ')}`);
        if (m.at === undefined || !partitions.includes(Number(m.at.split(':')[0]))) continue;
        const v = got.get(m.at);
        if (!v) missing++;
        else if (Buffer.compare(Buffer.from(v), m.value) !== 0) different++;
      }
      const unknown = [...seen.keys()].filter((id) => !sent.has(id)).length;
      return { missing, different, stored: got.size, storedTwice: twice.slice(0, 5), unknown };
    };
    const all = Array.from({ length: PARTITIONS }, (_, p) => p);
    const first = await readAll(all);
    expect(verify(first, all)).toEqual({ missing: 0, different: 0, stored: sent.size, storedTwice: [], unknown: 0 });

    // ---- the cut node catches up: its own replica of every stream reaches the leader's state
    for (let p = 0; p < PARTITIONS; p++) {
      const want = (await eventually('the station', 30_000, () => s.getStation(STATION))).partitions[p]!;
      await eventually(`${victim.name} to catch up on ${STREAM(p)}`, 30_000, async () => {
        const st = await localState(c, victim.index, STREAM(p));
        return st && st.last_seq === want.nextOffset - 1 && st.messages === want.messages ? st : undefined;
      });
    }

    // ---- made the leader of partition 0, it serves the same bytes
    const nc = await connect({ servers: c.servers, noAsyncTraces: true });
    try {
      await eventually(`${victim.name} to lead ${STREAM(0)}`, 30_000, async () => {
        if ((await streamLeader(c, STREAM(0), majorityIdx)) === victim.name) return true;
        await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM(0)}`, undefined, { timeout: 5_000 }).catch(() => undefined);
        await sleep(1_000);
        return undefined;
      });
    } finally {
      await nc.close();
    }
    const again = await readAll([0]);
    const firstP0 = new Map([...first].filter(([at]) => at.startsWith('0:')));
    expect(verify(again, [0])).toMatchObject({ missing: 0, different: 0, stored: firstP0.size });
    expect([...again.keys()]).toEqual([...firstP0.keys()]);
    console.log(`cluster-partition: done in ${Date.now() - started} ms`);
  }, 120_000);
});
