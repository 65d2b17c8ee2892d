import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { OffsetRanges, Presence, stationIdSegment } from '../src/index.js';

describe('OffsetRanges', () => {
  it('holds exactly the offsets added, in any order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 10 })), { maxLength: 40 }), (adds) => {
        const r = new OffsetRanges();
        const model = new Set<number>();
        for (const [start, len] of adds) {
          r.add(start, start + len);
          for (let o = start; o <= start + len; o++) model.add(o);
        }
        for (let o = 0; o <= 215; o++) expect(r.has(o)).toBe(model.has(o));
        const ranges = r.toArray();
        for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThan(ranges[i - 1]![1] + 1);
      }),
    );
  });
});

const s0 = { station: 's', stationId: 'id-1', partition: 0 };

describe('Presence', () => {
  it('asks the destination on first use, for stale replays, and after forget — not for new batches', async () => {
    const table = new Set([5, 6, 7]);
    const asked: [number, number][] = [];
    const p = new Presence(async (_ref, from, to) => {
      asked.push([from, to]);
      return [...table].filter((o) => o >= from && o < to);
    });
    expect([...(await p.held(s0, [5, 6, 7, 8]))]).toEqual([5, 6, 7]);
    p.written(s0, [8]);
    table.add(8);
    expect([...(await p.held(s0, [8, 9]))]).toEqual([8]);
    expect(asked).toHaveLength(1);
    expect([...(await p.held(s0, [3, 4, 5]))]).toEqual([5]);
    expect(asked).toEqual([
      [5, Number.MAX_SAFE_INTEGER],
      [3, 5],
    ]);
    p.forget(s0);
    table.add(9);
    expect([...(await p.held(s0, [9]))]).toEqual([9]);
    expect(asked).toHaveLength(3);
  });

  it('keys on the station incarnation: a station created again under the same name is asked for afresh', async () => {
    const table = new Map<string, number[]>([['id-1', [1, 2, 3]]]);
    const p = new Presence(async (ref, from, to) => (table.get(ref.stationId) ?? []).filter((o) => o >= from && o < to));
    expect([...(await p.held(s0, [1, 2, 3]))]).toEqual([1, 2, 3]);
    const again = { ...s0, stationId: 'id-2' };
    expect([...(await p.held(again, [1, 2, 3, 4]))]).toEqual([]);
    p.written(again, [1, 2]);
    expect([...(await p.held(again, [1, 2, 3]))]).toEqual([1, 2]);
    expect([...(await p.held(s0, [3, 4]))]).toEqual([3]);
  });
});

describe('stationIdSegment', () => {
  it('keeps a UUID, hashes anything else into a safe segment that never looks like a partition', () => {
    expect(stationIdSegment('0b6f2c9e-3c1a-4f7e-9a0d-2f1e8c7b6a54')).toBe('0b6f2c9e-3c1a-4f7e-9a0d-2f1e8c7b6a54');
    for (const id of ['kit-abc#incarnation-1', '12', 'a/b', '', 'x'.repeat(65), 'é']) {
      const seg = stationIdSegment(id);
      expect(seg).toMatch(/^x[0-9a-f]{32}$/);
      expect(stationIdSegment(id)).toBe(seg);
    }
    expect(stationIdSegment('a#1')).not.toBe(stationIdSegment('a#2'));
  });
});

describe('Presence with a context', () => {
  it("hands each held() call's context to its query (concurrent writes each bring their own)", async () => {
    const seen: string[] = [];
    const p = new Presence<{ write: string }>(async ({ partition }, _from, _to, ctx) => {
      await new Promise((r) => setTimeout(r, partition === 0 ? 20 : 0));
      seen.push(`${partition}:${ctx.write}`);
      return [];
    });
    await Promise.all([p.held(s0, [1], { write: 'a' }), p.held({ ...s0, partition: 1 }, [1], { write: 'b' })]);
    expect(seen.sort()).toEqual(['0:a', '1:b']);
  });
});

describe('untilDeadline and Fences', () => {
  const { signal } = new AbortController();
  it('gives up at the deadline or on abort, and passes a value or a rejection through', async () => {
    const { untilDeadline, GAVE_UP } = await import('../src/index.js');
    expect(await untilDeadline(new Promise((r) => setTimeout(() => r(1), 200)), Date.now() + 30, signal)).toBe(GAVE_UP);
    expect(await untilDeadline(Promise.resolve(2), Date.now() + 1000, signal)).toBe(2);
    await expect(untilDeadline(Promise.reject(new Error('boom')), Date.now() + 1000, signal)).rejects.toThrow('boom');
    const ac = new AbortController();
    const p = untilDeadline(new Promise(() => {}), Date.now() + 10_000, ac.signal);
    ac.abort();
    expect(await p).toBe(GAVE_UP);
  });

  it('fences a key until its request settles', async () => {
    const { Fences } = await import('../src/index.js');
    const f = new Fences();
    expect(await f.wait('k', Date.now() + 10, signal)).toBe('clear');
    let settle!: () => void;
    f.add('k', new Promise<void>((r) => (settle = r)));
    expect(await f.wait('k', Date.now() + 20, signal)).toBe('timeout');
    setTimeout(settle, 10);
    expect(await f.wait('k', Date.now() + 1000, signal)).toBe('settled');
    expect(await f.wait('k', Date.now() + 10, signal)).toBe('clear');
  });
});
