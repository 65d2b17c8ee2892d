/**
 * Cluster placement of connector tasks: which Junction node runs which task.
 *
 * Bucket `<prefix>-leases` (a JetStream KV bucket with a bucket TTL, `leaseTtlMs`, default 5 s;
 * nats-server 2.9 has no per-key TTL, and a value older than the TTL is removed by the server):
 * - `n.<node>`: each node's heartbeat, rewritten every `heartbeatMs` (1 s). A node is live while its
 *   heartbeat was seen (here, by the local clock of arrival) within 3 × heartbeatMs.
 * - `t.<connector>.<task>`: `{ node, state }`, the task's lease. Taken with a create (expected last
 *   sequence 0: only when nobody holds it or the holder's last renewal aged out), renewed every
 *   heartbeat with a compare-and-set on the revision; the revision is the fencing token.
 *
 * Each task's owner is chosen by rendezvous hashing over the live members, so every node computes the
 * same spread from the same member list, and a node joining takes about 1/n of the tasks while a node
 * leaving moves only its own. A node runs a task only while it holds the lease AND renewed it within
 * half the TTL (`owns`); a watchdog stops the task when a renewal is overdue, well before the lease
 * can expire and another node take it. A node that is no longer a task's owner (a new member won the
 * hash) stops the task first and then deletes the lease, so the new owner takes it at once.
 *
 * Implements `Placement` of `@junction/connect` structurally (this package does not depend on it).
 */
import { createHash } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { isStarting, openFailed, retryWhileStarting } from './startup.js';
import type { QueuedIterator } from '@nats-io/transport-node';
import { pino, type Logger } from 'pino';
import { JunctionError } from './errors.js';
import { enc } from './names.js';
import type { JetStreamStore } from './store.js';

export interface TaskRef {
  connector: string;
  task: number;
}

export interface PlacementHooks {
  tasks(): TaskRef[];
  stateOf(ref: TaskRef): string | undefined;
  changed(): Promise<void>;
}

export interface ClusterPlacementOptions {
  store: JetStreamStore;
  /** This node's name, shown as the `worker` of its tasks. Unique per process. */
  node: string;
  /** Bucket TTL = lease lifetime. Default 5000 ms. */
  leaseTtlMs?: number | undefined;
  /** Heartbeat and renewal period. Default 1000 ms. */
  heartbeatMs?: number | undefined;
  /** Replicas of the leases bucket. Default: the store's default replicas (`JetStreamStore.defaultReplicas`). */
  replicas?: number | undefined;
  logger?: Logger | undefined;
}

interface Held {
  ref: TaskRef;
  rev: number;
  /** When the last renewal (or the take) was confirmed (Date.now()). */
  renewedAt: number;
}

interface SeenLease {
  node: string;
  state?: string | undefined;
  seenAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function taskKey(ref: TaskRef): string {
  return `t.${enc(ref.connector)}.${ref.task}`;
}

function score(member: string, key: string): bigint {
  return createHash('sha256').update(member).update('\0').update(key).digest().readBigUInt64BE(0);
}

/**
 * The owner of each task: rendezvous hashing (each task ranks the members by a hash of member and
 * task) with bounded load — a member takes at most ⌈T/n⌉ tasks and only `T mod n` members take that
 * many — so every member runs ⌊T/n⌋ or ⌈T/n⌉ tasks and a member joining always takes a share. Tasks
 * are assigned in key order, so every node computes the same answer from the same members and tasks.
 */
export function assign(members: readonly string[], keys: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (members.length === 0) return out;
  const sorted = [...new Set(keys)].sort();
  const floor = Math.floor(sorted.length / members.length);
  let extra = sorted.length % members.length;
  const counts = new Map(members.map((m) => [m, 0]));
  for (const key of sorted) {
    const ranked = [...members].sort((a, b) => {
      const sa = score(a, key);
      const sb = score(b, key);
      return sa === sb ? (a < b ? -1 : 1) : sa > sb ? -1 : 1;
    });
    for (const m of ranked) {
      const n = counts.get(m)!;
      if (n < floor || (n === floor && extra > 0)) {
        if (n === floor) extra--;
        counts.set(m, n + 1);
        out.set(key, m);
        break;
      }
    }
  }
  return out;
}

export class ClusterPlacement {
  readonly node: string;
  private readonly store: JetStreamStore;
  private readonly ttl: number;
  private readonly beat: number;
  private readonly replicas: number;
  private readonly log: Logger;
  private kv: KV | undefined;
  private watcher: QueuedIterator<KvWatchEntry> | undefined;
  private hooks: PlacementHooks | undefined;
  /** Member → when its heartbeat was last seen here. */
  private readonly members = new Map<string, number>();
  /** Lease key → what it says, as last seen. */
  private readonly leases = new Map<string, SeenLease>();
  /** Leases this node holds (and whose tasks it may run). */
  private readonly held = new Map<string, Held>();
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private ticking = false;
  private closed = false;
  private memberRev = 0;

