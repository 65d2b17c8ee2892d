/** Envelope, names, ack subjects, epochs, start-up errors: no server needed. */
import { describe, expect, it } from 'vitest';
import { ackSubject, decodeEnvelope, encodeEnvelope, Names, parseAckSubject } from '../src/index.js';
import { LeaderWatch, leaderVerdict, type Verdict } from '../src/leaders.js';
import { parseDeliveryId } from '@junction/protocol';
import { JetStreamApiError } from '../src/errors.js';
import { epochOf } from '../src/names.js';
import { clusterSize, isStarting } from '../src/startup.js';
import { NoRespondersError, RequestTimeoutError, type Wire } from '../src/wire.js';
import { Meta } from '../src/meta.js';
import { pino } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';

describe('envelope', () => {
  it('round trips values, keys and arbitrary header names and values byte for byte', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const cases = [
      { value: new Uint8Array(0) },
      { value: all, key: '' },
      {
        value: Buffer.from('v'),
        key: 'ключ 🔑',
        headers: { 'with: colon': 'line\r\nbreak', '': 'empty name', __proto__x: 'y', 'x-ü': '駅 🚉' },
      },
      { value: Buffer.from('proto'), headers: JSON.parse('{"__proto__":"data"}') as Record<string, string> },
    ];
    for (const c of cases) {
      const d = decodeEnvelope(encodeEnvelope(c));
      expect(Buffer.compare(Buffer.from(d.value), Buffer.from(c.value))).toBe(0);
      expect(d.key).toBe(c.key);
      expect(d.headers).toEqual(c.headers ?? {});
    }
  });

  it('costs 3 bytes for a bare value; a payload without the magic is a bare value', () => {
    expect(encodeEnvelope({ value: Buffer.from('abc') }).length).toBe(6);
    const raw = Buffer.from('{"plain":"nats"}');
    expect(decodeEnvelope(raw)).toEqual({ key: undefined, headers: {}, value: raw });
  });

  it('rejects a truncated envelope', () => {
    const b = encodeEnvelope({ value: Buffer.from('x'), key: 'long key' });
    expect(() => decodeEnvelope(b.subarray(0, 6))).toThrow(/truncated/);
  });
});

describe('names', () => {
  it('maps names with dots one to one onto JetStream names and KV keys', () => {
    const n = new Names('junction');
    expect(n.stream('orders.dls', 0)).toBe('JUNCTION_orders=dls_0');
    expect(n.subject('a.b', 2)).toBe('junction.a=b.2');
    expect(n.consumer('connector.sink', 3)).toBe('connector=sink_g3');
    expect(n.groupKey('a.b', 'c')).not.toBe(n.groupKey('a', 'b.c'));
    expect(n.parseKey(n.groupKey('a.b', 'c.d'))).toEqual({ kind: 'g', station: 'a.b', group: 'c.d' });
    expect(n.parseKey(n.stationKey('x.dls'))).toEqual({ kind: 's', station: 'x.dls' });
    expect(() => new Names('Bad-Prefix')).toThrow(RangeError);
  });

  it('parses ack subjects as nats-server 2.9 writes them, and rebuilds them', () => {
    const a = parseAckSubject('$JS.ACK.JUNCTION_s_0.g_g1.3.42.57.1795699081316114888.9');
    expect(a).toEqual({
      stream: 'JUNCTION_s_0',
      consumer: 'g_g1',
      deliveryCount: 3,
      streamSeq: 42,
      consumerSeq: 57,
      timestamp: 1795699081316,
      pending: 9,
    });
    expect(parseAckSubject('$JS.ACK.x')).toBeUndefined();
    expect(parseAckSubject(ackSubject('S', 'C', 2, 10, 0))).toMatchObject({
      stream: 'S',
      consumer: 'C',
      deliveryCount: 2,
      streamSeq: 10,
      consumerSeq: 0,
    });
    // the 2.10+ form with domain and account hash
    expect(parseAckSubject('$JS.ACK._.HASH.S.C.1.5.6.1795699081316114888.0.tok')).toMatchObject({
      stream: 'S',
      consumer: 'C',
      streamSeq: 5,
    });
  });
});

