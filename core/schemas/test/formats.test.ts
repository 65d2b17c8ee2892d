import { describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import { FORMATS, compatibilityProblems } from '../src/index.js';
import type { ParsedSchema } from '../src/index.js';

const json = (s: object): ParsedSchema => FORMATS.JSON.parse(JSON.stringify(s), []);
const proto = (s: string): ParsedSchema => FORMATS.PROTOBUF.parse(s, []);
const bytes = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** A small seeded PRNG (mulberry32): the same cases every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('JSON Schema', () => {
  it('checks values and names the failing path; the canonical form ignores key order and whitespace', () => {
    const s = json({ type: 'object', properties: { a: { type: 'integer', minimum: 0 } }, required: ['a'] });
    expect(s.check(bytes({ a: 1 }))).toEqual({ ok: true, value: { a: 1 } });
    expect(s.check(bytes({ a: -1 }))).toMatchObject({ ok: false, violation: { path: '/a' } });
    expect(s.check(Buffer.from('{not json'))).toMatchObject({
      ok: false,
      violation: { path: '', reason: expect.stringContaining('not JSON') as unknown },
    });
    const same = FORMATS.JSON.parse('{ "required": ["a"],  "properties": {"a": {"minimum": 0, "type": "integer"}}, "type": "object" }', []);
    expect(same.canonical).toBe(s.canonical);
  });

  it('2020-12 schemas compile with the 2020 dialect (prefixItems)', () => {
    const s = json({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'array',
      prefixItems: [{ type: 'string' }, { type: 'integer' }],
      items: false,
    });
    expect(s.check(bytes(['a', 1])).ok).toBe(true);
    expect(s.check(bytes(['a', 1, 2])).ok).toBe(false);
    expect(s.check(bytes([1, 1])).ok).toBe(false);
  });

  it('names the usual backward breaks', () => {
    const base = { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false };
    const cases: [object, boolean][] = [
      [{ ...base, properties: { a: { type: 'string' }, b: { type: 'string' } } }, true], // added to a closed model
      [{ ...base, required: ['a'] }, false], // required now
      [{ ...base, properties: {} }, false], // removed from a closed model
      [{ ...base, properties: { a: { type: ['string', 'null'] } } }, true], // widened
      [{ ...base, properties: { a: { type: 'integer' } } }, false], // type changed
      [{ ...base, properties: { a: { type: 'string', maxLength: 3 } } }, false], // bound added
      [{ type: 'object', properties: { a: { type: 'string' } } }, true], // opened
    ];
    for (const [next, ok] of cases) {
      const problems = compatibilityProblems(json(next), [{ version: 1, schema: json(base) }], 'BACKWARD');
      expect({ next, ok: problems.length === 0 }, problems.join('\n')).toEqual({ next, ok });
    }
    // Adding a property to an open model is a backward break (old data may hold it with any value)…
    const open = { type: 'object', properties: { a: { type: 'string' } } };
    expect(
      compatibilityProblems(
        json({ ...open, properties: { a: { type: 'string' }, b: { type: 'integer' } } }),
        [{ version: 1, schema: json(open) }],
        'BACKWARD',
      ),
    ).toHaveLength(1);
    // …and FORWARD looks the other way: the old schema must read the new one's values.
    expect(compatibilityProblems(json({ ...base, required: ['a'] }), [{ version: 1, schema: json(base) }], 'FORWARD')).toEqual([]);
  });

  it('is sound: whatever it calls compatible accepts every value the writer accepts (2,000 random pairs)', () => {
    const rand = rng(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const types = ['string', 'integer', 'number', 'boolean', 'null'] as const;
    const leaf = (): Record<string, unknown> => {
      const t = pick(types);
      const other = pick(types.filter((x) => x !== t));
      const s: Record<string, unknown> = rand() < 0.2 ? { type: [t, other] } : { type: t };
      if (t === 'integer' || t === 'number') {
        if (rand() < 0.4) s.minimum = Math.floor(rand() * 5);
        if (rand() < 0.4) s.maximum = 5 + Math.floor(rand() * 5);
      }
      if (t === 'string' && rand() < 0.3) s.maxLength = 1 + Math.floor(rand() * 4);
      if (rand() < 0.15)
        s.enum = t === 'string' ? ['a', 'b', 'c'].slice(0, 1 + Math.floor(rand() * 3)) : [1, 2, 3].slice(0, 1 + Math.floor(rand() * 3));
      return s;
    };
    const names = ['a', 'b', 'c', 'd'];
    const object = (): Record<string, unknown> => {
      const properties: Record<string, unknown> = {};
      for (const n of names) if (rand() < 0.6) properties[n] = leaf();
      const s: Record<string, unknown> = { type: 'object', properties };
      const req = names.filter((n) => n in properties && rand() < 0.4);
      if (req.length > 0) s.required = req;
      if (rand() < 0.5) s.additionalProperties = false;
      return s;
    };
    const value = (): Record<string, unknown> => {
      const v: Record<string, unknown> = {};
      for (const n of names) {
        if (rand() < 0.5) continue;
        v[n] = pick([null, true, 0, 1, 2, 3, 4.5, 7, 12, -1, 'a', 'b', 'c', 'abcdef', '']);
      }
      return v;
    };
    const ajv = new Ajv({ strict: false });
    let compatiblePairs = 0;
    let checkedValues = 0;
    for (let i = 0; i < 2000; i++) {
      const writer = object();
      const reader = rand() < 0.5 ? object() : { ...writer, properties: { ...(writer.properties as object) } };
      if (reader !== writer && rand() < 0.5) delete reader.additionalProperties;
      const problems = json(reader).canRead(json(writer));
      if (problems.length > 0) continue;
      compatiblePairs++;
      const w = ajv.compile(writer);
      const r = ajv.compile(reader);
      for (let j = 0; j < 40; j++) {
        const v = value();
        if (!w(v)) continue;
        checkedValues++;
        expect(r(v), `${JSON.stringify(writer)} -> ${JSON.stringify(reader)} on ${JSON.stringify(v)}`).toBe(true);
      }
    }
    expect(compatiblePairs).toBeGreaterThan(100);
    expect(checkedValues).toBeGreaterThan(500);
  });
});

describe('Avro', () => {
  it('checks Avro binary: truncated or trailing bytes are violations', () => {
    const s = FORMATS.AVRO.parse(
      JSON.stringify({
        type: 'record',
        name: 'R',
        fields: [
          { name: 'n', type: 'long' },
          { name: 's', type: 'string' },
        ],
      }),
      [],
    );
    const good = Buffer.from([0x02, 0x04, 0x68, 0x69]); // n=1, s="hi"
    expect(s.check(good)).toEqual({ ok: true, value: expect.objectContaining({ n: 1, s: 'hi' }) as unknown });
    expect(s.check(good.subarray(0, 3)).ok).toBe(false);
    expect(s.check(Buffer.concat([good, Buffer.from([0])])).ok).toBe(false);
  });
});

describe('Protobuf', () => {
  const v1 = 'syntax = "proto3"; package p; message A { string id = 1; int32 n = 2; message In { bool x = 1; } } message B { A a = 1; }';
  it('picks the message type by Confluent message indexes and checks the wire bytes', () => {
    const s = proto(v1);
    expect(s.check(Buffer.from([0x0a, 0x01, 0x61, 0x10, 0x05]))).toMatchObject({ ok: true, value: { id: 'a', n: 5 } });
    expect(s.check(Buffer.from([0x0a, 0x05, 0x61]))).toMatchObject({ ok: false }); // length past the end
    expect(s.check(Buffer.from([0x08, 0x01]), [0, 0])).toMatchObject({ ok: true, value: { x: true } });
    expect(s.check(Buffer.from([]), [7])).toMatchObject({
      ok: false,
      violation: { reason: expect.stringContaining('no message type') as unknown },
    });
  });

  it('compatibility: adding and removing fields is fine, changing a field type or removing a message is not', () => {
    const base = [{ version: 1, schema: proto(v1) }];
    expect(compatibilityProblems(proto(v1.replace('int32 n = 2;', 'int32 n = 2; string extra = 3;')), base, 'FULL')).toEqual([]);
    expect(compatibilityProblems(proto(v1.replace('int32 n = 2;', '')), base, 'FULL')).toEqual([]);
    expect(compatibilityProblems(proto(v1.replace('int32 n = 2;', 'int64 n = 2;')), base, 'FULL')).toEqual([]); // the same varint
    expect(compatibilityProblems(proto(v1.replace('int32 n = 2;', 'string n = 2;')), base, 'BACKWARD')).toEqual([
      expect.stringContaining('p.A.n (2): type changed') as unknown,
    ]);
    expect(compatibilityProblems(proto(v1.replace(' message B { A a = 1; }', '')), base, 'BACKWARD')).toEqual([
      expect.stringContaining('message p.B removed') as unknown,
    ]);
  });

  it("imports of Google's well-known types resolve without a reference", () => {
    const s = proto('syntax = "proto3"; import "google/protobuf/timestamp.proto"; message E { google.protobuf.Timestamp at = 1; }');
    expect(s.check(Buffer.from([0x0a, 0x02, 0x08, 0x01])).ok).toBe(true);
  });
});
