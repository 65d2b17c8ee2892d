/**
 * Installing, refreshing and uninstalling through the API (fastify.inject()): an install is usable at
 * once (listed, validates), uninstall is refused while a connector uses the plugin, built-ins cannot be uninstalled, and a broken
 * or incompatible package is refused with its code and status while the catalog stays as it was; a
 * plugin dropped into the plugins dir behind the broker's back appears after a refresh.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry, registryRoutes } from '../src/index.js';
import {
  NO_REGISTRY,
  fileAndDatagen,
  placeInPluginsDir,
  recordingLogger,
  removeTempDirs,
  sinkModule,
  tempDir,
  writePackage,
} from './helpers.js';

let app: FastifyInstance;
let registry: Registry;
let pluginsDir: string;
const users = new Map<string, string[]>();
let changes = 0;

beforeAll(async () => {
  pluginsDir = await tempDir();
  registry = await Registry.open({ builtinDirs: [await fileAndDatagen()], pluginsDir, logger: recordingLogger() });
  app = Fastify({ logger: false });
  await app.register(registryRoutes, {
    registry,
    manage: { inUse: (p) => users.get(p) ?? [], env: NO_REGISTRY, onChange: () => void (changes += 1) },
  });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await removeTempDirs();
});

async function names(): Promise<string[]> {
  return (await app.inject({ method: 'GET', url: '/v1/connector-plugins' })).json<{ name: string }[]>().map((p) => p.name);
}

describe('POST /v1/connector-plugins', () => {
  it('installs a package folder; the plugin is usable at once', async () => {
    const src = await writePackage(`${await tempDir()}/pkg`, 'junction-connector-vault', 'vault');
    const before = changes;
    const res = await app.inject({ method: 'POST', url: '/v1/connector-plugins', payload: { spec: src } });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toEqual({
      name: 'vault',
      kind: 'sink',
      version: '0.2.0',
      description: 'a test sink',
      builtin: false,
      exactlyOnce: false,
    });
    expect(changes).toBe(before + 1);
    expect(await names()).toEqual(['datagen', 'file', 'vault']);
    const v = await app.inject({ method: 'PUT', url: '/v1/connector-plugins/vault/validate', payload: { dir: '/tmp/x' } });
    expect(v.json()).toEqual({ name: 'vault', errorCount: 0, issues: [] });
  });

  it('refuses a plugin built for another SDK: 422 SDK_INCOMPATIBLE, catalog unchanged', async () => {
    const src = await writePackage(`${await tempDir()}/pkg`, 'junction-connector-future', 'future', {
      files: { 'dist/index.js': sinkModule('future', { sdk: '^2' }) },
    });
    const res = await app.inject({ method: 'POST', url: '/v1/connector-plugins', payload: { spec: src } });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({
      code: 'SDK_INCOMPATIBLE',
      message: expect.stringContaining('needs connector SDK ^2, but this Junction runs SDK 1.0.0'),
    });
    expect(await names()).toEqual(['datagen', 'file', 'vault']);
  });

  it('refuses a package whose entry throws on import: 422 IMPORT_FAILED', async () => {
    const src = await writePackage(`${await tempDir()}/pkg`, 'junction-connector-broken', 'broken', {
      files: { 'dist/index.js': "throw new Error('broken at import');\n" },
    });
    const res = await app.inject({ method: 'POST', url: '/v1/connector-plugins', payload: { spec: src } });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ code: 'IMPORT_FAILED', message: expect.stringContaining('broken at import') });
    expect(await names()).toEqual(['datagen', 'file', 'vault']);
  });

  it('refuses a plugin with a built-in’s name: 409 PLUGIN_SHADOWS_BUILTIN', async () => {
    const src = await writePackage(`${await tempDir()}/pkg`, 'junction-connector-myfile', 'file');
    const res = await app.inject({ method: 'POST', url: '/v1/connector-plugins', payload: { spec: src } });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'PLUGIN_SHADOWS_BUILTIN' });
  });

  it('answers a bad body 400 BODY_INVALID with the field path', async () => {
    for (const payload of [{}, { spec: '' }, { spec: 'x', extra: 1 }, { spec: 7 }]) {
      const res = await app.inject({ method: 'POST', url: '/v1/connector-plugins', payload });
      expect(res.statusCode).toBe(400);
      const body = res.json<{ code: string; issues: { path: string }[] }>();
      expect(body.code).toBe('BODY_INVALID');
      expect(body.issues.length).toBeGreaterThan(0);
    }
  });
});

describe('DELETE /v1/connector-plugins/:name', () => {
  it('refuses while a connector uses the plugin: 409 PLUGIN_IN_USE naming it, nothing removed', async () => {
    users.set('vault', ['to-vault']);
    const res = await app.inject({ method: 'DELETE', url: '/v1/connector-plugins/vault' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({
      code: 'PLUGIN_IN_USE',
      message: 'plugin "vault" is used by connector(s) "to-vault"; delete them first',
      issues: [{ path: 'connectors.to-vault.plugin', message: 'uses vault' }],
    });
    expect(await names()).toContain('vault');
  });

  it('uninstalls once unused; the plugin is gone at once', async () => {
    users.delete('vault');
    const res = await app.inject({ method: 'DELETE', url: '/v1/connector-plugins/vault' });
    expect(res.statusCode, res.body).toBe(204);
    expect(await names()).not.toContain('vault');
    expect((await app.inject({ method: 'GET', url: '/v1/connector-plugins/vault' })).statusCode).toBe(404);
  });

  it('refuses a built-in (409 PLUGIN_BUILTIN) and an unknown name (404 PLUGIN_NOT_FOUND)', async () => {
    const builtin = await app.inject({ method: 'DELETE', url: '/v1/connector-plugins/file' });
    expect(builtin.statusCode).toBe(409);
    expect(builtin.json()).toMatchObject({ code: 'PLUGIN_BUILTIN' });
    const unknown = await app.inject({ method: 'DELETE', url: '/v1/connector-plugins/nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'PLUGIN_NOT_FOUND' });
  });
});

describe('POST /v1/connector-plugins/refresh', () => {
  it('lists a plugin placed in the plugins dir behind the broker’s back', async () => {
    await placeInPluginsDir(pluginsDir, 'junction-connector-placed', 'placed');
    expect(await names()).not.toContain('placed');
    const res = await app.inject({ method: 'POST', url: '/v1/connector-plugins/refresh' });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ plugins: { name: string }[]; refused: unknown[] }>();
    expect(body.plugins.map((p) => p.name)).toContain('placed');
    expect(await names()).toContain('placed');
  });
});

describe('without manage', () => {
  it('mounts no install, refresh or uninstall route', async () => {
    const ro = Fastify({ logger: false });
    await ro.register(registryRoutes, { registry });
    await ro.ready();
    expect((await ro.inject({ method: 'POST', url: '/v1/connector-plugins', payload: { spec: 'x' } })).statusCode).toBe(404);
    expect((await ro.inject({ method: 'POST', url: '/v1/connector-plugins/refresh' })).statusCode).toBe(404);
    expect((await ro.inject({ method: 'DELETE', url: '/v1/connector-plugins/file' })).statusCode).toBe(404);
    await ro.close();
  });
});
