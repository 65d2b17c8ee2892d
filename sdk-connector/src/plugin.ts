/**
 * Defining a plugin. A plugin module default-exports what {@link defineSink} or {@link defineSource}
 * returns; the registry loads it by path (from the package.json `junction.entry`) and checks it with
 * {@link checkPlugin} before anything runs it.
 */
import type { z } from 'zod';
import type { ConfigSchema } from './config.js';
import { ErrorCode, JunctionError, type Issue } from './errors.js';
import { isValidSdkRange, parseVersion, satisfiesSdk, SDK_VERSION } from './semver.js';
import type { JsonValue, Sink, SinkContext, Source, SourceContext } from './types.js';
import type { TransformPlugin } from './transform.js';

export const PluginKind = { sink: 'sink', source: 'source', transform: 'transform' } as const;
export type PluginKind = (typeof PluginKind)[keyof typeof PluginKind];

/** What the registry shows and checks about a plugin, without opening it. Plain data. */
export interface Manifest {
  /** kebab-case, unique in a catalog; used in URLs and in `junction.yaml` (`plugin: file`). */
  readonly name: string;
  readonly kind: PluginKind;
  /** The plugin's own semver. */
  readonly version: string;
  /** The SDK range it was built for, e.g. `^1`; the registry refuses it unless {@link SDK_VERSION} satisfies it. */
  readonly sdk: string;
  readonly description?: string;
}

export interface SinkManifest extends Manifest {
  readonly kind: 'sink';
  /**
   * The sink leaves each message exactly once in the destination however often and however batched
   * the runtime sends it again (replays after crashes, retry batches). False: at least once.
   */
  readonly exactlyOnce: boolean;
  /**
   * Whether the sink may read a message's `value` bytes after its `write()` settled: kept for a later
   * flush, an upload still running, a view handed to a library that holds on to it. Absent: true.
   * A sink that encodes or copies what it needs during `write()` declares false, and the runtime then
   * reuses the memory of a cleanly written batch for later batches (no fresh buffer a batch: less
   * collection and page-fault work on the broker's thread). A view kept past `write()` regardless reads
   * nothing (a detached buffer) or another batch's bytes; the kit's sink checks catch it.
   */
  readonly keepsValues?: boolean;
}

export interface SourceManifest extends Manifest {
  readonly kind: 'source';
}

interface Definition<S extends ConfigSchema> {
  name: string;
  version: string;
  sdk: string;
  description?: string;
  /** The config schema; mark secret fields with `secret()`. `open` receives its parsed output. */
  config: S;
}

export interface SinkDefinition<S extends ConfigSchema> extends Definition<S> {
  /** See {@link SinkManifest.exactlyOnce}. Default false. */
  exactlyOnce?: boolean;
  /** See {@link SinkManifest.keepsValues}. Default true. */
  keepsValues?: boolean;
  /**
   * Connects to the destination. Called in a worker thread once per task start, with the validated
   * config (secrets resolved). Throw a JunctionError (CONNECTION_FAILED, AUTH_FAILED, …) when it
   * cannot; the runtime retries retryable errors with backoff and fails the task on others.
   */
  open(config: z.output<S>, ctx: SinkContext): Sink | Promise<Sink>;
}

export interface SourceDefinition<S extends ConfigSchema, P extends JsonValue> extends Definition<S> {
  /** Like a sink's `open`; `ctx.position` is where to resume (undefined on the first start). */
  open(config: z.output<S>, ctx: SourceContext<P>): Source<P> | Promise<Source<P>>;
}

/** A sink plugin: what a sink plugin module default-exports. */
export interface SinkPlugin<S extends ConfigSchema = ConfigSchema> {
  readonly kind: 'sink';
  readonly manifest: SinkManifest;
  readonly config: S;
  /** The SDK version that defined this plugin object (a plugin may bring its own copy of the SDK). */
  readonly sdkVersion: string;
  /** The definition's `open`, always async. Does not validate `config`: callers parse it with `config` first. */
  open(config: z.output<S>, ctx: SinkContext): Promise<Sink>;
}

