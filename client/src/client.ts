/**
 * JunctionClient: the typed face of the broker's HTTP API. Admin calls (stations, groups, dead
 * letters, health) are plain methods; `producer()` and `consumer()` build the batching producer and the
 * prefetching consumer on top of the low-level `produce` / `fetch` / `ack` calls.
 */
import type * as http from 'node:http';
import {
  BATCH_CONTENT_TYPE,
  encodeProduceBatch,
  expandSettleSummary,
  SETTLE_STATUS,
  type SettleSummary,
  type CreateGroupBody,
  type DlsReplayBody,
  type FetchBody,
  type ProduceMessage,
  type ProduceOutcome,
  type StartPosition,
  type StationConfigInput,
  type StationPatch,
} from '@junction/protocol';
import { backoffDelay, DEFAULT_RETRY, sleep, type RetryOptions } from './backoff.js';
import { ClientErrorCode, errorFromResponse, JunctionApiError } from './errors.js';
import { HttpTransport, type Transport, type TransportResponse } from './transport.js';
import { decodeMessages, parseJson, toProduceResult, toWireMessage } from './wire.js';
import type {
  BrowsedMessage,
  Delivery,
  GroupInfo,
  HealthInfo,
  ProduceResult,
  ProducerMessage,
  ReplayResult,
  SettleResult,
  StationInfo,
} from './types.js';
import { Producer, type ProducerOptions } from './producer.js';
import { Consumer, type ConsumerOptions } from './consumer.js';

/** What `GET /v1/connectors/:name/status` answers (the fields the client names; the broker may add more). */
export interface ConnectorStatusInfo {
  name: string;
  connector: { state: string; trace?: string };
  tasks: {
    id: number;
    state: string;
    worker?: string;
    restarts: number;
    trace?: string;
    lastError?: { code: string; message: string; at: number };
    freshness?: ConnectorFreshness | null;
  }[];
  type: 'sink' | 'source' | 'unknown';
  lag?: number;
  throughput: { msgsPerSec: number; bytesPerSec: number };
  isolation?: 'shared' | 'thread';
  lastError?: { code: string; message: string; at: number };
  /** Sink: produce → landed of the last message it landed; null until one landed (and for sources). */
  freshness: ConnectorFreshness | null;
}

/** When a sink last landed a batch, the produce time of its last message, and the seconds between. */
export interface ConnectorFreshness {
  lastLandedAt: string;
  lastProducedAt: string;
  seconds: number;
}

/** One offset of a connector (Kafka Connect's KIP-875 shape): a sink's `{ partition: { station, partition }, offset: { offset } }`, a source's `{ partition: { task }, offset }`. */
export interface ConnectorOffset {
  partition: Record<string, unknown>;
  offset: unknown;
}

/** One field of a pipeline plan that differs (`from` absent: not set before; `to` absent: not set after); secrets `***`. */
export interface PipelineFieldChange {
  path: string;
  from?: unknown;
  to?: unknown;
}

/** One station or connector of a pipeline plan (`POST /v1/pipeline/plan` · `/apply`). */
export interface PipelinePlanEntry {
  name: string;
  action: 'create' | 'update' | 'delete' | 'unchanged' | 'conflict';
  plugin?: string;
  station?: string;
  changes?: PipelineFieldChange[];
  message?: string;
  /** apply: this entry failed (the others were applied). */
  error?: { code: string; message: string };
}

export interface PipelinePlan {
  stations: PipelinePlanEntry[];
  connectors: PipelinePlanEntry[];
}

/** What `junction apply` sends: the `stations:` and `connectors:` of a junction.yaml; `prune` deletes what they do not name. */
export interface PipelineSpec {
  stations?: unknown[];
  connectors?: unknown[];
  prune?: boolean;
}

