/**
 * The StationStore conformance suite: station identity and settlement — what a deliveryId may settle.
 * Only the delivery actually outstanding in the group's current epoch may be settled: never one of an
 * earlier incarnation of the station, never one handed out before a seek; an ack of a dead-lettered
 * message does not claim to have acked it.
 */
import { describe, it, expect } from 'vitest';
import type { StoreEvent } from '../../contract.js';
import type { Suite } from './suite.js';
import { asBuffer, eventually, offsets, rejectsWithCode, uniqueName } from './util.js';

export function identitySection(t: Suite): void {
  const { fetchNow, pollFetch, produceOk, values, waitForDeadLetters, slackMs } = t;

  describe('station identity and settlement', () => {
    it('a station has an id; deleting it and creating it again gives a new one', async () => {
      const s = uniqueName('ident');
      const a = await t.store.createStation(s);
      expect(typeof a.id).toBe('string');
      expect(a.id.length).toBeGreaterThan(0);
      expect((await t.store.getStation(s)).id).toBe(a.id);
      expect((await t.store.listStations()).find((i) => i.name === s)?.id).toBe(a.id);
      await t.store.deleteStation(s);
      const b = await t.store.createStation(s);
      expect(b.id).not.toBe(a.id);
    });

    it('deliveries of a deleted station settle nothing of the station created again under its name', async () => {
      const s = uniqueName('reborn');
      await t.store.createStation(s);
      await produceOk(s, values('old-1', 'old-2', 'old-3'));
      const old = await fetchNow(s, 'g');
      expect(offsets(old)).toEqual([1, 2, 3]);
      await t.store.deleteStation(s);
      await t.store.createStation(s);
      expect(await produceOk(s, values('new-1', 'new-2', 'new-3'))).toEqual([1, 2, 3].map((offset) => ({ partition: 0, offset })));
      const fresh = await fetchNow(s, 'g');
      expect(fresh.map((d) => asBuffer(d.value).toString())).toEqual(['new-1', 'new-2', 'new-3']);
      // A consumer of the old incarnation acks late: nothing of the new one may be settled by it.
      for (const verb of ['ack', 'nack', 'deadLetter'] as const) {
        const ids = old.map((d) => d.deliveryId);
        const out =
          verb === 'ack'
            ? await t.store.ack(s, 'g', ids)
            : verb === 'nack'
              ? await t.store.nack(s, 'g', ids)
              : await t.store.deadLetter(s, 'g', ids, 'late');
        for (const o of out) expect(['stale', 'unknown'], `${verb} of ${o.deliveryId}`).toContain(o.status);
      }
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ pending: 3, lag: 3, deadLettered: 0 });
      // The new consumer's own deliveries are still outstanding: its nack works and they come back.
      expect(
        (
          await t.store.nack(
            s,
            'g',
            fresh.map((d) => d.deliveryId),
          )
        ).map((o) => o.status),
      ).toEqual(['nacked', 'nacked', 'nacked']);
      const again = await pollFetch(s, 'g', slackMs);
      expect(again.map((d) => asBuffer(d.value).toString())).toEqual(['new-1', 'new-2', 'new-3']);
      expect(
        (
          await t.store.ack(
            s,
            'g',
            again.map((d) => d.deliveryId),
          )
        ).map((o) => o.status),
      ).toEqual(['acked', 'acked', 'acked']);
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ pending: 0, lag: 0 });
    });

    it('after a seek, ids handed out before it settle nothing', async () => {
      const s = uniqueName('seekepoch');
      await t.store.createStation(s);
      await produceOk(s, values('a', 'b'));
      const before = await fetchNow(s, 'g');
      await t.store.seek(s, 'g', { type: 'earliest' });
      const after = await fetchNow(s, 'g');
      expect(offsets(after)).toEqual([1, 2]);
      for (const d of after) expect(before.map((b) => b.deliveryId)).not.toContain(d.deliveryId);
      const late = await t.store.ack(
        s,
        'g',
        before.map((d) => d.deliveryId),
      );
      for (const o of late) expect(o.status).not.toBe('acked');
      const lateNack = await t.store.nack(
        s,
        'g',
        before.map((d) => d.deliveryId),
      );
      for (const o of lateNack) expect(o.status).not.toBe('nacked');
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ pending: 2, lag: 2 });
      expect(
        (
          await t.store.ack(
            s,
            'g',
            after.map((d) => d.deliveryId),
          )
        ).map((o) => o.status),
      ).toEqual(['acked', 'acked']);
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ pending: 0, lag: 0 });
    });

    it('settling a dead-lettered delivery: ack and nack answer stale, dead-letter again answers dead-lettered', async () => {
      const s = uniqueName('dlsettle');
      await t.store.createStation(s);
      await produceOk(s, values('poison'));
      const [d] = await fetchNow(s, 'g');
      expect(await t.store.deadLetter(s, 'g', [d!.deliveryId], 'bad')).toEqual([{ deliveryId: d!.deliveryId, status: 'dead-lettered' }]);
      await waitForDeadLetters(s, 1);
      expect(await t.store.ack(s, 'g', [d!.deliveryId])).toEqual([{ deliveryId: d!.deliveryId, status: 'stale' }]);
      expect(await t.store.nack(s, 'g', [d!.deliveryId])).toEqual([{ deliveryId: d!.deliveryId, status: 'stale' }]);
      expect(await t.store.deadLetter(s, 'g', [d!.deliveryId], 'again')).toEqual([{ deliveryId: d!.deliveryId, status: 'dead-lettered' }]);
      expect(await waitForDeadLetters(s, 1)).toHaveLength(1);
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ deadLettered: 1, pending: 0, lag: 0 });
    });

    it('an ack that arrives after the deadline dead-lettered the message answers stale', async () => {
      const s = uniqueName('dlrace');
      await t.store.createStation(s);
      await t.store.createGroup(s, 'g', { maxAckTimeMs: 100, maxDeliveries: 1 });
      await produceOk(s, values('slow'));
      const [d] = await fetchNow(s, 'g');
      await waitForDeadLetters(s, 1, 100 + slackMs + 2_000);
      await eventually('the group to count the dead letter', slackMs + 1_000, async () =>
        (await t.store.getGroup(s, 'g')).deadLettered === 1 ? true : undefined,
      );
      expect(await t.store.ack(s, 'g', [d!.deliveryId])).toEqual([{ deliveryId: d!.deliveryId, status: 'stale' }]);
      expect(await t.store.getGroup(s, 'g')).toMatchObject({ deadLettered: 1, pending: 0, lag: 0 });
    });

    it('a nack of an acked delivery answers acked; acks are idempotent', async () => {
      const s = uniqueName('nackacked');
      await t.store.createStation(s);
      await produceOk(s, values('x'));
      const [d] = await fetchNow(s, 'g');
      expect(await t.store.ack(s, 'g', [d!.deliveryId])).toEqual([{ deliveryId: d!.deliveryId, status: 'acked' }]);
      expect(await t.store.nack(s, 'g', [d!.deliveryId])).toEqual([{ deliveryId: d!.deliveryId, status: 'acked' }]);
      expect(await t.store.ack(s, 'g', [d!.deliveryId])).toEqual([{ deliveryId: d!.deliveryId, status: 'acked' }]);
      expect(await fetchNow(s, 'g')).toEqual([]);
    });

    it("a group without settings of its own follows changes of the station's deadLetter settings", async () => {
      const s = uniqueName('dlfollow');
      await t.store.createStation(s, { deadLetter: { maxDeliveries: 5, maxAckTimeMs: 30_000 } });
      await t.store.createGroup(s, 'plain');
      await t.store.createGroup(s, 'own', { maxDeliveries: 7 });
      await t.store.updateStation(s, { deadLetter: { maxDeliveries: 3, maxAckTimeMs: 150 } });
      expect(await t.store.getGroup(s, 'plain')).toMatchObject({ maxDeliveries: 3, maxAckTimeMs: 150 });
      expect(await t.store.getGroup(s, 'own')).toMatchObject({ maxDeliveries: 7, maxAckTimeMs: 150 });
      // The new deadline applies to deliveries made after the change.
      await produceOk(s, values('m'));
      const [d1] = await fetchNow(s, 'plain');
      // Back after the new 150 ms deadline, long before the old 30 s one. (A JetStream redelivery can land in
      // a pull request that expired meanwhile and count as a delivery: on a busy machine it may be the third.)
      const [d2] = await pollFetch(s, 'plain', 150 + slackMs);
      expect(d1!.deliveryCount).toBe(1);
      expect(d2!.deliveryCount).toBeGreaterThanOrEqual(2);
      expect(d2!.offset).toBe(d1!.offset);
    });

    it('a seek or a start past the end of a partition is refused with OFFSET_OUT_OF_RANGE', async () => {
      const s = uniqueName('seekpast');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2'));
      await t.store.createGroup(s, 'g');
      const err = await rejectsWithCode(t.store.seek(s, 'g', { type: 'offset', offset: 10 }), 'OFFSET_OUT_OF_RANGE');
      expect(err.issues?.[0]?.path).toBe('offset');
      await rejectsWithCode(t.store.createGroup(s, 'h', { start: { type: 'offset', offset: 4 } }), 'OFFSET_OUT_OF_RANGE');
      // The next offset itself (the end) is a valid position: the group waits for the next message.
      expect((await t.store.seek(s, 'g', { type: 'offset', offset: 3 })).partitions[0]).toMatchObject({ nextOffset: 3, lag: 0 });
      await produceOk(s, values('3'));
      expect(offsets(await fetchNow(s, 'g'))).toEqual([3]);
    });

    it("retention that removes what a group has not settled is counted in the group's info and reported", async () => {
      const s = uniqueName('retlost');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3', '4', '5', '6', '7', '8', '9', '10'));
      await t.store.createGroup(s, 'g');
      await t.store.createGroup(s, 'idle');
      const ds = await fetchNow(s, 'g', 4);
      await t.store.ack(s, 'g', [ds[0]!.deliveryId, ds[2]!.deliveryId]);
      const events: StoreEvent[] = [];
      const off = t.store.onEvent((e) => events.push(e));
      await t.store.updateStation(s, { retention: { maxMessages: 3 } });
      await eventually('retention down to 3 messages', 5_000, async () =>
        (await t.store.getStation(s)).partitions[0]!.firstOffset === 8 ? true : undefined,
      );
      // g: offsets 1-7 gone; it had acked 1 and 3, so 2 and 4 (in flight) and 5-7 (never delivered) were lost.
      const g = await eventually('the loss in the group info', 5_000, async () => {
        const i = await t.store.getGroup(s, 'g');
        return i.lostToRetention === 5 ? i : undefined;
      });
      expect(g).toMatchObject({ lostToRetention: 5, pending: 0, lag: 3 });
      expect(g.partitions[0]).toMatchObject({ lostToRetention: 5, ackFloor: 8, nextOffset: 8 });
      expect(await t.store.getGroup(s, 'idle')).toMatchObject({ lostToRetention: 7, lag: 3 });
      const lostOf = (group: string) =>
        events.reduce((n, e) => n + (e.type === 'retention-lost' && e.station === s && e.group === group ? e.messages : 0), 0);
      await eventually('retention-lost events', 5_000, async () => (lostOf('g') === 5 && lostOf('idle') === 7 ? true : undefined));
      off();
      // A late ack of a delivery retention removed settles nothing and breaks nothing.
      const late = await t.store.ack(s, 'g', [ds[1]!.deliveryId]);
      expect(['acked', 'stale']).toContain(late[0]!.status);
      expect(offsets(await fetchNow(s, 'g'))).toEqual([8, 9, 10]);
    });
  });
}
