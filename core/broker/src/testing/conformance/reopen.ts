/** The StationStore conformance suite: reopen. */
import { describe, it, expect } from 'vitest';
import { DLS_HEADERS } from '@junction/protocol';
import { dlsName } from '../../contract.js';
import type { Delivery, MessageInput } from '../../contract.js';
import type { Suite } from './suite.js';
import {
  uniqueName,
  sleep,
  bytes,
  ALL_BYTES,
  patterned,
  expectSameBytes,
  rejectsWithCode,
  eventually,
  offsets,
  stored,
  pk,
  originNames,
  expectDlsConsistent,
} from './util.js';

export function reopenSection(t: Suite): void {
  const { fetchNow, produceOk, values, readAll, dlsMessages, waitForDeadLetters, groupPartition, keysOnPartitions, reopen, slackMs } = t;
  // Engines that cannot reopen (no durable state) do not get these tests at all.
  if (t.reopenTarget)
    describe('reopen', () => {
      it('stations, config, messages, offsets, key routing and dedup ids survive', async () => {
        const s = uniqueName('durable');
        const gone = uniqueName('gone');
        await t.store.createStation(s, { partitions: 2, deadLetter: { maxDeliveries: 7 } });
        await t.store.createStation(gone);
        await t.store.updateStation(s, { retention: { maxMessages: 1_000 }, dedupWindowMs: 60_000 });
        const inputs: MessageInput[] = [
          { key: 'alpha', value: ALL_BYTES, headers: { u: 'ünï 🚉' }, msgId: 'id-1' },
          { key: 'beta', value: new Uint8Array(0), msgId: 'id-2' },
          { value: patterned(70_000, 5) },
          { key: 'alpha', value: bytes('second alpha') },
        ];
        const results = await produceOk(s, inputs);
        await t.store.deleteStation(gone);
        const before = await t.store.getStation(s);
        const readBefore = [...(await readAll(s, 0)), ...(await readAll(s, 1))];

        await reopen();

        const after = await t.store.getStation(s);
        expect(after.config).toEqual(before.config);
        expect(after.createdAt).toBe(before.createdAt);
        expect(
          after.partitions.map(({ partition, firstOffset, nextOffset, messages }) => ({ partition, firstOffset, nextOffset, messages })),
        ).toEqual(
          before.partitions.map(({ partition, firstOffset, nextOffset, messages }) => ({ partition, firstOffset, nextOffset, messages })),
        );
        const list = await t.store.listStations();
        expect(originNames(list)).toEqual([s]);
        expectDlsConsistent(list);
        await rejectsWithCode(t.store.getStation(gone), 'STATION_NOT_FOUND');
        await rejectsWithCode(t.store.getStation(dlsName(gone)), 'STATION_NOT_FOUND');

        const readAfter = [...(await readAll(s, 0)), ...(await readAll(s, 1))];
        expect(readAfter).toHaveLength(inputs.length);
        readAfter.forEach((m, i) => {
          const b = readBefore[i]!;
          expect({ p: m.partition, o: m.offset, t: m.timestamp, k: m.key, h: m.headers }).toEqual({
            p: b.partition,
            o: b.offset,
            t: b.timestamp,
            k: b.key,
            h: b.headers,
          });
          expectSameBytes(m.value, b.value, `value at ${pk(m)}`);
        });

        const alphaP = results[0]!.partition;
        const again = await t.store.produce(s, [
          { key: 'alpha', value: bytes('third alpha') },
          { value: bytes('x'), msgId: 'id-1' },
          { value: bytes('y'), msgId: 'id-2' },
        ]);
        const alphaNext = results.filter((r) => r.partition === alphaP).length + 1;
        expect(again[0]).toEqual(stored(alphaP, alphaNext));
        expect(again[1]).toEqual({ status: 'duplicate', ...results[0]! });
        expect(again[2]).toEqual({ status: 'duplicate', ...results[1]! });
      });

      it('group progress survives: acked stay acked, unacked come back, the cursor holds', async () => {
        const s = uniqueName('durable-group');
        await t.store.createStation(s);
        await t.store.createGroup(s, 'g', { maxAckTimeMs: 200, maxDeliveries: 9 });
        await produceOk(s, values('1', '2', '3', '4', '5', '6'));
        await t.store.createGroup(s, 'late', { start: { type: 'latest' } });
        const ds = await fetchNow(s, 'g', 4);
        expect(offsets(ds)).toEqual([1, 2, 3, 4]);
        expect(await t.store.ack(s, 'g', [ds[0]!.deliveryId, ds[1]!.deliveryId])).toEqual([
          { deliveryId: ds[0]!.deliveryId, status: 'acked' },
          { deliveryId: ds[1]!.deliveryId, status: 'acked' },
        ]);

        await reopen();

        expect((await t.store.listGroups(s)).map((g) => g.group).sort()).toEqual(['g', 'late']);
        expect(await t.store.getGroup(s, 'g')).toMatchObject({ maxAckTimeMs: 200, maxDeliveries: 9 });
        const got: Delivery[] = [];
        await eventually('offsets 3-6 delivered after reopen', 200 + slackMs + 1_000, async () => {
          const batch = await fetchNow(s, 'g');
          got.push(...batch);
          if (batch.length > 0)
            await t.store.ack(
              s,
              'g',
              batch.map((d) => d.deliveryId),
            );
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
        await t.store.createStation(s);
        await produceOk(s, [{ value: ALL_BYTES, headers: { h: 'x' } }, { value: bytes('ok') }]);
        const ds = await fetchNow(s, 'g');
        await t.store.deadLetter(s, 'g', [ds[0]!.deliveryId], 'why');
        await t.store.ack(s, 'g', [ds[1]!.deliveryId]);
        await waitForDeadLetters(s, 1);

        await reopen();

        expect((await t.store.getStation(dlsName(s))).deadLetterOf).toBe(s);
        const [dl] = await dlsMessages(s);
        expectSameBytes(dl!.value, ALL_BYTES);
        expect(dl!.headers).toMatchObject({ h: 'x', [DLS_HEADERS.reason]: 'why', [DLS_HEADERS.group]: 'g' });
        await sleep(100);
        expect(await fetchNow(s, 'g')).toEqual([]);
      });

      it('dead-lettered counts survive, per partition and in total, and keep counting', async () => {
        const s = uniqueName('durable-dl-counts');
        await t.store.createStation(s, { partitions: 3 });
        const [a, b] = await keysOnPartitions(s, 2);
        await t.store.createGroup(s, 'g', { start: { type: 'latest' } });
        await produceOk(s, [
          { key: a!.key, value: bytes('a1') },
          { key: b!.key, value: bytes('b1') },
          { key: a!.key, value: bytes('a2') },
          { key: a!.key, value: bytes('a3') },
        ]);
        const ds = await fetchNow(s, 'g');
        expect(ds).toHaveLength(4);
        const dead = ds.filter((d) => ['a1', 'b1', 'a3'].includes(Buffer.from(d.value).toString()));
        await t.store.deadLetter(
          s,
          'g',
          dead.map((d) => d.deliveryId),
          'why',
        );
        await t.store.ack(
          s,
          'g',
          ds.filter((d) => !dead.includes(d)).map((d) => d.deliveryId),
        );
        await waitForDeadLetters(s, 3);
        const expected = [0, 0, 0];
        expected[a!.partition] = 2;
        expected[b!.partition] = 1;
        const countsOf = async () => {
          const g = await t.store.getGroup(s, 'g');
          return { total: g.deadLettered, parts: [0, 1, 2].map((p) => groupPartition(g, p).deadLettered) };
        };
        await eventually('the counts before reopen', slackMs + 1_000, async () => ((await countsOf()).total === 3 ? true : undefined));
        expect(await countsOf()).toEqual({ total: 3, parts: expected });

        await reopen();

        expect(await countsOf()).toEqual({ total: 3, parts: expected });
        // The restored counts go on from where they were.
        await produceOk(s, [{ key: b!.key, value: bytes('b2') }]);
        const [d] = await fetchNow(s, 'g');
        expect(Buffer.from(d!.value).toString()).toBe('b2');
        await t.store.deadLetter(s, 'g', [d!.deliveryId], 'why');
        await waitForDeadLetters(s, 4);
        expected[b!.partition] = 2;
        await eventually('the counts after one more', slackMs + 1_000, async () => ((await countsOf()).total === 4 ? true : undefined));
        expect(await countsOf()).toEqual({ total: 4, parts: expected });
      });
    });
}
