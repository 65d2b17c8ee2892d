import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deliveryId, REPLAY_GROUP_HEADER } from '@junction/protocol';
import { CHUNK_FIELDS, ChunkField, EmbeddedStore, type Delivery, type DeliveryChunk } from '../../src/index.js';

/** What a chunk says about each message, in the shape of a Delivery (without its id). */
function unpack(chunks: DeliveryChunk[]) {
  const out: {
    partition: number;
    offset: number;
    timestamp: number;
    key: string | undefined;
    headers: Record<string, string>;
    value: string;
    attempt: number;
    id: string;
  }[] = [];
  for (const c of chunks) {
    expect(c.nums.length).toBe(c.count * CHUNK_FIELDS);
    let bytes = 0;
    let prevEnd = 0;
    for (let i = 0; i < c.count; i++) {
      const o = i * CHUNK_FIELDS;
      const start = c.nums[o + ChunkField.start]!;
      const len = c.nums[o + ChunkField.length]!;
      expect(start).toBeGreaterThanOrEqual(prevEnd);
      expect(start + len).toBeLessThanOrEqual(c.data.byteLength);
      prevEnd = start + len;
      bytes += len;
      out.push({
        partition: c.partition,
        offset: c.nums[o + ChunkField.offset]!,
        timestamp: c.nums[o + ChunkField.timestamp]!,
        key: c.keys?.[i],
        headers: c.headers[c.nums[o + ChunkField.headers]!]!,
        value: Buffer.from(c.data.buffer, c.data.byteOffset + start, len).toString(),
        attempt: c.attempts?.[i] ?? 1,
        id: deliveryId(c.partition, c.nums[o + ChunkField.offset]!, c.attempts?.[i] ?? 1, c.epoch),
      });
    }
    expect(c.bytes).toBe(bytes);
  }
  return out;
}

function plain(ds: Delivery[]) {
  return ds.map((d) => ({
    partition: d.partition,
    offset: d.offset,
    timestamp: d.timestamp,
    key: d.key,
    headers: d.headers,
    value: Buffer.from(d.value).toString(),
    attempt: d.deliveryCount,
  }));
}

const byPos = (a: { partition: number; offset: number }, b: { partition: number; offset: number }) =>
  a.partition - b.partition || a.offset - b.offset;

