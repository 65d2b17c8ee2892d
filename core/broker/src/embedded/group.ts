/**
 * A consumer group on one station of the embedded engine: per-partition cursors, ack deadlines,
 * redelivery, dead-lettering after maxDeliveries, and a durable journal of its progress.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseDeliveryId, REPLAY_GROUP_HEADER, type ParsedDeliveryId, type SettleOutcome } from '@junction/protocol';
import type { Delivery, DeliveryChunk, GroupInfo, OffsetRange } from '../contract.js';
import { ChunkBuilder, DeliveryList, type Collector } from './chunks.js';
import type { LogRecord } from '../log/types.js';
import { AppendFile } from './append-file.js';
import { fsyncDir, writeAtomic } from '../atomic-file.js';
import { PartitionCursor } from './cursor.js';
import { MinHeap } from './heap.js';
import { decodeJournal, encodeEntry, JournalOp, type JournalEntry } from './journal.js';
import { Mutex } from './mutex.js';

/** What a group needs from its station. */
export interface GroupHost {
  readonly name: string;
  /** The station's incarnation (`StationInfo.id`). */
  readonly id: string;
  /** The station's dead-letter settings: what a group without its own override uses. */
  deadLetterSettings(): { maxAckTimeMs: number; maxDeliveries: number };
  /** Retention removed `lost` messages of a partition that the group had not settled. */
  retentionLost(group: string, partition: number, lost: number): void;
  readonly partitionCount: number;
  /** First retained offset and end (exclusive high watermark: everything below is durable). */
  bounds(partition: number): { first: number; end: number };
  read(partition: number, from: number, maxMessages: number, maxBytes: number): Promise<LogRecord[]>;
  /** Moves messages to the dead-letter station; resolves when they are stored there. */
  deadLetter(group: string, items: DeadLetterItem[]): Promise<void>;
  /** Wakes long polls of this station. */
  notify(): void;
  /** File storage: records read are views into the log's own read buffers. */
  readonly persistent: boolean;
  syncPolicy(): 'always' | 'interval' | 'never';
}

export interface DeadLetterItem {
  record: LogRecord;
  partition: number;
  attempts: number;
  code: string;
  reason: string;
  /** Extra headers for the dead letter (who dead-lettered it and why, in detail). */
  headers?: Record<string, string> | undefined;
}

/** A group's settings; an absent deadline or attempt limit follows the station's `deadLetter` settings. */
export interface GroupMeta {
  createdAt: number;
  maxAckTimeMs?: number | undefined;
  maxDeliveries?: number | undefined;
}

interface Timer {
  due: number;
  partition: number;
  from: number;
  to: number;
  inflight: boolean;
  /** The ack deadline of a first-delivery range (the cursor's waiting offsets without an entry). */
  range: boolean;
  /** The cursor's epoch when armed (a seek voids it). */
  epoch: number;
}

const COMPACT_BYTES = 4 * 1024 * 1024;

export class GroupRt {
  readonly cursors: PartitionCursor[];
  private readonly timers = new MinHeap<Timer>((a, b) => a.due < b.due);
  private readonly lock = new Mutex();
  private file: AppendFile | undefined;
  private rotation: { buf: Buffer; sync: boolean; resolve: () => void; reject: (e: unknown) => void }[] | undefined;
  private rr = 0;
  private dirty = false;
  lastSync = 0;
  /** Per partition: the produce time of the message at the ack floor last asked about (see `info`). */
  private readonly floorTs: ({ offset: number; ts: number } | undefined)[] = [];
  redeliveries = 0;
  closed = false;

  private constructor(
    readonly name: string,
    readonly meta: GroupMeta,
    private readonly host: GroupHost,
    private readonly dir: string | undefined,
    starts: number[],
  ) {
    this.cursors = starts.map((s, p) => new PartitionCursor(p, s));
  }

  /** The ack deadline: the group's own, else the station's (a station change reaches the group). */
  get maxAckTimeMs(): number {
    return this.meta.maxAckTimeMs ?? this.host.deadLetterSettings().maxAckTimeMs;
  }

