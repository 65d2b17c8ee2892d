/**
 * Checking one plugin package: package.json, `junction` field, entry module, import, the default
 * export through the SDK's `checkPlugin`, and the kind in package.json against the module's. Each
 * failure becomes a RegistryError / JunctionError with a stable code; nothing here throws anything else.
 */
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SDK_VERSION, checkPlugin, configJsonSchema, isJunctionError, type Plugin } from '@junction/sdk-connector';
import { RegistryError, RegistryErrorCode, type Issue } from './errors.js';
import { readPluginPackage } from './package.js';

/** What the catalog says about one plugin. Plain data (JSON-serialisable), frozen. */
export interface PluginDescriptor {
  name: string;
  /** `transform`: a step for connectors' `transforms:` (not a connector's plugin). */
  kind: 'sink' | 'source' | 'transform';
  version: string;
  sdk: string;
  description?: string;
  exactlyOnce: boolean;
  builtin: boolean;
  packageName: string;
  packageDir: string;
  /** Absolute path of the module to import (in a worker thread or the main thread); default export is the plugin. */
  entry: string;
  /** The config as JSON Schema (secret fields marked), from the plugin's zod schema. */
  configSchema: unknown;
}

/** A package the registry found but will not list, and why. */
export interface RefusedPlugin {
  /** The package directory (or the file that made it unusable). */
  path: string;
  packageName?: string;
  code: string;
  message: string;
  issues?: { path: string; message: string }[];
}

export interface Checked {
  descriptor: PluginDescriptor;
  plugin: Plugin;
}

/**
 * Which URL each entry was imported from and the mtime of the file then. ESM caches a module per URL
 * for the life of the process, so a plugin re-installed at the same path is imported under a new
 * query string (only its entry module is re-evaluated; modules it imports relatively stay cached).
 */
const importedEntries = new Map<string, { mtimeMs: number; href: string }>();

async function importEntry(entry: string, mtimeMs: number): Promise<unknown> {
  const seen = importedEntries.get(entry);
  // The real path, as Node itself resolves a module (a built-in dir may hold links to packages):
  // the entry's own imports then resolve from where the package really is.
  const url = pathToFileURL(await realpath(entry)).href;
  let href: string;
  if (seen === undefined) href = url;
  else if (seen.mtimeMs === mtimeMs) href = seen.href;
  else href = `${url}?mtime=${mtimeMs}`;
  importedEntries.set(entry, { mtimeMs, href });
  return import(href);
}

function errorIssues(err: unknown): Issue[] | undefined {
  const issues = (err as { issues?: unknown } | null)?.issues;
  return Array.isArray(issues) && issues.length > 0 ? (issues as Issue[]) : undefined;
}

/** Turns whatever a check threw into the refusal the catalog reports. */
export function refusal(path: string, packageName: string | undefined, err: unknown): RefusedPlugin {
  const code = isJunctionError(err) ? err.code : RegistryErrorCode.IMPORT_FAILED;
  const message = err instanceof Error ? err.message : String(err);
  const issues = errorIssues(err);
  return {
    path,
    ...(packageName === undefined ? {} : { packageName }),
    code,
    message,
    ...(issues ? { issues: issues.map((i) => ({ path: i.path, message: i.message })) } : {}),
  };
}

/**
 * Checks the plugin package in `dir` and imports its entry. Resolves with the descriptor and the
 * plugin object, or rejects with a JunctionError whose code says what is wrong (PACKAGE_INVALID,
 * NOT_A_PLUGIN, ENTRY_NOT_FOUND, IMPORT_FAILED, PLUGIN_INVALID, SDK_INCOMPATIBLE); the package name is
 * attached as `packageName` on the error when it is known.
 */
