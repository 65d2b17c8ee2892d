/** A context for running a plugin outside the runtime: a recording, silent logger and in-memory metrics. */
import type { Counter, Histogram, JsonValue, Logger, LogFn, Metrics, SourceContext, StationSchemaInfo } from '../types.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** One call to the fake logger: its level, its message (format arguments appended), its fields and bindings. */
export interface LogRecord {
  level: LogLevel;
  msg: string | undefined;
  fields: Record<string, unknown>;
}

export type MetricValue =
  { kind: 'counter'; help: string; value: number } | { kind: 'histogram'; help: string; count: number; sum: number; values: number[] };

/** In-memory metrics with the runtime's rules: snake_case names, one kind per name, counters never go down. */
export interface FakeMetrics extends Metrics {
  /** Every instrument by name, as a copy. */
  snapshot(): Record<string, MetricValue>;
}

/** A SinkContext and SourceContext for tests, plus what the plugin logged and measured. */
export interface FakeContext<P extends JsonValue = JsonValue> extends SourceContext<P> {
  /** The station schema a sink sees (SinkContext.schema), when given. */
  readonly schema?: StationSchemaInfo | undefined;
  readonly metrics: FakeMetrics;
  /** Every log call, oldest first (at most `maxLogs`, the newest kept). */
  readonly logs: LogRecord[];
}

export interface FakeContextOptions<P extends JsonValue = JsonValue> {
  connector?: string;
  task?: number;
  /** The restored source position (SourceContext.position). */
  position?: P;
  /** The station's schema (SinkContext.schema). */
  schema?: StationSchemaInfo | undefined;
  /** Default 10 000. */
  maxLogs?: number;
}

const METRIC_NAME_RE = /^[a-z_][a-z0-9_]*$/;

function fakeMetrics(): FakeMetrics {
  const store = new Map<string, MetricValue>();
  const get = (name: string, help: string, kind: MetricValue['kind']): MetricValue => {
    if (!METRIC_NAME_RE.test(name)) throw new TypeError(`metric name ${JSON.stringify(name)} must be snake_case ([a-z_][a-z0-9_]*)`);
    const found = store.get(name);
    if (found) {
      if (found.kind !== kind) throw new TypeError(`metric ${name} is already a ${found.kind}`);
      return found;
    }
    const created: MetricValue = kind === 'counter' ? { kind, help, value: 0 } : { kind, help, count: 0, sum: 0, values: [] };
    store.set(name, created);
    return created;
  };
  return {
    counter(name, help): Counter {
      const m = get(name, help, 'counter') as Extract<MetricValue, { kind: 'counter' }>;
      return {
        inc(n = 1) {
          if (!Number.isFinite(n) || n < 0) throw new TypeError(`counter ${name}: inc(${n}) needs a finite number ≥ 0`);
          m.value += n;
        },
      };
    },
    histogram(name, help): Histogram {
      const m = get(name, help, 'histogram') as Extract<MetricValue, { kind: 'histogram' }>;
      return {
        observe(v) {
          if (!Number.isFinite(v)) throw new TypeError(`histogram ${name}: observe(${v}) needs a finite number`);
          m.count += 1;
          m.sum += v;
          if (m.values.length < 100_000) m.values.push(v);
        },
      };
    },
    snapshot() {
      const out: Record<string, MetricValue> = {};
      for (const [name, m] of store) out[name] = m.kind === 'counter' ? { ...m } : { ...m, values: [...m.values] };
      return out;
    },
  };
}

function fakeLogger(logs: LogRecord[], bindings: Record<string, unknown>, maxLogs: number): Logger {
  const method = (level: LogLevel): LogFn =>
    ((first: unknown, ...rest: unknown[]) => {
      let msg: string | undefined;
      let fields: Record<string, unknown> = { ...bindings };
      let args = rest;
      if (typeof first === 'string') msg = first;
      else {
        if (first instanceof Error) fields.err = first;
        else if (typeof first === 'object' && first !== null) fields = { ...fields, ...(first as Record<string, unknown>) };
        if (typeof rest[0] === 'string') msg = rest[0];
        args = rest.slice(1);
      }
      if (msg !== undefined && args.length > 0)
        msg = `${msg} ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`;
      logs.push({ level, msg, fields });
      if (logs.length > maxLogs) logs.splice(0, logs.length - maxLogs);
    }) as LogFn;
  return {
    trace: method('trace'),
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    fatal: method('fatal'),
    child: (more) => fakeLogger(logs, { ...bindings, ...more }, maxLogs),
  };
}

/**
 * A context for opening a plugin in a test: connector `test`, task 0, a logger that prints nothing
 * but records every call in `logs`, and metrics you can read back with `metrics.snapshot()`.
 */
export function fakeContext<P extends JsonValue = JsonValue>(opts: FakeContextOptions<P> = {}): FakeContext<P> {
  const connector = opts.connector ?? 'test';
  const task = opts.task ?? 0;
  const logs: LogRecord[] = [];
  return {
    connector,
    task,
    position: opts.position,
    ...(opts.schema !== undefined && { schema: opts.schema }),
    logger: fakeLogger(logs, { connector, task }, opts.maxLogs ?? 10_000),
    metrics: fakeMetrics(),
    logs,
  };
}
