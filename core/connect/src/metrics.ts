/**
 * Prometheus metrics of the runtime, per connector and task, registered in the registry the server
 * passes in. A failed task keeps its series (its state gauge says FAILED); a deleted connector's
 * series are removed.
 */
import { performance } from 'node:perf_hooks';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import type { Worker } from 'node:worker_threads';
import { ConnectorState } from './declaration.js';
import type { MetricReport } from './wire.js';

export interface ConnectMetricsOptions {
  registry?: Registry | undefined;
  /** Lag per connector, read when scraped. */
  lag?: (() => Promise<{ connector: string; lag: number }[]>) | undefined;
  /** Every task this node runs, with since when (ms since epoch) its messages are being retried, if they are; read when scraped. */
  retrying?: (() => { connector: string; task: number; since?: number | undefined }[]) | undefined;
  /** The shared pool's threads and the tasks pinned to it, read when scraped. */
  shared?: (() => { threads: number; tasks: number }) | undefined;
  /** Each sink connector's produce → landed seconds of its last landed message (those that landed one), read when scraped. */
  freshness?: (() => { connector: string; seconds: number }[]) | undefined;
}

const STATES = Object.values(ConnectorState);

export class ConnectMetrics {
  readonly messages: Counter<'connector' | 'task'>;
  readonly bytes: Counter<'connector' | 'task'>;
  readonly batches: Counter<'connector' | 'task'>;
  readonly retries: Counter<'connector' | 'task'>;
  readonly deadLetters: Counter<'connector' | 'task'>;
  /** Messages the connector's transforms dropped (a filter, a map with no result, a plugin answering null). */
  readonly transformDropped: Counter<'connector' | 'task'>;
  readonly restarts: Counter<'connector' | 'task'>;
  readonly ahead: Counter<'connector' | 'task'>;
  readonly writeSeconds: Histogram<'connector' | 'task'>;
  readonly workerSeconds: Counter<'connector'>;
  readonly buffered: Gauge<'connector'>;
  /** Shared threads terminated (recycled) because of one of their tasks; the others sent their batches again. */
  readonly sharedRecycles: Counter;
  /** Worker threads abandoned because they did not exit when terminated (blocked in native code), in this process. */
  private readonly strandedThreads: Gauge;
  private readonly stranded = new Set<Worker>();
  private readonly retrying: Gauge<'connector' | 'task'>;
  private readonly taskState: Gauge<'connector' | 'task' | 'state'>;
  private readonly lag: Gauge<'connector'>;
  private readonly share: Gauge;
  private readonly elu: Gauge;
  private readonly plugin = new Map<string, Counter<'connector' | 'task'> | Histogram<'connector' | 'task'>>();
  private readonly registry: Registry | undefined;
  private workerMsTotal = 0;
  private lastWorkerMs = 0;
  private lastElu: EventLoopUtilization = performance.eventLoopUtilization();

