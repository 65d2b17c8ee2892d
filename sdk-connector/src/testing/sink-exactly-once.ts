/**
 * The sink conformance kit's exactly-once checks beyond replays (a section of its own; the harness is
 * sink-conformance.ts's):
 *
 * - `station-identity`: a station deleted and created again under the same name is a new incarnation
 *   (`SinkBatch.stationId`) whose offsets start at 1 again. Its messages are new data, however much of
 *   the old incarnation the destination holds at the same offsets.
 * - `late-write`: a write whose request the destination received from a writer that then died (kill -9)
 *   is applied late — after a new writer replayed the same offsets, cut differently. It must neither
 *   replace nor duplicate what landed.
 *
 * Messages of these checks carry the incarnation in their value too (`"incarnation":n`), so the kit
 * counts (station, incarnation, partition, offset).
 */
import type { Sink, SinkMessage } from '../types.js';
import type { Harness } from './sink-conformance.js';
import { CheckFailed, describeError, fail, notApplicable, within, type NotApplicable } from './util.js';

export const EXACTLY_ONCE_CHECKS = ['station-identity', 'late-write'] as const;
export type ExactlyOnceCheck = (typeof EXACTLY_ONCE_CHECKS)[number];

/**
 * Requests of the sink the destination holds (received, not applied), for the `late-write` check. A
 * test implements it in the destination's fake or in a proxy in front of it.
 */
export interface HeldWrites {
  /**
   * Resolves once at least one write request of the sink is held (the sink sent it; the destination
   * has not applied it). The kit then treats the writer as killed: it aborts the write's signal and
   * never uses that sink again.
   */
  held(): Promise<void>;
  /**
   * Stops holding new requests (those held stay held): the writer that sent them is dead, and the next
   * one's requests must go through.
   */
  stop(): void;
  /**
   * Applies every held request at the destination, in the order received, and stops holding. Their
   * answers must never reach the sink that sent them: its writer is dead. Leave those connections
   * silent (a destroyed connection would make a client library re-send, which a dead writer never
   * does). Resolves once the destination has applied (or refused) each of them.
   */
  release(): Promise<void>;
}

/**
 * How to hold the sink's writes. `hold` is called after the first sink is opened and before its write;
 * from then on the destination holds the write requests it chooses (e.g. the data objects of an object
 * store, the INSERTs of a warehouse) until `stop`, and applies them at `release`.
 */
export interface LateWriteCase {
  hold(): Promise<HeldWrites>;
  /**
   * Called once the writer is dead, before the next one opens: drop what the dead writer's process
   * would have taken with it (e.g. a module-wide record of requests in flight that makes a new sink in
   * the same process wait for them). The kit runs both writers in one process; a killed one shares
   * nothing with its successor.
   */
  afterKill?: () => void | Promise<void>;
  /** The config to open the sinks with for this check (raw); default: the main `config`. */
  config?: unknown;
}

