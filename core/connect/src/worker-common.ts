/**
 * What both worker entries share: loading a plugin module by path, the context a plugin gets
 * (a pino logger bound to connector and task, metrics reported back to the main thread).
 */
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { checkPlugin, deadLetter, ok } from '@junction/sdk-connector';
import type {
  Counter,
  Histogram,
  Logger,
  Metrics,
  Plugin,
  SinkMessage,
  TransformContext,
  TransformPlugin,
  WriteResult,
} from '@junction/sdk-connector';
import type { Pipeline, TransformFailed } from '@junction/transforms';
import type { MetricReport } from './wire.js';
import type { WorkerTransforms } from './transform-config.js';

const plugins = new Map<string, Promise<Plugin>>();

/** Imports the module at `entry` (absolute path) once per worker and checks its default export. */
export function loadPlugin(entry: string): Promise<Plugin> {
  let p = plugins.get(entry);
  if (!p) {
    p = import(pathToFileURL(entry).href).then((mod: { default?: unknown }) => checkPlugin(mod.default));
    plugins.set(entry, p);
    p.catch(() => plugins.delete(entry));
  }
  return p;
}

/** Opens a connector's transforms in this worker (plugin steps imported by their registry entry); undefined for none. */
export async function openChain(transforms: WorkerTransforms | undefined, ctx: TransformContext): Promise<Pipeline | undefined> {
  if (!transforms || transforms.steps.length === 0) return undefined;
  // Imported only by a worker that runs a chain: a sink thread without transforms does not load JSONata.
  const { Pipeline } = await import('@junction/transforms');
  return Pipeline.open(transforms.steps, {
    context: ctx,
    loadPlugin: async (name) => {
      const entry = transforms.plugins[name];
      if (entry === undefined) throw new Error(`no entry for transform plugin ${name}`);
      const plugin = await loadPlugin(entry);
      if (plugin.kind !== 'transform') throw new Error(`plugin ${plugin.manifest.name} is a ${plugin.kind}, not a transform`);
      return plugin as TransformPlugin;
    },
  });
}

/** How long a sink's chain runs before the thread's event loop gets a turn (see applyChain). */
const CHAIN_SLICE_MS = 2;

/**
 * A sink batch's messages through the chain: one result per message (ok for a dropped one, so its offset
 * is acked, and its offset listed in `dropped`; deadLetter TRANSFORM_FAILED for a failed one when `onFailure` is deadLetter), the messages
 * kept for the plugin (the very objects when unchanged) and their indexes in the batch. With `onFailure`
 * fail, the first failure is answered alone.
 */
export async function applyChain(
  chain: Pipeline,
  messages: readonly SinkMessage[],
  onFailure: WorkerTransforms['onFailure'],
): Promise<{ results: WriteResult[]; kept: SinkMessage[]; index: number[]; dropped: number[] } | { error: TransformFailed }> {
  // In slices (the event loop gets a turn every CHAIN_SLICE_MS): run before the lookahead wait, the chain
  // shares the thread with the previous batch's write, whose I/O steps (write, fsync, rename, fsync of the
  // directory) each need the thread to go on. In one go, they all waited for the whole chain.
  const outcomes = await chain.run(messages, { yieldEveryMs: CHAIN_SLICE_MS });
  const results: WriteResult[] = new Array(messages.length);
  const kept: SinkMessage[] = [];
  const index: number[] = [];
  const dropped: number[] = [];
  for (let i = 0; i < outcomes.length; i++) {
    const o = outcomes[i]!;
    if (o.status === 'keep') {
      const m = messages[i]!;
      if (!o.changed) kept.push(m);
      else {
        const out: {
          offset: number;
          timestamp: number;
          key?: string;
          headers: Readonly<Record<string, string>>;
          value: Uint8Array<ArrayBuffer>;
        } = {
          offset: m.offset,
          timestamp: o.message.timestamp,
          headers: o.message.headers,
          value: o.message.value as Uint8Array<ArrayBuffer>,
        };
        if (o.message.key !== undefined) out.key = o.message.key;
        kept.push(out);
      }
      index.push(i);
    } else if (o.status === 'drop') {
      results[i] = ok();
      dropped.push(messages[i]!.offset);
    } else if (onFailure === 'fail') return { error: o.error };
    else results[i] = deadLetter(o.error.code, o.error.message);
  }
  return { results, kept, index, dropped };
}

const roots = new Map<string, pino.Logger>();

/** A pino logger on stdout at `level`, bound to the connector and task. */
export function pluginLogger(level: string, connector: string, task: number): Logger {
  let root = roots.get(level);
  if (!root) {
    root = pino({ level, name: 'junction' });
    roots.set(level, root);
  }
  return root.child({ component: 'connector', connector, task }) as unknown as Logger;
}

const MAX_OBSERVATIONS = 500;

/**
 * Plugin metrics kept in the worker and drained into each answer to the main thread. Kept per connector:
 * a shared thread runs tasks of many connectors, and each answer carries only its own connector's.
 */
export class WorkerMetrics {
  private readonly entries = new Map<string, MetricReport & { connector: string }>();

  forTask(connector: string, task: number): Metrics {
    const get = (name: string, help: string, kind: 'counter' | 'histogram'): MetricReport => {
      const key = `${connector}\u0000${task}:${name}`;
      let e = this.entries.get(key);
      if (!e) {
        for (const other of this.entries.values()) {
          if (other.connector === connector && other.name === name && other.kind !== kind)
            throw new Error(`metric ${name} is already a ${other.kind}`);
        }
        e = { connector, name, help, kind, task, ...(kind === 'counter' ? { inc: 0 } : { values: [] }) };
        this.entries.set(key, e);
      }
      return e;
    };
    return {
      counter(name: string, help: string): Counter {
        const e = get(name, help, 'counter');
        return {
          inc(n = 1) {
            if (n > 0 && Number.isFinite(n)) e.inc = (e.inc ?? 0) + n;
          },
        };
      },
      histogram(name: string, help: string): Histogram {
        const e = get(name, help, 'histogram');
        return {
          observe(v: number) {
            if (Number.isFinite(v) && e.values!.length < MAX_OBSERVATIONS) e.values!.push(v);
          },
        };
      },
    };
  }

  /** The changes of `connector`'s tasks since the last drain. */
  drain(connector: string): MetricReport[] {
    const out: MetricReport[] = [];
    for (const e of this.entries.values()) {
      if (e.connector !== connector) continue;
      const { connector: _, ...report } = e;
      if (e.kind === 'counter' && (e.inc ?? 0) > 0) {
        out.push(report);
        e.inc = 0;
      } else if (e.kind === 'histogram' && e.values!.length > 0) {
        out.push({ ...report, values: e.values! });
        e.values = [];
      }
    }
    return out;
  }

  /** Forgets a connector's metrics (its sink on this thread closed). */
  forget(connector: string): void {
    for (const [key, e] of this.entries) if (e.connector === connector) this.entries.delete(key);
  }
}
