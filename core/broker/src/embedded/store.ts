/**
 * The embedded StationStore: stations on local disk (or in memory), one Node process, no other
 * service. Layout under `dataDir`:
 *
 *   stations/<name>/station.json                  metadata (written atomically)
 *   stations/<name>/partitions/<p>/…              the partition's segment log
 *   stations/<name>/groups/<group>/group.json     group settings
 *   stations/<name>/groups/<group>/journal        group progress
 */
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import {
  CreateGroupBody,
  DLS_HEADERS,
  FsyncPolicy,
  REPLAY_GROUP_HEADER,
  StationConfigInput,
  StationName,
  StationPatch,
  StartPosition,
  type SettleOutcome,
} from '@junction/protocol';
import { z } from 'zod';
import {
  dlsName,
  type DeadLetterDetails,
  type Delivery,
  type DeliveryChunk,
  type FetchOptions,
  type GroupInfo,
  type GroupOptions,
  type MessageInput,
  type OffsetRange,
  type ProduceResult,
  type ReadOptions,
  type ReplayOptions,
  type ReplayResult,
  type StationConfig,
  type StationInfo,
  type StationStore,
  type StoreEvent,
  type StoredMessage,
} from '../contract.js';
import { configInvalid, ErrorCode, JunctionError } from '../errors.js';
import { StoreEventHub } from '../events.js';
import type { CorruptRange } from '../log/types.js';
import { GroupRt, writeAtomic, type DeadLetterItem, type GroupMeta } from './group.js';
import { StationRt, type StationMeta } from './station.js';

export interface EmbeddedStoreOptions {
  dataDir: string;
  /** Default durability policy of stations that do not set their own. Default `always`. */
  fsync?: FsyncPolicy | undefined;
  logger?: Logger | undefined;
  /** How often retention, ack deadlines and interval fsyncs are checked. Default 250 ms. */
  tickMs?: number | undefined;
}

const DLS_SUFFIX = '.dls';
const StationMetaFile = z.object({
  name: StationName,
  config: StationConfigInput,
  createdAt: z.number(),
  deadLetterOf: z.string().optional(),
});
const GroupMetaFile = z.object({
  createdAt: z.number(),
  maxAckTimeMs: z.number().int().positive(),
  maxDeliveries: z.number().int().positive(),
});

export class EmbeddedStore implements StationStore {
  private readonly stations = new Map<string, StationRt>();
  /** Groups being created (files being written), by station and group name. */
  private readonly creating = new Map<string, Promise<GroupRt>>();
  private readonly events = new StoreEventHub(() => this.log);
  private readonly log: Logger;
  private readonly fsync: FsyncPolicy;
  private readonly root: string;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private lastRetention = 0;
  private state: 'new' | 'open' | 'closed' = 'new';

  constructor(private readonly options: EmbeddedStoreOptions) {
    this.log = options.logger ?? pino({ level: 'silent' });
    this.fsync = FsyncPolicy.parse(options.fsync ?? 'always');
    this.root = join(options.dataDir, 'stations');
  }

  // ---------------------------------------------------------------- lifecycle

