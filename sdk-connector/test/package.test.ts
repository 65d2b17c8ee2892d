/**
 * The SDK is publish-ready: what `npm pack` ships (built JS, types, the testing entry, README), a
 * package.json an outsider's npm can install (no workspace or file dependencies, engines, exports), and
 * a version the runtime's SDK check agrees with.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SDK_VERSION, satisfiesSdk } from '../src/index.js';

const pkgDir = new URL('..', import.meta.url);
const pkg = JSON.parse(await readFile(new URL('package.json', pkgDir), 'utf8')) as {
  name: string;
  version: string;
  engines?: Record<string, string>;
  exports: Record<string, { types?: string; default?: string } | string>;
  files: string[];
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  private?: boolean;
};

describe('@junction/sdk-connector as a package', () => {
  it('has the version SDK_VERSION says, and plugins built for ^<major> run on it', () => {
    expect(pkg.version).toBe(SDK_VERSION);
    const major = SDK_VERSION.split('.')[0];
    expect(satisfiesSdk(`^${major}`)).toBe(true);
    expect(satisfiesSdk(`^${major}.0.0`)).toBe(true);
    expect(satisfiesSdk(`^${Number(major) + 1}`)).toBe(false);
  });

  it('declares what npm needs outside the repository', () => {
    expect(pkg.private).toBeUndefined();
    expect(pkg.engines).toEqual({ node: '>=20' });
    for (const [name, spec] of Object.entries({ ...pkg.dependencies, ...pkg.peerDependencies })) {
      expect(spec, name).toMatch(/^\^?\d+\.\d+\.\d+$/);
      expect(name.startsWith('@junction/'), `${name} is not published`).toBe(false);
    }
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './package.json', './schema', './testing']);
  });

  it('npm pack ships the built JS, the types, the testing entry and the README — no tests', { timeout: 120_000 }, async () => {
    const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: pkgDir,
      maxBuffer: 16 << 20,
    });
    const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    expect(packed?.filename).toBe(`junction-sdk-connector-${SDK_VERSION}.tgz`);
    const files = new Set(packed?.files.map((f) => f.path));
    for (const entry of Object.values(pkg.exports)) {
      if (typeof entry === 'string') continue;
      expect(files.has(entry.default!.replace(/^\.\//, '')), entry.default).toBe(true);
      expect(files.has(entry.types!.replace(/^\.\//, '')), entry.types).toBe(true);
    }
    expect(files.has('README.md')).toBe(true);
    expect(files.has('package.json')).toBe(true);
    expect([...files].filter((f) => f.startsWith('test/') || f.endsWith('.tsbuildinfo'))).toEqual([]);
  });
});