  constructor(options: ConnectMetricsOptions = {}) {
    const registers = options.registry ? [options.registry] : [];
    this.registry = options.registry;
    const labels = ['connector', 'task'] as const;
    this.messages = new Counter({
      name: 'junction_connector_messages_total',
      help: 'Messages a sink wrote (ok) or a source stored in its station',
      labelNames: labels,
      registers,
    });
    this.bytes = new Counter({
      name: 'junction_connector_bytes_total',
      help: 'Value bytes a sink wrote or a source stored',
      labelNames: labels,
      registers,
    });
    this.batches = new Counter({
      name: 'junction_connector_batches_total',
      help: 'Batches written by a sink or read from a source',
      labelNames: labels,
      registers,
    });
    this.transformDropped = new Counter({
      name: 'junction_connector_transform_dropped_total',
      help: "Messages the connector's transforms dropped (acknowledged, never written or produced)",
      labelNames: labels,
      registers,
    });
    this.retries = new Counter({
      name: 'junction_connector_retries_total',
      help: 'Messages sent again after retry(), a retryable error, a timeout or a crash',
      labelNames: labels,
      registers,
    });
    this.deadLetters = new Counter({
      name: 'junction_connector_dead_letters_total',
      help: 'Messages a connector put into the dead-letter station',
      labelNames: labels,
      registers,
    });
    this.restarts = new Counter({
      name: 'junction_connector_task_restarts_total',
      help: 'Task restarts after a failure',
      labelNames: labels,
      registers,
    });
    this.ahead = new Counter({
      name: 'junction_connector_batches_ahead_total',
      help: "Batches that reached their task's worker while the write before them ran (lookahead), and waited there",
      labelNames: labels,
      registers,
    });
    this.writeSeconds = new Histogram({
      name: 'junction_connector_write_seconds',
      help: 'Time from handing a batch to a worker to its answer',
      labelNames: labels,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.workerSeconds = new Counter({
      name: 'junction_connect_worker_seconds_total',
      help: 'Time spent in plugin code in worker threads',
      labelNames: ['connector'],
      registers,
    });
    this.buffered = new Gauge({
      name: 'junction_connector_buffered_messages',
      help: 'Messages a sink connector holds (batching, in flight, retrying)',
      labelNames: ['connector'],
      registers,
    });
    this.strandedThreads = new Gauge({
      name: 'junction_connect_stranded_threads',
      help: "Worker threads that did not exit when terminated (plugin code blocked in a native call) and were abandoned; each holds one of the process's libuv threadpool threads until it exits",
      registers,
    });
    const retryingFn = options.retrying;
    this.retrying = new Gauge({
      name: 'junction_connector_task_retrying',
      help: "Seconds since the task's messages started failing and being retried (retry answers, retryable errors, a failing open, restarts after crashes); 0 when it writes normally",
      labelNames: ['connector', 'task'],
      registers,
      collect() {
        if (!retryingFn) return;
        this.reset();
        const now = Date.now();
        for (const { connector, task, since } of retryingFn())
          this.set({ connector, task: String(task) }, since === undefined ? 0 : Math.max(0, (now - since) / 1000));
      },
    });
    this.sharedRecycles = new Counter({
      name: 'junction_connect_shared_recycles_total',
      help: 'Threads of the shared pool terminated because of one of their tasks (a write past its timeout, a stop that could not wait, a hung close); the other tasks on it sent their batches again',
      registers,
    });
    const sharedFn = options.shared;
    new Gauge({
      name: 'junction_connect_shared_threads',
      help: 'Worker threads of the shared pool (sink tasks of trusted plugins, many per thread)',
      registers,
      collect() {
        if (sharedFn) this.set(sharedFn().threads);
      },
    });
    new Gauge({
      name: 'junction_connect_shared_tasks',
      help: 'Sink tasks running on the shared pool',
      registers,
      collect() {
        if (sharedFn) this.set(sharedFn().tasks);
      },
    });
    const freshnessFn = options.freshness;
    new Gauge({
      name: 'junction_connector_freshness_seconds',
      help: 'Seconds from produce (the message timestamp) to landed in the destination, of the last message a sink connector landed',
      labelNames: ['connector'],
      registers,
      collect() {
        if (!freshnessFn) return;
        this.reset();
        for (const { connector, seconds } of freshnessFn()) this.set({ connector }, seconds);
      },
    });
    this.taskState = new Gauge({
      name: 'junction_connector_task_state',
      help: '1 for the state each task is in',
      labelNames: ['connector', 'task', 'state'],
      registers,
    });
    const lagFn = options.lag;
    this.lag = new Gauge({
      name: 'junction_connector_lag',
      help: 'Messages of the station not yet acknowledged by a sink connector',
      labelNames: ['connector'],
      registers,
      async collect() {
        if (!lagFn) return;
        this.reset();
        for (const { connector, lag } of await lagFn().catch(() => [])) this.set({ connector }, lag);
      },
    });
    const self = this;
    this.elu = new Gauge({
      name: 'junction_connect_event_loop_utilization',
      help: 'Share of time the main (broker) event loop was busy since the last scrape',
      registers,
      collect() {
        self.sample();
      },
    });
    this.share = new Gauge({
      name: 'junction_connect_worker_time_share',
      help: 'Plugin time in worker threads / (that + busy time of the broker loop), since the last scrape',
      registers,
    });
  }

  private sample(): void {
    const now = performance.eventLoopUtilization();
    const d = performance.eventLoopUtilization(now, this.lastElu);
    this.lastElu = now;
    this.elu.set(d.utilization);
    const workerMs = this.workerMsTotal - this.lastWorkerMs;
    this.lastWorkerMs = this.workerMsTotal;
    const total = workerMs + d.active;
    this.share.set(total > 0 ? workerMs / total : 0);
  }

  /**
   * Counts a worker thread that was terminated and did not exit (blocked in a native call), until it
   * exits. While any is counted the process cannot exit normally: Node waits for every worker thread.
   */
  strand(w: Worker): void {
    if (w.threadId === -1 || this.stranded.has(w)) return;
    this.stranded.add(w);
    this.strandedThreads.inc();
    w.once('exit', () => {
      if (this.stranded.delete(w)) this.strandedThreads.dec();
    });
  }

  /** Worker threads counted by `strand` that have not exited yet. */
  get strandedCount(): number {
    return this.stranded.size;
  }

  /** Counts plugin time measured in a worker. */
  addWorkerTime(connector: string, ms: number): void {
    this.workerMsTotal += ms;
    this.workerSeconds.inc({ connector }, ms / 1000);
  }

  /** Total plugin time so far (ms), for benchmarks that compute their own share. */
  get workerMs(): number {
    return this.workerMsTotal;
  }

  setTaskState(connector: string, task: number, state: ConnectorState): void {
    for (const s of STATES) this.taskState.set({ connector, task: String(task), state: s }, s === state ? 1 : 0);
  }

  /** Applies metrics a plugin recorded in a worker: `junction_plugin_<plugin>_<name>{connector,task}`. */
  applyPluginMetrics(plugin: string, connector: string, reports: readonly MetricReport[]): void {
    if (!this.registry) return;
    for (const r of reports) {
      const name = `junction_plugin_${plugin.replace(/[^a-zA-Z0-9_]/g, '_')}_${r.name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
      let m = this.plugin.get(name);
      try {
        if (!m) {
          m =
            r.kind === 'counter'
              ? new Counter({ name, help: r.help || name, labelNames: ['connector', 'task'], registers: [this.registry] })
              : new Histogram({ name, help: r.help || name, labelNames: ['connector', 'task'], registers: [this.registry] });
          this.plugin.set(name, m);
        }
        const labels = { connector, task: String(r.task) };
        if (r.kind === 'counter' && m instanceof Counter) m.inc(labels, r.inc ?? 0);
        else if (r.kind === 'histogram' && m instanceof Histogram) for (const v of r.values ?? []) m.observe(labels, v);
      } catch {
        // a name clash with another metric: the plugin's metric is dropped, the runtime's stay
      }
    }
  }

  /** Removes every series of a deleted connector (tasks 0 … tasks-1). */
  removeConnector(connector: string, tasks: number): void {
    for (let t = 0; t < tasks; t++) {
      const labels = { connector, task: String(t) };
      for (const m of [this.messages, this.bytes, this.batches, this.retries, this.deadLetters, this.restarts, this.ahead])
        m.remove(labels);
      this.retrying.remove(labels);
      this.writeSeconds.remove(labels);
      for (const m of this.plugin.values()) m.remove(labels);
      for (const state of STATES) this.taskState.remove({ ...labels, state });
    }
    this.workerSeconds.remove({ connector });
    this.buffered.remove({ connector });
  }
}
