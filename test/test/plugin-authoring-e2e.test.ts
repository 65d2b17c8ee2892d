/**
 * Writing a connector outside the repository, end to end, as an outside author does it: `junction
 * plugins new` scaffolds a sink project into a temp folder (the SDK as a tarball in it, nothing linked
 * into the repository), `npm install && npm test` there builds it and runs the SDK's conformance kit,
 * junction.yaml names it before it exists (the broker refuses that change), `junction plugins install`
 * puts it into the RUNNING broker, the declared connector starts without another edit, and the messages
 * produced land in its files byte for byte. Then: uninstall is refused while
 * the connector uses it, a plugin built for another SDK and a broken package are refused with their
 * codes (the running plugin untouched), and uninstall works once the connector is gone. A scaffolded
 * transform likewise: its own tests pass, and installed into a running broker it shapes what a file sink
 * writes (`transforms: [{ type: plugin, … }]`), byte for byte.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSink } from '@junction/connector-file/read';
import { api, eventually, startBroker, type BrokerProcess } from '../src/index.js';
import { junction, linksOutside, run } from '../src/outside.js';

const STATION = 'orders';
const N = 300;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function yaml(out?: string): string {
  return `stations:
  - name: ${STATION}
    partitions: 3
connectors:${
    out === undefined
      ? ' []'
      : `
  - name: to-landing
    plugin: landing
    station: ${STATION}
    config:
      dir: ${JSON.stringify(out)}
    batch:
      maxMessages: 50
      maxLatencyMs: 20`
  }
`;
}

/** Every `<partition>:<offset>` file the sink wrote (`<out>/<station>/<incarnation>/<partition>/<offset>.bin`), with its bytes. */
async function landed(out: string): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>();
  const station = join(out, encodeURIComponent(STATION));
  for (const incarnation of await readdir(station).catch(() => [] as string[])) {
    for (const p of await readdir(join(station, incarnation))) {
      for (const f of await readdir(join(station, incarnation, p))) {
        if (!f.endsWith('.bin')) continue;
        const k = `${p}:${Number(f.slice(0, -4))}`;
        if (got.has(k)) throw new Error(`message ${k} landed twice`);
        got.set(k, await readFile(join(station, incarnation, p, f)));
      }
    }
  }
  return got;
}