export interface ClientOptions {
  /** The broker's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string | URL;
  /** A request without a full answer after this long fails with TIMEOUT (long polls add their wait). Default 30 s. */
  timeoutMs?: number | undefined;
  /** Retries of idempotent requests (GET, ack, nack, dead-letter) on network errors, 429 and 5xx. */
  retry?: Partial<RetryOptions> | undefined;
  /** An http(s).Agent of your own; by default the client makes a keep-alive Agent and destroys it on close(). */
  agent?: http.Agent | undefined;
  /** Replaces the HTTP transport (tests, custom stacks). `url` and `agent` are then ignored. */
  transport?: Transport | undefined;
  /** Headers sent with every request. */
  headers?: Record<string, string> | undefined;
  /**
   * A token (a service token `jnt_…` or a session token from `login`), sent as
   * `Authorization: Bearer <token>` with every request; wins over an `authorization` in `headers`.
   */
  token?: string | undefined;
}

/** A grant of a service token: `actions` on the `resource`s whose name matches `pattern` (`*` = any run of characters). */
export interface TokenGrant {
  resource: 'station' | 'group' | 'connector' | 'schema' | 'cluster';
  pattern: string;
  actions: ('produce' | 'consume' | 'manage' | 'read')[];
  /** Default allow; a deny wins over every allow. */
  effect?: 'allow' | 'deny' | undefined;
}

export interface TokenInfo {
  id: string;
  name: string;
  owner: string;
  grants: TokenGrant[];
  createdAt: string;
  expiresAt?: string | undefined;
  revoked: boolean;
}

export interface UserInfo {
  name: string;
  role: 'admin' | 'editor' | 'viewer';
  createdAt: string;
  updatedAt: string;
}

export interface SessionTokens {
  token: string;
  expiresAt: string;
  refreshToken: string;
}

/** A connector plugin as the broker lists it. */
export interface PluginInfo {
  name: string;
  kind: string;
  version: string;
  description?: string;
  builtin: boolean;
  exactlyOnce: boolean;
}

/** A plugin package the broker found but refused, and why. */
export interface RefusedPluginInfo {
  path: string;
  packageName?: string;
  code: string;
  message: string;
  issues?: { path: string; message: string }[];
}

/** Per-call options of the low-level methods. */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

export interface ReadOptions {
  /** Default 0. */
  partition?: number | undefined;
  /** Default: the partition's first retained offset. */
  fromOffset?: number | undefined;
  /** 1..10 000, default 100. */
  limit?: number | undefined;
}

export interface DeadLetterListOptions {
  fromOffset?: number | undefined;
  limit?: number | undefined;
}

interface RequestSpec extends CallOptions {
  method: string;
  path: string;
  json?: unknown;
  body?: Uint8Array | undefined;
  contentType?: string | undefined;
  accept?: string | undefined;
  /** Safe to send again after a network error or a retryable status. */
  idempotent?: boolean | undefined;
}

const JSON_TYPE = 'application/json';
const seg = encodeURIComponent;

/**
 * A client of one broker. Cheap to keep for the whole process: all its producers and consumers share
 * its keep-alive connections. Call `close()` at the end: it closes the producers (flushing what they
 * hold), the consumers, and the sockets.
 *
 * Every method rejects with a JunctionApiError (the broker's `code`, `status`, `issues`, and
 * `retryable`). Idempotent requests are retried with exponential backoff and jitter on network
 * errors, 429 and 5xx, up to `retry.retries` times; produce and fetch are never retried here (the
 * producer retries batches of messages that carry a msgId; the consumer reconnects by itself).
 */
export class JunctionClient {
  readonly timeoutMs: number;
  readonly retry: RetryOptions;
  private readonly transport: Transport;
  private readonly headers: Record<string, string>;
  private readonly producers = new Set<Producer>();
  private readonly consumers = new Set<Consumer>();
  private closed = false;
  private transportClosed = false;

  constructor(opts: ClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.transport = opts.transport ?? new HttpTransport({ url: opts.url, agent: opts.agent });
    this.headers = { ...opts.headers };
    if (opts.token !== undefined) {
      for (const k of Object.keys(this.headers)) if (k.toLowerCase() === 'authorization') delete this.headers[k];
      this.headers['authorization'] = `Bearer ${opts.token}`;
    }
  }

