/** The StationStore conformance suite: consumer groups. */
import { describe, it, expect } from 'vitest';
import { MiB, deliveryId as formatDeliveryId } from '@junction/protocol';
import type { Delivery, FetchOptions, MessageInput } from '../../contract.js';
import type { Suite } from './suite.js';
import {
  TIMER_TOLERANCE_MS,
  uniqueName,
  sleep,
  bytes,
  ALL_BYTES,
  expectSameBytes,
  rejectsWithCode,
  offsets,
  range,
  stored,
  pk,
  first,
  eventually,
} from './util.js';

export function groupsSection(t: Suite): void {
  const { fetchNow, drain, pollFetch, produceOk, values, groupPartition, slackMs } = t;
  describe('consumer groups', () => {
    it('the first fetch creates the group at the earliest offset with the station defaults', async () => {
      const s = uniqueName('autogroup');
      await t.store.createStation(s, { deadLetter: { maxDeliveries: 4, maxAckTimeMs: 1_000 } });
      const inputs: MessageInput[] = [
        { value: bytes('a'), key: 'k', headers: { h: '1' } },
        { value: ALL_BYTES },
        { value: new Uint8Array(0) },
      ];
      await produceOk(s, inputs);
      const ds = await fetchNow(s, 'g');
      expect(offsets(ds)).toEqual([1, 2, 3]);
      ds.forEach((d, i) => {
        expect(d.station).toBe(s);
        expect(d.partition).toBe(0);
        expect(d.deliveryCount).toBe(1);
        expect(typeof d.deliveryId).toBe('string');
        expect(d.key).toBe(inputs[i]!.key);
        expect(d.headers).toEqual(inputs[i]!.headers ?? {});
        expectSameBytes(d.value, inputs[i]!.value);
      });
      expect(new Set(ds.map((d) => d.deliveryId)).size).toBe(ds.length);
      expect((await t.store.listGroups(s)).map((g) => g.group)).toEqual(['g']);
      expect((await t.store.getStation(s)).groups).toEqual(['g']);
      const info = await t.store.getGroup(s, 'g');
      expect(info).toMatchObject({ station: s, group: 'g', maxAckTimeMs: 1_000, maxDeliveries: 4, pending: 3, lag: 3 });
    });

    it('createGroup takes its own ack deadline and max deliveries', async () => {
      const s = uniqueName('groupopts');
      await t.store.createStation(s);
      const before = Date.now();
      const info = await t.store.createGroup(s, 'g', { maxAckTimeMs: 150, maxDeliveries: 3 });
      expect(info).toMatchObject({ station: s, group: 'g', maxAckTimeMs: 150, maxDeliveries: 3, lag: 0, pending: 0, deadLettered: 0 });
      expect(info.createdAt).toBeGreaterThanOrEqual(before - 1_000);
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ maxAckTimeMs: 150, maxDeliveries: 3 });
      expect(await t.store.createGroup(s, 'd')).toMatchObject({ maxAckTimeMs: 30_000, maxDeliveries: 5 });
      expect((await t.store.listGroups(s)).map((g) => g.group).sort()).toEqual(['d', 'g']);
    });

    it('createGroup twice fails with GROUP_EXISTS; unknown station or group fail with their codes', async () => {
      const s = uniqueName('groupexists');
      await t.store.createStation(s);
      await t.store.createGroup(s, 'g');
      await rejectsWithCode(t.store.createGroup(s, 'g'), 'GROUP_EXISTS');
      await rejectsWithCode(t.store.createGroup(s, 'g', { start: { type: 'latest' } }), 'GROUP_EXISTS');
      await rejectsWithCode(t.store.createGroup(uniqueName('nowhere'), 'g'), 'STATION_NOT_FOUND');
      await rejectsWithCode(t.store.getGroup(s, 'nope'), 'GROUP_NOT_FOUND');
      await rejectsWithCode(t.store.getGroup(uniqueName('nowhere'), 'g'), 'STATION_NOT_FOUND');
    });

    it('start latest skips what is stored', async () => {
      const s = uniqueName('latest');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3'));
      const info = await t.store.createGroup(s, 'g', { start: { type: 'latest' } });
      expect(info.lag).toBe(0);
      expect(groupPartition(info)).toMatchObject({ nextOffset: 4, lag: 0, pending: 0 });
      expect(await fetchNow(s, 'g')).toEqual([]);
      await produceOk(s, values('4', '5'));
      expect(offsets(await fetchNow(s, 'g'))).toEqual([4, 5]);
    });

    it('start at an offset', async () => {
      const s = uniqueName('startoffset');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3', '4', '5'));
      const info = await t.store.createGroup(s, 'g', { start: { type: 'offset', offset: 3 } });
      expect(groupPartition(info).nextOffset).toBe(3);
      expect(info.lag).toBe(3);
      expect(offsets(await fetchNow(s, 'g'))).toEqual([3, 4, 5]);
    });

    it('start at a timestamp', async () => {
      const s = uniqueName('startts');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3'));
      await sleep(30);
      const ts = Date.now();
      await sleep(30);
      await produceOk(s, values('4', '5'));
      await t.store.createGroup(s, 'g', { start: { type: 'timestamp', timestamp: ts } });
      expect(offsets(await fetchNow(s, 'g'))).toEqual([4, 5]);
      await t.store.createGroup(s, 'future', { start: { type: 'timestamp', timestamp: Date.now() + 60_000 } });
      expect(await fetchNow(s, 'future')).toEqual([]);
      await t.store.createGroup(s, 'past', { start: { type: 'timestamp', timestamp: 0 } });
      expect(offsets(await fetchNow(s, 'past'))).toEqual([1, 2, 3, 4, 5]);
    });

    it('each message goes to one member: concurrent fetchers of one group get disjoint sets whose union is everything', async () => {
      const s = uniqueName('members');
      await t.store.createStation(s, { partitions: 2 });
      const all = await produceOk(
        s,
        Array.from({ length: 40 }, (_, i) => ({ value: bytes(`m${i}`) })),
      );
      await t.store.createGroup(s, 'g');
      const member = async (): Promise<Delivery[]> => {
        const got: Delivery[] = [];
        for (;;) {
          const batch = await t.store.fetch(s, 'g', { maxMessages: 3, maxBytes: MiB, waitMs: 0 });
          if (batch.length === 0) return got;
          got.push(...batch);
          await t.store.ack(
            s,
            'g',
            batch.map((d) => d.deliveryId),
          );
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
      await t.store.createStation(s);
      await produceOk(
        s,
        Array.from({ length: 20 }, (_, i) => ({ value: bytes(`m${i}`) })),
      );
      await t.store.createGroup(s, 'g');
      const opts: FetchOptions = { maxMessages: 10, maxBytes: MiB, waitMs: 0 };
      const [a, b] = await Promise.all([t.store.fetch(s, 'g', opts), t.store.fetch(s, 'g', opts)]);
      expect(a).toHaveLength(10);
      expect(b).toHaveLength(10);
      expect([...offsets(a), ...offsets(b)].sort((x, y) => x - y)).toEqual(range(1, 20));
      expect(await fetchNow(s, 'g')).toEqual([]);
    });

    it('every group gets every message', async () => {
      const s = uniqueName('fanout');
      await t.store.createStation(s, { partitions: 3 });
      const all = (
        await produceOk(
          s,
          Array.from({ length: 30 }, (_, i) => ({ value: bytes(`m${i}`) })),
        )
      )
        .map(pk)
        .sort();
      // Three groups come into being by their first fetch, concurrently.
      const got = await Promise.all(['g1', 'g2', 'g3'].map((g) => drain(s, g, { batch: 4 })));
      for (const ds of got) expect(ds.map(pk).sort()).toEqual(all);
      expect((await t.store.getStation(s)).groups.slice().sort()).toEqual(['g1', 'g2', 'g3']);
    });

    it('order holds per partition within a group', async () => {
      const s = uniqueName('order');
      await t.store.createStation(s, { partitions: 3 });
      const results = await produceOk(
        s,
        Array.from({ length: 60 }, (_, i) => ({ key: `k${i % 7}`, value: bytes(`m${i}`) })),
      );
      const ds = await drain(s, 'g', { batch: 7 });
      for (let p = 0; p < 3; p++) {
        const n = results.filter((r) => r.partition === p).length;
        expect(offsets(ds.filter((d) => d.partition === p)), `partition ${p}`).toEqual(range(1, n));
      }
      expect(ds).toHaveLength(60);
    });

    it('redeliveries come first, then new messages in offset order', async () => {
      const s = uniqueName('redelivery-first');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3', '4', '5'));
      const first2 = await fetchNow(s, 'g', 2);
      expect(offsets(first2)).toEqual([1, 2]);
      expect(await t.store.nack(s, 'g', [first2[0]!.deliveryId])).toEqual([{ deliveryId: first2[0]!.deliveryId, status: 'nacked' }]);
      const next = await fetchNow(s, 'g');
      expect(offsets(next)).toEqual([1, 3, 4, 5]);
      expect(next.map((d) => d.deliveryCount)).toEqual([2, 1, 1, 1]);
    });

    it('an acked message is never delivered again; unacked ones come back after the deadline', async () => {
      const s = uniqueName('ack');
      await t.store.createStation(s);
      await t.store.createGroup(s, 'g', { maxAckTimeMs: 150 });
      await produceOk(s, values('1', '2', '3', '4', '5'));
      const ds = await fetchNow(s, 'g');
      expect(offsets(ds)).toEqual([1, 2, 3, 4, 5]);
      const ids = ds.slice(0, 3).map((d) => d.deliveryId);
      expect(await t.store.ack(s, 'g', ids)).toEqual(ids.map((deliveryId) => ({ deliveryId, status: 'acked' })));
      const again = await pollFetch(s, 'g', 150 + slackMs);
      const rest = again.length < 2 ? [...again, ...(await pollFetch(s, 'g', 150 + slackMs))] : again;
      expect(offsets(rest)).toEqual([4, 5]);
      expect(rest.map((d) => d.deliveryCount)).toEqual([2, 2]);
      await t.store.ack(
        s,
        'g',
        rest.map((d) => d.deliveryId),
      );
      await sleep(150 * 2 + 100);
      expect(await fetchNow(s, 'g')).toEqual([]);
      const info = await t.store.getGroup(s, 'g');
      expect(info).toMatchObject({ lag: 0, pending: 0 });
    });

    it('past the ack deadline a delivery comes back with deliveryCount 2 and a new deliveryId, not before', async () => {
      const s = uniqueName('deadline');
      await t.store.createStation(s);
      await t.store.createGroup(s, 'g', { maxAckTimeMs: 200 });
      await produceOk(s, [{ value: ALL_BYTES, headers: { h: 'v' } }]);
      const [d1] = await fetchNow(s, 'g');
      const t0 = performance.now();
      expect(d1).toMatchObject({ offset: 1, deliveryCount: 1 });
      expect(await fetchNow(s, 'g')).toEqual([]);
      const [d2, ...more] = await pollFetch(s, 'g', 200 + slackMs);
      const elapsed = performance.now() - t0;
      expect(more).toEqual([]);
      expect(elapsed).toBeGreaterThanOrEqual(200 - TIMER_TOLERANCE_MS);
      expect(d2).toMatchObject({ offset: 1, partition: 0, deliveryCount: 2, headers: { h: 'v' } });
      expect(d2!.deliveryId).not.toBe(d1!.deliveryId);
      expectSameBytes(d2!.value, ALL_BYTES);
      // The contract leaves open whether a late ack of the first attempt settles the message; either
      // way the answers must agree with what happens: the message ends up acked exactly once.
      const [late] = await t.store.ack(s, 'g', [d1!.deliveryId]);
      expect(['acked', 'stale', 'unknown']).toContain(late!.status);
      const [current] = await t.store.ack(s, 'g', [d2!.deliveryId]);
      if (late!.status !== 'acked') expect(current!.status).toBe('acked');
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ lag: 0, pending: 0 });
      await sleep(200 + 100);
      expect(await fetchNow(s, 'g')).toEqual([]);
    });

    it('nack makes a delivery available again at once', async () => {
      const s = uniqueName('nack');
      await t.store.createStation(s);
      await produceOk(s, values('x'));
      const [d1] = await fetchNow(s, 'g');
      expect(await t.store.nack(s, 'g', [d1!.deliveryId])).toEqual([{ deliveryId: d1!.deliveryId, status: 'nacked' }]);
      const [d2] = await fetchNow(s, 'g');
      expect(d2).toMatchObject({ offset: 1, deliveryCount: 2 });
      expect(d2!.deliveryId).not.toBe(d1!.deliveryId);
    });

    it('nack with a delay holds the message back for the delay', async () => {
      const s = uniqueName('nackdelay');
      await t.store.createStation(s);
      await produceOk(s, values('x'));
      const [d1] = await fetchNow(s, 'g');
      const t0 = performance.now();
      expect(await t.store.nack(s, 'g', [d1!.deliveryId], 300)).toEqual([{ deliveryId: d1!.deliveryId, status: 'nacked' }]);
      // Held back = never delivered by a fetch that ended before the delay ran out. On a loaded machine
      // these calls can take longer than the delay, so the test checks the time it measured, not the
      // time it planned: a fetch that ends after the delay may deliver.
      const fetchHeld = async (): Promise<Delivery[]> => {
        const ds = await fetchNow(s, 'g');
        if (ds.length > 0) expect(performance.now() - t0).toBeGreaterThanOrEqual(300 - TIMER_TOLERANCE_MS);
        return ds;
      };
      let got = await fetchHeld();
      if (got.length === 0) {
        const p = groupPartition(await t.store.getGroup(s, 'g'));
        // Answered before the delay ran out: the message waits in the redelivery queue.
        if (performance.now() - t0 < 300 - TIMER_TOLERANCE_MS) expect(p).toMatchObject({ pending: 0, redeliveryQueued: 1, lag: 1 });
        await sleep(150);
        got = await fetchHeld();
      }
      const [d2] = got.length > 0 ? got : await pollFetch(s, 'g', 300 + slackMs);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(300 - TIMER_TOLERANCE_MS);
      expect(d2).toMatchObject({ offset: 1, deliveryCount: 2 });
    });

    it('settling an unknown deliveryId answers unknown, in order with the others', async () => {
      const s = uniqueName('unknown');
      await t.store.createStation(s);
      await produceOk(s, values('x', 'y'));
      const ds = await fetchNow(s, 'g');
      const bogus = formatDeliveryId(0, 999, 1);
      expect(await t.store.ack(s, 'g', [bogus])).toEqual([{ deliveryId: bogus, status: 'unknown' }]);
      expect(await t.store.nack(s, 'g', [bogus])).toEqual([{ deliveryId: bogus, status: 'unknown' }]);
      expect(await t.store.deadLetter(s, 'g', [bogus], 'r')).toEqual([{ deliveryId: bogus, status: 'unknown' }]);
      expect(await t.store.ack(s, 'g', [ds[0]!.deliveryId, bogus, ds[1]!.deliveryId])).toEqual([
        { deliveryId: ds[0]!.deliveryId, status: 'acked' },
        { deliveryId: bogus, status: 'unknown' },
        { deliveryId: ds[1]!.deliveryId, status: 'acked' },
      ]);
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ lag: 0, pending: 0 });
    });

    it('getGroup reports exact lag, pending, ackFloor and redeliveryQueued', async () => {
      const s = uniqueName('lag');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3', '4', '5'));
      let info = await t.store.createGroup(s, 'g');
      expect(info).toMatchObject({ lag: 5, pending: 0, deadLettered: 0 });
      expect(info.partitions).toEqual([
        { partition: 0, nextOffset: 1, ackFloor: 1, lag: 5, pending: 0, redeliveryQueued: 0, lostToRetention: 0, deadLettered: 0 },
      ]);

      const ds = await fetchNow(s, 'g', 3);
      expect(offsets(ds)).toEqual([1, 2, 3]);
      info = await t.store.getGroup(s, 'g');
      expect(info.partitions).toEqual([
        { partition: 0, nextOffset: 4, ackFloor: 1, lag: 5, pending: 3, redeliveryQueued: 0, lostToRetention: 0, deadLettered: 0 },
      ]);
      expect(info).toMatchObject({ lag: 5, pending: 3 });

      // An ack above a gap does not move the floor.
      await t.store.ack(s, 'g', [ds[1]!.deliveryId]);
      expect(groupPartition(await t.store.getGroup(s, 'g'))).toEqual({
        partition: 0,
        nextOffset: 4,
        ackFloor: 1,
        lag: 4,
        pending: 2,
        redeliveryQueued: 0,
        lostToRetention: 0,
        deadLettered: 0,
      });
      await t.store.ack(s, 'g', [ds[0]!.deliveryId]);
      expect(groupPartition(await t.store.getGroup(s, 'g'))).toEqual({
        partition: 0,
        nextOffset: 4,
        ackFloor: 3,
        lag: 3,
        pending: 1,
        redeliveryQueued: 0,
        lostToRetention: 0,
        deadLettered: 0,
      });

      await t.store.nack(s, 'g', [ds[2]!.deliveryId], 60_000);
      expect(groupPartition(await t.store.getGroup(s, 'g'))).toEqual({
        partition: 0,
        nextOffset: 4,
        ackFloor: 3,
        lag: 3,
        pending: 0,
        redeliveryQueued: 1,
        lostToRetention: 0,
        deadLettered: 0,
      });

      await produceOk(s, values('6', '7'));
      info = await t.store.getGroup(s, 'g');
      expect(info).toMatchObject({ lag: 5, pending: 0 });
      const rest = await fetchNow(s, 'g');
      expect(offsets(rest)).toEqual([4, 5, 6, 7]);
      expect(groupPartition(await t.store.getGroup(s, 'g'))).toEqual({
        partition: 0,
        nextOffset: 8,
        ackFloor: 3,
        lag: 5,
        pending: 4,
        redeliveryQueued: 1,
        lostToRetention: 0,
        deadLettered: 0,
      });
      await t.store.ack(
        s,
        'g',
        rest.map((d) => d.deliveryId),
      );
      expect(groupPartition(await t.store.getGroup(s, 'g'))).toEqual({
        partition: 0,
        nextOffset: 8,
        ackFloor: 3,
        lag: 1,
        pending: 0,
        redeliveryQueued: 1,
        lostToRetention: 0,
        deadLettered: 0,
      });
    });

    it('oldestUnackedAgeSeconds: the age of the oldest unsettled message, delivered or not; null once all is settled', async () => {
      const s = uniqueName('age');
      await t.store.createStation(s);
      expect((await t.store.createGroup(s, 'g')).oldestUnackedAgeSeconds).toBeNull();
      await produceOk(s, values('1', '2'));
      const [m1, m2] = await t.store.read(s, { partition: 0, fromOffset: 1, limit: 2 });
      const ageOf = async (at: number): Promise<void> => {
        const before = Date.now();
        const age = (await t.store.getGroup(s, 'g')).oldestUnackedAgeSeconds;
        const after = Date.now();
        expect(age).not.toBeNull();
        // Now minus that message's produce time, read between `before` and `after`.
        expect(age! * 1000).toBeGreaterThanOrEqual(before - at - 1);
        expect(age! * 1000).toBeLessThanOrEqual(after - at + 1);
      };
      const ds = await fetchNow(s, 'g', 1);
      expect(offsets(ds)).toEqual([1]);
      await ageOf(m1!.timestamp);
      // It grows while the delivery stays unacked.
      const firstAge = (await t.store.getGroup(s, 'g')).oldestUnackedAgeSeconds!;
      await eventually('the age to grow', 10_000, async () =>
        (await t.store.getGroup(s, 'g')).oldestUnackedAgeSeconds! > firstAge ? true : undefined,
      );
      expect((await t.store.listGroups(s))[0]!.oldestUnackedAgeSeconds).toBeGreaterThan(firstAge);
      // Acked: the oldest unsettled is message 2, never delivered.
      await t.store.ack(s, 'g', [ds[0]!.deliveryId]);
      await ageOf(m2!.timestamp);
      await drain(s, 'g');
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ lag: 0, oldestUnackedAgeSeconds: null });
    });

    it('group lag sums the partitions', async () => {
      const s = uniqueName('lagparts');
      await t.store.createStation(s, { partitions: 2 });
      const results = await produceOk(
        s,
        Array.from({ length: 9 }, (_, i) => ({ value: bytes(`m${i}`) })),
      );
      const info = await t.store.createGroup(s, 'g');
      expect(info.lag).toBe(9);
      for (const p of [0, 1]) expect(groupPartition(info, p).lag).toBe(results.filter((r) => r.partition === p).length);
      await drain(s, 'g');
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ lag: 0, pending: 0 });
    });

    it('seek to earliest, an offset, a timestamp and latest delivers exactly the expected messages', async () => {
      const s = uniqueName('seek');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3'));
      await sleep(30);
      const ts = Date.now();
      await sleep(30);
      await produceOk(s, values('4', '5'));
      expect(offsets(await drain(s, 'g'))).toEqual([1, 2, 3, 4, 5]);

      let info = await t.store.seek(s, 'g', { type: 'earliest' });
      expect(groupPartition(info)).toMatchObject({ nextOffset: 1, pending: 0 });
      expect(info.lag).toBe(5);
      expect(offsets(await drain(s, 'g'))).toEqual([1, 2, 3, 4, 5]);

      info = await t.store.seek(s, 'g', { type: 'offset', offset: 3 });
      expect(groupPartition(info).nextOffset).toBe(3);
      expect(offsets(await drain(s, 'g'))).toEqual([3, 4, 5]);

      await t.store.seek(s, 'g', { type: 'timestamp', timestamp: ts });
      expect(offsets(await drain(s, 'g'))).toEqual([4, 5]);

      info = await t.store.seek(s, 'g', { type: 'latest' });
      expect(groupPartition(info)).toMatchObject({ nextOffset: 6, lag: 0 });
      expect(await drain(s, 'g')).toEqual([]);
      await produceOk(s, values('6'));
      const [d6] = await fetchNow(s, 'g');
      expect(d6?.offset).toBe(6);

      // Seeking forgets pending deliveries: 6 is pending, then the cursor goes back to 2.
      info = await t.store.seek(s, 'g', { type: 'offset', offset: 2 });
      expect(groupPartition(info)).toMatchObject({ nextOffset: 2, pending: 0 });
      expect(offsets(await drain(s, 'g'))).toEqual([2, 3, 4, 5, 6]);
      expect(await fetchNow(s, 'g')).toEqual([]);
      await rejectsWithCode(t.store.seek(s, 'nope', { type: 'earliest' }), 'GROUP_NOT_FOUND');
    });

    it('deleteGroup removes the group; a later fetch starts a new one at earliest', async () => {
      const s = uniqueName('delgroup');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3'));
      expect(offsets(await drain(s, 'g'))).toEqual([1, 2, 3]);
      await t.store.createGroup(s, 'keep');
      await t.store.deleteGroup(s, 'g');
      await rejectsWithCode(t.store.getGroup(s, 'g'), 'GROUP_NOT_FOUND');
      await rejectsWithCode(t.store.deleteGroup(s, 'g'), 'GROUP_NOT_FOUND');
      expect((await t.store.listGroups(s)).map((g) => g.group)).toEqual(['keep']);
      expect((await t.store.getStation(s)).groups).toEqual(['keep']);
      expect(offsets(await fetchNow(s, 'g'))).toEqual([1, 2, 3]);
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ pending: 3, deadLettered: 0 });
    });
  });
}
