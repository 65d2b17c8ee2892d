import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PartitionCursor } from '../../src/embedded/cursor.js';
import { decodeJournal, encodeEntry, JournalOp, type JournalEntry } from '../../src/embedded/journal.js';

function state(c: PartitionCursor) {
  return {
    next: c.next,
    floor: c.floor,
    settled: [...c.settled].sort((a, b) => a - b),
    unsettled: Array.from({ length: Math.max(0, c.next - c.floor) }, (_, i) => c.floor + i)
      .filter((o) => c.waiting(o))
      .map((o) => [o, c.peek(o)!.attempt]),
    deadLettered: c.deadLettered,
  };
}

describe('partition cursor', () => {
  it('advances the ack floor over settled offsets in any order', () => {
    const c = new PartitionCursor(0, 1);
    c.deliverRange(1, 5, true);
    expect(c.pendingCount).toBe(5);
    expect(c.settle(3)).toBe(true);
    expect(c.settle(3)).toBe(false);
    expect(c.floor).toBe(1);
    c.settle(1);
    expect(c.floor).toBe(2);
    c.settle(2);
    expect(c.floor).toBe(4);
    expect(c.lag(6, 1)).toBe(2);
    expect(c.settle(9)).toBe(false);
    expect(c.pendingCount).toBe(2);
  });

  it('forgets what retention removed', () => {
    const c = new PartitionCursor(0, 1);
    c.deliverRange(1, 10, true);
    c.settle(7);
    c.clampTo(6);
    expect(c.floor).toBe(6);
    c.settle(6);
    expect(c.floor).toBe(8);
    expect(c.pendingCount).toBe(3);
  });

  it('a first delivery has no entry of its own until it leaves that state; counts stay right through expiry, nack and retention', () => {
    const c = new PartitionCursor(0, 1);
    c.deliverRange(1, 10, true);
    expect(c.exceptions.size).toBe(0);
    expect(c.pendingCount).toBe(10);
    expect(c.unsettledCount).toBe(10);
    expect(c.peek(4)).toEqual({ attempt: 1, inflight: true, due: -1 });
    expect(c.peek(11)).toBeUndefined();
    c.settle(2);
    expect(c.peek(2)).toBeUndefined();
    // A nack makes an entry of its own; the shared first-delivery state is never changed.
    const u = c.entry(5)!;
    u.inflight = false;
    c.pendingCount--;
    expect(c.peek(6)).toEqual({ attempt: 1, inflight: true, due: -1 });
    // The range's deadline: what is still in flight without an entry comes back (not 2: settled, not 5: nacked).
    expect(c.expireRange(1, 10, c.epoch + 1)).toEqual([]); // a timer from before a seek
    expect(c.expireRange(1, 7, c.epoch)).toEqual([1, 3, 4, 6, 7]);
    expect(c.pendingCount).toBe(3); // 8, 9, 10
    expect(c.unsettledCount).toBe(9);
    expect(c.expireRange(1, 7, c.epoch)).toEqual([]);
    // Retention below 9: entries and first deliveries below it go, with their in-flight counts.
    c.clampTo(9);
    expect(c.floor).toBe(9);
    expect(c.pendingCount).toBe(2);
    expect(c.unsettledCount).toBe(2);
    expect(c.exceptions.size).toBe(0);
    c.settle(9);
    c.settle(10);
    expect(c.pendingCount).toBe(0);
    expect(c.floor).toBe(11);
  });

  it('in-flight and waiting counts match the offsets through delivery, settle, nack, expiry, retention and seek (property)', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('deliver' as const), n: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ k: fc.constant('settle' as const), at: fc.nat(80) }),
      fc.record({ k: fc.constant('nack' as const), at: fc.nat(80) }),
      fc.record({ k: fc.constant('expire' as const), from: fc.nat(80), n: fc.nat(30) }),
      fc.record({ k: fc.constant('clamp' as const), at: fc.nat(80) }),
      fc.record({ k: fc.constant('seek' as const), at: fc.integer({ min: 1, max: 80 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const c = new PartitionCursor(0, 1);
        for (const o of ops) {
          if (o.k === 'deliver') c.deliverRange(c.next, c.next + o.n - 1, true);
          else if (o.k === 'settle') c.settle(o.at);
          else if (o.k === 'nack') {
            const seen = c.peek(o.at);
            if (seen?.inflight) {
              const u = c.entry(o.at)!;
              u.inflight = false;
              u.due = 0;
              c.pendingCount--;
            }
          } else if (o.k === 'expire') {
            for (const x of c.expireRange(o.from, o.from + o.n, c.epoch))
              expect(c.exceptions.get(x)).toMatchObject({ attempt: 1, inflight: false });
          } else if (o.k === 'clamp') c.clampTo(o.at);
          else c.seek(o.at);
          let waiting = 0;
          let inflight = 0;
          for (let x = c.floor; x < c.next; x++) {
            if (!c.waiting(x)) continue;
            waiting++;
            if (c.peek(x)!.inflight) inflight++;
          }
          expect({ waiting: c.unsettledCount, inflight: c.pendingCount }).toEqual({ waiting, inflight });
          for (const x of c.exceptions.keys()) expect(c.waiting(x)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a journal snapshot rebuilds the same state (property)', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('deliver' as const), n: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ k: fc.constant('settle' as const), at: fc.nat(60) }),
      fc.record({ k: fc.constant('redeliver' as const), at: fc.nat(60) }),
      fc.record({ k: fc.constant('seek' as const), at: fc.integer({ min: 1, max: 60 }) }),
      fc.record({ k: fc.constant('settleRange' as const), at: fc.nat(60), n: fc.integer({ min: 1, max: 15 }) }),
      fc.record({ k: fc.constant('dead' as const), at: fc.nat(60) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const live = new PartitionCursor(0, 1);
        const journal: JournalEntry[] = [{ op: JournalOp.SEEK, partition: 0, offset: 1 }];
        for (const o of ops) {
          if (o.k === 'deliver') {
            const from = live.next;
            live.deliverRange(from, from + o.n - 1, true);
            journal.push({ op: JournalOp.DELIVER, partition: 0, from, to: from + o.n - 1 });
          } else if (o.k === 'settle') {
            if (live.settle(o.at)) journal.push({ op: JournalOp.SETTLE, partition: 0, offsets: [o.at] });
          } else if (o.k === 'settleRange') {
            // As the group's range ack journals it: runs of what it settled.
            let run: [number, number] | undefined;
            for (let x = o.at; x < o.at + o.n; x++) {
              if (live.settle(x)) {
                if (run && run[1] === x - 1) run[1] = x;
                else {
                  if (run) journal.push({ op: JournalOp.SETTLE_RANGE, partition: 0, from: run[0], to: run[1] });
                  run = [x, x];
                }
              }
            }
            if (run) journal.push({ op: JournalOp.SETTLE_RANGE, partition: 0, from: run[0], to: run[1] });
          } else if (o.k === 'dead') {
            // As the group journals a move to the dead-letter station: the offsets, then the partition's count.
            if (live.settle(o.at)) {
              live.rememberDead([o.at]);
              live.deadLettered++;
              journal.push(
                { op: JournalOp.DEAD, partition: 0, offsets: [o.at] },
                { op: JournalOp.DEAD_TOTAL, partition: 0, count: live.deadLettered },
              );
            }
          } else if (o.k === 'redeliver') {
            const u = live.entry(o.at);
            if (u) {
              u.attempt++;
              journal.push({ op: JournalOp.REDELIVER, partition: 0, offset: o.at, attempt: u.attempt });
            }
          } else {
            live.seek(o.at);
            journal.push({ op: JournalOp.SEEK, partition: 0, offset: o.at });
          }
        }
        const bytes = Buffer.concat(journal.map(encodeEntry));
        const decoded = decodeJournal(bytes);
        expect(decoded.damaged).toBe(false);
        const replayed = new PartitionCursor(0, 1);
        for (const e of decoded.entries) replayed.apply(e);
        expect(state(replayed)).toEqual(state(live));
        const fromSnapshot = new PartitionCursor(0, 1);
        for (const e of decodeJournal(Buffer.concat(live.snapshot().map(encodeEntry))).entries) fromSnapshot.apply(e);
        expect(state(fromSnapshot)).toEqual(state(live));
      }),
      { numRuns: 300 },
    );
  });

  it('the dead-lettered count: DEAD_TOTAL sets it, a journal without it counts what its DEAD entries settle', () => {
    const base: JournalEntry[] = [
      { op: JournalOp.SEEK, partition: 0, offset: 1 },
      { op: JournalOp.DELIVER, partition: 0, from: 1, to: 10 },
    ];
    const replay = (entries: JournalEntry[]) => {
      const c = new PartitionCursor(0, 1);
      for (const e of decodeJournal(Buffer.concat(entries.map(encodeEntry))).entries) c.apply(e);
      return c;
    };
    // A journal from before DEAD_TOTAL (or one whose DEAD_TOTAL was torn off): the DEAD entries count.
    const legacy = replay([
      ...base,
      { op: JournalOp.DEAD, partition: 0, offsets: [2, 3] },
      { op: JournalOp.DEAD, partition: 0, offsets: [3, 5] },
    ]);
    expect(legacy.deadLettered).toBe(3);
    // The absolute count wins over what the entries settle (offsets retention took are in DEAD, not counted).
    const current = replay([
      ...base,
      { op: JournalOp.DEAD, partition: 0, offsets: [2, 3] },
      { op: JournalOp.DEAD_TOTAL, partition: 0, count: 1 },
      { op: JournalOp.DEAD, partition: 0, offsets: [5] },
      { op: JournalOp.DEAD_TOTAL, partition: 0, count: 2 },
    ]);
    expect(current.deadLettered).toBe(2);
    // A seek keeps it; a snapshot carries it.
    current.seek(7);
    expect(current.deadLettered).toBe(2);
    expect(replay(current.snapshot()).deadLettered).toBe(2);
  });

  it('a torn or corrupted journal tail is cut at the last whole record', () => {
    const entries: JournalEntry[] = [
      { op: JournalOp.SEEK, partition: 0, offset: 1 },
      { op: JournalOp.DELIVER, partition: 0, from: 1, to: 10 },
      { op: JournalOp.SETTLE, partition: 0, offsets: [1, 2, 3] },
    ];
    const parts = entries.map(encodeEntry);
    const whole = Buffer.concat(parts);
    const two = parts[0]!.length + parts[1]!.length;
    for (let cut = two; cut < whole.length; cut++) {
      const d = decodeJournal(whole.subarray(0, cut));
      expect(d.entries).toHaveLength(2);
      expect(d.validBytes).toBe(two);
    }
    const flipped = Buffer.from(whole);
    flipped[two + 12] ^= 0xff;
    const d = decodeJournal(flipped);
    expect(d.entries).toHaveLength(2);
    expect(d.damaged).toBe(true);
  });
});
