/**
 * The SDK and client tarballs, packed on demand from the packages this CLI runs with: in the
 * repository the workspace folders, in an installed CLI its own `node_modules/@junction/…` — the same
 * files `npm publish` would ship (`files`, built `dist/`), so the tarballs need no repository.
 * `npm pack --ignore-scripts`: an installed package has no sources to build, and needs none.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, realpathSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { CliError } from './errors.js';
import { ScaffoldErrorCode } from './scaffold.js';

export const SDK_PACKAGE = '@junction/sdk-connector';
/** The client and the wire contract it depends on (both needed to install the client outside the repository). */
export const CLIENT_PACKAGES = ['@junction/protocol', '@junction/client'] as const;

export interface PackedTarball {
  name: string;
  version: string;
  /** Absolute path of the tarball written. */
  path: string;
}

/** The folder of an installed package this CLI resolves (links followed). Throws PACKAGE_NOT_FOUND. */
export function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(realpathSync(require.resolve(`${name}/package.json`)));
  } catch {
    // A package whose exports do not list ./package.json: walk up from its main module.
  }
  try {
    let dir = dirname(realpathSync(require.resolve(name)));
    for (;;) {
      try {
        if ((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === name) return dir;
      } catch {
        // no package.json here
      }
      const up = dirname(dir);
      if (up === dir) throw new Error(`no package.json of ${name} above its main module`);
      dir = up;
    }
  } catch (cause) {
    throw new CliError(ScaffoldErrorCode.PACKAGE_NOT_FOUND, `cannot find ${name} next to this junction CLI`, { cause });
  }
}

/** The version of an installed package. */
export async function packageVersion(name: string): Promise<string> {
  const pkg = JSON.parse(await readFile(join(packageDir(name), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** npm sets these for the scripts it runs; inherited they would point our npm at the wrong project. */
function npmEnv(env: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    const lower = k.toLowerCase();
    if (lower.startsWith('npm_package_') || lower.startsWith('npm_lifecycle_') || lower.startsWith('npm_config_workspace')) continue;
    if (lower === 'npm_config_local_prefix' || lower === 'init_cwd' || lower === 'npm_command') continue;
    out[k] = v;
  }
  out.npm_config_update_notifier = 'false';
  return out;
}

/**
 * Packs the installed package `name` into `outDir` (created when missing) and resolves with the
 * tarball. Throws CliError PACKAGE_NOT_FOUND (not there, or not built) or PACK_FAILED (npm's error).
 */
export async function packPackage(
  name: string,
  outDir: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<PackedTarball> {
  const dir = packageDir(name);
  const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { exports?: Record<string, { default?: string } | string> };
  const main = pkg.exports?.['.'];
  const entry = typeof main === 'string' ? main : main?.default;
  if (entry !== undefined) {
    try {
      await stat(join(dir, entry));
    } catch (cause) {
      throw new CliError(
        ScaffoldErrorCode.PACKAGE_NOT_FOUND,
        `${name} in ${dir} is not built (${entry} is missing); run \`npx tsc -b\` in the repository`,
        { cause },
      );
    }
  }
  const out = resolve(outDir);
  await mkdir(out, { recursive: true });
  const child = spawn('npm', ['pack', dir, '--json', '--ignore-scripts', '--pack-destination', out], {
    cwd: out,
    env: npmEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const failed = once(child, 'error').then(([err]: unknown[]) => {
    throw new CliError(ScaffoldErrorCode.PACK_FAILED, `cannot run npm: ${(err as Error).message}`, { cause: err });
  });
  const [code] = (await Promise.race([once(child, 'close'), failed])) as [number | null];
  if (code !== 0)
    throw new CliError(ScaffoldErrorCode.PACK_FAILED, `npm pack ${name} failed: ${stderr.trim().split('\n').slice(-5).join(' ')}`);
  try {
    const first = (
      JSON.parse(stdout.slice(Math.max(0, stdout.search(/^\[/m)))) as { name: string; version: string; filename: string }[]
    )[0];
    if (!first) throw new Error('empty answer');
    return { name: first.name, version: first.version, path: join(out, first.filename) };
  } catch (cause) {
    throw new CliError(ScaffoldErrorCode.PACK_FAILED, `npm pack ${name} answered something unexpected: ${stdout.slice(0, 200)}`, { cause });
  }
}