  // ── auth (when the broker runs with auth on) ──────────────────────────────────────────────────

  /** POST /v1/auth/login: a session (pass `token` to a new client). UNAUTHENTICATED (401) on a wrong password. */
  async login(username: string, password: string, opts?: CallOptions): Promise<SessionTokens> {
    return this.json<SessionTokens>({ ...opts, method: 'POST', path: '/v1/auth/login', json: { username, password } });
  }

  /** POST /v1/auth/refresh: new tokens for a refresh token (which stops working). */
  async refresh(refreshToken: string, opts?: CallOptions): Promise<SessionTokens> {
    return this.json<SessionTokens>({ ...opts, method: 'POST', path: '/v1/auth/refresh', json: { refreshToken } });
  }

  /** POST /v1/auth/logout: ends this client's session (or revokes its service token). */
  async logout(opts?: CallOptions): Promise<void> {
    await this.call({ ...opts, method: 'POST', path: '/v1/auth/logout' });
  }

  /** GET /v1/auth/whoami: the principal of this client's token and its grants. */
  async whoami(opts?: CallOptions): Promise<Record<string, unknown>> {
    return this.json({ ...opts, method: 'GET', path: '/v1/auth/whoami', idempotent: true });
  }

  async listUsers(opts?: CallOptions): Promise<UserInfo[]> {
    return this.json({ ...opts, method: 'GET', path: '/v1/users', idempotent: true });
  }

  async createUser(user: { name: string; password: string; role?: UserInfo['role'] }, opts?: CallOptions): Promise<UserInfo> {
    return this.json({ ...opts, method: 'POST', path: '/v1/users', json: user });
  }

  /** PATCH /v1/users/:name (role and/or password; a new password ends the user's sessions). */
  async updateUser(name: string, change: { role?: UserInfo['role']; password?: string }, opts?: CallOptions): Promise<UserInfo> {
    return this.json({ ...opts, method: 'PATCH', path: `/v1/users/${seg(name)}`, json: change });
  }

  async deleteUser(name: string, opts?: CallOptions): Promise<void> {
    await this.call({ ...opts, method: 'DELETE', path: `/v1/users/${seg(name)}` });
  }

  async listTokens(opts?: CallOptions): Promise<TokenInfo[]> {
    return this.json({ ...opts, method: 'GET', path: '/v1/tokens', idempotent: true });
  }

  /** POST /v1/tokens: the secret is in `token`, shown this once. FORBIDDEN when a grant exceeds the caller's. */
  async createToken(
    spec: { name: string; grants: TokenGrant[]; expiresInS?: number },
    opts?: CallOptions,
  ): Promise<TokenInfo & { token: string }> {
    return this.json({ ...opts, method: 'POST', path: '/v1/tokens', json: spec });
  }

  async revokeToken(id: string, opts?: CallOptions): Promise<void> {
    await this.call({ ...opts, method: 'DELETE', path: `/v1/tokens/${seg(id)}` });
  }

  // ── health ────────────────────────────────────────────────────────────────────────────────────

  /** GET /healthz. Rejects when the broker is down or unhealthy (after retries). */
  async health(opts?: CallOptions): Promise<HealthInfo> {
    return this.json<HealthInfo>({ ...opts, method: 'GET', path: '/healthz', idempotent: true });
  }

  // ── stations ──────────────────────────────────────────────────────────────────────────────────

  /** Creates a station; STATION_EXISTS (409) when it exists, CONFIG_INVALID (400, with `issues`) on bad config. */
  async createStation(name: string, config: StationConfigInput & { replicas?: number } = {}, opts?: CallOptions): Promise<StationInfo> {
    return this.json<StationInfo>({ ...opts, method: 'POST', path: '/v1/stations', json: { ...config, name } });
  }