  constructor(o: ClusterPlacementOptions) {
    this.store = o.store;
    this.node = o.node;
    this.ttl = o.leaseTtlMs ?? 5000;
    this.beat = o.heartbeatMs ?? 1000;
    this.replicas = o.replicas ?? 0;
    this.log = (o.logger ?? pino({ level: 'silent' })).child({ component: 'placement', node: o.node });
  }

  get bucket(): string {
    return `${this.store.names.prefix}-leases`;
  }

  private get memberKey(): string {
    return `n.${Buffer.from(this.node).toString('base64url')}`;
  }

  async start(hooks: PlacementHooks): Promise<void> {
    this.hooks = hooks;
    const kvm = new Kvm(jetstream(this.store.connection, { timeout: this.store.requestTimeoutMs }));
    const replicas = this.replicas > 0 ? this.replicas : this.store.defaultReplicas;
    // The store is open, so JetStream answered; a cluster still starting can refuse a moment longer.
    this.kv = await retryWhileStarting(`creating the leases bucket ${this.bucket}`, performance.now() + 60_000, this.log, () =>
      kvm.create(this.bucket, { history: 1, ttl: this.ttl, replicas, storage: 'file' }),
    ).catch((err: unknown) => {
      throw isStarting(err) ? openFailed(`the leases bucket ${this.bucket} could not be opened`, err) : err;
    });
    this.watcher = await this.kv.watch({ key: '>' });
    void this.consume(this.watcher);
    // A bucket created a moment ago may not have a leader answering yet (no responders).
    await retryWhileStarting(`joining the members in ${this.bucket}`, performance.now() + 60_000, this.log, () => this.heartbeat());
    this.timer = setInterval(() => void this.tick(), this.beat);
    this.timer.unref();
    this.watchdog = setInterval(() => this.guard(), Math.max(50, Math.floor(this.beat / 4)));
    this.watchdog.unref();
    this.log.info({ bucket: this.bucket, ttlMs: this.ttl }, 'cluster placement started');
  }

  private async consume(it: QueuedIterator<KvWatchEntry>): Promise<void> {
    try {
      for await (const e of it) {
        const now = Date.now();
        const live = e.operation === 'PUT';
        if (e.key.startsWith('n.')) {
          const node = Buffer.from(e.key.slice(2), 'base64url').toString();
          if (live) this.members.set(node, now);
          else this.members.delete(node);
        } else if (e.key.startsWith('t.')) {
          if (!live) {
            this.leases.delete(e.key);
            continue;
          }
          try {
            const v = JSON.parse(decoder.decode(e.value)) as { node: string; state?: string };
            this.leases.set(e.key, { node: v.node, state: v.state, seenAt: now });
          } catch {
            // not ours
          }
        }
      }
    } catch (err) {
      if (!this.closed) this.log.error({ err }, 'lease watch ended');
    }
  }

  /** Members whose heartbeat arrived recently (this node always). */
  liveMembers(): string[] {
    const now = Date.now();
    const out = new Set<string>([this.node]);
    for (const [m, at] of this.members) if (now - at < 3 * this.beat) out.add(m);
    return [...out].sort();
  }

  owns(ref: TaskRef): boolean {
    const h = this.held.get(taskKey(ref));
    return h !== undefined && Date.now() - h.renewedAt < this.ttl / 2;
  }

  remote(ref: TaskRef): { worker: string; state?: string | undefined } | undefined {
    const l = this.leases.get(taskKey(ref));
    if (!l || l.node === this.node || Date.now() - l.seenAt >= this.ttl) return undefined;
    return { worker: l.node, state: l.state };
  }

