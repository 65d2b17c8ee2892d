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
 */
import { randomUUID } from 'node:crypto';
import { connect, type Msg, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';
import {
  dlsName,
  legacyStationId,
  partitionForKey,
  StoreEventHub,
  type DeadLetterDetails,
  type Delivery,
  type FetchOptions,
  type GroupInfo,
  type GroupOptions,
  type GroupPartitionInfo,
  type MessageInput,
  type PartitionInfo,
  type ProduceResult,
  type ReadOptions,
  type ReplayOptions,
  type ReplayResult,
  type StationInfo,
  type StationStore,
  type StoreEvent,
  type StoredMessage,
} from '@junction/broker';
import { CreateGroupBody, DLS_HEADERS, REPLAY_GROUP_HEADER, StartPosition, StationName, deliveryId as makeDeliveryId, parseDeliveryId, putHeader, type SettleOutcome } from '@junction/protocol';
import { pino, type Logger } from 'pino';
import {
  ClusterStationConfigInput,
  ClusterStationPatch,
  dlsConfig,
  duplicateWindowMs,
  streamConfig,
  JS_MIN_WINDOW_MS,
  type ClusterStationConfig,
  type JsStreamConfig,
} from './config.js';
import { decodeEnvelope, encodeEnvelope } from './envelope.js';
import { asJunctionError, configInvalid, ErrorCode, isApiError, JetStreamApiError, JsErr, JunctionError, unavailable } from './errors.js';
import { Meta, type GroupMeta, type StationMeta } from './meta.js';
import { ackSubject, dec, enc, Names, parseAckSubject } from './names.js';
import { GroupRt, type Carried, type Outstanding } from './runtime.js';
import { LeaderWatch, leaderVerdict, type ClusterInfo, type Track, type Verdict } from './leaders.js';
import { LeaderlessError, NoRespondersError, RequestTimeoutError, Wire, WireClosedError, type PubAck, type PullSession } from './wire.js';

export interface JetStreamStoreOptions {
  /** NATS server URLs (`nats://host:port`); several for a cluster. */
  servers: string | string[];
  /** Replicas of new stations (and of the metadata bucket) unless a station sets its own. Default 1. */
  replicas?: 1 | 3 | 5 | undefined;
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
  /** How long open() waits for NATS and the metadata. Default 30 s. */
  openTimeoutMs?: number | undefined;
  /**
   * Publishes to a partition in flight with no answer for this long make the store check that the
   * partition still has a reachable leader; without one, produce answers its messages at once
   * (NOT_ACKNOWLEDGED / UNAVAILABLE) instead of after `requestTimeoutMs`, until a leader is back. Default
   * 1500 ms; 0 turns the check off. See README, "Produce during a leader election".
   */
  publishStallMs?: number | undefined;
}

const DLS_SUFFIX = '.dls';
const NS = 1_000_000;
/** A no-wait pull that neither answers nor ends within this long is queued behind other pulls (see sweep). */
const STUCK_PULL_MS = 1_000;
/** A carried delivery is not handed out when less than this is left of its ack deadline. */
const CARRY_MARGIN_MS = 100;
/** A no-wait pull that finds nothing this soon after this node produced to the stream waits a little (see pullInto). */
const RECENT_PRODUCE_MS = 1_000;
const REPLICA_CATCHUP_MS = 50;
/** Leader watch (leaders.ts): timeout of one probe (STREAM.INFO); how often a stream without a leader is probed again. */
const PROBE_TIMEOUT_MS = 1_000;
const REPROBE_MS = 250;
/** How long a replica may go unheard (2.9 leaders send a heartbeat every second) before it counts as gone. */
const FOLLOWER_SILENT_MS = 2_500;
/**
 * A stream created or reconfigured less than this ago is settling: its first leader may not be elected
 * yet, or the first one hands over to the group's preferred peer (seen with nats-server 2.9: a claim
 * stream answers a first claim, then nobody answers for a few seconds). The leader watch does not refuse
 * its publishes; they wait for the leader (at worst the request timeout).
 */
const FIRST_ELECTION_MS = 10_000;
/** A publish still unanswered this long after a later one to the same stream was stored went to a former leader. */
const OVERTAKEN_MS = 1_000;
/** A message for a stream known to have no leader waits this long for one before it is refused. */
const DOWN_WAIT_MS = 100;
/** nats-server releases with the raft catchup fix for divergent replicas (README, "Network cut"). */
const RAFT_DESYNC_FIXED = [2, 10, 23] as const;
/** How often last attempts past their deadline are looked for. */
const TICK_MS = 100;

interface StreamState {
  messages: number;
  bytes: number;
  first_seq: number;
  last_seq: number;
}

interface ConsumerInfo {
  delivered: { consumer_seq: number; stream_seq: number };
  ack_floor: { consumer_seq: number; stream_seq: number };
  num_ack_pending: number;
  num_redelivered: number;
  num_pending: number;
}

interface DeadItem {
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

/** Per-fetch bookkeeping: what was collected, what to settle before answering. */
interface FetchCtx {
  st: StationMeta;
  group: string;
  gm: GroupMeta;
  rt: GroupRt;
  out: Delivery[];
  bytes: number;
  maxMessages: number;
  maxBytes: number;
  /** Ack subjects of copies meant for another group (replayed dead letters): acked, never delivered. */
  skips: string[];
  dead: DeadItem[];
  /** Messages received per partition in this fetch (any kind). */
  touched: number;
  wake?: (() => void) | undefined;
  /** The partitions this fetch pulls from (all, or the `partitions` option). */
  parts: number[];
}

type Deferred = { promise: Promise<void>; resolve: () => void };
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
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

/** Junction's message size: value, key and header bytes (the embedded engine's measure). */
function messageSize(m: MessageInput): number {
  let n = m.value.length;
  if (m.key !== undefined) n += Buffer.byteLength(m.key);
  if (m.headers) for (const k in m.headers) n += Buffer.byteLength(k) + Buffer.byteLength(m.headers[k]!);
  return n;
}

/** The per-message answer of a publish that failed. */
function produceRejection(err: unknown): ProduceResult {
  if (err instanceof LeaderlessError) {
    return err.sent
      ? {
          status: 'rejected',
          code: ErrorCode.NOT_ACKNOWLEDGED,
          message: `${err.what} lost its leader with the message in flight (${err.reason}); the message may or may not be stored — retry with a msgId`,
        }
      : { status: 'rejected', code: ErrorCode.UNAVAILABLE, message: `not stored: ${err.what} has no leader right now (${err.reason}); retry` };
  }
  if (err instanceof RequestTimeoutError) return { status: 'rejected', code: ErrorCode.NOT_ACKNOWLEDGED, message: 'no store acknowledgement in time; the message may or may not be stored' };
  return { status: 'rejected', code: ErrorCode.UNAVAILABLE, message: `not stored: ${err instanceof Error ? err.message : String(err)}` };
}

/** a.b.c (a release, maybe with a suffix) older than `than`. */
function olderThan(version: string, than: readonly number[]): boolean {
  const v = version.split(/[.-]/).slice(0, 3).map((x) => Number.parseInt(x, 10));
  for (let i = 0; i < than.length; i++) {
    const a = v[i] ?? 0;
    if (!Number.isFinite(a)) return false;
    if (a !== than[i]) return a < than[i]!;
  }
  return false;
}

/** A msgId as a NATS header value: printable ASCII as is, anything else (or a leading "~") base64url-encoded. */
function headerMsgId(id: string): string {
  return /^[\x21-\x7d]+$/.test(id) && !id.startsWith('~') ? id : `~${Buffer.from(id, 'utf8').toString('base64url')}`;
}

/** RFC 3339 with nanoseconds (Go's time.Time in JSON) to ms since the epoch, truncated like the ack subject's. */
function parseTimeMs(s: string): number {
  const m = /^(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return Date.parse(s);
  return Date.parse(`${m[1]}${m[3]}`) + Number((m[2] ?? '').padEnd(3, '0').slice(0, 3));
}

export class JetStreamStore implements StationStore {
  readonly names: Names;
  private readonly log: Logger;
  private readonly replicas: number;
  private readonly timeoutMs: number;
  private nc: NatsConnection | undefined;
  private wire!: Wire;
  private meta!: Meta;
  private state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  private readonly events = new StoreEventHub(() => this.log);
  private readonly rr = new Map<string, number>();
  private readonly groups = new Map<string, GroupRt>();
  private readonly creatingGroups = new Map<string, Promise<GroupMeta>>();
  private readonly claimStreams = new Set<string>();
  private readonly closing = new AbortController();
  private readonly inflight = new Set<Promise<unknown>>();
  private ticker: NodeJS.Timeout | undefined;
  private ticking = false;
  private maxPayload = 1024 * 1024;
  /** When this node last stored a message in a stream (performance.now()): read-your-writes for no-wait pulls. */
  private readonly producedAt = new Map<string, number>();
  private leaders: LeaderWatch | undefined;
  private leaderTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: JetStreamStoreOptions) {
    this.names = new Names(options.prefix ?? 'junction');
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'jetstream-store', prefix: this.names.prefix });
    this.replicas = options.replicas ?? 1;
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
  }

  // ---------------------------------------------------------------- lifecycle

  async open(): Promise<void> {
    if (this.state !== 'new') throw new JunctionError(ErrorCode.INTERNAL, 'store already opened');
    this.state = 'opening';
    const o = this.options;
    const openTimeout = o.openTimeoutMs ?? 30_000;
    try {
      this.nc = await connect({
        servers: o.servers,
        name: o.name ?? 'junction',
        ...(o.user !== undefined && { user: o.user }),
        ...(o.pass !== undefined && { pass: o.pass }),
        ...(o.token !== undefined && { token: o.token }),
        ...(o.tls !== undefined && { tls: o.tls === true ? {} : o.tls }),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: Math.min(openTimeout, 20_000),
        noAsyncTraces: true,
      });
    } catch (err) {
      this.state = 'closed';
      throw unavailable(`cannot connect to NATS at ${String(o.servers)}`, err);
    }
    this.maxPayload = this.nc.info?.max_payload ?? this.maxPayload;
    this.wire = new Wire(this.nc, this.timeoutMs);
    const stallMs = o.publishStallMs ?? 1_500;
    if (stallMs > 0) {
      this.leaders = new LeaderWatch({
        stallMs,
        probeTimeoutMs: PROBE_TIMEOUT_MS,
        reprobeMs: REPROBE_MS,
        overtakenMs: OVERTAKEN_MS,
        firstElectionMs: FIRST_ELECTION_MS,
        probe: (stream) => this.probeLeader(stream),
        onDown: (t) => {
          const n = this.wire.failWhere(t.subject, () => new LeaderlessError(t.what, t.reason, true));
          if (n > 0) this.log.warn({ stream: t.stream, publishes: n }, 'publishes in flight to a stream without a reachable leader answered NOT_ACKNOWLEDGED');
        },
        onLost: (t, sentBefore, reason) => {
          const n = this.wire.failWhere(t.subject, () => new LeaderlessError(t.what, reason, true), sentBefore);
          if (n > 0) this.log.warn({ stream: t.stream, publishes: n }, 'publishes in flight to a former leader answered NOT_ACKNOWLEDGED');
        },
        onResend: (t, sentBefore) => {
          const n = this.wire.resendWhere(t.subject, sentBefore);
          if (n > 0) this.log.warn({ stream: t.stream, publishes: n }, 'publishes with a msgId unanswered while the stream has a leader sent again');
        },
        log: this.log,
      });
      this.leaderTimer = setInterval(() => this.leaders?.scan(), TICK_MS);
      this.leaderTimer.unref();
    }
    this.meta = new Meta(this.nc, this.wire, this.names, this.replicas, this.log);
    this.meta.onChange((key, value) => this.onMetaChange(key, value));
    void this.watchStatus(this.nc);
    try {
      await this.meta.open(openTimeout);
    } catch (err) {
      await this.shutdown();
      throw asJunctionError('cannot open the metadata bucket', err);
    }
    this.state = 'open';
    this.ticker = setInterval(() => void this.tick(), TICK_MS);
    this.ticker.unref();
    this.log.info({ servers: o.servers, replicas: this.replicas, maxPayload: this.maxPayload }, 'jetstream store open');
    const version = this.nc.info?.version;
    if (version !== undefined && olderThan(version, RAFT_DESYNC_FIXED)) {
      this.log.warn(
        { version, fixedIn: RAFT_DESYNC_FIXED.join('.') },
        'nats-server before 2.10.23: after a network cut, a replica of a replicated stream can keep messages its old leader never replicated and serve them when it leads again (README, "Network cut of one node")',
      );
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') this.log.warn({ status: s.type, data: (s as { server?: string }).server }, 'NATS connection');
    }
  }

  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'new') {
      this.state = 'closed';
      return;
    }
    this.state = 'closed';
    this.closing.abort();
    clearInterval(this.ticker);
    clearInterval(this.leaderTimer);
    // Long polls answer empty on the abort; give them a moment to finish before the connection goes.
    await Promise.race([Promise.allSettled([...this.inflight]), sleep(2_000)]);
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    this.state = 'closed';
    clearInterval(this.leaderTimer);
    await this.meta?.close().catch(() => {});
    this.wire?.close();
    await this.nc?.close().catch(() => {});
  }

  /** The open NATS connection (the cluster placement of connector tasks shares it). */
  get connection(): NatsConnection {
    if (!this.nc || this.state !== 'open') throw new JunctionError(ErrorCode.STORE_CLOSED, 'the store is not open', { retryable: true });
    return this.nc;
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
      list: () => this.meta.scan<unknown>('c.').map(([, v]) => v),
      put: async (name, value) => {
        await this.meta.set(key(name), value);
      },
      remove: (name) => this.meta.delete(key(name)),
      onChange: (listener) =>
        this.meta.onChange((k, v) => {
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
      read: (name) => this.meta.read<unknown>(key(name)),
      peek: (name) => this.meta.peek<unknown>(key(name)),
      update: (name, value, rev) => this.meta.update(key(name), value, rev),
      remove: (name) => this.meta.delete(key(name)),
    };
  }

  onEvent(listener: (event: StoreEvent) => void): () => void {
    return this.events.on(listener);
  }

  private emit(e: StoreEvent): void {
    this.events.emit(e);
  }

  private check(): void {
    if (this.state !== 'open') throw new JunctionError(ErrorCode.STORE_CLOSED, 'the store is not open', { retryable: true });
  }

  /** Runs `fn` as tracked work (close waits for it) and maps unexpected failures to JunctionErrors. */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
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

  private onMetaChange(key: string, value: unknown): void {
    const k = this.names.parseKey(key);
    if (!k || k.kind !== 'g') return;
    const id = `${k.station}\u0000${k.group}`;
    const rt = this.groups.get(id);
    if (!rt) return;
    if (value === undefined) this.groups.delete(id);
    else rt.sync(this.consumersOf(k.group, value as GroupMeta));
  }

  // ---------------------------------------------------------------- JetStream helpers

  /**
   * One JetStream API call. Reads (INFO, MSG.GET) are retried while JetStream has no answer — a leader
   * election after a node loss takes a few seconds — for up to twice the request timeout.
   */
  private async api<T>(subject: string, body?: unknown): Promise<T> {
    const idempotent = subject.startsWith('STREAM.INFO.') || subject.startsWith('STREAM.MSG.GET.') || subject.startsWith('CONSUMER.INFO.');
    if (!idempotent) return this.wire.api<T>(`$JS.API.${subject}`, body);
    const deadline = performance.now() + 2 * this.timeoutMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
      try {
        return await this.wire.api<T>(`$JS.API.${subject}`, body);
      } catch (err) {
        const transient = err instanceof RequestTimeoutError || err instanceof NoRespondersError || (err instanceof JetStreamApiError && err.status === 503);
        if (!transient || this.state !== 'open' || performance.now() + delay > deadline) throw err;
        this.log.debug({ subject, err }, 'JetStream read retried');
        await sleep(delay);
      }
    }
  }

  private async streamState(station: string, partition: number): Promise<StreamState> {
    const info = await this.api<{ state: StreamState }>(`STREAM.INFO.${this.names.stream(station, partition)}`);
    return info.state;
  }

  private async deleteStream(name: string): Promise<void> {
    try {
      await this.api(`STREAM.DELETE.${name}`);
    } catch (err) {
      if (!isApiError(err, JsErr.STREAM_NOT_FOUND)) throw err;
    }
  }

  private async deleteConsumer(stream: string, consumer: string): Promise<void> {
    try {
      await this.api(`CONSUMER.DELETE.${stream}.${consumer}`);
    } catch (err) {
      if (!isApiError(err, JsErr.CONSUMER_NOT_FOUND) && !isApiError(err, JsErr.STREAM_NOT_FOUND)) throw err;
    }
  }

  private async createStream(cfg: JsStreamConfig): Promise<void> {
    try {
      await this.api(`STREAM.CREATE.${cfg.name}`, cfg);
      this.settling(cfg.name);
    } catch (err) {
      if (isApiError(err) && err.status < 500 && err.errCode !== JsErr.STREAM_NAME_EXISTS) {
        throw new JunctionError(ErrorCode.CONFIG_INVALID, `JetStream refused the station's stream: ${err.message}`, {
          cause: err,
          issues: [{ path: /replica|peer/i.test(err.message) ? 'replicas' : '', message: err.message }],
        });
      }
      if (isApiError(err, JsErr.INSUFFICIENT_RESOURCES) || isApiError(err, JsErr.NO_SUITABLE_PEERS) || isApiError(err, JsErr.REPLICAS_NOT_SUPPORTED)) {
        throw new JunctionError(ErrorCode.CONFIG_INVALID, `JetStream cannot place the station: ${err.message}`, {
          cause: err,
          issues: [{ path: 'replicas', message: err.message }],
        });
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- metadata lookups

  /** A station that exists and is ready, from the cache or (on a miss) the bucket's leader. */
  private async stationMeta(name: string): Promise<StationMeta> {
    this.check();
    const key = this.names.stationKey(name);
    let m = this.meta.peek<StationMeta>(key).value;
    if (!m?.ready) m = (await this.meta.read<StationMeta>(key)).value;
    if (!m?.ready) throw new JunctionError(ErrorCode.STATION_NOT_FOUND, `station "${name}" does not exist`);
    return m;
  }

  private async groupMeta(station: string, group: string): Promise<GroupMeta> {
    const key = this.names.groupKey(station, group);
    let g = this.meta.peek<GroupMeta>(key).value;
    if (!g?.ready) g = (await this.meta.read<GroupMeta>(key)).value;
    if (!g?.ready) throw new JunctionError(ErrorCode.GROUP_NOT_FOUND, `station "${station}" has no consumer group "${group}"`);
    return g;
  }

  private groupNames(station: string): string[] {
    const prefix = `g.${enc(station)}.`;
    return this.meta
      .scan<GroupMeta>(prefix)
      .filter(([, g]) => g.ready)
      .map(([k]) => this.names.parseKey(k))
      .flatMap((k) => (k && k.kind === 'g' ? [k.group] : []))
      .sort();
  }

  private consumersOf(group: string, gm: GroupMeta): { generation: number; consumer: string }[] {
    return gm.gens.map((generation) => ({ generation, consumer: this.names.consumer(group, generation) }));
  }

  private runtime(station: string, group: string, gm: GroupMeta): GroupRt {
    const id = `${station}\u0000${group}`;
    let rt = this.groups.get(id);
    if (!rt) this.groups.set(id, (rt = new GroupRt(station, group, this.consumersOf(group, gm))));
    else rt.sync(this.consumersOf(group, gm));
    return rt;
  }

  // ---------------------------------------------------------------- stations

  createStation(name: string, config: ClusterStationConfigInput = {}): Promise<StationInfo> {
    return this.run('createStation', async () => {
      const n = StationName.safeParse(name);
      if (!n.success) throw configInvalid('station name', n.error, 'name');
      if (name.endsWith(DLS_SUFFIX)) throw new JunctionError(ErrorCode.STATION_RESERVED, `station names ending in "${DLS_SUFFIX}" are reserved for dead-letter stations`);
      const parsed = ClusterStationConfigInput.safeParse(config);
      if (!parsed.success) throw configInvalid('station config', parsed.error);
      const { replicas, ...rest } = parsed.data;
      const full: ClusterStationConfig = { ...rest, replicas: replicas ?? this.replicas };
      await this.createStationStreams({ name, id: randomUUID(), config: full, createdAt: Date.now(), ready: false });
      return this.info(await this.stationMeta(name));
    });
  }

  /** Claims the name in KV (STATION_EXISTS if taken), creates the streams, then marks the station ready. */
  private async createStationStreams(m: StationMeta): Promise<void> {
    const key = this.names.stationKey(m.name);
    let rev = await this.meta.create(key, m);
    if (rev === undefined) {
      // A creation that never finished (its node died) holds the name for a minute, then can be taken over.
      const cur = await this.meta.read<StationMeta>(key);
      if (cur.value && !cur.value.ready && cur.value.createdAt < Date.now() - 60_000) rev = await this.meta.update(key, m, cur.rev);
      if (rev === undefined) throw new JunctionError(ErrorCode.STATION_EXISTS, `station "${m.name}" already exists`);
    }
    try {
      await Promise.all(
        Array.from({ length: m.config.partitions }, async (_, p) => {
          const name = this.names.stream(m.name, p);
          // A stream under this name is a leftover (the name was free in KV): it must not leak old messages.
          await this.deleteStream(name);
          await this.createStream(streamConfig(name, this.names.subject(m.name, p), m.name, p, m.config));
        }),
      );
      const done = await this.meta.update(key, { ...m, ready: true }, rev);
      if (done === undefined) throw new JunctionError(ErrorCode.STATION_NOT_FOUND, `station "${m.name}" was deleted while it was being created`);
    } catch (err) {
      await this.meta.delete(key).catch(() => {});
      await Promise.allSettled(Array.from({ length: m.config.partitions }, (_, p) => this.deleteStream(this.names.stream(m.name, p))));
      throw err;
    }
  }

  updateStation(name: string, patch: ClusterStationPatch): Promise<StationInfo> {
    return this.run('updateStation', async () => {
      if (patch && typeof patch === 'object') {
        const immutable = (['partitions', 'storage'] as const).filter((k) => k in patch);
        if (immutable.length > 0) {
          await this.stationMeta(name);
          throw new JunctionError(ErrorCode.CONFIG_IMMUTABLE, `${immutable.join(' and ')} cannot change after a station is created`, {
            issues: immutable.map((k) => ({ path: k, message: 'fixed at creation' })),
          });
        }
      }
      for (let attempt = 0; ; attempt++) {
        const st = await this.stationMeta(name);
        const parsed = ClusterStationPatch.safeParse(patch);
        if (!parsed.success) throw configInvalid('station update', parsed.error);
        const p = parsed.data;
        const merged: ClusterStationConfig = {
          ...st.config,
          ...(p.retention !== undefined && { retention: p.retention }),
          ...(p.dedupWindowMs !== undefined && { dedupWindowMs: p.dedupWindowMs }),
          ...(p.maxMessageBytes !== undefined && { maxMessageBytes: p.maxMessageBytes }),
          ...(p.segmentBytes !== undefined && { segmentBytes: p.segmentBytes }),
          ...(p.fsync !== undefined && { fsync: p.fsync }),
          ...(p.replicas !== undefined && { replicas: p.replicas }),
          deadLetter: { ...st.config.deadLetter, ...p.deadLetter },
        };
        if (Boolean(merged.retention.ackBased) !== Boolean(st.config.retention.ackBased)) {
          throw new JunctionError(ErrorCode.CONFIG_IMMUTABLE, 'retention.ackBased cannot change on a JetStream station (JetStream 2.9 cannot change a stream\'s retention policy)', {
            issues: [{ path: 'retention.ackBased', message: 'fixed at creation on this engine' }],
          });
        }
        const key = this.names.stationKey(name);
        const rev = this.meta.peek<StationMeta>(key).rev;
        await this.applyStreamConfigs({ ...st, config: merged });
        if (merged.replicas !== st.config.replicas) await this.updateDlsReplicas(name, merged.replicas);
        const done = await this.meta.update(key, { ...st, config: merged }, rev);
        if (done !== undefined) return this.info({ ...st, config: merged });
        if (attempt >= 3) throw new JunctionError(ErrorCode.UNAVAILABLE, `station "${name}" keeps changing; try again`, { retryable: true });
        await this.meta.read(key);
      }
    });
  }

  private async applyStreamConfigs(st: StationMeta): Promise<void> {
    await Promise.all(
      Array.from({ length: st.config.partitions }, async (_, p) => {
        const name = this.names.stream(st.name, p);
        try {
          await this.api(`STREAM.UPDATE.${name}`, streamConfig(name, this.names.subject(st.name, p), st.name, p, st.config));
        } catch (err) {
          if (isApiError(err) && err.status < 500) {
            throw new JunctionError(ErrorCode.CONFIG_INVALID, `JetStream refused the change: ${err.message}`, { cause: err, issues: [{ path: '', message: err.message }] });
          }
          throw err;
        }
      }),
    );
    if (this.claimStreams.has(st.name) || (await this.claimStreamExists(st.name))) await this.ensureClaimStream(st, true);
  }

  private async updateDlsReplicas(origin: string, replicas: number): Promise<void> {
    const dls = this.meta.peek<StationMeta>(this.names.stationKey(dlsName(origin))).value;
    if (!dls?.ready) return;
    const next = { ...dls, config: { ...dls.config, replicas } };
    await this.applyStreamConfigs(next);
    await this.meta.set(this.names.stationKey(dls.name), next);
  }

  deleteStation(name: string): Promise<void> {
    return this.run('deleteStation', async () => {
      const st = await this.stationMeta(name);
      if (st.deadLetterOf !== undefined) {
        const origin = this.meta.peek<StationMeta>(this.names.stationKey(st.deadLetterOf)).value;
        if (origin?.ready) {
          throw new JunctionError(ErrorCode.STATION_RESERVED, `"${name}" is the dead-letter station of "${st.deadLetterOf}"; delete that station or purge its dead letters`);
        }
      }
      const doomed = [st];
      const dls = (await this.meta.read<StationMeta>(this.names.stationKey(dlsName(name)))).value;
      if (dls) doomed.push(dls);
      for (const s of doomed) {
        // KV first: from here on no node sees the station, then its groups, then the data.
        await this.meta.delete(this.names.stationKey(s.name));
        const prefix = `${enc(s.name)}.`;
        const keys = [...this.meta.scan<unknown>(`g.${prefix}`), ...this.meta.scan<unknown>(`d.${prefix}`)].map(([k]) => k);
        await Promise.all(keys.map((k) => this.meta.delete(k)));
        for (const id of this.groups.keys()) if (id.startsWith(`${s.name}\u0000`)) this.groups.delete(id);
        this.rr.delete(s.name);
        await Promise.all(Array.from({ length: s.config.partitions }, (_, p) => this.deleteStream(this.names.stream(s.name, p))));
        await this.deleteStream(this.claimStreamName(s.name));
        this.claimStreams.delete(s.name);
      }
    });
  }

  getStation(name: string): Promise<StationInfo> {
    return this.run('getStation', async () => this.info(await this.stationMeta(name)));
  }

  listStations(): Promise<StationInfo[]> {
    return this.run('listStations', async () => {
      const all = this.meta
        .scan<StationMeta>('s.')
        .map(([, m]) => m)
        .filter((m) => m.ready)
        .sort((a, b) => (a.name < b.name ? -1 : 1));
      const out = await Promise.all(
        all.map((m) =>
          this.info(m).catch((err: unknown) => {
            if (isApiError(err, JsErr.STREAM_NOT_FOUND)) return undefined; // deleted meanwhile
            throw err;
          }),
        ),
      );
      return out.filter((i): i is StationInfo => i !== undefined);
    });
  }

  private async info(st: StationMeta): Promise<StationInfo> {
    const partitions = await Promise.all(
      Array.from({ length: st.config.partitions }, async (_, p): Promise<PartitionInfo> => {
        const s = await this.streamState(st.name, p);
        return { partition: p, firstOffset: s.messages === 0 ? s.last_seq + 1 : s.first_seq, nextOffset: s.last_seq + 1, messages: s.messages, bytes: s.bytes };
      }),
    );
    return {
      name: st.name,
      id: stationIdOf(st),
      config: st.config,
      createdAt: st.createdAt,
      ...(st.deadLetterOf !== undefined && { deadLetterOf: st.deadLetterOf }),
      partitions,
      messages: partitions.reduce((n, p) => n + p.messages, 0),
      bytes: partitions.reduce((n, p) => n + p.bytes, 0),
      groups: this.groupNames(st.name),
    };
  }

  // ---------------------------------------------------------------- dedup claims

  /*
   * JetStream dedups per stream; a station with several partitions is several streams, and the
   * contract says a msgId is a duplicate anywhere in the station, whatever the key. So a msgId'd message
   * first claims its id on the station's claim stream (`<PREFIX>_<station>_ids`, one small message per
   * id, Nats-Msg-Id = the id, payload = the partition): a new claim picks the partition, a duplicate claim
   * names the partition of the first, and the message then goes there with the same Nats-Msg-Id, where
   * the partition's own dedup answers with the original offset. One-partition stations need no claims.
   */

  private claimStreamName(station: string): string {
    return `${this.names.streamPrefix}_${enc(station)}_ids`;
  }

  private async claimStreamExists(station: string): Promise<boolean> {
    try {
      await this.api(`STREAM.INFO.${this.claimStreamName(station)}`);
      return true;
    } catch (err) {
      if (isApiError(err, JsErr.STREAM_NOT_FOUND)) return false;
      throw err;
    }
  }

  private async ensureClaimStream(st: StationMeta, update = false): Promise<void> {
    const window = duplicateWindowMs(st.config);
    const cfg: JsStreamConfig = {
      ...streamConfig(this.claimStreamName(st.name), `${this.names.prefix}.${enc(st.name)}.ids`, st.name, -1, st.config),
      description: `Junction station ${st.name}: msgId claims`,
      retention: 'limits',
      max_msgs: -1,
      max_bytes: -1,
      max_age: Math.max(JS_MIN_WINDOW_MS, window) * NS,
      duplicate_window: window * NS,
    };
    if (update) {
      await this.api(`STREAM.UPDATE.${cfg.name}`, cfg);
      this.settling(cfg.name);
    } else {
      try {
        await this.createStream(cfg);
      } catch (err) {
        // Another node created it with another window a moment ago: it exists, which is all a claim needs.
        if (!isApiError(err, JsErr.STREAM_NAME_EXISTS)) throw err;
      }
    }
    this.claimStreams.add(st.name);
  }

  /**
   * This node's first claim on a station: the claim stream usually exists (another node made it). Asked
   * of the stream itself (its leader answers), not created right away: a create goes to the meta leader,
   * which may be the node that is unreachable right now. No answer in time: the claim is published all
   * the same (its own leader check answers for it).
   */
  private async knowClaimStream(st: StationMeta): Promise<void> {
    try {
      const info = await this.wire.api<{ created?: string }>(`$JS.API.STREAM.INFO.${this.claimStreamName(st.name)}`, undefined, PROBE_TIMEOUT_MS);
      this.settling(this.claimStreamName(st.name), info.created);
      this.claimStreams.add(st.name);
    } catch (err) {
      if (isApiError(err, JsErr.STREAM_NOT_FOUND)) await this.ensureClaimStream(st);
      else if (!(err instanceof RequestTimeoutError || err instanceof NoRespondersError || (err instanceof JetStreamApiError && err.status >= 500))) throw err;
    }
  }

  /** The partition a msgId'd message goes to: the first claim's. */
  private async claim(st: StationMeta, msgId: string, candidate: number): Promise<number> {
    if (!this.claimStreams.has(st.name)) await this.knowClaimStream(st);
    const subject = `${this.names.prefix}.${enc(st.name)}.ids`;
    const ack = await this.publishTo(subject, this.claimStreamName(st.name), `the msgId claims of station "${st.name}"`, Buffer.from(String(candidate)), {
      'Nats-Msg-Id': headerMsgId(msgId),
    });
    if (!ack.duplicate) return candidate;
    const got = await this.api<{ message: { data?: string } }>(`STREAM.MSG.GET.${this.claimStreamName(st.name)}`, { seq: ack.seq });
    const p = Number(Buffer.from(got.message.data ?? '', 'base64').toString());
    return Number.isInteger(p) && p >= 0 && p < st.config.partitions ? p : candidate;
  }

  // ---------------------------------------------------------------- produce and read

  produce(station: string, messages: readonly MessageInput[]): Promise<ProduceResult[]> {
    return this.run('produce', async () => this.produceTo(await this.stationMeta(station), messages, false));
  }

  private async produceTo(st: StationMeta, messages: readonly MessageInput[], internal: boolean): Promise<ProduceResult[]> {
    const { config } = st;
    const P = config.partitions;
    const dedup = config.dedupWindowMs > 0;
    const claims = dedup && P > 1;
    const results: ProduceResult[] = new Array(messages.length);
    let bytes = 0;
    let stored = 0;
    const work: Promise<void>[] = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const size = messageSize(m);
      if (!internal && size > config.maxMessageBytes) {
        results[i] = { status: 'rejected', code: ErrorCode.MESSAGE_TOO_LARGE, message: `message is ${size} bytes; the station allows ${config.maxMessageBytes}` };
        continue;
      }
      const data = encodeEnvelope(m);
      // Subject, reply subject and the Nats-Msg-Id header ride along in the same NATS message.
      if (data.length + 512 > this.maxPayload) {
        results[i] = { status: 'rejected', code: ErrorCode.MESSAGE_TOO_LARGE, message: `message is ${data.length} bytes framed; the NATS servers allow ${this.maxPayload} (max_payload)` };
        continue;
      }
      const msgId = dedup && m.msgId !== undefined ? m.msgId : undefined;
      // A message without a key may go to any partition: not to one known to have no leader right now.
      const candidate = m.key !== undefined ? partitionForKey(m.key, P) : this.withLeader(st.name, this.nextRr(st.name, P), P);
      const valueBytes = m.value.length;
      const send = async (): Promise<void> => {
        try {
          const p = msgId !== undefined && claims ? await this.claim(st, msgId, candidate) : candidate;
          const ack = await this.publishTo(
            this.names.subject(st.name, p),
            this.names.stream(st.name, p),
            `partition ${p} of station "${st.name}"`,
            data,
            msgId === undefined ? undefined : { 'Nats-Msg-Id': headerMsgId(msgId) },
          );
          if (ack.duplicate) results[i] = { status: 'duplicate', partition: p, offset: ack.seq };
          else {
            this.producedAt.set(this.names.stream(st.name, p), performance.now());
            results[i] = { status: 'stored', partition: p, offset: ack.seq };
            stored++;
            bytes += valueBytes;
          }
        } catch (err) {
          if (err instanceof WireClosedError) throw err;
          results[i] = produceRejection(err);
        }
      };
      work.push(send());
    }
    await Promise.all(work);
    if (stored > 0) this.emit({ type: 'produced', station: st.name, messages: stored, bytes });
    return results;
  }

  private nextRr(station: string, partitions: number): number {
    const n = this.rr.get(station) ?? 0;
    this.rr.set(station, n + 1);
    return n % partitions;
  }

  /** `candidate`, or the next partition after it not known to be without a leader (candidate if all are). */
  private withLeader(station: string, candidate: number, partitions: number): number {
    if (!this.leaders) return candidate;
    for (let k = 0; k < partitions; k++) {
      const p = (candidate + k) % partitions;
      if (!this.leaders.isDown(this.names.subject(station, p))) return p;
    }
    return candidate;
  }

  /**
   * Publishes to a stream and resolves with its PubAck. While the stream has no reachable leader (the
   * leader watch knows, or finds out when the publish stalls or gets "no responders") it rejects with
   * LeaderlessError within DOWN_WAIT_MS: `sent` false when the message never went out. "No responders" while the
   * stream does have a leader (a station created a moment ago on another node, whose leader has not
   * subscribed yet) is retried with backoff for up to the request timeout. A timeout is not retried: the
   * message may be stored.
   */
  private async publishTo(subject: string, stream: string, what: string, data: Uint8Array, hdrs: Record<string, string> | undefined): Promise<PubAck> {
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
  private readonly settlingSince = new Map<string, number>();

  /** Notes a stream's creation (now, or its `created` time as the server gave it). */
  private settling(stream: string, created?: string): void {
    const at = created === undefined ? Date.now() : Date.parse(created);
    // Not settling: long created, or a server clock far ahead of ours (a time we cannot judge).
    if (Number.isNaN(at) || Math.abs(Date.now() - at) >= FIRST_ELECTION_MS) return;
    if (this.settlingSince.size >= 64) for (const [s, t] of this.settlingSince) if (Date.now() - t >= FIRST_ELECTION_MS) this.settlingSince.delete(s);
    if (at > (this.settlingSince.get(stream) ?? 0)) this.settlingSince.set(stream, at);
  }

  private isSettling(stream: string): boolean {
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
  private async probeLeader(stream: string): Promise<Verdict> {
    try {
      const info = await this.wire.api<{ cluster?: ClusterInfo; state?: { last_seq?: number }; created?: string }>(`$JS.API.STREAM.INFO.${stream}`, undefined, PROBE_TIMEOUT_MS);
      this.settling(stream, info.created);
      const v = leaderVerdict(info.cluster, FOLLOWER_SILENT_MS);
      if (!v.down) v.lastSeq = info.state?.last_seq;
      else if (this.isSettling(stream)) v.starting = true;
      this.log.debug({ stream, cluster: info.cluster, verdict: v }, 'leader probe');
      return v;
    } catch (err) {
      const starting = this.isSettling(stream);
      if (err instanceof RequestTimeoutError) return { down: true, reason: `nobody answered for it within ${PROBE_TIMEOUT_MS} ms (its leader is unreachable)`, starting };
      if (err instanceof NoRespondersError) return { down: true, reason: 'no responders', starting };
      // Not found and the like: the publish answers for itself.
      if (err instanceof JetStreamApiError && err.status >= 500) return { down: true, reason: err.message, starting };
      return { down: false };
    }
  }

  read(station: string, options: ReadOptions): Promise<StoredMessage[]> {
    return this.run('read', async () => {
      const st = await this.stationMeta(station);
      const { partition } = options;
      if (!Number.isInteger(partition) || partition < 0 || partition >= st.config.partitions) {
        throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${station}" has no partition ${partition} (it has ${st.config.partitions})`);
      }
      return this.readRange(st, partition, options.fromOffset, options.limit, options.maxBytes ?? 64 * 1024 * 1024);
    });
  }

  /** Reads from the stream leader (STREAM.MSG.GET, pipelined); skips offsets retention removed. */
  private async readRange(st: StationMeta, partition: number, fromOffset: number | undefined, limit: number, maxBytes: number, toOffset?: number): Promise<StoredMessage[]> {
    const s = await this.streamState(st.name, partition);
    const first = s.messages === 0 ? s.last_seq + 1 : s.first_seq;
    let seq = Math.max(fromOffset ?? first, first);
    const last = Math.min(s.last_seq, toOffset ?? Infinity);
    const stream = this.names.stream(st.name, partition);
    const out: StoredMessage[] = [];
    let bytes = 0;
    while (seq <= last && out.length < limit) {
      const n = Math.min(256, limit - out.length, last - seq + 1);
      const seqs = Array.from({ length: n }, (_, i) => seq + i);
      const got = await Promise.all(seqs.map((q) => this.getMessage(stream, q)));
      for (let i = 0; i < got.length; i++) {
        const g = got[i];
        if (!g) continue;
        const env = decodeEnvelope(g.data);
        if (out.length > 0 && bytes + env.value.length > maxBytes) return out;
        bytes += env.value.length;
        out.push({ station: st.name, partition, offset: seqs[i]!, timestamp: g.timestamp, key: env.key, headers: env.headers, value: env.value });
        if (out.length >= limit) return out;
      }
      seq += n;
    }
    return out;
  }

  private async getMessage(stream: string, seq: number): Promise<{ data: Buffer; timestamp: number } | undefined> {
    try {
      const r = await this.api<{ message: { data?: string; time: string } }>(`STREAM.MSG.GET.${stream}`, { seq });
      return { data: Buffer.from(r.message.data ?? '', 'base64'), timestamp: parseTimeMs(r.message.time) };
    } catch (err) {
      if (isApiError(err, JsErr.NO_MESSAGE_FOUND)) return undefined;
      throw err;
    }
  }

  // ---------------------------------------------------------------- groups

  createGroup(station: string, group: string, options: GroupOptions = {}): Promise<GroupInfo> {
    return this.run('createGroup', async () => {
      const st = await this.stationMeta(station);
      const gm = await this.newGroup(st, group, options);
      return this.groupInfo(st, group, gm);
    });
  }

  private async newGroup(st: StationMeta, group: string, options: GroupOptions): Promise<GroupMeta> {
    const n = StationName.safeParse(group);
    if (!n.success) throw configInvalid('group name', n.error, 'group');
    const parsed = CreateGroupBody.safeParse(options);
    if (!parsed.success) throw configInvalid('group options', parsed.error);
    const o = parsed.data;
    if (o.start.type === 'offset' && o.start.partition !== undefined && o.start.partition >= st.config.partitions) {
      throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${st.name}" has no partition ${o.start.partition}`);
    }
    const key = this.names.groupKey(st.name, group);
    const gm: GroupMeta = {
      createdAt: Date.now(),
      maxAckTimeMs: o.maxAckTimeMs ?? st.config.deadLetter.maxAckTimeMs,
      maxDeliveries: o.maxDeliveries ?? st.config.deadLetter.maxDeliveries,
      gens: Array.from({ length: st.config.partitions }, () => 1),
      ready: false,
    };
    const rev = await this.meta.create(key, gm);
    if (rev === undefined) throw new JunctionError(ErrorCode.GROUP_EXISTS, `station "${st.name}" already has a consumer group "${group}"`);
    try {
      const starts = await this.positions(st, o.start);
      await Promise.all(starts.map((start, p) => this.createConsumer(st, group, p, 1, gm, start ?? { deliver_policy: 'all' })));
      const ready = { ...gm, ready: true };
      if ((await this.meta.update(key, ready, rev)) === undefined) throw new JunctionError(ErrorCode.GROUP_NOT_FOUND, `group "${group}" was deleted while it was being created`);
      await this.meta.delete(this.names.deadKey(st.name, group)).catch(() => {});
      return ready;
    } catch (err) {
      await this.meta.delete(key).catch(() => {});
      await Promise.allSettled(gm.gens.map((g, p) => this.deleteConsumer(this.names.stream(st.name, p), this.names.consumer(group, g))));
      throw err;
    }
  }

  /** JetStream deliver settings per partition for a start position; undefined leaves a partition alone. */
  private async positions(st: StationMeta, pos: StartPosition): Promise<(Record<string, unknown> | undefined)[]> {
    const P = st.config.partitions;
    return Promise.all(
      Array.from({ length: P }, async (_, p): Promise<Record<string, unknown> | undefined> => {
        switch (pos.type) {
          case 'earliest':
            return { deliver_policy: 'all' };
          case 'latest':
            return { deliver_policy: 'new' };
          case 'timestamp':
            return { deliver_policy: 'by_start_time', opt_start_time: new Date(pos.timestamp).toISOString() };
          case 'offset': {
            if (pos.partition !== undefined && pos.partition !== p) return undefined;
            const s = await this.streamState(st.name, p);
            const first = s.messages === 0 ? s.last_seq + 1 : s.first_seq;
            return { deliver_policy: 'by_start_sequence', opt_start_seq: Math.min(Math.max(pos.offset, first), s.last_seq + 1) };
          }
        }
      }),
    );
  }

  private async createConsumer(st: StationMeta, group: string, p: number, generation: number, gm: GroupMeta, start: Record<string, unknown>): Promise<void> {
    const stream = this.names.stream(st.name, p);
    const durable = this.names.consumer(group, generation);
    await this.api(`CONSUMER.DURABLE.CREATE.${stream}.${durable}`, {
      stream_name: stream,
      config: {
        durable_name: durable,
        description: `Junction group ${group} of ${st.name}, partition ${p}`,
        ack_policy: 'explicit',
        ack_wait: gm.maxAckTimeMs * NS,
        // Max deliveries are counted here, not by JetStream: 2.9 drops a message that reaches max_deliver
        // from the consumer without acking it, which would stall the ack floor and, with interest
        // retention, keep the message forever. See README.
        max_deliver: -1,
        max_ack_pending: -1,
        max_waiting: 4096,
        replay_policy: 'instant',
        ...start,
      },
    });
  }

  getGroup(station: string, group: string): Promise<GroupInfo> {
    return this.run('getGroup', async () => {
      const st = await this.stationMeta(station);
      return this.groupInfo(st, group, await this.groupMeta(station, group));
    });
  }

  listGroups(station: string): Promise<GroupInfo[]> {
    return this.run('listGroups', async () => {
      const st = await this.stationMeta(station);
      const out: GroupInfo[] = [];
      for (const g of this.groupNames(station)) {
        try {
          out.push(await this.groupInfo(st, g, await this.groupMeta(station, g)));
        } catch (err) {
          if (!(err instanceof JunctionError && err.code === ErrorCode.GROUP_NOT_FOUND)) throw err;
        }
      }
      return out;
    });
  }

  private async groupInfo(st: StationMeta, group: string, gm: GroupMeta): Promise<GroupInfo> {
    const rt = this.runtime(st.name, group, gm);
    const now = Date.now();
    const partitions = await Promise.all(
      gm.gens.map(async (gen, p): Promise<GroupPartitionInfo> => {
        const stream = this.names.stream(st.name, p);
        const [ci, s] = await Promise.all([this.api<ConsumerInfo>(`CONSUMER.INFO.${stream}.${this.names.consumer(group, gen)}`), this.streamState(st.name, p)]);
        const first = s.messages === 0 ? s.last_seq + 1 : s.first_seq;
        // What this node knows to be settled is forgotten (acks from other nodes move the floor too).
        const part = rt.parts[p];
        if (part) for (const o of part.outstanding.keys()) if (o <= ci.ack_floor.stream_seq) part.outstanding.delete(o);
        const queued = Math.min(rt.queued(p, now), ci.num_ack_pending);
        // Undelivered messages from the stream leader's state, not the consumer's num_pending: the consumer
        // leader counts on its own replica, which may not have applied the latest produce yet. Retention
        // removes only below first_seq, and interest retention nothing this group has not acked.
        const undelivered = Math.max(0, s.last_seq - Math.max(ci.delivered.stream_seq, first - 1));
        return {
          partition: p,
          nextOffset: Math.max(ci.delivered.stream_seq + 1, first),
          ackFloor: Math.max(ci.ack_floor.stream_seq + 1, first),
          lag: undelivered + ci.num_ack_pending,
          pending: ci.num_ack_pending - queued,
          redeliveryQueued: queued,
          // TODO(cluster): count what retention removed before the group settled it.
          lostToRetention: 0,
        };
      }),
    );
    const dead = this.meta.peek<{ n: number }>(this.names.deadKey(st.name, group)).value?.n ?? 0;
    return {
      station: st.name,
      group,
      createdAt: gm.createdAt,
      maxAckTimeMs: gm.maxAckTimeMs,
      maxDeliveries: gm.maxDeliveries,
      partitions,
      lag: partitions.reduce((n, p) => n + p.lag, 0),
      pending: partitions.reduce((n, p) => n + p.pending, 0),
      redeliveries: rt.redeliveries,
      deadLettered: dead,
      lostToRetention: partitions.reduce((n, p) => n + p.lostToRetention, 0),
    };
  }

  deleteGroup(station: string, group: string): Promise<void> {
    return this.run('deleteGroup', async () => {
      await this.stationMeta(station);
      const gm = await this.groupMeta(station, group);
      await this.meta.delete(this.names.groupKey(station, group));
      await this.meta.delete(this.names.deadKey(station, group)).catch(() => {});
      this.groups.delete(`${station}\u0000${group}`);
      await Promise.all(gm.gens.map((g, p) => this.deleteConsumer(this.names.stream(station, p), this.names.consumer(group, g))));
    });
  }

  /** The group for a fetch: created at earliest on first use; concurrent first fetches share one creation. */
  private async groupForFetch(st: StationMeta, group: string): Promise<GroupMeta> {
    const key = this.names.groupKey(st.name, group);
    const cached = this.meta.peek<GroupMeta>(key).value;
    if (cached?.ready) return cached;
    const id = `${st.name}\u0000${group}`;
    let p = this.creatingGroups.get(id);
    if (!p) {
      p = (async () => {
        for (let attempt = 0; ; attempt++) {
          const cur = (await this.meta.read<GroupMeta>(key)).value;
          if (cur?.ready) return cur;
          if (cur === undefined) {
            try {
              return await this.newGroup(st, group, {});
            } catch (err) {
              if (!(err instanceof JunctionError && err.code === ErrorCode.GROUP_EXISTS)) throw err;
            }
          }
          // Another node is creating it.
          if (attempt > 100) throw new JunctionError(ErrorCode.UNAVAILABLE, `group "${group}" is still being created elsewhere`, { retryable: true });
          await sleep(50);
        }
      })().finally(() => this.creatingGroups.delete(id));
      this.creatingGroups.set(id, p);
    }
    return p;
  }

  seek(station: string, group: string, position: StartPosition): Promise<GroupInfo> {
    return this.run('seek', async () => {
      const st = await this.stationMeta(station);
      const pos = StartPosition.safeParse(position);
      if (!pos.success) throw configInvalid('seek position', pos.error);
      if (pos.data.type === 'offset' && pos.data.partition !== undefined && pos.data.partition >= st.config.partitions) {
        throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${station}" has no partition ${pos.data.partition}`);
      }
      const key = this.names.groupKey(station, group);
      for (let attempt = 0; ; attempt++) {
        const gm = await this.groupMeta(station, group);
        const rev = this.meta.peek<GroupMeta>(key).rev;
        const targets = await this.positions(st, pos.data);
        const gens = gm.gens.map((g, p) => (targets[p] ? g + 1 : g));
        // The new consumers exist before the old ones go: with interest retention, no message loses its last reader.
        await Promise.all(targets.map((t, p) => (t ? this.createConsumer(st, group, p, gens[p]!, gm, t) : undefined)));
        const next = { ...gm, gens };
        if ((await this.meta.update(key, next, rev)) === undefined) {
          await Promise.allSettled(targets.map((t, p) => (t ? this.deleteConsumer(this.names.stream(station, p), this.names.consumer(group, gens[p]!)) : undefined)));
          if (attempt >= 3) throw new JunctionError(ErrorCode.UNAVAILABLE, `group "${group}" keeps changing; try again`, { retryable: true });
          await this.meta.read(key);
          continue;
        }
        await Promise.all(targets.map((t, p) => (t ? this.deleteConsumer(this.names.stream(station, p), this.names.consumer(group, gm.gens[p]!)) : undefined)));
        const rt = this.runtime(station, group, next);
        rt.carry.length = 0;
        return this.groupInfo(st, group, next);
      }
    });
  }

  // ---------------------------------------------------------------- fetch

  /**
   * `options.partitions` (an extension of the contract, used by the connector runtime when this node
   * runs only some of a sink's tasks): pull only from those partitions.
   */
  fetch(station: string, group: string, options: FetchOptions & { partitions?: readonly number[] | undefined }): Promise<Delivery[]> {
    return this.run('fetch', async () => {
      const st = await this.stationMeta(station);
      const all = Array.from({ length: st.config.partitions }, (_, p) => p);
      const parts = options.partitions ? all.filter((p) => options.partitions!.includes(p)) : all;
      const gm = await this.groupForFetch(st, group);
      const rt = this.runtime(station, group, gm);
      const ctx: FetchCtx = {
        st,
        group,
        gm,
        rt,
        out: [],
        bytes: 0,
        maxMessages: Math.max(1, Math.floor(options.maxMessages)),
        maxBytes: Math.max(1, Math.floor(options.maxBytes)),
        skips: [],
        dead: [],
        touched: 0,
        parts,
      };
      const signal = options.signal ? AbortSignal.any([options.signal, this.closing.signal]) : this.closing.signal;
      const deadline = performance.now() + Math.max(0, options.waitMs);
      this.takeCarried(ctx);
      for (let round = 0; ctx.out.length === 0 && !signal.aborted && round < 20; round++) {
        ctx.touched = 0;
        const left = Math.floor(deadline - performance.now());
        if (parts.length === 0) {
          await sleep(left > 0 ? left : 0, signal).catch(() => {});
          break;
        }
        if (parts.length === 1) await this.pullOne(ctx, parts[0]!, left > 0 ? left : 0, signal);
        else {
          await this.sweep(ctx, signal);
          if (ctx.out.length === 0 && ctx.touched === 0 && left > 0) await this.longPoll(ctx, left, signal);
          if (ctx.out.length > 0 && ctx.out.length < ctx.maxMessages && ctx.bytes < ctx.maxBytes) await this.sweep(ctx, signal);
        }
        await this.settleFetched(ctx);
        // Only copies for other groups or dead letters came: look again while there is time.
        if (ctx.touched === 0 || performance.now() >= deadline) break;
      }
      if (signal.aborted && this.state !== 'open') return [];
      if (ctx.out.length > 0) {
        let bytes = 0;
        let redeliveries = 0;
        for (const d of ctx.out) {
          bytes += d.value.length;
          if (d.deliveryCount > 1) redeliveries++;
        }
        this.emit({ type: 'delivered', station, group, messages: ctx.out.length, bytes, redeliveries });
      }
      return ctx.out;
    });
  }

  /** Hands out deliveries an earlier fetch on this node received beyond its limits. */
  private takeCarried(ctx: FetchCtx): void {
    const { rt } = ctx;
    if (rt.carry.length === 0) return;
    const now = Date.now();
    const keep: Carried[] = [];
    for (const c of rt.carry) {
      if (c.deadline - CARRY_MARGIN_MS <= now) continue; // JetStream redelivers it
      if (!this.hasRoom(ctx, c.delivery.value.length) || !ctx.parts.includes(c.delivery.partition)) {
        keep.push(c);
        continue;
      }
      this.handOut(ctx, c.delivery, c.ack, c.deadline);
    }
    rt.carry.length = 0;
    rt.carry.push(...keep);
  }

  private hasRoom(ctx: FetchCtx, size: number): boolean {
    return ctx.out.length < ctx.maxMessages && (ctx.out.length === 0 || ctx.bytes + size <= ctx.maxBytes);
  }

  private handOut(ctx: FetchCtx, d: Delivery, ack: string, deadline: number): void {
    ctx.out.push(d);
    ctx.bytes += d.value.length;
    const part = ctx.rt.parts[d.partition];
    part?.outstanding.set(d.offset, { attempt: d.deliveryCount, ack, deadline });
    if (d.deliveryCount >= ctx.gm.maxDeliveries) part?.last.add(d.offset);
    if (d.deliveryCount > 1) ctx.rt.redeliveries++;
  }

  /** The partition of one of the station's streams (-1 for any other stream). */
  private partitionOf(ctx: FetchCtx, stream: string): number {
    const p = Number(stream.slice(stream.lastIndexOf('_') + 1));
    return Number.isInteger(p) && p >= 0 && p < ctx.st.config.partitions && this.names.stream(ctx.st.name, p) === stream ? p : -1;
  }

  /** Takes one delivered JetStream message into the fetch: hand out, carry, skip, or dead-letter. */
  private accept(ctx: FetchCtx, partition: number, m: Msg): void {
    const reply = m.reply;
    const a = reply ? parseAckSubject(reply) : undefined;
    if (!a || !reply) return;
    const part = ctx.rt.parts[partition];
    if (!part || a.consumer !== part.consumer) return; // a consumer a seek replaced
    ctx.touched++;
    let env: ReturnType<typeof decodeEnvelope>;
    try {
      env = decodeEnvelope(m.data);
    } catch (err) {
      // A damaged envelope is still the stored bytes: hand them out as the value rather than lose them.
      this.log.error({ err, station: ctx.st.name, partition, offset: a.streamSeq }, 'message envelope is damaged');
      env = { key: undefined, headers: {}, value: m.data };
    }
    const target = env.headers[REPLAY_GROUP_HEADER];
    if (target !== undefined && target !== ctx.group) {
      ctx.skips.push(reply);
      ctx.wake?.();
      return;
    }
    const held = part.outstanding.get(a.streamSeq);
    if (held && !held.busy && held.nackedUntil === undefined && a.deliveryCount <= held.attempt && held.deadline > Date.now()) {
      // The same attempt again while it is still out: a new consumer leader that had not yet replicated the
      // delivery (JetStream after a leader change). The first one stands; its ack works on the new leader.
      held.ack = reply;
      return;
    }
    if (a.deliveryCount > ctx.gm.maxDeliveries) {
      const known = part.outstanding.get(a.streamSeq);
      if (known?.busy) return; // this node is dead-lettering it already (its last deadline passed)
      if (known) known.busy = true;
      ctx.dead.push({
        partition,
        offset: a.streamSeq,
        attempts: a.deliveryCount - 1,
        ack: reply,
        code: 'MAX_DELIVERIES',
        reason: `not acknowledged after ${ctx.gm.maxDeliveries} deliveries`,
        message: { key: env.key, headers: env.headers, value: env.value, timestamp: a.timestamp },
      });
      ctx.wake?.();
      return;
    }
    const d: Delivery = {
      station: ctx.st.name,
      partition,
      offset: a.streamSeq,
      timestamp: a.timestamp,
      key: env.key,
      headers: env.headers,
      value: env.value,
      deliveryId: makeDeliveryId(partition, a.streamSeq, a.deliveryCount),
      deliveryCount: a.deliveryCount,
      stationId: stationIdOf(ctx.st),
    };
    const deadline = Date.now() + ctx.gm.maxAckTimeMs;
    if (this.hasRoom(ctx, d.value.length)) this.handOut(ctx, d, reply, deadline);
    else ctx.rt.carry.push({ delivery: d, ack: reply, deadline });
    ctx.wake?.();
  }

  /** One pull on one partition, ended by JetStream (batch, no messages, timeout) or by the signal. */
  private async pullOne(ctx: FetchCtx, partition: number, waitMs: number, signal: AbortSignal): Promise<void> {
    const session = this.wire.pullSession((m, stream) => this.accept(ctx, this.partitionOf(ctx, stream), m));
    try {
      await this.pullInto(ctx, session, partition, waitMs, signal);
    } finally {
      await session.close(session.openCount > 0 && this.state === 'open');
    }
  }

  private async pullInto(ctx: FetchCtx, session: PullSession, partition: number, waitMs: number, signal: AbortSignal): Promise<void> {
    const part = ctx.rt.parts[partition]!;
    const stream = this.names.stream(ctx.st.name, partition);
    const before = ctx.out.length;
    const body = {
      batch: ctx.maxMessages - ctx.out.length,
      max_bytes: Math.max(1, ctx.maxBytes - ctx.bytes),
      no_wait: true,
      ...(waitMs > 0 && { expires: waitMs * NS }),
    };
    let end = await this.untilEnd(session.request(stream, part.consumer, body), waitMs, signal);
    if (end?.code === 404 && waitMs === 0 && ctx.out.length === before && performance.now() - (this.producedAt.get(stream) ?? -Infinity) < RECENT_PRODUCE_MS) {
      // This node stored messages here a moment ago, but the consumer's leader may sit on a replica that
      // has not applied them yet (it found nothing): wait a little for them, answering at the first one.
      end = await this.untilEnd(session.request(stream, part.consumer, { ...body, expires: REPLICA_CATCHUP_MS * NS }), REPLICA_CATCHUP_MS, signal);
    }
    // No responders: the consumer has no leader yet (just created, or an election) — or it is gone.
    for (let delay = 25, tried = 0; end?.code === 503 && tried < 3_000 && !signal.aborted; tried += delay, delay = Math.min(delay * 2, 400)) {
      await sleep(delay, signal);
      end = await this.untilEnd(session.request(stream, part.consumer, body), waitMs, signal);
    }
    if (end?.code === 409 && /max ?bytes/i.test(end.description) && ctx.out.length === 0 && before === 0) {
      // The first message is larger than maxBytes: the contract still hands out one.
      end = await this.untilEnd(session.request(stream, part.consumer, { batch: 1, no_wait: true }), 0, signal);
    }
    if (end?.code === 503 || (end?.code === 409 && /consumer (deleted|not found)/i.test(end.description))) await this.repairConsumer(ctx, partition);
  }

  /** Waits for a pull's end, the signal, or — for a no-wait pull queued behind others (2.9 keeps those waiting) — a short stall. */
  private async untilEnd(pull: Promise<{ code: number; description: string }>, waitMs: number, signal: AbortSignal): Promise<{ code: number; description: string } | undefined> {
    const ctl = new AbortController();
    const both = AbortSignal.any([signal, ctl.signal]);
    try {
      return await Promise.race([pull, sleep(waitMs + STUCK_PULL_MS, both).then(() => undefined)]);
    } finally {
      ctl.abort();
    }
  }

  /** No-wait pulls over the partitions, from a rotating start, until the limits are reached. */
  private async sweep(ctx: FetchCtx, signal: AbortSignal): Promise<void> {
    const P = ctx.parts.length;
    const start = ctx.rt.rr++ % P;
    const session = this.wire.pullSession((m, stream) => this.accept(ctx, this.partitionOf(ctx, stream), m));
    try {
      for (let i = 0; i < P && ctx.out.length < ctx.maxMessages && !signal.aborted; i++) {
        if (ctx.out.length > 0 && ctx.bytes >= ctx.maxBytes) break;
        await this.pullInto(ctx, session, ctx.parts[(start + i) % P]!, 0, signal);
        if (session.openCount > 0) break; // a stalled pull: its partition's messages may still arrive here
      }
    } finally {
      await session.close(session.openCount > 0 && this.state === 'open');
    }
  }

  /**
   * Waits on every partition at once for the first message: one-message pulls with `expires`; the first
   * arrival (or the deadline) ends the wait, and closing the session makes JetStream drop the other pulls.
   */
  private async longPoll(ctx: FetchCtx, waitMs: number, signal: AbortSignal): Promise<void> {
    const woke = deferred();
    ctx.wake = woke.resolve;
    const session = this.wire.pullSession((m, stream) => this.accept(ctx, this.partitionOf(ctx, stream), m));
    try {
      const ends: Promise<unknown>[] = [];
      for (const p of ctx.parts) {
        ends.push(session.request(this.names.stream(ctx.st.name, p), ctx.rt.parts[p]!.consumer, { batch: 1, no_wait: true, expires: waitMs * NS }));
      }
      await Promise.race([woke.promise, Promise.all(ends), sleep(waitMs + STUCK_PULL_MS, signal)]);
    } finally {
      ctx.wake = undefined;
      await session.close(session.openCount > 0 && this.state === 'open');
    }
  }

  /** A pull found no consumer: re-read the group (a seek elsewhere?) or recreate the consumer at earliest. */
  private async repairConsumer(ctx: FetchCtx, partition: number): Promise<void> {
    const key = this.names.groupKey(ctx.st.name, ctx.group);
    const fresh = (await this.meta.read<GroupMeta>(key)).value;
    if (!fresh?.ready) return;
    if (fresh.gens[partition] !== ctx.gm.gens[partition]) {
      ctx.rt.sync(this.consumersOf(ctx.group, fresh));
      ctx.gm = fresh;
      return;
    }
    const stream = this.names.stream(ctx.st.name, partition);
    try {
      await this.api(`CONSUMER.INFO.${stream}.${this.names.consumer(ctx.group, fresh.gens[partition]!)}`);
    } catch (err) {
      if (isApiError(err, JsErr.CONSUMER_NOT_FOUND)) {
        this.log.warn({ station: ctx.st.name, group: ctx.group, partition }, 'consumer missing; recreated at the earliest offset');
        await this.createConsumer(ctx.st, ctx.group, partition, fresh.gens[partition]!, fresh, { deliver_policy: 'all' });
      }
    }
  }

  /** Acks the copies meant for other groups and dead-letters what ran out of deliveries. */
  private async settleFetched(ctx: FetchCtx): Promise<void> {
    const skips = ctx.skips.splice(0);
    const dead = ctx.dead.splice(0);
    await Promise.all([this.ackSubjects(skips), dead.length > 0 ? this.moveToDls(ctx.st, ctx.group, ctx.gm, dead) : undefined]);
  }

  // ---------------------------------------------------------------- settle

  /**
   * Sends acks and waits until JetStream applied them (so a getGroup right after sees them). Only the
   * last ack per consumer asks for a confirmation: a consumer takes acks in the order they were sent
   * (one connection, one route, one ack queue), so its confirmation covers the ones before it.
   */
  private async ackSubjects(subjects: readonly string[], verb = '+ACK'): Promise<void> {
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

  /**
   * What a deliveryId refers to: this node's record of the delivery, or — for one handed out by another
   * node or before a restart — the ack subject rebuilt from it, when the consumer has delivered that
   * offset and not yet settled it.
   */
  private async resolve(
    st: StationMeta,
    group: string,
    gm: GroupMeta,
    rt: GroupRt,
    ids: readonly string[],
  ): Promise<({ id: string; partition: number; offset: number; attempt: number; out: Outstanding; local: boolean } | { id: string; status: 'unknown' | 'settled' | 'stale' })[]> {
    const infos = new Map<number, Promise<ConsumerInfo | undefined>>();
    const consumerInfo = (p: number) => {
      let i = infos.get(p);
      if (!i) {
        i = this.api<ConsumerInfo>(`CONSUMER.INFO.${this.names.stream(st.name, p)}.${this.names.consumer(group, gm.gens[p]!)}`).catch(() => undefined);
        infos.set(p, i);
      }
      return i;
    };
    return Promise.all(
      ids.map(async (id) => {
        const d = parseDeliveryId(id);
        if (!d || d.partition >= st.config.partitions || d.attempt < 1) return { id, status: 'unknown' as const };
        const part = rt.parts[d.partition]!;
        const out = part.outstanding.get(d.offset);
        if (out) {
          if (out.busy) return { id, status: 'stale' as const };
          if (d.attempt <= out.attempt) return { id, partition: d.partition, offset: d.offset, attempt: d.attempt, out, local: true };
        }
        const ci = await consumerInfo(d.partition);
        if (!ci || d.offset > ci.delivered.stream_seq) return { id, status: 'unknown' as const };
        if (d.offset <= ci.ack_floor.stream_seq) return { id, status: 'settled' as const };
        const stream = this.names.stream(st.name, d.partition);
        const consumer = part.consumer;
        return {
          id,
          partition: d.partition,
          offset: d.offset,
          attempt: d.attempt,
          local: false,
          out: { attempt: d.attempt, ack: ackSubject(stream, consumer, d.attempt, d.offset, 0), deadline: Date.now() + gm.maxAckTimeMs, nakSeq: ci.delivered.consumer_seq } as Outstanding & { nakSeq: number },
        };
      }),
    );
  }

  private async settleTarget(station: string, group: string): Promise<{ st: StationMeta; gm: GroupMeta; rt: GroupRt }> {
    const st = await this.stationMeta(station);
    const gm = await this.groupMeta(station, group);
    return { st, gm, rt: this.runtime(station, group, gm) };
  }

  ack(station: string, group: string, deliveryIds: readonly string[]): Promise<SettleOutcome[]> {
    return this.run('ack', async () => {
      const { st, gm, rt } = await this.settleTarget(station, group);
      const resolved = await this.resolve(st, group, gm, rt, deliveryIds);
      const subjects: string[] = [];
      const out: SettleOutcome[] = resolved.map((r) => {
        if ('status' in r) return { deliveryId: r.id, status: r.status === 'settled' ? 'acked' : r.status };
        subjects.push(r.out.ack);
        rt.parts[r.partition]!.outstanding.delete(r.offset);
        return { deliveryId: r.id, status: 'acked' };
      });
      await this.ackSubjects(subjects);
      if (subjects.length > 0) this.emit({ type: 'acked', station, group, messages: subjects.length });
      return out;
    });
  }

  nack(station: string, group: string, deliveryIds: readonly string[], delayMs?: number): Promise<SettleOutcome[]> {
    return this.run('nack', async () => {
      const { st, gm, rt } = await this.settleTarget(station, group);
      const resolved = await this.resolve(st, group, gm, rt, deliveryIds);
      const delay = Math.max(0, Math.floor(delayMs ?? 0));
      const naks: { subject: string; body: string }[] = [];
      const dead: DeadItem[] = [];
      const deadIds = new Set<string>();
      const now = Date.now();
      const out: SettleOutcome[] = resolved.map((r) => {
        if ('status' in r) return { deliveryId: r.id, status: r.status === 'settled' ? 'stale' : r.status };
        // Only the current attempt of a delivery that is out counts (the embedded engine's rule).
        if (r.local && (r.attempt !== r.out.attempt || r.out.nackedUntil !== undefined)) return { deliveryId: r.id, status: 'stale' };
        if (r.attempt >= gm.maxDeliveries) {
          r.out.busy = true;
          dead.push({ partition: r.partition, offset: r.offset, attempts: r.attempt, ack: r.out.ack, code: 'MAX_DELIVERIES', reason: `nacked after ${gm.maxDeliveries} deliveries` });
          deadIds.add(r.id);
          return { deliveryId: r.id, status: 'dead-lettered' };
        }
        const nakSeq = (r.out as Outstanding & { nakSeq?: number }).nakSeq;
        // A nak needs the consumer sequence of the delivery; a rebuilt subject carries the consumer's last one.
        const subject = nakSeq === undefined ? r.out.ack : ackSubject(...subjectParts(r.out.ack, nakSeq));
        naks.push({ subject, body: delay > 0 ? `-NAK ${JSON.stringify({ delay: delay * NS })}` : '-NAK' });
        if (r.local) r.out.nackedUntil = now + delay;
        return { deliveryId: r.id, status: 'nacked' };
      });
      await Promise.all(naks.map((n) => this.wire.request(n.subject, Buffer.from(n.body))));
      if (dead.length > 0) await this.moveToDls(st, group, gm, dead);
      return out;
    });
  }

  deadLetter(station: string, group: string, deliveryIds: readonly string[], reason?: string, details?: DeadLetterDetails): Promise<SettleOutcome[]> {
    return this.run('deadLetter', async () => {
      const { st, gm, rt } = await this.settleTarget(station, group);
      const resolved = await this.resolve(st, group, gm, rt, deliveryIds);
      const items: DeadItem[] = [];
      const out: SettleOutcome[] = resolved.map((r) => {
        if ('status' in r) return { deliveryId: r.id, status: r.status === 'settled' ? 'stale' : r.status };
        r.out.busy = true;
        items.push({
          partition: r.partition,
          offset: r.offset,
          attempts: r.local ? r.out.attempt : r.attempt,
          ack: r.out.ack,
          code: details?.code ?? 'CONSUMER_DEAD_LETTER',
          reason: reason ?? 'dead-lettered by the consumer',
          headers: details?.headers,
        });
        return { deliveryId: r.id, status: 'dead-lettered' };
      });
      if (items.length > 0) await this.moveToDls(st, group, gm, items);
      return out;
    });
  }

  // ---------------------------------------------------------------- dead letters

  /** The station's dead-letter station, created on the first dead letter. */
  private async ensureDls(st: StationMeta): Promise<StationMeta> {
    const name = dlsName(st.name);
    const key = this.names.stationKey(name);
    const cur = this.meta.peek<StationMeta>(key).value ?? (await this.meta.read<StationMeta>(key)).value;
    if (cur?.ready) return cur;
    try {
      await this.createStationStreams({ name, id: randomUUID(), config: dlsConfig(st.config), createdAt: Date.now(), deadLetterOf: st.name, ready: false });
    } catch (err) {
      if (!(err instanceof JunctionError && err.code === ErrorCode.STATION_EXISTS)) throw err;
    }
    for (let i = 0; i < 100; i++) {
      const m = (await this.meta.read<StationMeta>(key)).value;
      if (m?.ready) return m;
      await sleep(50);
    }
    throw new JunctionError(ErrorCode.UNAVAILABLE, `dead-letter station "${name}" is not ready`, { retryable: true });
  }

  /**
   * Copies messages to the dead-letter station (the embedded engine's headers; the msgId makes a second
   * copy by a retry or by another node a duplicate), then terminates them in the group.
   */
  private async moveToDls(st: StationMeta, group: string, gm: GroupMeta, items: DeadItem[]): Promise<void> {
    const rt = this.runtime(st.name, group, gm);
    const enabled = st.config.deadLetter.enabled && st.deadLetterOf === undefined;
    try {
      const found: { it: DeadItem; m: NonNullable<DeadItem['message']> }[] = [];
      const gone: DeadItem[] = [];
      await Promise.all(
        items.map(async (it) => {
          const m = it.message ?? (await this.loadForDls(st, it.partition, it.offset));
          if (m) found.push({ it, m });
          else gone.push(it);
        }),
      );
      if (enabled && found.length > 0) {
        const dls = await this.ensureDls(st);
        await this.bumpDeadCount(st.name, group, found.length);
        const results = await this.produceTo(
          dls,
          found.map(({ it, m }) => ({
            value: m.value,
            key: m.key,
            msgId: `dls:${group}:${it.partition}:${it.offset}`,
            headers: {
              ...m.headers,
              ...it.headers,
              [DLS_HEADERS.reason]: it.reason,
              [DLS_HEADERS.code]: it.code,
              [DLS_HEADERS.group]: group,
              [DLS_HEADERS.attempts]: String(it.attempts),
              [DLS_HEADERS.station]: st.name,
              [DLS_HEADERS.partition]: String(it.partition),
              [DLS_HEADERS.offset]: String(it.offset),
              [DLS_HEADERS.timestamp]: String(m.timestamp),
              ...(m.key !== undefined && { [DLS_HEADERS.key]: m.key }),
            },
          })),
          true,
        );
        const failed = results.filter((r) => r.status === 'rejected').length;
        // A duplicate is a dead letter another path (a retry, another node) stored and counted already.
        const dups = results.filter((r) => r.status === 'duplicate').length;
        if (failed + dups > 0) await this.bumpDeadCount(st.name, group, -(failed + dups));
        if (failed > 0) {
          throw new JunctionError(ErrorCode.UNAVAILABLE, `${failed} dead letter(s) could not be stored in ${dls.name}`, { retryable: true });
        }
      } else if (found.length > 0) {
        await this.bumpDeadCount(st.name, group, found.length);
        this.log.warn({ station: st.name, group, messages: found.length }, 'dead-lettering is off for this station: messages dropped');
      }
      await this.ackSubjects(
        items.map((it) => it.ack),
        '+TERM',
      );
      for (const it of items) rt.parts[it.partition]?.outstanding.delete(it.offset);
      if (found.length > 0) this.emit({ type: 'dead-lettered', station: st.name, group, messages: found.length });
    } catch (err) {
      // Not moved: make them deliverable again (JetStream redelivers after a nak), so nothing is lost.
      for (const it of items) {
        const o = rt.parts[it.partition]?.outstanding.get(it.offset);
        if (o) o.busy = false;
      }
      await Promise.allSettled(items.map((it) => this.wire.request(it.ack, Buffer.from('-NAK'))));
      throw err;
    }
  }

  private async loadForDls(st: StationMeta, partition: number, offset: number): Promise<DeadItem['message']> {
    const g = await this.getMessage(this.names.stream(st.name, partition), offset);
    if (!g) return undefined;
    const env = decodeEnvelope(g.data);
    return { key: env.key, headers: env.headers, value: env.value, timestamp: g.timestamp };
  }

  /** The group's dead-letter count in KV (compare-and-set, so every node's increments add up). */
  private async bumpDeadCount(station: string, group: string, by: number): Promise<void> {
    const key = this.names.deadKey(station, group);
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = attempt === 0 ? this.meta.peek<{ n: number }>(key) : await this.meta.read<{ n: number }>(key);
      const next = { n: Math.max(0, (cur.value?.n ?? 0) + by) };
      const rev = cur.value === undefined ? await this.meta.create(key, next) : await this.meta.update(key, next, cur.rev);
      if (rev !== undefined) return;
    }
    this.log.warn({ station, group }, 'dead-letter count not updated (contention)');
  }

  /** Dead-letters last attempts whose deadline passed on this node (JetStream would only redeliver them). */
  private async tick(): Promise<void> {
    if (this.ticking || this.state !== 'open') return;
    this.ticking = true;
    try {
      const now = Date.now();
      for (const rt of [...this.groups.values()]) {
        const gm = this.meta.peek<GroupMeta>(this.names.groupKey(rt.station, rt.group)).value;
        const st = this.meta.peek<StationMeta>(this.names.stationKey(rt.station)).value;
        if (!gm?.ready || !st?.ready) continue;
        const due: DeadItem[] = [];
        rt.parts.forEach((part, p) => {
          for (const offset of part.last) {
            const o = part.outstanding.get(offset);
            if (!o || o.attempt < gm.maxDeliveries) {
              part.last.delete(offset);
              continue;
            }
            if (o.busy || o.nackedUntil !== undefined || o.deadline > now) continue;
            part.last.delete(offset);
            o.busy = true;
            due.push({ partition: p, offset, attempts: o.attempt, ack: o.ack, code: 'MAX_DELIVERIES', reason: `not acknowledged after ${gm.maxDeliveries} deliveries` });
          }
        });
        if (due.length > 0) await this.moveToDls(st, rt.group, gm, due).catch((err: unknown) => this.log.warn({ err, station: rt.station, group: rt.group }, 'dead-lettering failed; the messages will be delivered again'));
      }
    } finally {
      this.ticking = false;
    }
  }

  replayDeadLetters(station: string, options: ReplayOptions = {}): Promise<ReplayResult> {
    return this.run('replayDeadLetters', async () => {
      const st = await this.stationMeta(station);
      if (options.group !== undefined) await this.groupMeta(station, options.group);
      const dls = this.meta.peek<StationMeta>(this.names.stationKey(dlsName(station))).value ?? (await this.meta.read<StationMeta>(this.names.stationKey(dlsName(station)))).value;
      if (!dls?.ready) return { replayed: 0, purged: 0 };
      const s = await this.streamState(dls.name, 0);
      const first = s.messages === 0 ? s.last_seq + 1 : s.first_seq;
      const from = Math.max(options.fromOffset ?? first, first);
      const to = Math.min(options.toOffset ?? s.last_seq, s.last_seq);
      let replayed = 0;
      let last = from - 1;
      for (let at = from; at <= to; ) {
        const recs = await this.readRange(dls, 0, at, 1000, 8 * 1024 * 1024, to);
        if (recs.length === 0) break;
        const messages: MessageInput[] = recs.map((r) => {
          const headers: Record<string, string> = {};
          for (const k in r.headers) if (!k.startsWith('junction-dls-') && k !== REPLAY_GROUP_HEADER) putHeader(headers, k, r.headers[k]!);
          if (options.group !== undefined) headers[REPLAY_GROUP_HEADER] = options.group;
          return { value: r.value, key: r.key, headers };
        });
        const results = await this.produceTo(st, messages, true);
        replayed += results.filter((r) => r.status === 'stored').length;
        last = recs[recs.length - 1]!.offset;
        at = last + 1;
      }
      let purged = 0;
      if (options.purge && last >= first && from === first) purged = await this.purgeDls(dls, last);
      return { replayed, purged };
    });
  }

  purgeDeadLetters(station: string, upToOffset?: number): Promise<number> {
    return this.run('purgeDeadLetters', async () => {
      await this.stationMeta(station);
      const dls = this.meta.peek<StationMeta>(this.names.stationKey(dlsName(station))).value ?? (await this.meta.read<StationMeta>(this.names.stationKey(dlsName(station)))).value;
      if (!dls?.ready) return 0;
      return this.purgeDls(dls, upToOffset);
    });
  }

  /** Drops dead letters up to and including `upTo` (all when absent); offsets are never reused. */
  private async purgeDls(dls: StationMeta, upTo?: number): Promise<number> {
    const r = await this.api<{ purged: number }>(`STREAM.PURGE.${this.names.stream(dls.name, 0)}`, upTo === undefined ? {} : { seq: upTo + 1 });
    return r.purged;
  }
}

/** The parts of an ack subject for ackSubject(), with another consumer sequence. */
function subjectParts(ack: string, consumerSeq: number): [string, string, number, number, number] {
  const a = parseAckSubject(ack)!;
  return [a.stream, a.consumer, a.deliveryCount, a.streamSeq, consumerSeq];
}

/** A station's incarnation id: stored in its metadata since ids exist, derived for metadata from before. */
function stationIdOf(st: StationMeta): string {
  return st.id ?? legacyStationId(st.name, st.createdAt);
}
