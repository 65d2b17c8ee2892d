/**
 * The connector runtime's metrics (see runtime.ts): lag, the shared pool, freshness and retries,
 * gathered from the connectors when /metrics is scraped.
 */
import type { Registry } from 'prom-client';
import { ConnectMetrics } from './metrics.js';
import { SinkRunner } from './sink-runner.js';
import type { SharedSinkPool } from './shared-pool.js';
import type { ConnectorRt } from './runtime-types.js';

/** The metrics of the runtime's `connectors` (and its shared pool, once made), in `registry`. */
export function runtimeMetrics(
  registry: Registry | undefined,
  connectors: ReadonlyMap<string, ConnectorRt>,
  shared: () => SharedSinkPool | undefined,
): ConnectMetrics {
  return new ConnectMetrics({
    registry: registry,
    lag: async () => {
      const out: { connector: string; lag: number }[] = [];
      for (const c of connectors.values()) {
        if (c.runner instanceof SinkRunner) {
          const lag = await c.runner.lag();
          if (lag !== undefined) out.push({ connector: c.declaration.name, lag });
        }
      }
      return out;
    },
    shared: () => ({ threads: shared()?.threads ?? 0, tasks: shared()?.tasks ?? 0 }),
    freshness: () =>
      [...connectors.values()].flatMap((c) => {
        const seconds = c.freshness.seconds();
        return seconds === undefined ? [] : [{ connector: c.declaration.name, seconds }];
      }),
    retrying: () => {
      const out: { connector: string; task: number; since?: number | undefined }[] = [];
      for (const c of connectors.values()) {
        if (!c.runner) continue;
        const owned = new Set(c.owned ?? []);
        for (const t of c.runner.taskStatuses())
          if (owned.has(t.id)) out.push({ connector: c.declaration.name, task: t.id, since: t.retrying?.since });
      }
      return out;
    },
  });
}
