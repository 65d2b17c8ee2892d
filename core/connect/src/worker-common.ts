/**
 * What both worker entries share: loading a plugin module by path, the context a plugin gets
 * (a pino logger bound to connector and task, metrics reported back to the main thread).
 */
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { checkPlugin } from '@junction/sdk-connector';
import type { Counter, Histogram, Logger, Metrics, Plugin } from '@junction/sdk-connector';
import type { MetricReport } from './wire.js';

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
          if (other.connector === connector && other.name === name && other.kind !== kind) throw new Error(`metric ${name} is already a ${other.kind}`);
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
