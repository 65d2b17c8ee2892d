import { describe, expect, it } from 'vitest';
import { createHash, createHmac } from 'node:crypto';
import { checkTransforms, Pipeline, type Message, type Outcome, type TransformStepInput } from '@junction/transforms';

const enc = new TextEncoder();
const dec = new TextDecoder();

function msg(value: unknown, headers: Record<string, string> = {}, key?: string): Message {
  const m: { value: Uint8Array; headers: Record<string, string>; timestamp: number; key?: string } = {
    value:
      typeof value === 'string' || value instanceof Uint8Array
        ? value instanceof Uint8Array
          ? value
          : enc.encode(value)
        : enc.encode(JSON.stringify(value)),
    headers,
    timestamp: 1_700_000_000_000,
  };
  if (key !== undefined) m.key = key;
  return m;
}

async function chain(steps: TransformStepInput[], kind: 'sink' | 'source' = 'sink'): Promise<Pipeline> {
  const c = checkTransforms(steps, kind);
  if (!c.ok) throw new Error(JSON.stringify(c.issues));
  return Pipeline.open(c.steps);
}

async function one(steps: TransformStepInput[], m: Message, kind: 'sink' | 'source' = 'sink'): Promise<Outcome> {
  return (await chain(steps, kind)).runOne(m);
}

function json(o: Outcome): unknown {
  if (o.status !== 'keep') throw new Error(`expected keep, got ${o.status}${o.status === 'fail' ? `: ${o.error.message}` : ''}`);
  return JSON.parse(dec.decode(o.message.value));
}

describe('filter', () => {
  it('keeps and drops by field, header and key conditions', async () => {
    const steps: TransformStepInput[] = [
      { type: 'filter', keep: { all: [{ field: 'amount', gte: 10 }, { not: { header: 'test', eq: 'yes' } }] } },
    ];
    expect((await one(steps, msg({ amount: 12 }))).status).toBe('keep');
    expect((await one(steps, msg({ amount: 9 }))).status).toBe('drop');
    expect((await one(steps, msg({ amount: 12 }, { test: 'yes' }))).status).toBe('drop');
    expect((await one([{ type: 'filter', drop: { key: true, matches: '^tmp-' } }], msg('x', {}, 'tmp-1'))).status).toBe('drop');
    expect(
      (
        await one(
          [
            {
              type: 'filter',
              keep: {
                any: [
                  { field: 'c', in: ['eu', 'us'] },
                  { field: 'vip', exists: true },
                ],
              },
            },
          ],
          msg({ c: 'jp', vip: null }),
        )
      ).status,
    ).toBe('keep');
    expect((await one([{ type: 'filter', keep: { header: 'n', gt: 5 } }], msg('not json', { n: '7' }))).status).toBe('keep');
  });
  it('a kept message keeps its bytes (the same array) when the filter only read fields', async () => {
    const m = msg('{"amount":  12 ,"x":[1,2]}');
    const o = await one([{ type: 'filter', keep: { field: 'amount', gt: 1 } }], m);
    expect(o.status === 'keep' && o.message).toBe(m);
  });
  it('a field condition on a value that is not JSON fails the message with the step named', async () => {
    const o = await one([{ type: 'filter', name: 'big-orders', keep: { field: 'amount', gt: 1 } }], msg('plain text'));
    expect(o.status).toBe('fail');
    if (o.status === 'fail') {
      expect(o.error.code).toBe('TRANSFORM_FAILED');
      expect(o.error.message).toMatch(/^transforms\[0\] \(big-orders\): the value is not JSON/);
    }
  });
});

