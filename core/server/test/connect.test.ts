import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { readFileSink } from '@junction/connector-file/read';
import { startServer } from '../src/index.js';
import type { RunningServer } from '../src/index.js';

const logger = pino({ level: 'silent' });
let dir: string;
let server: RunningServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-server-connect-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function waitFor<T>(fn: () => Promise<T>, what: string, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const yaml = (out: string, extra = ''): string => `server:
  dataDir: ./data
stations:
  - name: events
    partitions: 2
connectors:
  - name: gen
    plugin: datagen
    station: events
    config: { shape: click, seed: 3, maxMessages: 500, batchSize: 100 }
  - name: files
    plugin: file
    station: events
    config: { dir: ${JSON.stringify(out)}, fsync: false }
    batch: { maxLatencyMs: 50 }
${extra}`;

describe('startServer with connectors', () => {
  it('runs the declared connectors, serves the plugin catalog, the connector API and their metrics', async () => {
    const out = join(dir, 'out');
    const configPath = join(dir, 'junction.yaml');
    await writeFile(configPath, yaml(out));
    server = await startServer({ configPath, port: 0, logger, env: {} });
    expect(server.connectors.created).toEqual(['gen', 'files']);
    await waitFor(async () => (await readFileSink(out)).length === 500, '500 records in the file sink');

    const plugins = (await (await fetch(`${server.url}/v1/connector-plugins`)).json()) as { name: string }[];
    expect(plugins.map((p) => p.name)).toEqual(expect.arrayContaining(['datagen', 'file']));
    const names = await (await fetch(`${server.url}/v1/connectors`)).json();
    expect(names).toEqual({ connectors: ['files', 'gen'] });
    const status = (await (await fetch(`${server.url}/v1/connectors/files/status`)).json()) as {
      connector: { state: string };
      lag: number;
    };
    expect(status.connector.state).toBe('RUNNING');
    const bad = await fetch(`${server.url}/v1/connectors`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x', plugin: 'file', station: 'events', config: {} }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { issues: { path: string }[] }).issues[0]!.path).toBe('config.dir');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/junction_connector_messages_total\{connector="files",task="0"\} 500/);
    expect(metrics).toMatch(/junction_connector_messages_total\{connector="gen",task="0"\} 500/);
    expect(metrics).toContain('junction_connect_worker_time_share');
    expect(metrics).toMatch(/junction_connector_lag\{connector="files"\} 0/);
  });

  it('refuses a connector with a bad plugin config at start, with its path', async () => {
    const configPath = join(dir, 'junction.yaml');
    await writeFile(configPath, yaml(join(dir, 'out')).replace(/config: \{ dir: [^}]*\}/, 'config: { fsync: false }'));
    await expect(startServer({ configPath, port: 0, logger, env: {} })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [expect.objectContaining({ path: 'connectors[1].config.dir' })],
    });
  });

  it('re-applies the file when it changes; an invalid change keeps the running state', async () => {
    const out = join(dir, 'out');
    const configPath = join(dir, 'junction.yaml');
    await writeFile(configPath, yaml(out));
    server = await startServer({ configPath, port: 0, logger, env: {} });
    const s = server;
    await writeFile(
      configPath,
      yaml(
        out,
        `  - name: more\n    plugin: file\n    station: events\n    config: { dir: ${JSON.stringify(join(dir, 'more'))}, fsync: false }\n`,
      ),
    );
    await waitFor(async () => s.connect.has('more'), 'the new connector');
    // An API-created connector is left alone by the file.
    await fetch(`${s.url}/v1/connectors`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'mine', plugin: 'file', station: 'events', config: { dir: join(dir, 'mine') } }),
    });
    await writeFile(configPath, yaml(out).replace('name: files', 'name: files\n    tasks: nope'));
    await new Promise((r) => setTimeout(r, 800));
    expect(s.connect.names()).toEqual(['files', 'gen', 'mine', 'more']);
    await writeFile(configPath, yaml(out));
    await waitFor(async () => !s.connect.has('more'), 'the removed connector to go');
    expect(s.connect.names()).toEqual(['files', 'gen', 'mine']);
  });
});
