/**
 * The embedded StationStore: stations on local disk (or in memory), one Node process, no other
 * service. Layout under `dataDir`:
 *
 *   stations/<name>/station.json(.prev)           metadata, written atomically, the previous version kept
 *   stations/<name>/partitions/<p>/…              the partition's segment log (log/file-log.ts)
 *   stations/<name>/groups/<group>/group.json(.prev)  group settings
 *   stations/<name>/groups/<group>/journal        group progress
 *
 * A station or group directory is created whole (written under a `.tmp-…` name, then renamed), so one
 * whose metadata is missing or unreadable later is damage: it is loaded from the previous copy, else
 * rebuilt (a station from its partition directories, a group from its journal with the station's
 * deadlines), else the station is listed as damaged — never silently dropped.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import {
  applyStationPatch,
  CreateGroupBody,
  FsyncPolicy,
  StationConfigInput,
  StationName,
  StationPatch,
  StartPosition,
  type SettleOutcome,
} from '@junction/protocol';
import { z } from 'zod';
import {
  dlsName,
  legacyStationId,
  pageOfNames,
  type DeadLetterDetails,
  type Delivery,
  type DeliveryChunk,
  type FetchOptions,
  type GroupInfo,
  type GroupOptions,
  type ListOptions,
  type MessageInput,
  type OffsetRange,
  type ProduceResult,
  type ReadOptions,
  type ReplayOptions,
  type ReplayResult,
  type DamagedRange,
  type HealthSummary,
  type StoreTotals,
  type StationConfig,
  type StationHealth,
  type StationInfo,
  type StationStore,
  type StoreEvent,
  type StoredMessage,
} from '../contract.js';
import { fsyncDir } from '../atomic-file.js';
import { configInvalid, ErrorCode, JunctionError } from '../errors.js';
import { StoreEventHub } from '../events.js';
import type { CorruptRange } from '../log/types.js';
import { FdPool } from '../log/fd-pool.js';
import { SortedNames } from './sorted-names.js';
import { BackgroundPass } from './background.js';
import { damageOf, damagedInfo, stationHealth, type DamagedStation } from './station-health.js';
import { LazyLog, LogLru, type LogSummary } from '../log/lazy-log.js';
import { takeManifest, writeManifest, type ManifestStation } from './manifest.js';
import { DLS_SUFFIX, MetadataReader, dlsConfig } from './store-metadata.js';
import { GroupRt, writeAtomic, type DeadLetterItem, type GroupMeta } from './group.js';
import { StationRt, type StationDeps, type StationMeta } from './station.js';
import { loadGroups, startPositions } from './store-groups.js';
import { reportDamage } from './store-damage.js';
import { deadLetterMessages, purgeDls, replayInto } from './store-dead-letters.js';

export interface EmbeddedStoreOptions {
  dataDir: string;
  /** Default durability policy of stations that do not set their own. Default `always`. */
  fsync?: FsyncPolicy | undefined;
  logger?: Logger | undefined;
  /** How often retention, ack deadlines and interval fsyncs are checked. Default 250 ms. */
  tickMs?: number | undefined;
  /**
   * The budget of open partition and group files (log/fd-pool.ts; process-wide). Default: half the
   * process's soft RLIMIT_NOFILE.
   */
  maxOpenFiles?: number | undefined;
  /**
   * Partition logs kept open (process-wide LRU, log/lazy-log.ts); idle ones past it are closed and
   * reopened on use. Default DEFAULT_OPEN_LOGS (4096).
   */
  maxOpenPartitions?: number | undefined;
  /**
   * A clean close writes the stations manifest (embedded/manifest.ts) when the store has at least this
   * many stations (dead-letter stations included); the next start then opens those stations without
   * reading their files. Default DEFAULT_MANIFEST_MIN_STATIONS (1000). The price: damage done to a
   * stopped store's files is found when a partition is first used after the start (then reported as
   * always), and a damaged station.json only by a start without a manifest (after a crash). Below the
   * threshold every start reads every station, which is fast anyway; 0 always writes one, Infinity never.
   */
  manifestMinStations?: number | undefined;
}

