/**
 * The sink hand-off (a batch read from the file log, packed for the worker, unpacked there): values reach
 * the plugin byte for byte across several read buffers and pieces, stay intact while a plugin keeps them,
 * and a plugin writing its values changes nothing another connector sees.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { harness, lagOf, waitFor } from './helpers.js';
import type { Harness } from './helpers.js';

interface Seen {
  offset: number;
  key: string | null;
  headers: Record<string, string>;
  value: Buffer;
  shared: boolean;
}

async function seen(dir: string): Promise<Seen[]> {
  const text = await readFile(join(dir, 'values.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const r = JSON.parse(l) as Omit<Seen, 'value'> & { value: string };
      return { ...r, value: Buffer.from(r.value, 'base64') };
    });
}

/** Message `i` (offset i + 1): 0–3000 bytes of a fixed pseudo-random sequence; a key on every third, headers on every other. */
function message(i: number): { value: Buffer; key?: string; headers?: Record<string, string> } {
  const len = (i * 733) % 3001;
  const value = Buffer.alloc(len);
  let x = i + 1;
  for (let b = 0; b < len; b++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0; // integer steps: a double product loses the low bits
    value[b] = x >>> 24;
  }
  return { value, ...(i % 3 === 0 && { key: `k${i}` }), ...(i % 2 === 0 && { headers: { i: String(i), h: 'x' } }) };
}

function expectAll(got: Seen[], n: number): void {
  const byOffset = new Map(got.map((m) => [m.offset, m]));
  expect([...byOffset.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  for (let i = 0; i < n; i++) {
    const m = byOffset.get(i + 1)!;
    const want = message(i);
    expect(Buffer.compare(m.value, want.value), `offset ${i + 1}`).toBe(0);
    expect(m.key).toBe(want.key ?? null);
    expect(m.headers).toEqual(want.headers ?? {});
    // The SDK's type: values over an ordinary ArrayBuffer.
    expect(m.shared).toBe(false);
  }
}

describe('sink hand-off', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it('values reach the plugin byte for byte across read buffers and pieces; a kept value stays intact; a plugin writing its values changes nothing', async () => {
    // Segments of 4 KiB: a fetch spans many of them, one read buffer each.
    await h.store.createStation('s', { partitions: 1, segmentBytes: 4096 });
    const produce = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i += 7) {
        const msgs = [];
        for (let j = i; j < Math.min(i + 7, to); j++) msgs.push(message(j));
        await h.store.produce('s', msgs);
      }
    };
    await produce(0, 60);

    // What the runtime is handed: pieces over several read buffers.
    await h.store.createGroup('s', 'probe');
    const chunks = await h.store.fetchChunks!('s', 'probe', { maxMessages: 1000, maxBytes: 1 << 24, waitMs: 0 });
    expect(chunks.reduce((n, c) => n + c.count, 0)).toBe(60);
    expect(new Set(chunks.map((c) => c.data.buffer)).size).toBeGreaterThan(3);

    const scribbler = join(h.dir, 'scribble');
    await h.runtime.create({
      name: 'w',
      plugin: 'test-keep',
      station: 's',
      config: { dir: scribbler, scribble: true },
      batch: { maxLatencyMs: 10 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'w')) === 0, { what: 'scribbler lag 0' });
    expectAll(await seen(scribbler), 60);

    // Another connector, after the scribbler wrote over every value it was given: the stored bytes.
    const keeper = join(h.dir, 'keep');
    await h.runtime.create({ name: 'k', plugin: 'test-keep', station: 's', config: { dir: keeper }, batch: { maxLatencyMs: 10 } });
    await waitFor(async () => (await lagOf(h.store, 's', 'k')) === 0, { what: 'keeper lag 0' });
    // More batches: the keeper checks at each write that the values it kept are unchanged.
    await produce(60, 120);
    await waitFor(async () => (await lagOf(h.store, 's', 'k')) === 0 && (await lagOf(h.store, 's', 'w')) === 0, { what: 'lag 0' });
    expectAll(await seen(keeper), 120);
    expectAll(await seen(scribbler), 120);
    expect(await readFile(join(keeper, 'mismatches.log'), 'utf8').catch(() => '')).toBe('');
    // The stored bytes, read again (from the log's read cache or the file): intact.
    const stored = await h.store.read('s', { partition: 0, fromOffset: 1, limit: 1000 });
    expect(stored.length).toBe(120);
    for (const m of stored) expect(Buffer.compare(Buffer.from(m.value), message(m.offset - 1).value)).toBe(0);
  });

  it('a sink that keeps no values (keepsValues: false): the memory of its batches comes back and carries later batches, every value still byte for byte, even where the plugin wrote over it', async () => {
    await h.store.createStation('s', { partitions: 1, segmentBytes: 4096 });
    const n = 600;
    for (let i = 0; i < n; i += 7) {
      const msgs = [];
      for (let j = i; j < Math.min(i + 7, n); j++) msgs.push(message(j));
      await h.store.produce('s', msgs);
    }
    // Small batches (25 messages): ~24 of them, each packed after earlier ones were answered.
    const lender = join(h.dir, 'lend');
    await h.runtime.create({
      name: 'l',
      plugin: 'test-lend',
      station: 's',
      config: { dir: lender, scribble: true },
      batch: { maxMessages: 25, maxLatencyMs: 10 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'l')) === 0, { what: 'lender lag 0' });
    await h.runtime.stop('l');
    expectAll(await seen(lender), n);
    // The views it kept (against its word, to count them): the batches written cleanly were taken back.
    const taken = Number(await readFile(join(lender, 'taken.log'), 'utf8'));
    expect(taken).toBeGreaterThan(n / 2);
    // A sink that keeps values (the default) beside it: nothing it kept changed (test-keep checks at each write).
    const keeper = join(h.dir, 'keep');
    await h.runtime.create({
      name: 'k',
      plugin: 'test-keep',
      station: 's',
      config: { dir: keeper },
      batch: { maxMessages: 25, maxLatencyMs: 10 },
    });
    await waitFor(async () => (await lagOf(h.store, 's', 'k')) === 0, { what: 'keeper lag 0' });
    expectAll(await seen(keeper), n);
    expect(await readFile(join(keeper, 'mismatches.log'), 'utf8').catch(() => '')).toBe('');
  });
});
