/**
 * Station and group metadata in one JetStream KV bucket (`<prefix>-meta`), so that every Junction node
 * sees the same stations and groups. Each node keeps all of it in memory, fed by a KV watch; a miss is
 * confirmed by a read from the bucket's stream leader before the store says "not found" (another node may
 * have written it a moment ago). Writes are compare-and-set on the key's revision, done here directly on
 * the bucket's stream (`Nats-Expected-Last-Subject-Sequence`) so that a read-then-write never trusts a
 * replica that lags.
 *
 * Keys (see names.ts): `s.<station>` StationMeta, `g.<station>.<group>` GroupMeta, `d.<station>.<group>`
 * the group's dead-letter count.
 */
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection, QueuedIterator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ClusterStationConfig } from './config.js';
import { isApiError, JsErr } from './errors.js';
import type { Names } from './names.js';
import type { Wire } from './wire.js';
import { retryWhileStarting } from './startup.js';

export interface StationMeta {
  name: string;
  /** The incarnation id (`StationInfo.id`); absent in metadata written before ids. */
  id?: string | undefined;
  config: ClusterStationConfig;
  createdAt: number;
  deadLetterOf?: string | undefined;
  /** False while its streams are being created: the station does not exist yet for anyone else. */
  ready: boolean;
}

export interface GroupMeta {
  createdAt: number;
  /**
   * The group's own ack deadline and attempt limit; absent: the station's `deadLetter` settings, followed
   * when they change. Metadata from before this rule always holds both: a value equal to the station's
   * counts as inherited (core.ts `groupSettings`).
   */
  maxAckTimeMs?: number | undefined;
  maxDeliveries?: number | undefined;
  /**
   * Consumer generation per partition: a seek (or a hand-over, `releaseDeliveries`) replaces the consumer
   * by one of the next generation.
   */
  gens: number[];
  /**
   * The first offset of each partition's current consumer (where it started: the group's start, a seek, a
   * release). JetStream reports an ack floor of 0 for a consumer that has acked nothing yet, whatever its
   * start. Absent in metadata from before.
   */
  starts?: (number | undefined)[] | undefined;
  /**
   * Random per incarnation of the group: with the partition and its generation it makes the partition's
   * epoch, the last part of every deliveryId (names.ts `epochOf`). Absent in metadata from before epochs.
   */
  nonce?: string | undefined;
  ready: boolean;
}

interface Entry {
  rev: number;
  value: unknown;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class Meta {
  private kv: KV | undefined;
  private watcher: QueuedIterator<KvWatchEntry> | undefined;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(key: string, value: unknown) => void>();
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly wire: Wire,
    private readonly names: Names,
    private readonly replicas: number,
    private readonly log: Logger,
    /** Test seam: what creates (or binds) the bucket. */
    private readonly buckets: (nc: NatsConnection, timeoutMs: number) => Pick<Kvm, 'create'> = (nc, timeoutMs) =>
      new Kvm(jetstream(nc, { timeout: timeoutMs })),
  ) {}

  get streamName(): string {
    return `KV_${this.names.bucket}`;
  }

  private subjectOf(key: string): string {
    return `$KV.${this.names.bucket}.${key}`;
  }