describe('fields', () => {
  it('drop, keep and rename', async () => {
    expect(json(await one([{ type: 'drop', fields: ['a', 'b.c'] }], msg({ a: 1, b: { c: 2, d: 3 }, e: 4 })))).toEqual({
      b: { d: 3 },
      e: 4,
    });
    expect(json(await one([{ type: 'keep', fields: ['a', 'b.c'] }], msg({ a: 1, b: { c: 2, d: 3 }, e: 4 })))).toEqual({
      a: 1,
      b: { c: 2 },
    });
    expect(json(await one([{ type: 'rename', fields: { a: 'x', 'b.c': 'y.z' } }], msg({ a: 1, b: { c: 2 } })))).toEqual({
      b: {},
      x: 1,
      y: { z: 2 },
    });
  });
  it('a step that changes nothing keeps the bytes', async () => {
    const m = msg('{ "a" : 1 }');
    for (const s of [
      { type: 'drop', fields: ['zz'] },
      { type: 'rename', fields: { zz: 'y' } },
      { type: 'mask', fields: ['zz'] },
      { type: 'keep', fields: ['a'] },
    ] as TransformStepInput[]) {
      const o = await one([s], m);
      expect(o.status === 'keep' && o.message.value).toBe(m.value);
    }
  });
  it('rename of a top-level key keeps its place; a key already named so gives way', async () => {
    const o = await one([{ type: 'rename', fields: { a: 'x' } }], msg('{"z":0,"a":1,"x":9,"b":{"a":2}}'));
    expect(o.status === 'keep' && dec.decode(o.message.value)).toBe('{"z":0,"x":1,"b":{"a":2}}');
  });
  it('keep on a value that is not an object fails', async () => {
    expect((await one([{ type: 'keep', fields: ['a'] }], msg([1, 2]))).status).toBe('fail');
  });
});

describe('mask', () => {
  it('replaces, or hashes with SHA-256 / HMAC-SHA-256 as stated', async () => {
    expect(json(await one([{ type: 'mask', fields: ['card', 'user.ssn'] }], msg({ card: '4111', user: { ssn: 12 } })))).toEqual({
      card: '****',
      user: { ssn: '****' },
    });
    const h = json(await one([{ type: 'mask', fields: ['email'], method: 'hash' }], msg({ email: 'a@b.c' }))) as { email: string };
    expect(h.email).toBe(createHash('sha256').update('a@b.c').digest('hex'));
    // The key is resolved by the runtime before the chain opens; here the resolved text is given.
    const p = await Pipeline.open([{ type: 'mask', fields: ['n'], method: 'hash', replacement: '', key: 'k3y' }]);
    const o = (await p.runOne(msg({ n: 42 }))) as Outcome;
    expect(json(o)).toEqual({ n: createHmac('sha256', 'k3y').update('42').digest('hex') });
  });
  it('refuses a literal key in the config: only references', () => {
    const c = checkTransforms([{ type: 'mask', fields: ['a'], method: 'hash', key: 'literal-secret' }], 'sink');
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.issues[0]!.path).toBe('transforms[0].key');
  });
});

