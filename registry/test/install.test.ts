/**
 * installPlugin for real: npm packs and installs into a temp plugins dir, with the npm registry
 * pointed at a closed port — a plugin whose only dependency is the SDK must never need it.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { lstat, readdir, readFile, readlink, realpath, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SinkPlugin } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import { Registry, hostSdkDir, installPlugin, type InstallOptions } from '../src/index.js';
import { EXAMPLE, fileAndDatagen, NO_REGISTRY, recordingLogger, removeTempDirs, sinkModule, tempDir, writePackage } from './helpers.js';

const exec = promisify(execFile);
afterAll(removeTempDirs);

// The built-ins only matter for names a plugin may not take; two of them keep the lists exact.
const builtinDirs: string[] = [];
beforeAll(async () => {
  builtinDirs.push(await fileAndDatagen());
});
const opts: InstallOptions = { builtinDirs, env: NO_REGISTRY };
const open = (pluginsDir: string) => Registry.open({ builtinDirs, pluginsDir, logger: recordingLogger() });

/** What a refused install must leave exactly as it was. */
async function snapshot(pluginsDir: string): Promise<unknown> {
  const read = (p: string) => readFile(join(pluginsDir, p), 'utf8').catch(() => undefined);
  return {
    packageJson: await read('package.json'),
    lockfile: await read('package-lock.json'),
    tarballs: (await readdir(join(pluginsDir, 'tarballs'))).filter((f) => !f.startsWith('.')).sort(),
    modules: (await readdir(join(pluginsDir, 'node_modules'))).sort(),
  };
}

