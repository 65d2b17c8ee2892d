/**
 * The sink rows of `npm run bench` (S3 and the three warehouses), in a child process that is a broker
 * (`startServer`: embedded store with its default durability, the registry with the built-in connectors,
 * the connector runtime) — the same set-up as connector-runner.ts. Every sink row is driven through the
 * runtime: a station is filled (store.produce, batches of 1000), then the sink connector is created
 * (`connect.create`, as `POST /v1/connectors` does) stopped, resumed, and timed until its group has no lag
 * (every message written and acknowledged). Beside each, the baseline in the same run against the same
 * server: the same bytes / rows sent directly with the same SDK.
 *
 * - S3 (s3rver in its own process, test/fakes/s3rver-main.mjs): jsonl + gzip and parquet + snappy,
 *   objects of 10 000 messages, beside a raw @aws-sdk/lib-storage upload of the same value bytes
 *   (newline-joined, uncompressed, one object per 10 000 messages, one after another), and the plugin
 *   called directly. Those run first; the runtime rows after, once the generated messages are garbage
 *   (the broker shares this process's heap). Each row carries its CPU per message and the service's,
 *   and the ceiling they leave on this machine's cores (SinkRow.ceiling).
 * - BigQuery / Snowflake / Firebolt (the fakes of test/fakes/, compiled into bench/dist/fakes, each in a
 *   process of its own — fake-host.ts — like s3rver: the service's CPU is not the broker's): the sink
 *   with batches of 5000 beside the statements of each connector's test/bench.manual.ts — the same rows
 *   inserted directly with the same SDK (BigQuery insertAll 500 rows a request, 4 at once; Snowflake one
 *   JSON-bind INSERT … SELECT FLATTEN per 5000 rows; Firebolt one multi-row INSERT per 5000 rows).
 *
 * Argument: JSON of SinksRunnerConfig. Prints one JSON line (SinksResult) on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { startServer } from '@junction/server';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { BigQuery } from '@google-cloud/bigquery';
import snowflake from 'snowflake-sdk';
import { Firebolt } from 'firebolt-sdk';
import { availableParallelism } from 'node:os';
import { cpuCeiling, cpuMeter, threadMeter, type CpuPerMessage } from './cpu.js';
import { log } from './plan.js';

export interface SinksRunnerConfig {
  /** 1 KiB messages through each S3 row. */
  s3Messages: number;
  /** Rows through each warehouse row. */
  warehouseRows: number;
  /** Which parts: s3, bigquery, snowflake, firebolt (default all). */
  parts?: string[] | undefined;
}

export interface Rate {
  messages: number;
  seconds: number;
  msgsPerSec: number;
  /** Message value bytes (10^6) per second. */
  mbPerSec: number;
}

export interface SinkRow {
  row: string;
  /** How the Junction side was driven: the runtime (station → connector) or the plugin called directly. */
  via: 'runtime' | 'plugin';
  junction?: Rate | undefined;
  baselineName: string;
  baseline?: Rate | undefined;
  /** junction msgs/s / baseline msgs/s. */
  ratio?: number | undefined;
  targets: { target: string; value: number; met: boolean }[];
  /** Runtime rows: seconds from resume until the first batch was acknowledged (task start, plugin open, first write) — inside `withStart.seconds`. */
  firstAckSeconds?: number | undefined;
  /** Runtime rows: the whole drain from resume (task start included); `junction` is then the steady rate after the first acknowledged batch. */
  withStart?: Rate | undefined;
  note: string;
  error?: string | undefined;
  /** CPU per message over the timed window: Junction's process (`loadGenUs`: broker, worker threads, pool) and the service's (`serverUs`). */
  cpu?: CpuPerMessage | undefined;
  /** The same for the baseline: the uploading process and the service. */
  baselineCpu?: CpuPerMessage | undefined;
  /**
   * The most `ratio` could be on this machine's cores given the CPU both paths spend per message:
   * cores / (Junction's + the service's CPU per message × the baseline's rate). A row cannot pass it
   * however well its work overlaps (it would need more CPU time than the cores have).
   */
  ceiling?: number | undefined;
}

