/**
 * The state every part of JetStreamStore shares (the connection, the metadata cache, this node's group
 * runtimes, the leader watch) and the JetStream helpers they all use: API calls with retries, stream and
 * consumer lifecycle, metadata lookups, publishing with the leader checks, and confirmed acks. The
 * public face is JetStreamStore (store.ts); stations.ts, claims.ts, produce.ts, groups.ts, fetch.ts,
 * settle.ts and dead-letters.ts each hold one section of it as functions over a StoreCore.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { legacyStationId, StoreEventHub, type StoreEvent } from '@junction/broker';
import type { Logger } from 'pino';
import type { JsStreamConfig } from './config.js';
import { asJunctionError, ErrorCode, isApiError, JetStreamApiError, JsErr, JunctionError } from './errors.js';
import type { GroupMeta, Meta, StationMeta } from './meta.js';
import { enc, epochOf, type Names } from './names.js';
import { GroupRt, type ConsumerRef } from './runtime.js';
import { leaderVerdict, type ClusterInfo, type LeaderWatch, type Track, type Verdict } from './leaders.js';
import { LeaderlessError, NoRespondersError, RequestTimeoutError, WireClosedError, type PubAck, type Wire } from './wire.js';

export const DLS_SUFFIX = '.dls';
export const NS = 1_000_000;
/** A no-wait pull that neither answers nor ends within this long is queued behind other pulls (see sweep). */
export const STUCK_PULL_MS = 1_000;
/** A carried delivery is not handed out when less than this is left of its ack deadline. */
export const CARRY_MARGIN_MS = 100;
/** A carried delivery no fetch on this node took within this long is released (nak) for any fetcher. */
export const CARRY_IDLE_MS = 2_000;
/** A no-wait pull that finds nothing this soon after this node produced to the stream waits a little (see pullInto). */
export const RECENT_PRODUCE_MS = 1_000;
export const REPLICA_CATCHUP_MS = 50;
/** Leader watch (leaders.ts): timeout of one probe (STREAM.INFO); how often a stream without a leader is probed again. */
export const PROBE_TIMEOUT_MS = 1_000;
export const REPROBE_MS = 250;
/** How long a replica may go unheard (2.9 leaders send a heartbeat every second) before it counts as gone. */
export const FOLLOWER_SILENT_MS = 2_500;
/**
 * A stream created or reconfigured less than this ago is settling: its first leader may not be elected
 * yet, or the first one hands over to the group's preferred peer (seen with nats-server 2.9: a claim
 * stream answers a first claim, then nobody answers for a few seconds). The leader watch does not refuse
 * its publishes; they wait for the leader (at worst the request timeout).
 */
export const FIRST_ELECTION_MS = 10_000;
/** A publish still unanswered this long after a later one to the same stream was stored went to a former leader. */
export const OVERTAKEN_MS = 1_000;
/** A message for a stream known to have no leader waits this long for one before it is refused. */
export const DOWN_WAIT_MS = 100;
/** nats-server releases with the raft catchup fix for divergent replicas (README, "Network cut"). */
export const RAFT_DESYNC_FIXED = [2, 10, 23] as const;
/** How often last attempts past their deadline are looked for. */
export const TICK_MS = 100;

export interface StreamState {
  messages: number;
  bytes: number;
  first_seq: number;
  last_seq: number;
}

export interface ConsumerInfo {
  delivered: { consumer_seq: number; stream_seq: number };
  ack_floor: { consumer_seq: number; stream_seq: number };
  num_ack_pending: number;
  num_redelivered: number;
  num_pending: number;
}

