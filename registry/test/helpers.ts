/** Plugin packages made on the fly for the registry tests, and where the real ones are. */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostSdkDir, type RegistryLogger } from '../src/index.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CONNECTORS = join(REPO, 'connectors');
export const EXAMPLE = join(REPO, 'examples', 'community-connector');
export const CLI_BIN = join(REPO, 'cli', 'dist', 'bin.js');

/** npm must never need a registry for a plugin whose only dependency is the SDK: point it nowhere. */
export const NO_REGISTRY = { npm_config_registry: 'http://127.0.0.1:9/', npm_config_fetch_retries: '0' };

/** A logger that keeps what it is told. */
export function recordingLogger(): RegistryLogger & { warnings: { obj: unknown; msg: string }[] } {
  const warnings: { obj: unknown; msg: string }[] = [];
  return {
    warnings,
    warn: ((obj: unknown, msg: string) => void warnings.push({ obj, msg })) as RegistryLogger['warn'],
    debug: (() => {}) as RegistryLogger['debug'],
  };
}

const dirs: string[] = [];
export async function tempDir(prefix = 'junction-registry-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
export async function removeTempDirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** The module text of a small sink plugin. */
export function sinkModule(name: string, opts: { sdk?: string; kind?: 'sink' | 'source' } = {}): string {
  const sdk = opts.sdk ?? '^1';
  if (opts.kind === 'source') {
    return `import { defineSource, z } from '@junction/sdk-connector';
export default defineSource({ name: ${JSON.stringify(name)}, version: '0.2.0', sdk: ${JSON.stringify(sdk)},
  config: z.strictObject({ rate: z.number() }),
  async open() { return { async *read() {}, async commit() {}, async close() {} }; } });
`;
  }
  return `import { defineSink, ok, secret, z } from '@junction/sdk-connector';
export default defineSink({ name: ${JSON.stringify(name)}, version: '0.2.0', sdk: ${JSON.stringify(sdk)}, description: 'a test sink',
  config: z.strictObject({ dir: z.string(), password: secret(z.string()).optional() }),
  async open() { return { async write(batch) { return batch.messages.map(() => ok()); }, async close() {} }; } });
`;
}

export interface PackageSpec {
  /** The package.json; `junction` defaults to a sink with entry ./dist/index.js. Give `null` to leave it out. */
  packageJson?: Record<string, unknown> | string;
  /** Files to write, by path inside the package. Default: dist/index.js = sinkModule(pluginName). */
  files?: Record<string, string>;
}

/** Writes a plugin package into `dir` (created). */
export async function writePackage(dir: string, packageName: string, pluginName: string, spec: PackageSpec = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const pkg =
    typeof spec.packageJson === 'string'
      ? spec.packageJson
      : JSON.stringify(
          {
            name: packageName,
            version: '0.2.0',
            type: 'module',
            junction: { kind: 'sink', entry: './dist/index.js' },
            peerDependencies: { '@junction/sdk-connector': '^1.0.0' },
            ...spec.packageJson,
          },
          (_k, v: unknown) => (v === null ? undefined : v),
          2,
        );
  await writeFile(join(dir, 'package.json'), pkg);
  for (const [path, text] of Object.entries(spec.files ?? { 'dist/index.js': sinkModule(pluginName) })) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

/**
 * Puts a package straight into `<pluginsDir>/node_modules/<name>` and declares it in the plugins
 * package.json, with the SDK linked as `installPlugin` would: a plugins dir made by hand.
 */
export async function placeInPluginsDir(
  pluginsDir: string,
  packageName: string,
  pluginName: string,
  spec: PackageSpec = {},
  declare = true,
): Promise<string> {
  const sdkLink = join(pluginsDir, 'node_modules', '@junction', 'sdk-connector');
  await mkdir(dirname(sdkLink), { recursive: true });
  await symlink(hostSdkDir(), sdkLink, 'dir').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const dir = await writePackage(join(pluginsDir, 'node_modules', ...packageName.split('/')), packageName, pluginName, spec);
  if (declare) await declareInPluginsDir(pluginsDir, packageName);
  return dir;
}

export async function declareInPluginsDir(pluginsDir: string, packageName: string): Promise<void> {
  const path = join(pluginsDir, 'package.json');
  let pkg: { dependencies?: Record<string, string> } = { dependencies: {} };
  try {
    pkg = JSON.parse(await readFile(path, 'utf8')) as typeof pkg;
  } catch {
    // a new plugins dir
  }
  pkg.dependencies = { ...pkg.dependencies, [packageName]: '*' };
  await mkdir(pluginsDir, { recursive: true });
  await writeFile(path, JSON.stringify({ name: 'junction-plugins', private: true, ...pkg }, null, 2));
}

/**
 * A built-in dir holding only the file and datagen connectors (links to the real ones), so lists
 * stay exact while other built-in connectors come and go in the repository.
 */
export async function fileAndDatagen(): Promise<string> {
  const dir = await tempDir('junction-builtins-');
  await symlink(join(CONNECTORS, 'file'), join(dir, 'file'), 'dir');
  await symlink(join(CONNECTORS, 'datagen'), join(dir, 'datagen'), 'dir');
  return dir;
}
