/**
 * Transform plugins: a community step in a connector's `transforms:` chain (`{ type: plugin, plugin:
 * <name>, config: … }`). A transform module default-exports what {@link defineTransform} returns; the
 * registry finds it like a sink or a source (`"junction": { "kind": "transform", … }`) and the runtime
 * runs it in the connector's worker thread, after a source's read or before a sink's write.
 */
import type { z } from 'zod';
import type { ConfigSchema } from './config.js';
import type { ConnectorContext } from './types.js';
import { invalid, manifestIssues } from './plugin.js';
import { SDK_VERSION } from './semver.js';

/** One message as a transform sees it and returns it. Plain data. */
export interface TransformMessage {
  /** The value's bytes. Return the same Uint8Array when you do not change it (the runtime then keeps it as is). */
  readonly value: Uint8Array;
  readonly key?: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** Milliseconds since the epoch (a sink: when the broker stored it; a source: when it was read). */
  readonly timestamp: number;
}

/** What a transform answers for one message: the message (changed or not), or `null` to drop it. */
export type TransformOutput = TransformMessage | null;

/** An opened transform. */
export interface Transformer {
  /**
   * Called once per message, in order. Return the message (the same object when nothing changed), a
   * new one, or `null` to drop it (a sink then never sees it and its offset is committed as written).
   * Throw to fail the message: it follows the connector's error policy (dead-lettered with this step's
   * name and the error's message, or the task fails). Must be deterministic for exactly-once sinks: a
   * replay sends the same messages again.
   */
  transform(message: TransformMessage): TransformOutput | Promise<TransformOutput>;
  /** Releases what `open` took. May be called once; must not throw. */
  close?(): void | Promise<void>;
}

/** What a transform receives on open: the connector's logger, name, task and metrics. */
export type TransformContext = ConnectorContext;

/** The manifest of a transform plugin. */
export interface TransformManifest {
  readonly name: string;
  readonly kind: 'transform';
  readonly version: string;
  readonly sdk: string;
  readonly description?: string;
}

export interface TransformDefinition<S extends ConfigSchema> {
  name: string;
  version: string;
  sdk: string;
  description?: string;
  /** The step's config schema (`transforms[i].config`). */
  config: S;
  /** Called in the worker thread once per task (and again when the connector's config changes). */
  open(config: z.output<S>, ctx: TransformContext): Transformer | Promise<Transformer>;
}

/** A transform plugin: what a transform plugin module default-exports. */
export interface TransformPlugin<S extends ConfigSchema = ConfigSchema> {
  readonly kind: 'transform';
  readonly manifest: TransformManifest;
  readonly config: S;
  readonly sdkVersion: string;
  /** The definition's `open`, always async. Does not validate `config`: parse it with `config` first. */
  open(config: z.output<S>, ctx: TransformContext): Promise<Transformer>;
}

/**
 * Defines a transform plugin; default-export the result. Checks the definition at once and throws
 * JunctionError PLUGIN_INVALID (with an issue per bad field) when a field is malformed.
 */
export function defineTransform<S extends ConfigSchema>(def: TransformDefinition<S>): TransformPlugin<S> {
  const issues = manifestIssues(def as unknown as Record<string, unknown>, 'transform');
  if (issues.length > 0) throw invalid(`transform plugin ${JSON.stringify(def.name)}`, issues);
  const manifest: TransformManifest = {
    name: def.name,
    kind: 'transform',
    version: def.version,
    sdk: def.sdk,
    ...(def.description === undefined ? {} : { description: def.description }),
  };
  const open = def.open;
  return Object.freeze({
    kind: 'transform',
    manifest: Object.freeze(manifest),
    config: def.config,
    sdkVersion: SDK_VERSION,
    open: async (config: z.output<S>, ctx: TransformContext) => open(config, ctx),
  });
}