  /**
   * The fencing token of this node's lease on a task: the lease's KV revision (a stream sequence of the
   * leases bucket: it grows with every renewal, and a later owner's take is later in the stream, so
   * larger). Undefined unless this node owns the task now.
   */
  fence(ref: TaskRef): number | undefined {
    if (!this.owns(ref)) return undefined;
    return this.held.get(taskKey(ref))?.rev;
  }

  poke(): void {
    setImmediate(() => void this.tick());
  }

  /** Drops leases whose renewal is overdue (half the TTL): their tasks stop before anyone can take them. */
  private guard(): void {
    const now = Date.now();
    let lost = false;
    for (const [key, h] of this.held) {
      if (now - h.renewedAt >= this.ttl / 2) {
        this.held.delete(key);
        lost = true;
        this.log.warn({ task: h.ref }, 'lease renewal overdue; stopping the task');
      }
    }
    if (lost) void this.hooks?.changed();
  }

  private async heartbeat(): Promise<void> {
    this.memberRev = await this.kv!.put(this.memberKey, encoder.encode(JSON.stringify({ node: this.node, at: Date.now() })));
  }

  private value(ref: TaskRef): Uint8Array {
    return encoder.encode(JSON.stringify({ node: this.node, connector: ref.connector, task: ref.task, state: this.hooks?.stateOf(ref) }));
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.closed || !this.kv || !this.hooks) return;
    this.ticking = true;
    try {
      const kv = this.kv;
      await this.heartbeat().catch((err: unknown) => this.log.warn({ err: String(err) }, 'heartbeat failed'));
      const members = this.liveMembers();
      const wanted = new Map(this.hooks.tasks().map((r) => [taskKey(r), r]));
      const owners = assign(members, [...wanted.keys()]);
      let changed = false;
      const release: [string, Held][] = [];
      // Renew what this node holds and still should; release the rest.
      await Promise.all(
        [...this.held].map(async ([key, h]) => {
          if (!wanted.has(key) || owners.get(key) !== this.node) {
            release.push([key, h]);
            return;
          }
          try {
            const rev = await kv.update(key, this.value(h.ref), h.rev, this.ttl / 2);
            if (this.held.get(key) === h) {
              h.rev = rev;
              h.renewedAt = Date.now();
            }
          } catch (err) {
            if (this.held.get(key) === h) {
              this.held.delete(key);
              changed = true;
              this.log.warn({ task: h.ref, err: String(err) }, 'lease lost');
            }
          }
        }),
      );
      for (const [key] of release) this.held.delete(key);
      if (release.length > 0) {
        // Stop the tasks first, then give the leases up, so the new owner starts them at once.
        await this.hooks.changed();
        await Promise.all(release.map(([key, h]) => kv.delete(key, { previousSeq: h.rev }).catch(() => {})));
        this.log.info({ tasks: release.map(([, h]) => h.ref) }, 'tasks released');
        changed = false;
      }
      // Take the tasks this node should run and nobody holds.
      const taken: TaskRef[] = [];
      await Promise.all(
        [...wanted].map(async ([key, ref]) => {
          if (this.held.has(key) || owners.get(key) !== this.node) return;
          const seen = this.leases.get(key);
          if (seen && seen.node !== this.node && Date.now() - seen.seenAt < this.ttl / 2 && members.includes(seen.node)) return; // held by a live node
          try {
            const rev = await kv.create(key, this.value(ref));
            this.held.set(key, { ref, rev, renewedAt: Date.now() });
            taken.push(ref);
          } catch {
            // still held (the holder is alive, or its lease has not aged out yet)
          }
        }),
      );
      if (taken.length > 0) {
        this.log.info({ tasks: taken }, 'tasks taken');
        changed = true;
      }
      if (changed) await this.hooks.changed();
    } catch (err) {
      this.log.warn({ err: String(err) }, 'placement round failed');
    } finally {
      this.ticking = false;
    }
  }

