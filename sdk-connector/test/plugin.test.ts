import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkPlugin, defineSink, defineSource, isPlugin, ok, SDK_VERSION, z } from '../src/index.js';

const minimal = {
  name: 'webhook',
  version: '0.1.0',
  sdk: '^1',
  config: z.strictObject({ url: z.url() }),
  async open() {
    return { write: async (batch: { messages: readonly unknown[] }) => batch.messages.map(() => ok()), close: async () => {} };
  },
};

describe('defineSink / defineSource', () => {
  it('builds a frozen plugin with kind, manifest and the SDK version', () => {
    const plugin = defineSink({ ...minimal, description: 'POSTs each message' });
    expect(plugin.kind).toBe('sink');
    expect(plugin.manifest).toEqual({
      name: 'webhook',
      kind: 'sink',
      version: '0.1.0',
      sdk: '^1',
      description: 'POSTs each message',
      exactlyOnce: false,
      keepsValues: true,
    });
    expect(defineSink({ ...minimal, keepsValues: false }).manifest.keepsValues).toBe(false);
    expect(() => defineSink({ ...minimal, keepsValues: 'no' as unknown as boolean })).toThrow(/keepsValues: must be a boolean/);
    expect(plugin.sdkVersion).toBe(SDK_VERSION);
    expect(Object.isFrozen(plugin)).toBe(true);
    expect(JSON.parse(JSON.stringify(plugin.manifest))).toEqual(plugin.manifest);
    expect(isPlugin(plugin)).toBe(true);
  });

  it('types open() with the parsed config', async () => {
    const plugin = defineSink({
      ...minimal,
      config: z.strictObject({ url: z.url(), retries: z.int().default(3) }),
      async open(config) {
        const n: number = config.retries;
        expect(n).toBe(3);
        return { write: async () => [], close: async () => {} };
      },
    });
    const sink = await plugin.open(plugin.config.parse({ url: 'https://a.b' }), {} as never);
    expect(typeof sink.write).toBe('function');
  });

  it("calls open() on its definition, so a plugin's open may use its other methods through `this`", async () => {
    const def = {
      ...minimal,
      sinkOf(url: string) {
        return { url, write: async () => [], close: async () => {} };
      },
      async open(this: { sinkOf(url: string): { url: string } }, config: { url: string }) {
        return this.sinkOf(config.url);
      },
    };
    const sink = defineSink(def as unknown as Parameters<typeof defineSink>[0]);
    const source = defineSource(def as unknown as Parameters<typeof defineSource>[0]);
    expect(await sink.open(sink.config.parse({ url: 'https://a.b' }), {} as never)).toMatchObject({ url: 'https://a.b' });
    expect(await source.open(source.config.parse({ url: 'https://c.d' }), {} as never)).toMatchObject({ url: 'https://c.d' });
  });

  it('refuses a malformed definition with a PLUGIN_INVALID issue per field', () => {
    try {
      defineSink({ ...minimal, name: 'Bad Name', version: '1', sdk: '>1', config: {} as never });
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'PLUGIN_INVALID' });
      expect((err as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual(['name', 'version', 'sdk', 'config']);
    }
  });

  it('defineSource makes a source plugin', () => {
    const plugin = defineSource({
      name: 'counter',
      version: '1.0.0',
      sdk: '^1',
      config: z.strictObject({}),
      open: () => ({
        async *read() {
          yield { messages: [], position: 1 };
        },
        commit: async () => {},
        close: async () => {},
      }),
    });
    expect(plugin.kind).toBe('source');
    expect(plugin.manifest).toEqual({ name: 'counter', kind: 'source', version: '1.0.0', sdk: '^1' });
  });
});

describe('checkPlugin', () => {
  it('accepts a plugin, also one made by another copy of the SDK (a structural copy)', () => {
    const plugin = defineSink(minimal);
    expect(checkPlugin(plugin)).toBe(plugin);
    const foreign = { kind: 'sink', manifest: { ...plugin.manifest }, config: plugin.config, sdkVersion: '1.3.0', open: plugin.open };
    expect(checkPlugin(foreign)).toBe(foreign);
  });

  it('refuses a module that is not a plugin with PLUGIN_INVALID', () => {
    for (const bad of [undefined, null, 42, {}, { kind: 'sink' }, { kind: 'processor', manifest: {} }]) {
      expect(() => checkPlugin(bad)).toThrow(expect.objectContaining({ code: 'PLUGIN_INVALID' }));
    }
    const plugin = defineSink(minimal);
    expect(() => checkPlugin({ ...plugin, manifest: { ...plugin.manifest, kind: 'source' } })).toThrow(/manifest.kind/);
    expect(() => checkPlugin({ ...plugin, open: 'nope' })).toThrow(/open/);
    expect(() => checkPlugin({ ...plugin, manifest: { ...plugin.manifest, version: 'x' } })).toThrow(/manifest.version/);
  });

  it('refuses a plugin built for another SDK with SDK_INCOMPATIBLE and a clear message', () => {
    const plugin = defineSink({ ...minimal, sdk: '^2' });
    try {
      checkPlugin(plugin);
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'SDK_INCOMPATIBLE', retryable: false });
      expect((err as Error).message).toBe(`sink plugin "webhook" 0.1.0 needs connector SDK ^2, but this Junction runs SDK ${SDK_VERSION}`);
    }
    expect(checkPlugin(plugin, '2.1.0')).toBe(plugin);
  });

  it('SDK_VERSION is the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(pkg.version).toBe(SDK_VERSION);
  });
});
