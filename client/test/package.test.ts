/**
 * The client is publish-ready: it depends on nothing but the wire contract (@junction/protocol, at the
 * exact version beside it, itself depending on zod alone), and `npm pack` ships its built JS, types
 * and README. (client-tarball-e2e in test/ installs both tarballs in an application and runs it.)
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

interface Pkg {
  name: string;
  version: string;
  engines?: Record<string, string>;
  exports: Record<string, { types?: string; default?: string } | string>;
  dependencies?: Record<string, string>;
  private?: boolean;
}
const read = async (dir: string): Promise<Pkg> =>
  JSON.parse(await readFile(new URL(`../../${dir}/package.json`, import.meta.url), 'utf8')) as Pkg;

describe('@junction/client and @junction/protocol as packages', () => {
  it('the client needs only the protocol at its exact version; the protocol only zod', async () => {
    const client = await read('client');
    const protocol = await read('protocol');
    expect(client.dependencies).toEqual({ '@junction/protocol': protocol.version });
    expect(Object.keys(protocol.dependencies ?? {})).toEqual(['zod']);
    for (const p of [client, protocol]) {
      expect(p.private).toBeUndefined();
      expect(p.engines).toEqual({ node: '>=20' });
      expect(Object.keys(p.exports).sort()).toEqual(['.', './package.json']);
    }
  });

  it('npm pack ships the built JS, the types and the README', { timeout: 120_000 }, async () => {
    for (const dir of ['client', 'protocol']) {
      const cwd = new URL(`../../${dir}/`, import.meta.url);
      const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
        cwd,
        maxBuffer: 16 << 20,
      });
      const files = new Set((JSON.parse(stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path));
      for (const f of ['dist/index.js', 'dist/index.d.ts', 'README.md', 'package.json']) expect(files.has(f), `${dir}: ${f}`).toBe(true);
      expect([...files].filter((f) => f.startsWith('test/') || f.endsWith('.tsbuildinfo'))).toEqual([]);
    }
  });
});