describe('leader watch (produce during a leader election)', () => {
  const silent = 3_000;
  const ms = 1_000_000;

  it('a leader that heard from a quorum of its replicas lately can store; none, or one cut off from them, cannot', () => {
    expect(leaderVerdict(undefined, silent)).toEqual({ down: false });
    expect(leaderVerdict({ leader: 'n1' }, silent)).toEqual({ down: false }); // R1
    expect(leaderVerdict({ leader: '' }, silent).down).toBe(true);
    expect(leaderVerdict({}, silent).down).toBe(true);
    const r = (active: number, offline = false) => ({ name: 'x', current: true, offline, active: active * ms });
    expect(leaderVerdict({ leader: 'n1', replicas: [r(100), r(200)] }, silent)).toEqual({ down: false });
    expect(leaderVerdict({ leader: 'n1', replicas: [r(100), r(60_000)] }, silent)).toEqual({ down: false }); // 2 of 3
    expect(leaderVerdict({ leader: 'n1', replicas: [r(5_000), r(9_000)] }, silent)).toMatchObject({
      down: true,
      reason: expect.stringMatching(/n1 has not heard from a quorum/),
    });
    expect(leaderVerdict({ leader: 'n1', replicas: [r(0, true), r(10_000)] }, silent).down).toBe(true);
    expect(leaderVerdict({ leader: 'n1', replicas: [r(1), r(1), r(9_000), r(9_000)] }, silent)).toEqual({ down: false }); // R5: 2 + leader
    expect(leaderVerdict({ leader: 'n1', replicas: [r(1), r(9_000), r(9_000), r(9_000)] }, silent).down).toBe(true);
    // A follower answered (a new group's preferred peer): the leader is in the list; what counts is when
    // that follower last heard from it (the other follower it never hears from directly: active 0).
    const named = (name: string, active: number) => ({ name, current: true, active: active * ms });
    expect(leaderVerdict({ leader: 'n1', replicas: [named('n1', 900), named('n3', 0)] }, silent)).toEqual({ down: false });
    expect(leaderVerdict({ leader: 'n1', replicas: [named('n1', 3_500), named('n3', 0)] }, silent)).toMatchObject({
      down: true,
      reason: expect.stringMatching(/n1 has not been heard from/),
    });
  });

  /** A watch on a fake clock with a probe whose answers the test gives. */
  function harness() {
    let now = 0;
    const probes: { stream: string; answer: (v: Verdict) => void }[] = [];
    const downs: string[] = [];
    const lost: [string, number][] = [];
    const resent: [string, number][] = [];
    const w = new LeaderWatch({
      stallMs: 1_500,
      probeTimeoutMs: 1_000,
      reprobeMs: 250,
      probe: (stream) => new Promise<Verdict>((answer) => probes.push({ stream, answer })),
      onDown: (t) => downs.push(t.stream),
      onLost: (t, sentBefore) => lost.push([t.stream, sentBefore]),
      onResend: (t, sentBefore) => resent.push([t.stream, sentBefore]),
      overtakenMs: 1_000,
      firstElectionMs: 20_000,
      now: () => now,
    });
    return { w, probes, downs, lost, resent, advance: (d: number) => (now += d) };
  }
  const flush = () => new Promise((r) => setImmediate(r));

  it('probes a stream only when its publishes get no answer for stallMs; down fails them and blocks new ones until a leader answers', async () => {
    const { w, probes, downs, advance } = harness();
    const t = w.track('j.s.0', 'J_s_0', 'partition 0');
    // Answered publishes: never a probe, however long it runs.
    for (let i = 0; i < 50; i++) {
      const at = w.sent(t);
      advance(100);
      w.settled(t, true, at, true);
      w.scan();
    }
    expect(probes).toHaveLength(0);
    // One in flight, unanswered: a probe at 1.5 s, not before.
    w.sent(t);
    advance(1_400);
    w.scan();
    expect(probes).toHaveLength(0);
    advance(100);
    w.scan();
    w.scan();
    expect(probes.map((p) => p.stream)).toEqual(['J_s_0']);
    probes.shift()!.answer({ down: true, reason: 'no leader' });
    await flush();
    expect(w.isDown('j.s.0')).toBe(true);
    expect(downs).toEqual(['J_s_0']);
    expect(await w.confirmDown(t)).toBe(true);
    // Down: probed again every 250 ms, overlapping; a later "down" does not undo an earlier "up".
    advance(250);
    w.scan();
    advance(250);
    w.scan();
    expect(probes).toHaveLength(2);
    probes[1]!.answer({ down: false });
    await flush();
    expect(w.isDown('j.s.0')).toBe(false);
    probes[0]!.answer({ down: true, reason: 'stale' });
    await flush();
    expect(w.isDown('j.s.0')).toBe(false);
    expect(downs).toEqual(['J_s_0']);
  });

  it('a stall with a healthy leader: checked every stallMs; lost only when that leader stores nothing between two checks; "no responders" checks share one probe', async () => {
    const { w, probes, lost, resent, advance } = harness();
    const t = w.track('j.s.1', 'J_s_1', 'partition 1');
    w.sent(t);
    advance(1_500);
    w.scan();
    probes.shift()!.answer({ down: false, lastSeq: 7 });
    await flush();
    expect(w.isDown('j.s.1')).toBe(false);
    // What waited stallMs before the probe and has a msgId is sent again.
    expect(resent).toEqual([['J_s_1', 0]]);
    advance(1_000);
    w.scan();
    expect(probes).toHaveLength(0);
    advance(500);
    w.scan();
    expect(probes).toHaveLength(1);
    // The leader stored other messages meanwhile (slow, not lost): nothing is failed.
    probes.shift()!.answer({ down: false, lastSeq: 9 });
    await flush();
    expect(lost).toEqual([]);
    advance(1_500);
    w.scan();
    // It stored nothing since: what waits over 2 × stallMs (sent before 4.5 s - 3 s) went to a former leader.
    probes.shift()!.answer({ down: false, lastSeq: 9 });
    await flush();
    expect(lost).toEqual([['J_s_1', 4_500 - 3_000]]);
    expect(w.isDown('j.s.1')).toBe(false);
    w.settled(t, false, 0, false);
    // (The probes above saw it led: "no leader" now means lost, not a stream still electing its first.)
    // A verdict younger than 100 ms answers without a probe.
    expect(await w.confirmDown(t)).toBe(false);
    expect(probes).toHaveLength(0);
    advance(200);
    // Three "no responders" at once: one probe, one verdict for all.
    const asks = [w.confirmDown(t), w.confirmDown(t), w.confirmDown(t)];
    expect(probes).toHaveLength(1);
    probes.shift()!.answer({ down: true, reason: 'no leader' });
    expect(await Promise.all(asks)).toEqual([true, true, true]);
    expect(w.isDown('j.s.1')).toBe(true);
    expect(w.isDown('j.s.9')).toBe(false);
  });

  it('"no responders" on a stream this store never saw led (created a moment ago): retried, not refused', async () => {
    const { w, probes, downs, advance } = harness();
    const t = w.track('j.n.0', 'J_n_0', 'partition 0');
    const ask = w.confirmDown(t);
    probes.shift()!.answer({ down: true, reason: 'no leader (an election is under way)' });
    expect(await ask).toBe(false);
    expect(w.isDown('j.n.0')).toBe(false);
    const at = w.sent(t);
    w.settled(t, true, at, true); // its first leader answered
    advance(200);
    const again = w.confirmDown(t);
    probes.shift()!.answer({ down: true, reason: 'no leader (an election is under way)' });
    expect(await again).toBe(true);
    expect(downs).toEqual(['J_n_0']);
  });

  it('a stall on a stream still electing its first leader (never seen led, first used < firstElectionMs ago, or created a moment ago): never marked down', async () => {
    const { w, probes, downs, advance } = harness();
    const t = w.track('j.c.ids', 'J_c_ids', 'the msgId claims');
    w.sent(t);
    advance(1_500);
    w.scan();
    probes.shift()!.answer({ down: true, reason: 'nobody answered' });
    await flush();
    expect(w.isDown('j.c.ids')).toBe(false);
    // Still stalled: checked again after reprobeMs (not every scan).
    advance(100);
    w.scan();
    expect(probes).toHaveLength(0);
    advance(150);
    w.scan();
    expect(probes).toHaveLength(1);
    probes.shift()!.answer({ down: true, reason: 'no leader (an election is under way)' });
    await flush();
    expect(w.isDown('j.c.ids')).toBe(false);
    // 20 s after its first use: a stream created a moment ago (by another node) still counts as starting…
    advance(20_000);
    w.scan();
    probes.shift()!.answer({ down: true, reason: 'no leader (an election is under way)', starting: true });
    await flush();
    expect(w.isDown('j.c.ids')).toBe(false);
    // …an older one without a leader is down.
    advance(250);
    w.scan();
    probes.shift()!.answer({ down: true, reason: 'nobody answered' });
    await flush();
    expect(w.isDown('j.c.ids')).toBe(true);
    expect(downs).toEqual(['J_c_ids']);
    // Seen led: "starting" (created a moment ago) holds it up all the same — the first leader may hand
    // over to the preferred peer — but a verdict without it is lost, not starting.
    const u = w.track('j.d.0', 'J_d_0', 'partition 0');
    const at = w.sent(u);
    w.settled(u, true, at, true);
    w.sent(u);
    advance(1_500);
    w.scan();
    probes
      .splice(
        probes.findIndex((p) => p.stream === 'J_d_0'),
        1,
      )[0]!
      .answer({ down: true, reason: 'nobody answered', starting: true });
    await flush();
    expect(w.isDown('j.d.0')).toBe(false);
    advance(250);
    w.scan();
    probes
      .splice(
        probes.findIndex((p) => p.stream === 'J_d_0'),
        1,
      )[0]!
      .answer({ down: true, reason: 'nobody answered' });
    await flush();
    expect(w.isDown('j.d.0')).toBe(true);
  });

  it('a publish still unanswered a second after a later one to the same stream was answered is lost (a leader answers in order)', () => {
    const { w, probes, lost, advance } = harness();
    const t = w.track('j.s.2', 'J_s_2', 'partition 2');
    const old = w.sent(t); // went to the former leader
    advance(200);
    const later = w.sent(t);
    advance(10);
    w.settled(t, true, later, false); // a duplicate or an error: may be answered out of order, proves nothing
    w.scan();
    advance(1_200);
    w.scan();
    expect(lost).toEqual([]);
    const latest = w.sent(t);
    advance(10);
    w.settled(t, true, latest, true); // stored: a leader stores in order
    w.scan(); // the cut-off (sent before `later`) starts aging
    advance(900);
    w.scan();
    expect(lost).toEqual([]);
    advance(100);
    w.scan();
    expect(lost).toEqual([['J_s_2', latest]]);
    expect(old).toBeLessThan(latest);
    w.scan();
    expect(lost).toHaveLength(1); // once per newer answer
    expect(probes).toHaveLength(0); // no stall: answers came
    expect(w.isDown('j.s.2')).toBe(false);
  });
});

