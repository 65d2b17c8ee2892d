/**
 * The StationStore conformance suite: one set of behaviour tests that every engine — the embedded
 * segment log here, the JetStream engine in core/cluster — must pass unchanged (BullMQ-style: the
 * backend is a parameter, the behaviour is the contract).
 *
 * Published as `@junction/broker/conformance`. It defines vitest `describe` / `it` blocks, so it must be
 * called at the top level of a test file:
 *
 * ```ts
 * runStationStoreConformance({ name: 'embedded', create: async () => { … }, reopen: async (s) => { … } });
 * ```
 *
 * Rules the suite keeps so that any engine can run it:
 * - real time only (no fake timers: a JetStream server cannot be faked), short deadlines (100–300 ms);
 *   waits for the engine to act are polls with a timeout, so a fast engine finishes fast;
 * - every test creates its own uniquely named stations in a store of its own and closes it after;
 * - errors are checked by their stable `code`, never by class or message text.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { DLS_HEADERS, REPLAY_GROUP_HEADER, MiB, deliveryId as formatDeliveryId } from '@junction/protocol';
import { dlsName } from '../contract.js';
import type {
  Delivery,
  FetchOptions,
  GroupInfo,
  MessageInput,
  ProduceResult,
  StationConfigInput,
  StationPatch,
  StationStore,
  StoredMessage,
  StoreEvent,
} from '../contract.js';

/** An engine under test. */
export interface ConformanceTarget {
  name: string;
  /** A fresh, opened store with no stations. */
  create(): Promise<StationStore>;
  /** Closes and reopens the same store (same data); engines with durable state must keep it. Omit for engines that cannot. */
  reopen?(store: StationStore): Promise<StationStore>;
  /**
   * Milliseconds of real time the engine may take beyond an ack deadline or a nack delay before the
   * message is deliverable again (timer granularity, a sweep interval, a server round trip). Tests use
   * maxAckTimeMs >= 100 and poll, so a generous value costs nothing on a fast engine. Default 1000.
   */
  deadlineSlackMs?: number;
}

/** How long the engine may take to apply retention (age, count, ack-based) after it became due. */
const RETENTION_WITHIN_MS = 5_000;
/** Timers may fire a little early against Date.now()/performance.now() granularity. */
const TIMER_TOLERANCE_MS = 10;

const runId = Math.random().toString(36).slice(2, 8);
let seq = 0;
/** A station / group name no other test (or other run against a shared server) uses. */
function uniqueName(prefix: string): string {
  seq += 1;
  return `${prefix}-${runId}-${seq}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function bytes(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Every byte value once, in order. */
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function patterned(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what = 'value'): void {
  expect(actual, `${what} is a Uint8Array`).toBeInstanceOf(Uint8Array);
  const cmp = Buffer.compare(asBuffer(actual), asBuffer(expected));
  expect(cmp, `${what}: ${actual.byteLength} bytes, expected ${expected.byteLength} bytes with the same content`).toBe(0);
}

interface CodedError {
  code: string;
  issues?: { path: string; message: string }[] | undefined;
}

/** Awaits `promise` and requires it to reject with `code`; returns the error for further checks. */
async function rejectsWithCode(promise: Promise<unknown>, code: string | readonly string[]): Promise<CodedError> {
  const codes = typeof code === 'string' ? [code] : code;
  let resolved: unknown;
  try {
    resolved = await promise;
  } catch (err) {
    expect(err, 'the rejection is an Error').toBeInstanceOf(Error);
    const got = (err as { code?: unknown }).code;
    expect(codes, `rejected with code ${String(got)} (${(err as Error).message})`).toContain(got);
    return err as CodedError;
  }
  throw new Error(`expected a rejection with code ${codes.join(' | ')}, but it resolved with ${safeJson(resolved)}`);
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? `<${x.byteLength} bytes>` : x))?.slice(0, 500) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Polls `probe` until it returns something other than undefined; throws with the last observation on timeout. */
async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 25): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
      last = 'undefined';
    } catch (err) {
      last = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : err;
    }
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last observation: ${safeJson(last)}`);
    await sleep(intervalMs);
  }
}

