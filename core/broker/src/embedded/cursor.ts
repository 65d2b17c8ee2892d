/**
 * One consumer group's position in one partition. Offsets below `floor` are settled (acked or
 * dead-lettered); between `floor` and `next` every offset is either in `settled` or waiting; `next` is
 * the first offset never delivered.
 *
 * Waiting offsets cost nothing each in the common case: a fetch delivers a range [from, to] once, in
 * flight with one ack deadline (one timer in the group), and a waiting offset that has no entry in
 * `exceptions` is exactly such a first delivery, in flight. Only what leaves that state — a deadline
 * passed, a nack, a redelivery, a dead letter on its way, a delivery recovered from the journal — gets an
 * entry of its own. So a fetch of n messages and their acks allocate nothing per message here.
 */
import { epochToken } from '@junction/protocol';
import { MinHeap } from './heap.js';
import { JournalOp, type JournalEntry } from './journal.js';

/** How many dead-lettered offsets a partition cursor remembers (so a late ack of one answers `stale`). */
export const DEAD_MEMORY = 10_000;

/** What a settle verb finds at an offset. */
export type OffsetState = 'undelivered' | 'waiting' | 'acked' | 'dead';

export interface Unsettled {
  attempt: number;
  /** True while a delivery is out; false while waiting in the redelivery queue. */
  inflight: boolean;
  /** Ack deadline while in flight; not-before time while queued; Infinity while parked for the DLS. */
  due: number;
}

/** What a waiting offset without an entry is: its first delivery, in flight (deadline: its range's timer). */
const FIRST_DELIVERY: Readonly<Unsettled> = Object.freeze({ attempt: 1, inflight: true, due: -1 });

export class PartitionCursor {
  next: number;
  floor: number;
  readonly settled = new Set<number>();
  /** Waiting offsets that are not a first delivery in flight (see the file comment). */
  readonly exceptions = new Map<number, Unsettled>();
  /** Offsets ready for redelivery now, lowest first. */
  readonly ready = new MinHeap<number>((a, b) => a < b);
  /** Deliveries in flight: first deliveries without an entry plus entries with `inflight`. */
  pendingCount = 0;
  /** Bumped by every seek: timers of an earlier epoch no longer apply. */
  epoch = 0;
  /**
   * The epoch token deliveryIds carry (32 bits, random at creation and at every seek, journaled), so an id
   * of an earlier epoch — before a seek, or of an earlier incarnation of the station or group — never
   * settles a delivery of this one. -1 until set (a journal written before tokens existed).
   */
  token = -1;
  private tokenText = '';
  /** Recently dead-lettered offsets (settled), oldest first; at most DEAD_MEMORY. */
  readonly dead = new Set<number>();
  /** Messages retention removed before the group settled them (journaled). */
  lost = 0;
  /**
   * Messages of this partition the group moved to the dead-letter station since it was created (journaled
   * as DEAD_TOTAL; a seek keeps it, as it keeps `lost`).
   */
  deadLettered = 0;

  constructor(
    readonly partition: number,
    start: number,
  ) {
    this.next = start;
    this.floor = start;
  }

  seek(offset: number): void {
    this.next = offset;
    this.floor = offset;
    this.settled.clear();
    this.exceptions.clear();
    this.ready.clear();
    this.dead.clear();
    this.pendingCount = 0;
    this.epoch++;
  }

  /** Sets the epoch token (a 32-bit number). */
  setToken(token: number): void {
    this.token = token >>> 0;
    this.tokenText = epochToken(this.token);
  }

  /** The epoch token as deliveryIds carry it. */
  get epochToken(): string {
    return this.tokenText;
  }

  /** Remembers settled offsets as dead-lettered (bounded: the oldest are forgotten first). */
  rememberDead(offsets: Iterable<number>): void {
    for (const o of offsets) {
      this.dead.delete(o);
      this.dead.add(o);
    }
    if (this.dead.size > DEAD_MEMORY) {
      let drop = this.dead.size - DEAD_MEMORY;
      for (const o of this.dead) {
        if (drop-- <= 0) break;
        this.dead.delete(o);
      }
    }
  }

  /**
   * What a settle verb finds at an offset: never delivered, waiting (delivered, unsettled), settled by an
   * ack — or by anything else this cursor does not remember as dead-lettered — or dead-lettered.
   */
  state(offset: number): OffsetState {
    if (offset >= this.next) return 'undelivered';
    if (this.waiting(offset)) return 'waiting';
    return this.dead.has(offset) ? 'dead' : 'acked';
  }

  /** Waiting (delivered, neither acked nor dead-lettered). */
  waiting(offset: number): boolean {
    return offset >= this.floor && offset < this.next && !this.settled.has(offset);
  }

  /** The state of a waiting offset (a shared read-only object for a first delivery); undefined when not waiting. */
  peek(offset: number): Readonly<Unsettled> | undefined {
    return this.exceptions.get(offset) ?? (this.waiting(offset) ? FIRST_DELIVERY : undefined);
  }

  /** The state of a waiting offset as an entry of its own, to change; undefined when not waiting. */
  entry(offset: number): Unsettled | undefined {
    let u = this.exceptions.get(offset);
    if (!u && this.waiting(offset)) this.exceptions.set(offset, (u = { ...FIRST_DELIVERY }));
    return u;
  }

  /** Waiting offsets (in flight or not). */
  get unsettledCount(): number {
    return this.next - this.floor - this.settled.size;
  }

