/** Transform plugins in the catalog: listed, loaded and checked like sinks and sources. */
import { afterAll, describe, expect, it } from 'vitest';
import { assertConformance, runTransformConformance } from '@junction/sdk-connector/testing';
import { Registry } from '../src/index.js';
import { placeInPluginsDir, recordingLogger, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const TRANSFORM = `import { defineTransform, secret, z } from '@junction/sdk-connector';
export default defineTransform({ name: 'redact-ip', version: '0.3.0', sdk: '^1', description: 'replaces IPv4 addresses in text values',
  config: z.strictObject({ with: z.string().default('x.x.x.x'), token: secret(z.string()).optional() }),
  open(config) {
    return { transform(m) {
      const text = new TextDecoder().decode(m.value);
      const out = text.replace(/\\b\\d{1,3}(\\.\\d{1,3}){3}\\b/g, config.with);
      return out === text ? m : { ...m, value: new TextEncoder().encode(out) };
    } };
  } });
`;

describe('transform plugins in the registry', () => {
  it('lists an installed transform plugin with its kind and schema, loads it, and it passes the transform kit', async () => {
    const pluginsDir = await tempDir();
    await placeInPluginsDir(pluginsDir, 'junction-transform-redact-ip', 'redact-ip', {
      packageJson: { junction: { kind: 'transform', entry: './dist/index.js' } },
      files: { 'dist/index.js': TRANSFORM },
    });
    const registry = await Registry.open({ builtinDirs: [], pluginsDir, logger: recordingLogger() });
    expect(registry.refused()).toEqual([]);
    const d = registry.get('redact-ip')!;
    expect(d).toMatchObject({
      name: 'redact-ip',
      kind: 'transform',
      version: '0.3.0',
      builtin: false,
      exactlyOnce: false,
      packageName: 'junction-transform-redact-ip',
    });
    expect((d.configSchema as { properties: Record<string, unknown> }).properties.token).toMatchObject({
      writeOnly: true,
      'x-secret': true,
    });
    expect(await registry.validate('redact-ip', { with: 5 }, 'transforms[0].config')).toMatchObject({
      ok: false,
      issues: [{ path: 'transforms[0].config.with' }],
    });

    const plugin = await registry.load('redact-ip');
    expect(plugin.kind).toBe('transform');
    if (plugin.kind !== 'transform') return;
    const enc = new TextEncoder();
    const messages = ['from 10.0.0.1 to 192.168.1.20', 'no address', ''].map((t) => ({ value: enc.encode(t), headers: {}, timestamp: 0 }));
    assertConformance(await runTransformConformance({ plugin, config: {}, messages }));
    const t = await plugin.open(plugin.config.parse({}), {
      logger: console as never,
      connector: 'c',
      task: 0,
      metrics: { counter: () => ({ inc() {} }), histogram: () => ({ observe() {} }) },
    });
    const out = await t.transform(messages[0]!);
    expect(new TextDecoder().decode(out!.value)).toBe('from x.x.x.x to x.x.x.x');
    expect(await t.transform(messages[1]!)).toBe(messages[1]);
  });

  it('refuses a package whose junction.kind says sink but exports a transform', async () => {
    const pluginsDir = await tempDir();
    await placeInPluginsDir(pluginsDir, 'junction-transform-liar', 'redact-ip', { files: { 'dist/index.js': TRANSFORM } });
    const registry = await Registry.open({ builtinDirs: [], pluginsDir, logger: recordingLogger() });
    expect(registry.get('redact-ip')).toBeUndefined();
    expect(registry.refused()).toMatchObject([
      {
        packageName: 'junction-transform-liar',
        code: 'PLUGIN_INVALID',
        issues: [{ path: 'junction.kind', message: 'must match the plugin (transform)' }],
      },
    ]);
  });
});