  /** Every station (dead-letter stations included), in name order: follows the pages to the end. */
  async listStations(opts?: CallOptions & { prefix?: string }): Promise<StationInfo[]> {
    const all: StationInfo[] = [];
    for (let after: string | undefined; ;) {
      const p = await this.listStationsPage({ after, prefix: opts?.prefix }, opts);
      all.push(...p.stations);
      if (p.next === undefined) return all;
      after = p.next;
    }
  }

  /** One page of stations in name order: after the cursor `after`, starting with `prefix`, at most `limit` (≤ 1000); `next` is the next page's cursor. */
  async listStationsPage(
    page: { limit?: number; after?: string | undefined; prefix?: string | undefined } = {},
    opts?: CallOptions,
  ): Promise<{ stations: StationInfo[]; next?: string }> {
    return this.json<{ stations: StationInfo[]; next?: string }>({
      ...opts,
      method: 'GET',
      path: `/v1/stations${query(page)}`,
      idempotent: true,
    });
  }

  /** STATION_NOT_FOUND (404) when it does not exist. */
  async getStation(name: string, opts?: CallOptions): Promise<StationInfo> {
    return this.json<StationInfo>({ ...opts, method: 'GET', path: `/v1/stations/${seg(name)}`, idempotent: true });
  }

  /** Changes what may change on a live station; CONFIG_IMMUTABLE for partitions / storage. */
  async updateStation(name: string, patch: StationPatch, opts?: CallOptions): Promise<StationInfo> {
    return this.json<StationInfo>({ ...opts, method: 'PATCH', path: `/v1/stations/${seg(name)}`, json: patch });
  }

  /** Deletes the station, its groups and its dead-letter station. */
  async deleteStation(name: string, opts?: CallOptions): Promise<void> {
    await this.call({ ...opts, method: 'DELETE', path: `/v1/stations/${seg(name)}` });
  }

  // ── connectors ────────────────────────────────────────────────────────────────────────────────

  /** Every connector's name, in name order: follows the pages of `GET /v1/connectors` (`pageSize` each, default the broker's 1000) to the end. */
  async listConnectors(opts?: CallOptions & { prefix?: string; pageSize?: number }): Promise<string[]> {
    const all: string[] = [];
    for (let after: string | undefined; ;) {
      const p = await this.listConnectorsPage({ after, prefix: opts?.prefix, limit: opts?.pageSize }, opts);
      all.push(...p.connectors);
      if (p.next === undefined) return all;
      after = p.next;
    }
  }

  /** One page of connector names in name order: after the cursor `after`, starting with `prefix`, at most `limit` (≤ 1000); `next` is the next page's cursor. */
  async listConnectorsPage(
    page: { limit?: number; after?: string | undefined; prefix?: string | undefined } = {},
    opts?: CallOptions,
  ): Promise<{ connectors: string[]; next?: string }> {
    return this.json<{ connectors: string[]; next?: string }>({
      ...opts,
      method: 'GET',
      path: `/v1/connectors${query(page)}`,
      idempotent: true,
    });
  }

  /** A connector's status (`GET /v1/connectors/:name/status`): its state, its tasks', lag, throughput, isolation. CONNECTOR_NOT_FOUND (404). */
  async connectorStatus(name: string, opts?: CallOptions): Promise<ConnectorStatusInfo> {
    return this.json<ConnectorStatusInfo>({ ...opts, method: 'GET', path: `/v1/connectors/${seg(name)}/status`, idempotent: true });
  }

  /** Sets a connector's target state: `resume` (RUNNING: also starts one created STOPPED), `pause`, `stop` (tasks end; offsets may change). */
  async setConnectorState(name: string, action: 'resume' | 'pause' | 'stop', opts?: CallOptions): Promise<void> {
    await this.call({ ...opts, method: 'PUT', path: `/v1/connectors/${seg(name)}/${action}` });
  }

  /** A connector's offsets (`GET …/offsets`). */
  async connectorOffsets(name: string, opts?: CallOptions): Promise<{ offsets: ConnectorOffset[] }> {
    return this.json({ ...opts, method: 'GET', path: `/v1/connectors/${seg(name)}/offsets`, idempotent: true });
  }

