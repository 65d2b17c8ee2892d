/**
 * Installing a plugin into the plugins dir (`<data-dir>/plugins`).
 *
 * The plugins dir is an npm prefix of its own: a `package.json` whose dependencies are the installed
 * plugins, `node_modules/`, a lockfile, and `tarballs/` with a copy of every plugin package installed.
 *
 * - Every spec — a package folder, a tarball, or an npm spec (`name`, `name@1.2`, `@scope/name`) — is
 *   first turned into a tarball in `tarballs/` with `npm pack` (for a folder that is exactly what
 *   `npm publish` would ship: its `files`, built output included, no devDependencies), and the tarball is
 *   installed with `npm install --prefix <pluginsDir> file:tarballs/<name>-<version>.tgz`. The lockfile
 *   then points at files in the plugins dir, so `npm install --prefix <pluginsDir>` rebuilds the same
 *   tree offline.
 * - The SDK (`@junction/sdk-connector`) is not published. The plugins package.json depends on it as
 *   `file:<the SDK folder this Junction runs>`, which npm installs as a symlink (never packed, never
 *   fetched): a plugin's peer or regular dependency on `@junction/sdk-connector@^1` is satisfied by that
 *   root dependency, so npm asks the registry nothing for a plugin whose only dependency is the SDK, and
 *   the plugin imports the very SDK module the host runs (one copy of zod, one SDK_VERSION). The SDK's
 *   own dependencies resolve from its real location. Each install re-points the link at the running
 *   SDK, so a moved or upgraded Junction heals it.
 * - After npm, the plugins dir is scanned exactly as the registry does; a package that is refused
 *   (not a plugin, broken, incompatible SDK, a name a built-in or another plugin has) is rolled back —
 *   package.json, lockfile, node_modules and tarball as they were — and the refusal is thrown.
 *
 * One install at a time per plugins dir (npm itself does not share a prefix safely).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { realpathSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pino } from 'pino';
import type { PluginDescriptor } from './check.js';
import { SDK_PACKAGE } from './discover.js';
import { RegistryError, RegistryErrorCode, type Issue } from './errors.js';
import { Registry, type RegistryLogger } from './registry.js';

/** Folder of the plugins dir that keeps the installed tarballs. */
export const TARBALLS_DIR = 'tarballs';
/** `name` of the plugins dir's own package.json. */
export const PLUGINS_PACKAGE_NAME = 'junction-plugins';

export interface InstallOptions {
  /** The built-in connector dirs, so a plugin that takes a built-in's name is refused (as the registry would). */
  builtinDirs?: string[] | undefined;
  /** Base for a relative path spec. Default `process.cwd()`. */
  cwd?: string | undefined;
  /** Extra environment for npm (e.g. `npm_config_registry`), over `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** The npm executable. Default `npm` on the PATH. */
  npm?: string | undefined;
  /** Receives progress at debug and rollback problems at warn. Default: silent. */
  logger?: RegistryLogger | undefined;
}

/** The folder of the SDK package this process runs (the link target for installed plugins). */
export function hostSdkDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(realpathSync(require.resolve(`${SDK_PACKAGE}/package.json`)));
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function isPath(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** npm sets these for the scripts it runs; inherited by our npm they would point it at the wrong project. */
function npmEnv(extra: InstallOptions['env']): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const lower = k.toLowerCase();
    if (lower.startsWith('npm_package_') || lower.startsWith('npm_lifecycle_')) continue;
    if (lower === 'npm_config_local_prefix' || lower.startsWith('npm_config_workspace') || lower === 'init_cwd' || lower === 'npm_command')
      continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  env.npm_config_update_notifier = 'false';
  return env;
}