/** See EmbeddedStoreOptions.manifestMinStations. */
export const DEFAULT_MANIFEST_MIN_STATIONS = 1000;

/** Stations opened at once by open(). */
const OPEN_STATIONS_CONCURRENCY = 32;

export class EmbeddedStore implements StationStore {
  private readonly stations = new Map<string, StationRt>();
  private readonly damagedStations = new Map<string, DamagedStation>();
  /** Names of `stations` and `damagedStations`, in order (paged listings). */
  private readonly names = new SortedNames();
  /** Stations with work since the last background pass, or timers: what the tick visits. */
  private readonly active = new Set<StationRt>();
  /** Stations that may be unhealthy (damage, repaired metadata, damaged): /healthz looks at these only. */
  private readonly suspects = new Set<string>();
  /** Groups being created (files being written), by station and group name. */
  private readonly creating = new Map<string, Promise<GroupRt>>();
  private readonly events = new StoreEventHub(() => this.log);
  private readonly log: Logger;
  private readonly meta: MetadataReader;
  private readonly fsync: FsyncPolicy;
  private readonly root: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly background: BackgroundPass;
  private state: 'new' | 'open' | 'closed' = 'new';

  constructor(private readonly options: EmbeddedStoreOptions) {
    this.log = options.logger ?? pino({ level: 'silent' });
    this.meta = new MetadataReader(this.log, (e) => this.emit(e));
    this.background = new BackgroundPass(this.stations, this.active, this.log, () => this.state === 'open');
    this.fsync = FsyncPolicy.parse(options.fsync ?? 'always');
    this.root = join(options.dataDir, 'stations');
    this.sharedDeps.defaultFsync = this.fsync;
    if (options.maxOpenFiles !== undefined) FdPool.shared.setBudget(options.maxOpenFiles);
    if (options.maxOpenPartitions !== undefined) LogLru.shared.setCapacity(options.maxOpenPartitions);
  }

  // ---------------------------------------------------------------- lifecycle

