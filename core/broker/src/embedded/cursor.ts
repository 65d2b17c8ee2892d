/**
 * One consumer group's position in one partition. Offsets below `floor` are settled (acked or
 * dead-lettered); between `floor` and `next` every offset is either in `settled` or in `unsettled`
 * (delivered at least once, waiting); `next` is the first offset never delivered.
 */
import { MinHeap } from './heap.js';
import { JournalOp, type JournalEntry } from './journal.js';

export interface Unsettled {
  attempt: number;
  /** True while a delivery is out; false while waiting in the redelivery queue. */
  inflight: boolean;
  /** Ack deadline while in flight; not-before time while queued. */
  due: number;
}

export class PartitionCursor {
  next: number;
  floor: number;
  readonly settled = new Set<number>();
  readonly unsettled = new Map<number, Unsettled>();
  /** Offsets ready for redelivery now, lowest first. */
  readonly ready = new MinHeap<number>((a, b) => a < b);
  pendingCount = 0;

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
    this.unsettled.clear();
    this.ready.clear();
    this.pendingCount = 0;
  }

  /** Marks [from, to] delivered once (attempt 1). Idempotent for offsets already delivered. */
  deliverRange(from: number, to: number, due: number, inflight: boolean): void {
    for (let o = Math.max(from, this.next); o <= to; o++) {
      this.unsettled.set(o, { attempt: 1, inflight, due });
      if (inflight) this.pendingCount++;
      else this.ready.push(o);
    }
    if (to + 1 > this.next) this.next = to + 1;
  }

  /** Settles one offset; false when it was not waiting (already settled, or never delivered). */
  settle(offset: number): boolean {
    if (offset < this.floor || offset >= this.next || this.settled.has(offset)) return false;
    const u = this.unsettled.get(offset);
    if (u) {
      if (u.inflight) this.pendingCount--;
      this.unsettled.delete(offset);
    }
    if (offset === this.floor) {
      this.floor++;
      while (this.settled.delete(this.floor)) this.floor++;
    } else {
      this.settled.add(offset);
    }
    return true;
  }

  /** Retention removed everything below `first`: forget it. */
  clampTo(first: number): void {
    if (this.floor >= first) return;
    for (const o of this.settled) if (o < first) this.settled.delete(o);
    for (const [o, u] of this.unsettled) {
      if (o < first) {
        if (u.inflight) this.pendingCount--;
        this.unsettled.delete(o);
      }
    }
    this.floor = first;
    if (this.next < first) this.next = first;
    while (this.settled.delete(this.floor)) this.floor++;
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
        this.deliverRange(e.from, e.to, 0, false);
        break;
      case JournalOp.REDELIVER: {
        const u = this.unsettled.get(e.offset);
        if (u && e.attempt > u.attempt) u.attempt = e.attempt;
        break;
      }
      case JournalOp.SETTLE:
        for (const o of e.offsets) this.settle(o);
        break;
      case JournalOp.SEEK:
        this.seek(e.offset);
        break;
    }
  }

  /** The shortest journal that rebuilds this cursor. */
  snapshot(): JournalEntry[] {
    const p = this.partition;
    const out: JournalEntry[] = [{ op: JournalOp.SEEK, partition: p, offset: this.floor }];
    if (this.next > this.floor) out.push({ op: JournalOp.DELIVER, partition: p, from: this.floor, to: this.next - 1 });
    if (this.settled.size > 0) out.push({ op: JournalOp.SETTLE, partition: p, offsets: [...this.settled] });
    for (const [o, u] of this.unsettled) if (u.attempt > 1) out.push({ op: JournalOp.REDELIVER, partition: p, offset: o, attempt: u.attempt });
    return out;
  }
}