describe('epochs, start-up errors, cluster size', () => {
  it('an epoch is a deliveryId token that changes with the group incarnation, the partition and the generation', () => {
    const gm = { nonce: 'a', createdAt: 1 };
    const e = epochOf('g', gm, 0, 1);
    expect(e).toMatch(/^[0-9a-z]{1,7}$/);
    expect(parseDeliveryId(`0-5-1-${e}`)).toEqual({ partition: 0, offset: 5, attempt: 1, epoch: e });
    expect(epochOf('g', gm, 0, 1)).toBe(e);
    const others = [epochOf('g', { nonce: 'b', createdAt: 1 }, 0, 1), epochOf('g', gm, 1, 1), epochOf('g', gm, 0, 2)];
    for (const o of others) expect(o).not.toBe(e);
    // Metadata from before nonces: the group's name and creation time.
    expect(epochOf('g', { createdAt: 1 }, 0, 1)).not.toBe(epochOf('g', { createdAt: 2 }, 0, 1));
  });

  it('tells errors that pass while NATS starts from the others', () => {
    expect(isStarting(new NoRespondersError('x'))).toBe(true);
    expect(isStarting(new RequestTimeoutError('x'))).toBe(true);
    expect(isStarting(new JetStreamApiError(503, 10039, 'jetstream not enabled for account', 's'))).toBe(true);
    expect(isStarting(new JetStreamApiError(400, 10005, 'no suitable peers for placement', 's'))).toBe(true);
    expect(isStarting(Object.assign(new Error('jetstream is not enabled'), { name: 'JetStreamNotEnabled' }))).toBe(true);
    expect(isStarting(new Error('wrapped', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }))).toBe(
      true,
    );
    expect(isStarting(new JetStreamApiError(400, 10052, 'stream configuration invalid', 's'))).toBe(false);
    expect(isStarting(Object.assign(new Error('Authorization Violation'), { name: 'AuthorizationError' }))).toBe(false);
  });

  it('counts the servers of the cluster from the URLs given and advertised', () => {
    const nc = (info: object) => ({ info }) as unknown as Parameters<typeof clusterSize>[0];
    expect(clusterSize(nc({ cluster: 'c', connect_urls: ['10.0.0.1:4222', '10.0.0.2:4222', '10.0.0.3:4222'] }), ['nats://n1:4222'])).toBe(
      3,
    );
    expect(clusterSize(nc({ cluster: 'c', connect_urls: ['10.0.0.1:4222'] }), ['nats://n1:4222', 'nats://n2:4222', 'n3:4222'])).toBe(3);
    expect(clusterSize(nc({ connect_urls: [] }), ['nats://n1:4222', 'nats://n2:4222'])).toBe(1);
  });

  it('opening the metadata retries each step while the cluster starts, the watch of the bucket too', async () => {
    // A cluster that just formed: the bucket's creation and then its watch's consumer time out before they answer.
    const timeout = () => Object.assign(new Error('timeout'), { name: 'TimeoutError' });
    const calls = { create: 0, watch: 0 };
    const watcher = {
      stop() {},
      async *[Symbol.asyncIterator]() {},
    };
    const kv = {
      watch: async () => {
        if (++calls.watch <= 2) throw timeout();
        return watcher;
      },
    };
    const buckets = () => ({
      create: async () => {
        if (++calls.create <= 1) throw timeout();
        return kv as never;
      },
    });
    const wire = {
      timeoutMs: 1_000,
      api: async () => ({ config: { num_replicas: 3 }, state: { last_seq: 0 } }),
    } as unknown as Wire;
    const meta = new Meta({} as NatsConnection, wire, new Names('units'), 3, pino({ level: 'silent' }), buckets);
    await meta.open(5_000, performance.now() + 30_000);
    expect(calls).toEqual({ create: 2, watch: 3 });
    await meta.close();
    // Past the deadline the step's own error ends the open (a TimeoutError: the store reports it as UNAVAILABLE).
    calls.create = 0;
    calls.watch = 0;
    const late = new Meta({} as NatsConnection, wire, new Names('units'), 3, pino({ level: 'silent' }), buckets);
    await expect(late.open(5_000, performance.now() + 50)).rejects.toMatchObject({ name: 'TimeoutError' });
  });
});
