/**
 * REPRODUCTION of a nats-server raft bug (not Junction: plain JetStream requests, no Junction code), the
 * cause of the "acknowledged offsets hold different bytes" failures of the network-cut test (README of
 * core/cluster, "Network cut of one node"). Run by hand:
 *   npx tsc -b && npx vitest run --config test/investigations/vitest.config.ts test/investigations/jetstream-desync.investigation.ts
 *
 * An R3 stream. Its leader is cut off and, through a client connected to it, gets one publish it can no
 * longer replicate (the client sees a timeout). The other two elect a new leader and store another
 * message, acknowledged, at the same sequence. After the heal the old leader catches up — but keeps its
 * own unreplicated message at that sequence: nats-server before 2.10.23 starts the follower's catchup
 * after the follower's last log entry without checking that entry's term (`catchupFollower` only logs
 * "Our first entry … does not match request from follower" at debug level, and the follower's
 * `truncateWAL(ae.pterm, ae.pindex)` keeps the mismatched entry), so that entry is committed and applied
 * on that replica only. Made leader, it serves the unacknowledged message where the acknowledged one
 * was. Fixed upstream by nats-io/nats-server#5987 ("NRG: Start catchup from n.commit …"), released in
 * 2.10.23 (test TestJetStreamClusterDesyncAfterPublishToLeaderWithoutQuorum).
 *
 * On a server with the bug this test passes by seeing the divergence; on a fixed one, by not seeing it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { sleep, startNatsCluster, type NatsCluster } from '../src/index.js';

const STREAM = 'DESYNC';

function fixed(version: string): boolean {
  const [a = 0, b = 0, c = 0] = version.split(/[.-]/).map((x) => Number.parseInt(x, 10));
  return a > 2 || (a === 2 && (b > 10 || (b === 10 && c >= 23)));
}

describe('nats-server: a replica keeps a message its cut-off leader never replicated', () => {
  let cluster: NatsCluster | undefined;
  const conns: NatsConnection[] = [];
  afterAll(async () => {
    for (const i of cluster?.cutNodes ?? []) cluster?.heal(i);
    await Promise.all(conns.map((c) => c.close().catch(() => {})));
    await cluster?.stop();
  });

  it('reproduces on nats-server < 2.10.23 (and not after)', async () => {
    cluster = await startNatsCluster({ nodes: 3, cuttableRoutes: true });
    const c = cluster;
    const nc = await connect({ servers: c.servers, noAsyncTraces: true });
    conns.push(nc);
    const js = async <T>(subject: string, body?: unknown, via = nc): Promise<T> => {
      const m = await via.request(`$JS.API.${subject}`, body === undefined ? undefined : JSON.stringify(body), { timeout: 5_000 });
      const r = m.json<T & { error?: { description: string } }>();
      if (r.error) throw new Error(`${subject}: ${r.error.description}`);
      return r;
    };
    const version = nc.info!.version;
    await js('STREAM.CREATE.' + STREAM, {
      name: STREAM,
      subjects: ['desync'],
      num_replicas: 3,
      storage: 'file',
      retention: 'limits',
      discard: 'old',
    });
    const view = async (i: number) =>
      (await c.jsz(i, { streams: true })).account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === STREAM);
    let leader: string | undefined;
    for (let i = 0; !leader && i < 100; i++) {
      leader = (await view(0))?.cluster?.leader;
      if (!leader) await sleep(100);
    }
    const old = c.node(leader!);
    const others = c.nodes.filter((n) => n !== old);
    const atOld = await connect({ servers: [old.url], noAsyncTraces: true, ignoreClusterUpdates: true });
    const atOther = await connect({ servers: [others[0]!.url], noAsyncTraces: true, ignoreClusterUpdates: true });
    conns.push(atOld, atOther);
    for (let i = 1; i <= 5; i++) await atOther.request('desync', `acked ${i}`, { timeout: 5_000 });

    c.cut(old.index);
    // The old leader takes this one into its log; nobody can acknowledge it.
    const lost = await atOld.request('desync', 'NEVER ACKNOWLEDGED', { timeout: 2_000 }).then(
      () => 'acknowledged',
      () => 'timed out',
    );
    expect(lost).toBe('timed out');
    // The majority elects a new leader (4–9 s election timeout in 2.9) and stores the next message.
    let ack: { seq: number } | undefined;
    for (let i = 0; !ack && i < 60; i++) {
      ack = await atOther
        .request('desync', 'ACKNOWLEDGED 6', { timeout: 1_000 })
        .then((m) => m.json<{ seq?: number; error?: unknown }>())
        .then((r) => (r.seq ? { seq: r.seq } : undefined))
        .catch(() => undefined);
      if (!ack) await sleep(250);
    }
    expect(ack?.seq).toBe(6);
    c.heal(old.index);

    // The old leader catches up to the same last sequence and count…
    for (let i = 0; ; i++) {
      const [a, b] = await Promise.all([view(old.index), view(others[0]!.index)]);
      if (a && b && a.state.last_seq === b.state.last_seq && a.state.messages === b.state.messages && a.cluster?.leader !== old.name) break;
      if (i > 150) throw new Error('the old leader did not catch up');
      await sleep(200);
    }
    // …and, made leader, says what it holds at sequence 6.
    // (After a heal the returning node's raised term costs the stream its leader for a few seconds.)
    const at6 = async (): Promise<string> => {
      for (let i = 0; ; i++) {
        try {
          const r = await js<{ message: { data: string } }>(`STREAM.MSG.GET.${STREAM}`, { seq: 6 });
          return Buffer.from(r.message.data, 'base64').toString();
        } catch (err) {
          if (i > 60) throw err;
          await sleep(500);
        }
      }
    };
    const onMajority = await at6();
    for (let i = 0; (await view(others[0]!.index))?.cluster?.leader !== old.name; i++) {
      if (i > 60) throw new Error('could not make the old leader lead');
      await js(`STREAM.LEADER.STEPDOWN.${STREAM}`).catch(() => undefined);
      await sleep(1_000);
    }
    const onOld = await at6();
    const bytes = await Promise.all([0, 1, 2].map(async (i) => `${c.node(i).name}=${(await view(i))?.state.bytes}`));
    console.log(
      `nats-server ${version}: sequence 6 is "${onMajority}" on the majority, "${onOld}" on the old leader ${old.name}; stream bytes per replica ${bytes.join(' ')}`,
    );
    expect(onMajority).toBe('ACKNOWLEDGED 6');
    if (fixed(version)) expect(onOld).toBe('ACKNOWLEDGED 6');
    else expect(onOld, `the raft catchup bug of nats-server < 2.10.23 on ${version}`).toBe('NEVER ACKNOWLEDGED');
  }, 120_000);
});
