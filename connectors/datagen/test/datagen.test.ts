import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { Source, SourceBatch, SourceMessage } from '@junction/sdk-connector';
import { fakeContext, sourceConformanceSuite } from '@junction/sdk-connector/testing';
import plugin, { type DatagenPosition } from '../src/index.js';

const FIXED = '2025-03-01T12:00:00.000Z';
const decoder = new TextDecoder();

async function open(config: Record<string, unknown>, position?: DatagenPosition): Promise<Source<DatagenPosition>> {
  return plugin.open(plugin.config.parse(config), fakeContext<DatagenPosition>(position === undefined ? {} : { position }));
}

/** Reads until `n` messages (or the end), then stops the source. */
async function take(
  source: Source<DatagenPosition>,
  n: number,
): Promise<{ messages: SourceMessage[]; batches: SourceBatch<DatagenPosition>[] }> {
  const ac = new AbortController();
  const messages: SourceMessage[] = [];
  const batches: SourceBatch<DatagenPosition>[] = [];
  for await (const b of source.read(ac.signal)) {
    batches.push(b);
    messages.push(...b.messages);
    if (messages.length >= n) break;
  }
  ac.abort();
  await source.close();
  return { messages: messages.slice(0, n), batches };
}

function json(m: SourceMessage): Record<string, unknown> {
  return JSON.parse(decoder.decode(m.value)) as Record<string, unknown>;
}

for (const shape of ['order', 'click', 'log'] as const) {
  sourceConformanceSuite({ describe, it }, { plugin, config: { shape, seed: 7, batchSize: 20 }, resume: 'exact', batches: 4 });
}