  /**
   * Changes a STOPPED connector's offsets (CONNECTOR_NOT_STOPPED, 409, otherwise): `{ offsets: [...] }` (KIP-875)
   * or `{ to: StartPosition }` (a sink's group moved to earliest / latest / a time / an offset; the answer lists
   * the offset each partition starts from).
   */
  async setConnectorOffsets(
    name: string,
    body: { offsets: ConnectorOffset[] } | { to: StartPosition },
    opts?: CallOptions,
  ): Promise<{ message: string; offsets?: ConnectorOffset[] }> {
    return this.json({ ...opts, method: 'PATCH', path: `/v1/connectors/${seg(name)}/offsets`, json: body });
  }

  /** Resets a STOPPED connector's offsets: a sink to the earliest message, a source's positions forgotten. */
  async resetConnectorOffsets(name: string, opts?: CallOptions): Promise<{ message: string }> {
    return this.json({ ...opts, method: 'DELETE', path: `/v1/connectors/${seg(name)}/offsets` });
  }

  // ── pipelines as code ─────────────────────────────────────────────────────────────────────────

  /** What applying the spec would change (`POST /v1/pipeline/plan`); changes nothing. CONFIG_INVALID (400) with every issue. */
  async planPipeline(spec: PipelineSpec, opts?: CallOptions): Promise<PipelinePlan> {
    return this.json({ ...opts, method: 'POST', path: '/v1/pipeline/plan', json: spec });
  }

  /** Applies the spec (`POST /v1/pipeline/apply`): the plan, each entry with an `error` when it failed. */
  async applyPipeline(spec: PipelineSpec, opts?: CallOptions): Promise<PipelinePlan> {
    return this.json({ ...opts, method: 'POST', path: '/v1/pipeline/apply', json: spec });
  }

  // ── connector plugins ─────────────────────────────────────────────────────────────────────────

  /** The usable connector plugins (`GET /v1/connector-plugins`), sorted by name. */
  async listPlugins(opts?: CallOptions): Promise<PluginInfo[]> {
    return this.json<PluginInfo[]>({ ...opts, method: 'GET', path: '/v1/connector-plugins', idempotent: true });
  }

  /**
   * Installs a plugin into the running broker (`POST /v1/connector-plugins`; admin): `spec` is a package
   * folder or tarball on the broker's host (an absolute path), or an npm package spec. Usable at once.
   * A broken or incompatible package is refused (422 SDK_INCOMPATIBLE, PLUGIN_INVALID, …; 409
   * DUPLICATE_PLUGIN, PLUGIN_SHADOWS_BUILTIN). Not retried (npm may take a while; allow a long timeout).
   */
  async installPlugin(spec: string, opts?: CallOptions): Promise<PluginInfo> {
    return this.json<PluginInfo>({ timeoutMs: 300_000, ...opts, method: 'POST', path: '/v1/connector-plugins', json: { spec } });
  }

  /** Uninstalls a plugin (`DELETE /v1/connector-plugins/:name`; admin). 409 PLUGIN_IN_USE while a connector uses it, 409 PLUGIN_BUILTIN, 404 PLUGIN_NOT_FOUND. */
  async uninstallPlugin(name: string, opts?: CallOptions): Promise<void> {
    await this.call({ timeoutMs: 300_000, ...opts, method: 'DELETE', path: `/v1/connector-plugins/${seg(name)}` });
  }

  /** Makes the broker scan its plugins dir again (`POST /v1/connector-plugins/refresh`; admin): what it lists and refuses now. */
  async refreshPlugins(opts?: CallOptions): Promise<{ plugins: PluginInfo[]; refused: RefusedPluginInfo[] }> {
    return this.json<{ plugins: PluginInfo[]; refused: RefusedPluginInfo[] }>({
      ...opts,
      method: 'POST',
      path: '/v1/connector-plugins/refresh',
      idempotent: true,
    });
  }

