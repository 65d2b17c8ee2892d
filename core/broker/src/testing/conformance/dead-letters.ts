/** The StationStore conformance suite: max deliveries and dead letters. */
import { describe, it, expect } from 'vitest';
import { DLS_HEADERS, REPLAY_GROUP_HEADER, MiB } from '@junction/protocol';
import { dlsName } from '../../contract.js';
import type { Delivery } from '../../contract.js';
import type { Suite } from './suite.js';
import { uniqueName, sleep, bytes, asBuffer, ALL_BYTES, patterned, expectSameBytes, eventually, offsets, range } from './util.js';

export function deadLettersSection(t: Suite): void {
  const { fetchNow, drain, pollFetch, produceOk, values, dlsMessages, waitForDeadLetters, groupPartition, keysOnPartitions, slackMs } = t;
  describe('dead letters', () => {
    it('after maxDeliveries attempts the message moves to <station>.dls with its bytes and the DLS headers', async () => {
      const s = uniqueName('poison');
      await t.store.createStation(s, { deadLetter: { maxDeliveries: 2, maxAckTimeMs: 30_000 } });
      const headers = { 'content-type': 'application/octet-stream', trace: 'ünïcödé' };
      await produceOk(s, [{ value: bytes('fine') }, { value: ALL_BYTES, key: 'kk', headers }, { value: bytes('after') }]);
      const [d1a, d2a] = await fetchNow(s, 'g', 2);
      await t.store.ack(s, 'g', [d1a!.deliveryId]);
      expect(d2a).toMatchObject({ offset: 2, deliveryCount: 1 });
      await t.store.nack(s, 'g', [d2a!.deliveryId]);
      const again = await fetchNow(s, 'g', 1);
      expect(again).toHaveLength(1);
      expect(again[0]).toMatchObject({ offset: 2, deliveryCount: 2 });
      await t.store.nack(s, 'g', [again[0]!.deliveryId]);

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

      const info = await t.store.getGroup(s, 'g');
      expect(info.deadLettered).toBe(1);
      expect(groupPartition(info)).toMatchObject({ ackFloor: 3, pending: 1, redeliveryQueued: 0, lag: 1 });
      // Another group is not affected by g's dead letter.
      expect(offsets(await fetchNow(s, 'other'))).toEqual([1, 2, 3]);
    });

    it('expired ack deadlines count as attempts too', async () => {
      const s = uniqueName('expire');
      await t.store.createStation(s, { deadLetter: { maxDeliveries: 2, maxAckTimeMs: 150 } });
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
      expect((await t.store.getGroup(s, 'g')).deadLettered).toBe(1);
    });

    it("deadLetter details set the code and add headers, without overriding the broker's own", async () => {
      const s = uniqueName('dl-details');
      await t.store.createStation(s);
      await produceOk(s, [{ value: bytes('poison'), headers: { mine: '1' } }]);
      const [d] = await fetchNow(s, 'connector.sink');
      const out = await t.store.deadLetter(s, 'connector.sink', [d!.deliveryId], 'cannot encode', {
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
      await t.store.createStation(s, { partitions: 2 });
      const results = await produceOk(s, [
        { key: 'a', value: patterned(300, 9), headers: { x: 'y' } },
        { key: 'a', value: bytes('second') },
      ]);
      const p = results[0]!.partition;
      const ds = await fetchNow(s, 'g');
      const target0 = ds.find((d) => d.offset === 1 && d.partition === p)!;
      expect(await t.store.deadLetter(s, 'g', [target0.deliveryId], 'schema mismatch')).toEqual([
        { deliveryId: target0.deliveryId, status: 'dead-lettered' },
      ]);
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
      const info = await t.store.getGroup(s, 'g');
      expect(info.deadLettered).toBe(1);
      expect(groupPartition(info, p)).toMatchObject({ ackFloor: 2, pending: 1 });
      await t.store.ack(
        s,
        'g',
        ds.filter((d) => d !== target0).map((d) => d.deliveryId),
      );
      await sleep(50);
      expect(await fetchNow(s, 'g')).toEqual([]);
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ lag: 0, pending: 0 });
    });

    it('dead-lettered counts per partition: by deadLetter, by nacks and by expired deadlines, adding up to the total', async () => {
      const s = uniqueName('dl-parts');
      const ackMs = 300;
      await t.store.createStation(s, { partitions: 3, deadLetter: { maxDeliveries: 2, maxAckTimeMs: ackMs } });
      const [a, b] = await keysOnPartitions(s, 2);
      await t.store.createGroup(s, 'g', { start: { type: 'latest' } });
      await t.store.createGroup(s, 'quiet', { start: { type: 'latest' } });
      // On a: one dead-lettered by the consumer, one nacked twice, one acked. On b: one left to expire twice, one acked.
      const at = await produceOk(s, [
        { key: a!.key, value: bytes('a-explicit') },
        { key: a!.key, value: bytes('a-nacked') },
        { key: a!.key, value: bytes('a-acked') },
        { key: b!.key, value: bytes('b-expired') },
        { key: b!.key, value: bytes('b-acked') },
      ]);
      expect(at.map((r) => r.partition)).toEqual([a!.partition, a!.partition, a!.partition, b!.partition, b!.partition]);
      const ds = await fetchNow(s, 'g');
      const byValue = new Map(ds.map((d) => [asBuffer(d.value).toString(), d]));
      expect([...byValue.keys()].sort()).toEqual(['a-acked', 'a-explicit', 'a-nacked', 'b-acked', 'b-expired']);
      expect(await t.store.deadLetter(s, 'g', [byValue.get('a-explicit')!.deliveryId], 'bad')).toEqual([
        { deliveryId: byValue.get('a-explicit')!.deliveryId, status: 'dead-lettered' },
      ]);
      await t.store.ack(s, 'g', [byValue.get('a-acked')!.deliveryId, byValue.get('b-acked')!.deliveryId]);
      await t.store.nack(s, 'g', [byValue.get('a-nacked')!.deliveryId]);

      // Nack a-nacked's second delivery; b-expired is never settled: its two deadlines pass.
      const outcomes: string[] = [];
      await eventually('three dead letters', 3 * ackMs + 4 * slackMs + 2_000, async () => {
        for (const d of await fetchNow(s, 'g')) {
          const v = asBuffer(d.value).toString();
          if (v === 'a-nacked') outcomes.push(...(await t.store.nack(s, 'g', [d.deliveryId])).map((o) => `${v}:${o.status}`));
          else outcomes.push(`${v}:delivery ${d.deliveryCount}`);
        }
        return (await dlsMessages(s)).length >= 3 ? true : undefined;
      });
      expect(outcomes.filter((o) => o.startsWith('a-nacked'))).toEqual(['a-nacked:dead-lettered']);
      expect(outcomes.filter((o) => o.startsWith('b-expired'))).toEqual(['b-expired:delivery 2']);
      const dls = await dlsMessages(s);
      expect(dls.map((m) => `${m.headers[DLS_HEADERS.partition]}:${asBuffer(m.value).toString()}`).sort()).toEqual(
        [`${a!.partition}:a-explicit`, `${a!.partition}:a-nacked`, `${b!.partition}:b-expired`].sort(),
      );

      const info = await eventually('the counts', slackMs + 1_000, async () => {
        const g = await t.store.getGroup(s, 'g');
        return g.deadLettered === 3 ? g : undefined;
      });
      const counts = [0, 1, 2].map((p) => groupPartition(info, p).deadLettered);
      const expected = [0, 0, 0];
      expected[a!.partition] = 2;
      expected[b!.partition] = 1;
      expect(counts).toEqual(expected);
      expect(counts.reduce((x, y) => x + y, 0)).toBe(info.deadLettered);
      // Another group's counts are its own.
      const quiet = await t.store.getGroup(s, 'quiet');
      expect({ total: quiet.deadLettered, parts: quiet.partitions.map((p) => p.deadLettered) }).toEqual({ total: 0, parts: [0, 0, 0] });
    });

    it('replay to the origin: every group consumes the messages again', async () => {
      const s = uniqueName('replay');
      await t.store.createStation(s);
      await t.store.createGroup(s, 'g1');
      await t.store.createGroup(s, 'g2');
      const headers = { h: 'keep me' };
      await produceOk(s, [{ value: ALL_BYTES, headers }]);
      const [a] = await fetchNow(s, 'g1');
      await t.store.deadLetter(s, 'g1', [a!.deliveryId], 'nope');
      await drain(s, 'g2');
      await waitForDeadLetters(s, 1);

      expect(await t.store.replayDeadLetters(s)).toEqual({ replayed: 1, purged: 0 });
      for (const g of ['g1', 'g2']) {
        const ds = await pollFetch(s, g, 1_000);
        expect(ds, g).toHaveLength(1);
        expect(ds[0]!.offset, g).toBe(2);
        expectSameBytes(ds[0]!.value, ALL_BYTES);
        expect(ds[0]!.headers).toMatchObject(headers);
        await t.store.ack(s, g, [ds[0]!.deliveryId]);
      }
      expect((await t.store.getStation(s)).messages).toBe(2);
      expect(await dlsMessages(s)).toHaveLength(1);
    });

    it('replay to one group: only that group receives the copy, the others skip it', async () => {
      const s = uniqueName('replay-group');
      await t.store.createStation(s);
      await t.store.createGroup(s, 'g1');
      await t.store.createGroup(s, 'g2');
      await produceOk(s, [{ value: bytes('poison'), headers: { h: '1' } }]);
      const [a] = await fetchNow(s, 'g1');
      await t.store.deadLetter(s, 'g1', [a!.deliveryId], 'nope');
      expect(offsets(await drain(s, 'g2'))).toEqual([1]);
      await waitForDeadLetters(s, 1);

      expect(await t.store.replayDeadLetters(s, { group: 'g1' })).toEqual({ replayed: 1, purged: 0 });
      const ds = await pollFetch(s, 'g1', 1_000);
      expect(ds).toHaveLength(1);
      expectSameBytes(ds[0]!.value, bytes('poison'));
      expect(ds[0]!.headers).toMatchObject({ h: '1', [REPLAY_GROUP_HEADER]: 'g1' });
      await t.store.ack(s, 'g1', [ds[0]!.deliveryId]);

      expect(await t.store.fetch(s, 'g2', { maxMessages: 100, maxBytes: MiB, waitMs: 200 })).toEqual([]);
      // A group that starts later skips it too; and skipping does not block what follows.
      expect(offsets(await drain(s, 'g3'))).toEqual([1]);
      await produceOk(s, values('next'));
      expect(offsets(await fetchNow(s, 'g2'))).toEqual([3]);
      expect(offsets(await fetchNow(s, 'g3'))).toEqual([3]);
      expect(offsets(await fetchNow(s, 'g1'))).toEqual([3]);
    });

    it('replay a range of dead letters, with purge', async () => {
      const s = uniqueName('replay-range');
      await t.store.createStation(s);
      await produceOk(s, values('a', 'b', 'c'));
      const ds = await fetchNow(s, 'g');
      await t.store.deadLetter(
        s,
        'g',
        ds.map((d) => d.deliveryId),
        'r',
      );
      const dls = await waitForDeadLetters(s, 3);
      expect(offsets(dls)).toEqual([1, 2, 3]);
      expect(dls.map((m) => m.headers[DLS_HEADERS.offset])).toEqual(['1', '2', '3']);

      expect(await t.store.replayDeadLetters(s, { fromOffset: 2, toOffset: 3 })).toEqual({ replayed: 2, purged: 0 });
      const again = await drain(s, 'g');
      expect(again.map((d) => asBuffer(d.value).toString())).toEqual(['b', 'c']);

      expect(await t.store.replayDeadLetters(s, { fromOffset: 1, toOffset: 1, purge: true })).toEqual({ replayed: 1, purged: 1 });
      expect((await drain(s, 'g')).map((d) => asBuffer(d.value).toString())).toEqual(['a']);
      const left = await dlsMessages(s);
      expect(offsets(left)).toEqual([2, 3]);
      expect((await t.store.getStation(dlsName(s))).messages).toBe(2);
    });

    it('purgeDeadLetters empties the dead-letter station; offsets are not reused', async () => {
      const s = uniqueName('purge');
      await t.store.createStation(s);
      await produceOk(s, values('a', 'b', 'c'));
      const ds = await fetchNow(s, 'g');
      await t.store.deadLetter(
        s,
        'g',
        ds.map((d) => d.deliveryId),
      );
      await waitForDeadLetters(s, 3);
      expect(await t.store.purgeDeadLetters(s)).toBe(3);
      expect(await dlsMessages(s)).toEqual([]);
      const info = await t.store.getStation(dlsName(s));
      expect(info.messages).toBe(0);
      expect(info.partitions[0]).toMatchObject({ firstOffset: 4, nextOffset: 4 });
      expect(await t.store.purgeDeadLetters(s)).toBe(0);

      await produceOk(s, values('d'));
      const [d] = await fetchNow(s, 'g');
      await t.store.deadLetter(s, 'g', [d!.deliveryId]);
      const [dl] = await waitForDeadLetters(s, 1);
      expect(dl!.offset).toBe(4);
    });

    it('purgeDeadLetters up to an offset drops only the oldest', async () => {
      const s = uniqueName('purge-to');
      await t.store.createStation(s);
      await produceOk(s, values('a', 'b', 'c'));
      const ds = await fetchNow(s, 'g');
      await t.store.deadLetter(
        s,
        'g',
        ds.map((d) => d.deliveryId),
      );
      await waitForDeadLetters(s, 3);
      const n = await t.store.purgeDeadLetters(s, 2);
      // "Up to" is read as inclusive or exclusive by an engine; either way the rest must match the count.
      expect([1, 2]).toContain(n);
      const left = await dlsMessages(s);
      expect(offsets(left)).toEqual(range(n + 1, 3));
      expect(left.map((m) => asBuffer(m.value).toString())).toEqual(['a', 'b', 'c'].slice(n));
    });
  });
}
