/** Offsets a connector's transforms dropped (`batch.dropped`): a file's range spans them instead of a file per gap. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sink } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { readFileSink } from '../src/read.js';
import { batch, range, signal, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let s: Sink;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  s = await plugin.open(plugin.config.parse({ dir, fsync: false }), fakeContext());
});
afterEach(async () => {
  await s.close();
  await cleanup();
});

describe('dropped offsets', () => {
  it('one file spans the dropped offsets; a replay (with or without them dropped) writes nothing again', async () => {
    const all = range(1, 30);
    const dropped = all.filter((o) => o % 4 === 0);
    const kept = all.filter((o) => o % 4 !== 0);
    const b = { ...batch('orders', 0, kept), firstOffset: 1, lastOffset: 30, dropped };
    expect((await s.write(b, { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(await readdir(join(dir, 'orders', '0'))).toEqual(['00000000000000000001-30.orders-id.jsonl']);
    expect((await readFileSink(dir)).map((r) => r.offset)).toEqual(kept);
    // The same batch again, and the same kept messages without `dropped` (a runtime that does not say): nothing new.
    await s.write(b, { signal });
    await s.write(batch('orders', 0, kept), { signal });
    expect(await readdir(join(dir, 'orders', '0'))).toEqual(['00000000000000000001-30.orders-id.jsonl']);
    expect((await readFileSink(dir)).map((r) => r.offset)).toEqual(kept);
  });

  it('after a restart (a new sink over the same directory) a replay cut differently adds nothing, and the rest goes on', async () => {
    const kept = range(1, 40).filter((o) => o % 5 !== 0);
    const dropped = range(1, 20).filter((o) => o % 5 === 0);
    await s.write(
      {
        ...batch(
          'orders',
          0,
          kept.filter((o) => o <= 20),
        ),
        firstOffset: 1,
        lastOffset: 20,
        dropped,
      },
      { signal },
    );
    const again = await plugin.open(plugin.config.parse({ dir, fsync: false }), fakeContext());
    try {
      // The runtime's replay after a crash: offsets 11..40 in one batch, the dropped ones dropped again.
      const replay = kept.filter((o) => o >= 11);
      const results = await again.write(
        { ...batch('orders', 0, replay), firstOffset: 11, lastOffset: 40, dropped: range(11, 40).filter((o) => o % 5 === 0) },
        { signal },
      );
      expect(results.every((r) => r.status === 'ok')).toBe(true);
    } finally {
      await again.close();
    }
    const offsets = (await readFileSink(dir)).map((r) => r.offset).sort((a, b) => a - b);
    expect(offsets).toEqual(kept);
    // A file ends at its last written message (19, 39): the dropped 20 and 40 after them count as done only through the runtime's ack.
    expect((await readdir(join(dir, 'orders', '0'))).sort()).toEqual([
      '00000000000000000001-19.orders-id.jsonl',
      '00000000000000000021-39.orders-id.jsonl',
    ]);
  });

  it('without `dropped` a gap still splits files (offsets not dropped may come later)', async () => {
    await s.write(batch('orders', 0, [1, 2, 4, 5]), { signal });
    expect((await readdir(join(dir, 'orders', '0'))).sort()).toEqual([
      '00000000000000000001-2.orders-id.jsonl',
      '00000000000000000004-5.orders-id.jsonl',
    ]);
    await s.write(batch('orders', 0, [3]), { signal });
    expect((await readFileSink(dir)).map((r) => r.offset).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
  });
});
