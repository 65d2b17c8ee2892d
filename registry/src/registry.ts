/**
 * The catalog of connector plugins: the built-in connectors and the plugins installed in the plugins
 * dir, each checked once per scan; the ones that fail a check are refused (with a code, a message and
 * field issues), logged, and left out — they never stop the broker.
 */
import { pino, type Logger } from 'pino';
import { validateConfig, type Issue, type Plugin } from '@junction/sdk-connector';
import { checkPackage, refusal, type Checked, type PluginDescriptor, type RefusedPlugin } from './check.js';
import { builtinPackageDirs, installedPackageDirs } from './discover.js';
import { RegistryError, RegistryErrorCode, pluginNotFound } from './errors.js';

/** The part of a pino logger the registry uses (a pino Logger is one). */
export type RegistryLogger = Pick<Logger, 'warn' | 'debug'>;

export interface RegistryOptions {
  /** Folders whose package subfolders are the built-in connectors (the server passes `<repo>/connectors`). */
  builtinDirs: string[];
  /** The npm prefix plugins are installed into (`<data-dir>/plugins`); it need not exist. */
  pluginsDir: string;
  /** Receives a warn line per refused plugin (pino). Default: pino at warn on stderr. */
  logger?: RegistryLogger | undefined;
}

export type Validation = { ok: true; config: unknown } | { ok: false; issues: Issue[] };

interface Snapshot {
  plugins: Map<string, Checked>;
  refused: RefusedPlugin[];
}

let fallbackLogger: Logger | undefined;
/** One pino at warn on stderr for every Registry opened without a logger. */
function defaultLogger(): Logger {
  fallbackLogger ??= pino({ level: 'warn' }, pino.destination(2));
  return fallbackLogger;
}

/** `prefix.path` / `prefix[0]` / `prefix`, the way field paths are written everywhere in Junction. */
function prefixed(prefix: string, path: string): string {
  if (prefix === '') return path;
  if (path === '') return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

/**
 * The plugin catalog. Create it with {@link Registry.open}; call {@link Registry.refresh} after an
 * install. Reads (`list`, `get`, `refused`) are synchronous and see the last completed scan.
 */
export class Registry {
  private snapshot: Snapshot = { plugins: new Map(), refused: [] };
  private scanning: Promise<void> = Promise.resolve();
  private readonly logger: RegistryLogger;

  private constructor(private readonly options: RegistryOptions) {
    this.logger = options.logger ?? defaultLogger();
  }

  /**
   * Scans the built-in dirs and the plugins dir, checks every package found (importing each entry in
   * this thread) and resolves with the catalog. Never rejects because of a plugin: a broken or
   * incompatible one is refused and logged. Missing dirs mean no plugins there.
   */
  static async open(options: RegistryOptions): Promise<Registry> {
    const registry = new Registry(options);
    await registry.refresh();
    return registry;
  }

  /** The npm prefix plugins are installed into (as opened). */
  get pluginsDir(): string {
    return this.options.pluginsDir;
  }

  /** The built-in connector dirs (as opened). */
  get builtinDirs(): readonly string[] {
    return this.options.builtinDirs;
  }

  /** The usable plugins, sorted by name. */
  list(): PluginDescriptor[] {
    return [...this.snapshot.plugins.values()].map((c) => c.descriptor).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The plugin of that name, or undefined when none is listed (refused ones are not). */
  get(name: string): PluginDescriptor | undefined {
    return this.snapshot.plugins.get(name)?.descriptor;
  }

  /** The packages found but refused at the last scan, in scan order, with why. */
  refused(): RefusedPlugin[] {
    return this.snapshot.refused.map((r) => ({ ...r }));
  }

  /**
   * The plugin object — a sink, a source or a transform — (checked with the SDK's `checkPlugin` during the scan; cached). For the main
   * thread (validation, redaction); the runtime imports `entry` in its worker threads itself.
   * Rejects with RegistryError PLUGIN_NOT_FOUND for a name that is not listed.
   */
  async load(name: string): Promise<Plugin> {
    const checked = this.snapshot.plugins.get(name);
    if (!checked) throw pluginNotFound(name);
    return checked.plugin;
  }

  /**
   * Validates a connector config (secrets already resolved) against the plugin's schema: the parsed
   * config (defaults applied), or one issue per problem with its field path (`dir`, `auth.token`,
   * `hosts[1]`), prefixed with `prefix` when given (`config.dir`). Rejects only with PLUGIN_NOT_FOUND.
   */
  async validate(name: string, config: unknown, prefix = ''): Promise<Validation> {
    const plugin = await this.load(name);
    const result = validateConfig(plugin.config, config);
    if (result.success) return { ok: true, config: result.config };
    return { ok: false, issues: result.issues.map((i) => ({ path: prefixed(prefix, i.path), message: i.message })) };
  }

  /**
   * Scans again (after an install or a removal) and swaps the catalog when done; concurrent calls
   * run one after another. A re-installed plugin whose entry file changed is imported afresh.
   */
  async refresh(): Promise<void> {
    const next = this.scanning.then(() => this.scan());
    // A failed scan must not wedge the next one.
    this.scanning = next.catch(() => undefined);
    return next;
  }

  private async scan(): Promise<void> {
    const { builtinDirs, pluginsDir } = this.options;
    const builtin = (await Promise.all(builtinDirs.map((d) => builtinPackageDirs(d)))).flat();
    const installed = await installedPackageDirs(pluginsDir);
    const candidates = [...builtin.map((dir) => ({ dir, builtin: true })), ...installed.dirs.map((dir) => ({ dir, builtin: false }))];
    const outcomes = await Promise.all(
      candidates.map(async ({ dir, builtin: isBuiltin }) => {
        try {
          return { dir, result: await checkPackage(dir, isBuiltin) };
        } catch (err) {
          return { dir, error: err };
        }
      }),
    );

    const plugins = new Map<string, Checked>();
    const refused: RefusedPlugin[] = [...installed.refused];
    // Built-ins come first, so a plugin can never take a built-in's name; among installed plugins
    // the first by package name keeps it.
    for (const outcome of outcomes) {
      if ('error' in outcome) {
        refused.push(refusal(outcome.dir, (outcome.error as { packageName?: string } | null)?.packageName, outcome.error));
        continue;
      }
      const { descriptor } = outcome.result;
      const taken = plugins.get(descriptor.name)?.descriptor;
      if (taken) {
        const code = taken.builtin && !descriptor.builtin ? RegistryErrorCode.PLUGIN_SHADOWS_BUILTIN : RegistryErrorCode.DUPLICATE_PLUGIN;
        const message =
          code === RegistryErrorCode.PLUGIN_SHADOWS_BUILTIN
            ? `package ${descriptor.packageName}: plugin name "${descriptor.name}" is the name of a built-in connector (${taken.packageName}); a plugin cannot replace a built-in, rename it`
            : `package ${descriptor.packageName}: plugin name "${descriptor.name}" is already taken by package ${taken.packageName} (${taken.packageDir})`;
        refused.push(
          refusal(
            outcome.dir,
            descriptor.packageName,
            new RegistryError(code, message, { issues: [{ path: 'manifest.name', message: 'already taken' }] }),
          ),
        );
        continue;
      }
      plugins.set(descriptor.name, outcome.result);
    }

    for (const r of refused) {
      this.logger.warn(
        { path: r.path, packageName: r.packageName, code: r.code, issues: r.issues },
        `connector plugin refused: ${r.message}`,
      );
    }
    this.logger.debug({ plugins: [...plugins.keys()], refused: refused.length }, 'connector plugins scanned');
    this.snapshot = { plugins, refused };
  }
}