  /** Deliveries before dead-lettering: the group's own, else the station's. */
  get maxDeliveries(): number {
    return this.meta.maxDeliveries ?? this.host.deadLetterSettings().maxDeliveries;
  }

  /**
   * A new group at the given start offsets (one per partition). Writes its metadata and journal into a
   * temporary directory that is then renamed to `dir`: a group directory is whole from the moment it
   * exists (one missing its group.json later is damage, not an unfinished creation).
   */
  static async create(name: string, meta: GroupMeta, host: GroupHost, dir: string | undefined, starts: number[]): Promise<GroupRt> {
    const g = new GroupRt(name, meta, host, dir, starts);
    for (const c of g.cursors) c.setToken(newToken());
    if (dir) {
      const parent = dirname(dir);
      await mkdir(parent, { recursive: true });
      // Group names never start with "." (NAME_PATTERN), so this cannot be a group; the store removes leftovers.
      const tmp = join(parent, `.tmp-${basename(dir)}-${process.pid}-${randomBytes(4).toString('hex')}`);
      await mkdir(tmp);
      const entries = g.cursors.flatMap((c): JournalEntry[] => [
        { op: JournalOp.SEEK, partition: c.partition, offset: c.next },
        { op: JournalOp.EPOCH, partition: c.partition, epoch: c.token },
      ]);
      const journal = Buffer.concat(entries.map(encodeEntry));
      await writeAtomic(join(tmp, 'journal'), journal, { keepPrevious: false });
      await writeAtomic(join(tmp, 'group.json'), JSON.stringify(meta));
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
      await fsyncDir(parent);
      g.file = await AppendFile.open(join(dir, 'journal'), journal.length);
    }
    return g;
  }

