/**
 * Property tests: random programs of appends (awaited or not), reads, truncations, trims, timestamp
 * lookups and reopens run against the log and a plain array model; every read equals the model's.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodedSize } from '../../src/log/index.js';
import type { LogRecord, PartitionLog, RecordInput } from '../../src/log/index.js';
import { T0, fileKind, memoryKind } from './helpers.js';
import type { LogKind } from './helpers.js';

type Op =
  | { t: 'append'; sizes: number[]; wait: boolean; keyed: boolean; sameTs: boolean }
  | { t: 'read'; at: number; maxMessages: number; maxBytes: number }
  | { t: 'truncate'; at: number }
  | { t: 'trim'; maxBytes: number }
  | { t: 'timestamp'; at: number }
  | { t: 'reopen' };

const sizeArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 10 },
  { arbitrary: fc.integer({ min: 1000, max: 6000 }), weight: 1 },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('append' as const),
      sizes: fc.array(sizeArb, { minLength: 1, maxLength: 12 }),
      wait: fc.boolean(),
      keyed: fc.boolean(),
      sameTs: fc.boolean(),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('read' as const),
      at: fc.double({ min: -0.2, max: 1.2, noNaN: true }),
      maxMessages: fc.integer({ min: 0, max: 40 }),
      maxBytes: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constant(1e9)),
    }),
    weight: 5,
  },
  { arbitrary: fc.record({ t: fc.constant('truncate' as const), at: fc.double({ min: -0.1, max: 1.3, noNaN: true }) }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('trim' as const), maxBytes: fc.integer({ min: 0, max: 20_000 }) }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('timestamp' as const), at: fc.double({ min: -0.1, max: 1.2, noNaN: true }) }), weight: 1 },
  { arbitrary: fc.constant({ t: 'reopen' as const }), weight: 1 },
);

interface Model {
  recs: RecordInput[]; // recs[offset - 1]
  start: number;
  tick: number;
}

function makeRecord(m: Model, size: number, keyed: boolean, sameTs: boolean): RecordInput {
  if (!sameTs) m.tick += 1 + (m.recs.length % 3);
  const n = m.recs.length;
  const value = Buffer.alloc(size);
  for (let i = 0; i < size; i++) value[i] = (n * 13 + i) & 0xff;
  const r: RecordInput = { timestamp: T0 + m.tick, value };
  if (keyed) {
    r.key = `k${n}-é`;
    r.headers = { h: String(n), ü: '✓' };
  }
  return r;
}

function expectedRead(m: Model, from: number, maxMessages: number, maxBytes: number): number[] {
  const out: number[] = [];
  let bytes = 0;
  for (let o = Math.max(from, m.start); o <= m.recs.length; o++) {
    const size = encodedSize(m.recs[o - 1] as RecordInput);
    if (out.length > 0 && bytes + size > maxBytes) break;
    out.push(o);
    bytes += size;
    if (out.length >= Math.max(1, maxMessages)) break;
  }
  return out;
}

function pick(m: Model, at: number): number {
  return Math.round(m.start + at * (m.recs.length + 1 - m.start));
}

function checkState(log: PartitionLog, m: Model): void {
  expect(log.nextOffset).toBe(m.recs.length + 1);
  expect(log.firstOffset).toBe(m.start);
  expect(log.count).toBe(m.recs.length + 1 - m.start);
  let retained = 0;
  for (let o = m.start; o <= m.recs.length; o++) retained += encodedSize(m.recs[o - 1] as RecordInput);
  expect(log.bytes).toBeGreaterThanOrEqual(retained);
}

function checkRecords(got: LogRecord[], m: Model, offsets: number[]): void {
  expect(got.map((r) => r.offset)).toEqual(offsets);
  for (const r of got) {
    const want = m.recs[r.offset - 1] as RecordInput;
    expect(r.timestamp).toBe(want.timestamp);
    expect(r.key).toBe(want.key);
    expect(r.headers).toEqual(want.headers ?? {});
    expect(Buffer.compare(r.value, Buffer.from(want.value))).toBe(0);
  }
}

async function run(kind: LogKind, segmentBytes: number, ops: Op[]): Promise<void> {
  const h = await kind.create({ segmentBytes });
  const m: Model = { recs: [], start: 1, tick: 0 };
  const pending: Array<Promise<number>> = [];
  try {
    for (const op of ops) {
      const log = h.log;
      switch (op.t) {
        case 'append': {
          const batch = op.sizes.map((s) => makeRecord(m, s, op.keyed, op.sameTs));
          const first = m.recs.length + 1;
          m.recs.push(...batch);
          const p = log.append(batch).then((o) => {
            expect(o).toBe(first);
            return o;
          });
          if (op.wait) await p;
          else pending.push(p);
          break;
        }
        case 'read': {
          const from = pick(m, op.at);
          const got = await log.read(from, { maxMessages: op.maxMessages, maxBytes: op.maxBytes });
          checkRecords(got, m, expectedRead(m, from, op.maxMessages, op.maxBytes));
          break;
        }
        case 'truncate': {
          const at = pick(m, op.at);
          await log.truncateBefore(at);
          m.start = Math.max(m.start, Math.min(at, m.recs.length + 1));
          break;
        }
        case 'trim': {
          const before = log.bytes;
          await log.trimToBytes(op.maxBytes);
          expect(log.firstOffset).toBeGreaterThanOrEqual(m.start);
          expect(log.bytes).toBeLessThanOrEqual(before);
          m.start = log.firstOffset;
          break;
        }
        case 'timestamp': {
          const lo = m.recs[0]?.timestamp ?? T0;
          const ts = Math.round(lo - 2 + op.at * (T0 + m.tick + 4 - lo));
          let want = m.recs.length + 1;
          for (let o = m.start; o <= m.recs.length; o++) {
            if ((m.recs[o - 1] as RecordInput).timestamp >= ts) {
              want = o;
              break;
            }
          }
          expect(await log.offsetForTimestamp(ts)).toBe(want);
          break;
        }
        case 'reopen': {
          await Promise.all(pending.splice(0));
          await h.reopen({ segmentBytes });
          break;
        }
      }
      checkState(h.log, m);
    }
    await Promise.all(pending.splice(0));
    const all = await h.log.read(0, { maxMessages: 1e6, maxBytes: 1e12 });
    checkRecords(all, m, expectedRead(m, 0, 1e6, 1e12));
  } finally {
    await Promise.allSettled(pending);
    await h.dispose();
  }
}

describe('partition log: model-based properties', () => {
  // LOG_PROPERTY_RUNS raises the run count for a longer local soak.
  const scale = Number(process.env.LOG_PROPERTY_RUNS ?? 1);
  for (const [kind, numRuns] of [
    [memoryKind, 200 * scale],
    [fileKind, 100 * scale],
  ] as const) {
    it(`${kind.name} log reads always equal the model`, { timeout: 60_000 * scale }, async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(600, 2048, 1 << 16), fc.array(opArb, { minLength: 1, maxLength: 50 }), (segmentBytes, ops) =>
          run(kind, segmentBytes, ops),
        ),
        { numRuns },
      );
    });
  }
});