/** A source plugin: what a source plugin module default-exports. */
export interface SourcePlugin<S extends ConfigSchema = ConfigSchema, P extends JsonValue = JsonValue> {
  readonly kind: 'source';
  readonly manifest: SourceManifest;
  readonly config: S;
  readonly sdkVersion: string;
  open(config: z.output<S>, ctx: SourceContext<P>): Promise<Source<P>>;
}

/** Any plugin the registry lists: a sink, a source, or a transform (see transform.ts). */
export type Plugin = SinkPlugin | SourcePlugin | TransformPlugin;

const NAME_RE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
const MAX_NAME = 64;
const MAX_DESCRIPTION = 2000;

/** @internal shared with transform.ts */
export function manifestIssues(def: Record<string, unknown>, kind: PluginKind): Issue[] {
  const issues: Issue[] = [];
  const { name, version, sdk, description } = def;
  if (typeof name !== 'string' || !NAME_RE.test(name) || name.length > MAX_NAME) {
    issues.push({ path: 'name', message: `must be kebab-case (a-z, 0-9, "-"), 1-${MAX_NAME} characters, starting with a letter` });
  }
  if (typeof version !== 'string' || !parseVersion(version)) {
    issues.push({ path: 'version', message: 'must be a semver version such as "0.1.0"' });
  }
  if (typeof sdk !== 'string' || !isValidSdkRange(sdk)) {
    issues.push({ path: 'sdk', message: 'must be an SDK range such as "^1", "~1.2", ">=1.0.0", "1.2.3" or "*"' });
  }
  if (description !== undefined && (typeof description !== 'string' || description.length > MAX_DESCRIPTION)) {
    issues.push({ path: 'description', message: `must be a string of at most ${MAX_DESCRIPTION} characters` });
  }
  if (kind === 'sink' && def.exactlyOnce !== undefined && typeof def.exactlyOnce !== 'boolean') {
    issues.push({ path: 'exactlyOnce', message: 'must be a boolean' });
  }
  if (kind === 'sink' && def.keepsValues !== undefined && typeof def.keepsValues !== 'boolean') {
    issues.push({ path: 'keepsValues', message: 'must be a boolean' });
  }
  const config = def.config as { safeParse?: unknown; _zod?: unknown } | null | undefined;
  if (typeof config !== 'object' || config === null || typeof config.safeParse !== 'function' || config._zod === undefined) {
    issues.push({ path: 'config', message: 'must be a zod schema (use `z` from @junction/sdk-connector)' });
  }
  if (typeof def.open !== 'function') issues.push({ path: 'open', message: 'must be a function' });
  return issues;
}

/** @internal shared with transform.ts */
export function invalid(what: string, issues: Issue[]): JunctionError {
  const first = issues[0];
  return new JunctionError(ErrorCode.PLUGIN_INVALID, `${what} is invalid${first ? `: ${first.path}: ${first.message}` : ''}`, {
    issues,
    retryable: false,
  });
}

/**
 * Defines a sink plugin; default-export the result. Checks the definition at once and throws
 * JunctionError PLUGIN_INVALID (with an issue per bad field) when a field is malformed.
 */
export function defineSink<S extends ConfigSchema>(def: SinkDefinition<S>): SinkPlugin<S> {
  const issues = manifestIssues(def as unknown as Record<string, unknown>, 'sink');
  if (issues.length > 0) throw invalid(`sink plugin ${JSON.stringify(def.name)}`, issues);
  const manifest: SinkManifest = {
    name: def.name,
    kind: 'sink',
    version: def.version,
    sdk: def.sdk,
    ...(def.description === undefined ? {} : { description: def.description }),
    exactlyOnce: def.exactlyOnce ?? false,
    keepsValues: def.keepsValues ?? true,
  };
  const open = def.open;
  return Object.freeze({
    kind: 'sink',
    manifest: Object.freeze(manifest),
    config: def.config,
    sdkVersion: SDK_VERSION,
    // Called on the definition: a plugin's open() may use `this` (its other methods).
    open: async (config: z.output<S>, ctx: SinkContext) => open.call(def, config, ctx),
  });
}

