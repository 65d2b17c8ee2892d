import { describe, expect, it } from 'vitest';
import { checkPlugin, defineTransform, z, type TransformMessage } from '../src/index.js';
import { assertConformance, runTransformConformance } from '../src/testing/index.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const messages: TransformMessage[] = ['a', 'bb', '', 'boom'].map((t, i) => ({
  value: enc.encode(t),
  headers: { i: String(i) },
  timestamp: 1000 + i,
}));

const upper = defineTransform({
  name: 'upper',
  version: '1.0.0',
  sdk: '^1',
  config: z.strictObject({ suffix: z.string().default('') }),
  open(config) {
    return {
      transform(m) {
        const text = dec.decode(m.value);
        if (text === '') return null;
        if (text === 'boom') throw new Error('no boom');
        return { ...m, value: enc.encode(text.toUpperCase() + config.suffix), headers: { ...m.headers, upper: 'yes' } };
      },
    };
  },
});

describe('defineTransform', () => {
  it('makes a transform plugin that checkPlugin accepts', () => {
    expect(checkPlugin(upper)).toBe(upper);
    expect(upper.manifest).toEqual({ name: 'upper', kind: 'transform', version: '1.0.0', sdk: '^1' });
  });
  it('refuses a bad manifest with PLUGIN_INVALID and the field', () => {
    expect(() =>
      defineTransform({ name: 'Bad Name', version: 'x', sdk: '^1', config: z.strictObject({}), open: () => ({ transform: (m) => m }) }),
    ).toThrow(
      expect.objectContaining({
        code: 'PLUGIN_INVALID',
        issues: expect.arrayContaining([expect.objectContaining({ path: 'name' }), expect.objectContaining({ path: 'version' })]),
      }),
    );
  });
});

describe('transform conformance kit', () => {
  it('passes a well-behaved transform', async () => {
    const results = await runTransformConformance({
      plugin: upper,
      config: { suffix: '!' },
      messages: messages.slice(0, 3),
      failing: messages.slice(3),
    });
    assertConformance(results);
    expect(results.map((r) => [r.check, r.status])).toEqual([
      ['manifest', 'passed'],
      ['answers', 'passed'],
      ['deterministic', 'passed'],
      ['input-untouched', 'passed'],
      ['clone', 'passed'],
      ['close-twice', 'passed'],
    ]);
  });

  it('catches what authors get wrong: changing the input, answering differently on replay, bad answers, a throwing close', async () => {
    let n = 0;
    const bad = defineTransform({
      name: 'bad',
      version: '1.0.0',
      sdk: '^1',
      config: z.strictObject({}),
      open() {
        let closed = false;
        return {
          transform(m) {
            (m.value as Uint8Array)[0] = 0x7a; // in place
            (m.headers as Record<string, string>).seen = String(n++); // and different each time
            return { ...m, headers: { ...m.headers }, extra: () => 1 } as unknown as TransformMessage;
          },
          close() {
            if (closed) throw new Error('closed twice');
            closed = true;
          },
        };
      },
    });
    const fresh = (): TransformMessage[] => ['a', 'b'].map((t) => ({ value: enc.encode(t), headers: {}, timestamp: 0 }));
    const results = await runTransformConformance({ plugin: bad, config: {}, messages: fresh() });
    const status = Object.fromEntries(results.map((r) => [r.check, r.status]));
    expect(status).toEqual({
      manifest: 'passed',
      answers: 'passed',
      deterministic: 'failed',
      'input-untouched': 'failed',
      clone: 'failed',
      'close-twice': 'failed',
    });
    expect(() => assertConformance(results)).toThrow(/input-untouched: message 0 was changed in place/);

    const wrongShape = defineTransform({
      name: 'shape',
      version: '1.0.0',
      sdk: '^1',
      config: z.strictObject({}),
      open: () => ({ transform: () => ({ value: 'text', headers: {} }) as unknown as TransformMessage }),
    });
    const r2 = await runTransformConformance({ plugin: wrongShape, config: {}, messages: fresh(), checks: ['answers'] });
    expect(r2[0]).toMatchObject({ status: 'failed', detail: 'message 0: answered a message whose value is not a Uint8Array' });
  });
});