function offsets(ms: readonly { offset: number }[]): number[] {
  return ms.map((m) => m.offset);
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

function stored(partition: number, offset: number): ProduceResult {
  return { status: 'stored', partition, offset };
}

function pk(m: { partition: number; offset: number }): string {
  return `${m.partition}:${m.offset}`;
}

/** Names of the stations that are not dead-letter stations (engines may create a DLS with its station). */
function originNames(list: readonly { name: string; deadLetterOf?: string | undefined }[]): string[] {
  return list.filter((i) => i.deadLetterOf === undefined).map((i) => i.name).sort();
}

/** Every listed dead-letter station is named after a listed station. */
function expectDlsConsistent(list: readonly { name: string; deadLetterOf?: string | undefined }[]): void {
  const origins = originNames(list);
  for (const i of list) {
    if (i.deadLetterOf === undefined) continue;
    expect(i.name).toBe(dlsName(i.deadLetterOf));
    expect(origins, `origin of ${i.name}`).toContain(i.deadLetterOf);
  }
}

function first<T>(arr: readonly T[], what = 'element'): T {
  const v = arr[0];
  if (v === undefined) throw new Error(`expected at least one ${what}, got none`);
  return v;
}

/**
 * Defines the conformance suite for one engine. Call at the top level of a vitest file. Every test
 * gets a store from `target.create()` and closes it afterwards.
 */
export function runStationStoreConformance(target: ConformanceTarget): void {
  const slackMs = target.deadlineSlackMs ?? 1_000;
  const reopenTarget = target.reopen?.bind(target);

  describe(`StationStore conformance: ${target.name}`, () => {
    let store: StationStore;

    beforeEach(async () => {
      store = await target.create();
    });

    afterEach(async () => {
      await store.close();
    });

    // ---- helpers bound to the current store -------------------------------------------------

    function fetchNow(station: string, group: string, maxMessages = 10_000): Promise<Delivery[]> {
      return store.fetch(station, group, { maxMessages, maxBytes: 64 * MiB, waitMs: 0 });
    }

    /** Fetches (and acks, unless told not to) until a fetch answers empty. */
    async function drain(station: string, group: string, opts: { ack?: boolean; batch?: number } = {}): Promise<Delivery[]> {
      const all: Delivery[] = [];
      for (;;) {
        const batch = await fetchNow(station, group, opts.batch ?? 10_000);
        if (batch.length === 0) return all;
        all.push(...batch);
        if (opts.ack !== false) {
          const out = await store.ack(station, group, batch.map((d) => d.deliveryId));
          expect(out.map((o) => o.status)).toEqual(batch.map(() => 'acked'));
        }
      }
    }

    /** Fetches with short long polls until something comes, or fails after timeoutMs. */
    async function pollFetch(station: string, group: string, timeoutMs: number, maxMessages = 10_000): Promise<Delivery[]> {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const left = deadline - performance.now();
        const batch = await store.fetch(station, group, { maxMessages, maxBytes: 64 * MiB, waitMs: Math.max(0, Math.min(50, Math.floor(left))) });
        if (batch.length > 0) return batch;
        if (performance.now() >= deadline) throw new Error(`nothing delivered to ${station}/${group} within ${timeoutMs} ms`);
      }
    }

    async function produceOk(station: string, messages: readonly MessageInput[]): Promise<{ partition: number; offset: number }[]> {
      const results = await store.produce(station, messages);
      expect(results).toHaveLength(messages.length);
      return results.map((r, i) => {
        if (r.status !== 'stored') throw new Error(`message ${i} was not stored: ${safeJson(r)}`);
        return { partition: r.partition, offset: r.offset };
      });
    }

    function values(...vs: string[]): MessageInput[] {
      return vs.map((v) => ({ value: bytes(v) }));
    }

    async function readAll(station: string, partition = 0): Promise<StoredMessage[]> {
      return store.read(station, { partition, limit: 100_000 });
    }

    async function dlsMessages(station: string): Promise<StoredMessage[]> {
      return store.read(dlsName(station), { partition: 0, limit: 100_000 });
    }

    /** Waits until the station's dead-letter station holds `count` messages and returns them. */
    async function waitForDeadLetters(station: string, count: number, timeoutMs = slackMs + 1_000): Promise<StoredMessage[]> {
      return eventually(`${count} dead letter(s) in ${dlsName(station)}`, timeoutMs, async () => {
        const ms = await dlsMessages(station);
        return ms.length >= count ? ms : undefined;
      });
    }

    function groupPartition(info: GroupInfo, partition = 0) {
      const p = info.partitions.find((x) => x.partition === partition);
      if (!p) throw new Error(`group ${info.group} has no partition ${partition}: ${safeJson(info.partitions)}`);
      return p;
    }

    async function reopen(): Promise<void> {
      if (!reopenTarget) throw new Error('target has no reopen');
      store = await reopenTarget(store);
    }

    // ---- stations ----------------------------------------------------------------------------

    describe('stations', () => {
      it('a fresh store lists no stations', async () => {
        expect(await store.listStations()).toEqual([]);
      });

      it('createStation applies the documented defaults and getStation returns the same', async () => {
        const name = uniqueName('defaults');
        const before = Date.now();
        const info = await store.createStation(name);
        const after = Date.now();
        expect(info.name).toBe(name);
        expect(info.config.partitions).toBe(1);
        expect(info.config.storage).toBe('file');
        expect(info.config.dedupWindowMs).toBe(120_000);
        expect(info.config.maxMessageBytes).toBe(8 * MiB);
        expect(info.config.deadLetter).toEqual({ enabled: true, maxDeliveries: 5, maxAckTimeMs: 30_000 });
        expect(info.config.retention).toEqual({ maxAgeMs: 7 * 24 * 3600_000 });
        expect(info.config.segmentBytes).toBe(64 * MiB);
        expect(info.createdAt).toBeGreaterThanOrEqual(before - 1_000);
        expect(info.createdAt).toBeLessThanOrEqual(after + 1_000);
        expect(info.deadLetterOf).toBeUndefined();
        expect(info.partitions).toEqual([{ partition: 0, firstOffset: 1, nextOffset: 1, messages: 0, bytes: 0 }]);
        expect(info.messages).toBe(0);
        expect(info.bytes).toBe(0);
        expect(info.groups).toEqual([]);
        expect(await store.getStation(name)).toEqual(info);
      });

      it('createStation keeps an explicit config', async () => {
        const name = uniqueName('explicit');
        const info = await store.createStation(name, {
          partitions: 3,
          storage: 'memory',
          retention: { maxMessages: 500 },
          dedupWindowMs: 0,
          maxMessageBytes: 1024,
          deadLetter: { maxDeliveries: 2, maxAckTimeMs: 150 },
        });
        expect(info.config).toMatchObject({
          partitions: 3,
          storage: 'memory',
          retention: { maxMessages: 500 },
          dedupWindowMs: 0,
          maxMessageBytes: 1024,
          deadLetter: { enabled: true, maxDeliveries: 2, maxAckTimeMs: 150 },
        });
        expect(info.partitions).toEqual([0, 1, 2].map((partition) => ({ partition, firstOffset: 1, nextOffset: 1, messages: 0, bytes: 0 })));
      });

      it('memory storage stores, reads and delivers like file storage', async () => {
        const s = uniqueName('memory');
        await store.createStation(s, { storage: 'memory' });
        expect(await produceOk(s, [{ value: ALL_BYTES, key: 'k', headers: { a: 'b' } }])).toEqual([{ partition: 0, offset: 1 }]);
        const [m] = await readAll(s);
        expect(m).toMatchObject({ station: s, partition: 0, offset: 1, key: 'k', headers: { a: 'b' } });
        expectSameBytes(m!.value, ALL_BYTES);
        const ds = await fetchNow(s, 'g');
        expect(offsets(ds)).toEqual([1]);
        expectSameBytes(first(ds).value, ALL_BYTES);
      });

      it('creating an existing station fails with STATION_EXISTS and leaves it unchanged', async () => {
        const s = uniqueName('dup');
        await store.createStation(s, { partitions: 2 });
        await produceOk(s, values('x'));
        await rejectsWithCode(store.createStation(s, { partitions: 1 }), 'STATION_EXISTS');
        await rejectsWithCode(store.createStation(s), 'STATION_EXISTS');
        const info = await store.getStation(s);
        expect(info.config.partitions).toBe(2);
        expect(info.messages).toBe(1);
      });

      it('a bad config fails with CONFIG_INVALID naming each field, and creates nothing', async () => {
        const s = uniqueName('bad');
        const err = await rejectsWithCode(store.createStation(s, { partitions: 0, retention: { maxAgeMs: -1 } }), 'CONFIG_INVALID');
        const paths = (err.issues ?? []).map((i) => i.path);
        expect(paths).toContain('partitions');
        expect(paths).toContain('retention.maxAgeMs');

        const err2 = await rejectsWithCode(store.createStation(s, { deadLetter: { maxAckTimeMs: 5 } }), 'CONFIG_INVALID');
        expect((err2.issues ?? []).map((i) => i.path)).toContain('deadLetter.maxAckTimeMs');

        await rejectsWithCode(store.createStation(s, { colour: 'red' } as unknown as StationConfigInput), 'CONFIG_INVALID');
        await rejectsWithCode(store.createStation(s, { storage: 'tape' } as unknown as StationConfigInput), 'CONFIG_INVALID');
        // A name that is not one safe path segment is bad input too (the code is the contract's choice
        // between the two input-error codes).
        await rejectsWithCode(store.createStation('../escape'), ['CONFIG_INVALID', 'BODY_INVALID']);
        await rejectsWithCode(store.createStation(''), ['CONFIG_INVALID', 'BODY_INVALID']);

        await rejectsWithCode(store.getStation(s), 'STATION_NOT_FOUND');
        expect(await store.listStations()).toEqual([]);
      });

      it('get, list and delete', async () => {
        const a = uniqueName('a');
        const b = uniqueName('b');
        await store.createStation(a);
        await store.createStation(b, { partitions: 2 });
        await produceOk(a, values('1', '2'));
        const list = await store.listStations();
        expect(originNames(list)).toEqual([a, b].sort());
        expectDlsConsistent(list);
        const listed = (await store.listStations()).find((i) => i.name === a);
        expect(listed?.messages).toBe(2);

        await store.deleteStation(a);
        await rejectsWithCode(store.getStation(a), 'STATION_NOT_FOUND');
        await rejectsWithCode(store.produce(a, values('3')), 'STATION_NOT_FOUND');
        await rejectsWithCode(store.read(a, { partition: 0, limit: 10 }), 'STATION_NOT_FOUND');
        await rejectsWithCode(store.fetch(a, 'g', { maxMessages: 1, maxBytes: MiB, waitMs: 0 }), 'STATION_NOT_FOUND');
        await rejectsWithCode(store.deleteStation(a), 'STATION_NOT_FOUND');
        await rejectsWithCode(store.getStation(uniqueName('never')), 'STATION_NOT_FOUND');
        const afterDelete = await store.listStations();
        expect(originNames(afterDelete)).toEqual([b]);
        expectDlsConsistent(afterDelete);
        expect(afterDelete.some((i) => i.name === dlsName(a) || i.deadLetterOf === a)).toBe(false);
        await rejectsWithCode(store.getStation(dlsName(a)), 'STATION_NOT_FOUND');

        // The name is free again; the new station starts from scratch.
        await store.createStation(a);
        const info = await store.getStation(a);
        expect(info.messages).toBe(0);
        expect(info.partitions).toEqual([{ partition: 0, firstOffset: 1, nextOffset: 1, messages: 0, bytes: 0 }]);
        expect(info.groups).toEqual([]);
        expect(await readAll(a)).toEqual([]);
      });

      it('updateStation changes retention, dedupWindowMs, maxMessageBytes and deadLetter on a live station', async () => {
        const s = uniqueName('update');
        await store.createStation(s, { deadLetter: { maxAckTimeMs: 2_000 } });
        await produceOk(s, values('a', 'b'));
        const info = await store.updateStation(s, {
          retention: { maxAgeMs: 3_600_000, maxMessages: 1_000 },
          dedupWindowMs: 5_000,
          maxMessageBytes: 4_096,
          deadLetter: { maxDeliveries: 3 },
        });
        expect(info.config.retention).toEqual({ maxAgeMs: 3_600_000, maxMessages: 1_000 });
        expect(info.config.dedupWindowMs).toBe(5_000);
        expect(info.config.maxMessageBytes).toBe(4_096);
        // deadLetter is a partial patch: fields not named keep their value.
        expect(info.config.deadLetter).toEqual({ enabled: true, maxDeliveries: 3, maxAckTimeMs: 2_000 });
        expect(info.config.partitions).toBe(1);
        expect(info.messages).toBe(2);
        expect(await store.getStation(s)).toEqual(info);
        expect(offsets(await readAll(s))).toEqual([1, 2]);

        await rejectsWithCode(store.updateStation(uniqueName('never'), { dedupWindowMs: 1 }), 'STATION_NOT_FOUND');
        const bad = await rejectsWithCode(store.updateStation(s, { dedupWindowMs: -1 }), 'CONFIG_INVALID');
        expect((bad.issues ?? []).map((i) => i.path)).toContain('dedupWindowMs');
        const bad2 = await rejectsWithCode(store.updateStation(s, { deadLetter: { maxAckTimeMs: 1 } }), 'CONFIG_INVALID');
        expect((bad2.issues ?? []).map((i) => i.path)).toContain('deadLetter.maxAckTimeMs');
        expect((await store.getStation(s)).config).toEqual(info.config);
      });

      it('partitions and storage cannot change: CONFIG_IMMUTABLE, config unchanged', async () => {
        const s = uniqueName('immutable');
        const created = await store.createStation(s, { partitions: 2 });
        await rejectsWithCode(store.updateStation(s, { partitions: 4 } as unknown as StationPatch), 'CONFIG_IMMUTABLE');
        await rejectsWithCode(store.updateStation(s, { storage: 'memory' } as unknown as StationPatch), 'CONFIG_IMMUTABLE');
        expect((await store.getStation(s)).config).toEqual(created.config);
      });

      it('names ending in .dls are reserved for dead-letter stations', async () => {
        const s = uniqueName('orders');
        await rejectsWithCode(store.createStation(`${s}.dls`), 'STATION_RESERVED');
        expect(await store.listStations()).toEqual([]);
        await store.createStation(s);
        await rejectsWithCode(store.createStation(dlsName(s)), 'STATION_RESERVED');
        await rejectsWithCode(store.createStation(`${uniqueName('other')}.dls`, { partitions: 2 }), 'STATION_RESERVED');
        expect((await store.listStations()).filter((i) => i.deadLetterOf === undefined).map((i) => i.name)).toEqual([s]);
      });

      it('the dead-letter station exists after the first dead letter, is listed and readable, and goes with its station', async () => {
        const s = uniqueName('withdls');
        await store.createStation(s);
        const dls = dlsName(s);
        // Before any dead letter the DLS may or may not exist yet, but get and list must agree.
        let existsEarly = true;
        try {
          const early = await store.getStation(dls);
          expect(early.deadLetterOf).toBe(s);
        } catch (err) {
          expect((err as { code?: unknown }).code).toBe('STATION_NOT_FOUND');
          existsEarly = false;
        }
        expect((await store.listStations()).some((i) => i.name === dls)).toBe(existsEarly);

        await produceOk(s, values('poison'));
        const [d] = await fetchNow(s, 'g');
        expect(await store.deadLetter(s, 'g', [d!.deliveryId], 'bad')).toEqual([{ deliveryId: d!.deliveryId, status: 'dead-lettered' }]);

        const info = await store.getStation(dls);
        expect(info.name).toBe(dls);
        expect(info.deadLetterOf).toBe(s);
        expect(info.messages).toBe(1);
        expect((await store.getStation(s)).deadLetterOf).toBeUndefined();
        const listed = await store.listStations();
        expect(listed.map((i) => i.name).sort()).toEqual([s, dls].sort());
        expect(listed.find((i) => i.name === dls)?.deadLetterOf).toBe(s);
        const [m] = await dlsMessages(s);
        expect(m).toMatchObject({ station: dls, partition: 0, offset: 1 });
        expectSameBytes(m!.value, bytes('poison'));

        await store.deleteStation(s);
        await rejectsWithCode(store.getStation(dls), 'STATION_NOT_FOUND');
        await rejectsWithCode(store.getStation(s), 'STATION_NOT_FOUND');
        expect(await store.listStations()).toEqual([]);
      });
    });

    // ---- produce -----------------------------------------------------------------------------

    describe('produce', () => {
      it('answers per message in order; offsets start at 1 and grow by 1', async () => {
        const s = uniqueName('offsets');
        await store.createStation(s);
        expect(await store.produce(s, values('a', 'b', 'c', 'd', 'e'))).toEqual([1, 2, 3, 4, 5].map((o) => stored(0, o)));
        expect(await store.produce(s, values('f', 'g', 'h'))).toEqual([6, 7, 8].map((o) => stored(0, o)));
        const info = await store.getStation(s);
        expect(info.partitions).toHaveLength(1);
        expect(info.partitions[0]).toMatchObject({ partition: 0, firstOffset: 1, nextOffset: 9, messages: 8 });
        expect(info.messages).toBe(8);
        expect(info.partitions[0]!.bytes).toBeGreaterThan(0);
        expect(info.bytes).toBe(info.partitions[0]!.bytes);
        const read = await readAll(s);
        expect(offsets(read)).toEqual(range(1, 8));
        expect(read.map((m) => asBuffer(m.value).toString('utf8'))).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
      });

      it('values, keys and headers round trip byte for byte (empty, all 256 byte values, unicode, 256 KiB)', async () => {
        const s = uniqueName('roundtrip');
        await store.createStation(s);
        const big = patterned(256 * 1024, 7);
        const inputs: MessageInput[] = [
          { value: new Uint8Array(0) },
          { value: ALL_BYTES, key: 'bytes' },
          { value: bytes('zażółć gęślą jaźń 🚉'), key: 'ключ-🔑-鍵', headers: { 'x-unicode': 'станция 🚉 駅', 'content-type': 'text/plain; charset=utf-8', empty: '' } },
          { value: big, headers: { 'x-size': String(big.length) } },
          { value: Buffer.from([0, 0, 0, 0]), key: ' spaced key ' },
        ];
        const before = Date.now();
        expect(await store.produce(s, inputs)).toEqual([1, 2, 3, 4, 5].map((o) => stored(0, o)));
        const after = Date.now();

        const check = (got: readonly StoredMessage[]) => {
          expect(got).toHaveLength(inputs.length);
          got.forEach((m, i) => {
            const input = inputs[i]!;
            expect(m.station).toBe(s);
            expect(m.partition).toBe(0);
            expect(m.offset).toBe(i + 1);
            expect(m.key).toBe(input.key);
            expect(m.headers).toEqual(input.headers ?? {});
            expectSameBytes(m.value, input.value, `value of message ${i + 1}`);
            expect(m.timestamp).toBeGreaterThanOrEqual(before - 1_000);
            expect(m.timestamp).toBeLessThanOrEqual(after + 1_000);
          });
        };
        const read = await readAll(s);
        check(read);
        for (let i = 1; i < read.length; i++) expect(read[i]!.timestamp).toBeGreaterThanOrEqual(read[i - 1]!.timestamp);
        const delivered = await fetchNow(s, 'g');
        check(delivered);
        // Values must stay valid after further reads (no views into reused buffers).
        await readAll(s);
        await fetchNow(s, 'other');
        check(read);
        check(delivered);
        delivered.forEach((d, i) => expect(d.timestamp).toBe(read[i]!.timestamp));
      });

      it('rejects only the oversized message with MESSAGE_TOO_LARGE and stores the others', async () => {
        const s = uniqueName('toolarge');
        await store.createStation(s, { maxMessageBytes: 1_024 });
        const small1 = patterned(100, 1);
        const small2 = patterned(100, 2);
        const results = await store.produce(s, [{ value: small1 }, { value: patterned(4_096, 3) }, { value: small2 }]);
        expect(results[0]).toEqual(stored(0, 1));
        expect(results[1]).toMatchObject({ status: 'rejected', code: 'MESSAGE_TOO_LARGE' });
        expect(typeof (results[1] as { message?: unknown }).message).toBe('string');
        expect(results[2]).toEqual(stored(0, 2));
        const read = await readAll(s);
        expect(offsets(read)).toEqual([1, 2]);
        expectSameBytes(read[0]!.value, small1);
        expectSameBytes(read[1]!.value, small2);
        expect((await store.getStation(s)).messages).toBe(2);

        // The limit is live config.
        await store.updateStation(s, { maxMessageBytes: 8_192 });
        expect(await store.produce(s, [{ value: patterned(4_096, 3) }])).toEqual([stored(0, 3)]);
      });

      it('the default limit is 8 MiB', async () => {
        const s = uniqueName('default-limit');
        await store.createStation(s);
        const results = await store.produce(s, [{ value: Buffer.alloc(8 * MiB + 1) }, { value: bytes('ok') }]);
        expect(results[0]).toMatchObject({ status: 'rejected', code: 'MESSAGE_TOO_LARGE' });
        expect(results[1]).toEqual(stored(0, 1));
      });

      it('producing to an unknown station fails with STATION_NOT_FOUND', async () => {
        await rejectsWithCode(store.produce(uniqueName('nowhere'), values('x')), 'STATION_NOT_FOUND');
      });

      it('a key always goes to the same partition, and many keys use every partition', async () => {
        const s = uniqueName('keys');
        await store.createStation(s, { partitions: 4 });
        const keys = Array.from({ length: 50 }, (_, i) => `customer-${i}`);
        const partitionOf = new Map<string, number>();
        const perPartition = new Map<number, number>();
        for (let round = 0; round < 4; round++) {
          const order = round % 2 === 0 ? keys : [...keys].reverse();
          const results = await produceOk(s, order.map((key) => ({ key, value: bytes(`${key}#${round}`) })));
          results.forEach((r, i) => {
            const key = order[i]!;
            const seen = partitionOf.get(key);
            if (seen === undefined) partitionOf.set(key, r.partition);
            else expect(r.partition, `key ${key}`).toBe(seen);
            const n = (perPartition.get(r.partition) ?? 0) + 1;
            expect(r.offset, `offset in partition ${r.partition}`).toBe(n);
            perPartition.set(r.partition, n);
          });
        }
        expect([...new Set(partitionOf.values())].sort()).toEqual([0, 1, 2, 3]);
        for (let p = 0; p < 4; p++) {
          const ms = await readAll(s, p);
          expect(offsets(ms)).toEqual(range(1, perPartition.get(p) ?? 0));
          for (const m of ms) expect(partitionOf.get(m.key!)).toBe(p);
        }
      });

      it('messages without a key go round robin over the partitions', async () => {
        const s = uniqueName('roundrobin');
        await store.createStation(s, { partitions: 4 });
        const count = (rs: { partition: number }[]) => [0, 1, 2, 3].map((p) => rs.filter((r) => r.partition === p).length);
        const batch = await produceOk(s, Array.from({ length: 16 }, (_, i) => ({ value: bytes(`m${i}`) })));
        expect(count(batch)).toEqual([4, 4, 4, 4]);
        const singles: { partition: number }[] = [];
        for (let i = 0; i < 8; i++) singles.push(...(await produceOk(s, values(`s${i}`))));
        expect(count(singles)).toEqual([2, 2, 2, 2]);
        const info = await store.getStation(s);
        expect(info.partitions.map((p) => p.messages)).toEqual([6, 6, 6, 6]);
      });
    });

    // ---- dedup -------------------------------------------------------------------------------

    describe('dedup', () => {
      it('a msgId seen inside the window is a duplicate of the first, not stored again', async () => {
        const s = uniqueName('dedup');
        await store.createStation(s, { partitions: 3 });
        const [firstResult] = await store.produce(s, [{ value: bytes('a'), msgId: 'm-1' }]);
        expect(firstResult).toMatchObject({ status: 'stored', offset: 1 });
        const { partition } = firstResult as { partition: number };
        // Several tries, so round robin would have moved to every other partition by now.
        for (let i = 0; i < 3; i++) {
          expect(await store.produce(s, [{ value: bytes(`b${i}`), msgId: 'm-1' }])).toEqual([{ status: 'duplicate', partition, offset: 1 }]);
        }
        expect((await store.getStation(s)).messages).toBe(1);
        const [m] = await readAll(s, partition);
        expectSameBytes(m!.value, bytes('a'));

        // Inside one batch too.
        const results = await store.produce(s, [
          { value: bytes('c'), msgId: 'm-2' },
          { value: bytes('d'), msgId: 'm-2' },
          { value: bytes('e'), msgId: 'm-3' },
        ]);
        expect(results[0]).toMatchObject({ status: 'stored' });
        const r0 = results[0] as { partition: number; offset: number };
        expect(results[1]).toEqual({ status: 'duplicate', partition: r0.partition, offset: r0.offset });
        expect(results[2]).toMatchObject({ status: 'stored' });
        expect((await store.getStation(s)).messages).toBe(3);
      });

      it('after the window shrinks and passes, the same msgId is stored again', async () => {
        const s = uniqueName('dedup-window');
        await store.createStation(s);
        expect(await store.produce(s, [{ value: bytes('1'), msgId: 'x' }])).toEqual([stored(0, 1)]);
        expect(await store.produce(s, [{ value: bytes('2'), msgId: 'x' }])).toEqual([{ status: 'duplicate', partition: 0, offset: 1 }]);
        await store.updateStation(s, { dedupWindowMs: 200 });
        await sleep(350);
        expect(await store.produce(s, [{ value: bytes('3'), msgId: 'x' }])).toEqual([stored(0, 2)]);
        expect(await store.produce(s, [{ value: bytes('4'), msgId: 'x' }])).toEqual([{ status: 'duplicate', partition: 0, offset: 2 }]);
        expect((await store.getStation(s)).messages).toBe(2);
      });

      it('dedupWindowMs 0 disables dedup', async () => {
        const s = uniqueName('nodedup');
        await store.createStation(s, { dedupWindowMs: 0 });
        expect(await store.produce(s, [{ value: bytes('1'), msgId: 'x' }])).toEqual([stored(0, 1)]);
        expect(await store.produce(s, [{ value: bytes('2'), msgId: 'x' }, { value: bytes('3'), msgId: 'x' }])).toEqual([stored(0, 2), stored(0, 3)]);
        expect((await store.getStation(s)).messages).toBe(3);
      });
    });

    // ---- read --------------------------------------------------------------------------------

    describe('read', () => {
      it('honours fromOffset, limit and maxBytes; past the end is empty; touches no group', async () => {
        const s = uniqueName('read');
        await store.createStation(s);
        await produceOk(s, Array.from({ length: 10 }, (_, i) => ({ value: patterned(1_000, i + 1) })));
        expect(offsets(await store.read(s, { partition: 0, limit: 100 }))).toEqual(range(1, 10));
        expect(offsets(await store.read(s, { partition: 0, limit: 3 }))).toEqual([1, 2, 3]);
        const mid = await store.read(s, { partition: 0, fromOffset: 4, limit: 3 });
        expect(offsets(mid)).toEqual([4, 5, 6]);
        expectSameBytes(mid[0]!.value, patterned(1_000, 4));
        expect(offsets(await store.read(s, { partition: 0, fromOffset: 10, limit: 5 }))).toEqual([10]);
        expect(await store.read(s, { partition: 0, fromOffset: 11, limit: 5 })).toEqual([]);
        expect(await store.read(s, { partition: 0, fromOffset: 1_000_000, limit: 5 })).toEqual([]);
        const byBytes = await store.read(s, { partition: 0, fromOffset: 2, limit: 100, maxBytes: 2_500 });
        expect(byBytes.length).toBeGreaterThanOrEqual(1);
        expect(byBytes.length).toBeLessThanOrEqual(2);
        expect(offsets(byBytes)).toEqual(range(2, 1 + byBytes.length));
        expect(offsets(await store.read(s, { partition: 0, fromOffset: 5, limit: 100, maxBytes: 1 }))).toEqual([5]);
        const info = await store.getStation(s);
        expect(info.groups).toEqual([]);
        expect(await store.listGroups(s)).toEqual([]);
      });

      it('reads one partition at a time', async () => {
        const s = uniqueName('read-parts');
        await store.createStation(s, { partitions: 3 });
        const results = await produceOk(s, Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: bytes(`v${i}`) })));
        for (let p = 0; p < 3; p++) {
          const expected = results.map((r, i) => ({ ...r, i })).filter((r) => r.partition === p);
          const ms = await readAll(s, p);
          expect(ms.map((m) => m.partition)).toEqual(expected.map(() => p));
          expect(offsets(ms)).toEqual(range(1, expected.length));
          expect(ms.map((m) => m.key)).toEqual(expected.map((r) => `k${r.i}`));
        }
      });

      it('a partition that does not exist fails with PARTITION_NOT_FOUND', async () => {
        const one = uniqueName('one');
        const three = uniqueName('three');
        await store.createStation(one);
        await store.createStation(three, { partitions: 3 });
        await rejectsWithCode(store.read(one, { partition: 1, limit: 10 }), 'PARTITION_NOT_FOUND');
        await rejectsWithCode(store.read(three, { partition: 3, limit: 10 }), 'PARTITION_NOT_FOUND');
        await rejectsWithCode(store.read(uniqueName('nowhere'), { partition: 0, limit: 10 }), 'STATION_NOT_FOUND');
      });
    });

    // ---- consumer groups ---------------------------------------------------------------------

    describe('consumer groups', () => {
      it('the first fetch creates the group at the earliest offset with the station defaults', async () => {
        const s = uniqueName('autogroup');
        await store.createStation(s, { deadLetter: { maxDeliveries: 4, maxAckTimeMs: 1_000 } });
        const inputs: MessageInput[] = [{ value: bytes('a'), key: 'k', headers: { h: '1' } }, { value: ALL_BYTES }, { value: new Uint8Array(0) }];
        await produceOk(s, inputs);
        const ds = await fetchNow(s, 'g');
        expect(offsets(ds)).toEqual([1, 2, 3]);
        ds.forEach((d, i) => {
          expect(d.station).toBe(s);
          expect(d.partition).toBe(0);
          expect(d.deliveryCount).toBe(1);
          expect(d.deliveryId).toBe(formatDeliveryId(0, d.offset, 1));
          expect(d.key).toBe(inputs[i]!.key);
          expect(d.headers).toEqual(inputs[i]!.headers ?? {});
          expectSameBytes(d.value, inputs[i]!.value);
        });
        expect((await store.listGroups(s)).map((g) => g.group)).toEqual(['g']);
        expect((await store.getStation(s)).groups).toEqual(['g']);
        const info = await store.getGroup(s, 'g');
        expect(info).toMatchObject({ station: s, group: 'g', maxAckTimeMs: 1_000, maxDeliveries: 4, pending: 3, lag: 3 });
      });

      it('createGroup takes its own ack deadline and max deliveries', async () => {
        const s = uniqueName('groupopts');
        await store.createStation(s);
        const before = Date.now();
        const info = await store.createGroup(s, 'g', { maxAckTimeMs: 150, maxDeliveries: 3 });
        expect(info).toMatchObject({ station: s, group: 'g', maxAckTimeMs: 150, maxDeliveries: 3, lag: 0, pending: 0, deadLettered: 0 });
        expect(info.createdAt).toBeGreaterThanOrEqual(before - 1_000);
        expect(await store.getGroup(s, 'g')).toMatchObject({ maxAckTimeMs: 150, maxDeliveries: 3 });
        expect(await store.createGroup(s, 'd')).toMatchObject({ maxAckTimeMs: 30_000, maxDeliveries: 5 });
        expect((await store.listGroups(s)).map((g) => g.group).sort()).toEqual(['d', 'g']);
      });

      it('createGroup twice fails with GROUP_EXISTS; unknown station or group fail with their codes', async () => {
        const s = uniqueName('groupexists');
        await store.createStation(s);
        await store.createGroup(s, 'g');
        await rejectsWithCode(store.createGroup(s, 'g'), 'GROUP_EXISTS');
        await rejectsWithCode(store.createGroup(s, 'g', { start: { type: 'latest' } }), 'GROUP_EXISTS');
        await rejectsWithCode(store.createGroup(uniqueName('nowhere'), 'g'), 'STATION_NOT_FOUND');
        await rejectsWithCode(store.getGroup(s, 'nope'), 'GROUP_NOT_FOUND');
        await rejectsWithCode(store.getGroup(uniqueName('nowhere'), 'g'), 'STATION_NOT_FOUND');
      });

      it('start latest skips what is stored', async () => {
        const s = uniqueName('latest');
        await store.createStation(s);
        await produceOk(s, values('1', '2', '3'));
        const info = await store.createGroup(s, 'g', { start: { type: 'latest' } });
        expect(info.lag).toBe(0);
        expect(groupPartition(info)).toMatchObject({ nextOffset: 4, lag: 0, pending: 0 });
        expect(await fetchNow(s, 'g')).toEqual([]);
        await produceOk(s, values('4', '5'));
        expect(offsets(await fetchNow(s, 'g'))).toEqual([4, 5]);
      });

      it('start at an offset', async () => {
        const s = uniqueName('startoffset');
        await store.createStation(s);
        await produceOk(s, values('1', '2', '3', '4', '5'));
        const info = await store.createGroup(s, 'g', { start: { type: 'offset', offset: 3 } });
        expect(groupPartition(info).nextOffset).toBe(3);
        expect(info.lag).toBe(3);
        expect(offsets(await fetchNow(s, 'g'))).toEqual([3, 4, 5]);
      });

      it('start at a timestamp', async () => {
        const s = uniqueName('startts');
        await store.createStation(s);
        await produceOk(s, values('1', '2', '3'));
        await sleep(30);
        const ts = Date.now();
        await sleep(30);
        await produceOk(s, values('4', '5'));
        await store.createGroup(s, 'g', { start: { type: 'timestamp', timestamp: ts } });
        expect(offsets(await fetchNow(s, 'g'))).toEqual([4, 5]);
        await store.createGroup(s, 'future', { start: { type: 'timestamp', timestamp: Date.now() + 60_000 } });
        expect(await fetchNow(s, 'future')).toEqual([]);
        await store.createGroup(s, 'past', { start: { type: 'timestamp', timestamp: 0 } });
        expect(offsets(await fetchNow(s, 'past'))).toEqual([1, 2, 3, 4, 5]);
      });

      it('each message goes to one member: concurrent fetchers of one group get disjoint sets whose union is everything', async () => {
        const s = uniqueName('members');
        await store.createStation(s, { partitions: 2 });
        const all = await produceOk(s, Array.from({ length: 40 }, (_, i) => ({ value: bytes(`m${i}`) })));
        await store.createGroup(s, 'g');
        const member = async (): Promise<Delivery[]> => {
          const got: Delivery[] = [];
          for (;;) {
            const batch = await store.fetch(s, 'g', { maxMessages: 3, maxBytes: MiB, waitMs: 0 });
            if (batch.length === 0) return got;
            got.push(...batch);
            await store.ack(s, 'g', batch.map((d) => d.deliveryId));
          }
        };
        const [a, b] = await Promise.all([member(), member()]);
        const ka = a.map(pk);
        const kb = b.map(pk);
        expect(ka.filter((k) => kb.includes(k))).toEqual([]);
        expect(new Set(ka).size).toBe(ka.length);
        expect(new Set(kb).size).toBe(kb.length);
        expect([...ka, ...kb].sort()).toEqual(all.map(pk).sort());
      });

      it('concurrent fetches without acks never hand out the same message twice', async () => {
        const s = uniqueName('members2');
        await store.createStation(s);
        await produceOk(s, Array.from({ length: 20 }, (_, i) => ({ value: bytes(`m${i}`) })));
        await store.createGroup(s, 'g');
        const opts: FetchOptions = { maxMessages: 10, maxBytes: MiB, waitMs: 0 };
        const [a, b] = await Promise.all([store.fetch(s, 'g', opts), store.fetch(s, 'g', opts)]);
        expect(a).toHaveLength(10);
        expect(b).toHaveLength(10);
        expect([...offsets(a), ...offsets(b)].sort((x, y) => x - y)).toEqual(range(1, 20));
        expect(await fetchNow(s, 'g')).toEqual([]);
      });

      it('every group gets every message', async () => {
        const s = uniqueName('fanout');
        await store.createStation(s, { partitions: 3 });
        const all = (await produceOk(s, Array.from({ length: 30 }, (_, i) => ({ value: bytes(`m${i}`) })))).map(pk).sort();
        // Three groups come into being by their first fetch, concurrently.
        const got = await Promise.all(['g1', 'g2', 'g3'].map((g) => drain(s, g, { batch: 4 })));
        for (const ds of got) expect(ds.map(pk).sort()).toEqual(all);
        expect((await store.getStation(s)).groups.slice().sort()).toEqual(['g1', 'g2', 'g3']);
      });

      it('order holds per partition within a group', async () => {
        const s = uniqueName('order');
        await store.createStation(s, { partitions: 3 });
        const results = await produceOk(s, Array.from({ length: 60 }, (_, i) => ({ key: `k${i % 7}`, value: bytes(`m${i}`) })));
        const ds = await drain(s, 'g', { batch: 7 });
        for (let p = 0; p < 3; p++) {
          const n = results.filter((r) => r.partition === p).length;
          expect(offsets(ds.filter((d) => d.partition === p)), `partition ${p}`).toEqual(range(1, n));
        }
        expect(ds).toHaveLength(60);
      });

      it('redeliveries come first, then new messages in offset order', async () => {
        const s = uniqueName('redelivery-first');
        await store.createStation(s);
        await produceOk(s, values('1', '2', '3', '4', '5'));
        const first2 = await fetchNow(s, 'g', 2);
        expect(offsets(first2)).toEqual([1, 2]);
        expect(await store.nack(s, 'g', [first2[0]!.deliveryId])).toEqual([{ deliveryId: first2[0]!.deliveryId, status: 'nacked' }]);
        const next = await fetchNow(s, 'g');
        expect(offsets(next)).toEqual([1, 3, 4, 5]);
        expect(next.map((d) => d.deliveryCount)).toEqual([2, 1, 1, 1]);
      });

      it('an acked message is never delivered again; unacked ones come back after the deadline', async () => {
        const s = uniqueName('ack');
        await store.createStation(s);
        await store.createGroup(s, 'g', { maxAckTimeMs: 150 });
        await produceOk(s, values('1', '2', '3', '4', '5'));
        const ds = await fetchNow(s, 'g');
        expect(offsets(ds)).toEqual([1, 2, 3, 4, 5]);
        const ids = ds.slice(0, 3).map((d) => d.deliveryId);
        expect(await store.ack(s, 'g', ids)).toEqual(ids.map((deliveryId) => ({ deliveryId, status: 'acked' })));
        const again = await pollFetch(s, 'g', 150 + slackMs);
        const rest = again.length < 2 ? [...again, ...(await pollFetch(s, 'g', 150 + slackMs))] : again;
        expect(offsets(rest)).toEqual([4, 5]);
        expect(rest.map((d) => d.deliveryCount)).toEqual([2, 2]);
        await store.ack(s, 'g', rest.map((d) => d.deliveryId));
        await sleep(150 * 2 + 100);
        expect(await fetchNow(s, 'g')).toEqual([]);
        const info = await store.getGroup(s, 'g');
        expect(info).toMatchObject({ lag: 0, pending: 0 });
      });

      it('past the ack deadline a delivery comes back with deliveryCount 2 and a new deliveryId, not before', async () => {
        const s = uniqueName('deadline');
        await store.createStation(s);
        await store.createGroup(s, 'g', { maxAckTimeMs: 200 });
        await produceOk(s, [{ value: ALL_BYTES, headers: { h: 'v' } }]);
        const [d1] = await fetchNow(s, 'g');
        const t0 = performance.now();
        expect(d1).toMatchObject({ offset: 1, deliveryCount: 1, deliveryId: formatDeliveryId(0, 1, 1) });
        expect(await fetchNow(s, 'g')).toEqual([]);
        const [d2, ...more] = await pollFetch(s, 'g', 200 + slackMs);
        const elapsed = performance.now() - t0;
        expect(more).toEqual([]);
        expect(elapsed).toBeGreaterThanOrEqual(200 - TIMER_TOLERANCE_MS);
        expect(d2).toMatchObject({ offset: 1, partition: 0, deliveryCount: 2, deliveryId: formatDeliveryId(0, 1, 2), headers: { h: 'v' } });
        expect(d2!.deliveryId).not.toBe(d1!.deliveryId);
        expectSameBytes(d2!.value, ALL_BYTES);
        // The contract leaves open whether a late ack of the first attempt settles the message; either
        // way the answers must agree with what happens: the message ends up acked exactly once.
        const [late] = await store.ack(s, 'g', [d1!.deliveryId]);
        expect(['acked', 'stale', 'unknown']).toContain(late!.status);
        const [current] = await store.ack(s, 'g', [d2!.deliveryId]);
        if (late!.status !== 'acked') expect(current!.status).toBe('acked');
        expect(await store.getGroup(s, 'g')).toMatchObject({ lag: 0, pending: 0 });
        await sleep(200 + 100);
        expect(await fetchNow(s, 'g')).toEqual([]);
      });

      it('nack makes a delivery available again at once', async () => {
        const s = uniqueName('nack');
        await store.createStation(s);
        await produceOk(s, values('x'));
        const [d1] = await fetchNow(s, 'g');
        expect(await store.nack(s, 'g', [d1!.deliveryId])).toEqual([{ deliveryId: d1!.deliveryId, status: 'nacked' }]);
        const [d2] = await fetchNow(s, 'g');
        expect(d2).toMatchObject({ offset: 1, deliveryCount: 2, deliveryId: formatDeliveryId(0, 1, 2) });
      });

      it('nack with a delay holds the message back for the delay', async () => {
        const s = uniqueName('nackdelay');
        await store.createStation(s);
        await produceOk(s, values('x'));
        const [d1] = await fetchNow(s, 'g');
        const t0 = performance.now();
        expect(await store.nack(s, 'g', [d1!.deliveryId], 300)).toEqual([{ deliveryId: d1!.deliveryId, status: 'nacked' }]);
        expect(await fetchNow(s, 'g')).toEqual([]);
        expect(groupPartition(await store.getGroup(s, 'g'))).toMatchObject({ pending: 0, redeliveryQueued: 1, lag: 1 });
        await sleep(150);
        expect(await fetchNow(s, 'g')).toEqual([]);
        const [d2] = await pollFetch(s, 'g', 300 + slackMs);
        expect(performance.now() - t0).toBeGreaterThanOrEqual(300 - TIMER_TOLERANCE_MS);
        expect(d2).toMatchObject({ offset: 1, deliveryCount: 2 });
      });

      it('settling an unknown deliveryId answers unknown, in order with the others', async () => {
        const s = uniqueName('unknown');
        await store.createStation(s);
        await produceOk(s, values('x', 'y'));
        const ds = await fetchNow(s, 'g');
        const bogus = formatDeliveryId(0, 999, 1);
        expect(await store.ack(s, 'g', [bogus])).toEqual([{ deliveryId: bogus, status: 'unknown' }]);
        expect(await store.nack(s, 'g', [bogus])).toEqual([{ deliveryId: bogus, status: 'unknown' }]);
        expect(await store.deadLetter(s, 'g', [bogus], 'r')).toEqual([{ deliveryId: bogus, status: 'unknown' }]);
        expect(await store.ack(s, 'g', [ds[0]!.deliveryId, bogus, ds[1]!.deliveryId])).toEqual([
          { deliveryId: ds[0]!.deliveryId, status: 'acked' },
          { deliveryId: bogus, status: 'unknown' },
          { deliveryId: ds[1]!.deliveryId, status: 'acked' },
        ]);
        expect(await store.getGroup(s, 'g')).toMatchObject({ lag: 0, pending: 0 });
      });

      it('getGroup reports exact lag, pending, ackFloor and redeliveryQueued', async () => {
        const s = uniqueName('lag');
        await store.createStation(s);
        await produceOk(s, values('1', '2', '3', '4', '5'));
        let info = await store.createGroup(s, 'g');
        expect(info).toMatchObject({ lag: 5, pending: 0, deadLettered: 0 });
        expect(info.partitions).toEqual([{ partition: 0, nextOffset: 1, ackFloor: 1, lag: 5, pending: 0, redeliveryQueued: 0 }]);

        const ds = await fetchNow(s, 'g', 3);
        expect(offsets(ds)).toEqual([1, 2, 3]);
        info = await store.getGroup(s, 'g');
        expect(info.partitions).toEqual([{ partition: 0, nextOffset: 4, ackFloor: 1, lag: 5, pending: 3, redeliveryQueued: 0 }]);
        expect(info).toMatchObject({ lag: 5, pending: 3 });

        // An ack above a gap does not move the floor.
        await store.ack(s, 'g', [ds[1]!.deliveryId]);
        expect(groupPartition(await store.getGroup(s, 'g'))).toEqual({ partition: 0, nextOffset: 4, ackFloor: 1, lag: 4, pending: 2, redeliveryQueued: 0 });
        await store.ack(s, 'g', [ds[0]!.deliveryId]);
        expect(groupPartition(await store.getGroup(s, 'g'))).toEqual({ partition: 0, nextOffset: 4, ackFloor: 3, lag: 3, pending: 1, redeliveryQueued: 0 });

        await store.nack(s, 'g', [ds[2]!.deliveryId], 60_000);
        expect(groupPartition(await store.getGroup(s, 'g'))).toEqual({ partition: 0, nextOffset: 4, ackFloor: 3, lag: 3, pending: 0, redeliveryQueued: 1 });

        await produceOk(s, values('6', '7'));
        info = await store.getGroup(s, 'g');
        expect(info).toMatchObject({ lag: 5, pending: 0 });
        const rest = await fetchNow(s, 'g');
        expect(offsets(rest)).toEqual([4, 5, 6, 7]);
        expect(groupPartition(await store.getGroup(s, 'g'))).toEqual({ partition: 0, nextOffset: 8, ackFloor: 3, lag: 5, pending: 4, redeliveryQueued: 1 });
        await store.ack(s, 'g', rest.map((d) => d.deliveryId));
        expect(groupPartition(await store.getGroup(s, 'g'))).toEqual({ partition: 0, nextOffset: 8, ackFloor: 3, lag: 1, pending: 0, redeliveryQueued: 1 });
      });

      it('group lag sums the partitions', async () => {
        const s = uniqueName('lagparts');
        await store.createStation(s, { partitions: 2 });
        const results = await produceOk(s, Array.from({ length: 9 }, (_, i) => ({ value: bytes(`m${i}`) })));
        const info = await store.createGroup(s, 'g');
        expect(info.lag).toBe(9);
        for (const p of [0, 1]) expect(groupPartition(info, p).lag).toBe(results.filter((r) => r.partition === p).length);
        await drain(s, 'g');
        expect(await store.getGroup(s, 'g')).toMatchObject({ lag: 0, pending: 0 });
      });

      it('seek to earliest, an offset, a timestamp and latest delivers exactly the expected messages', async () => {
        const s = uniqueName('seek');
        await store.createStation(s);
        await produceOk(s, values('1', '2', '3'));
        await sleep(30);
        const ts = Date.now();
        await sleep(30);
        await produceOk(s, values('4', '5'));
        expect(offsets(await drain(s, 'g'))).toEqual([1, 2, 3, 4, 5]);

        let info = await store.seek(s, 'g', { type: 'earliest' });
        expect(groupPartition(info)).toMatchObject({ nextOffset: 1, pending: 0 });
        expect(info.lag).toBe(5);
        expect(offsets(await drain(s, 'g'))).toEqual([1, 2, 3, 4, 5]);

        info = await store.seek(s, 'g', { type: 'offset', offset: 3 });
        expect(groupPartition(info).nextOffset).toBe(3);
        expect(offsets(await drain(s, 'g'))).toEqual([3, 4, 5]);

        await store.seek(s, 'g', { type: 'timestamp', timestamp: ts });
        expect(offsets(await drain(s, 'g'))).toEqual([4, 5]);

        info = await store.seek(s, 'g', { type: 'latest' });
        expect(groupPartition(info)).toMatchObject({ nextOffset: 6, lag: 0 });
        expect(await drain(s, 'g')).toEqual([]);
        await produceOk(s, values('6'));
        const [d6] = await fetchNow(s, 'g');
        expect(d6?.offset).toBe(6);

        // Seeking forgets pending deliveries: 6 is pending, then the cursor goes back to 2.
        info = await store.seek(s, 'g', { type: 'offset', offset: 2 });
        expect(groupPartition(info)).toMatchObject({ nextOffset: 2, pending: 0 });
        expect(offsets(await drain(s, 'g'))).toEqual([2, 3, 4, 5, 6]);
        expect(await fetchNow(s, 'g')).toEqual([]);
        await rejectsWithCode(store.seek(s, 'nope', { type: 'earliest' }), 'GROUP_NOT_FOUND');
      });

      it('deleteGroup removes the group; a later fetch starts a new one at earliest', async () => {
        const s = uniqueName('delgroup');
        await store.createStation(s);
        await produceOk(s, values('1', '2', '3'));
        expect(offsets(await drain(s, 'g'))).toEqual([1, 2, 3]);
        await store.createGroup(s, 'keep');
        await store.deleteGroup(s, 'g');
        await rejectsWithCode(store.getGroup(s, 'g'), 'GROUP_NOT_FOUND');
        await rejectsWithCode(store.deleteGroup(s, 'g'), 'GROUP_NOT_FOUND');
        expect((await store.listGroups(s)).map((g) => g.group)).toEqual(['keep']);
        expect((await store.getStation(s)).groups).toEqual(['keep']);
        expect(offsets(await fetchNow(s, 'g'))).toEqual([1, 2, 3]);
        expect(await store.getGroup(s, 'g')).toMatchObject({ pending: 3, deadLettered: 0 });
      });
    });

    // ---- max deliveries and dead letters --------------------------------------------------------

    describe('dead letters', () => {
      it('after maxDeliveries attempts the message moves to <station>.dls with its bytes and the DLS headers', async () => {
        const s = uniqueName('poison');
        await store.createStation(s, { deadLetter: { maxDeliveries: 2, maxAckTimeMs: 30_000 } });
        const headers = { 'content-type': 'application/octet-stream', trace: 'ünïcödé' };
        await produceOk(s, [{ value: bytes('fine') }, { value: ALL_BYTES, key: 'kk', headers }, { value: bytes('after') }]);
        const [d1a, d2a] = await fetchNow(s, 'g', 2);
        await store.ack(s, 'g', [d1a!.deliveryId]);
        expect(d2a).toMatchObject({ offset: 2, deliveryCount: 1 });
        await store.nack(s, 'g', [d2a!.deliveryId]);
        const again = await fetchNow(s, 'g', 1);
        expect(again).toHaveLength(1);
        expect(again[0]).toMatchObject({ offset: 2, deliveryCount: 2 });
        await store.nack(s, 'g', [again[0]!.deliveryId]);

        // The message is not delivered a third time; the group moves on to offset 3.
        const seen: Delivery[] = [];
        const [dl] = await eventually('the dead letter', slackMs + 1_000, async () => {
          seen.push(...(await fetchNow(s, 'g')));
          try {
            const ms = await dlsMessages(s);
            return ms.length > 0 ? ms : undefined;
          } catch {
            return undefined;
          }
        });
        seen.push(...(await fetchNow(s, 'g')));
        expect(offsets(seen)).toEqual([3]);

        expect(dl).toMatchObject({ station: dlsName(s), partition: 0, offset: 1 });
        expectSameBytes(dl!.value, ALL_BYTES);
        expect(dl!.headers).toMatchObject(headers);
        expect(dl!.headers[DLS_HEADERS.group]).toBe('g');
        expect(dl!.headers[DLS_HEADERS.attempts]).toBe('2');
        expect(dl!.headers[DLS_HEADERS.station]).toBe(s);
        expect(dl!.headers[DLS_HEADERS.partition]).toBe('0');
        expect(dl!.headers[DLS_HEADERS.offset]).toBe('2');
        expect(dl!.headers[DLS_HEADERS.reason]).toEqual(expect.any(String));
        expect(dl!.headers[DLS_HEADERS.reason]!.length).toBeGreaterThan(0);
        expect(await dlsMessages(s)).toHaveLength(1);

        const info = await store.getGroup(s, 'g');
        expect(info.deadLettered).toBe(1);
        expect(groupPartition(info)).toMatchObject({ ackFloor: 3, pending: 1, redeliveryQueued: 0, lag: 1 });
        // Another group is not affected by g's dead letter.
        expect(offsets(await fetchNow(s, 'other'))).toEqual([1, 2, 3]);
      });

      it('expired ack deadlines count as attempts too', async () => {
        const s = uniqueName('expire');
        await store.createStation(s, { deadLetter: { maxDeliveries: 2, maxAckTimeMs: 150 } });
        await produceOk(s, [{ value: bytes('slow'), headers: { a: '1' } }]);
        const [d1] = await fetchNow(s, 'g');
        expect(d1?.deliveryCount).toBe(1);
        const [d2] = await pollFetch(s, 'g', 150 + slackMs);
        expect(d2).toMatchObject({ offset: 1, deliveryCount: 2 });
        const seen: Delivery[] = [];
        const [dl] = await eventually('the dead letter after two expired deliveries', 150 + slackMs + 1_000, async () => {
          seen.push(...(await fetchNow(s, 'g')));
          try {
            const ms = await dlsMessages(s);
            return ms.length > 0 ? ms : undefined;
          } catch {
            return undefined;
          }
        });
        expect(seen).toEqual([]);
        expectSameBytes(dl!.value, bytes('slow'));
        expect(dl!.headers).toMatchObject({ a: '1', [DLS_HEADERS.attempts]: '2', [DLS_HEADERS.group]: 'g', [DLS_HEADERS.offset]: '1' });
        expect((await store.getGroup(s, 'g')).deadLettered).toBe(1);
      });

      it('deadLetter details set the code and add headers, without overriding the broker\'s own', async () => {
        const s = uniqueName('dl-details');
        await store.createStation(s);
        await produceOk(s, [{ value: bytes('poison'), headers: { mine: '1' } }]);
        const [d] = await fetchNow(s, 'connector.sink');
        const out = await store.deadLetter(s, 'connector.sink', [d!.deliveryId], 'cannot encode', {
          code: 'ENCODE_FAILED',
          headers: { [DLS_HEADERS.connector]: 'sink', [DLS_HEADERS.group]: 'forged' },
        });
        expect(out).toEqual([{ deliveryId: d!.deliveryId, status: 'dead-lettered' }]);
        const [dl] = await waitForDeadLetters(s, 1);
        expect(dl!.headers).toMatchObject({
          mine: '1',
          [DLS_HEADERS.code]: 'ENCODE_FAILED',
          [DLS_HEADERS.connector]: 'sink',
          [DLS_HEADERS.group]: 'connector.sink',
          [DLS_HEADERS.reason]: 'cannot encode',
        });
      });

      it('deadLetter(reason) moves the message at once with the reason', async () => {
        const s = uniqueName('explicit-dl');
        await store.createStation(s, { partitions: 2 });
        const results = await produceOk(s, [
          { key: 'a', value: patterned(300, 9), headers: { x: 'y' } },
          { key: 'a', value: bytes('second') },
        ]);
        const p = results[0]!.partition;
        const ds = await fetchNow(s, 'g');
        const target0 = ds.find((d) => d.offset === 1 && d.partition === p)!;
        expect(await store.deadLetter(s, 'g', [target0.deliveryId], 'schema mismatch')).toEqual([{ deliveryId: target0.deliveryId, status: 'dead-lettered' }]);
        const [dl] = await waitForDeadLetters(s, 1);
        expectSameBytes(dl!.value, patterned(300, 9));
        expect(dl!.headers).toMatchObject({
          x: 'y',
          [DLS_HEADERS.reason]: 'schema mismatch',
          [DLS_HEADERS.group]: 'g',
          [DLS_HEADERS.attempts]: '1',
          [DLS_HEADERS.station]: s,
          [DLS_HEADERS.partition]: String(p),
          [DLS_HEADERS.offset]: '1',
        });
        const info = await store.getGroup(s, 'g');
        expect(info.deadLettered).toBe(1);
        expect(groupPartition(info, p)).toMatchObject({ ackFloor: 2, pending: 1 });
        await store.ack(s, 'g', ds.filter((d) => d !== target0).map((d) => d.deliveryId));
        await sleep(50);
        expect(await fetchNow(s, 'g')).toEqual([]);
        expect(await store.getGroup(s, 'g')).toMatchObject({ lag: 0, pending: 0 });
      });

      it('replay to the origin: every group consumes the messages again', async () => {
        const s = uniqueName('replay');
        await store.createStation(s);
        await store.createGroup(s, 'g1');
        await store.createGroup(s, 'g2');
        const headers = { h: 'keep me' };
        await produceOk(s, [{ value: ALL_BYTES, headers }]);
        const [a] = await fetchNow(s, 'g1');
        await store.deadLetter(s, 'g1', [a!.deliveryId], 'nope');
        await drain(s, 'g2');
        await waitForDeadLetters(s, 1);

        expect(await store.replayDeadLetters(s)).toEqual({ replayed: 1, purged: 0 });
        for (const g of ['g1', 'g2']) {
          const ds = await pollFetch(s, g, 1_000);
          expect(ds, g).toHaveLength(1);
          expect(ds[0]!.offset, g).toBe(2);
          expectSameBytes(ds[0]!.value, ALL_BYTES);
          expect(ds[0]!.headers).toMatchObject(headers);
          await store.ack(s, g, [ds[0]!.deliveryId]);
        }
        expect((await store.getStation(s)).messages).toBe(2);
        expect(await dlsMessages(s)).toHaveLength(1);
      });

      it('replay to one group: only that group receives the copy, the others skip it', async () => {
        const s = uniqueName('replay-group');
        await store.createStation(s);
        await store.createGroup(s, 'g1');
        await store.createGroup(s, 'g2');
        await produceOk(s, [{ value: bytes('poison'), headers: { h: '1' } }]);
        const [a] = await fetchNow(s, 'g1');
        await store.deadLetter(s, 'g1', [a!.deliveryId], 'nope');
        expect(offsets(await drain(s, 'g2'))).toEqual([1]);
        await waitForDeadLetters(s, 1);

        expect(await store.replayDeadLetters(s, { group: 'g1' })).toEqual({ replayed: 1, purged: 0 });
        const ds = await pollFetch(s, 'g1', 1_000);
        expect(ds).toHaveLength(1);
        expectSameBytes(ds[0]!.value, bytes('poison'));
        expect(ds[0]!.headers).toMatchObject({ h: '1', [REPLAY_GROUP_HEADER]: 'g1' });
        await store.ack(s, 'g1', [ds[0]!.deliveryId]);

        expect(await store.fetch(s, 'g2', { maxMessages: 100, maxBytes: MiB, waitMs: 200 })).toEqual([]);
        // A group that starts later skips it too; and skipping does not block what follows.
        expect(offsets(await drain(s, 'g3'))).toEqual([1]);
        await produceOk(s, values('next'));
        expect(offsets(await fetchNow(s, 'g2'))).toEqual([3]);
        expect(offsets(await fetchNow(s, 'g3'))).toEqual([3]);
        expect(offsets(await fetchNow(s, 'g1'))).toEqual([3]);
      });

      it('replay a range of dead letters, with purge', async () => {
        const s = uniqueName('replay-range');
        await store.createStation(s);
        await produceOk(s, values('a', 'b', 'c'));
        const ds = await fetchNow(s, 'g');
        await store.deadLetter(s, 'g', ds.map((d) => d.deliveryId), 'r');
        const dls = await waitForDeadLetters(s, 3);
        expect(offsets(dls)).toEqual([1, 2, 3]);
        expect(dls.map((m) => m.headers[DLS_HEADERS.offset])).toEqual(['1', '2', '3']);

        expect(await store.replayDeadLetters(s, { fromOffset: 2, toOffset: 3 })).toEqual({ replayed: 2, purged: 0 });
        const again = await drain(s, 'g');
        expect(again.map((d) => asBuffer(d.value).toString())).toEqual(['b', 'c']);

        expect(await store.replayDeadLetters(s, { fromOffset: 1, toOffset: 1, purge: true })).toEqual({ replayed: 1, purged: 1 });
        expect((await drain(s, 'g')).map((d) => asBuffer(d.value).toString())).toEqual(['a']);
        const left = await dlsMessages(s);
        expect(offsets(left)).toEqual([2, 3]);
        expect((await store.getStation(dlsName(s))).messages).toBe(2);
      });

      it('purgeDeadLetters empties the dead-letter station; offsets are not reused', async () => {
        const s = uniqueName('purge');
        await store.createStation(s);
        await produceOk(s, values('a', 'b', 'c'));
        const ds = await fetchNow(s, 'g');
        await store.deadLetter(s, 'g', ds.map((d) => d.deliveryId));
        await waitForDeadLetters(s, 3);
        expect(await store.purgeDeadLetters(s)).toBe(3);
        expect(await dlsMessages(s)).toEqual([]);
        const info = await store.getStation(dlsName(s));
        expect(info.messages).toBe(0);
        expect(info.partitions[0]).toMatchObject({ firstOffset: 4, nextOffset: 4 });
        expect(await store.purgeDeadLetters(s)).toBe(0);

        await produceOk(s, values('d'));
        const [d] = await fetchNow(s, 'g');
        await store.deadLetter(s, 'g', [d!.deliveryId]);
        const [dl] = await waitForDeadLetters(s, 1);
        expect(dl!.offset).toBe(4);
      });

      it('purgeDeadLetters up to an offset drops only the oldest', async () => {
        const s = uniqueName('purge-to');
        await store.createStation(s);
        await produceOk(s, values('a', 'b', 'c'));
        const ds = await fetchNow(s, 'g');
        await store.deadLetter(s, 'g', ds.map((d) => d.deliveryId));
        await waitForDeadLetters(s, 3);
        const n = await store.purgeDeadLetters(s, 2);
        // "Up to" is read as inclusive or exclusive by an engine; either way the rest must match the count.
        expect([1, 2]).toContain(n);
        const left = await dlsMessages(s);
        expect(offsets(left)).toEqual(range(n + 1, 3));
        expect(left.map((m) => asBuffer(m.value).toString())).toEqual(['a', 'b', 'c'].slice(n));
      });
    });

    // ---- long poll and fetch limits -------------------------------------------------------------

    describe('fetch: long poll and limits', () => {
      it('a waiting fetch answers soon after a produce', async () => {
        const s = uniqueName('longpoll');
        await store.createStation(s, { partitions: 3 });
        await store.createGroup(s, 'g');
        const producedAt = new Promise<number>((resolve, reject) => {
          setTimeout(() => {
            const t = performance.now();
            store.produce(s, values('wake up')).then(() => resolve(t), reject);
          }, 200);
        });
        const t0 = performance.now();
        const ds = await store.fetch(s, 'g', { maxMessages: 10, maxBytes: MiB, waitMs: 2_000 });
        const elapsed = performance.now() - t0;
        const produced = (await producedAt) - t0;
        expect(ds).toHaveLength(1);
        expectSameBytes(ds[0]!.value, bytes('wake up'));
        expect(elapsed).toBeGreaterThanOrEqual(produced - TIMER_TOLERANCE_MS);
        expect(elapsed).toBeLessThan(1_000);
      });

      it('a waiting fetch with nothing produced answers empty after waitMs', async () => {
        const s = uniqueName('emptypoll');
        await store.createStation(s);
        const t0 = performance.now();
        const ds = await store.fetch(s, 'g', { maxMessages: 10, maxBytes: MiB, waitMs: 300 });
        const elapsed = performance.now() - t0;
        expect(ds).toEqual([]);
        expect(elapsed).toBeGreaterThanOrEqual(250);
        expect(elapsed).toBeLessThan(2_000);
      });

      it('an AbortSignal ends the wait early', async () => {
        const s = uniqueName('abort');
        await store.createStation(s);
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 100);
        const t0 = performance.now();
        // Ending with [] or rejecting (AbortError) are both an early end.
        const outcome = await store.fetch(s, 'g', { maxMessages: 10, maxBytes: MiB, waitMs: 5_000, signal: ac.signal }).then(
          (ds) => ds,
          () => 'rejected' as const,
        );
        const elapsed = performance.now() - t0;
        if (outcome !== 'rejected') expect(outcome).toEqual([]);
        expect(elapsed).toBeGreaterThanOrEqual(100 - TIMER_TOLERANCE_MS);
        expect(elapsed).toBeLessThan(1_000);
        // The store keeps serving.
        await produceOk(s, values('x'));
        expect(offsets(await fetchNow(s, 'g'))).toEqual([1]);
      });

      it('close answers pending long polls empty and is idempotent', async () => {
        const s = uniqueName('closepoll');
        await store.createStation(s);
        const t0 = performance.now();
        const pending = store.fetch(s, 'g', { maxMessages: 10, maxBytes: MiB, waitMs: 5_000 });
        await sleep(100);
        await store.close();
        expect(await pending).toEqual([]);
        expect(performance.now() - t0).toBeLessThan(1_500);
        await store.close();
        await rejectsWithCode(store.produce(s, values('late')), 'STORE_CLOSED');
      });

      it('maxMessages and maxBytes are honoured; at least one message even if larger than maxBytes', async () => {
        const s = uniqueName('limits');
        await store.createStation(s);
        await produceOk(s, Array.from({ length: 10 }, (_, i) => ({ value: patterned(1_000, i + 1) })));
        expect(offsets(await store.fetch(s, 'g', { maxMessages: 3, maxBytes: MiB, waitMs: 0 }))).toEqual([1, 2, 3]);
        const byBytes = await store.fetch(s, 'g', { maxMessages: 100, maxBytes: 2_500, waitMs: 0 });
        expect(offsets(byBytes)).toEqual([4, 5]);
        expectSameBytes(byBytes[1]!.value, patterned(1_000, 5));
        const one = await store.fetch(s, 'g', { maxMessages: 100, maxBytes: 1, waitMs: 0 });
        expect(offsets(one)).toEqual([6]);
        expectSameBytes(one[0]!.value, patterned(1_000, 6));

        const big = uniqueName('big');
        await store.createStation(big);
        await produceOk(big, [{ value: patterned(100_000, 42) }, { value: bytes('small') }]);
        const [d] = await store.fetch(big, 'g', { maxMessages: 10, maxBytes: 100, waitMs: 0 });
        expect(d?.offset).toBe(1);
        expectSameBytes(d!.value, patterned(100_000, 42));
        expect(offsets(await store.fetch(big, 'g', { maxMessages: 10, maxBytes: 100, waitMs: 0 }))).toEqual([2]);
      });

      it('fetch from an unknown station fails with STATION_NOT_FOUND', async () => {
        await rejectsWithCode(store.fetch(uniqueName('nowhere'), 'g', { maxMessages: 1, maxBytes: MiB, waitMs: 0 }), 'STATION_NOT_FOUND');
      });
    });

    // ---- retention -------------------------------------------------------------------------------

    describe('retention', () => {
      it('maxMessages keeps the newest N; offsets do not change', async () => {
        const s = uniqueName('maxmsgs');
        await store.createStation(s, { retention: { maxMessages: 10 } });
        for (let b = 0; b < 5; b++) await produceOk(s, Array.from({ length: 10 }, (_, i) => ({ value: bytes(`m${b * 10 + i + 1}`) })));
        const info = await eventually('retention to drop down to 10 messages', RETENTION_WITHIN_MS, async () => {
          const i = await store.getStation(s);
          return i.partitions[0]!.firstOffset >= 41 ? i : undefined;
        });
        expect(info.partitions[0]).toMatchObject({ firstOffset: 41, nextOffset: 51, messages: 10 });
        expect(info.messages).toBe(10);
        const ms = await readAll(s);
        expect(offsets(ms)).toEqual(range(41, 50));
        expect(ms.map((m) => asBuffer(m.value).toString())).toEqual(range(41, 50).map((i) => `m${i}`));
        expect(offsets(await fetchNow(s, 'g'))).toEqual(range(41, 50));
        expect(await produceOk(s, values('m51'))).toEqual([{ partition: 0, offset: 51 }]);
      });

      it('maxAgeMs set on a live station drops old messages', async () => {
        const s = uniqueName('maxage');
        await store.createStation(s);
        await produceOk(s, values('1', '2', '3', '4', '5'));
        await store.updateStation(s, { retention: { maxAgeMs: 300 } });
        const info = await eventually('age retention to empty the station', 300 + RETENTION_WITHIN_MS, async () => {
          const i = await store.getStation(s);
          return i.messages === 0 ? i : undefined;
        });
        expect(info.partitions[0]).toMatchObject({ firstOffset: 6, nextOffset: 6, messages: 0 });
        expect(await readAll(s)).toEqual([]);
        expect(await produceOk(s, values('6'))).toEqual([{ partition: 0, offset: 6 }]);
        expect(offsets(await readAll(s))).toEqual([6]);
      });

      it('ackBased keeps what any group has not acknowledged and drops what all have', async () => {
        const s = uniqueName('ackbased');
        await store.createStation(s, { retention: { ackBased: true } });
        await store.createGroup(s, 'g1');
        await store.createGroup(s, 'g2');
        await produceOk(s, values('1', '2', '3', '4', '5'));
        await drain(s, 'g1');
        const ds = await fetchNow(s, 'g2');
        await store.ack(s, 'g2', ds.slice(0, 2).map((d) => d.deliveryId));
        const info = await eventually('ack-based retention to drop offsets 1-2', RETENTION_WITHIN_MS, async () => {
          const i = await store.getStation(s);
          return i.partitions[0]!.firstOffset >= 3 ? i : undefined;
        });
        // Retention has run since g1 acked everything, and still keeps what g2 has not acked.
        expect(info.partitions[0]).toMatchObject({ firstOffset: 3, nextOffset: 6, messages: 3 });
        expect(offsets(await readAll(s))).toEqual([3, 4, 5]);

        await store.ack(s, 'g2', ds.slice(2).map((d) => d.deliveryId));
        const after = await eventually('ack-based retention to drop everything', RETENTION_WITHIN_MS, async () => {
          const i = await store.getStation(s);
          return i.messages === 0 ? i : undefined;
        });
        expect(after.partitions[0]).toMatchObject({ firstOffset: 6, nextOffset: 6, messages: 0 });
        expect(await readAll(s)).toEqual([]);
      });
    });

    // ---- events ----------------------------------------------------------------------------------

    describe('events', () => {
      it('onEvent reports produced messages until unsubscribed', async () => {
        const s = uniqueName('events');
        await store.createStation(s);
        const events: StoreEvent[] = [];
        const off = store.onEvent((e) => events.push(e));
        await produceOk(s, values('a', 'b'));
        const producedCount = () => events.filter((e) => e.type === 'produced' && e.station === s).reduce((n, e) => n + (e as { messages: number }).messages, 0);
        await eventually('a produced event', 1_000, async () => (producedCount() >= 2 ? true : undefined));
        expect(producedCount()).toBe(2);
        off();
        await produceOk(s, values('c'));
        await sleep(50);
        expect(producedCount()).toBe(2);
      });
    });

    // ---- reopen ----------------------------------------------------------------------------------

    // Engines that cannot reopen (no durable state) do not get these tests at all.
    if (reopenTarget) describe('reopen', () => {
      it('stations, config, messages, offsets, key routing and dedup ids survive', async () => {
        const s = uniqueName('durable');
        const gone = uniqueName('gone');
        await store.createStation(s, { partitions: 2, deadLetter: { maxDeliveries: 7 } });
        await store.createStation(gone);
        await store.updateStation(s, { retention: { maxMessages: 1_000 }, dedupWindowMs: 60_000 });
        const inputs: MessageInput[] = [
          { key: 'alpha', value: ALL_BYTES, headers: { u: 'ünï 🚉' }, msgId: 'id-1' },
          { key: 'beta', value: new Uint8Array(0), msgId: 'id-2' },
          { value: patterned(70_000, 5) },
          { key: 'alpha', value: bytes('second alpha') },
        ];
        const results = await produceOk(s, inputs);
        await store.deleteStation(gone);
        const before = await store.getStation(s);
        const readBefore = [...(await readAll(s, 0)), ...(await readAll(s, 1))];

        await reopen();

        const after = await store.getStation(s);
        expect(after.config).toEqual(before.config);
        expect(after.createdAt).toBe(before.createdAt);
        expect(after.partitions.map(({ partition, firstOffset, nextOffset, messages }) => ({ partition, firstOffset, nextOffset, messages }))).toEqual(
          before.partitions.map(({ partition, firstOffset, nextOffset, messages }) => ({ partition, firstOffset, nextOffset, messages })),
        );
        const list = await store.listStations();
        expect(originNames(list)).toEqual([s]);
        expectDlsConsistent(list);
        await rejectsWithCode(store.getStation(gone), 'STATION_NOT_FOUND');
        await rejectsWithCode(store.getStation(dlsName(gone)), 'STATION_NOT_FOUND');

        const readAfter = [...(await readAll(s, 0)), ...(await readAll(s, 1))];
        expect(readAfter).toHaveLength(inputs.length);
        readAfter.forEach((m, i) => {
          const b = readBefore[i]!;
          expect({ p: m.partition, o: m.offset, t: m.timestamp, k: m.key, h: m.headers }).toEqual({ p: b.partition, o: b.offset, t: b.timestamp, k: b.key, h: b.headers });
          expectSameBytes(m.value, b.value, `value at ${pk(m)}`);
        });

        const alphaP = results[0]!.partition;
        const again = await store.produce(s, [{ key: 'alpha', value: bytes('third alpha') }, { value: bytes('x'), msgId: 'id-1' }, { value: bytes('y'), msgId: 'id-2' }]);
        const alphaNext = results.filter((r) => r.partition === alphaP).length + 1;
        expect(again[0]).toEqual(stored(alphaP, alphaNext));
        expect(again[1]).toEqual({ status: 'duplicate', ...results[0]! });
        expect(again[2]).toEqual({ status: 'duplicate', ...results[1]! });
      });

      it('group progress survives: acked stay acked, unacked come back, the cursor holds', async () => {
        const s = uniqueName('durable-group');
        await store.createStation(s);
        await store.createGroup(s, 'g', { maxAckTimeMs: 200, maxDeliveries: 9 });
        await produceOk(s, values('1', '2', '3', '4', '5', '6'));
        await store.createGroup(s, 'late', { start: { type: 'latest' } });
        const ds = await fetchNow(s, 'g', 4);
        expect(offsets(ds)).toEqual([1, 2, 3, 4]);
        expect(await store.ack(s, 'g', [ds[0]!.deliveryId, ds[1]!.deliveryId])).toEqual([
          { deliveryId: ds[0]!.deliveryId, status: 'acked' },
          { deliveryId: ds[1]!.deliveryId, status: 'acked' },
        ]);

        await reopen();

        expect((await store.listGroups(s)).map((g) => g.group).sort()).toEqual(['g', 'late']);
        expect(await store.getGroup(s, 'g')).toMatchObject({ maxAckTimeMs: 200, maxDeliveries: 9 });
        const got: Delivery[] = [];
        await eventually('offsets 3-6 delivered after reopen', 200 + slackMs + 1_000, async () => {
          const batch = await fetchNow(s, 'g');
          got.push(...batch);
          if (batch.length > 0) await store.ack(s, 'g', batch.map((d) => d.deliveryId));
          return got.length >= 4 ? true : undefined;
        });
        expect(offsets(got).sort((a, b) => a - b)).toEqual([3, 4, 5, 6]);
        await sleep(400);
        expect(await fetchNow(s, 'g')).toEqual([]);
        expect(await fetchNow(s, 'late')).toEqual([]);
        await produceOk(s, values('7'));
        expect(offsets(await fetchNow(s, 'g'))).toEqual([7]);
        expect(offsets(await fetchNow(s, 'late'))).toEqual([7]);
      });

      it('dead letters survive and are not delivered again', async () => {
        const s = uniqueName('durable-dls');
        await store.createStation(s);
        await produceOk(s, [{ value: ALL_BYTES, headers: { h: 'x' } }, { value: bytes('ok') }]);
        const ds = await fetchNow(s, 'g');
        await store.deadLetter(s, 'g', [ds[0]!.deliveryId], 'why');
        await store.ack(s, 'g', [ds[1]!.deliveryId]);
        await waitForDeadLetters(s, 1);

        await reopen();

        expect((await store.getStation(dlsName(s))).deadLetterOf).toBe(s);
        const [dl] = await dlsMessages(s);
        expectSameBytes(dl!.value, ALL_BYTES);
        expect(dl!.headers).toMatchObject({ h: 'x', [DLS_HEADERS.reason]: 'why', [DLS_HEADERS.group]: 'g' });
        await sleep(100);
        expect(await fetchNow(s, 'g')).toEqual([]);
      });
    });
  });
}
