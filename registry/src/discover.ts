/**
 * Where plugin packages are: every package directory directly under a built-in dir (`<repo>/connectors`),
 * and every package installed in the plugins dir (`<data-dir>/plugins`, an npm prefix: see install.ts).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryError, RegistryErrorCode } from './errors.js';
import { readPackageJson } from './package.js';
import type { RefusedPlugin } from './check.js';
import { refusal } from './check.js';

/** The SDK's package name: provided by the host to installed plugins, never a plugin itself. */
export const SDK_PACKAGE = '@junction/sdk-connector';

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The package directories directly under `dir` (those with a package.json), sorted by name. A
 * missing `dir` yields none; folders without a package.json (and dot folders, node_modules) are skipped.
 */
export async function builtinPackageDirs(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.') || name === 'node_modules') continue;
    const pkgDir = join(dir, name);
    if ((await isDir(pkgDir)) && (await exists(join(pkgDir, 'package.json')))) out.push(pkgDir);
  }
  return out;
}

/** Whether the package.json in `dir` has a `junction` field (cheap; any problem means no). */
async function hasJunctionField(dir: string): Promise<boolean> {
  try {
    const json = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { junction?: unknown };
    return json.junction !== undefined;
  } catch {
    return false;
  }
}

/** Top-level package dirs in a node_modules folder (`name` and `@scope/name`), keyed by package name. */
async function nodeModulesPackages(nodeModules: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = await readdir(nodeModules);
  } catch {
    return out;
  }
  for (const name of names) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) {
      let scoped: string[] = [];
      try {
        scoped = await readdir(join(nodeModules, name));
      } catch {
        // not a directory
      }
      for (const s of scoped) if (!s.startsWith('.')) out.set(`${name}/${s}`, join(nodeModules, name, s));
    } else {
      out.set(name, join(nodeModules, name));
    }
  }
  return out;
}

/**
 * The installed plugin packages: every dependency that `<pluginsDir>/package.json` declares (but the
 * SDK), each of which must be a plugin, plus any other top-level package in `<pluginsDir>/node_modules`
 * whose package.json has a `junction` field (copied in by hand). Hoisted dependencies of plugins have no
 * `junction` field and are ignored. Sorted by package name. A declared package that is not there, or a
 * plugins package.json that cannot be read, is reported in `refused`.
 */
export async function installedPackageDirs(pluginsDir: string): Promise<{ dirs: string[]; refused: RefusedPlugin[] }> {
  const refused: RefusedPlugin[] = [];
  const nodeModules = join(pluginsDir, 'node_modules');
  const declared = new Set<string>();
  if (await exists(join(pluginsDir, 'package.json'))) {
    try {
      const pkg = await readPackageJson(pluginsDir);
      for (const name of Object.keys(pkg.dependencies ?? {})) if (name !== SDK_PACKAGE) declared.add(name);
    } catch (err) {
      refused.push(refusal(join(pluginsDir, 'package.json'), undefined, err));
    }
  }
  const present = await nodeModulesPackages(nodeModules);
  const dirs = new Map<string, string>();
  for (const name of declared) {
    const dir = join(nodeModules, ...name.split('/'));
    if (present.has(name) && (await isDir(dir))) {
      dirs.set(name, dir);
    } else {
      const err = new RegistryError(
        RegistryErrorCode.PACKAGE_INVALID,
        `package ${name} is declared in ${join(pluginsDir, 'package.json')} but not installed in ${nodeModules} ` +
          `(install it again with \`junction plugins install\`, or run \`npm install --prefix ${pluginsDir}\`)`,
      );
      refused.push(refusal(dir, name, err));
    }
  }
  for (const [name, dir] of present) {
    if (declared.has(name) || name === SDK_PACKAGE) continue;
    if ((await isDir(dir)) && (await hasJunctionField(dir))) dirs.set(name, dir);
  }
  const sorted = [...dirs.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, dir]) => dir);
  return { dirs: sorted, refused };
}