  async open(): Promise<void> {
    if (this.state !== 'new') throw new JunctionError(ErrorCode.INTERNAL, 'store already opened');
    await mkdir(this.root, { recursive: true });
    await rm(join(this.options.dataDir, 'trash'), { recursive: true, force: true });
    const now = Date.now();
    for (const entry of await readdir(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = join(this.root, entry.name);
      try {
        const raw = JSON.parse(await readFile(join(dir, 'station.json'), 'utf8')) as unknown;
        const parsed = StationMetaFile.safeParse(raw);
        if (!parsed.success || parsed.data.name !== entry.name) {
          this.log.error({ station: entry.name, issues: parsed.error?.issues }, 'station metadata is invalid; station not loaded');
          continue;
        }
        const st = await this.openStation(parsed.data, dir);
        await this.loadGroups(st);
        await st.rebuildDedup(now);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // an unfinished creation
        this.log.error({ err, station: entry.name }, 'station could not be opened; station not loaded');
      }
    }
    this.state = 'open';
    const tick = this.options.tickMs ?? 250;
    this.timer = setInterval(() => void this.tick(), tick);
    this.timer.unref();
    this.log.info({ dataDir: this.options.dataDir, stations: this.stations.size }, 'embedded store open');
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.timer);
    await Promise.allSettled([...this.stations.values()].map((s) => s.close()));
    this.stations.clear();
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  onEvent(listener: (event: StoreEvent) => void): () => void {
    return this.events.on(listener);
  }

  private emit(e: StoreEvent): void {
    this.events.emit(e);
  }

  private async openStation(meta: StationMeta, dir: string): Promise<StationRt> {
    const name = meta.name;
    const found: Array<{ partition: number; range: CorruptRange }> = [];
    const st = await StationRt.open(meta, dir, {
      defaultFsync: this.fsync,
      onFsync: (seconds) => this.emit({ type: 'fsync', seconds }),
      deadLetter: (s, group, items) => this.storeDeadLetters(s, group, items),
      logHooks: (partition) => ({
        onDamage: (range) => {
          found.push({ partition, range });
          this.reportDamage(name, partition, range);
        },
        onTornTail: (t) =>
          this.log.warn(
            { station: name, partition, segment: t.segment, bytes: t.bytes, offset: t.atOffset },
            'cut a torn tail: the end of a write that never completed before a crash (nothing acknowledged was in it)',
          ),
        onMetadataRepair: (file, detail) => this.log.error({ station: name, partition, file }, detail),
      }),
    });
    for (const [p, log] of st.logs.entries()) {
      const known = log.corruptRanges.filter((c) => !found.some((f) => f.partition === p && f.range === c));
      if (known.length > 0) {
        this.log.warn(
          { station: name, partition: p, ranges: known.length, messages: known.reduce((n, c) => n + c.messages, 0) },
          'damaged ranges found by an earlier run are still retained',
        );
      }
    }
    this.stations.set(name, st);
    return st;
  }

  /** A damaged range found by a partition log (once per range): logged at error, counted (event). */
  private reportDamage(station: string, partition: number, range: CorruptRange): void {
    this.log.error(
      { station, partition, segment: range.segment, fromOffset: range.fromOffset, toOffset: range.toOffset, messages: range.messages, detail: range.detail },
      range.messages > 0 ? `${range.messages} messages lost: offsets ${range.fromOffset}–${range.toOffset} are skipped` : 'damaged bytes skipped (no message lost)',
    );
    this.emit({ type: 'corruption', station, partition, fromOffset: range.fromOffset, toOffset: range.toOffset, messages: range.messages, detail: range.detail });
  }

  private async loadGroups(st: StationRt): Promise<void> {
    if (!st.persistent) return;
    const gdir = join(st.dir, 'groups');
    const entries = await readdir(gdir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const dir = join(gdir, e.name);
      try {
        const meta = GroupMetaFile.parse(JSON.parse(await readFile(join(dir, 'group.json'), 'utf8')));
        const { group, damaged } = await GroupRt.load(e.name, meta, st, dir);
        if (damaged) this.log.error({ station: st.name, group: e.name }, 'group journal had a damaged tail; progress after it is lost and those messages will be redelivered');
        st.groups.set(e.name, group);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        this.log.error({ err, station: st.name, group: e.name }, 'group could not be loaded');
      }
    }
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.state !== 'open') return;
    this.ticking = true;
    try {
      const now = Date.now();
      const retention = now - this.lastRetention >= 1000;
      if (retention) this.lastRetention = now;
      for (const st of this.stations.values()) {
        for (const g of st.groups.values()) {
          if (g.nextDue() <= now) g.processDue(now);
          const iv = st.syncIntervalMs();
          if (iv > 0 && now - g.lastSync >= iv) await g.syncIfDirty();
        }
        if (retention) await this.retain(st, now);
      }
    } catch (err) {
      this.log.error({ err }, 'background work failed');
    } finally {
      this.ticking = false;
    }
  }

