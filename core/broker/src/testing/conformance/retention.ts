/** The StationStore conformance suite: retention and events. */
import { describe, it, expect } from 'vitest';
import type { StoreEvent } from '../../contract.js';
import type { Suite } from './suite.js';
import { RETENTION_WITHIN_MS, uniqueName, sleep, bytes, asBuffer, eventually, offsets, patterned, range } from './util.js';

export function retentionSection(t: Suite): void {
  const { fetchNow, drain, produceOk, values, readAll } = t;
  describe('retention', () => {
    it('maxMessages keeps the newest N; offsets do not change', async () => {
      const s = uniqueName('maxmsgs');
      await t.store.createStation(s, { retention: { maxMessages: 10 } });
      for (let b = 0; b < 5; b++)
        await produceOk(
          s,
          Array.from({ length: 10 }, (_, i) => ({ value: bytes(`m${b * 10 + i + 1}`) })),
        );
      const info = await eventually('retention to drop down to 10 messages', RETENTION_WITHIN_MS, async () => {
        const i = await t.store.getStation(s);
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

    it("a station's bytes follow retention at once, not at the next produce", async () => {
      const s = uniqueName('retbytes');
      await t.store.createStation(s);
      await produceOk(
        s,
        Array.from({ length: 200 }, (_, i) => ({ value: patterned(1000, i + 1) })),
      );
      const full = (await t.store.getStation(s)).bytes;
      expect(full).toBeGreaterThanOrEqual(200 * 1000);
      await t.store.updateStation(s, { retention: { maxMessages: 10 } });
      const info = await eventually('retention down to 10 messages', RETENTION_WITHIN_MS, async () => {
        const i = await t.store.getStation(s);
        return i.messages === 10 ? i : undefined;
      });
      // 10 messages of 1000 bytes plus framing, and at most a few KiB of index granularity.
      const trimmed = await eventually('bytes to follow', RETENTION_WITHIN_MS, async () => {
        const i = await t.store.getStation(s);
        return i.bytes < full / 4 ? i.bytes : undefined;
      });
      expect(trimmed).toBeGreaterThanOrEqual(10 * 1000);
      expect(trimmed).toBeLessThanOrEqual(10 * 1100 + 8192);
      expect(info.partitions[0]!.bytes).toBeLessThanOrEqual(full);
    });

    it('maxAgeMs set on a live station drops old messages', async () => {
      const s = uniqueName('maxage');
      await t.store.createStation(s);
      await produceOk(s, values('1', '2', '3', '4', '5'));
      await t.store.updateStation(s, { retention: { maxAgeMs: 300 } });
      const info = await eventually('age retention to empty the station', 300 + RETENTION_WITHIN_MS, async () => {
        const i = await t.store.getStation(s);
        return i.messages === 0 ? i : undefined;
      });
      expect(info.partitions[0]).toMatchObject({ firstOffset: 6, nextOffset: 6, messages: 0 });
      expect(await readAll(s)).toEqual([]);
      expect(await produceOk(s, values('6'))).toEqual([{ partition: 0, offset: 6 }]);
      expect(offsets(await readAll(s))).toEqual([6]);
    });

    it('ackBased keeps what any group has not acknowledged and drops what all have', async () => {
      const s = uniqueName('ackbased');
      await t.store.createStation(s, { retention: { ackBased: true } });
      await t.store.createGroup(s, 'g1');
      await t.store.createGroup(s, 'g2');
      await produceOk(s, values('1', '2', '3', '4', '5'));
      await drain(s, 'g1');
      const ds = await fetchNow(s, 'g2');
      await t.store.ack(
        s,
        'g2',
        ds.slice(0, 2).map((d) => d.deliveryId),
      );
      const info = await eventually('ack-based retention to drop offsets 1-2', RETENTION_WITHIN_MS, async () => {
        const i = await t.store.getStation(s);
        return i.partitions[0]!.firstOffset >= 3 ? i : undefined;
      });
      // Retention has run since g1 acked everything, and still keeps what g2 has not acked.
      expect(info.partitions[0]).toMatchObject({ firstOffset: 3, nextOffset: 6, messages: 3 });
      expect(offsets(await readAll(s))).toEqual([3, 4, 5]);

      await t.store.ack(
        s,
        'g2',
        ds.slice(2).map((d) => d.deliveryId),
      );
      const after = await eventually('ack-based retention to drop everything', RETENTION_WITHIN_MS, async () => {
        const i = await t.store.getStation(s);
        return i.messages === 0 ? i : undefined;
      });
      expect(after.partitions[0]).toMatchObject({ firstOffset: 6, nextOffset: 6, messages: 0 });
      expect(await readAll(s)).toEqual([]);
    });
  });

  describe('events', () => {
    it('onEvent reports produced messages until unsubscribed', async () => {
      const s = uniqueName('events');
      await t.store.createStation(s);
      const events: StoreEvent[] = [];
      const off = t.store.onEvent((e) => events.push(e));
      await produceOk(s, values('a', 'b'));
      const producedCount = () =>
        events.filter((e) => e.type === 'produced' && e.station === s).reduce((n, e) => n + (e as { messages: number }).messages, 0);
      await eventually('a produced event', 1_000, async () => (producedCount() >= 2 ? true : undefined));
      expect(producedCount()).toBe(2);
      off();
      await produceOk(s, values('c'));
      await sleep(50);
      expect(producedCount()).toBe(2);
    });
  });
}