describe('headers, route, flatten, timestamp, map', () => {
  it('setHeader from a fixed value does not parse the value (non-JSON bytes pass through)', async () => {
    const bytes = new Uint8Array([0xff, 0x00, 0xfe]);
    const m = msg(bytes, { a: '1' });
    const o = await one([{ type: 'setHeader', header: 'source', value: 'crm' }], m);
    expect(o.status).toBe('keep');
    if (o.status === 'keep') {
      expect(o.message.value).toBe(bytes);
      expect(o.message.headers).toEqual({ a: '1', source: 'crm' });
      expect(m.headers).toEqual({ a: '1' });
    }
    const f = await one([{ type: 'setHeader', header: 'region', from: 'r.code' }], msg({ r: { code: 'eu' } }));
    expect(f.status === 'keep' && f.message.headers).toEqual({ region: 'eu' });
  });
  it('route picks a station from a field (sources only)', async () => {
    const o = await one([{ type: 'route', field: 'region', station: 'orders-{value}' }], msg({ region: 'eu' }), 'source');
    expect(o.status === 'keep' && o.station).toBe('orders-eu');
    const missing = await one([{ type: 'route', field: 'region' }], msg({}), 'source');
    expect(missing.status === 'keep' && missing.station).toBeUndefined();
    expect((await one([{ type: 'route', field: 'region', missing: 'fail' }], msg({}), 'source')).status).toBe('fail');
    const c = checkTransforms(
      [
        { type: 'drop', fields: ['a'] },
        { type: 'route', field: 'region' },
      ],
      'sink',
    );
    expect(c.ok).toBe(false);
    if (!c.ok)
      expect(c.issues).toEqual([{ path: 'transforms[1].type', message: expect.stringMatching(/^route is for source connectors/) }]);
  });
  it('flatten', async () => {
    expect(json(await one([{ type: 'flatten' }], msg({ a: { b: 1, c: { d: [1] } }, e: {} })))).toEqual({ 'a.b': 1, 'a.c.d': [1], e: {} });
    expect(json(await one([{ type: 'flatten', field: 'x', separator: '_' }], msg({ x: { y: { z: 1 } }, k: { l: 2 } })))).toEqual({
      x: { y_z: 1 },
      k: { l: 2 },
    });
  });
  it('timestamp converts epoch ms / s and ISO text', async () => {
    expect(json(await one([{ type: 'timestamp', field: 't', to: 'iso' }], msg({ t: 1_700_000_000_000 })))).toEqual({
      t: '2023-11-14T22:13:20.000Z',
    });
    expect(json(await one([{ type: 'timestamp', field: 't', to: 'iso' }], msg({ t: 1_700_000_000 })))).toEqual({
      t: '2023-11-14T22:13:20.000Z',
    });
    expect(json(await one([{ type: 'timestamp', field: 't', to: 'epochMillis' }], msg({ t: '2023-11-14T22:13:20Z' })))).toEqual({
      t: 1_700_000_000_000,
    });
    expect(
      json(await one([{ type: 'timestamp', field: 't', to: 'epochSeconds', from: 'epochMillis' }], msg({ t: 1_700_000_000_123 }))),
    ).toEqual({ t: 1_700_000_000 });
    const bad = await one([{ type: 'timestamp', field: 't', to: 'iso' }], msg({ t: 'yesterday' }));
    expect(bad.status === 'fail' && bad.error.message).toMatch(/^transforms\[0\] \(timestamp\): not a valid time/);
  });
  it('map evaluates JSONata with $headers / $key bound; no result drops', async () => {
    const o = await one(
      [{ type: 'map', expression: '{ "id": id, "total": $sum(items.price), "src": $headers.src, "k": $key }' }],
      msg({ id: 7, items: [{ price: 2 }, { price: 3 }] }, { src: 'web' }, 'k1'),
    );
    expect(json(o)).toEqual({ id: 7, total: 5, src: 'web', k: 'k1' });
    expect((await one([{ type: 'map', expression: 'nothing.here' }], msg({ a: 1 }))).status).toBe('drop');
    const bad = checkTransforms([{ type: 'map', expression: '{ "a": ' }], 'sink');
    expect(!bad.ok && bad.issues[0]!.path).toBe('transforms[0].expression');
    const fails = await one([{ type: 'map', expression: '$error("no")' }], msg({}));
    expect(fails.status === 'fail' && fails.error.message).toMatch(/^transforms\[0\] \(map\): the expression failed/);
  });
});

describe('config', () => {
  it('reports every bad field with its path', () => {
    const c = checkTransforms(
      [
        { type: 'drop', fields: [] },
        { type: 'filter', keep: { field: 'a', gt: 1, lt: 2 } },
        { type: 'nope' },
        { type: 'mask', fields: ['a..b'] },
      ],
      'sink',
    );
    expect(c.ok).toBe(false);
    if (!c.ok) {
      const paths = c.issues.map((i) => i.path);
      expect(paths).toContain('transforms[0].fields');
      expect(paths.some((p) => p.startsWith('transforms[1].keep'))).toBe(true);
      expect(paths).toContain('transforms[2].type');
      expect(paths).toContain('transforms[3].fields[0]');
    }
  });
});