export interface DeadItem {
  partition: number;
  offset: number;
  attempts: number;
  ack: string;
  code: string;
  reason: string;
  headers?: Record<string, string> | undefined;
  /** The message when the caller has it (a fetch); read from the stream otherwise. */
  message?: { key: string | undefined; headers: Record<string, string>; value: Uint8Array; timestamp: number } | undefined;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** What every section of the store shares. Internal to the package: built and owned by JetStreamStore. */
export class StoreCore {
  nc: NatsConnection | undefined;
  wire!: Wire;
  meta!: Meta;
  state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  readonly events: StoreEventHub;
  /** Round-robin position of keyless produce per station. */
  readonly rr = new Map<string, number>();
  /** This node's runtime of each group it touched (`station\u0000group`). */
  readonly groups = new Map<string, GroupRt>();
  readonly creatingGroups = new Map<string, Promise<GroupMeta>>();
  /** Stations whose msgId claim stream this node knows to exist. */
  readonly claimStreams = new Set<string>();
  /** Stations whose dead-letter marks stream this node knows to exist. */
  readonly markStreams = new Set<string>();
  readonly closing = new AbortController();
  readonly inflight = new Set<Promise<unknown>>();
  ticker: NodeJS.Timeout | undefined;
  ticking = false;
  maxPayload = 1024 * 1024;
  /** When this node last stored a message in a stream (performance.now()): read-your-writes for no-wait pulls. */
  readonly producedAt = new Map<string, number>();
  leaders: LeaderWatch | undefined;
  leaderTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly names: Names,
    readonly log: Logger,
    /** Replicas of new stations unless a station sets its own (settled at open: see JetStreamStore.defaultReplicas). */
    public replicas: number,
    /** Timeout of one JetStream request. */
    readonly timeoutMs: number,
  ) {
    this.events = new StoreEventHub(() => this.log);
  }

  emit(e: StoreEvent): void {
    this.events.emit(e);
  }

  check(): void {
    if (this.state !== 'open') throw new JunctionError(ErrorCode.STORE_CLOSED, 'the store is not open', { retryable: true });
  }

  /** Dead-letter marks being written per station (deleteStation waits for them: see `marking`). */
  private readonly marks = new Map<string, Promise<void>>();

  /**
   * Registers a station's marks being written: deleting the station waits for them, as deleting the
   * marks stream while it is being created here can keep JetStream from answering the delete in time.
   */
  marking(station: string, p: Promise<void>): Promise<void> {
    const all = Promise.allSettled([this.marks.get(station), p]).then(() => {
      if (this.marks.get(station) === all) this.marks.delete(station);
    });
    this.marks.set(station, all);
    return p;
  }

  /** Waits for the station's marks being written by this node (at most `ms`). */
  async marksWritten(station: string, ms: number): Promise<void> {
    const p = this.marks.get(station);
    if (p) await Promise.race([p, sleep(ms)]);
  }

  /** Tracks work that nobody awaits (close waits for it a moment); a failure is logged. */
  background(p: Promise<void>): void {
    const tracked: Promise<void> = p
      .catch((err: unknown) => {
        if (this.state === 'open') this.log.warn({ err }, 'background work of the store failed');
      })
      .finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
  }