  // ── messages ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Produces one batch in one request (binary codec). Resolves with one result per message, in order;
   * a message the broker refused is a `rejected` result, not a rejection of the promise. Rejects when
   * the whole request failed — then it is unknown which messages were stored, so this is not retried.
   */
  async produce(station: string, messages: readonly ProducerMessage[], opts?: CallOptions): Promise<ProduceResult[]> {
    return this.produceEncoded(station, messages.map(toWireMessage), opts);
  }

  /** @internal Produce of messages whose values are bytes already (the producer's path). */
  async produceEncoded(station: string, messages: readonly ProduceMessage[], opts?: CallOptions): Promise<ProduceResult[]> {
    const body = encodeProduceBatch(messages);
    const r = await this.json<{ results: ProduceOutcome[] }>({
      ...opts,
      method: 'POST',
      path: `/v1/stations/${seg(station)}/messages`,
      body,
      contentType: BATCH_CONTENT_TYPE,
    });
    if (!r || !Array.isArray(r.results) || r.results.length !== messages.length) {
      throw new JunctionApiError(
        ClientErrorCode.BAD_RESPONSE,
        `produce answered ${Array.isArray(r?.results) ? r.results.length : 'no'} results for ${messages.length} messages`,
      );
    }
    return r.results.map(toProduceResult);
  }

  /** Reads a range of one partition for browsing; touches no consumer group. */
  async read(station: string, options: ReadOptions = {}, opts?: CallOptions): Promise<BrowsedMessage[]> {
    const q = query({ partition: options.partition, fromOffset: options.fromOffset, limit: options.limit });
    const res = await this.call({
      ...opts,
      method: 'GET',
      path: `/v1/stations/${seg(station)}/messages${q}`,
      accept: BATCH_CONTENT_TYPE,
      idempotent: true,
    });
    return decodeMessages(res, false).map(({ deliveryId: _d, deliveryCount: _c, ...m }) => m);
  }

  // ── consumer groups ───────────────────────────────────────────────────────────────────────────

  /** Creates a group (PUT). GROUP_EXISTS (409) when it exists. Groups are also created at earliest on first fetch. */
  async createGroup(station: string, group: string, body: CreateGroupBody = {}, opts?: CallOptions): Promise<GroupInfo> {
    return this.json<GroupInfo>({ ...opts, method: 'PUT', path: groupPath(station, group), json: body });
  }

  async getGroup(station: string, group: string, opts?: CallOptions): Promise<GroupInfo> {
    return this.json<GroupInfo>({ ...opts, method: 'GET', path: groupPath(station, group), idempotent: true });
  }

  /** Every group of the station, in name order (follows the pages to the end). */
  async listGroups(station: string, opts?: CallOptions): Promise<GroupInfo[]> {
    const all: GroupInfo[] = [];
    for (let after: string | undefined; ;) {
      const r = await this.json<{ groups: GroupInfo[]; next?: string }>({
        ...opts,
        method: 'GET',
        path: `/v1/stations/${seg(station)}/groups${query({ after })}`,
        idempotent: true,
      });
      all.push(...r.groups);
      if (r.next === undefined) return all;
      after = r.next;
    }
  }

  async deleteGroup(station: string, group: string, opts?: CallOptions): Promise<void> {
    await this.call({ ...opts, method: 'DELETE', path: groupPath(station, group) });
  }

  /** Moves the group's cursor; its pending deliveries are forgotten. */
  async seek(station: string, group: string, position: StartPosition, opts?: CallOptions): Promise<GroupInfo> {
    return this.json<GroupInfo>({ ...opts, method: 'POST', path: `${groupPath(station, group)}/seek`, json: position });
  }