describe.each([
  ['file-backed', true],
  ['in memory', false],
])('embedded store, packed fetch and range acks (%s)', (_name, onDisk) => {
  let dir: string | undefined;
  let store: EmbeddedStore;

  const storage = onDisk ? ('file' as const) : ('memory' as const);

  async function open(): Promise<EmbeddedStore> {
    dir ??= mkdtempSync(join(tmpdir(), 'junction-chunks-'));
    store = new EmbeddedStore({ dataDir: dir });
    await store.open();
    return store;
  }

  afterEach(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('hands out what fetch hands out: values, keys, headers, timestamps, offsets, attempts', async () => {
    await open();
    await store.createStation('s', { partitions: 3, dedupWindowMs: 0, storage });
    const msgs = Array.from({ length: 600 }, (_, i) => ({
      value: Buffer.from(`value-${i}-${'x'.repeat(i % 50)}`),
      ...(i % 3 === 0 ? { key: `k${i % 7}` } : {}),
      headers: (i % 10 === 0 ? { a: String(i) } : { kind: 'same' }) as Record<string, string>,
    }));
    for (let i = 0; i < msgs.length; i += 100) await store.produce('s', msgs.slice(i, i + 100));
    const viaFetch: Delivery[] = [];
    for (;;) {
      const ds = await store.fetch('s', 'plain', { maxMessages: 70, maxBytes: 1 << 20, waitMs: 0 });
      if (ds.length === 0) break;
      viaFetch.push(...ds);
    }
    const chunks: DeliveryChunk[] = [];
    for (;;) {
      const cs = await store.fetchChunks('s', 'packed', { maxMessages: 70, maxBytes: 1 << 20, waitMs: 0 });
      if (cs.length === 0) break;
      expect(cs.reduce((n, c) => n + c.count, 0)).toBeLessThanOrEqual(70);
      chunks.push(...cs);
    }
    // The same messages and attempts; the ids differ (each group has its own epoch).
    expect(
      unpack(chunks)
        .map(({ id: _id, ...m }) => m)
        .sort(byPos),
    ).toEqual(plain(viaFetch).sort(byPos));
    expect(unpack(chunks)).toHaveLength(600);
    const { id } = await store.getStation('s');
    expect(new Set([...chunks.map((c) => c.stationId), ...viaFetch.map((d) => d.stationId)])).toEqual(new Set([id]));
    const g = await store.getGroup('s', 'packed');
    expect(g.pending).toBe(600);
    expect(g.lag).toBe(600);
  });

  it('messages without headers share one headers slot per chunk, among ones with headers', async () => {
    await open();
    await store.createStation('s', { partitions: 1, dedupWindowMs: 0, storage });
    const msgs = Array.from({ length: 500 }, (_, i) => ({
      value: Buffer.from(`v${i}`),
      ...(i % 100 === 7 ? { headers: { h: String(i % 2) } } : {}),
    }));
    await store.produce('s', msgs);
    const chunks = await store.fetchChunks('s', 'g', { maxMessages: 1000, maxBytes: 1 << 20, waitMs: 0 });
    const got = unpack(chunks);
    expect(got.map((m) => m.headers)).toEqual(msgs.map((m) => m.headers ?? {}));
    // At most one slot per message with headers (5) and one for all the others; before: one per message.
    for (const c of chunks) expect(c.headers.length).toBeLessThanOrEqual(6);
  });

  it('respects maxBytes (at least one message) and long-polls like fetch', async () => {
    await open();
    await store.createStation('s', { partitions: 1, storage });
    await store.produce(
      's',
      Array.from({ length: 10 }, () => ({ value: Buffer.alloc(1000, 1) })),
    );
    const cs = await store.fetchChunks('s', 'g', { maxMessages: 100, maxBytes: 2500, waitMs: 0 });
    expect(cs.reduce((n, c) => n + c.count, 0)).toBe(2);
    const big = await store.fetchChunks('s', 'g2', { maxMessages: 100, maxBytes: 10, waitMs: 0 });
    expect(big.reduce((n, c) => n + c.count, 0)).toBe(1);
    await store.createGroup('s', 'empty', { start: { type: 'latest' } });
    const t0 = Date.now();
    const later = store.fetchChunks('s', 'empty', { maxMessages: 100, maxBytes: 1 << 20, waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    await store.produce('s', [{ value: Buffer.from('late') }]);
    const got = unpack(await later);
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(got.map((m) => m.value)).toEqual(['late']);
  });

  it('creates a new group once when several first fetches race, and keeps its acks across a restart', async () => {
    await open();
    await store.createStation('s', { partitions: 1, storage });
    await store.produce(
      's',
      Array.from({ length: 30 }, (_, i) => ({ value: Buffer.from(`m${i + 1}`) })),
    );
    const got = await Promise.all([
      store.fetchChunks('s', 'new', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 }),
      store.fetch('s', 'new', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 }),
      store.fetchChunks('s', 'new', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 }),
    ]);
    const offsets = [...unpack(got[0]), ...plain(got[1]), ...unpack(got[2])].map((m) => m.offset).sort((a, b) => a - b);
    expect(offsets).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(await store.ackRanges('s', 'new', [{ partition: 0, from: 1, to: 30 }])).toBe(30);
    if (onDisk) {
      await store.close();
      await open();
    }
    expect((await store.getGroup('s', 'new')).lag).toBe(0);
    expect(await store.fetchChunks('s', 'new', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 })).toEqual([]);
  });

  it('carries redeliveries with their attempt, and acks by range settle every waiting offset of any attempt', async () => {
    await open();
    await store.createStation('s', { partitions: 1, storage });
    await store.produce(
      's',
      Array.from({ length: 20 }, (_, i) => ({ value: Buffer.from(`m${i + 1}`) })),
    );
    const first = unpack(await store.fetchChunks('s', 'g', { maxMessages: 20, maxBytes: 1 << 20, waitMs: 0 }));
    expect(first.map((m) => m.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(first.every((m) => m.attempt === 1)).toBe(true);
    // Offsets 5 and 6 come back (second attempt); the rest of the range is acked by range with them still out.
    expect((await store.nack('s', 'g', [first[4]!.id, first[5]!.id])).map((o) => o.status)).toEqual(['nacked', 'nacked']);
    const again = unpack(await store.fetchChunks('s', 'g', { maxMessages: 20, maxBytes: 1 << 20, waitMs: 0 }));
    expect(again.map((m) => [m.offset, m.attempt, m.value])).toEqual([
      [5, 2, 'm5'],
      [6, 2, 'm6'],
    ]);
    expect(await store.ackRanges('s', 'g', [{ partition: 0, from: 1, to: 10 }])).toBe(10);
    // Acking again, or past what was delivered, settles nothing more.
    expect(await store.ackRanges('s', 'g', [{ partition: 0, from: 1, to: 10 }])).toBe(0);
    await store.produce('s', [{ value: Buffer.from('m21') }]);
    expect(await store.ackRanges('s', 'g', [{ partition: 0, from: 11, to: 21 }])).toBe(10);
    let g = await store.getGroup('s', 'g');
    expect(g.partitions[0]!.ackFloor).toBe(21);
    expect(g.lag).toBe(1);
    expect(g.pending).toBe(0);
    await expect(store.ackRanges('s', 'g', [{ partition: 3, from: 1, to: 2 }])).rejects.toMatchObject({ code: 'PARTITION_NOT_FOUND' });
    await expect(store.ackRanges('s', 'nope', [{ partition: 0, from: 1, to: 2 }])).rejects.toMatchObject({ code: 'GROUP_NOT_FOUND' });
    if (onDisk) {
      // Range acks are in the group's journal: after a restart the group resumes at offset 21.
      await store.close();
      await open();
      g = await store.getGroup('s', 'g');
      expect(g.partitions[0]!.ackFloor).toBe(21);
      const rest = unpack(await store.fetchChunks('s', 'g', { maxMessages: 50, maxBytes: 1 << 20, waitMs: 0 }));
      expect(rest.map((m) => m.value)).toEqual(['m21']);
    }
  });

  it("never puts bytes that are not the partition's own data between the values of a chunk", async () => {
    await open();
    await store.createStation('s', { partitions: 1, storage });
    const keep: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      await store.produce('s', [{ value: Buffer.from(`v${i}`) }]);
      // Small Buffers of the process, allocated between the appends (Node pools small allocations).
      keep.push(Buffer.from(`SECRET-${i}-${'s'.repeat(20)}`));
    }
    const chunks = await store.fetchChunks('s', 'g', { maxMessages: 100, maxBytes: 1 << 20, waitMs: 0 });
    expect(unpack(chunks).map((m) => m.value)).toEqual(Array.from({ length: 50 }, (_, i) => `v${i}`));
    for (const c of chunks) {
      const first = c.nums[ChunkField.start]!;
      const last = (c.count - 1) * CHUNK_FIELDS;
      const region = Buffer.from(
        c.data.buffer,
        c.data.byteOffset + first,
        c.nums[last + ChunkField.start]! + c.nums[last + ChunkField.length]! - first,
      );
      expect(region.toString('latin1')).not.toContain('SECRET');
    }
    expect(keep).toHaveLength(50);
  });

  it('keeps a redelivery and new messages read separately apart when other bytes lie between their reads', async () => {
    await open();
    await store.createStation('s', { partitions: 1, storage });
    const keep: Buffer[] = [];
    const secrets = () => {
      for (let i = 0; i < 20; i++) keep.push(Buffer.from(`SECRET-${i}-${'s'.repeat(30)}`));
    };
    for (let round = 0; round < 20; round++) {
      secrets();
      await store.produce('s', [{ value: Buffer.from(`old-${round}`) }]);
      secrets();
      const [first] = unpack(await store.fetchChunks('s', 'g', { maxMessages: 1, maxBytes: 1 << 20, waitMs: 0 }));
      await store.nack('s', 'g', [first!.id]);
      secrets();
      await store.produce('s', [{ value: Buffer.from(`new-${round}`) }]);
      secrets();
      const chunks = await store.fetchChunks('s', 'g', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 });
      expect(unpack(chunks).map((m) => m.value)).toEqual([`old-${round}`, `new-${round}`]);
      for (const c of chunks) {
        const last = (c.count - 1) * CHUNK_FIELDS;
        const from = c.nums[ChunkField.start]!;
        const region = Buffer.from(
          c.data.buffer,
          c.data.byteOffset + from,
          c.nums[last + ChunkField.start]! + c.nums[last + ChunkField.length]! - from,
        );
        expect(region.toString('latin1')).not.toContain('SECRET');
      }
      await store.ackRanges('s', 'g', [{ partition: 0, from: 1, to: 1000 }]);
    }
    expect(keep.length).toBeGreaterThan(0);
  });

  it('delivers from the preferred partition first, then from the others', async () => {
    await open();
    await store.createStation('s', { partitions: 3, storage });
    for (let p = 0; p < 3; p++)
      await store.produce(
        's',
        Array.from({ length: 10 }, (_, i) => ({ value: Buffer.from(`p${p}-${i}`), key: `k${p}` })),
      );
    const parts = async (prefer: number | undefined, max: number) =>
      unpack(await store.fetchChunks('s', 'g', { maxMessages: max, maxBytes: 1 << 20, waitMs: 0, preferPartition: prefer })).map(
        (m) => m.partition,
      );
    const where = (await store.fetch('s', 'probe', { maxMessages: 30, maxBytes: 1 << 20, waitMs: 0 })).map((d) => d.partition);
    const sizes = [0, 1, 2].map((p) => where.filter((x) => x === p).length);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(30);
    // A partition that holds at least 5 (30 messages over 3 partitions: one does), not the first one
    // round-robin would pick when it holds as many as another.
    const other = [2, 1, 0].find((p) => sizes[p]! >= 5)!;
    // A preference for `other` takes from it first, up to the limit; only then from the rest.
    const got = await parts(other, 4);
    expect(got).toEqual(new Array(4).fill(other));
    const rest = await parts(other, 50);
    expect(rest.slice(0, sizes[other]! - 4)).toEqual(new Array(sizes[other]! - 4).fill(other));
    expect(rest).toHaveLength(26);
    // Out of range: ignored.
    expect(await parts(7, 5)).toEqual([]);
  });

  it('leaves out messages replayed for another group and settles them for this one', async () => {
    await open();
    await store.createStation('s', { partitions: 1, storage });
    await store.produce('s', [
      { value: Buffer.from('a') },
      { value: Buffer.from('for-other'), headers: { [REPLAY_GROUP_HEADER]: 'other' } },
      { value: Buffer.from('for-me'), headers: { [REPLAY_GROUP_HEADER]: 'g' } },
      { value: Buffer.from('b') },
    ]);
    const got = unpack(await store.fetchChunks('s', 'g', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 }));
    expect(got.map((m) => [m.offset, m.value])).toEqual([
      [1, 'a'],
      [3, 'for-me'],
      [4, 'b'],
    ]);
    expect(await store.ackRanges('s', 'g', [{ partition: 0, from: 1, to: 4 }])).toBe(3);
    expect((await store.getGroup('s', 'g')).lag).toBe(0);
  });

  it('does not ack by range what is on its way to the dead-letter station', async () => {
    await open();
    await store.createStation('s', { partitions: 1, storage });
    await store.createGroup('s', 'g', { maxDeliveries: 1 });
    await store.produce('s', [{ value: Buffer.from('1') }, { value: Buffer.from('2') }]);
    const [one] = unpack(await store.fetchChunks('s', 'g', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 }));
    expect(await store.nack('s', 'g', [one!.id])).toEqual([{ deliveryId: one!.id, status: 'dead-lettered' }]); // the last attempt
    await store.ackRanges('s', 'g', [{ partition: 0, from: 1, to: 2 }]);
    const g = await store.getGroup('s', 'g');
    expect(g.deadLettered).toBe(1);
    const dls = await store.read('s.dls', { partition: 0, limit: 10 });
    expect(dls.map((m) => Buffer.from(m.value).toString())).toEqual(['1']);
  });
});
