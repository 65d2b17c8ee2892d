/** A sink sees its station's schema: at open (ctx.schema) and with every batch (batch.schema), a new version mid-stream included. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StationSchemaInfo } from '@junction/sdk-connector';
import { harness, lagOf, produceN, waitFor } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const version = (v: number, id: number) => ({
  subject: 'orders-value',
  version: v,
  id,
  schemaType: 'JSON' as const,
  schema: `{"type":"object","title":"v${v}"}`,
  references: [],
});

async function lines(
  dir: string,
): Promise<{ first: number; last: number; open: string | null; batch: string | null; versions: number[] | null }[]> {
  const text = await readFile(join(dir, 'schemas.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe('the station schema reaches the sink', () => {
  it('ctx.schema at open, batch.schema per batch; a version bound mid-stream arrives with the next batch; none for a station without one', async () => {
    let current: StationSchemaInfo | undefined = { ...version(1, 4), versions: [version(1, 4)] };
    const asked: string[] = [];
    h = await harness({
      stationSchemaOf: async (station) => {
        asked.push(station);
        return station === 'orders' ? current : undefined;
      },
    });
    await h.store.createStation('orders', { partitions: 1 });
    await h.store.createStation('plain', { partitions: 1 });
    const dir = join(h.dir, 'rec');
    const plainDir = join(h.dir, 'rec-plain');
    await h.runtime.create({ name: 'c', plugin: 'test-schema', station: 'orders', config: { dir }, batch: { maxLatencyMs: 20 } });
    await h.runtime.create({ name: 'p', plugin: 'test-schema', station: 'plain', config: { dir: plainDir }, batch: { maxLatencyMs: 20 } });

    await produceN(h.store, 'orders', 10);
    await produceN(h.store, 'plain', 5);
    await waitFor(async () => (await lagOf(h!.store, 'orders', 'c')) === 0 && (await lagOf(h!.store, 'plain', 'p')) === 0, {
      what: 'both connectors caught up',
    });
    const before = await lines(dir);
    expect(before.length).toBeGreaterThan(0);
    for (const l of before) expect(l).toMatchObject({ open: 'orders-value@1#4', batch: 'orders-value@1#4', versions: [4] });
    expect((await lines(plainDir)).every((l) => l.open === null && l.batch === null)).toBe(true);

    // Version 2 bound (e.g. `latest` after a registration): the next batch carries it; the open sink keeps its ctx.schema.
    current = { ...version(2, 9), versions: [version(1, 4), version(2, 9)] };
    await produceN(h.store, 'orders', 10, { prefix: 'n' });
    await waitFor(async () => (await lagOf(h!.store, 'orders', 'c')) === 0, { what: 'caught up again' });
    const after = (await lines(dir)).filter((l) => l.first > 10);
    expect(after.length).toBeGreaterThan(0);
    for (const l of after) expect(l).toMatchObject({ open: 'orders-value@1#4', batch: 'orders-value@2#9', versions: [4, 9] });
    expect(after.at(-1)!.last).toBe(20);
    expect(asked).toContain('orders');
  });

  it('a resolver that fails keeps the schema resolved before (the sink keeps writing)', async () => {
    let fail = false;
    h = await harness({
      stationSchemaOf: async () => {
        if (fail) throw new Error('registry unavailable');
        return { ...version(1, 4), versions: [version(1, 4)] };
      },
    });
    await h.store.createStation('orders', { partitions: 1 });
    const dir = join(h.dir, 'rec');
    await h.runtime.create({ name: 'c', plugin: 'test-schema', station: 'orders', config: { dir }, batch: { maxLatencyMs: 20 } });
    await produceN(h.store, 'orders', 5);
    await waitFor(async () => (await lagOf(h!.store, 'orders', 'c')) === 0, { what: 'caught up' });
    fail = true;
    await produceN(h.store, 'orders', 5, { prefix: 'n' });
    await waitFor(async () => (await lagOf(h!.store, 'orders', 'c')) === 0, { what: 'caught up with the resolver failing' });
    const all = await lines(dir);
    expect(all.at(-1)!.last).toBe(10);
    for (const l of all) expect(l.batch).toBe('orders-value@1#4');
  });
});
