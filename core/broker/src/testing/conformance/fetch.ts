/** The StationStore conformance suite: long poll and fetch limits. */
import { describe, it, expect } from 'vitest';
import { MiB } from '@junction/protocol';
import type { Suite } from './suite.js';
import { TIMER_TOLERANCE_MS, uniqueName, sleep, bytes, patterned, expectSameBytes, rejectsWithCode, offsets } from './util.js';

export function fetchSection(t: Suite): void {
  const { fetchNow, produceOk, values } = t;
  describe('fetch: long poll and limits', () => {
    it('a waiting fetch answers soon after a produce', async () => {
      const s = uniqueName('longpoll');
      await t.store.createStation(s, { partitions: 3 });
      await t.store.createGroup(s, 'g');
      const producedAt = new Promise<number>((resolve, reject) => {
        setTimeout(() => {
          const at = performance.now();
          t.store.produce(s, values('wake up')).then(() => resolve(at), reject);
        }, 200);
      });
      const t0 = performance.now();
      const ds = await t.store.fetch(s, 'g', { maxMessages: 10, maxBytes: MiB, waitMs: 2_000 });
      const elapsed = performance.now() - t0;
      const produced = (await producedAt) - t0;
      expect(ds).toHaveLength(1);
      expectSameBytes(ds[0]!.value, bytes('wake up'));
      expect(elapsed).toBeGreaterThanOrEqual(produced - TIMER_TOLERANCE_MS);
      expect(elapsed).toBeLessThan(1_000);
    });

    it('a waiting fetch with nothing produced answers empty after waitMs', async () => {
      const s = uniqueName('emptypoll');
      await t.store.createStation(s);
      const t0 = performance.now();
      const ds = await t.store.fetch(s, 'g', { maxMessages: 10, maxBytes: MiB, waitMs: 300 });
      const elapsed = performance.now() - t0;
      expect(ds).toEqual([]);
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(2_000);
    });

    it('an AbortSignal ends the wait early', async () => {
      const s = uniqueName('abort');
      await t.store.createStation(s);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      const t0 = performance.now();
      // Ending with [] or rejecting (AbortError) are both an early end: well before the 20 s wait (the bound
      // leaves a loaded machine room; an abort that is not heard waits the whole 20 s).
      const outcome = await t.store.fetch(s, 'g', { maxMessages: 10, maxBytes: MiB, waitMs: 20_000, signal: ac.signal }).then(
        (ds) => ds,
        () => 'rejected' as const,
      );
      const elapsed = performance.now() - t0;
      if (outcome !== 'rejected') expect(outcome).toEqual([]);
      expect(elapsed).toBeGreaterThanOrEqual(100 - TIMER_TOLERANCE_MS);
      expect(elapsed).toBeLessThan(5_000);
      // The store keeps serving.
      await produceOk(s, values('x'));
      expect(offsets(await fetchNow(s, 'g'))).toEqual([1]);
    });

    it('close answers pending long polls empty and is idempotent', async () => {
      const s = uniqueName('closepoll');
      await t.store.createStation(s);
      const t0 = performance.now();
      const pending = t.store.fetch(s, 'g', { maxMessages: 10, maxBytes: MiB, waitMs: 5_000 });
      await sleep(100);
      await t.store.close();
      expect(await pending).toEqual([]);
      expect(performance.now() - t0).toBeLessThan(1_500);
      await t.store.close();
      await rejectsWithCode(t.store.produce(s, values('late')), 'STORE_CLOSED');
    });

    it('maxMessages and maxBytes are honoured; at least one message even if larger than maxBytes', async () => {
      const s = uniqueName('limits');
      await t.store.createStation(s);
      await produceOk(
        s,
        Array.from({ length: 10 }, (_, i) => ({ value: patterned(1_000, i + 1) })),
      );
      expect(offsets(await t.store.fetch(s, 'g', { maxMessages: 3, maxBytes: MiB, waitMs: 0 }))).toEqual([1, 2, 3]);
      const byBytes = await t.store.fetch(s, 'g', { maxMessages: 100, maxBytes: 2_500, waitMs: 0 });
      expect(offsets(byBytes)).toEqual([4, 5]);
      expectSameBytes(byBytes[1]!.value, patterned(1_000, 5));
      const one = await t.store.fetch(s, 'g', { maxMessages: 100, maxBytes: 1, waitMs: 0 });
      expect(offsets(one)).toEqual([6]);
      expectSameBytes(one[0]!.value, patterned(1_000, 6));

      const big = uniqueName('big');
      await t.store.createStation(big);
      await produceOk(big, [{ value: patterned(100_000, 42) }, { value: bytes('small') }]);
      const [d] = await t.store.fetch(big, 'g', { maxMessages: 10, maxBytes: 100, waitMs: 0 });
      expect(d?.offset).toBe(1);
      expectSameBytes(d!.value, patterned(100_000, 42));
      expect(offsets(await t.store.fetch(big, 'g', { maxMessages: 10, maxBytes: 100, waitMs: 0 }))).toEqual([2]);
    });

    it('fetch from an unknown station fails with STATION_NOT_FOUND', async () => {
      await rejectsWithCode(t.store.fetch(uniqueName('nowhere'), 'g', { maxMessages: 1, maxBytes: MiB, waitMs: 0 }), 'STATION_NOT_FOUND');
    });
  });
}
