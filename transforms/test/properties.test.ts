import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  checkTransforms,
  flattenObject,
  fromMillis,
  Pipeline,
  toMillis,
  type Message,
  type TransformStepInput,
} from '@junction/transforms';

const enc = new TextEncoder();
const dec = new TextDecoder();
const key = fc.stringMatching(/^[a-z]{1,6}$/);
const scalar = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null));
const record = fc.dictionary(key, fc.oneof(scalar, fc.dictionary(key, scalar, { maxKeys: 3 })), { maxKeys: 6 });

async function open(steps: TransformStepInput[], kind: 'sink' | 'source' = 'sink'): Promise<Pipeline> {
  const c = checkTransforms(steps, kind);
  if (!c.ok) throw new Error(JSON.stringify(c.issues));
  return Pipeline.open(c.steps);
}
const m = (value: Uint8Array, headers: Record<string, string> = {}): Message => ({ value, headers, timestamp: 0 });
const parse = (o: Awaited<ReturnType<Pipeline['runOne']>>): unknown => {
  if (o.status !== 'keep') throw new Error(o.status);
  return JSON.parse(dec.decode(o.message.value));
};

describe('properties', () => {
  it('header-only steps leave any bytes (JSON or not) identical', async () => {
    const p = await open([
      { type: 'setHeader', header: 'h', value: 'v' },
      { type: 'filter', keep: { header: 'h', eq: 'v' } },
    ]);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        const o = await p.runOne(m(bytes));
        expect(o.status === 'keep' && o.message.value).toBe(bytes);
      }),
    );
  });
  it('a filter keeps exactly the messages that meet its condition, and their bytes', async () => {
    const p = await open([{ type: 'filter', keep: { field: 'n', gte: 0 } }]);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: -100, max: 100 }), { maxLength: 30 }), async (ns) => {
        const msgs = ns.map((n) => m(enc.encode(JSON.stringify({ n, pad: 'x' }))));
        const out = await p.run(msgs);
        const kept = out.flatMap((o) => (o.status === 'keep' ? [o.message.value] : []));
        expect(kept).toEqual(msgs.filter((_, i) => ns[i]! >= 0).map((x) => x.value));
        kept.forEach((v, i) => expect(v).toBe(msgs.filter((_, j) => ns[j]! >= 0)[i]!.value));
      }),
    );
  });
  it('drop then keep of the same top-level fields partition an object', async () => {
    await fc.assert(
      fc.asyncProperty(record, fc.array(key, { minLength: 1, maxLength: 4 }), async (obj, fields) => {
        const bytes = enc.encode(JSON.stringify(obj));
        const dropped = parse(await (await open([{ type: 'drop', fields }])).runOne(m(bytes))) as Record<string, unknown>;
        const kept = parse(await (await open([{ type: 'keep', fields }])).runOne(m(bytes))) as Record<string, unknown>;
        expect({ ...dropped, ...kept }).toEqual(obj);
        for (const f of fields) expect(Object.hasOwn(dropped, f)).toBe(false);
        for (const k of Object.keys(kept)) expect(fields).toContain(k);
      }),
    );
  });
  it('rename there and back is the identity (as a set of fields)', async () => {
    await fc.assert(
      fc.asyncProperty(record, key, async (obj, from) => {
        fc.pre(!Object.hasOwn(obj, 'zz_tmp'));
        const bytes = enc.encode(JSON.stringify(obj));
        const p = await open([
          { type: 'rename', fields: { [from]: 'zz_tmp' } },
          { type: 'rename', fields: { zz_tmp: from } },
        ]);
        expect(parse(await p.runOne(m(bytes)))).toEqual(obj);
      }),
    );
  });
  it('mask leaves no masked value behind and touches no other field', async () => {
    await fc.assert(
      fc.asyncProperty(record, key, fc.constantFrom('replace', 'hash'), async (obj, field, method) => {
        const p = await open([{ type: 'mask', fields: [field], method: method as 'replace' | 'hash' }]);
        const out = parse(await p.runOne(m(enc.encode(JSON.stringify(obj))))) as Record<string, unknown>;
        const { [field]: masked, ...rest } = out;
        const { [field]: orig, ...origRest } = obj;
        expect(rest).toEqual(origRest);
        if (orig === undefined) expect(masked).toBeUndefined();
        else expect(masked).toMatch(method === 'hash' ? /^[0-9a-f]{64}$/ : /^\*{4}$/);
      }),
    );
  });
  it('flatten keeps every leaf and leaves no nested object', () => {
    fc.assert(
      fc.property(record, (obj) => {
        const flat = flattenObject(obj, '.');
        for (const v of Object.values(flat))
          expect(typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0).toBe(false);
        const leaves = (o: Record<string, unknown>): number =>
          Object.values(o).reduce<number>(
            (n, v) =>
              n +
              (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0
                ? leaves(v as Record<string, unknown>)
                : 1),
            0,
          );
        expect(Object.keys(flat).length).toBe(leaves(obj));
      }),
    );
  });
  it('timestamp: ms → iso → ms round-trips', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1e11, max: 4e12 }), (ms) => {
        expect(toMillis(fromMillis(ms, 'iso'), 'auto')).toBe(ms);
        expect(toMillis(fromMillis(ms, 'epochSeconds'), 'epochSeconds')).toBe(Math.trunc(ms / 1000) * 1000);
      }),
    );
  });
  it('route names the station from the field for any value', async () => {
    const p = await open([{ type: 'route', field: 'r', station: 's-{value}' }], 'source');
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.stringMatching(/^[a-z0-9]{1,10}$/), fc.integer()), async (r) => {
        const o = await p.runOne(m(enc.encode(JSON.stringify({ r }))));
        expect(o.status === 'keep' && o.station).toBe(`s-${String(r)}`);
      }),
    );
  });
});