  /** Runs `fn` as tracked work (close waits for it) and maps unexpected failures to JunctionErrors. */
  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.check();
    const p = fn();
    this.inflight.add(p);
    try {
      return await p;
    } catch (err) {
      if (err instanceof WireClosedError || (this.state === 'closed' && !(err instanceof JunctionError))) {
        throw new JunctionError(ErrorCode.STORE_CLOSED, 'the store is closed', { retryable: true, cause: err });
      }
      throw asJunctionError(what, err);
    } finally {
      this.inflight.delete(p);
    }
  }

  onMetaChange(key: string, value: unknown): void {
    const k = this.names.parseKey(key);
    if (k?.kind === 's' && value === undefined) {
      // Deleted (on any node): its claim and marks streams go with it; a new incarnation makes its own.
      this.claimStreams.delete(k.station);
      this.markStreams.delete(k.station);
    }
    if (!k || k.kind !== 'g') return;
    const id = `${k.station}\u0000${k.group}`;
    const rt = this.groups.get(id);
    if (!rt) return;
    if (value === undefined) this.groups.delete(id);
    else rt.sync(this.consumersOf(k.group, value as GroupMeta));
  }

  /**
   * One JetStream API call. Reads (INFO, MSG.GET) are retried while JetStream has no answer — a leader
   * election after a node loss takes a few seconds — for up to twice the request timeout.
   */
  async api<T>(subject: string, body?: unknown): Promise<T> {
    const idempotent = subject.startsWith('STREAM.INFO.') || subject.startsWith('STREAM.MSG.GET.') || subject.startsWith('CONSUMER.INFO.');
    if (!idempotent) return this.wire.api<T>(`$JS.API.${subject}`, body);
    const deadline = performance.now() + 2 * this.timeoutMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
      try {
        return await this.wire.api<T>(`$JS.API.${subject}`, body);
      } catch (err) {
        const transient =
          err instanceof RequestTimeoutError ||
          err instanceof NoRespondersError ||
          (err instanceof JetStreamApiError && err.status === 503);
        if (!transient || this.state !== 'open' || performance.now() + delay > deadline) throw err;
        this.log.debug({ subject, err }, 'JetStream read retried');
        await sleep(delay);
      }
    }
  }

  async streamState(station: string, partition: number): Promise<StreamState> {
    const info = await this.api<{ state: StreamState }>(`STREAM.INFO.${this.names.stream(station, partition)}`);
    return info.state;
  }

  async deleteStream(name: string): Promise<void> {
    try {
      await this.api(`STREAM.DELETE.${name}`);
    } catch (err) {
      if (!isApiError(err, JsErr.STREAM_NOT_FOUND)) throw err;
    }
  }

  async deleteConsumer(stream: string, consumer: string): Promise<void> {
    try {
      await this.api(`CONSUMER.DELETE.${stream}.${consumer}`);
    } catch (err) {
      if (!isApiError(err, JsErr.CONSUMER_NOT_FOUND) && !isApiError(err, JsErr.STREAM_NOT_FOUND)) throw err;
    }
  }

  async createStream(cfg: JsStreamConfig): Promise<void> {
    try {
      await this.api(`STREAM.CREATE.${cfg.name}`, cfg);
      this.settling(cfg.name);
    } catch (err) {
      if (
        isApiError(err, JsErr.INSUFFICIENT_RESOURCES) ||
        isApiError(err, JsErr.NO_SUITABLE_PEERS) ||
        isApiError(err, JsErr.REPLICAS_NOT_SUPPORTED)
      ) {
        throw new JunctionError(
          ErrorCode.CONFIG_INVALID,
          `JetStream cannot place the station's ${cfg.num_replicas} replica(s) (are that many servers up?): ${err.message}`,
          {
            cause: err,
            issues: [{ path: 'replicas', message: err.message }],
          },
        );
      }
      if (isApiError(err) && err.status < 500 && err.errCode !== JsErr.STREAM_NAME_EXISTS) {
        throw new JunctionError(ErrorCode.CONFIG_INVALID, `JetStream refused the station's stream: ${err.message}`, {
          cause: err,
          issues: [{ path: /replica|peer/i.test(err.message) ? 'replicas' : '', message: err.message }],
        });
      }
      throw err;
    }
  }

  /** A station that exists and is ready, from the cache or (on a miss) the bucket's leader. */
  async stationMeta(name: string): Promise<StationMeta> {
    this.check();
    const key = this.names.stationKey(name);
    let m = this.meta.peek<StationMeta>(key).value;
    if (!m?.ready) m = (await this.meta.read<StationMeta>(key)).value;
    if (!m?.ready) throw new JunctionError(ErrorCode.STATION_NOT_FOUND, `station "${name}" does not exist`);
    return m;
  }

  async groupMeta(station: string, group: string): Promise<GroupMeta> {
    const key = this.names.groupKey(station, group);
    let g = this.meta.peek<GroupMeta>(key).value;
    if (!g?.ready) g = (await this.meta.read<GroupMeta>(key)).value;
    if (!g?.ready) throw new JunctionError(ErrorCode.GROUP_NOT_FOUND, `station "${station}" has no consumer group "${group}"`);
    return g;
  }

  groupNames(station: string): string[] {
    const prefix = `g.${enc(station)}.`;
    return this.meta
      .scan<GroupMeta>(prefix)
      .filter(([, g]) => g.ready)
      .map(([k]) => this.names.parseKey(k))
      .flatMap((k) => (k && k.kind === 'g' ? [k.group] : []))
      .sort();
  }

  consumersOf(group: string, gm: GroupMeta): ConsumerRef[] {
    return gm.gens.map((generation, p) => ({
      generation,
      consumer: this.names.consumer(group, generation),
      epoch: epochOf(group, gm, p, generation),
    }));
  }

  runtime(station: string, group: string, gm: GroupMeta): GroupRt {
    const id = `${station}\u0000${group}`;
    let rt = this.groups.get(id);
    if (!rt) this.groups.set(id, (rt = new GroupRt(station, group, this.consumersOf(group, gm))));
    else rt.sync(this.consumersOf(group, gm));
    return rt;
  }

  /**
   * Publishes to a stream and resolves with its PubAck. While the stream has no reachable leader (the
   * leader watch knows, or finds out when the publish stalls or gets "no responders") it rejects with
   * LeaderlessError within DOWN_WAIT_MS: `sent` false when the message never went out. "No responders" while the
   * stream does have a leader (a station created a moment ago on another node, whose leader has not
   * subscribed yet) is retried with backoff for up to the request timeout. A timeout is not retried: the
   * message may be stored.
   */
  async publishTo(
    subject: string,
    stream: string,
    what: string,
    data: Uint8Array,
    hdrs: Record<string, string> | undefined,
  ): Promise<PubAck> {
    const lw = this.leaders;
    const t: Track | undefined = lw?.track(subject, stream, what);
    const deadline = performance.now() + this.timeoutMs;
    for (let delay = 25; ; delay = Math.min(delay * 2, 500)) {
      if (t?.down) {
        // A short wait, not an instant answer: a produce loop that gets nothing but refusals must still
        // yield to the event loop (timers, the re-probe that ends "down"), and a leader found meanwhile
        // lets the message through.
        await sleep(DOWN_WAIT_MS);
        if (t.down) throw new LeaderlessError(what, t.reason, false);
      }
      let answered = false;
      let stored = false;
      const sentAt = t ? lw!.sent(t) : 0;
      try {
        const ack = await this.wire.publish(subject, data, hdrs);
        answered = true;
        stored = !ack.duplicate;
        return ack;
      } catch (err) {
        const noLeader = err instanceof NoRespondersError || (err instanceof JetStreamApiError && err.status === 503);
        answered = err instanceof JetStreamApiError;
        if (!noLeader || this.state !== 'open') throw err;
        if (t && (await lw!.confirmDown(t))) throw new LeaderlessError(what, t.reason, false);
        if (performance.now() + delay > deadline) throw err;
        await sleep(delay);
      } finally {
        if (t) lw!.settled(t, answered, sentAt, stored);
      }
    }
  }

  /**
   * When streams this store made, reconfigured or asked about were created or reconfigured (epoch ms),
   * while that is less than FIRST_ELECTION_MS ago.
   */
  readonly settlingSince = new Map<string, number>();

  /** Notes a stream's creation (now, or its `created` time as the server gave it). */
  settling(stream: string, created?: string): void {
    const at = created === undefined ? Date.now() : Date.parse(created);
    // Not settling: long created, or a server clock far ahead of ours (a time we cannot judge).
    if (Number.isNaN(at) || Math.abs(Date.now() - at) >= FIRST_ELECTION_MS) return;
    if (this.settlingSince.size >= 64)
      for (const [s, t] of this.settlingSince) if (Date.now() - t >= FIRST_ELECTION_MS) this.settlingSince.delete(s);
    if (at > (this.settlingSince.get(stream) ?? 0)) this.settlingSince.set(stream, at);
  }

  isSettling(stream: string): boolean {
    const at = this.settlingSince.get(stream);
    if (at === undefined) return false;
    if (Date.now() - at < FIRST_ELECTION_MS) return true;
    this.settlingSince.delete(stream);
    return false;
  }

  /**
   * A STREAM.INFO with a short timeout: does the stream have a leader that can store a message now? A
   * stream still settling (FIRST_ELECTION_MS) without one is `starting`: its publishes wait for it.
   */
  async probeLeader(stream: string): Promise<Verdict> {
    try {
      const info = await this.wire.api<{ cluster?: ClusterInfo; state?: { last_seq?: number }; created?: string }>(
        `$JS.API.STREAM.INFO.${stream}`,
        undefined,
        PROBE_TIMEOUT_MS,
      );
      this.settling(stream, info.created);
      const v = leaderVerdict(info.cluster, FOLLOWER_SILENT_MS);
      if (!v.down) v.lastSeq = info.state?.last_seq;
      else if (this.isSettling(stream)) v.starting = true;
      this.log.debug({ stream, cluster: info.cluster, verdict: v }, 'leader probe');
      return v;
    } catch (err) {
      const starting = this.isSettling(stream);
      if (err instanceof RequestTimeoutError)
        return { down: true, reason: `nobody answered for it within ${PROBE_TIMEOUT_MS} ms (its leader is unreachable)`, starting };
      if (err instanceof NoRespondersError) return { down: true, reason: 'no responders', starting };
      // Not found and the like: the publish answers for itself.
      if (err instanceof JetStreamApiError && err.status >= 500) return { down: true, reason: err.message, starting };
      return { down: false };
    }
  }

  /**
   * Sends acks and waits until JetStream applied them (so a getGroup right after sees them). Only the
   * last ack per consumer asks for a confirmation: a consumer takes acks in the order they were sent
   * (one connection, one route, one ack queue), so its confirmation covers the ones before it.
   */
  async ackSubjects(subjects: readonly string[], verb = '+ACK'): Promise<void> {
    if (subjects.length === 0) return;
    const body = Buffer.from(verb);
    const last = new Map<string, number>();
    subjects.forEach((s, i) => last.set(s.split('.', 4).join('.'), i));
    const confirm = new Set(last.values());
    const waits: Promise<unknown>[] = [];
    subjects.forEach((s, i) => {
      if (confirm.has(i)) waits.push(this.wire.request(s, body));
      else this.wire.send(s, body);
    });
    await Promise.all(waits);
  }
}

