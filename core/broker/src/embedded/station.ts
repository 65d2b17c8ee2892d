/**
 * A station of the embedded engine: its partition logs, high watermarks, dedup index, groups and
 * long-poll waiters. The store (store.ts) owns the stations and their metadata files.
 */
import { join } from 'node:path';
import { DEDUP_MAX_IDS_DEFAULT, type StationConfig, type StationDedupInfo } from '@junction/protocol';
import type { MessageInput, PartitionInfo, ProduceResult } from '../contract.js';
import { ErrorCode } from '../errors.js';
import { createMemoryLog, openFileLog } from '../log/index.js';
import { LazyLog, type LogSummary } from '../log/lazy-log.js';
import type { LogOptions, LogRecord, PartitionLog, RecordInput } from '../log/types.js';
import { DedupIndex, partitionForKey, type DedupKey } from './dedup.js';
import { DedupRestorer } from './dedup-restore.js';
import type { DeadLetterItem, GroupHost, GroupRt } from './group.js';

export interface StationMeta {
  name: string;
  /** The incarnation id (`StationInfo.id`). */
  id: string;
  config: StationConfig;
  createdAt: number;
  deadLetterOf?: string | undefined;
  /**
   * Set when station.json was lost and rebuilt from the partitions (options other than the partition
   * count are guesses: retention keeps everything). Cleared by the next update of the station.
   */
  rebuilt?: { at: number; detail: string } | undefined;
}

export interface StationDeps {
  defaultFsync: string;
  onFsync: (seconds: number) => void;
  deadLetter: (station: StationRt, group: string, items: DeadLetterItem[]) => Promise<void>;
  /** Retention removed messages a group had not settled. */
  retentionLost: (station: StationRt, group: string, partition: number, lost: number) => void;
  /** msgIds left the dedup window early (the index is at its bound). */
  dedupEvicted?: ((station: StationRt, ids: number) => void) | undefined;
  /** How the dedup index was restored at open, or that writing its snapshot failed. */
  dedupLog?: ((station: StationRt, level: 'info' | 'warn' | 'error', detail: Record<string, unknown>, message: string) => void) | undefined;
  /** Damage and repair callbacks for a partition's log (file storage). */
  logHooks?: ((partition: number) => Pick<LogOptions, 'onDamage' | 'onTornTail' | 'onMetadataRepair'>) | undefined;
}

/** Partition logs of one station opened at once. */
const OPEN_CONCURRENCY = 8;

export class StationRt implements GroupHost {
  readonly groups = new Map<string, GroupRt>();
  // Made on first use: most of many stations never see a msgId or a long poll.
  private dedupIndex: DedupIndex | undefined;
  private waitersSet: Set<() => void> | undefined;
  /** msgIds inside the dedup window (made on first use); its restore and snapshots are the DedupRestorer's. */
  get dedup(): DedupIndex {
    return (this.dedupIndex ??= new DedupIndex(this.dedupMaxIds));
  }
  set dedup(index: DedupIndex) {
    this.dedupIndex = index;
  }
  /** Whether the station has a dedup index yet (info and metrics do not make one). */
  get hasDedup(): boolean {
    return this.dedupIndex !== undefined;
  }
  private get waiters(): Set<() => void> {
    return (this.waitersSet ??= new Set());
  }
  readonly dedupStore: DedupRestorer;
  /** When the store last warned that this index is at its bound. */
  dedupWarnedAt = 0;
  /** Per partition: the log's end as opened (before floors were raised): what the log really holds. */
  readonly openedEnd: number[];
  /** Per partition: every offset below is durable and may be delivered. */
  readonly hw: number[];
  private rr = 0;
  /** Rebuilding the dedup index after a restart: produces wait for it (in their order), nothing else does. */
  private dedupRebuild: Promise<void> | null = null;
  /** Metadata repaired by this process (what and how), for the station's health. */
  readonly notes: string[] = [];
  closed = false;
  /** When a request last touched the station (the store's background pass visits it while it has work). */
  touchedAt = 0;