describe('installPlugin from the community example', () => {
  let pluginsDir: string;
  beforeAll(async () => {
    pluginsDir = join(await tempDir(), 'data', 'plugins');
  });

  it('installs it from its folder without the npm registry; listed, loadable, validates', async () => {
    const d = await installPlugin(EXAMPLE, pluginsDir, opts);
    expect(d).toMatchObject({
      name: 'webhook',
      kind: 'sink',
      version: '0.1.0',
      sdk: '^1',
      builtin: false,
      exactlyOnce: false,
      packageName: 'junction-connector-webhook',
    });
    expect(d.packageDir).toBe(join(pluginsDir, 'node_modules', 'junction-connector-webhook'));
    expect(d.entry).toBe(join(d.packageDir, 'dist', 'index.js'));

    const pkg = JSON.parse(await readFile(join(pluginsDir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies).toEqual({
      '@junction/sdk-connector': `file:${hostSdkDir()}`,
      'junction-connector-webhook': 'file:tarballs/junction-connector-webhook-0.1.0.tgz',
    });
    // The SDK is a link to the host's SDK, not a copy and not a download.
    const sdkLink = join(pluginsDir, 'node_modules', '@junction', 'sdk-connector');
    expect((await lstat(sdkLink)).isSymbolicLink()).toBe(true);
    expect(await realpath(sdkLink)).toBe(hostSdkDir());
    expect(await readlink(sdkLink)).toBeTruthy();

    const registry = await open(pluginsDir);
    expect(registry.refused()).toEqual([]);
    expect(registry.list().map((p) => p.name)).toEqual(['datagen', 'file', 'webhook']);
    expect(registry.get('webhook')).toEqual(d);
    const schema = d.configSchema as { properties: Record<string, Record<string, unknown>>; required: string[] };
    expect(schema.required).toEqual(['url']);
    expect(schema.properties.token).toMatchObject({ writeOnly: true, 'x-secret': true });

    expect(await registry.validate('webhook', { url: 'not a url', mode: 'sometimes' }, 'config')).toEqual({
      ok: false,
      issues: [
        { path: 'config.url', message: expect.any(String) },
        { path: 'config.mode', message: expect.any(String) },
      ],
    });
  });

  it('the installed copy works: it POSTs to a local endpoint', async () => {
    const bodies: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (c: string) => (body += c));
      req.on('end', () => {
        bodies.push(body);
        res.writeHead(200).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const registry = await open(pluginsDir);
      const plugin = (await registry.load('webhook')) as SinkPlugin;
      const v = await registry.validate('webhook', { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` });
      expect(v.ok).toBe(true);
      const sink = await plugin.open((v as { config: unknown }).config, fakeContext());
      const value = new TextEncoder().encode('hello from an installed plugin');
      const results = await sink.write(
        {
          station: 's',
          stationId: 's-1',
          partition: 0,
          firstOffset: 1,
          lastOffset: 1,
          messages: [{ offset: 1, timestamp: 1, headers: {}, value }],
        },
        { signal: new AbortController().signal },
      );
      await sink.close();
      expect(results).toEqual([{ status: 'ok' }]);
      expect(bodies).toEqual(['hello from an installed plugin']);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('the plugins dir rebuilds offline from its own package.json and lockfile', async () => {
    await rm(join(pluginsDir, 'node_modules'), { recursive: true });
    await exec('npm', ['install', '--prefix', pluginsDir, '--offline', '--no-audit', '--no-fund'], {
      cwd: pluginsDir,
      env: { ...process.env, ...NO_REGISTRY },
    });
    const registry = await open(pluginsDir);
    expect(registry.get('webhook')?.packageName).toBe('junction-connector-webhook');
  });

  it('installs the same plugin again (an upgrade in place) and from a packed tarball', async () => {
    const packDir = await tempDir();
    const { stdout } = await exec('npm', ['pack', EXAMPLE, '--json', '--pack-destination', packDir], { cwd: packDir });
    const filename = (JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string }[])[0]!.filename;
    const fresh = join(await tempDir(), 'plugins');
    const d = await installPlugin(join(packDir, filename), fresh, opts);
    expect(d.name).toBe('webhook');
    expect((await open(fresh)).list().map((p) => p.name)).toContain('webhook');

    const again = await installPlugin(join(packDir, filename), fresh, opts);
    expect(again.name).toBe('webhook');
    // A relative spec is resolved against opts.cwd.
    const relative = await installPlugin(filename, fresh, { ...opts, cwd: packDir });
    expect(relative.packageName).toBe('junction-connector-webhook');
  });
});

describe('installPlugin refusals roll back', () => {
  let pluginsDir: string;
  let sources: string;
  beforeAll(async () => {
    pluginsDir = join(await tempDir(), 'plugins');
    sources = await tempDir();
    await installPlugin(EXAMPLE, pluginsDir, opts);
  });

  async function expectRefused(spec: string, code: string, message: RegExp): Promise<void> {
    const before = await snapshot(pluginsDir);
    const err = await installPlugin(spec, pluginsDir, opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code });
    expect((err as Error).message).toMatch(message);
    expect(await snapshot(pluginsDir)).toEqual(before);
    const registry = await open(pluginsDir);
    expect(registry.get('webhook')?.packageName).toBe('junction-connector-webhook');
    expect(registry.refused()).toEqual([]);
  }

  it('an incompatible SDK: SDK_INCOMPATIBLE', async () => {
    const dir = await writePackage(join(sources, 'future'), 'junction-connector-future', 'future', {
      files: { 'dist/index.js': sinkModule('future', { sdk: '^2' }) },
    });
    await expectRefused(
      dir,
      'SDK_INCOMPATIBLE',
      /cannot install junction-connector-future@0\.2\.0: sink plugin "future" 0\.2\.0 needs connector SDK \^2, but this Junction runs SDK 1\.0\.0/,
    );
  });

  it('a package that is not a plugin: NOT_A_PLUGIN', async () => {
    const dir = await writePackage(join(sources, 'lib'), 'just-a-library', 'x', { packageJson: { junction: null } });
    await expectRefused(dir, 'NOT_A_PLUGIN', /no "junction" field/);
  });

  it('a plugin whose entry is not built: ENTRY_NOT_FOUND', async () => {
    const dir = await writePackage(join(sources, 'unbuilt'), 'junction-connector-unbuilt', 'unbuilt', {
      files: { 'src/index.ts': 'export {};\n' },
    });
    await expectRefused(dir, 'ENTRY_NOT_FOUND', /is the package built\?/);
  });

  it('a plugin that takes a built-in’s name: PLUGIN_SHADOWS_BUILTIN', async () => {
    const dir = await writePackage(join(sources, 'file'), 'junction-connector-my-file', 'file');
    await expectRefused(dir, 'PLUGIN_SHADOWS_BUILTIN', /"file" is the name of a built-in connector/);
  });

  it('a plugin that takes an installed plugin’s name: DUPLICATE_PLUGIN, whichever sorts first', async () => {
    const early = await writePackage(join(sources, 'aaa'), 'aaa-webhook', 'webhook');
    await expectRefused(early, 'DUPLICATE_PLUGIN', /"webhook" is already taken by package junction-connector-webhook/);
    const late = await writePackage(join(sources, 'zzz'), 'zzz-webhook', 'webhook');
    await expectRefused(late, 'DUPLICATE_PLUGIN', /"webhook" is already taken by package junction-connector-webhook/);
  });

  it('something npm cannot pack: INSTALL_FAILED with npm’s reason', async () => {
    await expectRefused(resolve('/nonexistent/junction-plugin'), 'INSTALL_FAILED', /npm pack failed/);
  });

  it('a plugin with a regular (not peer) dependency on the SDK installs without the registry too', async () => {
    const dir = await writePackage(join(sources, 'regular'), 'junction-connector-regular', 'regular', {
      packageJson: { peerDependencies: null, dependencies: { '@junction/sdk-connector': '^1.0.0' } },
    });
    const d = await installPlugin(dir, pluginsDir, opts);
    expect(d.name).toBe('regular');
    // Deduplicated against the plugins dir's SDK link: no nested copy.
    await expect(lstat(join(d.packageDir, 'node_modules'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await open(pluginsDir)).list().map((p) => p.name)).toEqual(['datagen', 'file', 'regular', 'webhook']);
  });
});