async function runNpm(args: string[], cwd: string, options: InstallOptions): Promise<string> {
  const child = spawn(options.npm ?? 'npm', args, { cwd, env: npmEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const failed = once(child, 'error').then(([err]: unknown[]) => {
    throw new RegistryError(RegistryErrorCode.INSTALL_FAILED, `cannot run npm (${options.npm ?? 'npm'}): ${(err as Error).message}`, {
      cause: err,
    });
  });
  const [code] = (await Promise.race([once(child, 'close'), failed])) as [number | null];
  if (code !== 0) throw new RegistryError(RegistryErrorCode.INSTALL_FAILED, `npm ${args[0]} failed: ${npmFailure(stderr, code)}`);
  return stdout;
}

/** npm's error report, shortened: its code and what it says, without the stack and the log file line. */
export function npmFailure(stderr: string, exitCode: number | null): string {
  const lines = stderr
    .split('\n')
    .filter((l) => /^npm (error|ERR!)/.test(l))
    .map((l) => l.replace(/^npm (error|ERR!) ?/, ''));
  const npmCode = lines.map((l) => /^code (\S+)$/.exec(l)?.[1]).find((c) => c !== undefined);
  const stack = lines.findIndex((l) => /^\s+at /.test(l));
  const said = (stack >= 0 ? lines.slice(0, stack) : lines)
    .filter(
      (l) => l.trim() !== '' && !/^(code|syscall|errno|path|dest|signal|command|cwd) /.test(l) && !/complete log of this run/i.test(l),
    )
    .slice(0, 8);
  const text = said.length > 0 ? said.join('\n  ') : stderr.trim().split('\n').slice(-4).join('\n  ') || `exit code ${exitCode}`;
  return npmCode ? `${npmCode}: ${text}` : text;
}

/** npm pack --json output (scripts may print before it): name, version and the tarball's file name. */
function parsePack(stdout: string): { name: string; version: string; filename: string } {
  const start = stdout.search(/^\[/m);
  try {
    const parsed = JSON.parse(start >= 0 ? stdout.slice(start) : stdout) as { name?: unknown; version?: unknown; filename?: unknown }[];
    const first = parsed[0];
    if (first && typeof first.name === 'string' && typeof first.version === 'string' && typeof first.filename === 'string') {
      return { name: first.name, version: first.version, filename: first.filename };
    }
  } catch {
    // reported below
  }
  throw new RegistryError(RegistryErrorCode.INSTALL_FAILED, `npm pack answered something unexpected: ${stdout.slice(0, 300)}`);
}

/**
 * Makes sure `<pluginsDir>/package.json` exists and depends on this process's SDK (see the module
 * comment). Keeps every other field.
 */
export async function preparePluginsDir(pluginsDir: string): Promise<void> {
  await mkdir(join(pluginsDir, TARBALLS_DIR), { recursive: true });
  const path = join(pluginsDir, 'package.json');
  const existing = await readIfExists(path);
  let pkg: Record<string, unknown>;
  if (existing === undefined) {
    pkg = {
      name: PLUGINS_PACKAGE_NAME,
      private: true,
      description: 'Connector plugins installed with `junction plugins install` (managed by Junction)',
      dependencies: {},
    };
  } else {
    try {
      pkg = JSON.parse(existing.toString('utf8')) as Record<string, unknown>;
      if (typeof pkg !== 'object' || pkg === null || Array.isArray(pkg)) throw new Error('not an object');
    } catch (err) {
      throw new RegistryError(RegistryErrorCode.PACKAGE_INVALID, `${path} is not a valid package.json: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const deps = (typeof pkg.dependencies === 'object' && pkg.dependencies !== null ? pkg.dependencies : {}) as Record<string, string>;
  const sdkSpec = `file:${hostSdkDir()}`;
  if (existing !== undefined && deps[SDK_PACKAGE] === sdkSpec) return;
  pkg.dependencies = { ...deps, [SDK_PACKAGE]: sdkSpec };
  await replaceFile(path, JSON.stringify(pkg, null, 2) + '\n');
}

/** Writes a file whole or not at all (temp file, fsync, rename): a crash never leaves half a package.json. */
async function replaceFile(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}-${Date.now().toString(36)}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

const SILENT = pino({ level: 'silent' });

/**
 * Installs a plugin package into `pluginsDir` and checks it like the registry does. `spec` is a path
 * to a package folder or a tarball (relative to `opts.cwd`), or an npm package spec. Resolves with the
 * installed plugin's descriptor; a running Registry sees it after `refresh()`.
 *
 * Throws RegistryError INSTALL_FAILED when npm cannot pack or install it (npm's error in the message),
 * or the refusal's code (NOT_A_PLUGIN, PACKAGE_INVALID, ENTRY_NOT_FOUND, IMPORT_FAILED, PLUGIN_INVALID,
 * SDK_INCOMPATIBLE, DUPLICATE_PLUGIN, PLUGIN_SHADOWS_BUILTIN) with its issues; the plugins dir is
 * then left as it was.
 */
export async function installPlugin(spec: string, pluginsDir: string, opts: InstallOptions = {}): Promise<PluginDescriptor> {
  const logger = opts.logger ?? SILENT;
  const root = resolve(pluginsDir);
  await preparePluginsDir(root);
  const local = resolve(opts.cwd ?? process.cwd(), spec);
  const packSpec = (await isPath(local)) ? local : spec;

  const tarballs = join(root, TARBALLS_DIR);
  const staging = await mkdtemp(join(tarballs, '.staging-'));
  let target: string;
  let pack: { name: string; version: string; filename: string };
  try {
    logger.debug({ spec: packSpec }, 'packing plugin');
    pack = parsePack(await runNpm(['pack', packSpec, '--json', '--pack-destination', staging], root, opts));
    target = join(tarballs, pack.filename);
    const before = {
      packageJson: await readIfExists(join(root, 'package.json')),
      lockfile: await readIfExists(join(root, 'package-lock.json')),
      tarball: (await isPath(target)) ? join(staging, `${pack.filename}.previous`) : undefined,
    };
    if (before.tarball) await rename(target, before.tarball);
    await rename(join(staging, pack.filename), target);

    const registryOptions = { builtinDirs: opts.builtinDirs ?? [], pluginsDir: root, logger: SILENT };
    const listedBefore = new Map((await Registry.open(registryOptions)).list().map((d) => [d.name, d]));

    const rollback = async (why: RegistryError): Promise<never> => {
      logger.debug({ code: why.code }, 'rolling the plugins dir back');
      try {
        if (before.packageJson) await replaceFile(join(root, 'package.json'), before.packageJson);
        if (before.lockfile) await replaceFile(join(root, 'package-lock.json'), before.lockfile);
        else await rm(join(root, 'package-lock.json'), { force: true });
        if (before.tarball) await copyFile(before.tarball, target);
        else await rm(target, { force: true });
        await runNpm(['install', '--prefix', root, '--no-audit', '--no-fund', '--prefer-offline', '--install-links=false'], root, opts);
      } catch (err) {
        logger.warn({ err }, `could not restore ${root} after a refused install; run \`npm install --prefix ${root}\``);
      }
      throw why;
    };

    logger.debug({ tarball: target }, 'installing plugin');
    try {
      await runNpm(['install', target, '--prefix', root, '--save', '--no-audit', '--no-fund', '--install-links=false'], root, opts);
    } catch (err) {
      return await rollback(err as RegistryError);
    }

    const after = await Registry.open(registryOptions);
    const descriptor = after.list().find((d) => !d.builtin && d.packageName === pack.name);
    if (!descriptor) {
      const refused = after.refused().find((r) => r.packageName === pack.name);
      const issues: Issue[] | undefined = refused?.issues;
      return await rollback(
        new RegistryError(
          (refused?.code ?? RegistryErrorCode.INSTALL_FAILED) as RegistryErrorCode,
          `cannot install ${pack.name}@${pack.version}: ${refused?.message ?? 'npm installed it, but the registry does not find it'}`,
          { issues },
        ),
      );
    }
    // Nothing listed before may be lost: the new package may not push out a plugin of the same name
    // (one whose package name sorts later), nor break one (a hoisted dependency replaced).
    for (const [name, old] of listedBefore) {
      if (old.packageName === pack.name) continue;
      const now = after.get(name);
      if (now?.packageName === old.packageName) continue;
      if (now?.packageName === pack.name) {
        return await rollback(
          new RegistryError(
            RegistryErrorCode.DUPLICATE_PLUGIN,
            `cannot install ${pack.name}@${pack.version}: plugin name "${name}" is already taken by package ${old.packageName}`,
            { issues: [{ path: 'manifest.name', message: 'already taken' }] },
          ),
        );
      }
      const broken = after.refused().find((r) => r.packageName === old.packageName);
      return await rollback(
        new RegistryError(
          (broken?.code ?? RegistryErrorCode.INSTALL_FAILED) as RegistryErrorCode,
          `cannot install ${pack.name}@${pack.version}: it would break plugin "${name}" (package ${old.packageName})${broken ? `: ${broken.message}` : ''}`,
          { issues: broken?.issues },
        ),
      );
    }
    return descriptor;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export interface UninstallOptions extends InstallOptions {
  /**
   * The connectors that use a plugin now (the server asks its connector runtime). A plugin any of them
   * names is not removed: PLUGIN_IN_USE.
   */
  inUse?: ((plugin: string) => readonly string[] | Promise<readonly string[]>) | undefined;
}

/** What {@link uninstallPlugin} removed. */
export interface Uninstalled {
  /** The plugin's name, when it was listed (a refused package has none). */
  name?: string;
  packageName: string;
}

/**
 * Removes an installed plugin — named by its plugin name or its package name (a refused package has
 * only the latter) — from `pluginsDir`: `npm uninstall` there and its tarball in `tarballs/`. A
 * running Registry forgets it after `refresh()`.
 *
 * Throws RegistryError PLUGIN_BUILTIN for a built-in connector, PLUGIN_IN_USE when `opts.inUse` names
 * connectors using it (nothing is removed then), PLUGIN_NOT_FOUND when no installed package has that
 * name, INSTALL_FAILED when npm fails.
 */
export async function uninstallPlugin(nameOrPackage: string, pluginsDir: string, opts: UninstallOptions = {}): Promise<Uninstalled> {
  const root = resolve(pluginsDir);
  const registry = await Registry.open({ builtinDirs: opts.builtinDirs ?? [], pluginsDir: root, logger: SILENT });
  const listed = registry.get(nameOrPackage) ?? registry.list().find((d) => !d.builtin && d.packageName === nameOrPackage);
  if (listed?.builtin) {
    throw new RegistryError(
      RegistryErrorCode.PLUGIN_BUILTIN,
      `${JSON.stringify(nameOrPackage)} is a built-in connector; built-ins are part of Junction and cannot be uninstalled`,
    );
  }
  const packageName =
    listed?.packageName ?? registry.refused().find((r) => r.packageName === nameOrPackage && r.path.startsWith(root))?.packageName;
  const pkgPath = join(root, 'package.json');
  const raw = await readIfExists(pkgPath);
  const deps = raw ? ((JSON.parse(raw.toString('utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {}) : {};
  if (
    packageName === undefined ||
    (deps[packageName] === undefined && !(await isPath(join(root, 'node_modules', ...packageName.split('/')))))
  ) {
    throw new RegistryError(
      RegistryErrorCode.PLUGIN_NOT_FOUND,
      `no installed plugin or plugin package named ${JSON.stringify(nameOrPackage)} in ${root}`,
    );
  }
  if (listed && opts.inUse) {
    const users = [...(await opts.inUse(listed.name))];
    if (users.length > 0) {
      throw new RegistryError(
        RegistryErrorCode.PLUGIN_IN_USE,
        `plugin "${listed.name}" is used by connector(s) ${users.map((u) => JSON.stringify(u)).join(', ')}; delete them first`,
        { issues: users.map((u) => ({ path: `connectors.${u}.plugin`, message: `uses ${listed.name}` })) },
      );
    }
  }
  const spec = deps[packageName];
  await runNpm(['uninstall', packageName, '--prefix', root, '--no-audit', '--no-fund', '--install-links=false'], root, opts);
  // The tarball this package was installed from (`file:tarballs/<file>.tgz`), kept for offline rebuilds: no longer needed.
  const m = spec === undefined ? null : /^file:(?:\.\/)?tarballs\/([^/\\]+\.tgz)$/.exec(spec);
  if (m?.[1]) await rm(join(root, TARBALLS_DIR, m[1]), { force: true });
  return { ...(listed ? { name: listed.name } : {}), packageName };
}
