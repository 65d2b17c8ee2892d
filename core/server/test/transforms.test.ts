/**
 * End to end in one broker: a community transform plugin in <dataDir>/plugins, found by the real registry,
 * named in junction.yaml's transforms beside built-ins; datagen → station → file sink, counted line by line.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { hostSdkDir } from '@junction/registry';
import { readFileSink } from '@junction/connector-file/read';
import { startServer } from '../src/index.js';
import type { RunningServer } from '../src/index.js';

const logger = pino({ level: 'silent' });
let dir: string;
let server: RunningServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-server-transforms-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function waitFor<T>(fn: () => Promise<T>, what: string, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A transform plugin package as an outside author ships it: upper-cases the country code's field `city`. */
async function placeTransformPlugin(pluginsDir: string): Promise<void> {
  const pkgDir = join(pluginsDir, 'node_modules', 'junction-transform-shout');
  await mkdir(join(pkgDir, 'dist'), { recursive: true });
  await mkdir(join(pluginsDir, 'node_modules', '@junction'), { recursive: true });
  await symlink(hostSdkDir(), join(pluginsDir, 'node_modules', '@junction', 'sdk-connector'), 'dir');
  await writeFile(
    join(pkgDir, 'package.json'),
    JSON.stringify({
      name: 'junction-transform-shout',
      version: '1.0.0',
      type: 'module',
      junction: { kind: 'transform', entry: './dist/index.js' },
      peerDependencies: { '@junction/sdk-connector': '^1.0.0' },
    }),
  );
  await writeFile(
    join(pkgDir, 'dist', 'index.js'),
    `import { defineTransform, z } from '@junction/sdk-connector';
export default defineTransform({ name: 'shout', version: '1.0.0', sdk: '^1', config: z.strictObject({ field: z.string() }),
  open(config) {
    return { transform(m) {
      const o = JSON.parse(new TextDecoder().decode(m.value));
      if (typeof o[config.field] !== 'string') return m;
      o[config.field] = o[config.field].toUpperCase();
      return { ...m, value: new TextEncoder().encode(JSON.stringify(o)), headers: { ...m.headers, shouted: config.field } };
    } };
  } });
`,
  );
  await writeFile(
    join(pluginsDir, 'package.json'),
    JSON.stringify({ name: 'junction-plugins', private: true, dependencies: { 'junction-transform-shout': '*' } }),
  );
}

describe('transforms through the server', () => {
  it('a community transform plugin from the plugins dir runs in a chain declared in junction.yaml', async () => {
    const data = join(dir, 'data');
    await placeTransformPlugin(join(data, 'plugins'));
    const out = join(dir, 'out');
    const configPath = join(dir, 'junction.yaml');
    await writeFile(
      configPath,
      `server:
  dataDir: ./data
stations:
  - name: orders
    partitions: 1
  - name: plain
    partitions: 1
connectors:
  - name: gen
    plugin: datagen
    station: orders
    config: { shape: order, seed: 9, maxMessages: 300, batchSize: 100, startTime: "2026-01-01T00:00:00Z" }
  - name: gen-plain
    plugin: datagen
    station: plain
    config: { shape: order, seed: 9, maxMessages: 300, batchSize: 100, startTime: "2026-01-01T00:00:00Z" }
  - name: files
    plugin: file
    station: orders
    config: { dir: ${JSON.stringify(out)}, fsync: false }
    batch: { maxLatencyMs: 50 }
    transforms:
      - { type: filter, keep: { field: country, eq: DE } }
      - { type: plugin, plugin: shout, config: { field: city } }
      - { type: mask, fields: [userId] }
`,
    );
    server = await startServer({ configPath, port: 0, logger, env: {} });
    const plugins = (await (await fetch(`${server.url}/v1/connector-plugins`)).json()) as { name: string; kind: string }[];
    expect(plugins).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'shout', kind: 'transform' })]));
    const store = server.store;
    await waitFor(
      async () =>
        (await store.getStation('plain')).messages === 300 &&
        (await store.getGroup('orders', 'connector.files')).lag === 0 &&
        (await store.getStation('orders')).messages === 300,
      'all generated and drained',
    );
    const generated = (await store.read('plain', { partition: 0, limit: 300 })).map(
      (m) => JSON.parse(Buffer.from(m.value).toString()) as Record<string, unknown>,
    );
    const expected = generated
      .filter((o) => o.country === 'DE')
      .map((o) => JSON.stringify({ ...o, userId: '****', city: String(o.city).toUpperCase() }));
    expect(expected.length).toBeGreaterThan(0);
    const records = await readFileSink(out);
    expect(records.map((r) => r.value.toString())).toEqual(expected);
    for (const r of records) expect(r.headers.shouted).toBe('city');
  });
});
