import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, CONFIG_DEFAULTS } from '../src/index.js';
import type { JunctionError } from '../src/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(text: string): Promise<string> {
  const path = join(dir, 'junction.yaml');
  await writeFile(path, text);
  return path;
}

async function rejection(p: Promise<unknown>): Promise<JunctionError> {
  try {
    await p;
  } catch (err) {
    return err as JunctionError;
  }
  throw new Error('expected a rejection');
}

describe('loadConfig', () => {
  it('uses the defaults without a file, environment or overrides', async () => {
    const config = await loadConfig(undefined, {}, { env: {}, cwd: dir });
    expect(config.server).toEqual({
      host: '127.0.0.1',
      port: 6666,
      dataDir: join(dir, 'data'),
      fsync: 'always',
      bodyLimitBytes: CONFIG_DEFAULTS.bodyLimitBytes,
      logLevel: 'info',
    });
    expect(config.stations).toEqual([]);
    expect(config.warnings).toEqual([]);
  });

  it('reads JUNCTION_DATA_DIR, JUNCTION_HOST, JUNCTION_PORT and JUNCTION_LOG_LEVEL', async () => {
    const env = { JUNCTION_DATA_DIR: '/var/lib/junction', JUNCTION_HOST: '0.0.0.0', JUNCTION_PORT: '7000', JUNCTION_LOG_LEVEL: 'warn' };
    const config = await loadConfig(undefined, {}, { env, cwd: dir });
    expect(config.server).toMatchObject({ dataDir: '/var/lib/junction', host: '0.0.0.0', port: 7000, logLevel: 'warn' });
  });

  it('takes the CLI over the environment over the file over the defaults', async () => {
    const path = await file('server:\n  host: 10.0.0.1\n  port: 7001\n  dataDir: /from/file\n  fsync: never\n');
    const env = { JUNCTION_PORT: '7002', JUNCTION_DATA_DIR: '/from/env' };
    const all = await loadConfig(path, { port: 7003 }, { env, cwd: dir });
    expect(all.server).toMatchObject({ host: '10.0.0.1', port: 7003, dataDir: '/from/env', fsync: 'never', logLevel: 'info' });

    const noCli = await loadConfig(path, {}, { env, cwd: dir });
    expect(noCli.server.port).toBe(7002);

    const fileOnly = await loadConfig(path, {}, { env: {}, cwd: dir });
    expect(fileOnly.server).toMatchObject({ host: '10.0.0.1', port: 7001, dataDir: '/from/file' });

    const cliFsync = await loadConfig(path, { fsync: 'interval:50' }, { env: {}, cwd: dir });
    expect(cliFsync.server.fsync).toBe('interval:50');
  });

  it('server.secretsKeyFile: from the file (relative to its folder) or JUNCTION_SECRETS_KEY_FILE; a warning when it lies inside the data dir', async () => {
    const path = await file('server:\n  dataDir: data\n  secretsKeyFile: keys/secrets.key\n');
    let c = await loadConfig(path, {}, { env: {} });
    expect(c.server.secretsKeyFile).toBe(join(dir, 'keys', 'secrets.key'));
    expect(c.warnings).toEqual([]);
    c = await loadConfig(path, {}, { env: { JUNCTION_SECRETS_KEY_FILE: join(dir, 'data', 'k') } });
    expect(c.server.secretsKeyFile).toBe(join(dir, 'data', 'k'));
    expect(c.warnings).toEqual([expect.stringContaining('inside the data dir it protects')]);
    expect((await loadConfig(undefined, {}, { env: {}, cwd: dir })).server.secretsKeyFile).toBeUndefined();
  });

  it('takes a relative dataDir in the file from the file’s folder', async () => {
    const path = await file('server:\n  dataDir: store\n');
    const config = await loadConfig(path, {}, { env: {}, cwd: '/' });
    expect(config.server.dataDir).toBe(join(dir, 'store'));
  });

  it('parses stations with every default applied', async () => {
    const path = await file(
      [
        'stations:',
        '  - name: events',
        '    partitions: 3',
        '  - name: audit',
        '    retention: { maxMessages: 10 }',
        '    fsync: never',
      ].join('\n'),
    );
    const config = await loadConfig(path, {}, { env: {} });
    expect(config.stations).toHaveLength(2);
    expect(config.stations[0]).toMatchObject({ name: 'events', partitions: 3, storage: 'file', dedupWindowMs: 120_000 });
    expect(config.stations[1]).toMatchObject({ name: 'audit', partitions: 1, retention: { maxMessages: 10 }, fsync: 'never' });
  });

  it('accepts an empty file and empty sections', async () => {
    const config = await loadConfig(await file(''), {}, { env: {} });
    expect(config.stations).toEqual([]);
    const sections = await loadConfig(await file('server:\nstations:\n'), {}, { env: {}, cwd: dir });
    expect(sections.stations).toEqual([]);
    expect(sections.server.port).toBe(6666);
    expect(sections.warnings).toEqual([]);
  });

  it('rejects a file that is not a mapping', async () => {
    const err = await rejection(loadConfig(await file('- just\n- a list\n'), {}, { env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
  });

  it('rejects invalid YAML with CONFIG_INVALID', async () => {
    const err = await rejection(loadConfig(await file('server: [unclosed\n  port: 1\n'), {}, { env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues?.[0]?.message).toMatch(/YAML/);
  });

  it('rejects invalid settings with the field path', async () => {
    const path = await file(
      ['server:', '  port: 99999', 'stations:', '  - name: ok', '  - name: bad', '    retention:', '      maxAgeMs: -5'].join('\n'),
    );
    const err = await rejection(loadConfig(path, {}, { env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    const paths = err.issues?.map((i) => i.path);
    expect(paths).toContain('server.port');
    expect(paths).toContain('stations[1].retention.maxAgeMs');
    expect(err.message).toContain('server.port');
  });

  it('rejects unknown keys, at the top and in a station', async () => {
    const err = await rejection(loadConfig(await file('topics: []\nstations:\n  - name: a\n    colour: red\n'), {}, { env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues?.map((i) => i.path)).toEqual(expect.arrayContaining(['', 'stations[0]']));
    expect(JSON.stringify(err.issues)).toMatch(/topics/);
    expect(JSON.stringify(err.issues)).toMatch(/colour/);
  });

  it('takes replicas for a station in cluster mode only', async () => {
    const text = 'stations:\n  - name: a\n  - name: b\n    replicas: 3\n';
    const err = await rejection(loadConfig(await file(text), {}, { env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues).toEqual([{ path: 'stations[1].replicas', message: expect.stringMatching(/cluster mode/) }]);
    const ok = await loadConfig(await file(text), { nats: 'nats://127.0.0.1:4222' }, { env: {} });
    expect(ok.stations[1]).toMatchObject({ name: 'b', replicas: 3 });
    expect(ok.cluster?.nats.servers).toEqual(['nats://127.0.0.1:4222']);
  });

  it('rejects duplicate station names', async () => {
    const err = await rejection(loadConfig(await file('stations:\n  - name: a\n  - name: a\n'), {}, { env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues?.[0]?.path).toBe('stations[1].name');
  });

  it("reads connectors with the runtime's schema (defaults applied) and rejects bad ones with their path", async () => {
    const path = await file('connectors:\n  - name: out\n    plugin: file\n    station: events\n    config: { dir: ./x }\n');
    const config = await loadConfig(path, {}, { env: {} });
    expect(config.connectors).toEqual([
      expect.objectContaining({
        name: 'out',
        plugin: 'file',
        station: 'events',
        tasks: 1,
        config: { dir: './x' },
        batch: { maxMessages: 1000, maxBytes: 1048576, maxLatencyMs: 1000 },
      }),
    ]);
    expect(config.warnings).toEqual([]);

    const bad = await rejection(
      loadConfig(
        await file('connectors:\n  - name: a\n    plugin: file\n    station: s\n  - name: b\n    plugin: file\n    tasks: 0\n'),
        {},
        { env: {} },
      ),
    );
    expect(bad.code).toBe('CONFIG_INVALID');
    expect(bad.issues?.map((i) => i.path)).toEqual(['connectors[1].station', 'connectors[1].tasks']);
  });

  it('reads connect: (the shared pool, isolation per plugin) with defaults, and rejects bad settings with their path', async () => {
    expect((await loadConfig(await file('stations: []\n'), {}, { env: {} })).connect).toEqual({
      sharedPool: { maxHeapMb: 2048 },
      plugins: {},
    });
    const path = await file(
      'connect:\n  sharedPool: { threads: 3 }\n  plugins:\n    webhook: { isolation: shared }\n    bigquery: { isolation: thread }\n',
    );
    expect((await loadConfig(path, {}, { env: {} })).connect).toEqual({
      sharedPool: { threads: 3, maxHeapMb: 2048 },
      plugins: { webhook: { isolation: 'shared' }, bigquery: { isolation: 'thread' } },
    });
    const bad = await rejection(
      loadConfig(
        await file('connect:\n  sharedPool: { threads: 0, pool: 1 }\n  plugins:\n    webhook: { isolation: process }\n'),
        {},
        { env: {} },
      ),
    );
    expect(bad.code).toBe('CONFIG_INVALID');
    expect(bad.issues?.map((i) => i.path).sort()).toEqual([
      'connect.plugins.webhook.isolation',
      'connect.sharedPool',
      'connect.sharedPool.threads',
    ]);
  });

  it('rejects a bad JUNCTION_PORT and bad overrides by name', async () => {
    const env = await rejection(loadConfig(undefined, {}, { env: { JUNCTION_PORT: 'eighty', JUNCTION_LOG_LEVEL: 'loud' } }));
    expect(env.code).toBe('CONFIG_INVALID');
    expect(env.issues?.map((i) => i.path)).toEqual(['JUNCTION_PORT', 'JUNCTION_LOG_LEVEL']);

    const cli = await rejection(loadConfig(undefined, { port: -1, fsync: 'sometimes' }, { env: {} }));
    expect(cli.code).toBe('CONFIG_INVALID');
    expect(cli.issues?.map((i) => i.path).sort()).toEqual(['--fsync', '--port']);
  });

  it('rejects a missing file with CONFIG_INVALID', async () => {
    const err = await rejection(loadConfig(join(dir, 'nope.yaml'), {}, { env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/ENOENT/);
  });
});