describe('chain', () => {
  it('applies steps in order and encodes once at the end', async () => {
    const p = await chain([
      { type: 'filter', drop: { field: 'kind', eq: 'test' } },
      { type: 'mask', fields: ['email'] },
      { type: 'rename', fields: { email: 'contact' } },
      { type: 'setHeader', header: 'masked', value: 'true' },
    ]);
    const out = await p.run([msg({ kind: 'test', email: 'x' }), msg({ kind: 'real', email: 'y' }), msg('{"kind":"real"}')]);
    expect(out.map((o) => o.status)).toEqual(['drop', 'keep', 'keep']);
    expect(json(out[1]!)).toEqual({ kind: 'real', contact: '****' });
    // Nothing to mask or rename: the bytes are untouched, only the header was added.
    expect(out[2]!.status === 'keep' && dec.decode(out[2]!.message.value)).toBe('{"kind":"real"}');
  });

  it('run with yieldEveryMs gives the event loop a turn between slices of the batch', async () => {
    const p = await chain([{ type: 'filter', keep: { field: 'n', gte: 0 } }]);
    let started = 0;
    const inputs = Array.from({ length: 20_000 }, (_, i) => {
      const m = msg({ n: i });
      // Read once per message as it enters the chain: counts how far the run got.
      Object.defineProperty(m, 'key', {
        get: () => {
          started++;
          return undefined;
        },
      });
      return m;
    });
    let seenAt = -1;
    setImmediate(() => {
      seenAt = started;
    });
    const out = await p.run(inputs, { yieldEveryMs: 0 });
    expect(out.filter((o) => o.status === 'keep')).toHaveLength(20_000);
    // The immediate ran while the batch was under way, not after it (a run in one go: 20,000).
    expect(seenAt).toBeGreaterThan(0);
    expect(seenAt).toBeLessThan(20_000);
  });

  it('a chain closed while a batch runs through it (between slices) rejects the run: nothing passes untransformed', async () => {
    const p = await chain([{ type: 'mask', fields: ['email'] }]);
    const inputs = Array.from({ length: 20_000 }, (_, i) => msg({ n: i, email: `u${i}@example.com` }));
    setImmediate(() => void p.close());
    await expect(p.run(inputs, { yieldEveryMs: 0 })).rejects.toThrow(/closed while a batch was running/);
  });

  it('encodes a batch of changed values across chunks, byte for byte (multi-byte text, a value larger than a chunk)', async () => {
    const p = await chain([{ type: 'rename', fields: { a: 'b' } }]);
    // ~1.3 MB of changed values in all: several 256 KiB chunks, one value of 600 KiB alone in one, and
    // unchanged values between them that keep their very bytes.
    const inputs: Message[] = [];
    for (let i = 0; i < 400; i++) {
      const text = i === 200 ? 'é✓'.repeat(200_000) : `${'x'.repeat(i * 7)}héllo ✓ 😀 ${i}`;
      inputs.push(msg(i % 3 === 0 ? { n: i, c: text } : { n: i, a: text }));
    }
    const out = await p.run(inputs);
    expect(out).toHaveLength(400);
    for (let i = 0; i < 400; i++) {
      const o = out[i]!;
      if (o.status !== 'keep') throw new Error(`message ${i}: ${o.status}`);
      if (i % 3 === 0) {
        expect(o.changed).toBe(false);
        expect(o.message.value).toBe(inputs[i]!.value);
        continue;
      }
      const want = Buffer.from(JSON.stringify({ n: i, b: (JSON.parse(dec.decode(inputs[i]!.value)) as { a: string }).a }), 'utf8');
      expect(Buffer.compare(Buffer.from(o.message.value), want), `message ${i}`).toBe(0);
    }
  });
});
