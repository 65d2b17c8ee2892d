/** The catalog routes through fastify.inject(), over the built-ins and plugins placed in a plugins dir. */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry, registryRoutes } from '../src/index.js';
import { fileAndDatagen, placeInPluginsDir, recordingLogger, removeTempDirs, sinkModule, tempDir } from './helpers.js';

let app: FastifyInstance;
beforeAll(async () => {
  const pluginsDir = await tempDir();
  await placeInPluginsDir(pluginsDir, 'junction-connector-vault', 'vault');
  await placeInPluginsDir(pluginsDir, 'junction-connector-future', 'future', {
    files: { 'dist/index.js': sinkModule('future', { sdk: '^2' }) },
  });
  const registry = await Registry.open({ builtinDirs: [await fileAndDatagen()], pluginsDir, logger: recordingLogger() });
  app = Fastify({ logger: false });
  await app.register(registryRoutes, { registry });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await removeTempDirs();
});

describe('GET /v1/connector-plugins', () => {
  it('lists the usable plugins, Kafka Connect style', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/connector-plugins' });
    expect(res.statusCode).toBe(200);
    const list = res.json<Record<string, unknown>[]>();
    expect(list.map((p) => p.name)).toEqual(['datagen', 'file', 'vault']);
    expect(list[1]).toEqual({
      name: 'file',
      kind: 'sink',
      version: '0.1.0',
      description: expect.any(String),
      builtin: true,
      exactlyOnce: true,
    });
    expect(list[2]).toEqual({
      name: 'vault',
      kind: 'sink',
      version: '0.2.0',
      description: 'a test sink',
      builtin: false,
      exactlyOnce: false,
    });
  });

  it('lists the refused ones with their reason', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/connector-plugins/refused' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual([
      {
        path: expect.stringMatching(/node_modules\/junction-connector-future$/),
        packageName: 'junction-connector-future',
        code: 'SDK_INCOMPATIBLE',
        message: expect.stringMatching(/needs connector SDK \^2, but this Junction runs SDK 1\.0\.0/),
      },
    ]);
  });
});

describe('GET /v1/connector-plugins/:name', () => {
  it('describes a plugin with its config as JSON Schema', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/connector-plugins/file' });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ config: { properties: Record<string, unknown>; required: string[] } }>();
    expect(body).toMatchObject({
      name: 'file',
      kind: 'sink',
      version: '0.1.0',
      sdk: '^1',
      builtin: true,
      exactlyOnce: true,
      packageName: '@junction/connector-file',
    });
    expect(body.config.required).toEqual(['dir']);
    expect(body.config.properties.dir).toMatchObject({ type: 'string', description: expect.any(String) });
    expect(body.config.properties.gzip).toMatchObject({ type: 'boolean', default: false });
  });

  it('marks secret fields in the schema', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/connector-plugins/vault' });
    const body = res.json<{ config: { properties: Record<string, Record<string, unknown>> } }>();
    expect(body.config.properties.password).toMatchObject({ type: 'string', writeOnly: true, 'x-secret': true });
    expect(body.config.properties.dir).not.toHaveProperty('x-secret');
  });

  it('answers 404 PLUGIN_NOT_FOUND for an unknown or refused plugin', async () => {
    for (const name of ['nope', 'future']) {
      const res = await app.inject({ method: 'GET', url: `/v1/connector-plugins/${name}` });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({ code: 'PLUGIN_NOT_FOUND', message: `no connector plugin named "${name}"` });
    }
  });
});

describe('PUT /v1/connector-plugins/:name/validate', () => {
  const validate = (name: string, payload: unknown, path = 'validate') =>
    app.inject({ method: 'PUT', url: `/v1/connector-plugins/${name}/${path}`, payload: payload as object });

  it('answers errorCount 0 for a valid config', async () => {
    const res = await validate('file', { dir: '/tmp/out', gzip: true });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 'file', errorCount: 0, issues: [] });
  });

  it('answers one issue per field, with its path', async () => {
    const res = await validate('file', { gzip: 'yes' });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ name: string; errorCount: number; issues: { path: string; message: string }[] }>();
    expect(body.name).toBe('file');
    expect(body.errorCount).toBe(2);
    expect(body.issues).toEqual([
      { path: 'dir', message: expect.stringMatching(/expected string, received undefined/) },
      { path: 'gzip', message: expect.stringMatching(/expected boolean/) },
    ]);
  });

  it('reports unknown fields and nested paths', async () => {
    const res = await validate('vault', { dir: 'x', password: 42, extra: true }, 'config/validate');
    expect(res.statusCode).toBe(200);
    const body = res.json<{ errorCount: number; issues: { path: string; message: string }[] }>();
    expect(body.issues.map((i) => i.path).sort()).toEqual(['', 'password']);
    // The offending secret value is never echoed back.
    expect(JSON.stringify(body)).not.toContain('42');
  });

  it('answers 404 for an unknown plugin and 400 for a body that is not JSON', async () => {
    const missing = await validate('nope', {});
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: 'PLUGIN_NOT_FOUND' });

    const broken = await app.inject({
      method: 'PUT',
      url: '/v1/connector-plugins/file/validate',
      headers: { 'content-type': 'application/json' },
      payload: '{"dir":',
    });
    expect(broken.statusCode).toBe(400);
    expect(broken.json()).toMatchObject({ code: 'BODY_INVALID', message: expect.any(String) });
  });
});
