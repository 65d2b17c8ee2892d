/** The StationStore conformance suite: produce, dedup and read. */
import { describe, it, expect } from 'vitest';
import { MiB } from '@junction/protocol';
import type { MessageInput, StoredMessage } from '../../contract.js';
import type { Suite } from './suite.js';
import {
  uniqueName,
  sleep,
  bytes,
  asBuffer,
  ALL_BYTES,
  patterned,
  expectSameBytes,
  rejectsWithCode,
  offsets,
  range,
  stored,
  first,
} from './util.js';

export function messagesSection(t: Suite): void {
  const { fetchNow, produceOk, values, readAll } = t;
  describe('produce', () => {
    it('answers per message in order; offsets start at 1 and grow by 1', async () => {
      const s = uniqueName('offsets');
      await t.store.createStation(s);
      expect(await t.store.produce(s, values('a', 'b', 'c', 'd', 'e'))).toEqual([1, 2, 3, 4, 5].map((o) => stored(0, o)));
      expect(await t.store.produce(s, values('f', 'g', 'h'))).toEqual([6, 7, 8].map((o) => stored(0, o)));
      const info = await t.store.getStation(s);
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
      await t.store.createStation(s);
      const big = patterned(256 * 1024, 7);
      const inputs: MessageInput[] = [
        { value: new Uint8Array(0) },
        { value: ALL_BYTES, key: 'bytes' },
        {
          value: bytes('zażółć gęślą jaźń 🚉'),
          key: 'ключ-🔑-鍵',
          headers: { 'x-unicode': 'станция 🚉 駅', 'content-type': 'text/plain; charset=utf-8', empty: '' },
        },
        { value: big, headers: { 'x-size': String(big.length) } },
        { value: Buffer.from([0, 0, 0, 0]), key: ' spaced key ' },
      ];
      const before = Date.now();
      expect(await t.store.produce(s, inputs)).toEqual([1, 2, 3, 4, 5].map((o) => stored(0, o)));
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
      await t.store.createStation(s, { maxMessageBytes: 1_024 });
      const small1 = patterned(100, 1);
      const small2 = patterned(100, 2);
      const results = await t.store.produce(s, [{ value: small1 }, { value: patterned(4_096, 3) }, { value: small2 }]);
      expect(results[0]).toEqual(stored(0, 1));
      expect(results[1]).toMatchObject({ status: 'rejected', code: 'MESSAGE_TOO_LARGE' });
      expect(typeof (results[1] as { message?: unknown }).message).toBe('string');
      expect(results[2]).toEqual(stored(0, 2));
      const read = await readAll(s);
      expect(offsets(read)).toEqual([1, 2]);
      expectSameBytes(read[0]!.value, small1);
      expectSameBytes(read[1]!.value, small2);
      expect((await t.store.getStation(s)).messages).toBe(2);

      // The limit is live config.
      await t.store.updateStation(s, { maxMessageBytes: 8_192 });
      expect(await t.store.produce(s, [{ value: patterned(4_096, 3) }])).toEqual([stored(0, 3)]);
    });

    it('the default limit is 8 MiB', async () => {
      const s = uniqueName('default-limit');
      await t.store.createStation(s);
      const results = await t.store.produce(s, [{ value: Buffer.alloc(8 * MiB + 1) }, { value: bytes('ok') }]);
      expect(results[0]).toMatchObject({ status: 'rejected', code: 'MESSAGE_TOO_LARGE' });
      expect(results[1]).toEqual(stored(0, 1));
    });

    it('producing to an unknown station fails with STATION_NOT_FOUND', async () => {
      await rejectsWithCode(t.store.produce(uniqueName('nowhere'), values('x')), 'STATION_NOT_FOUND');
    });

    it('a key always goes to the same partition, and many keys use every partition', async () => {
      const s = uniqueName('keys');
      await t.store.createStation(s, { partitions: 4 });
      const keys = Array.from({ length: 50 }, (_, i) => `customer-${i}`);
      const partitionOf = new Map<string, number>();
      const perPartition = new Map<number, number>();
      for (let round = 0; round < 4; round++) {
        const order = round % 2 === 0 ? keys : [...keys].reverse();
        const results = await produceOk(
          s,
          order.map((key) => ({ key, value: bytes(`${key}#${round}`) })),
        );
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
      await t.store.createStation(s, { partitions: 4 });
      const count = (rs: { partition: number }[]) => [0, 1, 2, 3].map((p) => rs.filter((r) => r.partition === p).length);
      const batch = await produceOk(
        s,
        Array.from({ length: 16 }, (_, i) => ({ value: bytes(`m${i}`) })),
      );
      expect(count(batch)).toEqual([4, 4, 4, 4]);
      const singles: { partition: number }[] = [];
      for (let i = 0; i < 8; i++) singles.push(...(await produceOk(s, values(`s${i}`))));
      expect(count(singles)).toEqual([2, 2, 2, 2]);
      const info = await t.store.getStation(s);
      expect(info.partitions.map((p) => p.messages)).toEqual([6, 6, 6, 6]);
    });
  });

  describe('dedup', () => {
    it('a msgId seen inside the window is a duplicate of the first, not stored again', async () => {
      const s = uniqueName('dedup');
      await t.store.createStation(s, { partitions: 3 });
      const [firstResult] = await t.store.produce(s, [{ value: bytes('a'), msgId: 'm-1' }]);
      expect(firstResult).toMatchObject({ status: 'stored', offset: 1 });
      const { partition } = firstResult as { partition: number };
      // Several tries, so round robin would have moved to every other partition by now.
      for (let i = 0; i < 3; i++) {
        expect(await t.store.produce(s, [{ value: bytes(`b${i}`), msgId: 'm-1' }])).toEqual([
          { status: 'duplicate', partition, offset: 1 },
        ]);
      }
      expect((await t.store.getStation(s)).messages).toBe(1);
      const [m] = await readAll(s, partition);
      expectSameBytes(m!.value, bytes('a'));

      // Inside one batch too.
      const results = await t.store.produce(s, [
        { value: bytes('c'), msgId: 'm-2' },
        { value: bytes('d'), msgId: 'm-2' },
        { value: bytes('e'), msgId: 'm-3' },
      ]);
      expect(results[0]).toMatchObject({ status: 'stored' });
      const r0 = results[0] as { partition: number; offset: number };
      expect(results[1]).toEqual({ status: 'duplicate', partition: r0.partition, offset: r0.offset });
      expect(results[2]).toMatchObject({ status: 'stored' });
      expect((await t.store.getStation(s)).messages).toBe(3);
    });

    it('after the window shrinks and passes, the same msgId is stored again', async () => {
      const s = uniqueName('dedup-window');
      await t.store.createStation(s);
      expect(await t.store.produce(s, [{ value: bytes('1'), msgId: 'x' }])).toEqual([stored(0, 1)]);
      expect(await t.store.produce(s, [{ value: bytes('2'), msgId: 'x' }])).toEqual([{ status: 'duplicate', partition: 0, offset: 1 }]);
      await t.store.updateStation(s, { dedupWindowMs: 200 });
      await sleep(350);
      expect(await t.store.produce(s, [{ value: bytes('3'), msgId: 'x' }])).toEqual([stored(0, 2)]);
      expect(await t.store.produce(s, [{ value: bytes('4'), msgId: 'x' }])).toEqual([{ status: 'duplicate', partition: 0, offset: 2 }]);
      expect((await t.store.getStation(s)).messages).toBe(2);
    });

    it('dedupWindowMs 0 disables dedup', async () => {
      const s = uniqueName('nodedup');
      await t.store.createStation(s, { dedupWindowMs: 0 });
      expect(await t.store.produce(s, [{ value: bytes('1'), msgId: 'x' }])).toEqual([stored(0, 1)]);
      expect(
        await t.store.produce(s, [
          { value: bytes('2'), msgId: 'x' },
          { value: bytes('3'), msgId: 'x' },
        ]),
      ).toEqual([stored(0, 2), stored(0, 3)]);
      expect((await t.store.getStation(s)).messages).toBe(3);
    });
  });

  describe('read', () => {
    it('honours fromOffset, limit and maxBytes; past the end is empty; touches no group', async () => {
      const s = uniqueName('read');
      await t.store.createStation(s);
      await produceOk(
        s,
        Array.from({ length: 10 }, (_, i) => ({ value: patterned(1_000, i + 1) })),
      );
      expect(offsets(await t.store.read(s, { partition: 0, limit: 100 }))).toEqual(range(1, 10));
      expect(offsets(await t.store.read(s, { partition: 0, limit: 3 }))).toEqual([1, 2, 3]);
      const mid = await t.store.read(s, { partition: 0, fromOffset: 4, limit: 3 });
      expect(offsets(mid)).toEqual([4, 5, 6]);
      expectSameBytes(mid[0]!.value, patterned(1_000, 4));
      expect(offsets(await t.store.read(s, { partition: 0, fromOffset: 10, limit: 5 }))).toEqual([10]);
      expect(await t.store.read(s, { partition: 0, fromOffset: 11, limit: 5 })).toEqual([]);
      expect(await t.store.read(s, { partition: 0, fromOffset: 1_000_000, limit: 5 })).toEqual([]);
      const byBytes = await t.store.read(s, { partition: 0, fromOffset: 2, limit: 100, maxBytes: 2_500 });
      expect(byBytes.length).toBeGreaterThanOrEqual(1);
      expect(byBytes.length).toBeLessThanOrEqual(2);
      expect(offsets(byBytes)).toEqual(range(2, 1 + byBytes.length));
      expect(offsets(await t.store.read(s, { partition: 0, fromOffset: 5, limit: 100, maxBytes: 1 }))).toEqual([5]);
      const info = await t.store.getStation(s);
      expect(info.groups).toEqual([]);
      expect(await t.store.listGroups(s)).toEqual([]);
    });

    it('reads one partition at a time', async () => {
      const s = uniqueName('read-parts');
      await t.store.createStation(s, { partitions: 3 });
      const results = await produceOk(
        s,
        Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: bytes(`v${i}`) })),
      );
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
      await t.store.createStation(one);
      await t.store.createStation(three, { partitions: 3 });
      await rejectsWithCode(t.store.read(one, { partition: 1, limit: 10 }), 'PARTITION_NOT_FOUND');
      await rejectsWithCode(t.store.read(three, { partition: 3, limit: 10 }), 'PARTITION_NOT_FOUND');
      await rejectsWithCode(t.store.read(uniqueName('nowhere'), { partition: 0, limit: 10 }), 'STATION_NOT_FOUND');
    });
  });
}
