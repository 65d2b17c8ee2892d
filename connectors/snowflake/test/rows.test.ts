import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SnowflakeSinkConfig } from '../src/config.js';
import { ntz, rowEncoder, toRow } from '../src/rows.js';

describe('TIMESTAMP_NTZ text', () => {
  it('is toISOString() without the zone, for any integral ms (before 1970 and after 9999 too)', () => {
    for (const ms of [0, 1, -1, 999, 1_700_000_000_007, -86_400_001, 253_402_300_799_999, 253_402_300_800_000, -62_135_596_800_000]) {
      expect(ntz(ms)).toBe(new Date(ms).toISOString().slice(0, -1));
    }
    fc.assert(
      fc.property(fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }), (ms) => {
        expect(ntz(ms)).toBe(new Date(ms).toISOString().slice(0, -1));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('row JSON text (the INSERT bind)', () => {
  const base = { account: 'a', username: 'u', password: 'p', warehouse: 'W', database: 'D', table: 'T' };
  const enc = new TextEncoder();
  const text = fc.string({ unit: 'grapheme', maxLength: 12 });
  const message = fc.record({
    offset: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    timestamp: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    key: fc.option(text, { nil: undefined }),
    headers: fc.dictionary(text, text, { maxKeys: 3 }),
    value: fc.jsonValue({ maxDepth: 3 }),
    space: fc.constantFrom('', ' ', '\n  '),
  });

  it('mode raw: the same row as the parsed-and-serialized one, never larger than its size says', () => {
    const config = SnowflakeSinkConfig.parse(base);
    fc.assert(
      fc.property(text, fc.uuid(), fc.nat(63), message, (station, stationId, partition, g) => {
        const ref = { station, stationId, partition };
        const m = {
          offset: g.offset,
          timestamp: g.timestamp,
          ...(g.key !== undefined ? { key: g.key } : {}),
          headers: g.headers,
          value: enc.encode(`${g.space}${JSON.stringify(g.value, null, g.space.length > 1 ? 1 : 0)}${g.space}`),
        };
        const r = rowEncoder(config, ref)(m);
        const old = toRow(config, ref, m);
        if ('reject' in r || 'reject' in old) throw new Error('a JSON value was refused');
        expect(JSON.parse(r.json)).toEqual(JSON.parse(JSON.stringify(old.row)));
        expect(r.size).toBeGreaterThanOrEqual(Buffer.byteLength(r.json));
      }),
      { numRuns: 2000 },
    );
  });

  it('mode raw: text that is not exactly one JSON value is refused, so no value reaches outside its place in the array', () => {
    const config = SnowflakeSinkConfig.parse(base);
    const encode = rowEncoder(config, { station: 's', stationId: 'id', partition: 0 });
    for (const bad of ['1],["x"', '{"a":1}]', '', ' ', '{"a":1} {"b":2}', 'nope', '"unterminated', '[1,]']) {
      const r = encode({ offset: 1, timestamp: 0, headers: {}, value: enc.encode(bad) });
      expect(r).toMatchObject({ reject: expect.stringContaining('not JSON') });
    }
    expect(encode({ offset: 1, timestamp: 0, headers: {}, value: new Uint8Array([0x7b, 0xff, 0x7d]) })).toHaveProperty('reject');
  });

  it("mode raw: a value keeps its own text (digits, a duplicate key), which PARSE_JSON(?, 'd') reads as JSON.parse did", () => {
    const config = SnowflakeSinkConfig.parse(base);
    const encode = rowEncoder(config, { station: 's', stationId: 'id', partition: 2 });
    const r = encode({
      offset: 7,
      timestamp: 0,
      key: 'k"',
      headers: { h: '1' },
      value: enc.encode('{"n":12345678901234567890,"a":1,"a":2}'),
    });
    expect(r).toEqual({
      json: '["s",2,7,"1970-01-01T00:00:00.000","k\\"",{"h":"1"},{"n":12345678901234567890,"a":1,"a":2},"id"]',
      size: expect.any(Number),
    });
  });

  it('mode columns: the positional row of toRow, as JSON', () => {
    const config = SnowflakeSinkConfig.parse({
      ...base,
      mode: 'columns',
      columns: [
        { name: 'n', type: 'NUMBER' },
        { name: 'text', type: 'VARCHAR' },
      ],
    });
    const ref = { station: 's', stationId: 'id', partition: 0 };
    const m = { offset: 3, timestamp: 0, headers: {}, value: enc.encode('{"n":1,"text":"x\\u2028"}') };
    const old = toRow(config, ref, m);
    expect(rowEncoder(config, ref)(m)).toEqual({ json: JSON.stringify('row' in old ? old.row : null), size: expect.any(Number) });
  });
});