/** Options of these checks, part of `SinkConformanceOptions`. */
export interface ExactlyOnceOptions {
  /**
   * How to hold a write across the death of its writer. Missing means not applicable (reported as
   * such); a destination that no request can reach late (a local filesystem) says so with
   * `{ notApplicable: reason }`.
   */
  lateWrite?: LateWriteCase | NotApplicable;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** (station, incarnation, partition, offset) → how many times the destination holds it. */
async function countByIncarnation(h: Harness): Promise<Map<string, number> | undefined> {
  const read = h.options.readBack;
  if (!read) return undefined;
  let values: Iterable<Uint8Array | string>;
  try {
    values = await within(read(), h.timeoutMs * 3, 'readBack()');
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    fail(`readBack() threw ${describeError(err)}`);
  }
  const decoder = new TextDecoder();
  const counts = new Map<string, number>();
  for (const v of values) {
    const text = typeof v === 'string' ? v : decoder.decode(v);
    if (!text.includes(h.runId)) continue;
    let o: { junctionConformance?: unknown; station?: unknown; incarnation?: unknown; partition?: unknown; offset?: unknown };
    try {
      o = JSON.parse(text) as typeof o;
    } catch {
      continue;
    }
    if (o?.junctionConformance !== h.runId) continue;
    const key = `${String(o.station)}#${String(o.incarnation ?? 1)}/${String(o.partition)}/${String(o.offset)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

interface Expected {
  station: string;
  incarnation: number;
  partition: number;
  offsets: number[];
}

/** Each expected message exactly once (exactlyOnce sinks) or at least once, nothing else of these stations. */
async function verify(h: Harness, expected: Expected[]): Promise<string> {
  const counts = await countByIncarnation(h);
  if (!counts) return 'destination not verified (no readBack)';
  const want = new Set<string>();
  for (const e of expected) for (const o of e.offsets) want.add(`${e.station}#${e.incarnation}/${e.partition}/${o}`);
  const stations = new Set(expected.map((e) => e.station));
  const missing: string[] = [];
  const duplicated: string[] = [];
  for (const key of want) {
    const n = counts.get(key) ?? 0;
    if (n === 0) missing.push(key);
    else if (n > 1 && h.exactlyOnce) duplicated.push(`${key} ×${n}`);
  }
  const unexpected = [...counts.keys()].filter((k) => !want.has(k) && stations.has(k.slice(0, k.indexOf('#'))));
  const list = (xs: string[]) => `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? ` and ${xs.length - 5} more` : ''}`;
  if (missing.length > 0)
    fail(`the destination lacks ${missing.length} confirmed message(s) (station#incarnation/partition/offset): ${list(missing)}`);
  if (duplicated.length > 0)
    fail(`exactlyOnce sink, but the destination holds ${duplicated.length} message(s) more than once: ${list(duplicated)}`);
  if (unexpected.length > 0) fail(`the destination holds message(s) never confirmed: ${list(unexpected)}`);
  return `destination holds each of ${want.size} message(s) ${h.exactlyOnce ? 'exactly once' : 'at least once'}`;
}

/** The kit's message for (station, partition, offset) of an incarnation; incarnation 1 is the harness's own message. */
function message(h: Harness, station: string, incarnation: number, partition: number, offset: number): SinkMessage {
  const base = h.message(station, partition, offset);
  if (incarnation === 1) return base;
  const o = JSON.parse(new TextDecoder().decode(base.value)) as Record<string, unknown>;
  return { ...base, value: new TextEncoder().encode(JSON.stringify({ ...o, incarnation })) };
}

function write(
  h: Harness,
  sink: Sink,
  station: string,
  incarnation: number,
  partition: number,
  offsets: number[],
  what: string,
): Promise<void> {
  const messages = offsets.map((o) => message(h, station, incarnation, partition, o));
  const batch = { ...h.batch(station, partition, messages), stationId: incarnationId(h, station, incarnation) };
  return h.writeOk(sink, batch, what);
}

function incarnationId(h: Harness, station: string, incarnation: number): string {
  return incarnation === 1 ? h.stationId(station) : `${station}#incarnation-${incarnation}`;
}

type CheckFn = (h: Harness) => Promise<string>;

export const exactlyOnceChecks: Record<ExactlyOnceCheck, CheckFn> = {
  async 'station-identity'(h) {
    const station = h.station('identity');
    const p = 0;
    let sink = await h.open();
    try {
      await write(h, sink, station, 1, p, range(1, 10), 'offsets 1-10 of the first incarnation');
      // The same sink, the same name, offsets from 1 again: what the sink remembers must not cover them.
      await write(h, sink, station, 2, p, range(1, 5), 'offsets 1-5 of the station created again (a new stationId)');
    } finally {
      await h.closeQuietly(sink);
    }
    sink = await h.open();
    try {
      // A fresh sink learns what the destination holds: the old incarnation's 6-10 are not the new one's.
      await write(h, sink, station, 2, p, range(1, 12), 'offsets 1-12 of the new incarnation after reopen');
      await write(h, sink, station, 2, p, range(3, 12), 'offsets 3-12 of the new incarnation again (a replay)');
    } finally {
      await h.closeQuietly(sink);
    }
    return `the same offsets under a new stationId were written as new data; ${await verify(h, [
      { station, incarnation: 1, partition: p, offsets: range(1, 10) },
      { station, incarnation: 2, partition: p, offsets: range(1, 12) },
    ])}`;
  },

  async 'late-write'(h) {
    const lw = h.options.lateWrite;
    if (!lw)
      notApplicable(
        "no lateWrite case given: pass { hold } that holds the sink's write requests at the destination until released, or { notApplicable: reason }",
      );
    if ('notApplicable' in lw) notApplicable(lw.notApplicable);
    const config = lw.config ?? h.options.config;
    const station = h.station('late');
    const p = 0;
    const dead = await h.open(config);
    const held = await within(lw.hold(), h.timeoutMs, 'lateWrite.hold()');
    const ac = new AbortController();
    const first = h.batch(station, p, h.messages(station, p, range(1, 30)));
    // Its answer (or throw) is of no interest: the writer is dead before it comes (and may never come).
    const deadWrite: Promise<unknown> = dead.write(first, { signal: ac.signal }).catch((err: unknown) => err);
    let released = false;
    try {
      const got = await within(
        Promise.race([held.held().then(() => 'held' as const), deadWrite.then(() => 'answered' as const)]),
        h.timeoutMs,
        'the held write',
      );
      if (got === 'answered')
        fail("the first write was answered before any of its requests was held: lateWrite.hold() does not catch this sink's writes");
      // The writer dies with its request in flight: nothing of it is used again.
      ac.abort(new Error('the kit killed this writer'));
      held.stop();
      // The dead write reacts to its abort in microtasks (or never settles: its request is held); one
      // turn of the event loop lets that run before what its process held is dropped.
      await Promise.race([deadWrite, new Promise((r) => setImmediate(r))]);
      await within(Promise.resolve(lw.afterKill?.()), h.timeoutMs, 'lateWrite.afterKill()');
      const sink = await h.open(config);
      try {
        // The restarted task replays from the last acknowledged offset, cut its own way.
        await write(h, sink, station, 1, p, range(1, 20), 'offsets 1-20 by the new writer (the dead one held 1-30)');
        await write(h, sink, station, 1, p, range(15, 40), 'offsets 15-40 by the new writer');
        released = true;
        await within(held.release(), h.timeoutMs, 'lateWrite release()');
        // The new writer goes on after the late write landed, and a writer after it learns the destination afresh.
        await write(h, sink, station, 1, p, range(35, 45), 'offsets 35-45 after the late write landed');
      } finally {
        await h.closeQuietly(sink);
      }
      const again = await h.open(config);
      try {
        await write(h, again, station, 1, p, range(1, 45), 'offsets 1-45 again by a third writer');
      } finally {
        await h.closeQuietly(again);
      }
    } finally {
      if (!released) await within(held.release(), h.timeoutMs, 'lateWrite release()').catch(() => undefined);
      await h.closeQuietly(dead);
    }
    if (!h.options.readBack)
      notApplicable('every write answered ok, but without readBack the destination cannot be checked after the late write');
    return `a write held across its writer's death and applied after the replay; ${await verify(h, [{ station, incarnation: 1, partition: p, offsets: range(1, 45) }])}`;
  },
};
