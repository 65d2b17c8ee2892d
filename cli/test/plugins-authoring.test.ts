/**
 * `junction plugins sdk` and `plugins new` through the built CLI: the tarballs it writes and what they
 * hold, the files a scaffold has (sink, source, transform), and the coded refusals (an unknown kind, a bad name,
 * a folder that is not empty). `plugins install` with no broker at --url installs offline and says so.
 * (The scaffold built, tested and installed into a running broker: test/test/plugin-authoring-e2e.test.ts.)
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../examples/community-connector/', import.meta.url));

async function junction(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { ...process.env, JUNCTION_URL: '', JUNCTION_DATA_DIR: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

async function tarList(tgz: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)('tar', ['-tzf', tgz], { maxBuffer: 16 << 20 });
  return stdout.trim().split('\n');
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'junction-cli-authoring-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('junction plugins sdk', () => {
  it('writes the SDK tarball where asked: built JS, types, the testing entry, the README', { timeout: 120_000 }, async () => {
    const r = await junction(['plugins', 'sdk', '--out', 'sdk-out'], work);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const tgz = join(work, 'sdk-out', 'junction-sdk-connector-1.0.0.tgz');
    expect(r.stdout).toBe(`${tgz}\n`);
    const files = await tarList(tgz);
    for (const f of [
      'package/package.json',
      'package/README.md',
      'package/dist/index.js',
      'package/dist/index.d.ts',
      'package/dist/testing/index.js',
      'package/dist/testing/index.d.ts',
    ]) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('package/test/'))).toEqual([]);
  });

  it('--client writes the protocol and client tarballs', { timeout: 120_000 }, async () => {
    const r = await junction(['plugins', 'sdk', '--client', '--out', join(work, 'client-out')], work);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      join(work, 'client-out', 'junction-protocol-0.1.0.tgz'),
      join(work, 'client-out', 'junction-client-0.1.0.tgz'),
    ]);
    expect(await tarList(join(work, 'client-out', 'junction-client-0.1.0.tgz'))).toContain('package/dist/index.d.ts');
  });
});

describe('junction plugins new', () => {
  it('scaffolds a sink project: the SDK tarball in vendor/, a peer range, the kit test', { timeout: 120_000 }, async () => {
    const dir = join(work, 'sink');
    const r = await junction(['plugins', 'new', 'my-sink', '--dir', dir], work);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`scaffolded sink plugin my-sink in ${dir}`);
    expect((await readdir(dir)).sort()).toEqual(['.gitignore', 'README.md', 'package.json', 'src', 'test', 'tsconfig.json', 'vendor']);
    expect(await readdir(join(dir, 'vendor'))).toEqual(['junction-sdk-connector-1.0.0.tgz']);
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
    expect(pkg.name).toBe('junction-connector-my-sink');
    expect(pkg.junction).toEqual({ kind: 'sink', entry: './dist/index.js' });
    expect(pkg.peerDependencies).toEqual({ '@junction/sdk-connector': '^1.0.0' });
    expect(pkg.devDependencies?.['@junction/sdk-connector']).toBe('file:vendor/junction-sdk-connector-1.0.0.tgz');
    expect(await readFile(join(dir, 'src', 'index.ts'), 'utf8')).toContain("name: 'my-sink'");
    expect(await readFile(join(dir, 'test', 'conformance.test.ts'), 'utf8')).toContain('sinkConformanceSuite');
  });

  it('scaffolds a source project', { timeout: 120_000 }, async () => {
    const dir = join(work, 'junction-connector-counter');
    const r = await junction(['plugins', 'new', 'counter', '--kind', 'source'], work);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
    expect(pkg.junction).toEqual({ kind: 'source', entry: './dist/index.js' });
    expect(await readFile(join(dir, 'test', 'conformance.test.ts'), 'utf8')).toContain('sourceConformanceSuite');
  });

  it('scaffolds a transform project: defineTransform, the transform kit in its test', { timeout: 120_000 }, async () => {
    const dir = join(work, 'tx');
    const r = await junction(['plugins', 'new', 'tagger', '--kind', 'transform', '--dir', dir], work);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`scaffolded transform plugin tagger in ${dir}`);
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
    expect(pkg.junction).toEqual({ kind: 'transform', entry: './dist/index.js' });
    expect(pkg.peerDependencies).toEqual({ '@junction/sdk-connector': '^1.0.0' });
    const index = await readFile(join(dir, 'src', 'index.ts'), 'utf8');
    expect(index).toContain('defineTransform({');
    expect(index).toContain("name: 'tagger'");
    expect(await readFile(join(dir, 'test', 'conformance.test.ts'), 'utf8')).toContain('runTransformConformance');
    expect(await readFile(join(dir, 'README.md'), 'utf8')).toContain('plugin: tagger');
  });

  it('refuses an unknown kind, a bad name, a folder that is not empty', async () => {
    const other = await junction(['plugins', 'new', 'mask', '--kind', 'processor', '--dir', join(work, 't')], work);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^error PLUGIN_KIND_UNSUPPORTED: --kind must be one of sink, source, transform/);
    const name = await junction(['plugins', 'new', 'My_Sink', '--dir', join(work, 'n')], work);
    expect(name.code).toBe(1);
    expect(name.stderr).toMatch(/^error PLUGIN_NAME_INVALID: /);
    await writeFile(join(work, 'occupied.txt'), 'x');
    const full = await junction(['plugins', 'new', 'ok-name', '--dir', work], work);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/^error DIR_NOT_EMPTY: /);
    // Nothing was written for the refused ones.
    expect((await readdir(work)).filter((f) => ['t', 'n'].includes(f))).toEqual([]);
  });
});

describe('junction plugins install without a broker', () => {
  it('installs into the data dir when nothing answers at --url, and says how a broker picks it up', { timeout: 180_000 }, async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const dataDir = join(work, 'data');
    const r = await junction(['--url', `http://127.0.0.1:${port}`, 'plugins', 'install', EXAMPLE], work, {
      JUNCTION_DATA_DIR: dataDir,
      npm_config_registry: 'http://127.0.0.1:9/',
      npm_config_fetch_retries: '0',
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `installed sink plugin webhook 0.1.0 (package junction-connector-webhook) into ${join(dataDir, 'plugins')}\n` +
        'a broker running on this data dir lists it after `junction plugins refresh` (or a restart)\n',
    );
  });
});