describe('a plugin written outside the repository', () => {
  const dirs: string[] = [];
  let broker: BrokerProcess | undefined;
  afterAll(async () => {
    await broker?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it(
    'is scaffolded, tested with the kit, installed into a running broker, and carries messages byte for byte',
    { timeout: 900_000 },
    async () => {
      const work = await mkdtemp(join(tmpdir(), 'junction-author-'));
      dirs.push(work);
      const project = join(work, 'landing');

      // 1. Scaffold: the SDK comes as a tarball inside the project.
      const scaffold = await junction(['plugins', 'new', 'landing', '--kind', 'sink', '--dir', project], work);
      expect(scaffold.stderr).toBe('');
      expect(scaffold.code).toBe(0);
      const pkg = JSON.parse(await readFile(join(project, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
      expect(pkg.devDependencies?.['@junction/sdk-connector']).toBe('file:vendor/junction-sdk-connector-1.0.0.tgz');
      expect(pkg.peerDependencies).toEqual({ '@junction/sdk-connector': '^1.0.0' });
      expect(Object.keys(pkg.devDependencies ?? {}).sort()).toEqual(['@junction/sdk-connector', '@types/node', 'typescript', 'vitest']);

      // 2. npm install && npm test, outside the workspace: the SDK from the tarball, the rest from the registry (cache first).
      const install = await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund'], project);
      expect(install.code, install.stderr).toBe(0);
      expect((await lstat(join(project, 'node_modules', '@junction', 'sdk-connector'))).isSymbolicLink()).toBe(false);
      expect(await linksOutside(join(project, 'node_modules'))).toEqual([]);
      const test = await run(npm, ['test'], project);
      expect(test.code, `${test.stdout}\n${test.stderr}`).toBe(0);
      // eslint-disable-next-line no-control-regex
      const summary = test.stdout.replace(/\x1b\[[0-9;]*m/g, '');
      expect(summary).toMatch(/Tests\s+1[0-9] passed/);
      expect(summary).not.toMatch(/failed/);

      // 3. A running broker; its file already names the plugin, which it does not have yet: the change is refused.
      const dataDir = join(work, 'data');
      const configPath = join(work, 'junction.yaml');
      const out = join(work, 'out');
      await writeFile(configPath, yaml());
      const { mkdir } = await import('node:fs/promises');
      await mkdir(dataDir, { recursive: true });
      broker = await startBroker({ dataDir, args: ['--config', configPath], timeoutMs: 120_000 });
      const url = broker.url;
      const b = broker;
      const before = await api<{ name: string }[]>(url, 'GET', '/v1/connector-plugins');
      expect(before.map((p) => p.name)).not.toContain('landing');
      await writeFile(configPath, yaml(out));
      await eventually('the broker to refuse the file naming an unknown plugin', 60_000, async () =>
        b.output().includes('the changed configuration is invalid') ? true : undefined,
      );
      expect((await api<{ connectors: string[] }>(url, 'GET', '/v1/connectors')).connectors).toEqual([]);

      // 4. Install through the running broker: usable at once, and the connector the file declares starts.
      const installed = await junction(['--url', url, 'plugins', 'install', project], work);
      expect(installed.stderr).toBe('');
      expect(installed.code).toBe(0);
      expect(installed.stdout).toContain(`installed sink plugin landing 0.1.0 into the broker at ${url}; usable now`);
      const listed = await api<{ name: string; builtin: boolean }[]>(url, 'GET', '/v1/connector-plugins');
      expect(listed.find((p) => p.name === 'landing')).toMatchObject({ builtin: false });
      await eventually('the connector to run', 120_000, async () => {
        const s = await api<{ connector: { state: string } }>(url, 'GET', '/v1/connectors/to-landing/status').catch(() => undefined);
        return s?.connector.state === 'RUNNING' ? s : undefined;
      });

      const produced = new Map<string, Buffer>();
      for (let i = 0; i < N; i += 100) {
        const values = Array.from({ length: 100 }, (_, j) =>
          j % 5 === 0 ? randomBytes(1 + ((i + j) % 200)) : Buffer.from(`{"n":${i + j},"héllo":"✓"}`),
        );
        const res = await api<{ results: { partition: number; offset: number }[] }>(url, 'POST', `/v1/stations/${STATION}/messages`, {
          messages: values.map((v, j) => ({ valueBase64: v.toString('base64'), key: `k${(i + j) % 11}` })),
        });
        res.results.forEach((r, j) => produced.set(`${r.partition}:${r.offset}`, values[j]!));
      }
      expect(produced.size).toBe(N);
      const got = await eventually('every message to land', 120_000, async () => {
        const m = await landed(out);
        return m.size >= N ? m : undefined;
      });
      expect(got.size).toBe(N);
      for (const [k, v] of produced) expect(Buffer.compare(got.get(k) ?? Buffer.alloc(0), v), `message ${k}`).toBe(0);

      // 5. Uninstall is refused while the connector uses it.
      const inUse = await junction(['--url', url, 'plugins', 'uninstall', 'landing'], work);
      expect(inUse.code).toBe(1);
      expect(inUse.stderr).toMatch(/^error PLUGIN_IN_USE: plugin "landing" is used by connector\(s\) "to-landing"/);

      // 6. A plugin built for another SDK, and a broken package, are refused with their codes.
      const src = join(project, 'src', 'index.ts');
      const original = await readFile(src, 'utf8');
      const setPackage = async (name: string) => {
        const p = JSON.parse(await readFile(join(project, 'package.json'), 'utf8')) as Record<string, unknown>;
        p.name = name;
        await writeFile(join(project, 'package.json'), JSON.stringify(p, null, 2));
      };
      await setPackage('junction-connector-future');
      await writeFile(src, original.replace("name: 'landing'", "name: 'future'").replace("sdk: '^1'", "sdk: '^2'"));
      const future = await junction(['--url', url, 'plugins', 'install', project], work);
      expect(future.code).toBe(1);
      expect(future.stderr).toMatch(/^error SDK_INCOMPATIBLE: .*needs connector SDK \^2, but this Junction runs SDK 1\.0\.0/);
      await setPackage('junction-connector-broken');
      await writeFile(src, `throw new Error('broken at import');\n${original.replace("name: 'landing'", "name: 'broken'")}`);
      const broken = await junction(['--url', url, 'plugins', 'install', project], work);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toMatch(/^error IMPORT_FAILED: .*broken at import/);
      const after = await api<{ name: string }[]>(url, 'GET', '/v1/connector-plugins');
      expect(after.map((p) => p.name).filter((n) => ['landing', 'future', 'broken'].includes(n))).toEqual(['landing']);

      // 7. Once the connector is gone, uninstall works and the plugin is no longer listed.
      await writeFile(configPath, yaml());
      await eventually('the connector to be deleted', 120_000, async () => {
        const names = await api<{ connectors: string[] }>(url, 'GET', '/v1/connectors');
        return names.connectors.includes('to-landing') ? undefined : true;
      });
      const removed = await junction(['--url', url, 'plugins', 'uninstall', 'landing'], work);
      expect(removed.stderr).toBe('');
      expect(removed.code).toBe(0);
      const final = await api<{ name: string }[]>(url, 'GET', '/v1/connector-plugins');
      expect(final.map((p) => p.name)).not.toContain('landing');
    },
  );

  it(
    'a scaffolded transform passes its own tests, and installed into a running broker shapes what a file sink lands',
    { timeout: 900_000 },
    async () => {
      const work = await mkdtemp(join(tmpdir(), 'junction-author-transform-'));
      dirs.push(work);
      const project = join(work, 'tagger');
      const scaffold = await junction(['plugins', 'new', 'tagger', '--kind', 'transform', '--dir', project], work);
      expect(scaffold.stderr).toBe('');
      expect(scaffold.code).toBe(0);
      const pkg = JSON.parse(await readFile(join(project, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
      expect(pkg.junction).toEqual({ kind: 'transform', entry: './dist/index.js' });
      const install = await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund'], project);
      expect(install.code, install.stderr).toBe(0);
      expect(await linksOutside(join(project, 'node_modules'))).toEqual([]);
      const test = await run(npm, ['test'], project);
      expect(test.code, `${test.stdout}\n${test.stderr}`).toBe(0);
      // eslint-disable-next-line no-control-regex
      const summary = test.stdout.replace(/\x1b\[[0-9;]*m/g, '');
      expect(summary).toMatch(/Tests\s+2 passed/);
      expect(summary).not.toMatch(/failed/);

      // A running broker without the plugin; installed through it, then a file sink names it in its transforms.
      const dataDir = join(work, 'data');
      const configPath = join(work, 'junction.yaml');
      const out = join(work, 'out');
      await writeFile(configPath, yaml());
      const { mkdir } = await import('node:fs/promises');
      await mkdir(dataDir, { recursive: true });
      const tb = await startBroker({ dataDir, args: ['--config', configPath], timeoutMs: 120_000 });
      try {
        const url = tb.url;
        const installed = await junction(['--url', url, 'plugins', 'install', project], work);
        expect(installed.stderr).toBe('');
        expect(installed.code).toBe(0);
        expect(installed.stdout).toContain('installed transform plugin tagger 0.1.0');
        await writeFile(
          configPath,
          `${yaml()}
  - name: to-files
    plugin: file
    station: ${STATION}
    config:
      dir: ${JSON.stringify(out)}
    batch:
      maxMessages: 50
      maxLatencyMs: 20
    transforms:
      - type: plugin
        plugin: tagger
        config:
          field: env
          value: prod
`.replace('connectors: []\n', 'connectors:\n'),
        );
        await eventually('the connector to run', 120_000, async () => {
          const st = await api<{ connector: { state: string } }>(url, 'GET', '/v1/connectors/to-files/status').catch(() => undefined);
          return st?.connector.state === 'RUNNING' ? st : undefined;
        });
        // Untagged values get the tag; tagged ones keep their very bytes.
        const expected = new Map<string, Buffer>();
        for (let i = 0; i < N; i += 100) {
          const values = Array.from({ length: 100 }, (_, j) => {
            const n = i + j;
            return n % 3 === 0 ? `{"n":${n},"env":"prod",  "kept":true}` : `{"n":${n},"héllo":"✓"}`;
          });
          const res = await api<{ results: { partition: number; offset: number }[] }>(url, 'POST', `/v1/stations/${STATION}/messages`, {
            messages: values.map((v, j) => ({ valueBase64: Buffer.from(v).toString('base64'), key: `k${(i + j) % 11}` })),
          });
          res.results.forEach((r, j) => {
            const v = values[j]!;
            expected.set(`${r.partition}:${r.offset}`, Buffer.from(v.includes('"env"') ? v : `${v.slice(0, -1)},"env":"prod"}`));
          });
        }
        expect(expected.size).toBe(N);
        const got = await eventually('every message to land', 120_000, async () => {
          const records = await readFileSink(out);
          return records.length >= N ? records : undefined;
        });
        expect(got.length).toBe(N);
        const byKey = new Map(got.map((r) => [`${r.partition}:${r.offset}`, r.value]));
        expect(byKey.size).toBe(N);
        for (const [k, v] of expected) expect(Buffer.compare(byKey.get(k) ?? Buffer.alloc(0), v), `message ${k}`).toBe(0);
      } finally {
        await tb.stop();
      }
    },
  );

  it('a scaffolded source passes its own kit tests outside the repository too', { timeout: 600_000 }, async () => {
    const work = await mkdtemp(join(tmpdir(), 'junction-author-source-'));
    dirs.push(work);
    const project = join(work, 'counter');
    const scaffold = await junction(['plugins', 'new', 'counter', '--kind', 'source', '--dir', project], work);
    expect(scaffold.code, scaffold.stderr).toBe(0);
    const install = await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund'], project);
    expect(install.code, install.stderr).toBe(0);
    expect(await linksOutside(join(project, 'node_modules'))).toEqual([]);
    const test = await run(npm, ['test'], project);
    expect(test.code, `${test.stdout}\n${test.stderr}`).toBe(0);
    // eslint-disable-next-line no-control-regex
    const summary = test.stdout.replace(/\x1b\[[0-9;]*m/g, '');
    expect(summary).toMatch(/Tests\s+[5-9] passed/);
    expect(summary).not.toMatch(/failed/);
  });
});
