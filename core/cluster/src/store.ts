/**
 * JetStreamStore: the StationStore contract on NATS JetStream (nats-server 2.9+). Every Junction node
 * pointed at the same NATS cluster and prefix sees the same stations, messages and groups. The mapping
 * and every difference from the embedded engine are in README.md; the short form:
 *
 * - a partition is a stream (`<PREFIX>_<station>_<p>`): its stream sequence is the offset;
 * - a consumer group is one durable pull consumer per partition; deliveries are pulled with our own
 *   pull requests (batch, max_bytes, no_wait, expires) and settled through their ack reply subjects;
 * - max deliveries, dead-lettering and replay-to-one-group are done here (JetStream's max_deliver would
 *   drop the message from the consumer without a trace in 2.9);
 * - metadata lives in the KV bucket `<prefix>-meta` (meta.ts).
 *
 * This file is the lifecycle (open, close) and the public face; each section of the contract lives in
 * its own file as functions over the shared StoreCore (core.ts): stations.ts, claims.ts (msgId dedup
 * across partitions), produce.ts (produce and read), groups.ts, fetch.ts, settle.ts, dead-letters.ts.
 */
import type { NatsConnection, ConnectionOptions } from '@nats-io/transport-node';
import type {
  DeadLetterDetails,
  Delivery,
  FetchOptions,
  GroupInfo,
  GroupOptions,
  ListOptions,
  MessageInput,
  ProduceResult,
  ReadOptions,
  ReplayOptions,
  ReplayResult,
  StationInfo,
  StationStore,
  StoreEvent,
  StoredMessage,
} from '@junction/broker';
import type { SettleOutcome, StartPosition } from '@junction/protocol';
import { pino, type Logger } from 'pino';
import type { ClusterStationConfigInput, ClusterStationPatch } from './config.js';
import { asJunctionError, ErrorCode, JunctionError, unavailable } from './errors.js';
import { Meta, type StationMeta } from './meta.js';
import { clusterSize, connectUntil, isStarting, openFailed, retryWhileStarting, waitForJetStream } from './startup.js';
import { dec, enc, Names } from './names.js';
import { LeaderWatch } from './leaders.js';
import { LeaderlessError, Wire } from './wire.js';
import { FIRST_ELECTION_MS, OVERTAKEN_MS, PROBE_TIMEOUT_MS, RAFT_DESYNC_FIXED, REPROBE_MS, StoreCore, TICK_MS, sleep } from './core.js';
import * as stations from './stations.js';
import * as produce from './produce.js';
import * as groups from './groups.js';
import * as fetching from './fetch.js';
import * as settle from './settle.js';
import * as dead from './dead-letters.js';
import { tick } from './dead-letters.js';
import { releaseIdleCarry } from './fetch.js';

export interface JetStreamStoreOptions {
  /** NATS server URLs (`nats://host:port`); several for a cluster. */
  servers: string | string[];
  /**
   * Replicas of new stations (and of the metadata bucket) unless a station sets its own, 1–5. Default
   * min(3, the servers of the NATS cluster) as the store sees them at open (the servers it was given and
   * the ones they advertise): 3 on a cluster of three or more, 1 on a single server.
   */
  replicas?: number | undefined;
  user?: string | undefined;
  pass?: string | undefined;
  token?: string | undefined;
  /** TLS options as nats.js takes them (`{ caFile, certFile, keyFile }`), or true for TLS with system CAs. */
  tls?: ConnectionOptions['tls'] | true | undefined;
  /** Connection name shown by nats-server (`/connz`). Default `junction`. */
  name?: string | undefined;
  logger?: Logger | undefined;
  /**
   * Namespace of everything this store creates: streams `<PREFIX>_…`, subjects `<prefix>.…`, the KV
   * bucket `<prefix>-meta`. Stores with the same prefix on the same NATS share stations. Default
   * `junction`. Lower case letters, digits and `_`.
   */
  prefix?: string | undefined;
  /** Timeout of one JetStream request. Default 10 s (a leader election takes a few). */
  requestTimeoutMs?: number | undefined;
  /**
   * How long open() waits for NATS, for JetStream and for the metadata bucket, retrying with backoff while
   * the servers start (a log line says what it waits for). Default 60 s.
   */
  openTimeoutMs?: number | undefined;
  /**
   * Publishes to a partition in flight with no answer for this long make the store check that the
   * partition still has a reachable leader; without one, produce answers its messages at once
   * (NOT_ACKNOWLEDGED / UNAVAILABLE) instead of after `requestTimeoutMs`, until a leader is back. Default
   * 1500 ms; 0 turns the check off. See README, "Produce during a leader election".
   */
  publishStallMs?: number | undefined;
}

