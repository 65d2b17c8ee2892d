import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { hostPathProblem, hostPathValues, startServer } from '../src/index.js';
import type { RunningServer } from '../src/index.js';

const logger = pino({ level: 'silent' });
const PASSWORD = 'confine-admin-password';
let dir: string;
let server: RunningServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-confine-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('host paths of connector configs', () => {
  it('allows paths under a root; refuses ../, absolute paths elsewhere and symlinks out', async () => {
    const root = join(dir, 'root');
    const outside = join(dir, 'outside');
    await mkdir(join(root, 'sub'), { recursive: true });
    await mkdir(outside);
    await symlink(outside, join(root, 'escape'));
    await symlink(join(root, 'sub'), join(root, 'inner-link'));
    expect(await hostPathProblem(join(root, 'out'), [root])).toBeUndefined();
    expect(await hostPathProblem(join(root, 'sub', 'new', 'deeper'), [root])).toBeUndefined();
    expect(await hostPathProblem(root, [root])).toBeUndefined();
    expect(await hostPathProblem(join(root, 'inner-link', 'x'), [root])).toBeUndefined();
    expect(await hostPathProblem('out', [root], root)).toBeUndefined();
    expect(await hostPathProblem(join(root, '..', 'outside'), [root])).toMatch(/outside the allowed roots/);
    expect(await hostPathProblem('../outside', [root], root)).toMatch(/outside the allowed roots/);
    expect(await hostPathProblem('/etc', [root])).toMatch(/outside the allowed roots/);
    expect(await hostPathProblem(`${root}-sibling`, [root])).toMatch(/outside the allowed roots/);
    expect(await hostPathProblem(join(root, 'escape'), [root])).toMatch(/symbolic link/);
    expect(await hostPathProblem(join(root, 'escape', 'not', 'yet'), [root])).toMatch(/symbolic link/);
  });

  it('finds the fields a plugin marks (x-host-path), nested and in unions', () => {
    const schema = {
      type: 'object',
      properties: {
        dir: { type: 'string', 'x-host-path': true },
        n: { anyOf: [{ type: 'object', properties: { p: { 'x-host-path': true } } }] },
      },
    };
    expect(hostPathValues(schema, { dir: '/a', n: { p: '/b' }, other: '/c' }, 'config')).toEqual([
      { path: 'config.dir', value: '/a' },
      { path: 'config.n.p', value: '/b' },
    ]);
  });

  it('with auth on, the API and junction.yaml refuse a file sink writing outside the data dir', async () => {
    await writeFile(
      join(dir, 'junction.yaml'),
      `server:\n  dataDir: data\nauth:\n  enabled: true\nconnectors:\n  - name: out\n    plugin: file\n    station: events\n    config: { dir: ${JSON.stringify(join(dir, 'elsewhere'))} }\n`,
    );
    const start = () =>
      startServer({
        configPath: join(dir, 'junction.yaml'),
        host: '127.0.0.1',
        port: 0,
        logger,
        scryptLogN: 10,
        env: { JUNCTION_ADMIN_PASSWORD: PASSWORD },
        watchConfig: false,
      });
    await expect(start()).rejects.toMatchObject({ code: 'PATH_NOT_ALLOWED', issues: [{ path: 'connectors[0].config.dir' }] });

    await writeFile(join(dir, 'junction.yaml'), 'server:\n  dataDir: data\nauth:\n  enabled: true\nstations:\n  - name: events\n');
    server = await start();
    const token = (
      await server.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { username: 'admin', password: PASSWORD } })
    ).json().token as string;
    const call = (method: 'POST' | 'PUT', url: string, payload: object) =>
      server!.app.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
    const out = await call('POST', '/v1/connectors', {
      name: 'to-etc',
      plugin: 'file',
      station: 'events',
      config: { dir: '/etc/junction-test' },
    });
    expect(out.statusCode).toBe(400);
    expect(out.json()).toMatchObject({ code: 'PATH_NOT_ALLOWED', issues: [{ path: 'config.dir' }] });
    const up = await call('POST', '/v1/connectors', {
      name: 'up',
      plugin: 'file',
      station: 'events',
      config: { dir: join(dir, 'data', '..', 'x') },
    });
    expect(up.json()).toMatchObject({ code: 'PATH_NOT_ALLOWED' });
    const ok = await call('POST', '/v1/connectors', {
      name: 'inside',
      plugin: 'file',
      station: 'events',
      config: { dir: join(dir, 'data', 'out') },
    });
    expect(ok.statusCode, ok.body).toBe(201);
    const moved = await call('PUT', '/v1/connectors/inside/config', { plugin: 'file', station: 'events', config: { dir: '/tmp' } });
    expect(moved.statusCode).toBe(400);
    expect(moved.json().code).toBe('PATH_NOT_ALLOWED');
  });
});