/**
 * A group's ack deadline and attempt limit: its own, else the station's `deadLetter` settings (a group
 * follows changes of those). Metadata from before `nonce` holds copies of both; a copy equal to the
 * station's value counts as inherited.
 */
export function groupSettings(
  st: StationMeta,
  gm: GroupMeta,
): { maxAckTimeMs: number; maxDeliveries: number; ownAckTime: boolean; ownDeliveries: boolean } {
  const dl = st.config.deadLetter;
  const legacy = gm.nonce === undefined;
  const ownAckTime = gm.maxAckTimeMs !== undefined && !(legacy && gm.maxAckTimeMs === dl.maxAckTimeMs);
  const ownDeliveries = gm.maxDeliveries !== undefined && !(legacy && gm.maxDeliveries === dl.maxDeliveries);
  return {
    maxAckTimeMs: ownAckTime ? gm.maxAckTimeMs! : dl.maxAckTimeMs,
    maxDeliveries: ownDeliveries ? gm.maxDeliveries! : dl.maxDeliveries,
    ownAckTime,
    ownDeliveries,
  };
}

/** A station's incarnation id: stored in its metadata since ids exist, derived for metadata from before. */
export function stationIdOf(st: StationMeta): string {
  return st.id ?? legacyStationId(st.name, st.createdAt);
}