  /**
   * Marks [from, to] delivered once (attempt 1): in flight (the caller arms one timer for the range), or
   * queued for redelivery (recovery). Idempotent for offsets already delivered.
   */
  deliverRange(from: number, to: number, inflight: boolean): void {
    const start = Math.max(from, this.next);
    if (to < start) return;
    if (inflight) this.pendingCount += to - start + 1;
    else {
      for (let o = start; o <= to; o++) {
        this.exceptions.set(o, { attempt: 1, inflight: false, due: 0 });
        this.ready.push(o);
      }
    }
    this.next = to + 1;
  }

  /**
   * The ack deadline of a first-delivery range passed: its offsets still in flight come back, as entries.
   * Returns them (caller queues or dead-letters them).
   */
  expireRange(from: number, to: number, epoch: number): number[] {
    const out: number[] = [];
    if (epoch !== this.epoch) return out;
    for (let o = Math.max(from, this.floor); o <= to && o < this.next; o++) {
      if (this.settled.has(o) || this.exceptions.has(o)) continue;
      this.pendingCount--;
      this.exceptions.set(o, { attempt: 1, inflight: false, due: 0 });
      out.push(o);
    }
    return out;
  }

  /** Settles one offset; false when it was not waiting (already settled, or never delivered). */
  settle(offset: number): boolean {
    if (!this.waiting(offset)) return false;
    const u = this.exceptions.get(offset);
    if (u) {
      if (u.inflight) this.pendingCount--;
      this.exceptions.delete(offset);
    } else {
      this.pendingCount--;
    }
    if (offset === this.floor) {
      this.floor++;
      while (this.settled.delete(this.floor)) this.floor++;
    } else {
      this.settled.add(offset);
    }
    return true;
  }

  /**
   * Retention removed everything below `first`: forget it. Returns how many of those offsets the group
   * had not settled (waiting, or never delivered): what it lost to retention (the caller counts it).
   */
  clampTo(first: number): number {
    if (this.floor >= first) return 0;
    const floorBefore = this.floor;
    let settledBelow = 0;
    const below = Math.min(first, this.next);
    // First deliveries in flight below `first`: the waiting offsets there that have no entry.
    let waitingBelow = Math.max(0, below - this.floor);
    for (const o of this.settled) {
      if (o < first) {
        this.settled.delete(o);
        settledBelow++;
        if (o < below) waitingBelow--;
      }
    }
    for (const [o, u] of this.exceptions) {
      if (o < first) {
        if (u.inflight) this.pendingCount--;
        this.exceptions.delete(o);
        if (o < below) waitingBelow--;
      }
    }
    this.pendingCount -= waitingBelow;
    this.floor = first;
    if (this.next < first) this.next = first;
    while (this.settled.delete(this.floor)) this.floor++;
    return first - floorBefore - settledBelow;
  }

  /** Unsettled messages that are retained, given the partition's end. */
  lag(end: number, first: number): number {
    const floor = Math.max(this.floor, first);
    let settledAbove = 0;
    if (floor === this.floor) settledAbove = this.settled.size;
    else for (const o of this.settled) if (o >= floor) settledAbove++;
    return Math.max(0, end - floor - settledAbove);
  }

  /** Applies one journal entry during recovery; every delivery comes back as queued for redelivery. */
  apply(e: JournalEntry): void {
    switch (e.op) {
      case JournalOp.DELIVER:
        this.deliverRange(e.from, e.to, false);
        break;
      case JournalOp.REDELIVER: {
        const u = this.exceptions.get(e.offset);
        if (u && e.attempt > u.attempt) u.attempt = e.attempt;
        break;
      }
      case JournalOp.SETTLE:
        for (const o of e.offsets) this.settle(o);
        break;
      case JournalOp.SETTLE_RANGE:
        for (let o = e.from; o <= e.to; o++) this.settle(o);
        break;
      case JournalOp.SEEK:
        this.seek(e.offset);
        break;
      case JournalOp.EPOCH:
        this.setToken(e.epoch);
        break;
      case JournalOp.DEAD:
        // A journal from before DEAD_TOTAL counts what its DEAD entries settle; a DEAD_TOTAL after it sets the count.
        for (const o of e.offsets) if (this.settle(o)) this.deadLettered++;
        this.rememberDead(e.offsets);
        break;
      case JournalOp.DEAD_TOTAL:
        this.deadLettered = e.count;
        break;
      case JournalOp.RETAINED:
        this.clampTo(e.offset);
        this.lost += e.lost;
        break;
    }
  }

  /** The shortest journal that rebuilds this cursor. */
  snapshot(): JournalEntry[] {
    const p = this.partition;
    const out: JournalEntry[] = [{ op: JournalOp.SEEK, partition: p, offset: this.floor }];
    if (this.token >= 0) out.push({ op: JournalOp.EPOCH, partition: p, epoch: this.token });
    if (this.lost > 0) out.push({ op: JournalOp.RETAINED, partition: p, offset: this.floor, lost: this.lost });
    // Before DELIVER: these settle nothing on replay (so they add nothing to the count DEAD_TOTAL then sets).
    if (this.dead.size > 0) out.push({ op: JournalOp.DEAD, partition: p, offsets: [...this.dead] });
    if (this.deadLettered > 0) out.push({ op: JournalOp.DEAD_TOTAL, partition: p, count: this.deadLettered });
    if (this.next > this.floor) out.push({ op: JournalOp.DELIVER, partition: p, from: this.floor, to: this.next - 1 });
    if (this.settled.size > 0) out.push({ op: JournalOp.SETTLE, partition: p, offsets: [...this.settled] });
    for (const [o, u] of this.exceptions)
      if (u.attempt > 1) out.push({ op: JournalOp.REDELIVER, partition: p, offset: o, attempt: u.attempt });
    return out;
  }
}
