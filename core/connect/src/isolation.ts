/**
 * Where a sink connector's tasks run: on the shared pool's threads (`shared`, many tasks per thread) or
 * each on a thread of its own (`thread`, as every task ran before). Chosen per plugin, in this order:
 *
 * 1. the connector's `isolation` — only ever to isolate more: `thread` is always allowed, `shared` only
 *    for a plugin that is trusted already (a declaration cannot make an installed plugin share threads
 *    with the broker's others; CONFIG_INVALID at `isolation`);
 * 2. the operator's `connect.plugins.<plugin>.isolation` (junction.yaml): trusts an installed plugin
 *    (`shared`) or isolates a built-in one (`thread`);
 * 3. the default: built-in plugins (shipped in this repository: file, datagen, s3, s3-source, bigquery,
 *    snowflake, firebolt) are trusted (`shared`); installed ones (community, `junction plugins install`)
 *    are not (`thread`).
 *
 * Sources keep a worker thread per task whatever the isolation (see source-runner.ts).
 */
import { z } from 'zod';
import type { PluginDescriptor } from './catalog.js';
import { Isolation, SharedPoolOptions } from './shared-pool.js';

export { Isolation, SharedPoolOptions };

/** The `connect:` section of junction.yaml (and `ConnectRuntimeOptions.connect`). */
export const ConnectSettings = z.strictObject({
  /** The shared pool of sink threads. */
  sharedPool: SharedPoolOptions.prefault({}),
  /** Per plugin name: the operator's choice of isolation (overrides the built-in / installed default). */
  plugins: z.record(z.string().min(1, 'must not be empty'), z.strictObject({ isolation: Isolation })).default({}),
});
export type ConnectSettings = z.output<typeof ConnectSettings>;
export type ConnectSettingsInput = z.input<typeof ConnectSettings>;

/** The isolation a plugin's tasks get unless a connector asks for `thread`: the operator's choice, else trusted = built-in. */
export function pluginIsolation(plugin: Pick<PluginDescriptor, 'name' | 'builtin'>, settings: ConnectSettings): Isolation {
  return settings.plugins[plugin.name]?.isolation ?? (plugin.builtin === true ? 'shared' : 'thread');
}

/**
 * The isolation of a connector's tasks, or the message of why its `isolation` cannot be had (it asks
 * `shared` for a plugin that is not trusted).
 */
export function connectorIsolation(
  plugin: Pick<PluginDescriptor, 'name' | 'builtin'>,
  asked: Isolation | undefined,
  settings: ConnectSettings,
): { isolation: Isolation } | { problem: string } {
  const byPlugin = pluginIsolation(plugin, settings);
  if (asked === 'shared' && byPlugin !== 'shared') {
    return {
      problem:
        `plugin "${plugin.name}" is not trusted to share threads (${plugin.builtin === true ? 'the operator isolates it' : 'it is not a built-in'}); ` +
        `the operator may trust it with connect.plugins.${plugin.name}.isolation: shared in junction.yaml`,
    };
  }
  return { isolation: asked ?? byPlugin };
}
