/**
 * The line encoder's escaping, WebAssembly and JavaScript paths, against JSON.stringify of the decoded
 * text (what the file format promises), and the generated module against its .wat source.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileEscapeWat, renderModule } from '../scripts/build-wasm.mjs';
import { encodeLine, escapeInto, LineBuffer } from '../src/encode.js';

const msg = (value: Uint8Array, offset = 1) => ({ offset, timestamp: 1700000000000, headers: { h: 'v' }, value });

/** The line JSON.stringify would make of a valid UTF-8 value. */
function reference(value: Uint8Array, offset = 1): string {
  const text = Buffer.from(value).toString('utf8');
  return `{"offset":${offset},"timestamp":1700000000000,"key":null,"headers":{"h":"v"},"value":${JSON.stringify(text)}}\n`;
}

// Characters that need escaping, multi-byte ones, and plain ones, mixed so that runs of 16+ plain bytes,
// escapes inside and across 16-byte blocks, and long runs of 6-byte escapes (which use up the in-place
// layout's head start) all occur.
const chars = fc.constantFrom(
  'x',
  'y',
  '"',
  '\\',
  '\n',
  '\t',
  '\b',
  '\f',
  '\r',
  '\u0000',
  '\u0001',
  '\u001f',
  '\u007f',
  'é',
  '€',
  '😀',
  '\u2028',
  ' ',
  '/',
);
const texts = fc.oneof(
  fc.array(chars, { maxLength: 300 }).map((a) => a.join('')),
  fc
    .tuple(fc.nat(100), fc.nat(100), fc.constantFrom('\u0000', '"', '\u0010'))
    .map(([a, b, c]) => 'p'.repeat(a) + c.repeat(b) + 'q'.repeat(a)),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
);

describe('escaping', () => {
  it('the WebAssembly path writes what JSON.stringify writes, for any UTF-8 text', () => {
    fc.assert(
      fc.property(fc.array(texts, { minLength: 1, maxLength: 8 }), (batch) => {
        const lb = new LineBuffer('auto', 16);
        const values = batch.map((t) => new Uint8Array(Buffer.from(t, 'utf8')));
        values.forEach((v, i) => expect(lb.append(msg(v, i + 1))).toBeUndefined());
        expect(lb.copy(0, lb.length).toString('utf8')).toBe(values.map((v, i) => reference(v, i + 1)).join(''));
      }),
      { numRuns: 400 },
    );
  });

  it('the JavaScript fallback writes the same', () => {
    fc.assert(
      fc.property(texts, (t) => {
        const v = new Uint8Array(Buffer.from(t, 'utf8'));
        const lb = new LineBuffer('auto', 16, false);
        lb.append(msg(v));
        expect(lb.copy(0, lb.length).toString('utf8')).toBe(reference(v));
        const out = new Uint8Array(v.length * 6 + 1);
        expect(Buffer.from(out.subarray(0, escapeInto(v, out, 0))).toString('utf8')).toBe(JSON.stringify(t).slice(1, -1));
      }),
      { numRuns: 300 },
    );
  });

  it('a value made only of 6-byte escapes, and one of 1 MiB, come out whole', () => {
    for (const t of ['\u0001'.repeat(5000), `${'"'.repeat(70_000)}${'a'.repeat(1 << 20)}\u0002`]) {
      const v = new Uint8Array(Buffer.from(t));
      expect(encodeLine(msg(v), 'auto')).toEqual({ line: reference(v) });
    }
  });

  it('bytes that are not UTF-8 go as base64 (auto) or are refused (utf8)', () => {
    const v = new Uint8Array([0x22, 0xff, 0xfe, 0x00]);
    const line = encodeLine(msg(v), 'auto');
    expect('line' in line && JSON.parse(line.line)).toMatchObject({ value: Buffer.from(v).toString('base64'), base64: true });
    expect(encodeLine(msg(v), 'utf8')).toEqual({ rejected: expect.stringMatching(/not valid UTF-8/) });
  });

  it('an earlier LineBuffer refuses to be read once a newer one took the memory', () => {
    const a = new LineBuffer('auto');
    a.append(msg(new Uint8Array(Buffer.from('one'))));
    const b = new LineBuffer('auto');
    b.append(msg(new Uint8Array(Buffer.from('two'))));
    expect(() => a.copy(0, a.length)).toThrow(/another one/);
    expect(b.copy(0, b.length).toString()).toBe(reference(new Uint8Array(Buffer.from('two'))));
  });

  it('copyInto reuses a buffer that is large enough, and gives a new one otherwise, with the same bytes', () => {
    const lb = new LineBuffer('auto', 1024);
    for (let i = 0; i < 50; i++) lb.append({ offset: i + 1, timestamp: 1, headers: {}, value: Buffer.from(`{"n":${i},"q":"\\"x\\""}`) });
    const whole = lb.copy(0, lb.length);
    const big = Buffer.alloc(lb.length + 100, 0xaa);
    const into = lb.copyInto(big, 10, lb.length);
    expect(into).toBe(big);
    expect(into.subarray(0, lb.length - 10).equals(whole.subarray(10))).toBe(true);
    const small = Buffer.alloc(5);
    const fresh = lb.copyInto(small, 0, lb.length);
    expect(fresh).not.toBe(small);
    expect(fresh.subarray(0, lb.length).equals(whole)).toBe(true);
    expect(lb.copyInto(undefined, 3, 9).subarray(0, 6).equals(whole.subarray(3, 9))).toBe(true);
    expect(() => lb.copyInto(big, 0, lb.length + 1)).toThrow(RangeError);
  });

  it('src/escape-wasm.ts is what wasm/escape.wat compiles to', async () => {
    const generated = readFileSync(new URL('../src/escape-wasm.ts', import.meta.url), 'utf8');
    expect(generated).toBe(renderModule(await compileEscapeWat()));
  });
});