describe('determinism', () => {
  it('the same seed and start time give the same bytes; another seed does not', async () => {
    const a = await take(await open({ seed: 42, startTime: FIXED, batchSize: 50 }), 300);
    const b = await take(await open({ seed: 42, startTime: FIXED, batchSize: 7 }), 300);
    const c = await take(await open({ seed: 43, startTime: FIXED }), 300);
    expect(a.messages.map((m) => decoder.decode(m.value))).toEqual(b.messages.map((m) => decoder.decode(m.value)));
    expect(a.messages.map((m) => m.msgId)).toEqual(b.messages.map((m) => m.msgId));
    expect(decoder.decode(a.messages[0]?.value)).not.toBe(decoder.decode(c.messages[0]?.value));
  });

  it('resuming from a position continues at seq + 1 with the same bytes as an uninterrupted run', async () => {
    const whole = await take(await open({ seed: 5, batchSize: 25 }), 200);
    const startMs = whole.batches[0]?.position.startMs as number;
    // Stop after 3 batches (75 messages), restart from the stored position with another batch size.
    const first = await take(await open({ seed: 5, batchSize: 25 }, undefined), 75);
    expect(first.batches.at(-1)?.position).toEqual({ seq: 75, startMs: first.batches[0]?.position.startMs });
    const rest = await take(await open({ seed: 5, batchSize: 40 }, { seq: 75, startMs }), 125);
    expect(rest.messages[0]?.msgId).toBe('order-5-76');
    expect(rest.messages.map((m) => decoder.decode(m.value))).toEqual(whole.messages.slice(75).map((m) => decoder.decode(m.value)));
  });

  it('with startTime "now" the start is fixed at the first open and carried in the position', async () => {
    const before = Date.now();
    const first = await take(await open({ seed: 1 }), 10);
    const pos = first.batches[0]?.position as DatagenPosition;
    expect(pos.startMs).toBeGreaterThanOrEqual(before);
    expect(Date.parse(json(first.messages[0] as SourceMessage).createdAt as string)).toBeGreaterThanOrEqual(before);
    const later = await take(await open({ seed: 1 }, { seq: 0, startMs: pos.startMs }), 10);
    expect(later.messages.map((m) => decoder.decode(m.value))).toEqual(first.messages.map((m) => decoder.decode(m.value)));
  });

  it('refuses a position it cannot resume from', async () => {
    await expect(open({}, { nope: true } as never)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('msgIds are <shape>-<seed>-<seq>, so a replay is deduplicated by the station', async () => {
    const { messages } = await take(await open({ shape: 'click', seed: 9 }), 3);
    expect(messages.map((m) => m.msgId)).toEqual(['click-9-1', 'click-9-2', 'click-9-3']);
  });
});

describe('limits and rate', () => {
  it('maxMessages stops the stream, also across a restart', async () => {
    const { messages, batches } = await take(await open({ maxMessages: 250, batchSize: 100 }), 10_000);
    expect(messages).toHaveLength(250);
    expect(batches.map((b) => b.messages.length)).toEqual([100, 100, 50]);
    const after = await take(await open({ maxMessages: 250 }, { seq: 200, startMs: 0 }), 10_000);
    expect(after.messages).toHaveLength(50);
    expect(after.messages[0]?.msgId).toBe('order-1-201');
    const done = await take(await open({ maxMessages: 250 }, { seq: 250, startMs: 0 }), 10_000);
    expect(done.messages).toHaveLength(0);
  });

  it('ratePerSec paces the stream (roughly), in small batches', async () => {
    const started = performance.now();
    const { messages, batches } = await take(await open({ ratePerSec: 400, batchSize: 100 }), 200);
    const elapsed = performance.now() - started;
    expect(messages).toHaveLength(200);
    // 200 messages at 400/s: the first batch is immediate, so ≈ 0.5 s minus one batch.
    expect(elapsed).toBeGreaterThan(350);
    expect(elapsed).toBeLessThan(4000); // pacing 10x too slow would take 5 s; a loaded machine adds timer delays
    expect(batches[0]?.messages.length).toBe(20); // 50 ms worth at 400/s
  });

  it('unlimited is fast', async () => {
    const started = performance.now();
    const { messages } = await take(await open({ batchSize: 1000, shape: 'log' }), 20_000);
    expect(messages).toHaveLength(20_000);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('close() ends a read that is waiting for its next slot', async () => {
    const source = await open({ ratePerSec: 0.5 });
    const it = source.read(new AbortController().signal)[Symbol.asyncIterator]();
    await it.next();
    const pending = it.next();
    await source.close();
    await expect(pending).resolves.toMatchObject({ done: true });
  });

  it('padTo pads events to at least that many bytes, with a last "pad" field, as JSON.stringify writes it', async () => {
    for (const shape of ['order', 'click', 'log'] as const) {
      const { messages } = await take(await open({ shape, padTo: 1024, startTime: FIXED }), 50);
      const bare = await take(await open({ shape, startTime: FIXED }), 50);
      messages.forEach((m, i) => {
        expect(m.value.byteLength).toBeGreaterThanOrEqual(1024);
        expect(m.value.byteLength).toBeLessThan(1040);
        const ev = json(m);
        expect(typeof ev.pad).toBe('string');
        expect(Object.keys(ev).at(-1)).toBe('pad');
        expect(Buffer.from(m.value).toString()).toBe(JSON.stringify(ev));
        // The event itself is the unpadded one.
        const { pad: _, ...rest } = ev;
        expect(rest).toEqual(json(bare.messages[i]!));
      });
    }
  });
});

describe('shapes', () => {
  it('order: plausible ids, amounts that add up, currencies and ISO times', async () => {
    const { messages } = await take(await open({ shape: 'order', startTime: FIXED, seed: 3 }), 500);
    const currencies = new Set<string>();
    for (const m of messages) {
      const o = json(m) as {
        type: string;
        orderId: string;
        userId: string;
        createdAt: string;
        currency: string;
        items: { sku: string; quantity: number; unitPrice: number }[];
        subtotal: number;
        tax: number;
        shipping: number;
        total: number;
        status: string;
      };
      expect(o.type).toBe('order');
      expect(o.orderId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(o.userId).toMatch(/^u_\d{5}$/);
      expect(new Date(o.createdAt).toISOString()).toBe(o.createdAt);
      expect(o.items.length).toBeGreaterThanOrEqual(1);
      expect(o.total).toBeCloseTo(o.subtotal + o.tax + o.shipping, 1);
      expect(o.subtotal).toBeCloseTo(
        o.items.reduce((s, i) => s + i.unitPrice * i.quantity, 0),
        1,
      );
      expect(['placed', 'paid', 'shipped', 'delivered', 'cancelled']).toContain(o.status);
      currencies.add(o.currency);
    }
    expect(currencies.size).toBeGreaterThanOrEqual(5);
    // Event times advance with seq.
    const t = messages.map((m) => Date.parse(json(m).createdAt as string));
    expect(t[0]).toBeGreaterThanOrEqual(Date.parse(FIXED));
    expect((t.at(-1) as number) > (t[0] as number)).toBe(true);
  });

  it('click: urls, user agents, devices, sessions', async () => {
    const { messages } = await take(await open({ shape: 'click', seed: 4 }), 300);
    const devices = new Set<string>();
    for (const m of messages) {
      const c = json(m) as { url: string; userAgent: string; device: string; sessionId: string; ip: string; referrer: string | null };
      expect(() => new URL(c.url)).not.toThrow();
      expect(c.userAgent).toMatch(/^Mozilla\/5\.0 /);
      expect(c.sessionId).toMatch(/^s_[0-9a-f]{8}$/);
      expect(c.ip).toMatch(/^(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+$/);
      if (c.referrer !== null) expect(() => new URL(c.referrer as string)).not.toThrow();
      devices.add(c.device);
    }
    expect(devices).toEqual(new Set(['desktop', 'mobile', 'tablet']));
  });

  it('log: levels with plausible frequencies, trace ids, http status', async () => {
    const { messages } = await take(await open({ shape: 'log', seed: 2 }), 2000);
    const levels: Record<string, number> = {};
    for (const m of messages) {
      const l = json(m) as { level: string; traceId: string; spanId: string; http: { status: number; latencyMs: number } };
      levels[l.level] = (levels[l.level] ?? 0) + 1;
      expect(l.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(l.spanId).toMatch(/^[0-9a-f]{16}$/);
      if (l.level === 'error') expect(l.http.status).toBeGreaterThanOrEqual(500);
      expect(l.http.latencyMs).toBeGreaterThan(0);
    }
    expect(levels.info).toBeGreaterThan(levels.warn as number);
    expect(levels.warn).toBeGreaterThan(levels.error as number);
    expect(levels.error).toBeGreaterThan(0);
  });

  it('keyField sets the key from the event; an unknown field is a config error with its path', async () => {
    const { messages } = await take(await open({ shape: 'order', keyField: 'userId' }), 20);
    for (const m of messages) expect(m.key).toBe(json(m).userId);
    const bad = plugin.config.safeParse({ shape: 'log', keyField: 'userId' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['keyField']);
    const { messages: unkeyed } = await take(await open({}), 1);
    expect(unkeyed[0]?.key).toBeUndefined();
    expect(unkeyed[0]?.headers).toEqual({ 'content-type': 'application/json', 'datagen-shape': 'order' });
  });
});

describe('package', () => {
  it('names its kind and entry for the registry', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.junction).toEqual({ kind: 'source', entry: './dist/index.js' });
    expect(plugin.manifest).toMatchObject({ name: 'datagen', kind: 'source', version: pkg.version, sdk: '^1' });
  });
});