  private async retain(st: StationRt, now: number): Promise<void> {
    try {
      await st.applyRetention(now);
    } catch (err) {
      this.log.error({ err, station: st.name }, 'retention failed');
    }
  }

  // ---------------------------------------------------------------- stations

  private check(): void {
    if (this.state !== 'open') throw new JunctionError(ErrorCode.STORE_CLOSED, 'the store is not open', { retryable: true });
  }

  private station(name: string): StationRt {
    this.check();
    const st = this.stations.get(name);
    if (!st) throw new JunctionError(ErrorCode.STATION_NOT_FOUND, `station "${name}" does not exist`);
    return st;
  }

  async createStation(name: string, config: z.input<typeof StationConfigInput> = {}): Promise<StationInfo> {
    this.check();
    const n = StationName.safeParse(name);
    if (!n.success) throw configInvalid('station name', n.error, 'name');
    if (name.endsWith(DLS_SUFFIX)) throw new JunctionError(ErrorCode.STATION_RESERVED, `station names ending in "${DLS_SUFFIX}" are reserved for dead-letter stations`);
    const parsed = StationConfigInput.safeParse(config);
    if (!parsed.success) throw configInvalid('station config', parsed.error);
    if (this.stations.has(name)) throw new JunctionError(ErrorCode.STATION_EXISTS, `station "${name}" already exists`);
    const createdAt = Date.now();
    const st = await this.createStationRt({ name, config: parsed.data, createdAt });
    await this.createStationRt({ name: dlsName(name), config: dlsConfig(parsed.data), createdAt, deadLetterOf: name });
    return this.info(st);
  }