  private constructor(
    public meta: StationMeta,
    readonly dir: string,
    readonly logs: PartitionLog[],
    private readonly deps: StationDeps,
  ) {
    this.hw = logs.map((l) => l.nextOffset);
    this.openedEnd = [...this.hw];
    this.dedupStore = new DedupRestorer(this);
  }

  /** The bound of the dedup index. */
  get dedupMaxIds(): number {
    return this.meta.config.dedupMaxIds ?? DEDUP_MAX_IDS_DEFAULT;
  }

  /** Logs through the store's logger (dedup restore and snapshots). */
  dedupLog(level: 'info' | 'warn' | 'error', detail: Record<string, unknown>, message: string): void {
    this.deps.dedupLog?.(this, level, detail, message);
  }

  dedupInfo(): StationDedupInfo {
    const index = this.dedupIndex;
    return {
      ids: index?.size ?? 0,
      maxIds: this.dedupMaxIds,
      evicted: index?.evicted ?? 0,
      bytes: index?.bytes ?? 0,
      ...(this.dedupStore.restored && { restored: this.dedupStore.restored }),
    };
  }

  /**
   * Opens the station's partition logs. File logs are LazyLogs (log/lazy-log.ts): open while used, closed
   * by the process's LRU of open logs when idle. With `summaries` (what a clean stop recorded, one per
   * partition) nothing is opened now: each log opens on its first use.
   */
  static async open(meta: StationMeta, dir: string, deps: StationDeps, summaries?: readonly LogSummary[]): Promise<StationRt> {
    const { config } = meta;
    const logs: Array<PartitionLog | undefined> = new Array(config.partitions);
    const fileLog = (p: number) => (c: { fsync?: string; segmentBytes?: number }) =>
      openFileLog({
        dir: join(dir, 'partitions', String(p)),
        segmentBytes: c.segmentBytes ?? config.segmentBytes,
        fsync: (c.fsync ?? config.fsync ?? deps.defaultFsync) as never,
        onFsync: deps.onFsync,
        ...deps.logHooks?.(p),
      });
    if (summaries && config.storage === 'file' && summaries.length === config.partitions)
      return StationRt.fromSummaries(meta, dir, deps, summaries);
    const open = async (p: number): Promise<PartitionLog> =>
      config.storage === 'memory'
        ? createMemoryLog({ segmentBytes: config.segmentBytes })
        : new LazyLog(fileLog(p), { log: await fileLog(p)({}) });
    // Several partitions at once: an open mostly waits for small reads (and, after a crash, an fsync).
    let nextP = 0;
    const worker = async (): Promise<void> => {
      while (nextP < config.partitions) {
        const p = nextP++;
        logs[p] = await open(p);
      }
    };
    const opened = await Promise.allSettled(Array.from({ length: Math.min(OPEN_CONCURRENCY, config.partitions) }, worker));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.allSettled(logs.map((l) => l?.close()));
      throw failed.reason;
    }
    return new StationRt(meta, dir, logs as PartitionLog[], deps);
  }

  /** A file station whose partitions open on first use (see open); synchronous, no I/O. */
  static fromSummaries(meta: StationMeta, dir: string, deps: StationDeps, summaries: readonly LogSummary[]): StationRt {
    const { config } = meta;
    const logs = summaries.map(
      (sum, p) =>
        new LazyLog(
          (c) =>
            openFileLog({
              dir: join(dir, 'partitions', String(p)),
              segmentBytes: c.segmentBytes ?? config.segmentBytes,
              fsync: (c.fsync ?? config.fsync ?? deps.defaultFsync) as never,
              onFsync: deps.onFsync,
              ...deps.logHooks?.(p),
            }),
          { summary: sum },
        ),
    );
    return new StationRt(meta, dir, logs, deps);
  }

  get name(): string {
    return this.meta.name;
  }

  get id(): string {
    return this.meta.id;
  }

  deadLetterSettings(): { maxAckTimeMs: number; maxDeliveries: number } {
    return this.meta.config.deadLetter;
  }

  retentionLost(group: string, partition: number, lost: number): void {
    this.deps.retentionLost(this, group, partition, lost);
  }

  get config(): StationConfig {
    return this.meta.config;
  }

  get partitionCount(): number {
    return this.logs.length;
  }

  get persistent(): boolean {
    return this.config.storage === 'file';
  }

  syncPolicy(): 'always' | 'interval' | 'never' {
    const f = this.config.fsync ?? this.deps.defaultFsync;
    return f === 'always' ? 'always' : f === 'never' ? 'never' : 'interval';
  }

  /** The interval of an `interval:<ms>` policy. */
  syncIntervalMs(): number {
    const f = this.config.fsync ?? this.deps.defaultFsync;
    return f.startsWith('interval:') ? Number(f.slice(9)) : 0;
  }

  bounds(partition: number): { first: number; end: number } {
    const log = this.logs[partition]!;
    return { first: Math.min(log.firstOffset, this.hw[partition]!), end: this.hw[partition]! };
  }

  /** Records from `from` below the high watermark. `msgIds`: decode each record's msgId (only the dedup index needs them). */
  read(partition: number, from: number, maxMessages: number, maxBytes: number, msgIds = false): Promise<LogRecord[]> {
    const log = this.logs[partition];
    if (!log) return Promise.resolve([]);
    const end = this.hw[partition]!;
    if (from >= end) return Promise.resolve([]);
    return log.read(from, { maxMessages: Math.min(maxMessages, end - Math.max(from, log.firstOffset)), maxBytes, msgIds }).then((recs) => {
      let n = recs.length;
      while (n > 0 && recs[n - 1]!.offset >= end) n--;
      return n === recs.length ? recs : recs.slice(0, n);
    });
  }

  deadLetter(group: string, items: DeadLetterItem[]): Promise<void> {
    return this.deps.deadLetter(this, group, items);
  }

  notify(): void {
    if (!this.waitersSet || this.waitersSet.size === 0) return;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /** Resolves on the next notify, after `ms`, on abort, or at close — whichever is first. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.closed || ms <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * Stores a batch: per message a result (stored / duplicate / rejected). Offsets are assigned
   * synchronously in call order; resolves when the stored messages are durable under the policy.
   */
  async produce(
    messages: readonly MessageInput[],
    now: number,
    internal = false,
  ): Promise<{ results: ProduceResult[]; bytes: number; stored: number }> {
    if (this.dedupRebuild) await this.dedupRebuild;
    const { config } = this;
    const P = this.logs.length;
    const results: ProduceResult[] = new Array(messages.length);
    const batches: { idx: number[]; recs: RecordInput[] }[] = Array.from({ length: P }, () => ({ idx: [], recs: [] }));
    const window = config.dedupWindowMs;
    const ids: DedupKey[] = [];
    let bytes = 0;
    // The index is made only when a message carries a msgId (or it exists already).
    const dedup = window > 0 && (this.dedupIndex !== undefined || messages.some((m) => m.msgId !== undefined)) ? this.dedup : undefined;
    const evictedBefore = dedup?.evicted ?? 0;
    if (dedup) {
      if (dedup.maxIds !== this.dedupMaxIds) dedup.setMaxIds(this.dedupMaxIds);
      dedup.expire(now, window);
    }
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const size = messageSize(m);
      if (size > config.maxMessageBytes && !internal) {
        results[i] = {
          status: 'rejected',
          code: ErrorCode.MESSAGE_TOO_LARGE,
          message: `message is ${size} bytes; the station allows ${config.maxMessageBytes}`,
        };
        continue;
      }
      const key = m.msgId !== undefined && dedup ? dedup.digest(m.msgId) : undefined;
      if (key) {
        const hit = dedup!.lookup(key, now, window);
        if (hit) {
          results[i] = { status: 'duplicate', partition: hit.partition, offset: hit.offset };
          continue;
        }
      }
      const p = m.key !== undefined ? partitionForKey(m.key, P) : this.rr++ % P;
      const b = batches[p]!;
      // Offsets are assigned by the log in append order: base + position in this partition's batch.
      const offset = this.logs[p]!.nextOffset + b.recs.length;
      results[i] = { status: 'stored', partition: p, offset };
      b.idx.push(i);
      b.recs.push({ timestamp: now, key: m.key, msgId: m.msgId, headers: m.headers, value: m.value });
      bytes += m.value.length;
      if (key) {
        dedup!.remember(key, { partition: p, offset, timestamp: now });
        ids.push(key);
      }
    }
    const appends: Promise<void>[] = [];
    let stored = 0;
    for (let p = 0; p < P; p++) {
      const b = batches[p]!;
      if (b.recs.length === 0) continue;
      stored += b.recs.length;
      const log = this.logs[p]!;
      const expected = log.nextOffset;
      const count = b.recs.length;
      appends.push(
        log.append(b.recs).then((base) => {
          if (base !== expected) throw new Error(`log assigned offset ${base}, expected ${expected}`);
          if (base + count > this.hw[p]!) this.hw[p] = base + count;
        }),
      );
    }
    if (dedup && dedup.evicted > evictedBefore) this.deps.dedupEvicted?.(this, dedup.evicted - evictedBefore);
    try {
      await Promise.all(appends);
    } catch (err) {
      for (const id of ids) dedup!.forget(id);
      throw err;
    }
    if (stored > 0) this.notify();
    if (ids.length > 0) this.dedupStore.added(ids.length, now);
    return { results, bytes, stored };
  }

  partitionInfo(): PartitionInfo[] {
    return this.logs.map((log, partition) => {
      const { first, end } = this.bounds(partition);
      return { partition, firstOffset: first, nextOffset: end, messages: Math.max(0, Math.min(log.count, end - first)), bytes: log.bytes };
    });
  }

  /**
   * Starts restoring the dedup index after a restart (its snapshot and the log after it, else the log
   * inside the window), in the background: produces wait until it is done, fetches and reads do not.
   * `onError` hears a failure (the index then lacks what was not read).
   */
  startDedupRebuild(now: number, onError: (err: unknown) => void): void {
    if (this.config.dedupWindowMs <= 0) return;
    const rebuild = this.dedupStore.restore(now).catch(onError);
    this.dedupRebuild = rebuild;
    void rebuild.finally(() => {
      if (this.dedupRebuild === rebuild) this.dedupRebuild = null;
    });
  }

  /**
   * Offsets below `floor` of the partition were handed out (a consumer group was delivered them): if the
   * log ends below it, the missing offsets become a reported gap and are never handed out again.
   */
  async raiseFloor(partition: number, floor: number, detail: string): Promise<void> {
    const log = this.logs[partition];
    if (!log || floor <= log.nextOffset) return;
    await log.raiseFloor(floor, detail);
    if (log.nextOffset > this.hw[partition]!) this.hw[partition] = log.nextOffset;
  }

  /** Applies retention; returns true if anything was dropped. */
  async applyRetention(now: number): Promise<void> {
    const r = this.config.retention;
    for (let p = 0; p < this.logs.length; p++) {
      const log = this.logs[p]!;
      const end = this.hw[p]!;
      let keepFrom = log.firstOffset;
      if (r.maxMessages !== undefined) keepFrom = Math.max(keepFrom, end - r.maxMessages);
      if (r.maxAgeMs !== undefined) keepFrom = Math.max(keepFrom, Math.min(end, await log.offsetForTimestamp(now - r.maxAgeMs)));
      if (r.ackBased && this.groups.size > 0) {
        let min = Infinity;
        for (const g of this.groups.values()) min = Math.min(min, g.floor(p));
        keepFrom = Math.max(keepFrom, Math.min(end, min));
      }
      if (keepFrom > log.firstOffset) await log.truncateBefore(keepFrom);
      if (r.maxBytes !== undefined && log.bytes > r.maxBytes) await log.trimToBytes(r.maxBytes);
    }
    // Now, not at the groups' next fetch: what they lost shows in their info and metrics at once.
    for (const g of this.groups.values()) g.clampAll();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.notify();
    await Promise.allSettled([...this.groups.values()].map((g) => g.close()));
    await this.dedupStore.close(this.dedupRebuild);
    await Promise.allSettled(this.logs.map((l) => l.close()));
  }
}

function messageSize(m: MessageInput): number {
  let n = m.value.length;
  if (m.key !== undefined) n += Buffer.byteLength(m.key);
  if (m.headers) for (const k in m.headers) n += Buffer.byteLength(k) + Buffer.byteLength(m.headers[k]!);
  return n;
}