export async function checkPackage(dir: string, builtin: boolean): Promise<Checked> {
  const pkg = await readPluginPackage(dir);
  const fail = (code: RegistryErrorCode, message: string, opts: { cause?: unknown; issues?: Issue[] } = {}): never => {
    throw Object.assign(new RegistryError(code, message, opts), { packageName: pkg.name });
  };
  try {
    const entry = resolve(dir, pkg.junction.entry);
    const rel = relative(dir, entry);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      fail(RegistryErrorCode.ENTRY_NOT_FOUND, `package ${pkg.name}: entry ${pkg.junction.entry} lies outside the package`, {
        issues: [{ path: 'junction.entry', message: 'must be a module inside the package, such as "./dist/index.js"' }],
      });
    }
    let mtimeMs = 0;
    try {
      const st = await stat(entry);
      if (!st.isFile()) throw new Error('not a file');
      mtimeMs = st.mtimeMs;
    } catch (cause) {
      fail(
        RegistryErrorCode.ENTRY_NOT_FOUND,
        `package ${pkg.name}: entry ${pkg.junction.entry} does not exist (${entry}); is the package built?`,
        {
          cause,
          issues: [{ path: 'junction.entry', message: 'file not found' }],
        },
      );
    }

    let mod: { default?: unknown };
    try {
      mod = (await importEntry(entry, mtimeMs)) as { default?: unknown };
    } catch (cause) {
      const why = cause instanceof Error ? cause.message : String(cause);
      // defineSink()/defineSource() check the definition when the module runs: report what they found.
      if (
        isJunctionError(cause) &&
        (cause.code === RegistryErrorCode.PLUGIN_INVALID || cause.code === RegistryErrorCode.SDK_INCOMPATIBLE)
      ) {
        return fail(cause.code, `package ${pkg.name}: ${why}`, { cause, ...(cause.issues ? { issues: cause.issues } : {}) });
      }
      return fail(RegistryErrorCode.IMPORT_FAILED, `package ${pkg.name}: importing ${pkg.junction.entry} failed: ${why}`, { cause });
    }
    if (mod.default === undefined) {
      fail(
        RegistryErrorCode.PLUGIN_INVALID,
        `package ${pkg.name}: ${pkg.junction.entry} has no default export; it must default-export what defineSink() or defineSource() returns`,
        { issues: [{ path: 'default', message: 'missing' }] },
      );
    }
    // PLUGIN_INVALID (issues per manifest field) or SDK_INCOMPATIBLE, from the SDK.
    const plugin = checkPlugin(mod.default, SDK_VERSION);
    if (plugin.kind !== pkg.junction.kind) {
      fail(
        RegistryErrorCode.PLUGIN_INVALID,
        `package ${pkg.name}: package.json says it is a ${pkg.junction.kind} plugin, but ${pkg.junction.entry} exports a ${plugin.kind} plugin`,
        { issues: [{ path: 'junction.kind', message: `must match the plugin (${plugin.kind})` }] },
      );
    }
    let configSchema: unknown;
    try {
      configSchema = configJsonSchema(plugin.config);
    } catch (cause) {
      fail(
        RegistryErrorCode.PLUGIN_INVALID,
        `${plugin.kind} plugin "${plugin.manifest.name}": its config schema has no JSON Schema form: ${(cause as Error).message}`,
        {
          cause,
          issues: [{ path: 'config', message: 'cannot be expressed as JSON Schema' }],
        },
      );
    }
    const m = plugin.manifest;
    const descriptor: PluginDescriptor = {
      name: m.name,
      kind: plugin.kind,
      version: m.version,
      sdk: m.sdk,
      ...(m.description === undefined ? {} : { description: m.description }),
      exactlyOnce: plugin.kind === 'sink' ? plugin.manifest.exactlyOnce : false,
      builtin,
      packageName: pkg.name,
      packageDir: dir,
      entry,
      configSchema,
    };
    return { descriptor: Object.freeze(descriptor), plugin };
  } catch (err) {
    if (isJunctionError(err) && (err as { packageName?: string }).packageName === undefined) Object.assign(err, { packageName: pkg.name });
    throw err;
  }
}