/** a.b.c (a release, maybe with a suffix) older than `than`. */
function olderThan(version: string, than: readonly number[]): boolean {
  const v = version
    .split(/[.-]/)
    .slice(0, 3)
    .map((x) => Number.parseInt(x, 10));
  for (let i = 0; i < than.length; i++) {
    const a = v[i] ?? 0;
    if (!Number.isFinite(a)) return false;
    if (a !== than[i]) return a < than[i]!;
  }
  return false;
}

export class JetStreamStore implements StationStore {
  readonly names: Names;
  private readonly c: StoreCore;

  constructor(private readonly options: JetStreamStoreOptions) {
    this.names = new Names(options.prefix ?? 'junction');
    const log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'jetstream-store', prefix: this.names.prefix });
    // Replicas: settled at open, when the cluster's size is known.
    this.c = new StoreCore(this.names, log, options.replicas ?? 1, options.requestTimeoutMs ?? 10_000);
  }

  // ---------------------------------------------------------------- lifecycle

  async open(): Promise<void> {
    if (this.c.state !== 'new') throw new JunctionError(ErrorCode.INTERNAL, 'store already opened');
    this.c.state = 'opening';
    const o = this.options;
    const openTimeout = o.openTimeoutMs ?? 60_000;
    const deadline = performance.now() + openTimeout;
    const servers = [o.servers].flat();
    try {
      this.c.nc = await connectUntil(
        {
          servers,
          name: o.name ?? 'junction',
          ...(o.user !== undefined && { user: o.user }),
          ...(o.pass !== undefined && { pass: o.pass }),
          ...(o.token !== undefined && { token: o.token }),
          ...(o.tls !== undefined && { tls: o.tls === true ? {} : o.tls }),
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          noAsyncTraces: true,
        },
        deadline,
        this.c.log,
        servers.join(','),
      );
    } catch (err) {
      this.c.state = 'closed';
      throw unavailable(`cannot connect to NATS at ${servers.join(',')}`, err);
    }
    this.c.maxPayload = this.c.nc.info?.max_payload ?? this.c.maxPayload;
    this.c.wire = new Wire(this.c.nc, this.c.timeoutMs);
    this.c.wire.onOrphan = (m) => fetching.adoptOrphan(this.c, m);
    const stallMs = o.publishStallMs ?? 1_500;
    if (stallMs > 0) {
      this.c.leaders = new LeaderWatch({
        stallMs,
        probeTimeoutMs: PROBE_TIMEOUT_MS,
        reprobeMs: REPROBE_MS,
        overtakenMs: OVERTAKEN_MS,
        firstElectionMs: FIRST_ELECTION_MS,
        probe: (stream) => this.c.probeLeader(stream),
        onDown: (t) => {
          const n = this.c.wire.failWhere(t.subject, () => new LeaderlessError(t.what, t.reason, true));
          if (n > 0)
            this.c.log.warn(
              { stream: t.stream, publishes: n },
              'publishes in flight to a stream without a reachable leader answered NOT_ACKNOWLEDGED',
            );
        },
        onLost: (t, sentBefore, reason) => {
          const n = this.c.wire.failWhere(t.subject, () => new LeaderlessError(t.what, reason, true), sentBefore);
          if (n > 0)
            this.c.log.warn({ stream: t.stream, publishes: n }, 'publishes in flight to a former leader answered NOT_ACKNOWLEDGED');
        },
        onResend: (t, sentBefore) => {
          const n = this.c.wire.resendWhere(t.subject, sentBefore);
          if (n > 0)
            this.c.log.warn(
              { stream: t.stream, publishes: n },
              'publishes with a msgId unanswered while the stream has a leader sent again',
            );
        },
        log: this.c.log,
      });
      this.c.leaderTimer = setInterval(() => this.c.leaders?.scan(), TICK_MS);
      this.c.leaderTimer.unref();
    }
    void this.watchStatus(this.c.nc);
    try {
      await waitForJetStream(this.c.wire, deadline, this.c.log, servers.join(','));
    } catch (err) {
      await this.shutdown();
      throw openFailed(`JetStream at ${servers.join(',')} did not answer within ${openTimeout} ms`, err);
    }
    // The default replicas of new stations: min(3, servers in the cluster) unless configured.
    this.clusterServers = clusterSize(this.c.nc, servers);
    this.c.replicas = o.replicas ?? Math.min(3, this.clusterServers);
    this.c.meta = new Meta(this.c.nc, this.c.wire, this.c.names, this.c.replicas, this.c.log);
    this.c.meta.onChange((key, value) => this.c.onMetaChange(key, value));
    try {
      await this.c.meta.open(openTimeout, deadline);
    } catch (err) {
      await this.shutdown();
      throw isStarting(err)
        ? openFailed(`the metadata bucket could not be opened within ${openTimeout} ms`, err)
        : asJunctionError('cannot open the metadata bucket', err);
    }
    this.c.state = 'open';
    this.c.ticker = setInterval(() => {
      void tick(this.c);
      releaseIdleCarry(this.c);
    }, TICK_MS);
    this.c.ticker.unref();
    this.c.log.info(
      {
        servers: o.servers,
        clusterServers: this.clusterServers,
        replicas: this.c.replicas,
        replicasConfigured: o.replicas !== undefined,
        maxPayload: this.c.maxPayload,
      },
      'jetstream store open',
    );
    this.warnUnderReplicated();
    const version = this.c.nc.info?.version;
    if (version !== undefined && olderThan(version, RAFT_DESYNC_FIXED)) {
      this.c.log.warn(
        { version, fixedIn: RAFT_DESYNC_FIXED.join('.') },
        'nats-server before 2.10.23: after a network cut, a replica of a replicated stream can keep messages its old leader never replicated and serve them when it leads again (README, "Network cut of one node")',
      );
    }
  }

  /** Servers in the NATS cluster as this node saw them at open (startup.ts `clusterSize`). */
  private clusterServers = 1;

  /**
   * Replicas of new stations that do not set their own: the `replicas` option, else min(3, the servers
   * of the NATS cluster) as seen at open. Valid once open.
   */
  get defaultReplicas(): number {
    return this.c.replicas;
  }

  /** Timeout of one JetStream request (`requestTimeoutMs`). */
  get requestTimeoutMs(): number {
    return this.c.timeoutMs;
  }

  /**
   * Warns (once, at open) of every station that keeps fewer replicas than the cluster could give it
   * (min(3, its servers)): losing the server that holds its only copy makes its messages unavailable.
   */
  private warnUnderReplicated(): void {
    const could = Math.min(3, this.clusterServers);
    for (const [, st] of this.c.meta.scan<StationMeta>('s.')) {
      if (!st.ready || st.config.replicas >= could) continue;
      this.c.log.warn(
        { station: st.name, replicas: st.config.replicas, clusterServers: this.clusterServers, couldHave: could },
        `station "${st.name}" keeps ${st.config.replicas} replica(s) on a ${this.clusterServers}-server NATS cluster: losing a server that holds it makes its messages unavailable (or loses them); raise it with PATCH /v1/stations/${st.name} {"replicas": ${could}}`,
      );
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error')
        this.c.log.warn({ status: s.type, data: (s as { server?: string }).server }, 'NATS connection');
    }
  }

  async close(): Promise<void> {
    if (this.c.state === 'closed' || this.c.state === 'new') {
      this.c.state = 'closed';
      return;
    }
    this.c.state = 'closed';
    this.c.closing.abort();
    clearInterval(this.c.ticker);
    clearInterval(this.c.leaderTimer);
    // Long polls answer empty on the abort; give them a moment to finish before the connection goes.
    await Promise.race([Promise.allSettled([...this.c.inflight]), sleep(2_000)]);
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    this.c.state = 'closed';
    clearInterval(this.c.leaderTimer);
    await this.c.meta?.close().catch(() => {});
    this.c.wire?.close();
    await this.c.nc?.close().catch(() => {});
  }

  /** The open NATS connection (the cluster placement of connector tasks shares it). */
  get connection(): NatsConnection {
    if (!this.c.nc || this.c.state !== 'open')
      throw new JunctionError(ErrorCode.STORE_CLOSED, 'the store is not open', { retryable: true });
    return this.c.nc;
  }

  /**
   * Connector definitions in the metadata bucket (`c.<connector>`), for the connector runtime of every
   * node: the cached values, writes, and a listener for changes from any node.
   */
  connectorMeta(): {
    list(): unknown[];
    put(name: string, value: unknown): Promise<void>;
    remove(name: string): Promise<void>;
    onChange(listener: (name: string, value: unknown) => void): () => void;
  } {
    const key = (name: string): string => `c.${enc(name)}`;
    return {
      list: () => this.c.meta.scan<unknown>('c.').map(([, v]) => v),
      put: async (name, value) => {
        await this.c.meta.set(key(name), value);
      },
      remove: (name) => this.c.meta.delete(key(name)),
      onChange: (listener) =>
        this.c.meta.onChange((k, v) => {
          if (k.startsWith('c.')) listener(dec(k.slice(2)), v);
        }),
    };
  }

  /**
   * Source connector positions in the metadata bucket (`o.<connector>`): a read from the bucket's
   * stream leader, compare-and-set on the key revision (undefined: the revision moved on), delete.
   * `ClusterPositions` (placement.ts) adds the lease fencing on top.
   */
  positionMeta(): {
    read(name: string): Promise<{ rev: number; value: unknown }>;
    peek(name: string): { rev: number; value: unknown };
    update(name: string, value: unknown, rev: number): Promise<number | undefined>;
    remove(name: string): Promise<void>;
  } {
    const key = (name: string): string => `o.${enc(name)}`;
    return {
      read: (name) => this.c.meta.read<unknown>(key(name)),
      peek: (name) => this.c.meta.peek<unknown>(key(name)),
      update: (name, value, rev) => this.c.meta.update(key(name), value, rev),
      remove: (name) => this.c.meta.delete(key(name)),
    };
  }

  /**
   * Auth state in the metadata bucket (`a.<key>`: users, tokens and sessions as one document, the JWT
   * secrets), for `@junction/auth`'s store on a cluster: a read from the bucket's stream leader,
   * compare-and-set on the key revision (undefined: the revision moved on; 0 creates), and a listener
   * for changes from any node.
   */
  authMeta(): {
    read(key: string): Promise<{ rev: number; value: unknown }>;
    update(key: string, value: unknown, rev: number): Promise<number | undefined>;
    onChange(listener: (key: string, rev: number, value: unknown) => void): () => void;
  } {
    const full = (k: string): string => `a.${enc(k)}`;
    // Right after a cluster starts the bucket's stream may have no leader yet: wait (up to 60 s) rather
    // than fail. A compare-and-set retried after a timeout that did land answers undefined (moved on).
    const patiently = <T>(what: string, run: () => Promise<T>): Promise<T> =>
      retryWhileStarting(what, performance.now() + 60_000, this.c.log, run);
    return {
      read: (k) => patiently(`reading auth ${k}`, () => this.c.meta.read<unknown>(full(k))),
      update: (k, value, rev) => patiently(`writing auth ${k}`, () => this.c.meta.update(full(k), value, rev)),
      onChange: (listener) =>
        this.c.meta.onChange((k, v) => {
          if (k.startsWith('a.')) listener(dec(k.slice(2)), this.c.meta.peek(k).rev, v);
        }),
    };
  }

  onEvent(listener: (event: StoreEvent) => void): () => void {
    return this.c.events.on(listener);
  }

  // ---------------------------------------------------------------- the contract (one file per section)

  createStation(name: string, config: ClusterStationConfigInput = {}): Promise<StationInfo> {
    return stations.createStation(this.c, name, config);
  }

  updateStation(name: string, patch: ClusterStationPatch): Promise<StationInfo> {
    return stations.updateStation(this.c, name, patch);
  }

  deleteStation(name: string): Promise<void> {
    return stations.deleteStation(this.c, name);
  }

  getStation(name: string): Promise<StationInfo> {
    return stations.getStation(this.c, name);
  }

  listStations(options?: ListOptions): Promise<StationInfo[]> {
    return stations.listStations(this.c, options);
  }

  produce(station: string, messages: readonly MessageInput[]): Promise<ProduceResult[]> {
    return produce.produce(this.c, station, messages);
  }

  read(station: string, options: ReadOptions): Promise<StoredMessage[]> {
    return produce.read(this.c, station, options);
  }

  createGroup(station: string, group: string, options: GroupOptions = {}): Promise<GroupInfo> {
    return groups.createGroup(this.c, station, group, options);
  }

  getGroup(station: string, group: string): Promise<GroupInfo> {
    return groups.getGroup(this.c, station, group);
  }

  listGroups(station: string, options?: ListOptions): Promise<GroupInfo[]> {
    return groups.listGroups(this.c, station, options);
  }

  deleteGroup(station: string, group: string): Promise<void> {
    return groups.deleteGroup(this.c, station, group);
  }

  seek(station: string, group: string, position: StartPosition): Promise<GroupInfo> {
    return groups.seek(this.c, station, group, position);
  }

  /**
   * Makes every outstanding delivery of these partitions available again now, whoever holds it (the
   * contract's optional call; groups.ts `releaseDeliveries`: a new consumer generation at the ack floor).
   */
  releaseDeliveries(station: string, group: string, partitions: readonly number[]): Promise<void> {
    return groups.releaseDeliveries(this.c, station, group, partitions);
  }

  /**
   * `options.partitions` (an extension of the contract, used by the connector runtime when this node
   * runs only some of a sink's tasks): pull only from those partitions.
   */
  fetch(station: string, group: string, options: FetchOptions & { partitions?: readonly number[] | undefined }): Promise<Delivery[]> {
    return fetching.fetch(this.c, station, group, options);
  }

  ack(station: string, group: string, deliveryIds: readonly string[]): Promise<SettleOutcome[]> {
    return settle.ack(this.c, station, group, deliveryIds);
  }

  nack(station: string, group: string, deliveryIds: readonly string[], delayMs?: number): Promise<SettleOutcome[]> {
    return settle.nack(this.c, station, group, deliveryIds, delayMs);
  }

  deadLetter(
    station: string,
    group: string,
    deliveryIds: readonly string[],
    reason?: string,
    details?: DeadLetterDetails,
  ): Promise<SettleOutcome[]> {
    return settle.deadLetter(this.c, station, group, deliveryIds, reason, details);
  }

  replayDeadLetters(station: string, options: ReplayOptions = {}): Promise<ReplayResult> {
    return dead.replayDeadLetters(this.c, station, options);
  }

  purgeDeadLetters(station: string, upToOffset?: number): Promise<number> {
    return dead.purgeDeadLetters(this.c, station, upToOffset);
  }
}