/** Defines a source plugin; default-export the result. Throws like {@link defineSink}. */
export function defineSource<S extends ConfigSchema, P extends JsonValue = JsonValue>(def: SourceDefinition<S, P>): SourcePlugin<S, P> {
  const issues = manifestIssues(def as unknown as Record<string, unknown>, 'source');
  if (issues.length > 0) throw invalid(`source plugin ${JSON.stringify(def.name)}`, issues);
  const manifest: SourceManifest = {
    name: def.name,
    kind: 'source',
    version: def.version,
    sdk: def.sdk,
    ...(def.description === undefined ? {} : { description: def.description }),
  };
  const open = def.open;
  return Object.freeze({
    kind: 'source',
    manifest: Object.freeze(manifest),
    config: def.config,
    sdkVersion: SDK_VERSION,
    open: async (config: z.output<S>, ctx: SourceContext<P>) => open.call(def, config, ctx),
  });
}

/**
 * Checks a loaded module's default export before the registry lists or runs it: the shape of a plugin
 * object (made by this or another copy of the SDK), a valid manifest, and an `sdk` range that
 * `sdkVersion` (default: this SDK's) satisfies. Returns it typed; throws JunctionError PLUGIN_INVALID
 * (with issues) for a broken plugin and SDK_INCOMPATIBLE for one built for another SDK.
 */
export function checkPlugin(value: unknown, sdkVersion: string = SDK_VERSION): Plugin {
  if (typeof value !== 'object' || value === null) {
    throw invalid('plugin', [{ path: '', message: 'the module must default-export what defineSink() or defineSource() returns' }]);
  }
  const v = value as Record<string, unknown>;
  const kind = v.kind;
  if (kind !== 'sink' && kind !== 'source' && kind !== 'transform') {
    throw invalid('plugin', [
      {
        path: 'kind',
        message: 'must be "sink", "source" or "transform" (define it with defineSink(), defineSource() or defineTransform())',
      },
    ]);
  }
  const manifest = v.manifest as Record<string, unknown> | null | undefined;
  if (typeof manifest !== 'object' || manifest === null) throw invalid('plugin', [{ path: 'manifest', message: 'is missing' }]);
  const issues = manifestIssues({ ...manifest, config: v.config, open: v.open }, kind).map((i) =>
    i.path === 'config' || i.path === 'open' ? i : { ...i, path: `manifest.${i.path}` },
  );
  if (manifest.kind !== kind) issues.push({ path: 'manifest.kind', message: `must equal kind (${kind})` });
  if (kind === 'sink' && typeof manifest.exactlyOnce !== 'boolean')
    issues.push({ path: 'manifest.exactlyOnce', message: 'must be a boolean' });
  const label = `${kind} plugin ${typeof manifest.name === 'string' ? JSON.stringify(manifest.name) : ''}`.trim();
  if (issues.length > 0) throw invalid(label, issues);
  const sdk = manifest.sdk as string;
  if (!satisfiesSdk(sdk, sdkVersion)) {
    throw new JunctionError(
      ErrorCode.SDK_INCOMPATIBLE,
      `${label} ${String(manifest.version)} needs connector SDK ${sdk}, but this Junction runs SDK ${sdkVersion}`,
      { retryable: false },
    );
  }
  return value as Plugin;
}

/** Whether a value has a plugin's shape (no manifest validation: use {@link checkPlugin} for that). */
export function isPlugin(value: unknown): value is Plugin {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    (v.kind === 'sink' || v.kind === 'source' || v.kind === 'transform') &&
    typeof v.manifest === 'object' &&
    v.manifest !== null &&
    typeof v.open === 'function'
  );
}