  /**
   * One fetch for a group (binary codec): up to maxMessages / maxBytes, waiting up to waitMs for the
   * first message. Not retried: a lost answer only means those deliveries come back after their ack
   * deadline. The request's timeout is `timeoutMs + waitMs`.
   */
  async fetch(station: string, group: string, body: Omit<FetchBody, 'encoding'> = {}, opts?: CallOptions): Promise<Delivery[]> {
    const res = await this.call({
      ...opts,
      timeoutMs: (opts?.timeoutMs ?? this.timeoutMs) + (body.waitMs ?? 0),
      method: 'POST',
      path: `${groupPath(station, group)}/fetch`,
      json: body,
      accept: BATCH_CONTENT_TYPE,
    });
    return decodeMessages(res, true);
  }

  /** Acknowledges deliveries. Retried on network errors (a repeated ack answers `unknown` or `stale`, harmlessly). */
  async ack(station: string, group: string, deliveryIds: readonly string[], opts?: CallOptions): Promise<SettleResult[]> {
    return this.settle(station, group, 'ack', { deliveryIds }, opts);
  }

  /** Makes deliveries available again, after delayMs (default at once). */
  async nack(
    station: string,
    group: string,
    deliveryIds: readonly string[],
    delayMs?: number,
    opts?: CallOptions,
  ): Promise<SettleResult[]> {
    return this.settle(station, group, 'nack', delayMs === undefined ? { deliveryIds } : { deliveryIds, delayMs }, opts);
  }

  /** Moves the deliveries' messages to the station's dead-letter station, with the reason. */
  async deadLetter(
    station: string,
    group: string,
    deliveryIds: readonly string[],
    reason?: string,
    opts?: CallOptions,
  ): Promise<SettleResult[]> {
    return this.settle(station, group, 'dead-letter', reason === undefined ? { deliveryIds } : { deliveryIds, reason }, opts);
  }

  private async settle(
    station: string,
    group: string,
    verb: keyof typeof SETTLE_STATUS,
    json: { deliveryIds: readonly string[]; delayMs?: number; reason?: string },
    opts?: CallOptions,
  ): Promise<SettleResult[]> {
    // The summary answer lists only the exceptions; the rest got the verb's own status.
    const r = await this.json<SettleSummary>({
      ...opts,
      method: 'POST',
      path: `${groupPath(station, group)}/${verb}`,
      json: { ...json, summary: true },
      idempotent: true,
    });
    if (!r || !Array.isArray(r.results) || typeof r.count !== 'number' || r.count + r.results.length !== json.deliveryIds.length) {
      throw new JunctionApiError(ClientErrorCode.BAD_RESPONSE, `${verb} answered without a summary of every delivery`);
    }
    return expandSettleSummary(json.deliveryIds, r, SETTLE_STATUS[verb]);
  }

  // ── dead letters ──────────────────────────────────────────────────────────────────────────────

  /**
   * Browses the station's dead-letter station. Each dead letter keeps the original bytes and headers;
   * why, which group, which attempt and where it came from are in the `junction-dls-*` headers
   * (DLS_HEADERS in @junction/protocol).
   */
  async listDeadLetters(station: string, options: DeadLetterListOptions = {}, opts?: CallOptions): Promise<BrowsedMessage[]> {
    const q = query({ fromOffset: options.fromOffset, limit: options.limit });
    const res = await this.call({
      ...opts,
      method: 'GET',
      path: `/v1/stations/${seg(station)}/dls${q}`,
      accept: BATCH_CONTENT_TYPE,
      idempotent: true,
    });
    return decodeMessages(res, false).map(({ deliveryId: _d, deliveryCount: _c, ...m }) => m);
  }

  /**
   * Every dead letter from `fromOffset` on, page by page (`limit` a page), until an empty page: the
   * current end. Dead letters added while iterating are included when they land before the end is met.
   */
  async *deadLetters(station: string, options: DeadLetterListOptions = {}, opts?: CallOptions): AsyncGenerator<BrowsedMessage> {
    let fromOffset = options.fromOffset;
    for (;;) {
      const page = await this.listDeadLetters(station, { fromOffset, limit: options.limit ?? 1000 }, opts);
      if (page.length === 0) return;
      yield* page;
      fromOffset = page.at(-1)!.offset + 1;
    }
  }

