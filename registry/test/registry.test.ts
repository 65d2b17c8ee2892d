/** Discovery and checks: built-ins, plugins placed in a plugins dir, refusals, duplicates, refresh. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SDK_VERSION } from '@junction/sdk-connector';
import { Registry, RegistryErrorCode } from '../src/index.js';
import {
  CONNECTORS,
  fileAndDatagen,
  placeInPluginsDir,
  recordingLogger,
  removeTempDirs,
  sinkModule,
  tempDir,
  writePackage,
} from './helpers.js';

afterAll(removeTempDirs);

describe('built-in connectors', () => {
  it('finds file and datagen with their JSON Schemas', async () => {
    const pluginsDir = join(await tempDir(), 'plugins'); // does not exist: no installed plugins
    const registry = await Registry.open({ builtinDirs: [CONNECTORS], pluginsDir, logger: recordingLogger() });
    // Other built-in connectors may sit beside these two; file and datagen must be there, unrefused.
    expect(registry.refused().filter((r) => /[/\\](file|datagen)$/.test(r.path))).toEqual([]);
    expect(
      registry
        .list()
        .filter((d) => d.name === 'file' || d.name === 'datagen')
        .map((d) => [d.name, d.kind, d.builtin]),
    ).toEqual([
      ['datagen', 'source', true],
      ['file', 'sink', true],
    ]);
    expect(registry.list().every((d) => d.builtin)).toBe(true);
    const file = registry.get('file')!;
    expect(file).toMatchObject({
      version: '0.1.0',
      sdk: '^1',
      exactlyOnce: true,
      packageName: '@junction/connector-file',
      packageDir: join(CONNECTORS, 'file'),
    });
    expect(file.entry).toBe(join(CONNECTORS, 'file', 'dist', 'index.js'));
    const schema = file.configSchema as { type: string; properties: Record<string, { description?: string }>; required: string[] };
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(['dir']);
    expect(schema.properties.dir!.description).toMatch(/Directory/);
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['dir', 'gzip', 'valueEncoding', 'fsync']));

    const datagen = registry.get('datagen')!;
    expect(datagen.exactlyOnce).toBe(false);
    expect((datagen.configSchema as { type: string }).type).toBe('object');
  });

  it("lists each built-in sink's delivery guarantee as its README states it (exactlyOnce)", async () => {
    const registry = await Registry.open({
      builtinDirs: [CONNECTORS],
      pluginsDir: join(await tempDir(), 'plugins'),
      logger: recordingLogger(),
    });
    const sinks = Object.fromEntries(
      registry
        .list()
        .filter((d) => d.kind === 'sink')
        .map((d) => [d.name, d.exactlyOnce]),
    );
    // BigQuery's insertAll cannot refuse a late write and its insertId dedup is best effort: at least once.
    expect(sinks).toMatchObject({ file: true, s3: true, snowflake: true, firebolt: true, bigquery: false, postgres: true });
    expect(registry.get('mqtt')?.kind).toBe('source');
    expect(registry.get('postgres-cdc')?.kind).toBe('source');
    expect(registry.get('bigquery')?.description).toMatch(/at least once/);
  });

  it('loads a plugin and validates configs with field paths', async () => {
    const registry = await Registry.open({
      builtinDirs: [await fileAndDatagen()],
      pluginsDir: join(await tempDir(), 'plugins'),
      logger: recordingLogger(),
    });
    const file = await registry.load('file');
    expect(file.kind).toBe('sink');
    expect(file.manifest.name).toBe('file');

    expect(await registry.validate('file', { dir: '/tmp/out' })).toEqual({
      ok: true,
      config: { dir: '/tmp/out', gzip: false, valueEncoding: 'auto', fsync: true },
    });
    const bad = await registry.validate('file', { gzip: 'yes', nope: 1 });
    expect(bad.ok).toBe(false);
    const paths = (bad as { issues: { path: string }[] }).issues.map((i) => i.path).sort();
    expect(paths).toEqual(['', 'dir', 'gzip']);
    const prefixed = await registry.validate('file', {}, 'connectors[0].config');
    expect(prefixed).toEqual({ ok: false, issues: [{ path: 'connectors[0].config.dir', message: expect.any(String) }] });

    await expect(registry.load('nope')).rejects.toMatchObject({ code: RegistryErrorCode.PLUGIN_NOT_FOUND });
    await expect(registry.validate('nope', {})).rejects.toMatchObject({ code: RegistryErrorCode.PLUGIN_NOT_FOUND });
  });

  it('treats a missing built-in dir as empty', async () => {
    const registry = await Registry.open({
      builtinDirs: [join(await tempDir(), 'missing')],
      pluginsDir: join(await tempDir(), 'plugins'),
      logger: recordingLogger(),
    });
    expect(registry.list()).toEqual([]);
    expect(registry.refused()).toEqual([]);
  });
});

describe('installed plugins', () => {
  it('lists a plugin placed in the plugins dir, with secrets marked in its schema', async () => {
    const pluginsDir = await tempDir();
    await placeInPluginsDir(pluginsDir, 'junction-connector-good', 'good');
    const registry = await Registry.open({ builtinDirs: [await fileAndDatagen()], pluginsDir, logger: recordingLogger() });
    expect(registry.refused()).toEqual([]);
    const good = registry.get('good')!;
    expect(good).toMatchObject({
      kind: 'sink',
      version: '0.2.0',
      builtin: false,
      packageName: 'junction-connector-good',
      description: 'a test sink',
    });
    const schema = good.configSchema as { properties: Record<string, Record<string, unknown>> };
    expect(schema.properties.password).toMatchObject({ writeOnly: true, 'x-secret': true });
    // Resolved the SDK through the plugins dir's link: the same SDK the host runs.
    expect((await registry.load('good')).sdkVersion).toBe(SDK_VERSION);
  });

  it('refuses a plugin built for an incompatible SDK with a clear message; the others still load', async () => {
    const pluginsDir = await tempDir();
    await placeInPluginsDir(pluginsDir, 'junction-connector-future', 'future', {
      files: { 'dist/index.js': sinkModule('future', { sdk: '^2' }) },
    });
    await placeInPluginsDir(pluginsDir, 'junction-connector-good', 'good');
    const logger = recordingLogger();
    const registry = await Registry.open({ builtinDirs: [await fileAndDatagen()], pluginsDir, logger });
    expect(registry.list().map((d) => d.name)).toEqual(['datagen', 'file', 'good']);
    expect(registry.get('future')).toBeUndefined();
    expect(registry.refused()).toEqual([
      {
        path: join(pluginsDir, 'node_modules', 'junction-connector-future'),
        packageName: 'junction-connector-future',
        code: 'SDK_INCOMPATIBLE',
        message: `sink plugin "future" 0.2.0 needs connector SDK ^2, but this Junction runs SDK ${SDK_VERSION}`,
      },
    ]);
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]!.msg).toMatch(/refused: .*needs connector SDK \^2/);
    expect(logger.warnings[0]!.obj).toMatchObject({ code: 'SDK_INCOMPATIBLE', packageName: 'junction-connector-future' });
  });

  it('refuses broken packages one by one, never failing open()', async () => {
    const pluginsDir = await tempDir();
    const place = (pkg: string, spec: Parameters<typeof placeInPluginsDir>[3], plugin = pkg) =>
      placeInPluginsDir(pluginsDir, pkg, plugin, spec);
    await place('entry-missing', { files: {} });
    await place('throws-on-import', { files: { 'dist/index.js': "throw new Error('boom at import');\n" } });
    await place('not-a-plugin-export', { files: { 'dist/index.js': 'export default { hello: 1 };\n' } });
    await place('no-default-export', { files: { 'dist/index.js': 'export const x = 1;\n' } });
    await place('no-junction-field', { packageJson: { junction: null } });
    await place('bad-junction-field', { packageJson: { junction: { kind: 'both', entry: './dist/index.js' } } });
    await place('entry-outside', { packageJson: { junction: { kind: 'sink', entry: '../../../../etc/passwd' } } });
    await place('kind-mismatch', { packageJson: { junction: { kind: 'source', entry: './dist/index.js' } } });
    await place('bad-manifest', { files: { 'dist/index.js': sinkModule('Not Kebab') } });
    await place('missing-dep', { files: { 'dist/index.js': "import 'left-pad-that-is-not-installed';\nexport default {};\n" } });
    await place('not-json', { packageJson: '{ "name": ' });
    await place('good-one', {}, 'good');
    await place('good-source', {
      packageJson: { junction: { kind: 'source', entry: './dist/index.js' } },
      files: { 'dist/index.js': sinkModule('gen', { kind: 'source' }) },
    });
    const { declareInPluginsDir } = await import('./helpers.js');
    await declareInPluginsDir(pluginsDir, 'declared-not-installed');

    const registry = await Registry.open({ builtinDirs: [], pluginsDir, logger: recordingLogger() });
    expect(registry.list().map((d) => d.name)).toEqual(['gen', 'good']);
    const byPath = new Map(registry.refused().map((r) => [r.path.split('/').pop(), r]));
    const codeOf = (pkg: string) => byPath.get(pkg)?.code;
    expect(codeOf('entry-missing')).toBe('ENTRY_NOT_FOUND');
    expect(byPath.get('entry-missing')!.message).toMatch(/entry \.\/dist\/index\.js does not exist .*is the package built\?/);
    expect(codeOf('throws-on-import')).toBe('IMPORT_FAILED');
    expect(byPath.get('throws-on-import')!.message).toMatch(/boom at import/);
    expect(codeOf('not-a-plugin-export')).toBe('PLUGIN_INVALID');
    expect(codeOf('no-default-export')).toBe('PLUGIN_INVALID');
    expect(byPath.get('no-default-export')!.message).toMatch(/no default export/);
    expect(codeOf('no-junction-field')).toBe('NOT_A_PLUGIN');
    expect(codeOf('bad-junction-field')).toBe('PACKAGE_INVALID');
    expect(byPath.get('bad-junction-field')!.issues).toEqual([{ path: 'junction.kind', message: expect.any(String) }]);
    expect(codeOf('entry-outside')).toBe('ENTRY_NOT_FOUND');
    expect(codeOf('kind-mismatch')).toBe('PLUGIN_INVALID');
    expect(byPath.get('kind-mismatch')!.issues).toEqual([{ path: 'junction.kind', message: 'must match the plugin (sink)' }]);
    expect(codeOf('bad-manifest')).toBe('PLUGIN_INVALID');
    expect(byPath.get('bad-manifest')!.issues?.map((i) => i.path)).toEqual(['name']);
    expect(codeOf('missing-dep')).toBe('IMPORT_FAILED');
    expect(byPath.get('missing-dep')!.message).toMatch(/left-pad-that-is-not-installed/);
    expect(codeOf('not-json')).toBe('PACKAGE_INVALID');
    expect(codeOf('declared-not-installed')).toBe('PACKAGE_INVALID');
    expect(byPath.get('declared-not-installed')!.message).toMatch(/declared in .* but not installed/);
    expect(registry.refused()).toHaveLength(12);
    for (const r of registry.refused()) expect(r.message.length).toBeGreaterThan(10);
  });

  it('ignores hoisted dependencies without a junction field, and finds undeclared plugins copied in by hand', async () => {
    const pluginsDir = await tempDir();
    await placeInPluginsDir(pluginsDir, 'some-library', 'x', { packageJson: { junction: null } }, false);
    await placeInPluginsDir(pluginsDir, '@acme/junction-connector-copied', 'copied', {}, false);
    const registry = await Registry.open({ builtinDirs: [], pluginsDir, logger: recordingLogger() });
    expect(registry.list().map((d) => [d.name, d.packageName])).toEqual([['copied', '@acme/junction-connector-copied']]);
    expect(registry.refused()).toEqual([]);
  });

  it('refuses duplicate names: a plugin may not take a built-in’s name, nor another plugin’s', async () => {
    const pluginsDir = await tempDir();
    await placeInPluginsDir(pluginsDir, 'a-first', 'dup');
    await placeInPluginsDir(pluginsDir, 'b-second', 'dup');
    await placeInPluginsDir(pluginsDir, 'my-file', 'file');
    const registry = await Registry.open({ builtinDirs: [await fileAndDatagen()], pluginsDir, logger: recordingLogger() });
    expect(registry.get('dup')!.packageName).toBe('a-first');
    expect(registry.get('file')!.builtin).toBe(true);
    const refused = registry.refused();
    expect(refused.map((r) => [r.packageName, r.code])).toEqual([
      ['b-second', 'DUPLICATE_PLUGIN'],
      ['my-file', 'PLUGIN_SHADOWS_BUILTIN'],
    ]);
    expect(refused[0]!.message).toMatch(/"dup" is already taken by package a-first/);
    expect(refused[1]!.message).toMatch(/"file" is the name of a built-in connector/);
  });

  it('refresh() picks up new and changed plugins', async () => {
    const pluginsDir = await tempDir();
    const registry = await Registry.open({ builtinDirs: [], pluginsDir, logger: recordingLogger() });
    expect(registry.list()).toEqual([]);
    const dir = await placeInPluginsDir(pluginsDir, 'junction-connector-late', 'late');
    await registry.refresh();
    expect(registry.list().map((d) => [d.name, d.sdk])).toEqual([['late', '^1']]);

    // Re-installed in place with a newer SDK range: the entry is imported afresh.
    await new Promise((r) => setTimeout(r, 20));
    await writePackage(dir, 'junction-connector-late', 'late', { files: { 'dist/index.js': sinkModule('late', { sdk: '^1.0.0' }) } });
    await registry.refresh();
    expect(registry.list().map((d) => [d.name, d.sdk])).toEqual([['late', '^1.0.0']]);
    expect(JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'))).toMatchObject({ name: 'junction-connector-late' });
  });
});
