/**
 * What the runtime needs of the plugin registry — `@junction/registry`'s `Registry` has this shape.
 * Kept as an interface so the runtime depends on the catalog's contract (and tests may hand it a
 * catalog of their own).
 */
import type { ConfigSchema } from '@junction/sdk-connector';
import type { Issue } from './errors.js';

/** A plugin as the registry describes it (the fields the runtime uses). */
export interface PluginDescriptor {
  name: string;
  /** A transform plugin is named in connectors' `transforms:`, never as a connector's plugin. */
  kind: 'sink' | 'source' | 'transform';
  version: string;
  exactlyOnce?: boolean | undefined;
  /** Shipped with Junction (trusted: its sink tasks share the pool's threads unless the operator says otherwise). */
  builtin?: boolean | undefined;
  /** Absolute path of the module whose default export is the plugin (imported in the worker threads). */
  entry: string;
}

export type CatalogValidation = { ok: true; config: unknown } | { ok: false; issues: Issue[] };

export interface PluginCatalog {
  /** The usable plugin of that name, or undefined (refused plugins are not listed). */
  get(name: string): PluginDescriptor | undefined;
  /** The plugin object, for its zod config schema (redaction in the main thread). */
  load(name: string): Promise<{ config: ConfigSchema }>;
  /** Checks a config against the plugin's schema; issue paths prefixed with `prefix` (`config.dir`). */
  validate(name: string, config: unknown, prefix?: string): Promise<CatalogValidation>;
  /** Packages found but refused, with why (an incompatible SDK, a broken manifest). */
  refused?(): { path: string; packageName?: string | undefined; code: string; message: string }[];
}
