import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Sink, type WriteResult } from '@junction/sdk-connector';
import { fakeContext, type FakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { readFileSink } from '../src/read.js';
import { batch, message, range, signal, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
const open: Sink[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await cleanup();
});

async function sink(config: Record<string, unknown> = {}, ctx: FakeContext = fakeContext()): Promise<Sink> {
  const s = await plugin.open(plugin.config.parse({ dir, ...config }), ctx);
  open.push(s);
  return s;
}

function statuses(results: WriteResult[]): string[] {
  return results.map((r) => r.status);
}

async function files(station = 'orders', partition = 0): Promise<string[]> {
  return (await readdir(join(dir, station, String(partition)))).sort();
}

/** Offset → how many times it is in the directory. */
async function offsetCounts(): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (const r of await readFileSink(dir)) counts.set(r.offset, (counts.get(r.offset) ?? 0) + 1);
  return counts;
}

async function expectEachOnce(offsets: number[]): Promise<void> {
  const counts = await offsetCounts();
  expect([...counts.keys()].sort((a, b) => a - b)).toEqual(offsets);
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
}

describe('layout and line format', () => {
  it('writes one file per batch, named by station, partition and offsets, one JSON line per message', async () => {
    const s = await sink();
    const m1 = message(7, { key: 'user-1', headers: { 'content-type': 'application/json' } });
    const m2 = message(8);
    expect(statuses(await s.write(batch('orders', 2, [m1, m2]), { signal }))).toEqual(['ok', 'ok']);
    expect(await files('orders', 2)).toEqual(['00000000000000000007-8.orders-id.jsonl']);
    const text = await readFile(join(dir, 'orders', '2', '00000000000000000007-8.orders-id.jsonl'), 'utf8');
    expect(text).toBe(
      '{"offset":7,"timestamp":1700000000007,"key":"user-1","headers":{"content-type":"application/json"},"value":"{\\"n\\":7,\\"text\\":\\"message 7\\"}"}\n' +
        '{"offset":8,"timestamp":1700000000008,"key":null,"headers":{},"value":"{\\"n\\":8,\\"text\\":\\"message 8\\"}"}\n',
    );
  });

  it('valueEncoding auto: text as text, other bytes as base64 with "base64": true, byte for byte', async () => {
    const s = await sink();
    const values = [
      new TextEncoder().encode('héllo ✓ 😀'),
      new Uint8Array([0xef, 0xbb, 0xbf, 0x61]), // a BOM must survive
      new Uint8Array([0x00, 0xff, 0x80, 0x41]),
      new Uint8Array([]),
    ];
    await s.write(
      batch(
        'bin',
        0,
        values.map((v, i) => message(i + 1, { value: v as Uint8Array<ArrayBuffer> })),
      ),
      { signal },
    );
    const lines = (await readFile(join(dir, 'bin', '0', '00000000000000000001-4.bin-id.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.base64 === true)).toEqual([false, false, true, false]);
    expect(lines[2].value).toBe(Buffer.from([0x00, 0xff, 0x80, 0x41]).toString('base64'));
    const back = await readFileSink(dir);
    expect(back.map((r) => [...r.value])).toEqual(values.map((v) => [...v]));
  });

  it('valueEncoding utf8 dead-letters bytes that are not UTF-8 and writes around them', async () => {
    const s = await sink({ valueEncoding: 'utf8' });
    const results = await s.write(batch('t', 0, [message(1), message(2, { value: new Uint8Array([0xc3, 0x28]) }), message(3)]), { signal });
    expect(results).toEqual([
      { status: 'ok' },
      { status: 'deadLetter', code: 'SINK_REJECTED', reason: expect.stringContaining('UTF-8') },
      { status: 'ok' },
    ]);
    // A file never spans an offset it does not hold: 1 and 3 are separate files.
    expect(await files('t')).toEqual(['00000000000000000001-1.t-id.jsonl', '00000000000000000003-3.t-id.jsonl']);
    // The dead letter is not taken for written on replay.
    const again = await s.write(batch('t', 0, [message(1), message(2, { value: new Uint8Array([0xc3, 0x28]) }), message(3)]), { signal });
    expect(statuses(again)).toEqual(['ok', 'deadLetter', 'ok']);
  });

  it('valueEncoding base64 flags every line', async () => {
    const s = await sink({ valueEncoding: 'base64' });
    await s.write(batch('t', 0, [1, 2]), { signal });
    const lines = (await readFile(join(dir, 't', '0', '00000000000000000001-2.t-id.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.every((l) => l.base64 === true)).toBe(true);
    expect((await readFileSink(dir)).map((r) => r.value.toString())).toEqual(['{"n":1,"text":"message 1"}', '{"n":2,"text":"message 2"}']);
  });

  it('gzip writes .jsonl.gz files', async () => {
    const s = await sink({ gzip: true });
    await s.write(batch('z', 1, range(1, 50)), { signal });
    expect(await files('z', 1)).toEqual(['00000000000000000001-50.z-id.jsonl.gz']);
    const text = gunzipSync(await readFile(join(dir, 'z', '1', '00000000000000000001-50.z-id.jsonl.gz'))).toString();
    expect(text.trim().split('\n')).toHaveLength(50);
  });

  it('keeps metrics', async () => {
    const ctx = fakeContext();
    const s = await sink({}, ctx);
    await s.write(batch('m', 0, range(1, 10)), { signal });
    await s.write(batch('m', 0, range(5, 12)), { signal });
    expect(ctx.metrics.snapshot()).toMatchObject({
      messages_written_total: { value: 12 },
      files_written_total: { value: 2 },
      replayed_messages_total: { value: 6 },
      write_seconds: { count: 2 },
    });
  });
});

describe('paths stay inside the directory', () => {
  for (const station of ['../evil', 'a/b', 'a\\b', '..', '.', '.hidden', '', 'nul\0byte']) {
    it(`refuses station ${JSON.stringify(station)}`, async () => {
      const s = await sink();
      await expect(s.write(batch(station, 0, [1]), { signal })).rejects.toMatchObject({ code: 'SINK_REJECTED', retryable: false });
    });
  }
  it('refuses a negative or fractional partition', async () => {
    const s = await sink();
    await expect(s.write(batch('ok', -1, [1]), { signal })).rejects.toMatchObject({ code: 'SINK_REJECTED' });
    await expect(s.write(batch('ok', 1.5, [1]), { signal })).rejects.toMatchObject({ code: 'SINK_REJECTED' });
    expect(await readdir(dir)).toEqual([]);
  });
  it('accepts the names stations really have (dots, dashes, DLS names)', async () => {
    const s = await sink();
    expect(statuses(await s.write(batch('orders.v2-eu_1.dls', 0, [1]), { signal }))).toEqual(['ok']);
  });
});

describe('exactly once across replays', () => {
  it('answers ok for a replayed batch without writing it again', async () => {
    const s = await sink();
    await s.write(batch('orders', 0, range(1, 10)), { signal });
    expect(statuses(await s.write(batch('orders', 0, range(1, 10)), { signal }))).toEqual(Array(10).fill('ok'));
    expect(await files()).toEqual(['00000000000000000001-10.orders-id.jsonl']);
  });

  it('a batch starting inside an existing file writes only what is past it', async () => {
    const s = await sink();
    await s.write(batch('orders', 0, range(1, 10)), { signal });
    expect(statuses(await s.write(batch('orders', 0, range(8, 14)), { signal }))).toEqual(Array(7).fill('ok'));
    expect(await files()).toEqual(['00000000000000000001-10.orders-id.jsonl', '00000000000000000011-14.orders-id.jsonl']);
    await expectEachOnce(range(1, 14));
  });

  it('a batch covering several files and holes fills only the holes', async () => {
    const s = await sink();
    await s.write(batch('orders', 0, [3, 4, 8, 9, 15]), { signal });
    await s.write(batch('orders', 0, range(1, 16)), { signal });
    expect(await files()).toEqual([
      '00000000000000000001-2.orders-id.jsonl',
      '00000000000000000003-4.orders-id.jsonl',
      '00000000000000000005-7.orders-id.jsonl',
      '00000000000000000008-9.orders-id.jsonl',
      '00000000000000000010-14.orders-id.jsonl',
      '00000000000000000015-15.orders-id.jsonl',
      '00000000000000000016-16.orders-id.jsonl',
    ]);
    await expectEachOnce(range(1, 16));
  });

  it('a new sink instance (after close, after a restart) knows what the directory holds', async () => {
    const a = await sink();
    await a.write(batch('orders', 0, range(1, 100)), { signal });
    await a.close();
    const b = await sink();
    await b.write(batch('orders', 0, range(50, 150)), { signal });
    await b.write(batch('orders', 0, range(1, 30)), { signal });
    await expectEachOnce(range(1, 150));
  });

  it('notices files another instance wrote since it last looked', async () => {
    const a = await sink();
    const b = await sink();
    await a.write(batch('orders', 0, range(1, 10)), { signal });
    await b.write(batch('orders', 0, range(11, 20)), { signal });
    // a's view is stale; it must reload, not write 15-20 again.
    await a.write(batch('orders', 0, range(15, 25)), { signal });
    await expectEachOnce(range(1, 25));
  });

  it('keeps partitions and stations apart', async () => {
    const s = await sink();
    await s.write(batch('orders', 0, range(1, 5)), { signal });
    await s.write(batch('orders', 1, range(1, 5)), { signal });
    await s.write(batch('clicks', 0, range(1, 5)), { signal });
    const records = await readFileSink(dir);
    expect(records.map((r) => `${r.station}/${r.partition}/${r.offset}`)).toEqual([
      ...range(1, 5).map((o) => `clicks/0/${o}`),
      ...range(1, 5).map((o) => `orders/0/${o}`),
      ...range(1, 5).map((o) => `orders/1/${o}`),
    ]);
  });

  it('serializes concurrent writes to one partition', async () => {
    const s = await sink();
    await Promise.all([
      s.write(batch('orders', 0, range(1, 50)), { signal }),
      s.write(batch('orders', 0, range(25, 75)), { signal }),
      s.write(batch('orders', 0, range(1, 100)), { signal }),
    ]);
    await expectEachOnce(range(1, 100));
  });
});

describe('station identity', () => {
  it('a station deleted and created again (a new stationId, offsets from 1): its messages are written, not taken for the old ones', async () => {
    const ctx = fakeContext();
    const s = await sink({}, ctx);
    await s.write(batch('orders', 0, range(1, 300), 'old-incarnation'), { signal });
    // The issue's case: 210 messages of the recreated station, all acked, none written.
    const results = await s.write(batch('orders', 0, range(1, 210), 'new-incarnation'), { signal });
    expect(statuses(results)).toEqual(Array(210).fill('ok'));
    expect(ctx.metrics.snapshot().replayed_messages_total).toMatchObject({ value: 0 });
    const again = await sink({}, fakeContext());
    await again.write(batch('orders', 0, range(1, 250), 'new-incarnation'), { signal });
    const records = await readFileSink(dir);
    const of = (id: string) =>
      records
        .filter((r) => r.stationId === id)
        .map((r) => r.offset)
        .sort((a, b) => a - b);
    expect(of('old-incarnation')).toEqual(range(1, 300));
    expect(of('new-incarnation')).toEqual(range(1, 250));
    expect(records).toHaveLength(550);
  });

  it('files written before station ids belong to the first incarnation that writes after the upgrade, recorded in .junction-legacy-owner', async () => {
    const partDir = join(dir, 'orders', '0');
    await mkdir(partDir, { recursive: true });
    const line = (o: number) => `{"offset":${o},"timestamp":${1_700_000_000_000 + o},"key":null,"headers":{},"value":"{\\"n\\":${o}}"}\n`;
    await writeFile(join(partDir, '00000000000000000001-100.jsonl'), range(1, 100).map(line).join(''));
    const ctx = fakeContext();
    const a = await sink({}, ctx);
    expect(statuses(await a.write(batch('orders', 0, range(1, 150), 'a'), { signal }))).toEqual(Array(150).fill('ok'));
    expect(ctx.metrics.snapshot().replayed_messages_total).toMatchObject({ value: 100 });
    expect((await readFile(join(partDir, '.junction-legacy-owner'), 'utf8')).trim()).toBe('a');
    // Another incarnation, later: the old files are not its own.
    const b = await sink();
    await b.write(batch('orders', 0, range(1, 10), 'b'), { signal });
    const records = await readFileSink(dir);
    expect(records.filter((r) => r.stationId === null).map((r) => r.offset)).toEqual(range(1, 100));
    expect(records.filter((r) => r.stationId === 'a').map((r) => r.offset)).toEqual(range(101, 150));
    expect(records.filter((r) => r.stationId === 'b').map((r) => r.offset)).toEqual(range(1, 10));
    // A fresh sink of the first incarnation still counts the old files as its own.
    const a2 = await sink();
    await a2.write(batch('orders', 0, range(1, 150), 'a'), { signal });
    expect(await readFileSink(dir)).toHaveLength(160);
  });

  it('a station id that is not a plain segment is hashed into the file name', async () => {
    const s = await sink();
    await s.write(batch('orders', 0, [1], 'kit-run#incarnation-1'), { signal });
    expect(await files()).toEqual([expect.stringMatching(/^00000000000000000001-1\.x[0-9a-f]{32}\.jsonl$/)]);
  });
});

describe('crashes', () => {
  it('ignores and removes a temp file left by a crash', async () => {
    const s1 = await sink();
    await s1.write(batch('orders', 0, range(1, 5)), { signal });
    await s1.close();
    // What a crash between write and rename leaves: a torn temp file for offsets 6-10.
    const partDir = join(dir, 'orders', '0');
    const temp = join(partDir, '.00000000000000000006-10.jsonl.4242-abcdef.tmp');
    await writeFile(temp, '{"offset":6,"timestamp":1,"key":null,"headers":{},"val');
    expect((await readFileSink(dir)).map((r) => r.offset)).toEqual(range(1, 5));

    const s2 = await sink();
    expect(statuses(await s2.write(batch('orders', 0, range(6, 10)), { signal }))).toEqual(Array(5).fill('ok'));
    expect(await files()).toEqual(['00000000000000000001-5.orders-id.jsonl', '00000000000000000006-10.orders-id.jsonl']);
    await expectEachOnce(range(1, 10));
  });

  it('leaves foreign files alone', async () => {
    await mkdir(join(dir, 'orders', '0'), { recursive: true });
    await writeFile(join(dir, 'orders', '0', 'README.txt'), 'mine');
    const s = await sink();
    await s.write(batch('orders', 0, [1]), { signal });
    expect(await files()).toEqual(['00000000000000000001-1.orders-id.jsonl', 'README.txt']);
  });

  it('answers retry while the directory cannot be written, and recovers', async () => {
    const s = await sink();
    await writeFile(join(dir, 'blocked'), 'a file where the station directory goes');
    const results = await s.write(batch('blocked', 0, range(1, 3)), { signal });
    expect(results.map((r) => r.status)).toEqual(['retry', 'retry', 'retry']);
    expect((results[0] as { reason: string }).reason).toMatch(/EEXIST|ENOTDIR/);
    const { rm } = await import('node:fs/promises');
    await rm(join(dir, 'blocked'));
    expect(statuses(await s.write(batch('blocked', 0, range(1, 3)), { signal }))).toEqual(['ok', 'ok', 'ok']);
  });

  it('an aborted write rejects and confirms nothing', async () => {
    const s = await sink();
    const ac = new AbortController();
    ac.abort();
    await expect(s.write(batch('orders', 0, [1]), { signal: ac.signal })).rejects.toThrow();
    expect(statuses(await s.write(batch('orders', 0, [1]), { signal }))).toEqual(['ok']);
  });

  it('SIGKILL mid-stream, then a replay cut differently: each offset exactly once, byte for byte', async () => {
    const total = 20_000;
    const entry = new URL('../dist/index.js', import.meta.url).href;
    // The writer: batches of 100, one after another, until killed.
    const script = `
      const plugin = (await import(${JSON.stringify(entry)})).default;
      const noop = () => {};
      const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop, child() { return logger; } };
      const metrics = { counter: () => ({ inc: noop }), histogram: () => ({ observe: noop }) };
      const sink = await plugin.open(plugin.config.parse({ dir: ${JSON.stringify(dir)}, gzip: true }), { logger, metrics, connector: 'c', task: 0 });
      const signal = new AbortController().signal;
      for (let first = 1; first <= ${total}; first += 100) {
        const messages = [];
        for (let o = first; o < first + 100; o++) messages.push({ offset: o, timestamp: o, headers: {}, value: new TextEncoder().encode('value ' + o + ' ' + 'x'.repeat(o % 200)) });
        await sink.write({ station: 'crash', stationId: 'crash-1', partition: 0, firstOffset: first, lastOffset: first + 99, messages }, { signal });
        process.stdout.write(first + '\\n');
      }
      setInterval(noop, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let confirmed = 0;
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        const lines = d.toString().trim().split('\n');
        confirmed = Number(lines[lines.length - 1]) + 99;
        if (confirmed >= 1000) resolve();
      });
      child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    child.removeAllListeners('exit');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const partDir = join(dir, 'crash', '0');
    const before = await readdir(partDir);
    expect(before.length).toBeGreaterThanOrEqual(10);
    // Killed mid-stream, not after the end.
    expect(before.filter((n) => n.endsWith('.jsonl.gz')).length).toBeLessThan(total / 100);

    // The runtime replays from the first unacknowledged offset, which may be earlier than what was
    // written (acks lag): replay everything, in batches of 370.
    const s = await sink({ gzip: true });
    for (let first = 1; first <= total; first += 370) {
      const offsets = range(first, Math.min(first + 369, total));
      const messages = offsets.map((o) =>
        message(o, { timestamp: o, value: new TextEncoder().encode(`value ${o} ${'x'.repeat(o % 200)}`) }),
      );
      expect(statuses(await s.write(batch('crash', 0, messages, 'crash-1'), { signal })).every((st) => st === 'ok')).toBe(true);
    }
    const records = await readFileSink(dir);
    expect(records.map((r) => r.offset)).toEqual(range(1, total));
    for (const r of records) expect(r.value.toString()).toBe(`value ${r.offset} ${'x'.repeat(r.offset % 200)}`);
    expect((await readdir(partDir)).some((n) => n.endsWith('.tmp'))).toBe(false);
    expect((await stat(partDir)).isDirectory()).toBe(true);
  });
});

describe('checkConnection and open', () => {
  it('resolves for a writable directory; a directory that cannot be made fails open with DESTINATION_UNUSABLE, not retryable', async () => {
    const s = await sink();
    await expect(s.checkConnection?.()).resolves.toBeUndefined();
    await writeFile(join(dir, 'file'), 'x');
    const bad = await plugin.open(plugin.config.parse({ dir: join(dir, 'file', 'sub') }), fakeContext()).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'DESTINATION_UNUSABLE', retryable: false, issues: [{ path: 'dir' }] });
    expect((bad as Error).message).toContain('ENOTDIR');
  });

  it("a directory under /proc fails open at once with DESTINATION_UNUSABLE (Node 20's recursive mkdir spins there forever)", async () => {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise((resolve) => (timer = setTimeout(() => resolve('open did not settle within 5 s'), 5000)));
    const bad = await Promise.race([
      plugin.open(plugin.config.parse({ dir: '/proc/junction-nope/deeper' }), fakeContext()).catch((e: unknown) => e),
      hung,
    ]);
    clearTimeout(timer);
    expect(bad).toMatchObject({ code: 'DESTINATION_UNUSABLE', retryable: false });
    expect((bad as Error).message).toMatch(/ENOENT/);
    expect(performance.now() - started).toBeLessThan(4000); // a spin is caught at 5 s by the race above
  });

  it('makeDirs makes missing parents, accepts an existing directory, refuses a file in the way', async () => {
    const { makeDirs } = await import('../src/dirs.js');
    await makeDirs(join(dir, 'a', 'b', 'c'));
    expect((await stat(join(dir, 'a', 'b', 'c'))).isDirectory()).toBe(true);
    await makeDirs(join(dir, 'a', 'b', 'c'));
    await makeDirs(dir);
    await writeFile(join(dir, 'f'), 'x');
    await expect(makeDirs(join(dir, 'f'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(makeDirs(join(dir, 'f', 'g'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});

describe('config', () => {
  it('has defaults and a JSON Schema', async () => {
    expect(plugin.config.parse({ dir: '/x' })).toEqual({ dir: '/x', gzip: false, valueEncoding: 'auto', fsync: true });
    expect(plugin.config.safeParse({ dir: '/x', valueEncoding: 'hex' }).success).toBe(false);
    expect(plugin.config.safeParse({ dir: '/x', extra: 1 }).success).toBe(false);
    expect(plugin.manifest).toMatchObject({ name: 'file', kind: 'sink', exactlyOnce: true, sdk: '^1' });
    const pkg = JSON.parse(await readFile(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
    expect(pkg.junction).toEqual({ kind: 'sink', entry: './dist/index.js' });
    expect(pkg.version).toBe(plugin.manifest.version);
  });
});
