/**
 * `junction plugins install|list` through the built CLI (as a user runs it; npm test builds first).
 * Lives here rather than in cli/test because it exercises the registry end to end.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, NO_REGISTRY, REPO, placeInPluginsDir, removeTempDirs, sinkModule, tempDir, writePackage } from './helpers.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function junction(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    cwd: REPO,
    env: { ...process.env, JUNCTION_DATA_DIR: '', ...NO_REGISTRY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

afterAll(removeTempDirs);

describe('junction plugins', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = join(await tempDir('junction-cli-plugins-'), 'data');
  });

  it('list on a fresh data dir says there are none', async () => {
    const r = await junction(['plugins', 'list', '--data-dir', dataDir]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain(`no plugins in ${join(dataDir, 'plugins')}`);
  });

  it('install examples/community-connector, then list shows it', async () => {
    const install = await junction(['plugins', 'install', 'examples/community-connector', '--data-dir', dataDir]);
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    expect(install.stdout).toContain(
      `installed sink plugin webhook 0.1.0 (package junction-connector-webhook) into ${join(dataDir, 'plugins')}`,
    );

    const list = await junction(['plugins', 'list', '--data-dir', dataDir]);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+KIND\s+VERSION\s+SDK\s+PACKAGE\s+DESCRIPTION$/);
    expect(lines[1]).toMatch(/^webhook\s+sink\s+0\.1\.0\s+\^1\s+junction-connector-webhook\s+POSTs/);
    expect(lines).toHaveLength(2);
  });

  it('list --all adds the built-ins; --json prints plugins and refused', async () => {
    const all = await junction(['plugins', 'list', '--all', '--data-dir', dataDir]);
    expect(all.stdout).toMatch(/^datagen\s+source\s+.*built-in/m);
    expect(all.stdout).toMatch(/^file\s+sink\s+.*built-in/m);
    expect(all.stdout).toMatch(/^webhook\s+sink/m);

    // The data dir from JUNCTION_DATA_DIR, like `junction start`.
    const json = await junction(['plugins', 'list', '--json'], { JUNCTION_DATA_DIR: dataDir });
    const body = JSON.parse(json.stdout) as { plugins: { name: string }[]; refused: unknown[] };
    expect(body.plugins.map((p) => p.name)).toEqual(['webhook']);
    expect(body.refused).toEqual([]);
  });

  it('list prints refused plugins with their reason', async () => {
    // Copied in by hand (not through npm): found by its `junction` field.
    const spec = { files: { 'dist/index.js': sinkModule('future', { sdk: '^2' }) } };
    await placeInPluginsDir(join(dataDir, 'plugins'), 'junction-connector-future', 'future', spec, false);
    const r = await junction(['plugins', 'list', '--data-dir', dataDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^webhook\s+sink/m);
    expect(r.stdout).toContain('refused (1):');
    expect(r.stdout).toContain(
      'junction-connector-future: SDK_INCOMPATIBLE: sink plugin "future" 0.2.0 needs connector SDK ^2, but this Junction runs SDK 1.0.0',
    );
  });

  it('install of an incompatible plugin fails with its code and leaves the others', async () => {
    const src = await writePackage(join(await tempDir(), 'old'), 'junction-connector-old', 'old', {
      files: { 'dist/index.js': sinkModule('old', { sdk: '^2' }) },
    });
    const r = await junction(['plugins', 'install', src, '--data-dir', dataDir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^error SDK_INCOMPATIBLE: cannot install junction-connector-old@0\.2\.0: sink plugin "old" 0\.2\.0 needs connector SDK \^2/,
    );
    const list = await junction(['plugins', 'list', '--json', '--data-dir', dataDir]);
    expect((JSON.parse(list.stdout) as { plugins: { name: string }[] }).plugins.map((p) => p.name)).toEqual(['webhook']);
  });

  it('install without a spec is a usage error', async () => {
    const r = await junction(['plugins', 'install', '--data-dir', dataDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error USAGE: missing required argument 'spec'/);
  });
});
