/**
 * What a deliveryId may settle in the embedded engine, beyond the conformance suite: ids carry the
 * group's epoch on the partition (`<partition>-<offset>-<attempt>-<epoch>`); the epoch, the remembered
 * dead letters and what retention took survive a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deliveryId, parseDeliveryId } from '@junction/protocol';
import { EmbeddedStore } from '../../src/index.js';
import { encodeEntry, JournalOp } from '../../src/embedded/journal.js';

describe('embedded settlement by deliveryId', () => {
  let dir: string;
  let store: EmbeddedStore;

  async function open(): Promise<EmbeddedStore> {
    store = new EmbeddedStore({ dataDir: dir });
    await store.open();
    return store;
  }

  async function restart(): Promise<void> {
    await store.close();
    await open();
  }

  afterEach(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const fetch = (group = 'g', max = 100) => store.fetch('s', group, { maxMessages: max, maxBytes: 1 << 20, waitMs: 0 });

  it('an attempt never handed out answers unknown and settles nothing; an id without the epoch answers stale', async () => {
    dir = mkdtempSync(join(tmpdir(), 'junction-settle-'));
    await open();
    await store.createStation('s');
    await store.produce('s', [{ value: Buffer.from('a') }]);
    const [d] = await fetch();
    const p = parseDeliveryId(d!.deliveryId)!;
    expect(p).toMatchObject({ partition: 0, offset: 1, attempt: 1 });
    expect(p.epoch).toMatch(/^[0-9a-z]{1,7}$/);
    const never = deliveryId(0, 1, 9, p.epoch);
    expect(await store.ack('s', 'g', [never])).toEqual([{ deliveryId: never, status: 'unknown' }]);
    expect(await store.nack('s', 'g', [never])).toEqual([{ deliveryId: never, status: 'unknown' }]);
    expect(await store.deadLetter('s', 'g', [never], 'x')).toEqual([{ deliveryId: never, status: 'unknown' }]);
    const old = deliveryId(0, 1, 1);
    expect(await store.ack('s', 'g', [old])).toEqual([{ deliveryId: old, status: 'stale' }]);
    expect(await store.getGroup('s', 'g')).toMatchObject({ pending: 1, lag: 1, deadLettered: 0 });
    expect(await store.ack('s', 'g', [d!.deliveryId])).toEqual([{ deliveryId: d!.deliveryId, status: 'acked' }]);
  });

  it('a range ack naming an earlier epoch settles nothing', async () => {
    dir = mkdtempSync(join(tmpdir(), 'junction-settle-'));
    await open();
    await store.createStation('s');
    await store.produce('s', [{ value: Buffer.from('a') }, { value: Buffer.from('b') }]);
    const [c1] = await store.fetchChunks('s', 'g', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 });
    await store.seek('s', 'g', { type: 'earliest' });
    const [c2] = await store.fetchChunks('s', 'g', { maxMessages: 10, maxBytes: 1 << 20, waitMs: 0 });
    expect(c1!.epoch).toBeDefined();
    expect(c2!.epoch).not.toBe(c1!.epoch);
    expect(await store.ackRanges('s', 'g', [{ partition: 0, from: 1, to: 2, epoch: c1!.epoch }])).toBe(0);
    expect((await store.getGroup('s', 'g')).pending).toBe(2);
    expect(await store.ackRanges('s', 'g', [{ partition: 0, from: 1, to: 2, epoch: c2!.epoch }])).toBe(2);
    expect((await store.getGroup('s', 'g')).lag).toBe(0);
  });

  it('the epoch, the remembered dead letters and the retention count survive a restart', async () => {
    dir = mkdtempSync(join(tmpdir(), 'junction-settle-'));
    await open();
    await store.createStation('s');
    await store.produce(
      's',
      ['a', 'b', 'c', 'd', 'e', 'f'].map((v) => ({ value: Buffer.from(v) })),
    );
    const [a, b] = await fetch('g', 2);
    expect(await store.deadLetter('s', 'g', [b!.deliveryId], 'bad')).toEqual([{ deliveryId: b!.deliveryId, status: 'dead-lettered' }]);
    await store.updateStation('s', { retention: { maxMessages: 2 } });
    // Retention runs after each produce when maxMessages is set.
    await store.produce('s', [{ value: Buffer.from('g') }]);
    expect(await store.getGroup('s', 'g')).toMatchObject({ lostToRetention: 4, deadLettered: 1 });
    await restart();
    expect(await store.getGroup('s', 'g')).toMatchObject({ lostToRetention: 4 });
    // Ids from before the restart: the same epoch, so a late ack of the delivered one is recognised.
    expect((await store.ack('s', 'g', [a!.deliveryId]))[0]!.status).toBe('acked');
    expect(await store.ack('s', 'g', [b!.deliveryId])).toEqual([{ deliveryId: b!.deliveryId, status: 'stale' }]);
    await restart();
    // Counted once, not again at each open.
    expect(await store.getGroup('s', 'g')).toMatchObject({ lostToRetention: 4, lag: 2 });
    expect((await fetch()).map((d) => Buffer.from(d.value).toString())).toEqual(['f', 'g']);
  });

  it('a journal written before epochs gets one at open; ids of the old form answer stale', async () => {
    dir = mkdtempSync(join(tmpdir(), 'junction-settle-'));
    await open();
    await store.createStation('s');
    await store.produce('s', [{ value: Buffer.from('a') }, { value: Buffer.from('b') }]);
    await store.createGroup('s', 'legacy');
    await store.close();
    // What an older version wrote: SEEK and DELIVER, no EPOCH.
    const journal = join(dir, 'stations', 's', 'groups', 'legacy', 'journal');
    await writeFile(
      journal,
      Buffer.concat([
        encodeEntry({ op: JournalOp.SEEK, partition: 0, offset: 1 }),
        encodeEntry({ op: JournalOp.DELIVER, partition: 0, from: 1, to: 2 }),
      ]),
    );
    await open();
    const ds = await fetch('legacy');
    expect(ds.map((d) => [d.offset, d.deliveryCount])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    for (const d of ds) expect(parseDeliveryId(d.deliveryId)!.epoch).toMatch(/^[0-9a-z]{1,7}$/);
    expect(await store.ack('s', 'legacy', ['0-1-1'])).toEqual([{ deliveryId: '0-1-1', status: 'stale' }]);
    expect(
      (
        await store.ack(
          's',
          'legacy',
          ds.map((d) => d.deliveryId),
        )
      ).map((o) => o.status),
    ).toEqual(['acked', 'acked']);
  });
});