  /**
   * Creates (or binds) the bucket and loads everything into memory. While the cluster is still starting
   * (no JetStream yet, peers still joining), the bucket's creation is retried until `deadline`
   * (performance.now()). A bucket with fewer replicas than this store's default gets more (JetStream moves
   * them live): the station metadata must outlive the loss of a server as the stations do.
   */
  async open(timeoutMs: number, deadline: number): Promise<void> {
    // The store's request timeout, not nats.js's 5 s: creating an R3 bucket on a cluster that just started
    // (or is busy) can take longer.
    this.kv = await retryWhileStarting(`creating the metadata bucket ${this.names.bucket}`, deadline, this.log, () =>
      this.buckets(this.nc, this.wire.timeoutMs).create(this.names.bucket, {
        history: 1,
        replicas: this.replicas,
        storage: 'file',
        allow_direct: false,
      }),
    );
    const info = await retryWhileStarting(`reading the metadata bucket ${this.names.bucket}`, deadline, this.log, () =>
      this.wire.api<{ config: { num_replicas: number } & Record<string, unknown>; state: { last_seq: number } }>(
        `$JS.API.STREAM.INFO.${this.streamName}`,
      ),
    );
    if (info.config.num_replicas < this.replicas) {
      try {
        await this.wire.api(`$JS.API.STREAM.UPDATE.${this.streamName}`, { ...info.config, num_replicas: this.replicas });
        this.log.info(
          { bucket: this.names.bucket, from: info.config.num_replicas, to: this.replicas },
          'metadata bucket given more replicas',
        );
      } catch (err) {
        this.log.warn(
          { err, bucket: this.names.bucket, replicas: info.config.num_replicas },
          "the metadata bucket keeps fewer replicas than the store's default: losing its server makes every station unavailable",
        );
      }
    }
    const until = info.state.last_seq;
    let loaded!: () => void;
    const initial = new Promise<void>((resolve) => (loaded = resolve));
    if (until === 0) loaded();
    // Its consumer is one more JetStream request, which a cluster that just formed can leave unanswered
    // for a while (a request timeout): retried like the steps above until the open's deadline.
    const kv = this.kv;
    this.watcher = await retryWhileStarting(`watching the metadata bucket ${this.names.bucket}`, deadline, this.log, () =>
      kv.watch({ key: '>' }),
    );
    void (async () => {
      try {
        for await (const e of this.watcher!) {
          this.apply(e.key, e.revision, e.operation === 'PUT' ? parse(e.value) : undefined);
          if (e.revision >= until) loaded();
        }
      } catch (err) {
        if (!this.closed) this.log.error({ err }, 'metadata watch ended');
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      initial,
      new Promise<void>((_r, reject) => {
        timer = setTimeout(() => reject(new Error(`metadata bucket ${this.names.bucket} did not load within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.stop();
  }

  /** Called for every change (from this node or another), after the cache has it. */
  onChange(listener: (key: string, value: unknown) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private apply(key: string, rev: number, value: unknown): void {
    const cur = this.entries.get(key);
    if (cur && cur.rev >= rev) return;
    this.entries.set(key, { rev, value });
    for (const l of this.listeners) {
      try {
        l(key, value);
      } catch (err) {
        this.log.warn({ err, key }, 'metadata listener threw');
      }
    }
  }

  /** The cached value and its revision (undefined value: deleted or never seen). */
  peek<T>(key: string): { rev: number; value: T | undefined } {
    const e = this.entries.get(key);
    return { rev: e?.rev ?? 0, value: e?.value as T | undefined };
  }

  /** Every cached live value whose key starts with `prefix`. */
  scan<T>(prefix: string): [string, T][] {
    const out: [string, T][] = [];
    for (const [k, e] of this.entries) if (e.value !== undefined && k.startsWith(prefix)) out.push([k, e.value as T]);
    return out;
  }

  /**
   * Reads `key` until `done` holds for its value (undefined: deleted) or `deadline` passes, and answers the
   * last read. Woken by the watch; reads at least every 250 ms in case a change is missed.
   */
  async waitFor<T>(key: string, done: (value: T | undefined) => boolean, deadline: number): Promise<{ rev: number; value: T | undefined }> {
    for (;;) {
      const cur = await this.read<T>(key);
      if (done(cur.value) || Date.now() >= deadline || this.closed) return cur;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, Math.min(250, Math.max(0, deadline - Date.now())));
        const off = this.onChange((k) => {
          if (k === key) wake();
        });
        function wake(): void {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    }
  }

  /** Reads a key from the bucket's stream leader and updates the cache. */
  async read<T>(key: string): Promise<{ rev: number; value: T | undefined }> {
    try {
      const r = await this.wire.api<{ message: { seq: number; hdrs?: string; data?: string } }>(
        `$JS.API.STREAM.MSG.GET.${this.streamName}`,
        {
          last_by_subj: this.subjectOf(key),
        },
      );
      const m = r.message;
      const hdrs = m.hdrs ? Buffer.from(m.hdrs, 'base64').toString('utf8') : '';
      const deleted = /\r\nKV-Operation:\s*(DEL|PURGE)/i.test(hdrs);
      const value = deleted ? undefined : parse(Buffer.from(m.data ?? '', 'base64'));
      this.apply(key, m.seq, value);
      return { rev: m.seq, value: value as T | undefined };
    } catch (err) {
      if (isApiError(err, JsErr.NO_MESSAGE_FOUND)) return { rev: 0, value: undefined };
      throw err;
    }
  }

  /** The value, from the cache or (on a miss) from the leader. */
  async get<T>(key: string): Promise<T | undefined> {
    const cached = this.peek<T>(key);
    if (cached.value !== undefined) return cached.value;
    return (await this.read<T>(key)).value;
  }

  /** Writes if the key's revision is still `expectRev` (0: the key never existed). Undefined when it was not. */
  private async put(key: string, value: unknown, expectRev: number | undefined): Promise<number | undefined> {
    const hdrs = expectRev === undefined ? undefined : { 'Nats-Expected-Last-Subject-Sequence': String(expectRev) };
    try {
      const ack = await this.wire.publish(this.subjectOf(key), enc.encode(JSON.stringify(value)), hdrs);
      this.apply(key, ack.seq, value);
      return ack.seq;
    } catch (err) {
      if (isApiError(err, 10071)) return undefined; // wrong last sequence: someone else wrote first
      throw err;
    }
  }

  /** Creates a key that does not exist (or was deleted). Undefined when it exists. */
  async create(key: string, value: unknown): Promise<number | undefined> {
    const cur = await this.read(key);
    if (cur.value !== undefined) return undefined;
    return this.put(key, value, cur.rev);
  }

  /** Compare-and-set. Undefined when the revision moved on. */
  update(key: string, value: unknown, rev: number): Promise<number | undefined> {
    return this.put(key, value, rev);
  }

  /** Unconditional write. */
  async set(key: string, value: unknown): Promise<number> {
    return (await this.put(key, value, undefined))!;
  }

  async delete(key: string): Promise<void> {
    const m = await this.wire.publish(this.subjectOf(key), new Uint8Array(0), { 'KV-Operation': 'DEL' });
    this.apply(key, m.seq, undefined);
  }
}

function parse(data: Uint8Array): unknown {
  const text = dec.decode(data);
  return text ? (JSON.parse(text) as unknown) : undefined;
}
