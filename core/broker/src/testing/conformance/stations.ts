/** The StationStore conformance suite: stations. */
import { describe, it, expect } from 'vitest';
import { MiB } from '@junction/protocol';
import { dlsName } from '../../contract.js';
import type { StationConfigInput, StationPatch } from '../../contract.js';
import type { Suite } from './suite.js';
import {
  uniqueName,
  bytes,
  ALL_BYTES,
  expectSameBytes,
  rejectsWithCode,
  offsets,
  originNames,
  expectDlsConsistent,
  first,
} from './util.js';

export function stationsSection(t: Suite): void {
  const { fetchNow, produceOk, values, readAll, dlsMessages } = t;
  describe('stations', () => {
    it('a fresh store lists no stations', async () => {
      expect(await t.store.listStations()).toEqual([]);
    });

    it('createStation applies the documented defaults and getStation returns the same', async () => {
      const name = uniqueName('defaults');
      const before = Date.now();
      const info = await t.store.createStation(name);
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
      expect(await t.store.getStation(name)).toEqual(info);
    });

    it('createStation keeps an explicit config', async () => {
      const name = uniqueName('explicit');
      const info = await t.store.createStation(name, {
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
      await t.store.createStation(s, { storage: 'memory' });
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
      await t.store.createStation(s, { partitions: 2 });
      await produceOk(s, values('x'));
      await rejectsWithCode(t.store.createStation(s, { partitions: 1 }), 'STATION_EXISTS');
      await rejectsWithCode(t.store.createStation(s), 'STATION_EXISTS');
      const info = await t.store.getStation(s);
      expect(info.config.partitions).toBe(2);
      expect(info.messages).toBe(1);
    });

    it('a bad config fails with CONFIG_INVALID naming each field, and creates nothing', async () => {
      const s = uniqueName('bad');
      const err = await rejectsWithCode(t.store.createStation(s, { partitions: 0, retention: { maxAgeMs: -1 } }), 'CONFIG_INVALID');
      const paths = (err.issues ?? []).map((i) => i.path);
      expect(paths).toContain('partitions');
      expect(paths).toContain('retention.maxAgeMs');

      const err2 = await rejectsWithCode(t.store.createStation(s, { deadLetter: { maxAckTimeMs: 5 } }), 'CONFIG_INVALID');
      expect((err2.issues ?? []).map((i) => i.path)).toContain('deadLetter.maxAckTimeMs');

      await rejectsWithCode(t.store.createStation(s, { colour: 'red' } as unknown as StationConfigInput), 'CONFIG_INVALID');
      await rejectsWithCode(t.store.createStation(s, { storage: 'tape' } as unknown as StationConfigInput), 'CONFIG_INVALID');
      // A name that is not one safe path segment is bad input too (the code is the contract's choice
      // between the two input-error codes).
      await rejectsWithCode(t.store.createStation('../escape'), ['CONFIG_INVALID', 'BODY_INVALID']);
      await rejectsWithCode(t.store.createStation(''), ['CONFIG_INVALID', 'BODY_INVALID']);

      await rejectsWithCode(t.store.getStation(s), 'STATION_NOT_FOUND');
      expect(await t.store.listStations()).toEqual([]);
    });

    it('get, list and delete', async () => {
      const a = uniqueName('a');
      const b = uniqueName('b');
      await t.store.createStation(a);
      await t.store.createStation(b, { partitions: 2 });
      await produceOk(a, values('1', '2'));
      const list = await t.store.listStations();
      expect(originNames(list)).toEqual([a, b].sort());
      expectDlsConsistent(list);
      const listed = (await t.store.listStations()).find((i) => i.name === a);
      expect(listed?.messages).toBe(2);

      await t.store.deleteStation(a);
      await rejectsWithCode(t.store.getStation(a), 'STATION_NOT_FOUND');
      await rejectsWithCode(t.store.produce(a, values('3')), 'STATION_NOT_FOUND');
      await rejectsWithCode(t.store.read(a, { partition: 0, limit: 10 }), 'STATION_NOT_FOUND');
      await rejectsWithCode(t.store.fetch(a, 'g', { maxMessages: 1, maxBytes: MiB, waitMs: 0 }), 'STATION_NOT_FOUND');
      await rejectsWithCode(t.store.deleteStation(a), 'STATION_NOT_FOUND');
      await rejectsWithCode(t.store.getStation(uniqueName('never')), 'STATION_NOT_FOUND');
      const afterDelete = await t.store.listStations();
      expect(originNames(afterDelete)).toEqual([b]);
      expectDlsConsistent(afterDelete);
      expect(afterDelete.some((i) => i.name === dlsName(a) || i.deadLetterOf === a)).toBe(false);
      await rejectsWithCode(t.store.getStation(dlsName(a)), 'STATION_NOT_FOUND');

      // The name is free again; the new station starts from scratch.
      await t.store.createStation(a);
      const info = await t.store.getStation(a);
      expect(info.messages).toBe(0);
      expect(info.partitions).toEqual([{ partition: 0, firstOffset: 1, nextOffset: 1, messages: 0, bytes: 0 }]);
      expect(info.groups).toEqual([]);
      expect(await readAll(a)).toEqual([]);
    });

    it('updateStation changes retention, dedupWindowMs, maxMessageBytes and deadLetter on a live station', async () => {
      const s = uniqueName('update');
      await t.store.createStation(s, { deadLetter: { maxAckTimeMs: 2_000 } });
      await produceOk(s, values('a', 'b'));
      const info = await t.store.updateStation(s, {
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
      expect(await t.store.getStation(s)).toEqual(info);
      expect(offsets(await readAll(s))).toEqual([1, 2]);

      await rejectsWithCode(t.store.updateStation(uniqueName('never'), { dedupWindowMs: 1 }), 'STATION_NOT_FOUND');
      const bad = await rejectsWithCode(t.store.updateStation(s, { dedupWindowMs: -1 }), 'CONFIG_INVALID');
      expect((bad.issues ?? []).map((i) => i.path)).toContain('dedupWindowMs');
      const bad2 = await rejectsWithCode(t.store.updateStation(s, { deadLetter: { maxAckTimeMs: 1 } }), 'CONFIG_INVALID');
      expect((bad2.issues ?? []).map((i) => i.path)).toContain('deadLetter.maxAckTimeMs');
      expect((await t.store.getStation(s)).config).toEqual(info.config);
    });

    it('partitions and storage cannot change: CONFIG_IMMUTABLE, config unchanged', async () => {
      const s = uniqueName('immutable');
      const created = await t.store.createStation(s, { partitions: 2 });
      await rejectsWithCode(t.store.updateStation(s, { partitions: 4 } as unknown as StationPatch), 'CONFIG_IMMUTABLE');
      await rejectsWithCode(t.store.updateStation(s, { storage: 'memory' } as unknown as StationPatch), 'CONFIG_IMMUTABLE');
      expect((await t.store.getStation(s)).config).toEqual(created.config);
    });

    it('names ending in .dls are reserved for dead-letter stations', async () => {
      const s = uniqueName('orders');
      await rejectsWithCode(t.store.createStation(`${s}.dls`), 'STATION_RESERVED');
      expect(await t.store.listStations()).toEqual([]);
      await t.store.createStation(s);
      await rejectsWithCode(t.store.createStation(dlsName(s)), 'STATION_RESERVED');
      await rejectsWithCode(t.store.createStation(`${uniqueName('other')}.dls`, { partitions: 2 }), 'STATION_RESERVED');
      expect((await t.store.listStations()).filter((i) => i.deadLetterOf === undefined).map((i) => i.name)).toEqual([s]);
    });

    it('the dead-letter station exists after the first dead letter, is listed and readable, and goes with its station', async () => {
      const s = uniqueName('withdls');
      await t.store.createStation(s);
      const dls = dlsName(s);
      // Before any dead letter the DLS may or may not exist yet, but get and list must agree.
      let existsEarly = true;
      try {
        const early = await t.store.getStation(dls);
        expect(early.deadLetterOf).toBe(s);
      } catch (err) {
        expect((err as { code?: unknown }).code).toBe('STATION_NOT_FOUND');
        existsEarly = false;
      }
      expect((await t.store.listStations()).some((i) => i.name === dls)).toBe(existsEarly);

      await produceOk(s, values('poison'));
      const [d] = await fetchNow(s, 'g');
      expect(await t.store.deadLetter(s, 'g', [d!.deliveryId], 'bad')).toEqual([{ deliveryId: d!.deliveryId, status: 'dead-lettered' }]);

      const info = await t.store.getStation(dls);
      expect(info.name).toBe(dls);
      expect(info.deadLetterOf).toBe(s);
      expect(info.messages).toBe(1);
      expect((await t.store.getStation(s)).deadLetterOf).toBeUndefined();
      const listed = await t.store.listStations();
      expect(listed.map((i) => i.name).sort()).toEqual([s, dls].sort());
      expect(listed.find((i) => i.name === dls)?.deadLetterOf).toBe(s);
      const [m] = await dlsMessages(s);
      expect(m).toMatchObject({ station: dls, partition: 0, offset: 1 });
      expectSameBytes(m!.value, bytes('poison'));

      await t.store.deleteStation(s);
      await rejectsWithCode(t.store.getStation(dls), 'STATION_NOT_FOUND');
      await rejectsWithCode(t.store.getStation(s), 'STATION_NOT_FOUND');
      expect(await t.store.listStations()).toEqual([]);
    });
  });
}