  async open(): Promise<void> {
    if (this.state !== 'new') throw new JunctionError(ErrorCode.INTERNAL, 'store already opened');
    await mkdir(this.root, { recursive: true });
    await rm(join(this.options.dataDir, 'trash'), { recursive: true, force: true });
    const now = Date.now();
    const t0 = performance.now();
    // A clean stop left a manifest: the stations in it open from it, without reading their files.
    const manifest = await takeManifest(this.options.dataDir);
    let entries = (await readdir(this.root, { withFileTypes: true })).filter((e) => e.isDirectory());
    const withGroups: StationRt[] = [];
    if (manifest) {
      const rest: typeof entries = [];
      for (const e of entries) {
        const m = manifest.get(e.name);
        if (!m) rest.push(e);
        else {
          const st = this.loadFromManifest(m, join(this.root, e.name), now);
          if (m.hasGroups) withGroups.push(st);
        }
      }
      entries = rest;
    }
    // Several stations at once: opening one mostly waits for small reads, and the thread pool has room.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < entries.length) {
        const entry = entries[next++]!;
        const dir = join(this.root, entry.name);
        // A creation that did not finish (station names never start with ".").
        if (entry.name.startsWith('.tmp-')) await rm(dir, { recursive: true, force: true });
        else await this.loadStation(entry.name, dir, now);
      }
    };
    let nextG = 0;
    const groupWorker = async (): Promise<void> => {
      while (nextG < withGroups.length) await this.loadManifestGroups(withGroups[nextG++]!);
    };
    await Promise.all([
      ...Array.from({ length: OPEN_STATIONS_CONCURRENCY }, worker),
      ...Array.from({ length: OPEN_STATIONS_CONCURRENCY }, groupWorker),
    ]);
    this.state = 'open';
    // Groups loaded with deliveries outstanding have deadlines: the first pass finds them (and lets the rest go).
    for (const st of this.stations.values()) if (st.groups.size > 0) this.active.add(st);
    const tick = this.options.tickMs ?? 250;
    this.timer = setInterval(() => void this.background.tick(), tick);
    this.timer.unref();
    const damaged = [...this.suspects].filter(
      (n) => this.damagedStations.has(n) || stationHealth(this.stations.get(n)!).status !== 'ok',
    ).length;
    const openMs = Math.round(performance.now() - t0);
    const files = FdPool.shared.stats();
    this.log.info(
      {
        dataDir: this.options.dataDir,
        stations: this.stations.size,
        openMs,
        openFiles: files.open,
        fileBudget: files.budget,
        ...(damaged > 0 && { degraded: damaged }),
      },
      'embedded store open',
    );
  }

  /** Opens one station directory: metadata (with its fallbacks), partitions, groups, offset floors, dedup. */
  private async loadStation(name: string, dir: string, now: number): Promise<void> {
    const found = await this.meta.readStationMeta(name, dir, now);
    if ('reason' in found) {
      this.markDamaged(name, dir, found.reason, now);
      return;
    }
    let st: StationRt;
    try {
      st = await this.openStation(found.meta, dir);
    } catch (err) {
      this.markDamaged(name, dir, `its partitions could not be opened: ${err instanceof Error ? err.message : String(err)}`, now);
      return;
    }
    if (found.note) st.notes.push(found.note);
    await loadGroups(st, this.meta, this.log, (e) => this.emit(e));
    await this.raiseFloors(st);
    if (st.notes.length > 0 || st.meta.rebuilt || st.logs.some((l) => l.corruptRanges.length > 0)) this.suspects.add(name);
    st.startDedupRebuild(now, (err) =>
      this.log.error({ err, station: name }, 'rebuilding the dedup index failed; msgIds seen before the restart may be stored again'),
    );
  }

  /**
   * A station the manifest describes: its logs open on first use (synchronous, no I/O; many thousands
   * of these make a start). Its groups' journals are read by loadManifestGroups.
   */
  private loadFromManifest(m: ManifestStation, dir: string, now: number): StationRt {
    const meta = this.internMeta(m.meta);
    const st = StationRt.fromSummaries(meta, dir, this.stationDeps(meta.name, undefined), m.partitions);
    if (!this.stations.has(meta.name) && !this.damagedStations.has(meta.name)) this.names.add(meta.name);
    this.stations.set(meta.name, st);
    if (m.partitions.some((p) => p.msgIds))
      st.startDedupRebuild(now, (err) =>
        this.log.error({ err, station: st.name }, 'rebuilding the dedup index failed; msgIds seen before the restart may be stored again'),
      );
    return st;
  }

  private async loadManifestGroups(st: StationRt): Promise<void> {
    await loadGroups(st, this.meta, this.log, (e) => this.emit(e));
    await this.raiseFloors(st);
    if (st.notes.length > 0) this.suspects.add(st.name);
  }

  private markDamaged(name: string, dir: string, reason: string, now: number): void {
    if (!this.damagedStations.has(name) && !this.stations.has(name)) this.names.add(name);
    this.damagedStations.set(name, { name, dir, reason, foundAt: now });
    this.suspects.add(name);
    this.log.error(
      { station: name, reason },
      'station metadata is lost and could not be rebuilt: the station is listed as damaged and cannot serve until it is deleted or its files are restored',
    );
    this.emit({ type: 'metadata-repair', station: name, file: 'station.json', outcome: 'lost', detail: reason });
  }

  /** Offsets a group was delivered are never handed out again, even when the log lost them (its end was cut). */
  private async raiseFloors(st: StationRt): Promise<void> {
    if (!st.persistent) return;
    for (let p = 0; p < st.partitionCount; p++) {
      let floor = 0;
      let by = '';
      for (const [name, g] of st.groups) {
        const c = g.cursors[p];
        if (c && c.next > floor) {
          floor = c.next;
          by = name;
        }
      }
      const next = st.logs[p]!.nextOffset;
      if (floor <= next) continue;
      try {
        await st.raiseFloor(p, floor, `consumer group "${by}" was delivered these offsets, but they are missing from the end of the log`);
      } catch (err) {
        this.log.error({ err, station: st.name, partition: p }, 'could not raise the offset floor to what consumer groups were delivered');
      }
    }
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    clearInterval(this.timer);
    const all = [...this.stations.values()];
    const closed = await Promise.allSettled(all.map((s) => s.close()));
    if (wasOpen && all.length >= (this.options.manifestMinStations ?? DEFAULT_MANIFEST_MIN_STATIONS)) {
      // Healthy file stations that closed cleanly: the next start opens them from the manifest.
      const entries: ManifestStation[] = [];
      all.forEach((st, i) => {
        if (closed[i]!.status !== 'fulfilled' || !st.persistent || this.suspects.has(st.name) || st.notes.length > 0 || st.meta.rebuilt)
          return;
        const parts = st.logs.map((l) => (l instanceof LazyLog ? l.currentSummary() : undefined));
        if (parts.some((p) => p === undefined)) return;
        entries.push({ meta: st.meta, hasGroups: st.groups.size > 0, partitions: parts as LogSummary[] });
      });
      await writeManifest(this.options.dataDir, entries).catch((err: unknown) => {
        this.log.warn({ err }, 'could not write the stations manifest: the next start reads every station directory');
      });
    }
    this.stations.clear();
    this.names.clear();
    this.active.clear();
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

  /** What every station's deps share (one set of closures for the store, not one per station). */
  private readonly sharedDeps: Omit<StationDeps, 'logHooks'> = {
    defaultFsync: '',
    onFsync: (seconds) => this.emit({ type: 'fsync', seconds }),
    deadLetter: (s, group, items) => this.storeDeadLetters(s, group, items),
    retentionLost: (s, group, partition, lost) => {
      this.log.warn(
        { station: s.name, group, partition, messages: lost },
        'retention removed messages the consumer group had not acknowledged',
      );
      this.emit({ type: 'retention-lost', station: s.name, group, partition, messages: lost });
    },
    dedupEvicted: (s, ids) => {
      this.emit({ type: 'dedup-evicted', station: s.name, ids });
      // Once a minute at most per station: a station at its bound evicts on every produce.
      const now = Date.now();
      if (now - s.dedupWarnedAt >= 60_000) {
        s.dedupWarnedAt = now;
        this.log.warn(
          { station: s.name, maxIds: s.dedupMaxIds, evicted: s.dedup.evicted },
          'the dedup index is at its bound (dedupMaxIds): the oldest msgIds leave the window early, and a later copy of one is stored again',
        );
      }
    },
    dedupLog: (s, level, detail, message) => this.log[level]({ station: s.name, ...detail }, message),
  };
  /** Station configs by their JSON: stations configured alike share one object (configs are never changed in place). */
  private readonly configs = new Map<string, StationConfig>();
  private readonly interned = new WeakSet<StationConfig>();

  private internMeta(meta: StationMeta): StationMeta {
    if (this.interned.has(meta.config)) return meta;
    const key = JSON.stringify(meta.config);
    const known = this.configs.get(key);
    if (known) return { ...meta, config: known };
    this.configs.set(key, meta.config);
    this.interned.add(meta.config);
    return meta;
  }

  /**
   * The deps of station `name`: the store's shared ones and its log hooks. `opening` collects what the
   * logs report while the station opens (openStation); later (a log opened on first use) a repair note
   * goes to the station itself.
   */
  private stationDeps(
    name: string,
    opening: { found: Array<{ partition: number; range: CorruptRange }>; notes: string[] } | undefined,
  ): StationDeps {
    return {
      ...this.sharedDeps,
      logHooks: (partition) => ({
        onDamage: (range) => {
          opening?.found.push({ partition, range });
          this.suspects.add(name);
          reportDamage(this.log, (e) => this.emit(e), name, partition, range);
        },
        onTornTail: (t) =>
          this.log.warn(
            { station: name, partition, segment: t.segment, bytes: t.bytes, offset: t.atOffset },
            'cut a torn tail: the end of a write that never completed before a crash (nothing acknowledged was in it)',
          ),
        onMetadataRepair: (file, detail, outcome) => {
          this.suspects.add(name);
          const note = `partition ${partition}: ${detail}`;
          const st = this.stations.get(name);
          if (opening && (!st || st.notes !== opening.notes)) opening.notes.push(note);
          else st?.notes.push(note);
          this.log.error({ station: name, partition, file }, detail);
          this.emit({ type: 'metadata-repair', station: name, file: `partitions/${partition}/${file}`, outcome, detail: note });
        },
      }),
    };
  }

  private async openStation(meta: StationMeta, dir: string): Promise<StationRt> {
    const name = meta.name;
    const opening = { found: [] as Array<{ partition: number; range: CorruptRange }>, notes: [] as string[] };
    const st = await StationRt.open(this.internMeta(meta), dir, this.stationDeps(name, opening));
    st.notes.push(...opening.notes);
    // From now on repairs found by a log opened on first use go to the station's notes.
    opening.notes = st.notes;
    for (const [p, log] of st.logs.entries()) {
      const known = log.corruptRanges.filter((c) => !opening.found.some((f) => f.partition === p && f.range === c));
      if (known.length > 0) {
        this.log.warn(
          { station: name, partition: p, ranges: known.length, messages: known.reduce((n, c) => n + c.messages, 0) },
          'damaged ranges found by an earlier run are still retained (see the station info)',
        );
      }
    }
    opening.found = [];
    if (!this.stations.has(name) && !this.damagedStations.has(name)) this.names.add(name);
    this.stations.set(name, st);
    return st;
  }

  /** Retention of one station (errors logged: the next pass tries again). */
  private retain(st: StationRt, now: number): Promise<void> {
    return this.background.retain(st, now);
  }

  // ---------------------------------------------------------------- stations

  private check(): void {
    if (this.state !== 'open') throw new JunctionError(ErrorCode.STORE_CLOSED, 'the store is not open', { retryable: true });
  }

  private station(name: string): StationRt {
    this.check();
    const st = this.stations.get(name);
    if (!st) {
      const damaged = this.damagedStations.get(name);
      if (damaged) throw new JunctionError(ErrorCode.STATION_DAMAGED, `station "${name}" is damaged and cannot serve: ${damaged.reason}`);
      throw new JunctionError(ErrorCode.STATION_NOT_FOUND, `station "${name}" does not exist`);
    }
    this.touch(st);
    return st;
  }

  /** The station has work: the background pass visits it until it has none. */
  private touch(st: StationRt): void {
    st.touchedAt = Date.now();
    this.active.add(st);
  }

  async createStation(name: string, config: z.input<typeof StationConfigInput> = {}): Promise<StationInfo> {
    this.check();
    const n = StationName.safeParse(name);
    if (!n.success) throw configInvalid('station name', n.error, 'name');
    if (name.endsWith(DLS_SUFFIX))
      throw new JunctionError(ErrorCode.STATION_RESERVED, `station names ending in "${DLS_SUFFIX}" are reserved for dead-letter stations`);
    const parsed = StationConfigInput.safeParse(config);
    if (!parsed.success) throw configInvalid('station config', parsed.error);
    if (this.stations.has(name) || this.damagedStations.has(name))
      throw new JunctionError(ErrorCode.STATION_EXISTS, `station "${name}" already exists`);
    const createdAt = Date.now();
    const st = await this.createStationRt({ name, id: randomUUID(), config: parsed.data, createdAt });
    await this.createStationRt({ name: dlsName(name), id: randomUUID(), config: dlsConfig(parsed.data), createdAt, deadLetterOf: name });
    return this.info(st);
  }

  /** Creates the station's directory whole (station.json written under a temporary name, then renamed) and opens it. */
  private async createStationRt(meta: StationMeta): Promise<StationRt> {
    const dir = join(this.root, meta.name);
    if (this.stations.has(meta.name) || this.damagedStations.has(meta.name))
      throw new JunctionError(ErrorCode.STATION_EXISTS, `station "${meta.name}" already exists`);
    const tmp = join(this.root, `.tmp-${meta.name}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp, { recursive: true });
    await writeAtomic(join(tmp, 'station.json'), JSON.stringify(meta));
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    await fsyncDir(this.root);
    try {
      return await this.openStation(meta, dir);
    } catch (err) {
      await rm(dir, { recursive: true, force: true }).catch(() => {});
      throw err;
    }
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
    const merged: StationConfig = applyStationPatch(st.config, p);
    // An update sets the options: a station rebuilt from its partitions has real ones again.
    const { rebuilt: _rebuilt, ...kept } = st.meta;
    const meta: StationMeta = this.internMeta({ ...kept, config: merged });
    await writeAtomic(join(st.dir, 'station.json'), JSON.stringify(meta));
    st.meta = meta;
    for (const log of st.logs) log.configure({ fsync: merged.fsync ?? this.fsync, segmentBytes: merged.segmentBytes });
    return this.info(st);
  }

  async deleteStation(name: string): Promise<void> {
    this.check();
    const damaged = this.damagedStations.get(name);
    if (damaged) {
      // Its dead-letter station (a station of its own) goes with it, as for any station.
      const dls = this.stations.get(dlsName(name));
      this.damagedStations.delete(name);
      this.names.delete(name);
      this.suspects.delete(name);
      await this.moveToTrash(damaged.dir);
      if (dls) {
        this.stations.delete(dls.name);
        this.forget(dls);
        await dls.close();
        await this.moveToTrash(dls.dir);
      }
      return;
    }
    const st = this.station(name);
    if (st.meta.deadLetterOf !== undefined && this.stations.has(st.meta.deadLetterOf)) {
      throw new JunctionError(
        ErrorCode.STATION_RESERVED,
        `"${name}" is the dead-letter station of "${st.meta.deadLetterOf}"; delete that station or purge its dead letters`,
      );
    }
    const doomed = [st, this.stations.get(dlsName(name))].filter((s): s is StationRt => s !== undefined);
    for (const s of doomed) {
      this.stations.delete(s.name);
      this.forget(s);
      await s.close();
      await this.moveToTrash(s.dir);
    }
  }

  private forget(st: StationRt): void {
    this.names.delete(st.name);
    this.active.delete(st);
    this.suspects.delete(st.name);
  }

  /** Renames a directory into the trash (one atomic step: it is gone from the store at once), then removes it. */
  private async moveToTrash(dir: string): Promise<void> {
    const trash = join(this.options.dataDir, 'trash');
    await mkdir(trash, { recursive: true });
    const to = join(trash, `${Date.now()}-${randomBytes(6).toString('hex')}`);
    await rename(dir, to);
    void rm(to, { recursive: true, force: true }).catch(() => {});
  }

  async getStation(name: string): Promise<StationInfo> {
    this.check();
    const damaged = this.damagedStations.get(name);
    if (damaged) return damagedInfo(damaged);
    return this.info(this.station(name));
  }

  async listStations(options?: ListOptions): Promise<StationInfo[]> {
    this.check();
    return this.names.page(options).map((name) => {
      const st = this.stations.get(name);
      return st ? this.info(st) : damagedInfo(this.damagedStations.get(name)!);
    });
  }

  async healthSummary(maxReasons: number): Promise<HealthSummary> {
    this.check();
    const out: HealthSummary = { degraded: 0, reasons: [], more: 0 };
    for (const name of [...this.suspects].sort()) {
      const st = this.stations.get(name);
      const d = st ? undefined : this.damagedStations.get(name);
      const health = st ? stationHealth(st) : d ? damagedInfo(d).health! : undefined;
      if (!health || health.status === 'ok') {
        // Retention removed its damaged ranges (or it was deleted): healthy again.
        this.suspects.delete(name);
        continue;
      }
      out.degraded++;
      const prefix = `station ${name}${health.status === 'damaged' ? ' (damaged: cannot serve)' : ''}`;
      for (const r of health.reasons) {
        if (out.reasons.length < maxReasons) out.reasons.push(`${prefix}: ${r}`);
        else out.more++;
      }
    }
    return out;
  }

  async totals(): Promise<StoreTotals> {
    this.check();
    let partitions = 0;
    let messages = 0;
    let bytes = 0;
    for (const st of this.stations.values()) {
      for (let p = 0; p < st.logs.length; p++) {
        const log = st.logs[p]!;
        const { first, end } = st.bounds(p);
        partitions++;
        messages += Math.max(0, Math.min(log.count, end - first));
        bytes += log.bytes;
      }
    }
    const f = FdPool.shared.stats();
    return {
      stations: this.stations.size + this.damagedStations.size,
      partitions,
      messages,
      bytes,
      activeStations: this.active.size,
      openPartitions: LogLru.shared.size,
      openFiles: { budget: f.budget, open: f.open, peak: f.peak, evictions: f.evictions, overBudget: f.overBudget },
    };
  }

  private info(st: StationRt): StationInfo {
    const partitions = st.partitionInfo();
    const damage = damageOf(st);
    return {
      name: st.name,
      id: st.id,
      config: st.config,
      createdAt: st.meta.createdAt,
      ...(st.meta.deadLetterOf !== undefined && { deadLetterOf: st.meta.deadLetterOf }),
      partitions,
      messages: partitions.reduce((n, p) => n + p.messages, 0),
      bytes: partitions.reduce((n, p) => n + p.bytes, 0),
      groups: [...st.groups.keys()].sort(),
      ...(st.config.dedupWindowMs > 0 && { dedup: st.dedupInfo() }),
      health: stationHealth(st, damage),
      damage,
    };
  }

  // ---------------------------------------------------------------- messages

  async produce(station: string, messages: readonly MessageInput[]): Promise<ProduceResult[]> {
    const st = this.station(station);
    return this.produceTo(st, messages, false);
  }

  private async produceTo(st: StationRt, messages: readonly MessageInput[], internal: boolean): Promise<ProduceResult[]> {
    this.touch(st);
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
      throw new JunctionError(
        ErrorCode.PARTITION_NOT_FOUND,
        `station "${station}" has no partition ${partition} (it has ${st.partitionCount})`,
      );
    }
    const { first } = st.bounds(partition);
    const from = Math.max(options.fromOffset ?? first, first);
    const recs = await st.read(partition, from, options.limit, options.maxBytes ?? 64 * 1024 * 1024);
    return recs.map((r) => ({
      station,
      partition,
      offset: r.offset,
      timestamp: r.timestamp,
      key: r.key,
      headers: r.headers,
      value: r.value,
    }));
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
    if (st.groups.has(group) || this.creating.has(key))
      throw new JunctionError(ErrorCode.GROUP_EXISTS, `station "${st.name}" already has a consumer group "${group}"`);
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
    // Only what the group sets itself is kept: the rest follows the station's deadLetter settings.
    const meta: GroupMeta = {
      createdAt: Date.now(),
      ...(o.maxAckTimeMs !== undefined && { maxAckTimeMs: o.maxAckTimeMs }),
      ...(o.maxDeliveries !== undefined && { maxDeliveries: o.maxDeliveries }),
    };
    const starts = await startPositions(st, o.start);
    const dir = st.persistent ? join(st.dir, 'groups', group) : undefined;
    const g = await GroupRt.create(
      group,
      meta,
      st,
      dir,
      starts.map((s, p) => s ?? st.bounds(p).first),
    );
    if (st.groups.has(group)) {
      await g.close();
      throw new JunctionError(ErrorCode.GROUP_EXISTS, `station "${st.name}" already has a consumer group "${group}"`);
    }
    st.groups.set(group, g);
    return g;
  }

  async getGroup(station: string, group: string): Promise<GroupInfo> {
    const st = this.station(station);
    return this.group(st, group).info(st.name);
  }

  async listGroups(station: string, options?: ListOptions): Promise<GroupInfo[]> {
    const st = this.station(station);
    return Promise.all(pageOfNames(st.groups.keys(), options).map((g) => st.groups.get(g)!.info(st.name)));
  }

  async deleteGroup(station: string, group: string): Promise<void> {
    const st = this.station(station);
    const g = this.group(st, group);
    st.groups.delete(group);
    await g.close();
    // One rename: a crash while removing files must not leave a group directory that looks damaged.
    if (st.persistent)
      await this.moveToTrash(join(st.dir, 'groups', group)).catch(() =>
        rm(join(st.dir, 'groups', group), { recursive: true, force: true }),
      );
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
      if (!Number.isSafeInteger(r.from) || !Number.isSafeInteger(r.to))
        throw new JunctionError(ErrorCode.OFFSET_OUT_OF_RANGE, `offset range ${r.from}..${r.to} is not integral`);
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

  async deadLetter(
    station: string,
    group: string,
    deliveryIds: readonly string[],
    reason?: string,
    details?: DeadLetterDetails,
  ): Promise<SettleOutcome[]> {
    const st = this.station(station);
    return this.group(st, group).deadLetter(deliveryIds, reason ?? 'dead-lettered by the consumer', details?.code, details?.headers);
  }

  async seek(station: string, group: string, position: StartPosition): Promise<GroupInfo> {
    const st = this.station(station);
    const g = this.group(st, group);
    const pos = StartPosition.safeParse(position);
    if (!pos.success) throw configInvalid('seek position', pos.error);
    const starts = await startPositions(st, pos.data);
    await g.seek(starts.flatMap((offset, partition) => (offset === undefined ? [] : [{ partition, offset }])));
    return g.info(st.name);
  }

  // ---------------------------------------------------------------- dead letters

  private async storeDeadLetters(st: StationRt, group: string, items: DeadLetterItem[]): Promise<void> {
    const enabled = st.config.deadLetter.enabled && st.meta.deadLetterOf === undefined;
    const dls = this.stations.get(dlsName(st.name));
    if (enabled && dls) {
      await this.produceTo(dls, deadLetterMessages(st, group, items), true);
    } else {
      this.log.warn({ station: st.name, group, messages: items.length }, 'dead-lettering is off for this station: messages dropped');
    }
    this.emit({ type: 'dead-lettered', station: st.name, group, messages: items.length });
  }

  async replayDeadLetters(station: string, options: ReplayOptions = {}): Promise<ReplayResult> {
    const st = this.station(station);
    const dls = this.station(dlsName(station));
    if (options.group !== undefined) this.group(st, options.group);
    const { first } = dls.bounds(0);
    const { replayed, from, last } = await replayInto(st, dls, options, (s, messages) => this.produceTo(s, messages, true));
    let purged = 0;
    if (options.purge && last >= first && from === first) purged = await this.purgeDeadLetters(station, last);
    return { replayed, purged };
  }

  async purgeDeadLetters(station: string, upToOffset?: number): Promise<number> {
    this.station(station);
    return purgeDls(this.station(dlsName(station)), upToOffset);
  }
}