  private async createStationRt(meta: StationMeta): Promise<StationRt> {
    const dir = join(this.root, meta.name);
    if (this.stations.has(meta.name)) throw new JunctionError(ErrorCode.STATION_EXISTS, `station "${meta.name}" already exists`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const st = await this.openStation(meta, dir);
    await writeAtomic(join(dir, 'station.json'), JSON.stringify(meta));
    return st;
  }

  async updateStation(name: string, patch: z.input<typeof StationPatch>): Promise<StationInfo> {
    const st = this.station(name);
    if (patch && typeof patch === 'object') {
      const immutable = (['partitions', 'storage'] as const).filter((k) => k in patch);
      if (immutable.length > 0) {
        throw new JunctionError(ErrorCode.CONFIG_IMMUTABLE, `${immutable.join(' and ')} cannot change after a station is created`, {
          issues: immutable.map((k) => ({ path: k, message: 'fixed at creation' })),
        });
      }
    }
    const parsed = StationPatch.safeParse(patch);
    if (!parsed.success) throw configInvalid('station update', parsed.error);
    const p = parsed.data;
    const merged: StationConfig = {
      ...st.config,
      ...(p.retention !== undefined && { retention: p.retention }),
      ...(p.dedupWindowMs !== undefined && { dedupWindowMs: p.dedupWindowMs }),
      ...(p.maxMessageBytes !== undefined && { maxMessageBytes: p.maxMessageBytes }),
      ...(p.segmentBytes !== undefined && { segmentBytes: p.segmentBytes }),
      ...(p.fsync !== undefined && { fsync: p.fsync }),
      deadLetter: { ...st.config.deadLetter, ...p.deadLetter },
    };
    const meta = { ...st.meta, config: merged };
    await writeAtomic(join(st.dir, 'station.json'), JSON.stringify(meta));
    st.meta = meta;
    for (const log of st.logs) log.configure({ fsync: merged.fsync ?? this.fsync, segmentBytes: merged.segmentBytes });
    return this.info(st);
  }

  async deleteStation(name: string): Promise<void> {
    const st = this.station(name);
    if (st.meta.deadLetterOf !== undefined && this.stations.has(st.meta.deadLetterOf)) {
      throw new JunctionError(ErrorCode.STATION_RESERVED, `"${name}" is the dead-letter station of "${st.meta.deadLetterOf}"; delete that station or purge its dead letters`);
    }
    const doomed = [st, this.stations.get(dlsName(name))].filter((s): s is StationRt => s !== undefined);
    const trash = join(this.options.dataDir, 'trash');
    await mkdir(trash, { recursive: true });
    for (const s of doomed) {
      this.stations.delete(s.name);
      await s.close();
      const to = join(trash, `${s.name}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
      await rename(s.dir, to);
      void rm(to, { recursive: true, force: true }).catch(() => {});
    }
  }

  async getStation(name: string): Promise<StationInfo> {
    return this.info(this.station(name));
  }

  async listStations(): Promise<StationInfo[]> {
    this.check();
    return [...this.stations.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((s) => this.info(s));
  }

  private info(st: StationRt): StationInfo {
    const partitions = st.partitionInfo();
    return {
      name: st.name,
      config: st.config,
      createdAt: st.meta.createdAt,
      ...(st.meta.deadLetterOf !== undefined && { deadLetterOf: st.meta.deadLetterOf }),
      partitions,
      messages: partitions.reduce((n, p) => n + p.messages, 0),
      bytes: partitions.reduce((n, p) => n + p.bytes, 0),
      groups: [...st.groups.keys()].sort(),
    };
  }

  // ---------------------------------------------------------------- messages

  async produce(station: string, messages: readonly MessageInput[]): Promise<ProduceResult[]> {
    const st = this.station(station);
    return this.produceTo(st, messages, false);
  }

  private async produceTo(st: StationRt, messages: readonly MessageInput[], internal: boolean): Promise<ProduceResult[]> {
    const now = Date.now();
    const { results, bytes, stored } = await st.produce(messages, now, internal);
    if (stored > 0) {
      this.emit({ type: 'produced', station: st.name, messages: stored, bytes });
      const max = st.config.retention.maxMessages;
      if (max !== undefined) await this.retain(st, now);
    }
    return results;
  }

  async read(station: string, options: ReadOptions): Promise<StoredMessage[]> {
    const st = this.station(station);
    const { partition } = options;
    if (!Number.isInteger(partition) || partition < 0 || partition >= st.partitionCount) {
      throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${station}" has no partition ${partition} (it has ${st.partitionCount})`);
    }
    const { first } = st.bounds(partition);
    const from = Math.max(options.fromOffset ?? first, first);
    const recs = await st.read(partition, from, options.limit, options.maxBytes ?? 64 * 1024 * 1024);
    return recs.map((r) => ({ station, partition, offset: r.offset, timestamp: r.timestamp, key: r.key, headers: r.headers, value: r.value }));
  }

  // ---------------------------------------------------------------- groups

  private group(st: StationRt, name: string): GroupRt {
    const g = st.groups.get(name);
    if (!g) throw new JunctionError(ErrorCode.GROUP_NOT_FOUND, `station "${st.name}" has no consumer group "${name}"`);
    return g;
  }

  async createGroup(station: string, group: string, options: GroupOptions = {}): Promise<GroupInfo> {
    const st = this.station(station);
    const g = await this.newGroup(st, group, options);
    return g.info(st.name);
  }

  private async newGroup(st: StationRt, group: string, options: GroupOptions): Promise<GroupRt> {
    const n = StationName.safeParse(group);
    if (!n.success) throw configInvalid('group name', n.error, 'group');
    const parsed = CreateGroupBody.safeParse(options);
    if (!parsed.success) throw configInvalid('group options', parsed.error);
    const key = `${st.name}\u0000${group}`;
    if (st.groups.has(group) || this.creating.has(key)) throw new JunctionError(ErrorCode.GROUP_EXISTS, `station "${st.name}" already has a consumer group "${group}"`);
    // Until its files are written, a second creation of the same group waits for this one (groupForFetch)
    // or is refused: two writers of one group directory would each keep a journal the other replaced.
    const creating = this.createGroupFiles(st, group, parsed.data);
    this.creating.set(key, creating);
    try {
      return await creating;
    } finally {
      this.creating.delete(key);
    }
  }

  private async createGroupFiles(st: StationRt, group: string, o: z.output<typeof CreateGroupBody>): Promise<GroupRt> {
    const meta: GroupMeta = {
      createdAt: Date.now(),
      maxAckTimeMs: o.maxAckTimeMs ?? st.config.deadLetter.maxAckTimeMs,
      maxDeliveries: o.maxDeliveries ?? st.config.deadLetter.maxDeliveries,
    };
    const starts = await this.positions(st, o.start);
    const dir = st.persistent ? join(st.dir, 'groups', group) : undefined;
    const g = await GroupRt.create(group, meta, st, dir, starts.map((s, p) => s ?? st.bounds(p).first));
    if (st.groups.has(group)) {
      await g.close();
      throw new JunctionError(ErrorCode.GROUP_EXISTS, `station "${st.name}" already has a consumer group "${group}"`);
    }
    st.groups.set(group, g);
    return g;
  }

  /** Start offsets per partition for a position; undefined for partitions a position leaves alone. */
  private async positions(st: StationRt, pos: StartPosition): Promise<(number | undefined)[]> {
    const out: (number | undefined)[] = [];
    for (let p = 0; p < st.partitionCount; p++) {
      const { first, end } = st.bounds(p);
      switch (pos.type) {
        case 'earliest':
          out.push(first);
          break;
        case 'latest':
          out.push(end);
          break;
        case 'offset':
          if (pos.partition !== undefined && pos.partition >= st.partitionCount) {
            throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${st.name}" has no partition ${pos.partition}`);
          }
          out.push(pos.partition === undefined || pos.partition === p ? Math.min(Math.max(pos.offset, first), end) : undefined);
          break;
        case 'timestamp':
          out.push(Math.min(Math.max(await st.logs[p]!.offsetForTimestamp(pos.timestamp), first), end));
          break;
      }
    }
    return out;
  }

  async getGroup(station: string, group: string): Promise<GroupInfo> {
    const st = this.station(station);
    return this.group(st, group).info(st.name);
  }

  async listGroups(station: string): Promise<GroupInfo[]> {
    const st = this.station(station);
    return [...st.groups.keys()].sort().map((g) => st.groups.get(g)!.info(st.name));
  }

  async deleteGroup(station: string, group: string): Promise<void> {
    const st = this.station(station);
    const g = this.group(st, group);
    st.groups.delete(group);
    await g.close();
    if (st.persistent) await rm(join(st.dir, 'groups', group), { recursive: true, force: true });
  }

  /** The group, created at earliest on a first fetch. */
  private async groupForFetch(st: StationRt, group: string): Promise<GroupRt> {
    const key = `${st.name}\u0000${group}`;
    for (;;) {
      const g = st.groups.get(group);
      if (g) return g;
      const pending = this.creating.get(key);
      if (pending) {
        await pending.catch(() => undefined);
        continue;
      }
      try {
        return await this.newGroup(st, group, {});
      } catch (err) {
        // Another fetch or createGroup got there first: use its group.
        if (st.groups.has(group) || this.creating.has(key)) continue;
        throw err;
      }
    }
  }

  async fetch(station: string, group: string, options: FetchOptions): Promise<Delivery[]> {
    return this.longPoll(
      station,
      group,
      options,
      (g, maxMessages, maxBytes) => g.collect(station, maxMessages, maxBytes, options.preferPartition),
      (out) => {
        let bytes = 0;
        let redeliveries = 0;
        for (const d of out) {
          bytes += d.value.length;
          if (d.deliveryCount > 1) redeliveries++;
        }
        return { messages: out.length, bytes, redeliveries };
      },
    );
  }

  async fetchChunks(station: string, group: string, options: FetchOptions): Promise<DeliveryChunk[]> {
    return this.longPoll(
      station,
      group,
      options,
      (g, maxMessages, maxBytes) => g.collectChunks(maxMessages, maxBytes, options.preferPartition),
      (out) => {
        let messages = 0;
        let bytes = 0;
        let redeliveries = 0;
        for (const c of out) {
          messages += c.count;
          bytes += c.bytes;
          if (c.attempts) for (const a of c.attempts) if (a > 1) redeliveries++;
        }
        return { messages, bytes, redeliveries };
      },
    );
  }

  /** Collects until something is delivered or `waitMs` passed (the group is created on a first fetch). */
  private async longPoll<T>(
    station: string,
    group: string,
    options: FetchOptions,
    collect: (g: GroupRt, maxMessages: number, maxBytes: number) => Promise<T[]>,
    count: (out: T[]) => { messages: number; bytes: number; redeliveries: number },
  ): Promise<T[]> {
    const st = this.station(station);
    const g = await this.groupForFetch(st, group);
    const maxMessages = Math.max(1, Math.floor(options.maxMessages));
    const maxBytes = Math.max(1, Math.floor(options.maxBytes));
    const deadline = Date.now() + Math.max(0, options.waitMs);
    for (;;) {
      if (st.closed || g.closed) return [];
      const out = await collect(g, maxMessages, maxBytes);
      if (out.length > 0) {
        this.emit({ type: 'delivered', station, group, ...count(out) });
        return out;
      }
      const now = Date.now();
      if (now >= deadline || options.signal?.aborted) return out;
      await st.wait(Math.min(deadline, g.nextDue()) - now, options.signal);
    }
  }

  async ackRanges(station: string, group: string, ranges: readonly OffsetRange[]): Promise<number> {
    const st = this.station(station);
    for (const r of ranges) {
      if (!Number.isInteger(r.partition) || r.partition < 0 || r.partition >= st.partitionCount) {
        throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${st.name}" has no partition ${r.partition}`);
      }
      if (!Number.isSafeInteger(r.from) || !Number.isSafeInteger(r.to)) throw new JunctionError(ErrorCode.OFFSET_OUT_OF_RANGE, `offset range ${r.from}..${r.to} is not integral`);
    }
    const n = await this.group(st, group).ackRanges(ranges);
    if (n > 0) this.emit({ type: 'acked', station, group, messages: n });
    return n;
  }

  async ack(station: string, group: string, deliveryIds: readonly string[]): Promise<SettleOutcome[]> {
    const st = this.station(station);
    const out = await this.group(st, group).ack(deliveryIds);
    const n = out.filter((o) => o.status === 'acked').length;
    if (n > 0) this.emit({ type: 'acked', station, group, messages: n });
    return out;
  }

  async nack(station: string, group: string, deliveryIds: readonly string[], delayMs?: number): Promise<SettleOutcome[]> {
    const st = this.station(station);
    return this.group(st, group).nack(deliveryIds, delayMs ?? 0);
  }

  async deadLetter(station: string, group: string, deliveryIds: readonly string[], reason?: string, details?: DeadLetterDetails): Promise<SettleOutcome[]> {
    const st = this.station(station);
    return this.group(st, group).deadLetter(deliveryIds, reason ?? 'dead-lettered by the consumer', details?.code, details?.headers);
  }

  async seek(station: string, group: string, position: StartPosition): Promise<GroupInfo> {
    const st = this.station(station);
    const g = this.group(st, group);
    const pos = StartPosition.safeParse(position);
    if (!pos.success) throw configInvalid('seek position', pos.error);
    const starts = await this.positions(st, pos.data);
    await g.seek(starts.flatMap((offset, partition) => (offset === undefined ? [] : [{ partition, offset }])));
    return g.info(st.name);
  }

  // ---------------------------------------------------------------- dead letters

  private async storeDeadLetters(st: StationRt, group: string, items: DeadLetterItem[]): Promise<void> {
    const enabled = st.config.deadLetter.enabled && st.meta.deadLetterOf === undefined;
    const dls = this.stations.get(dlsName(st.name));
    if (enabled && dls) {
      const messages: MessageInput[] = items.map((it) => ({
        value: it.record.value,
        key: it.record.key,
        // A crash between storing the dead letter and settling it must not store it twice.
        msgId: `dls:${group}:${it.partition}:${it.record.offset}`,
        headers: {
          ...it.record.headers,
          ...it.headers,
          [DLS_HEADERS.reason]: it.reason,
          [DLS_HEADERS.code]: it.code,
          [DLS_HEADERS.group]: group,
          [DLS_HEADERS.attempts]: String(it.attempts),
          [DLS_HEADERS.station]: st.name,
          [DLS_HEADERS.partition]: String(it.partition),
          [DLS_HEADERS.offset]: String(it.record.offset),
          [DLS_HEADERS.timestamp]: String(it.record.timestamp),
          ...(it.record.key !== undefined && { [DLS_HEADERS.key]: it.record.key }),
        },
      }));
      await this.produceTo(dls, messages, true);
    } else {
      this.log.warn({ station: st.name, group, messages: items.length }, 'dead-lettering is off for this station: messages dropped');
    }
    this.emit({ type: 'dead-lettered', station: st.name, group, messages: items.length });
  }

  async replayDeadLetters(station: string, options: ReplayOptions = {}): Promise<ReplayResult> {
    const st = this.station(station);
    const dls = this.station(dlsName(station));
    if (options.group !== undefined) this.group(st, options.group);
    const { first, end } = dls.bounds(0);
    const from = Math.max(options.fromOffset ?? first, first);
    const to = Math.min(options.toOffset ?? end - 1, end - 1);
    let replayed = 0;
    let last = from - 1;
    for (let at = from; at <= to; ) {
      const recs = (await dls.read(0, at, 1000, 8 * 1024 * 1024)).filter((r) => r.offset <= to);
      if (recs.length === 0) break;
      const messages: MessageInput[] = recs.map((r) => {
        const headers: Record<string, string> = {};
        for (const k in r.headers) if (!k.startsWith('junction-dls-') && k !== REPLAY_GROUP_HEADER) headers[k] = r.headers[k]!;
        if (options.group !== undefined) headers[REPLAY_GROUP_HEADER] = options.group;
        return { value: Buffer.from(r.value), key: r.key, headers };
      });
      const results = await this.produceTo(st, messages, true);
      replayed += results.filter((r) => r.status === 'stored').length;
      last = recs[recs.length - 1]!.offset;
      at = last + 1;
    }
    let purged = 0;
    if (options.purge && last >= first && from === first) purged = await this.purgeDeadLetters(station, last);
    return { replayed, purged };
  }

  async purgeDeadLetters(station: string, upToOffset?: number): Promise<number> {
    this.station(station);
    const dls = this.station(dlsName(station));
    const log = dls.logs[0]!;
    const { first, end } = dls.bounds(0);
    const until = Math.min(upToOffset === undefined ? end : upToOffset + 1, end);
    if (until <= first) return 0;
    const before = log.count;
    await log.truncateBefore(until);
    return Math.max(0, before - log.count);
  }
}

function dlsConfig(origin: StationConfig): StationConfig {
  return {
    ...origin,
    partitions: 1,
    retention: { maxAgeMs: 30 * 24 * 3600_000 },
    dedupWindowMs: 10 * 60_000,
    maxMessageBytes: 64 * 1024 * 1024,
    deadLetter: { ...origin.deadLetter, enabled: false },
  };
}