export interface SinksResult {
  rows: SinkRow[];
  notes: string[];
  /** Seconds each part took (fill, sink, baseline, set-up). */
  partSeconds: Record<string, number>;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as SinksRunnerConfig;
const parts = new Set(cfg.parts ?? ['s3', 'bigquery', 'snowflake', 'firebolt']);
const dir = mkdtempSync(join(tmpdir(), 'junction-bench-sinks-'));
const here = (p: string) => new URL(p, import.meta.url);
process.env['SF_TELEMETRY_DISABLE_CONNECTION_SHAPE'] = '1';

const server = await startServer({
  dataDir: join(dir, 'data'),
  host: '127.0.0.1',
  port: 0,
  logLevel: 'error',
  env: {},
  watchConfig: false,
});
const { store, connect } = server;

const rate = (messages: number, seconds: number, bytes: number): Rate => ({
  messages,
  seconds: +seconds.toFixed(2),
  msgsPerSec: Math.round(messages / seconds),
  mbPerSec: +(bytes / seconds / 1e6).toFixed(1),
});

async function produceAll(
  station: string,
  messages: { value: Uint8Array; key?: string; headers?: Record<string, string> }[],
): Promise<void> {
  for (let i = 0; i < messages.length; i += 1000) {
    const r = await store.produce(station, messages.slice(i, i + 1000));
    const bad = r.find((x) => x.status !== 'stored');
    if (bad) throw new Error(`fill ${station}: ${JSON.stringify(bad)}`);
  }
}

/** Creates the sink stopped, resumes it, and resolves with the seconds until its group has no lag. Fails on a failed task or after `timeoutMs`. */
interface SinkTiming {
  /** From resume to no lag. */
  seconds: number;
  /** From resume to the first acknowledged batch. */
  firstAckSeconds: number;
  /**
   * Messages still unacknowledged once the warm-up was acknowledged (without warm-up: at the first ack),
   * and the seconds from then to no lag: the steady rate.
   */
  afterFirst: number;
  afterFirstSeconds: number;
  /** CPU per message over the steady window, when a meter was given. */
  cpu?: CpuPerMessage | undefined;
}

async function timeSink(
  decl: Record<string, unknown> & { name: string; station: string },
  timeoutMs: number,
  warmup = 0,
  meter?: () => (messages: number) => CpuPerMessage,
): Promise<SinkTiming> {
  await connect.create({ ...decl, state: 'STOPPED' });
  const group = `connector.${decl.name}`;
  const t0 = performance.now();
  let firstAck = 0;
  let steadyAt = 0;
  let lagAtSteady = 0;
  let lag0: number | undefined;
  let stopMeter: ((messages: number) => CpuPerMessage) | undefined;
  await connect.resume(decl.name);
  for (;;) {
    const g = await store.getGroup(decl.station, group).catch(() => undefined);
    if (g && lag0 === undefined) lag0 = g.lag;
    if (g && !firstAck && lag0 !== undefined && g.lag < lag0) firstAck = performance.now();
    // The steady clock starts once the warm-up messages are acknowledged (without warm-up: at the first ack).
    if (g && !steadyAt && lag0 !== undefined && (warmup > 0 ? lag0 - g.lag >= warmup : g.lag < lag0)) {
      steadyAt = performance.now();
      lagAtSteady = g.lag;
      stopMeter = meter?.();
    }
    if (g && g.lag === 0) break;
    const st = await connect.status(decl.name);
    const failed = st.tasks.find((t) => t.state === 'FAILED');
    if (failed)
      throw new Error(
        `${decl.name}: task failed: ${failed.lastError?.code ?? ''} ${failed.lastError?.message ?? failed.trace ?? ''}`.slice(0, 600),
      );
    if (performance.now() - t0 > timeoutMs) throw new Error(`${decl.name}: lag ${g?.lag ?? '?'} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const end = performance.now();
  const cpu = stopMeter?.(lagAtSteady);
  await connect.delete(decl.name);
  return {
    cpu,
    seconds: (end - t0) / 1000,
    firstAckSeconds: ((firstAck || end) - t0) / 1000,
    afterFirst: lagAtSteady,
    afterFirstSeconds: (end - (steadyAt || end)) / 1000,
  };
}

const rows: SinkRow[] = [];
const partSeconds: Record<string, number> = {};
const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    partSeconds[name] = +((performance.now() - t0) / 1000).toFixed(1);
  }
};
const ratioOf = (a: Rate | undefined, b: Rate | undefined) =>
  a && b && b.msgsPerSec ? +(a.msgsPerSec / b.msgsPerSec).toFixed(2) : undefined;

// ------------------------------------------------------------------ S3

async function startS3rver(): Promise<{ endpoint: string; child: ChildProcess }> {
  const main = fileURLToPath(here('../../test/fakes/s3rver-main.mjs'));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', main, join(dir, 's3rver')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => reject(new Error(`s3rver exited with ${c}`)));
    child.stdout!.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as { port: number }).port));
  });
  s3rverChild = child;
  return { endpoint: `http://127.0.0.1:${port}`, child };
}

let s3rverChild: ChildProcess | undefined;
/** The warehouse fakes' processes (startFake). */
const fakeChildren = new Set<ChildProcess>();
// Stopped by main (Ctrl-C): take s3rver and the temp dir along.
process.once('SIGTERM', () => {
  s3rverChild?.kill('SIGKILL');
  for (const c of fakeChildren) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  process.exit(130);
});

type S3Event = { offset: number; timestamp: number; key: string; headers: Record<string, string>; value: Uint8Array };

/** connectors/s3/scripts/bench.mjs: its events, its raw upload and the plugin driven directly, shared with `node bench.mjs`. */
interface S3BenchScript {
  events(n: number): S3Event[];
  rawUpload(o: {
    client: S3Client;
    bucket: string;
    messages: readonly S3Event[];
    batch: number;
    warmup: number;
    meter: () => (messages: number) => CpuPerMessage;
  }): Promise<{ secs: number; cpu: CpuPerMessage }>;
  benchS3Sink(
    o: unknown,
  ): Promise<
    { name: string; msgsPerSec: number; valueMBps: number; objectMB: number; secs: number; messages: number; cpu?: CpuPerMessage }[]
  >;
}
const s3BenchScript = (): Promise<S3BenchScript> => import(here('../../connectors/s3/scripts/bench.mjs').href) as Promise<S3BenchScript>;

async function benchS3(): Promise<void> {
  const n = cfg.s3Messages;
  const per = 10_000;
  // As for the warehouses: every path uploads `warm` messages untimed first (s3rver, the SDK and the
  // runtime's worker start cold), then the `n` timed ones. A whole number of objects.
  const warm = Math.min(50_000, Math.ceil(n / 2 / per) * per);
  const { endpoint, child } = await timed('s3 set-up (s3rver)', startS3rver);
  try {
    const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
    const conn = { endpoint, region: 'us-east-1', forcePathStyle: true, credentials, checksums: 'when-required' };
    // Copies of the credentials each time: the AWS SDK marks a credentials object it used (`$source`), which the sink's strict config schema refuses.
    const admin = new S3Client({
      ...conn,
      credentials: { ...credentials },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const cores = availableParallelism();
    // Both processes' CPU, and this process's busiest thread (the broker's main thread, a task's worker, a pool thread).
    const meter = () => {
      const processes = cpuMeter(child.pid);
      const threads = threadMeter();
      return (messages: number): CpuPerMessage => ({ ...processes(messages), busiestThread: threads(messages) });
    };
    const at = rows.length;
    // Everything that holds the generated messages (~1 KiB × warm + n, as objects) runs in here: the
    // station's fill, the raw upload and the plugin-direct rows. Once it returns they are garbage, so
    // the runtime rows' broker (this process) does not mark the load generator's objects at every collection.
    const { raw, rawCpu, allBytes } = await upfront(admin, meter, cores);
    const direct = rows.splice(at);
    for (const [row, name, extra] of [
      ['S3 sink jsonl + gzip', 's3-jsonl-gzip', { format: 'jsonl', compression: 'gzip' }],
      ['S3 sink parquet + snappy', 's3-parquet', { format: 'parquet', compression: 'snappy' }],
    ] as const) {
      const bucket = `bench-${name}`;
      const r: SinkRow = {
        row,
        via: 'runtime',
        baselineName: 'raw lib-storage upload (same value bytes, uncompressed)',
        baseline: raw,
        targets: [],
        note: `station (1 partition, ${warm} + ${n} x ~1 KiB JSON events, filled beforehand) -> s3 sink connector (1 task, batches of ${per} = one object each) -> s3rver, timed once the first ${warm} were acknowledged; raw and plugin direct also upload ${warm} untimed first`,
      };
      try {
        await admin.send(new CreateBucketCommand({ Bucket: bucket }));
        const t = await timed(row, () =>
          timeSink(
            {
              name,
              plugin: 's3',
              station: 's3',
              tasks: 1,
              config: { ...conn, credentials: { ...credentials }, bucket, ...extra },
              batch: { maxMessages: per, maxBytes: 64 * 1024 * 1024, maxLatencyMs: 200 },
            },
            120_000,
            warm,
            meter,
          ),
        );
        r.cpu = t.cpu;
        r.baselineCpu = rawCpu;
        r.ceiling = cpuCeiling(t.cpu, raw, cores);
        r.withStart = rate(warm + n, t.seconds, allBytes);
        r.junction = rate(t.afterFirst, t.afterFirstSeconds, (allBytes * t.afterFirst) / (warm + n));
        r.firstAckSeconds = +t.firstAckSeconds.toFixed(2);
        r.ratio = ratioOf(r.junction, raw);
        r.targets.push({ target: '>= 0.8 of raw', value: r.ratio ?? 0, met: (r.ratio ?? 0) >= 0.8 });
        r.targets.push({ target: '>= 100000 msgs/s', value: r.junction.msgsPerSec, met: r.junction.msgsPerSec >= 100_000 });
      } catch (err) {
        r.error = err instanceof Error ? err.message : String(err);
        log(`${row} failed: ${r.error}`);
      }
      rows.push(r);
    }
    rows.push(...direct);
    admin.destroy();
    await store.deleteStation('s3');
  } finally {
    child.kill('SIGKILL');
  }

  async function upfront(
    admin: S3Client,
    meter: () => (messages: number) => CpuPerMessage,
    cores: number,
  ): Promise<{ raw: Rate; rawCpu: CpuPerMessage | undefined; allBytes: number }> {
    const script = await s3BenchScript();
    const evs = await timed('s3 generate 1 KiB JSON events', async () => script.events(warm + n));
    const messages = evs.map((m) => ({ key: m.key, value: m.value }));
    const allBytes = messages.reduce((s, m) => s + m.value.byteLength, 0);
    const valueBytes = messages.slice(warm).reduce((s, m) => s + m.value.byteLength, 0);
    await store.createStation('s3', { partitions: 1, dedupWindowMs: 0 });
    await timed('s3 fill station', () => produceAll('s3', messages));
    // The limit: the same value bytes through lib-storage alone, one object per `per` messages, one after another.
    let rawCpu: CpuPerMessage | undefined;
    const raw = await timed('s3 raw lib-storage upload', async () => {
      const r = await script.rawUpload({ client: admin, bucket: 'bench-raw', messages: evs, batch: per, warmup: warm, meter });
      rawCpu = r.cpu;
      return rate(n, r.secs, valueBytes);
    });
    // The same plugin called directly (no runtime: S3Sink.write in this thread, batches one after another),
    // with connectors/s3/scripts/bench.mjs's benchS3Sink on the same server and messages: where the runtime's share shows.
    try {
      const direct = await timed('s3 plugin direct (benchS3Sink)', () =>
        script.benchS3Sink({
          endpoint,
          messages: evs,
          warmup: warm,
          batch: per,
          meter,
          raw: false,
          configs: [
            ['S3 sink jsonl + gzip, plugin direct', { format: 'jsonl', compression: 'gzip' }],
            ['S3 sink parquet + snappy, plugin direct', { format: 'parquet', compression: 'snappy' }],
          ],
        }),
      );
      for (const d of direct) {
        const junction = {
          messages: d.messages,
          seconds: +d.secs.toFixed(2),
          msgsPerSec: Math.round(d.msgsPerSec),
          mbPerSec: +d.valueMBps.toFixed(1),
        };
        const ratio = ratioOf(junction, raw);
        rows.push({
          row: d.name,
          via: 'plugin',
          junction,
          baselineName: 'raw lib-storage upload (same value bytes, uncompressed)',
          baseline: raw,
          ratio,
          targets: [
            { target: '>= 0.8 of raw', value: ratio ?? 0, met: (ratio ?? 0) >= 0.8 },
            { target: '>= 100000 msgs/s', value: junction.msgsPerSec, met: junction.msgsPerSec >= 100_000 },
          ],
          note: `plugin driven directly (connectors/s3/scripts/bench.mjs benchS3Sink: S3Sink.write of ${per}-message batches one after another in one thread, no station, no runtime)`,
          cpu: d.cpu,
          baselineCpu: rawCpu,
          ceiling: cpuCeiling(d.cpu, raw, cores),
        });
      }
    } catch (err) {
      log(`S3 plugin-direct rows failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    return { raw, rawCpu, allBytes };
  }
}

// ------------------------------------------------------------------ warehouses

const enc = new TextEncoder();
const whValue = (x: number) => ({ n: x, text: 'hello world' });

/** Fills station `name` with the warehouse rows: value {n, text}, header h, as the connectors' bench.manual.ts. */
async function fillWarehouseStation(name: string, n: number): Promise<number> {
  await store.createStation(name, { partitions: 1, dedupWindowMs: 0 });
  const messages = Array.from({ length: n }, (_, i) => ({ value: enc.encode(JSON.stringify(whValue(i))), headers: { h: String(i) } }));
  await produceAll(name, messages);
  return messages.reduce((s, m) => s + m.value.byteLength, 0);
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const WH_BATCH = 5000;
/**
 * Rows each warehouse path writes untimed before its timed rows: the runtime's worker thread, the
 * plugin in this thread, the SDK and the fake's process all start cold, and whichever path ran first
 * used to pay for warming the fake. A whole number of batches, as many as are timed (at most 50 000).
 */
function warmupRows(n: number): number {
  return Math.min(50_000, Math.ceil(n / WH_BATCH) * WH_BATCH);
}

interface Fake {
  url: string;
  close(): Promise<void>;
}

/** A warehouse fake in a child process (fake-host.ts): its CPU is not the broker's. */
async function startFake(kind: string, options: unknown, datasets: [string, string][]): Promise<Fake> {
  // JUNCTION_BENCH_CHILD_PROF=<dir> profiles the fakes' processes too (where a warehouse row's server time goes).
  const prof = process.env.JUNCTION_BENCH_CHILD_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.JUNCTION_BENCH_CHILD_PROF] : [];
  const child = spawn(process.execPath, [...prof, fileURLToPath(here('./fake-host.js')), JSON.stringify({ kind, options, datasets })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  fakeChildren.add(child);
  const url = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => reject(new Error(`the ${kind} fake exited with ${c}`)));
    child.stdout!.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as { url: string }).url));
  });
  return {
    url,
    close: async () => {
      fakeChildren.delete(child);
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      // Profiled, it exits by SIGTERM (process.exit writes its .cpuprofile); SIGKILL would lose it.
      child.kill(prof.length > 0 ? 'SIGTERM' : 'SIGKILL');
      await exited;
    },
  };
}
async function benchWarehouse(
  kind: 'bigquery' | 'snowflake' | 'firebolt',
  sinkConfig: (fake: Fake, table: string) => Record<string, unknown>,
  datasets: [string, string][],
  direct: (fake: Fake, warm: number, n: number) => Promise<{ seconds: number; note: string }>,
  baselineName: string,
): Promise<void> {
  const n = cfg.warehouseRows;
  // Every path writes `warm` rows untimed first, then the `n` timed ones (see WAREHOUSE_WARMUP).
  const warm = warmupRows(n);
  const row: SinkRow = { row: `${kind} sink`, via: 'runtime', baselineName, targets: [], note: '' };
  const extra: SinkRow[] = [];
  const station = `wh_${kind}`;
  let fake: Fake | undefined;
  try {
    // A fresh fake process for each path: the fake's heap grows with what it holds, and a later path
    // on the same process would pay for the earlier paths' rows in its garbage collections.
    const freshFake = async (): Promise<Fake> => {
      await fake?.close().catch(() => undefined);
      fake = await startFake(kind, kind === 'bigquery' ? { token: 'good-token' } : undefined, datasets);
      return fake;
    };
    const bytes = await timed(`${kind} fill station`, () => fillWarehouseStation(station, warm + n));
    // Direct first, in this process as it is before any connector ran (the broker idle, its station
    // filled): the baseline never pays for what a connector left behind (threads, heap, timers).
    await freshFake();
    // The direct table is made by the plugin itself (its open() creates the table), outside the timing.
    await timed(`${kind} create direct table`, () => openPlugin(kind, sinkConfig(fake!, kind === 'snowflake' ? 'DIRECT' : 'direct')));
    const d = await timed(`${kind} direct`, () => direct(fake!, warm, n));
    row.baseline = rate(n, d.seconds, (bytes * n) / (warm + n));
    await freshFake();
    const t = await timed(`${kind} sink`, () =>
      timeSink(
        {
          name: `wh-${kind}`,
          plugin: kind,
          station,
          tasks: 1,
          config: sinkConfig(fake!, kind === 'snowflake' ? 'SINK' : 'sink'),
          batch: { maxMessages: WH_BATCH, maxBytes: 64 * 1024 * 1024, maxLatencyMs: 200 },
        },
        180_000,
        warm,
      ),
    );
    row.withStart = rate(warm + n, t.seconds, bytes);
    row.junction = rate(t.afterFirst, t.afterFirstSeconds, (bytes * t.afterFirst) / (warm + n));
    row.firstAckSeconds = +t.firstAckSeconds.toFixed(2);
    row.ratio = ratioOf(row.junction, row.baseline);
    row.targets.push({ target: '>= 0.8 of direct', value: row.ratio ?? 0, met: (row.ratio ?? 0) >= 0.8 });
    row.note = `station (1 partition, ${warm} + ${n} rows of {n, text} + header, filled beforehand) -> ${kind} sink connector (1 task, batches of ${WH_BATCH}) -> the fake, timed once the first ${warm} were acknowledged; direct: ${d.note}; each path into its own table of its own fake process, after ${warm} warm-up rows of its own`;
    // The same plugin called directly (plugin.open + write of the same batches in this thread), into a third table.
    await freshFake();
    const p = await timed(`${kind} plugin direct`, () =>
      pluginDirect(kind, sinkConfig(fake!, kind === 'snowflake' ? 'PLUGIN' : 'plugin'), station, warm, n),
    );
    const pr = rate(n, p, (bytes * n) / (warm + n));
    const pratio = ratioOf(pr, row.baseline);
    extra.push({
      row: `${kind} sink, plugin direct`,
      via: 'plugin',
      junction: pr,
      baselineName,
      baseline: row.baseline,
      ratio: pratio,
      targets: [{ target: '>= 0.8 of direct', value: pratio ?? 0, met: (pratio ?? 0) >= 0.8 }],
      note: `plugin driven directly (plugin.open, then write() of ${WH_BATCH}-row batches one after another in one thread, as the connector's test/bench.manual.ts; no station, no runtime)`,
    });
  } catch (err) {
    row.error = err instanceof Error ? err.message : String(err);
    log(`${kind} row failed: ${row.error}`);
  } finally {
    await fake?.close().catch(() => undefined);
    await store.deleteStation(station).catch(() => undefined);
  }
  rows.push(row, ...extra);
}

async function loadPlugin(kind: string) {
  const { default: plugin } = (await import(`@junction/connector-${kind}`)) as {
    default: {
      config: { parse(c: unknown): unknown };
      open(
        c: unknown,
        ctx: unknown,
      ): Promise<{ write(b: unknown, o: { signal: AbortSignal }): Promise<{ status: string }[]>; close(): Promise<void> }>;
    };
  };
  const { fakeContext } = (await import('@junction/sdk-connector/testing')) as { fakeContext(): unknown };
  return { plugin, fakeContext };
}

/** plugin.open + write of the warehouse rows in batches of WH_BATCH (timed: the writes), then close. */
async function pluginDirect(kind: string, config: Record<string, unknown>, station: string, warm: number, n: number): Promise<number> {
  const { plugin, fakeContext } = await loadPlugin(kind);
  const s = await plugin.open(plugin.config.parse(config), fakeContext());
  const signal = new AbortController().signal;
  const batches = [];
  const total = warm + n;
  for (let o = 0; o < total; o += WH_BATCH) {
    const messages = range(o, Math.min(total, o + WH_BATCH) - 1).map((x) => ({
      offset: x,
      timestamp: 1_700_000_000_000 + x,
      headers: { h: String(x) },
      value: enc.encode(JSON.stringify(whValue(x))),
    }));
    batches.push({
      station,
      stationId: `${station}-bench`,
      partition: 0,
      firstOffset: messages[0]!.offset,
      lastOffset: messages.at(-1)!.offset,
      messages,
    });
  }
  let t0 = performance.now();
  for (const [i, b] of batches.entries()) {
    if (i * WH_BATCH === warm) t0 = performance.now();
    const r = await s.write(b, { signal });
    const bad = r.find((x) => x.status !== 'ok');
    if (bad) throw new Error(`${kind} plugin direct: ${JSON.stringify(bad)}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  await s.close();
  return seconds;
}

/** Opens and closes the plugin once with this config (creates the table, as the sink does on open). */
async function openPlugin(kind: string, config: Record<string, unknown>): Promise<void> {
  const { plugin, fakeContext } = await loadPlugin(kind);
  const s = await plugin.open(plugin.config.parse(config), fakeContext());
  await s.close();
}

async function bigquery(): Promise<void> {
  const PROJECT = 'test-proj';
  const TOKEN = 'good-token';
  await benchWarehouse(
    'bigquery',
    (fake, table) => ({ projectId: PROJECT, dataset: 'ds', table, apiEndpoint: fake.url, accessToken: TOKEN, maxRetries: 0 }),
    [[PROJECT, 'ds']],
    async (fake, warm, n) => {
      const client = new BigQuery({
        projectId: PROJECT,
        apiEndpoint: fake.url,
        authClient: { getRequestHeaders: async () => new Headers({ authorization: `Bearer ${TOKEN}` }) } as never,
      });
      const table = client.dataset('ds').table('direct');
      let t0 = performance.now();
      for (let o = 0; o < warm + n; o += WH_BATCH) {
        if (o === warm) t0 = performance.now();
        const rowsOut = range(o, Math.min(warm + n, o + WH_BATCH) - 1).map((x) => ({
          insertId: `wh_bigquery/0/${x}`,
          json: {
            station: 'wh_bigquery',
            partition: 0,
            offset: x,
            timestamp: new Date(1_700_000_000_000 + x).toISOString(),
            key: null,
            headers: JSON.stringify({ h: String(x) }),
            value: JSON.stringify(whValue(x)),
          },
        }));
        const chunks: (typeof rowsOut)[] = [];
        for (let i = 0; i < rowsOut.length; i += 500) chunks.push(rowsOut.slice(i, i + 500));
        for (let i = 0; i < chunks.length; i += 4)
          await Promise.all(chunks.slice(i, i + 4).map((c) => table.insert(c, { raw: true, skipInvalidRows: true })));
      }
      return {
        seconds: (performance.now() - t0) / 1000,
        note: `@google-cloud/bigquery table.insert (insertAll, raw rows with insertId), 500 rows a request, 4 at once, ${WH_BATCH} rows a round`,
      };
    },
    'direct insertAll (@google-cloud/bigquery)',
  );
}

async function snowflakeRow(): Promise<void> {
  await benchWarehouse(
    'snowflake',
    (fake, table) => ({
      account: 'testacct',
      accessUrl: fake.url,
      username: 'junction',
      password: 'secret',
      warehouse: 'WH',
      database: 'DB',
      table,
    }),
    [],
    async (fake, warm, n) => {
      const conn = snowflake.createConnection({
        account: 'testacct',
        accessUrl: fake.url,
        username: 'junction',
        password: 'secret',
        database: 'DB',
        schema: 'PUBLIC',
        warehouse: 'WH',
        arrayBindingThreshold: 1_000_000,
      } as never);
      await conn.connectAsync(() => undefined);
      const sql =
        'INSERT INTO "DB"."PUBLIC"."DIRECT" ("STATION","PARTITION","OFFSET","TIMESTAMP","KEY","HEADERS","VALUE") SELECT VALUE[0]::VARCHAR, VALUE[1]::NUMBER(38,0), VALUE[2]::NUMBER(38,0), VALUE[3]::TIMESTAMP_NTZ, VALUE[4]::VARCHAR, VALUE[5], VALUE[6] FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))';
      let t0 = performance.now();
      for (let o = 0; o < warm + n; o += WH_BATCH) {
        if (o === warm) t0 = performance.now();
        const rowsOut = range(o, Math.min(warm + n, o + WH_BATCH) - 1).map((x) => [
          'wh_snowflake',
          0,
          x,
          new Date(1_700_000_000_000 + x).toISOString().slice(0, -1),
          null,
          { h: String(x) },
          whValue(x),
        ]);
        await new Promise((res, rej) =>
          conn.execute({ sqlText: sql, binds: [JSON.stringify(rowsOut)], complete: (e) => (e ? rej(e) : res(undefined)) }),
        );
      }
      const seconds = (performance.now() - t0) / 1000;
      await new Promise<void>((r) => conn.destroy(() => r()));
      return {
        seconds,
        note: `snowflake-sdk, one JSON-bind INSERT … SELECT FROM FLATTEN(PARSE_JSON(?)) per ${WH_BATCH} rows (the sink's statement, without its presence query / anti-join)`,
      };
    },
    'direct INSERT (snowflake-sdk)',
  );
}

async function fireboltRow(): Promise<void> {
  await benchWarehouse(
    'firebolt',
    (fake, table) => ({
      account: 'acct',
      clientId: 'junction-id',
      clientSecret: 'junction-secret',
      apiEndpoint: fake.url,
      database: 'db',
      engine: 'eng',
      table,
    }),
    [],
    async (fake, warm, n) => {
      const { PlainOrTlsHttpClient, silentLogger } = (await import(here('../../connectors/firebolt/dist/http.js').href)) as {
        PlainOrTlsHttpClient: new () => { destroy(): void };
        silentLogger: unknown;
      };
      const { textLit, timestampText } = (await import(here('../../connectors/firebolt/dist/rows.js').href)) as {
        textLit(v: unknown): string;
        timestampText(ms: number): string;
      };
      const cols = ['station', 'partition', 'offset', 'timestamp', 'key', 'headers', 'value', 'station_id'];
      const types = ['TEXT', 'INTEGER', 'BIGINT', 'TIMESTAMP', 'TEXT', 'TEXT', 'TEXT', 'TEXT'];
      const list = cols.map((c) => `"${c}"`).join(', ');
      const http = new PlainOrTlsHttpClient();
      const conn = await Firebolt({
        apiEndpoint: fake.url,
        dependencies: { httpClient: http as never, logger: silentLogger as never },
      }).connect({
        account: 'acct',
        auth: { client_id: 'junction-id', client_secret: 'junction-secret' },
        database: 'db',
        engineName: 'eng',
        useCache: false,
      } as never);
      let t0 = performance.now();
      for (let o = 0; o < warm + n; o += WH_BATCH) {
        if (o === warm) t0 = performance.now();
        const values = range(o, Math.min(warm + n, o + WH_BATCH) - 1).map(
          (x) =>
            `(${['wh_firebolt', 0, x, timestampText(1_700_000_000_000 + x), null, JSON.stringify({ h: String(x) }), JSON.stringify(whValue(x)), 'direct-id'].map(textLit).join(',')})`,
        );
        await conn.execute(
          `INSERT INTO "direct" (${list}) SELECT ${cols.map((c, i) => `v."${c}"::${types[i]}`).join(', ')} FROM (VALUES ${values.join(',')}) AS v (${list})`,
        );
      }
      const seconds = (performance.now() - t0) / 1000;
      http.destroy();
      return {
        seconds,
        note: `firebolt-sdk (with the connector's HTTP client), one INSERT … SELECT … FROM (VALUES …) per ${WH_BATCH} rows (the sink's statement, without its presence query / anti-join)`,
      };
    },
    'direct INSERT (firebolt-sdk)',
  );
}

try {
  if (parts.has('s3')) {
    log('sinks: S3 (s3rver)');
    try {
      await benchS3();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log(`S3 rows failed: ${message}`);
      rows.push({ row: 'S3 sink', via: 'runtime', baselineName: 'raw lib-storage upload', targets: [], note: '', error: message });
    }
  }
  if (parts.has('bigquery')) {
    log('sinks: BigQuery (fake)');
    await bigquery();
  }
  if (parts.has('snowflake')) {
    log('sinks: Snowflake (fake)');
    await snowflakeRow();
  }
  if (parts.has('firebolt')) {
    log('sinks: Firebolt (fake)');
    await fireboltRow();
  }
  const result: SinksResult = {
    rows,
    partSeconds,
    notes: [
      'sinks: one broker process (startServer: embedded store, fsync always; registry; connector runtime); each sink created through the connector runtime on a filled station and timed from resume until its group has no lag (everything written and acked)',
    ],
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