  /**
   * Reopens a group from its directory; a torn or damaged journal tail is cut off (`damaged`). A missing
   * journal (`missing`) leaves the group at the first retained offsets.
   */
  static async load(
    name: string,
    meta: GroupMeta,
    host: GroupHost,
    dir: string,
  ): Promise<{ group: GroupRt; damaged: boolean; missing: boolean }> {
    let missing = false;
    const buf = await readFile(join(dir, 'journal')).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
      missing = true;
      return Buffer.alloc(0);
    });
    const { entries, validBytes, damaged } = decodeJournal(buf);
    const starts = new Array<number>(host.partitionCount).fill(1);
    const g = new GroupRt(name, meta, host, dir, starts);
    for (const e of entries) g.cursors[e.partition]?.apply(e);
    g.file = await AppendFile.open(join(dir, 'journal'), validBytes);
    // A journal from before epoch tokens: give each partition one (ids handed out before answer stale).
    const fresh: JournalEntry[] = [];
    for (const c of g.cursors) {
      if (c.token >= 0) continue;
      c.setToken(newToken());
      fresh.push({ op: JournalOp.EPOCH, partition: c.partition, epoch: c.token });
    }
    await g.journal(fresh, true);
    // With its journal lost, the group restarts at the first retained offsets: not a retention loss.
    g.clampAll(!missing);
    return { group: g, damaged, missing };
  }

  // ---------------------------------------------------------------- journal

  private journal(entries: JournalEntry[], sync: boolean): Promise<void> {
    if (!this.file || entries.length === 0) return Promise.resolve();
    const buf = entries.length === 1 ? encodeEntry(entries[0]!) : Buffer.concat(entries.map(encodeEntry));
    const wantSync = sync && this.host.syncPolicy() === 'always';
    this.dirty = true;
    if (this.rotation) {
      return new Promise((resolve, reject) => this.rotation!.push({ buf, sync: wantSync, resolve, reject }));
    }
    const p = this.file.append(buf, wantSync);
    if (this.file.size > COMPACT_BYTES) this.rotate();
    return p;
  }

  /** Rewrites the journal as a snapshot of the current state; appends made meanwhile follow it. */
  private rotate(): void {
    if (!this.dir || !this.file || this.rotation) return;
    const snapshot = Buffer.concat(this.cursors.flatMap((c) => c.snapshot()).map(encodeEntry));
    this.rotation = [];
    const old = this.file;
    const path = join(this.dir, 'journal');
    void (async () => {
      try {
        await old.drain();
        await writeAtomic(path, snapshot, { keepPrevious: false });
        const next = await AppendFile.open(path, snapshot.length);
        const queued = this.rotation ?? [];
        this.rotation = undefined;
        this.file = next;
        for (const q of queued) next.append(q.buf, q.sync).then(q.resolve, q.reject);
        await old.close();
      } catch (err) {
        const queued = this.rotation ?? [];
        this.rotation = undefined;
        // The old journal is still whole: keep appending to it.
        for (const q of queued) old.append(q.buf, q.sync).then(q.resolve, q.reject);
        void err;
      }
    })();
  }

  /** Journal writes the `interval:<ms>` fsync has not covered yet. */
  get unsynced(): boolean {
    return this.dirty;
  }

  /** fsync for the `interval:<ms>` policy. */
  async syncIfDirty(): Promise<void> {
    if (!this.dirty || !this.file || this.rotation) return;
    this.dirty = false;
    this.lastSync = Date.now();
    await this.file.sync();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.lock.run(async () => {});
    while (this.rotation) await new Promise((r) => setTimeout(r, 5));
    await this.file?.close();
  }

  // ---------------------------------------------------------------- deadlines

  /** The time the next timer is due (Infinity when none). */
  nextDue(): number {
    return this.timers.peek()?.due ?? Infinity;
  }

  /** Expires ack deadlines and delayed nacks that are due; dead-letters what ran out of attempts. */
  processDue(now: number): void {
    const dead: { partition: number; offset: number; attempts: number }[] = [];
    let woke = false;
    for (let t = this.timers.peek(); t && t.due <= now; t = this.timers.peek()) {
      this.timers.pop();
      const c = this.cursors[t.partition];
      if (!c || t.epoch !== c.epoch) continue;
      if (t.range) {
        for (const o of c.expireRange(t.from, t.to, t.epoch)) {
          const u = c.exceptions.get(o)!;
          if (u.attempt >= this.maxDeliveries) {
            u.due = Infinity; // parked until it is in the dead-letter station
            dead.push({ partition: t.partition, offset: o, attempts: u.attempt });
            continue;
          }
          c.ready.push(o);
          woke = true;
        }
        continue;
      }
      for (let o = t.from; o <= t.to; o++) {
        const u = c.exceptions.get(o);
        if (!u || u.inflight !== t.inflight || u.due !== t.due) continue;
        if (u.inflight) {
          u.inflight = false;
          c.pendingCount--;
          if (u.attempt >= this.maxDeliveries) {
            u.due = Infinity; // parked until it is in the dead-letter station
            dead.push({ partition: t.partition, offset: o, attempts: u.attempt });
            continue;
          }
        }
        u.due = 0;
        c.ready.push(o);
        woke = true;
      }
    }
    if (dead.length > 0) void this.moveToDls(dead, 'MAX_DELIVERIES', `not acknowledged after ${this.maxDeliveries} deliveries`);
    if (woke) this.host.notify();
  }

  private async moveToDls(
    items: { partition: number; offset: number; attempts: number }[],
    code: string,
    reason: string,
    headers?: Record<string, string>,
  ): Promise<void> {
    const batch: DeadLetterItem[] = [];
    const gone: { partition: number; offset: number }[] = [];
    for (const it of items) {
      const [rec] = await this.host.read(it.partition, it.offset, 1, 1);
      if (rec && rec.offset === it.offset)
        batch.push({ record: rec, partition: it.partition, attempts: it.attempts, code, reason, headers });
      else gone.push(it);
    }
    try {
      if (batch.length > 0) await this.host.deadLetter(this.name, batch);
    } catch {
      // The dead-letter station could not take them: make them deliverable again, so nothing is lost.
      for (const it of batch) {
        const u = this.cursors[it.partition]?.exceptions.get(it.record.offset);
        if (u && u.due === Infinity) {
          u.due = 0;
          this.cursors[it.partition]!.ready.push(it.record.offset);
        }
      }
      return;
    }
    // One number per partition, journaled (absolute) with the DEAD entries below: it survives a restart.
    const counted = new Set<number>();
    for (const b of batch) {
      const c = this.cursors[b.partition];
      if (!c) continue;
      c.deadLettered++;
      counted.add(b.partition);
    }
    const settled = [...batch.map((b) => ({ partition: b.partition, offset: b.record.offset })), ...gone];
    await this.settleOffsets(settled, true, true, counted);
  }

  /**
   * Settles offsets (acked, or `dead`-lettered: remembered so a late ack answers stale) and journals them,
   * with the dead-lettered count of each partition in `counted` (absolute, so appends in any order agree).
   */
  private settleOffsets(
    items: { partition: number; offset: number }[],
    sync: boolean,
    dead = false,
    counted?: ReadonlySet<number>,
  ): Promise<void> {
    const byPartition = new Map<number, number[]>();
    for (const it of items) {
      const c = this.cursors[it.partition];
      if (c?.settle(it.offset)) {
        let list = byPartition.get(it.partition);
        if (!list) byPartition.set(it.partition, (list = []));
        list.push(it.offset);
      }
    }
    if (dead) for (const [partition, offsets] of byPartition) this.cursors[partition]!.rememberDead(offsets);
    const op = dead ? JournalOp.DEAD : JournalOp.SETTLE;
    const entries: JournalEntry[] = [...byPartition].map(([partition, offsets]) => ({ op, partition, offsets }));
    // Every partition a DEAD entry names gets its count too: replay must not count the offsets retention took.
    if (dead)
      for (const partition of new Set([...byPartition.keys(), ...(counted ?? [])]))
        entries.push({ op: JournalOp.DEAD_TOTAL, partition, count: this.cursors[partition]!.deadLettered });
    return this.journal(entries, sync);
  }

  /**
   * Retention removed what lies below each partition's first retained offset: forget it, and count (and
   * journal) what the group had not settled there — lost to retention, never silently.
   */
  clampAll(count = true): void {
    const entries: JournalEntry[] = [];
    for (const c of this.cursors) {
      if (count) this.clamp(c, this.host.bounds(c.partition).first, entries);
      else c.clampTo(this.host.bounds(c.partition).first);
    }
    void this.journal(entries, false).catch(() => {});
  }

  private clamp(c: PartitionCursor, first: number, entries: JournalEntry[]): void {
    const lost = c.clampTo(first);
    if (lost <= 0) return;
    c.lost += lost;
    entries.push({ op: JournalOp.RETAINED, partition: c.partition, offset: c.floor, lost });
    this.host.retentionLost(this.name, c.partition, lost);
  }

  // ---------------------------------------------------------------- fetch

  /** Collects deliveries (redeliveries first, then new messages), in offset order per partition. */
  collect(station: string, maxMessages: number, maxBytes: number, prefer?: number): Promise<Delivery[]> {
    const out = new DeliveryList(station, this.host.id);
    return this.gather(out, maxMessages, maxBytes, prefer).then(() => out.list);
  }

  /** `collect` in packed form: the same deliveries and bookkeeping, as chunks per partition. */
  collectChunks(maxMessages: number, maxBytes: number, prefer?: number): Promise<DeliveryChunk[]> {
    const out = new ChunkBuilder(this.host.persistent, this.host.id);
    return this.gather(out, maxMessages, maxBytes, prefer).then(() => out.finish());
  }

  /** Partitions are visited round-robin across calls, or from `prefer` (a partition of the station) on. */
  private gather(out: Collector, maxMessages: number, maxBytes: number, prefer?: number): Promise<void> {
    return this.lock.run(async () => {
      const now = Date.now();
      this.processDue(now);
      const entries: JournalEntry[] = [];
      const dead: { partition: number; offset: number; attempts: number }[] = [];
      let bytes = 0;
      const P = this.cursors.length;
      const start = prefer !== undefined && Number.isInteger(prefer) && prefer >= 0 && prefer < P ? prefer : this.rr++ % P;
      const due = now + this.maxAckTimeMs;
      const room = (size: number) => out.count < maxMessages && (out.count === 0 || bytes + size <= maxBytes);

      for (let i = 0; i < P && out.count < maxMessages; i++) {
        const c = this.cursors[(start + i) % P]!;
        while (out.count < maxMessages && c.ready.size > 0) {
          const o = c.ready.peek()!;
          const u = c.exceptions.get(o);
          if (!u || u.inflight || u.due !== 0) {
            c.ready.pop();
            continue;
          }
          if (u.attempt >= this.maxDeliveries) {
            c.ready.pop();
            u.due = Infinity;
            dead.push({ partition: c.partition, offset: o, attempts: u.attempt });
            continue;
          }
          const [rec] = await this.host.read(c.partition, o, 1, 1);
          if (!rec || rec.offset !== o) {
            c.ready.pop();
            if (c.settle(o)) entries.push({ op: JournalOp.SETTLE, partition: c.partition, offsets: [o] });
            continue;
          }
          if (!room(rec.value.length)) break;
          c.ready.pop();
          u.attempt++;
          u.inflight = true;
          u.due = due;
          c.pendingCount++;
          this.redeliveries++;
          this.timers.push({ due, partition: c.partition, from: o, to: o, inflight: true, range: false, epoch: c.epoch });
          entries.push({ op: JournalOp.REDELIVER, partition: c.partition, offset: o, attempt: u.attempt });
          bytes += rec.value.length;
          out.add(c.partition, rec, u.attempt, c.epochToken);
        }
      }

      for (let i = 0; i < P && out.count < maxMessages && (out.count === 0 || bytes < maxBytes); i++) {
        const c = this.cursors[(start + i) % P]!;
        const { first, end } = this.host.bounds(c.partition);
        this.clamp(c, first, entries);
        if (c.next >= end) continue;
        const recs = await this.host.read(c.partition, c.next, maxMessages - out.count, Math.max(1, maxBytes - bytes));
        const from = c.next;
        if (recs.length === 0) {
          // Nothing left below the end: the rest was lost (a damaged end of the log, its floor raised above
          // what survived). The group moves past it now rather than counting it as lag until a new message.
          c.deliverRange(from, end - 1, true);
          for (let o = from; o < end; o++) c.settle(o);
          entries.push(
            { op: JournalOp.DELIVER, partition: c.partition, from, to: end - 1 },
            { op: JournalOp.SETTLE_RANGE, partition: c.partition, from, to: end - 1 },
          );
          continue;
        }
        let to = from - 1;
        const returned: number[] = [];
        for (const rec of recs) {
          if (rec.offset >= end || !room(rec.value.length)) break;
          to = rec.offset;
          const target = rec.headers[REPLAY_GROUP_HEADER];
          if (target !== undefined && target !== this.name) continue;
          bytes += rec.value.length;
          out.add(c.partition, rec, 1, c.epochToken);
          returned.push(rec.offset);
        }
        if (to < from) continue;
        c.deliverRange(from, to, true);
        entries.push({ op: JournalOp.DELIVER, partition: c.partition, from, to });
        // Offsets in the range that were not returned (lost to corruption) or are meant for another group.
        if (returned.length !== to - from + 1) {
          const have = new Set(returned);
          const settle: number[] = [];
          for (let o = from; o <= to; o++) if (!have.has(o)) settle.push(o);
          for (const o of settle) c.settle(o);
          entries.push(...journalSettled(c.partition, settle));
        }
        if (returned.length > 0) this.timers.push({ due, partition: c.partition, from, to, inflight: true, range: true, epoch: c.epoch });
      }
      void this.journal(entries, false).catch(() => {});
      if (dead.length > 0) void this.moveToDls(dead, 'MAX_DELIVERIES', `not acknowledged after ${this.maxDeliveries} deliveries`);
    });
  }

  // ---------------------------------------------------------------- settle

  /**
   * What a deliveryId refers to: the cursor and the parsed id, or the status to answer at once —
   * `unknown` for an id this group never handed out (malformed, no such partition, an offset not yet
   * delivered in any epoch), `stale` for an id of another epoch (handed out before a seek, or by an earlier
   * incarnation of the station or group: only the current epoch's deliveries may be settled).
   */
  private locate(id: string): { d: ParsedDeliveryId; c: PartitionCursor } | 'unknown' | 'stale' {
    const d = parseDeliveryId(id);
    const c = d && this.cursors[d.partition];
    if (!d || !c || d.attempt < 1 || d.offset >= c.next) return 'unknown';
    if (d.epoch !== c.epochToken) return 'stale';
    return { d, c };
  }

  /**
   * Acks: idempotent. `acked` for the current attempt of a waiting message, an older attempt of it (the
   * work was done), or one already acked; `stale` for a message dead-lettered (or on its way to the
   * dead-letter station) and for an id of another epoch; `unknown` for an attempt never handed out.
   */
  async ack(ids: readonly string[]): Promise<SettleOutcome[]> {
    const out: SettleOutcome[] = [];
    const toSettle: { partition: number; offset: number }[] = [];
    for (const id of ids) {
      const at = this.locate(id);
      if (typeof at === 'string') {
        out.push({ deliveryId: id, status: at });
        continue;
      }
      const { d, c } = at;
      const state = c.state(d.offset);
      if (state === 'dead') {
        out.push({ deliveryId: id, status: 'stale' });
        continue;
      }
      if (state === 'waiting') {
        const u = c.peek(d.offset)!;
        if (d.attempt > u.attempt) {
          out.push({ deliveryId: id, status: 'unknown' }); // an attempt never handed out
          continue;
        }
        if (u.due === Infinity) {
          out.push({ deliveryId: id, status: 'stale' }); // already on its way to the dead-letter station
          continue;
        }
        toSettle.push({ partition: d.partition, offset: d.offset });
      }
      out.push({ deliveryId: id, status: 'acked' });
    }
    await this.settleOffsets(toSettle, true);
    return out;
  }

  /**
   * Acks by offset ranges: every waiting offset in them, as `ack` does for their ids. A range naming
   * another epoch than the partition's current one settles nothing. Returns how many were acked.
   */
  async ackRanges(ranges: readonly OffsetRange[]): Promise<number> {
    const byPartition = new Map<number, number[]>();
    let n = 0;
    for (const r of ranges) {
      const c = this.cursors[r.partition];
      if (!c) continue;
      if (r.epoch !== undefined && r.epoch !== c.epochToken) continue;
      let list = byPartition.get(r.partition);
      const to = Math.min(r.to, c.next - 1);
      for (let o = Math.max(r.from, c.floor); o <= to; o++) {
        const u = c.exceptions.get(o);
        if (u !== undefined && u.due === Infinity) continue; // already on its way to the dead-letter station
        if (!c.settle(o)) continue;
        if (!list) byPartition.set(r.partition, (list = []));
        list.push(o);
        n++;
      }
    }
    const entries: JournalEntry[] = [];
    for (const [partition, offsets] of byPartition) entries.push(...journalSettled(partition, offsets));
    await this.journal(entries, true);
    return n;
  }

  /**
   * Nacks: only the current attempt of a delivery that is out counts. `acked` when the message was
   * already acked (there is nothing to deliver again); `stale` for an older attempt, a delivery not out
   * (already nacked or past its deadline), a message dead-lettered, or an id of another epoch.
   */
  async nack(ids: readonly string[], delayMs = 0): Promise<SettleOutcome[]> {
    const out: SettleOutcome[] = [];
    const now = Date.now();
    const dead: { partition: number; offset: number; attempts: number }[] = [];
    for (const id of ids) {
      const at = this.locate(id);
      if (typeof at === 'string') {
        out.push({ deliveryId: id, status: at });
        continue;
      }
      const { d, c } = at;
      const state = c.state(d.offset);
      if (state !== 'waiting') {
        out.push({ deliveryId: id, status: state === 'acked' ? 'acked' : 'stale' });
        continue;
      }
      const seen = c.peek(d.offset)!;
      if (d.attempt > seen.attempt) {
        out.push({ deliveryId: id, status: 'unknown' });
        continue;
      }
      if (!seen.inflight || seen.attempt !== d.attempt) {
        out.push({ deliveryId: id, status: 'stale' });
        continue;
      }
      const u = c.entry(d.offset)!;
      u.inflight = false;
      c.pendingCount--;
      if (u.attempt >= this.maxDeliveries) {
        u.due = Infinity;
        dead.push({ partition: d.partition, offset: d.offset, attempts: u.attempt });
        out.push({ deliveryId: id, status: 'dead-lettered' });
        continue;
      }
      if (delayMs > 0) {
        u.due = now + delayMs;
        this.timers.push({
          due: u.due,
          partition: d.partition,
          from: d.offset,
          to: d.offset,
          inflight: false,
          range: false,
          epoch: c.epoch,
        });
      } else {
        u.due = 0;
        c.ready.push(d.offset);
      }
      out.push({ deliveryId: id, status: 'nacked' });
    }
    if (dead.length > 0) await this.moveToDls(dead, 'MAX_DELIVERIES', `nacked after ${this.maxDeliveries} deliveries`);
    this.host.notify();
    return out;
  }

  /**
   * Dead-letters deliveries that are still waiting (any attempt handed out). `dead-lettered` also for a
   * message already dead-lettered (idempotent); `acked` for one already acked; `stale` for an id of
   * another epoch; `unknown` for an attempt never handed out.
   */
  async deadLetter(
    ids: readonly string[],
    reason: string,
    code = 'CONSUMER_DEAD_LETTER',
    headers?: Record<string, string>,
  ): Promise<SettleOutcome[]> {
    const out: SettleOutcome[] = [];
    const items: { partition: number; offset: number; attempts: number }[] = [];
    for (const id of ids) {
      const at = this.locate(id);
      if (typeof at === 'string') {
        out.push({ deliveryId: id, status: at });
        continue;
      }
      const { d, c } = at;
      const state = c.state(d.offset);
      if (state !== 'waiting') {
        out.push({ deliveryId: id, status: state === 'acked' ? 'acked' : 'dead-lettered' });
        continue;
      }
      const seen = c.peek(d.offset)!;
      if (d.attempt > seen.attempt) {
        out.push({ deliveryId: id, status: 'unknown' });
        continue;
      }
      if (seen.due === Infinity) {
        out.push({ deliveryId: id, status: 'dead-lettered' }); // already on its way there
        continue;
      }
      const u = c.entry(d.offset)!;
      if (u.inflight) c.pendingCount--;
      u.inflight = false;
      u.due = Infinity;
      items.push({ partition: d.partition, offset: d.offset, attempts: u.attempt });
      out.push({ deliveryId: id, status: 'dead-lettered' });
    }
    if (items.length > 0) await this.moveToDls(items, code, reason, headers);
    return out;
  }

  /** Moves every partition's cursor (or one partition's); pending deliveries are forgotten. */
  seek(targets: { partition: number; offset: number }[]): Promise<void> {
    return this.lock.run(async () => {
      const entries: JournalEntry[] = [];
      for (const t of targets) {
        const c = this.cursors[t.partition];
        if (!c) continue;
        c.seek(t.offset);
        // A new epoch: ids handed out before the seek no longer settle anything.
        c.setToken(newToken(c.token));
        entries.push(
          { op: JournalOp.SEEK, partition: t.partition, offset: t.offset },
          { op: JournalOp.EPOCH, partition: t.partition, epoch: c.token },
        );
      }
      await this.journal(entries, true);
      this.host.notify();
    });
  }

  /**
   * The group's numbers, and the age of its oldest unsettled message (`oldestUnackedAgeSeconds`): now
   * minus the produce time of the message at the lowest ack floor of a partition with lag, whether that
   * message was delivered and is not acked yet or was never delivered — Kafka's "consumer lag in time".
   * null when every retained message is settled. One record read per partition whose floor moved since
   * the last call (the timestamp at a floor is remembered), none for a partition without lag.
   */
  async info(station: string): Promise<GroupInfo> {
    const base = this.counts(station);
    const now = Date.now();
    let oldest = Infinity;
    await Promise.all(
      base.partitions.map(async (p) => {
        if (p.lag === 0) return;
        const ts = await this.timestampAt(p.partition, p.ackFloor);
        if (ts !== undefined && ts < oldest) oldest = ts;
      }),
    );
    return { ...base, oldestUnackedAgeSeconds: oldest === Infinity ? null : Math.max(0, now - oldest) / 1000 };
  }

  /** The produce time of the first retained message at or after `offset` of a partition (remembered per partition). */
  private async timestampAt(partition: number, offset: number): Promise<number | undefined> {
    const seen = this.floorTs[partition];
    if (seen && seen.offset === offset) return seen.ts;
    const [rec] = await this.host.read(partition, offset, 1, 1).catch(() => []);
    if (!rec) return undefined;
    // A record past `offset` (a gap) is remembered under `offset` too: the gap does not fill.
    this.floorTs[partition] = { offset, ts: rec.timestamp };
    return rec.timestamp;
  }

  private counts(station: string): Omit<GroupInfo, 'oldestUnackedAgeSeconds'> {
    this.processDue(Date.now());
    const partitions = this.cursors.map((c) => {
      const { first, end } = this.host.bounds(c.partition);
      // Unsettled = in flight (counted) + waiting for redelivery or parked for the DLS: no walk over them.
      const queued = c.unsettledCount - c.pendingCount;
      return {
        partition: c.partition,
        nextOffset: Math.max(c.next, first),
        ackFloor: Math.max(c.floor, first),
        lag: c.lag(end, first),
        pending: c.pendingCount,
        redeliveryQueued: queued,
        lostToRetention: c.lost,
        deadLettered: c.deadLettered,
      };
    });
    return {
      station,
      group: this.name,
      createdAt: this.meta.createdAt,
      maxAckTimeMs: this.maxAckTimeMs,
      maxDeliveries: this.maxDeliveries,
      partitions,
      lag: partitions.reduce((n, p) => n + p.lag, 0),
      pending: partitions.reduce((n, p) => n + p.pending, 0),
      redeliveries: this.redeliveries,
      deadLettered: partitions.reduce((n, p) => n + p.deadLettered, 0),
      lostToRetention: partitions.reduce((n, p) => n + p.lostToRetention, 0),
    };
  }

  /** Lowest ack floor per partition (ack-based retention). */
  floor(partition: number): number {
    return this.cursors[partition]?.floor ?? 1;
  }
}

/** Journal entries for settled offsets (ascending): runs as ranges (a batch settles one run), stray ones as one list. */
function journalSettled(partition: number, offsets: readonly number[]): JournalEntry[] {
  const entries: JournalEntry[] = [];
  const stray: number[] = [];
  for (let i = 0; i < offsets.length;) {
    let j = i + 1;
    while (j < offsets.length && offsets[j] === offsets[j - 1]! + 1) j++;
    if (j - i >= 3) entries.push({ op: JournalOp.SETTLE_RANGE, partition, from: offsets[i]!, to: offsets[j - 1]! });
    else for (let k = i; k < j; k++) stray.push(offsets[k]!);
    i = j;
  }
  if (stray.length > 0) entries.push({ op: JournalOp.SETTLE, partition, offsets: stray });
  return entries;
}

/** A random epoch token (32 bits), never `previous`. */
function newToken(previous = -1): number {
  for (;;) {
    const t = randomBytes(4).readUInt32LE(0);
    if (t !== previous) return t;
  }
}

/** Writes a file atomically (kept here for the store's imports; see atomic-file.ts). */
export { writeAtomic };
