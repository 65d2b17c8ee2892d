/**
 * The connector runtime's status view (see runtime.ts): the connector's state, its tasks (in a cluster,
 * as the nodes holding their leases report them), lag, throughput, the newest error and retries.
 */
import type { StationStore } from '@junction/broker';
import { ConnectorState, TargetState, groupName } from './declaration.js';
import { SinkRunner } from './sink-runner.js';
import type { RetryingStatus, TaskStatus } from './sink-runner.js';
import type { Placement } from './placement.js';
import type { ConnectorRt, ConnectorStatus } from './runtime-types.js';

/** What `GET /v1/connectors/:name/status` answers for `c` (its kind already learned when it can be). */
export async function connectorStatus(c: ConnectorRt, placement: Placement, store: StationStore): Promise<ConnectorStatus> {
  const d = c.declaration;
  const runner = c.runner;
  const taskState =
    c.state === ConnectorState.RUNNING
      ? ConnectorState.UNASSIGNED
      : c.state === ConnectorState.FAILED
        ? ConnectorState.UNASSIGNED
        : c.state;
  let tasks: TaskStatus[] = runner
    ? runner.taskStatuses()
    : Array.from({ length: d.tasks }, (_, id) => ({
        id,
        state: taskState,
        restarts: 0,
        ...(c.kind === 'sink' && { freshness: c.freshness.ofTask(id) }),
      }));
  if (placement.node !== undefined && c.target === TargetState.RUNNING) {
    // Cluster: tasks this node does not run are shown as the node holding their lease reports them.
    const mine = new Set(runner ? (c.owned ?? []) : []);
    tasks = tasks.map((t) => {
      if (mine.has(t.id)) return { ...t, worker: placement.node };
      const r = placement.remote({ connector: d.name, task: c.kind === 'source' ? 0 : t.id });
      return {
        id: t.id,
        state: (r?.state as ConnectorState | undefined) ?? ConnectorState.UNASSIGNED,
        restarts: 0,
        ...(r && { worker: r.worker }),
      };
    });
  }
  let lag: number | undefined;
  if (runner instanceof SinkRunner) lag = await runner.lag();
  else if (c.kind === 'sink')
    lag = await store.getGroup(d.station, groupName(d.name)).then(
      (g) => g.lag,
      () => undefined,
    );
  let lastError = c.lastError;
  for (const t of tasks) if (t.lastError && (!lastError || t.lastError.at > lastError.at)) lastError = t.lastError;
  let retrying: RetryingStatus | undefined;
  if (c.startFailingSince !== undefined && c.state === ConnectorState.FAILED) {
    retrying = { since: c.startFailingSince, attempts: c.startFailures, nextAttemptAt: c.nextStartAt };
  }
  for (const t of tasks) {
    const r = t.retrying;
    if (!r) continue;
    if (!retrying) retrying = { ...r };
    else {
      retrying.since = Math.min(retrying.since, r.since);
      retrying.attempts += r.attempts;
      if (r.nextAttemptAt !== undefined) retrying.nextAttemptAt = Math.min(retrying.nextAttemptAt ?? Infinity, r.nextAttemptAt);
    }
  }
  return {
    name: d.name,
    connector: { state: c.state, ...(c.state === ConnectorState.FAILED && c.trace ? { trace: c.trace } : {}) },
    tasks,
    type: c.kind ?? 'unknown',
    ...(lag !== undefined ? { lag } : {}),
    throughput: runner ? runner.throughput.rate() : { msgsPerSec: 0, bytesPerSec: 0 },
    ...(runner && c.isolation ? { isolation: c.isolation } : {}),
    ...(lastError ? { lastError } : {}),
    ...(retrying ? { retrying } : {}),
    freshness: c.freshness.overall(),
  };
}