  /** Gives up every lease (the runtime stopped its runners before) and the membership. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.watchdog);
    const kv = this.kv;
    if (kv) {
      const held = [...this.held];
      this.held.clear();
      await Promise.all(held.map(([key, h]) => kv.delete(key, { previousSeq: h.rev }).catch(() => {})));
      await kv.delete(this.memberKey, { previousSeq: this.memberRev }).catch(() => {});
    }
    this.watcher?.stop();
  }
}

/**
 * Connector definitions shared by every node: `c.<connector>` in the metadata bucket (implements
 * `DefinitionStore` of `@junction/connect` structurally).
 */
export class ClusterDefinitions {
  constructor(private readonly store: JetStreamStore) {}
  async load(): Promise<unknown[]> {
    return this.store.connectorMeta().list();
  }
  async save(c: { declaration: { name: string } }): Promise<void> {
    await this.store.connectorMeta().put(c.declaration.name, c);
  }
  async remove(name: string): Promise<void> {
    await this.store.connectorMeta().remove(name);
  }
  watch(listener: (name: string, value: unknown) => void): () => void {
    return this.store.connectorMeta().onChange(listener);
  }
}

/** What `o.<connector>` holds: the positions and the fence (lease revision) of the last claim or write. */
interface StoredPositions {
  version: 1;
  positions: Record<string, Json>;
  fence: number;
  node?: string | undefined;
  at: number;
}

const POSITION_FENCED = 'POSITION_FENCED';

/** JSON (the connector SDK's JsonValue, restated: this package does not depend on it). */
type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

function asStored(v: unknown): StoredPositions | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Partial<StoredPositions>;
  if (typeof o.positions !== 'object' || o.positions === null) return undefined;
  return { version: 1, positions: o.positions, fence: typeof o.fence === 'number' ? o.fence : 0, node: o.node, at: o.at ?? 0 };
}

/**
 * Source connector positions shared by every node: `o.<connector>` in the metadata bucket (implements
 * `PositionStore` of `@junction/connect` structurally). Every write is a compare-and-set on the key's
 * revision and carries the writer's fence (its lease revision on the connector's task 0, see
 * `ClusterPlacement.fence`): a write whose fence is smaller than the stored one is refused with
 * `POSITION_FENCED`, so a stale owner cannot overwrite a newer owner's position. `load` with a fence
 * claims the key first (stores the fence), so once a new owner has read the positions, nothing the old
 * owner still tries to write lands.
 */
export class ClusterPositions {
  constructor(
    private readonly store: JetStreamStore,
    private readonly node?: string | undefined,
  ) {}

  private fenced(name: string, mine: number, theirs: number): JunctionError {
    return new JunctionError(
      POSITION_FENCED,
      `the positions of source connector ${name} are held by a newer owner (fence ${theirs} > ${mine})`,
    );
  }

  async load(name: string, fence?: number): Promise<Record<string, Json>> {
    const meta = this.store.positionMeta();
    for (let attempt = 0; ; attempt++) {
      const cur = await meta.read(name); // from the bucket's stream leader: never a lagging replica
      const v = asStored(cur.value);
      if (fence === undefined) return v?.positions ?? {};
      if (v && v.fence > fence) throw this.fenced(name, fence, v.fence);
      if (v && v.fence === fence) return v.positions;
      const next: StoredPositions = { version: 1, positions: v?.positions ?? {}, fence, node: this.node, at: Date.now() };
      if ((await meta.update(name, next, cur.rev)) !== undefined) return next.positions;
      if (attempt >= 20)
        throw new JunctionError('UNAVAILABLE', `cannot claim the positions of source connector ${name}: too many concurrent writes`, {
          retryable: true,
        });
    }
  }

  async save(name: string, positions: Record<string, Json>, fence?: number): Promise<void> {
    const meta = this.store.positionMeta();
    let cur = meta.peek(name);
    for (let attempt = 0; ; attempt++) {
      const v = asStored(cur.value);
      if (fence !== undefined && v && v.fence > fence) throw this.fenced(name, fence, v.fence);
      const next: StoredPositions = { version: 1, positions, fence: fence ?? v?.fence ?? 0, node: this.node, at: Date.now() };
      if ((await meta.update(name, next, cur.rev)) !== undefined) return;
      if (attempt >= 20)
        throw new JunctionError('UNAVAILABLE', `cannot store the positions of source connector ${name}: too many concurrent writes`, {
          retryable: true,
        });
      cur = await meta.read(name); // the cache was behind (or another writer came first): ask the leader
    }
  }

  /** Empties the positions but keeps the fence (a stale owner still cannot write after a reset). */
  async remove(name: string): Promise<void> {
    await this.save(name, {});
  }
}