  /** Re-produces dead letters into the station (or for one group only). */
  async replayDeadLetters(station: string, body: DlsReplayBody = {}, opts?: CallOptions): Promise<ReplayResult> {
    return this.json<ReplayResult>({ ...opts, method: 'POST', path: `/v1/stations/${seg(station)}/dls/replay`, json: body });
  }

  /** Drops dead letters up to an offset of the DLS (all when absent). Resolves with how many were dropped. */
  async purgeDeadLetters(station: string, upToOffset?: number, opts?: CallOptions): Promise<number> {
    const r = await this.json<{ purged: number }>({
      ...opts,
      method: 'DELETE',
      path: `/v1/stations/${seg(station)}/dls${query({ upToOffset })}`,
    });
    if (typeof r?.purged !== 'number') throw new JunctionApiError(ClientErrorCode.BAD_RESPONSE, 'purge answered without "purged"');
    return r.purged;
  }

  // ── producer / consumer ───────────────────────────────────────────────────────────────────────

  /** A batching producer for one station. See Producer. */
  producer(station: string, options: ProducerOptions = {}): Producer {
    this.assertOpen();
    const p = new Producer(this, station, options, () => this.producers.delete(p));
    this.producers.add(p);
    return p;
  }

  /** A prefetching consumer of one group of one station. See Consumer. */
  consumer(station: string, group: string, options: ConsumerOptions = {}): Consumer {
    this.assertOpen();
    const c = new Consumer(this, station, group, options, () => this.consumers.delete(c));
    this.consumers.add(c);
    return c;
  }

  /**
   * Closes every consumer and producer this client made (producers send what they hold first), then
   * the connections. Idempotent. Requests made after close fail with CLOSED.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...[...this.consumers].map((c) => c.close()), ...[...this.producers].map((p) => p.close())]);
    this.transportClosed = true;
    this.transport.close();
  }

  // ── plumbing ──────────────────────────────────────────────────────────────────────────────────

  private assertOpen(): void {
    if (this.closed) throw new JunctionApiError(ClientErrorCode.CLOSED, 'the client is closed');
  }

  private async json<T>(spec: RequestSpec): Promise<T> {
    const res = await this.call(spec);
    return parseJson<T>(res);
  }

  /**
   * Sends one request; resolves with a 2xx answer, rejects with a JunctionApiError otherwise.
   * Idempotent requests are retried on retryable failures with backoff.
   */
  private async call(spec: RequestSpec): Promise<TransportResponse> {
    // Not assertOpen(): the producers and consumers still flush and settle while close() runs.
    if (this.transportClosed) throw new JunctionApiError(ClientErrorCode.CLOSED, 'the client is closed');
    const headers: Record<string, string> = { ...this.headers, accept: spec.accept ?? JSON_TYPE };
    let body = spec.body;
    if (spec.json !== undefined) {
      body = Buffer.from(JSON.stringify(spec.json), 'utf8');
      headers['content-type'] = JSON_TYPE;
    } else if (body !== undefined) {
      headers['content-type'] = spec.contentType ?? 'application/octet-stream';
    }
    const retries = spec.idempotent ? this.retry.retries : 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.transport.request({
          method: spec.method,
          path: spec.path,
          headers,
          body,
          timeoutMs: spec.timeoutMs ?? this.timeoutMs,
          signal: spec.signal,
        });
        if (res.status >= 200 && res.status < 300) return res;
        throw errorFromResponse(res.status, res.body, spec.method, spec.path);
      } catch (err) {
        if (!(err instanceof JunctionApiError) || !err.retryable || attempt >= retries || spec.signal?.aborted) throw err;
        await sleep(backoffDelay(attempt, this.retry), spec.signal);
      }
    }
  }
}

function groupPath(station: string, group: string): string {
  return `/v1/stations/${seg(station)}/groups/${seg(group)}`;
}

function query(params: Record<string, number | string | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) if (v !== undefined) parts.push(`${k}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}
