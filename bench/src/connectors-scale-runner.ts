/**
 * The connector scale rows of `npm run bench` (`--connectors-scale` runs only them): N file-sink
 * connectors on N stations (1 partition each) in one broker process started as an operator does
 * (`junction start`, its own process, embedded store, default durability), driven over HTTP only.
 *
 * Measured from /proc/<pid>/status and /proc/<pid>/stat of the broker:
 * - before any connector: RSS and threads (the empty broker);
 * - idle with N connectors running: RSS, threads, and the CPU the process spent over 10 s (share of one core);
 * - fed: `perStation` messages of 1 KiB produced to every station at once (binary batches), timed until every
 *   connector wrote them all (the sum of `junction_connector_messages_total` on /metrics): the aggregate
 *   rate, and that rate / N beside the single-connector row of the connector table;
 * - the peak RSS (VmHWM) over the whole run.
 *
 * Prints one JSON line (ConnectorScaleResult) on stdout.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeProduceBatch, BATCH_CONTENT_TYPE } from '@junction/protocol';
import { brokerLogFile, startBroker } from './broker.js';
import { Http } from './http.js';

export interface ConnectorScaleResult {
  connectors: number;
  perStation: number;
  baseline: { rssMb: number; threads: number };
  /** Idle with every connector created and nothing written yet (no sink opened). */
  idleNew: { rssMb: number; threads: number; cpuPctOfCore: number; seconds: number };
  /** Idle after every connector wrote (sinks open, shared threads started): the cost of what exists. */
  idle: { rssMb: number; threads: number; cpuPctOfCore: number; seconds: number };
  fed: { messages: number; seconds: number; msgsPerSec: number; perConnectorMsgsPerSec: number };
  afterRssMb: number;
  peakRssMb: number;
  /** Per connector task: (idle after writing - baseline) / N. */
  perTask: { rssMb: number; threads: number; cpuPctOfCore: number };
  createSeconds: number;
  /** Sources keep a worker thread per task: `sources` datagen connectors at 1 msg/s each, their cost per task. */
  sources?: { count: number; rssMbPerTask: number; threadsPerTask: number; cpuPctOfCore: number };
  notes: string[];
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as { connectors?: number; perStation?: number; sources?: number; logLevel?: string };
const N = cfg.connectors ?? 1000;
const perStation = cfg.perStation ?? 1000;
const dir = mkdtempSync(join(tmpdir(), 'junction-bench-scale-'));

function status(pid: number): { rssMb: number; hwmMb: number; threads: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { rssMb: Math.round(kb('VmRSS') / 1024), hwmMb: Math.round(kb('VmHWM') / 1024), threads: kb('Threads') };
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** RSS, threads (the most seen) and CPU (share of one core) of the process over 10 s. */
async function idleWindow(pid: number): Promise<{ rssMb: number; threads: number; cpuPctOfCore: number; seconds: number }> {
  const s0 = status(pid);
  const c0 = cpuTicks(pid);
  const w0 = performance.now();
  await sleep(10_000);
  const seconds = (performance.now() - w0) / 1000;
  const cpu = ((cpuTicks(pid) - c0) / 100 / seconds) * 100;
  const s1 = status(pid);
  return {
    rssMb: Math.max(s0.rssMb, s1.rssMb),
    threads: Math.max(s0.threads, s1.threads),
    cpuPctOfCore: +cpu.toFixed(2),
    seconds: +seconds.toFixed(1),
  };
}

async function written(http: Http): Promise<number> {
  const res = await http.send('GET', '/metrics');
  let sum = 0;
  for (const line of res.body.toString('utf8').split('\n')) {
    if (line.startsWith('junction_connector_messages_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

mkdirSync(join(dir, 'data'));
const broker = await startBroker({ dataDir: join(dir, 'data'), logLevel: cfg.logLevel ?? 'warn', logFile: brokerLogFile(dir) });
const http = new Http(broker.url);
try {
  await sleep(1000);
  const baseline = status(broker.pid);
  const ids = Array.from({ length: N }, (_, i) => String(i).padStart(5, '0'));
  const t0 = performance.now();
  await pool(ids, 8, async (i) => {
    await http.json('POST', '/v1/stations', { name: `s-${i}`, partitions: 1, dedupWindowMs: 0 });
    await http.json('POST', '/v1/connectors', {
      name: `c-${i}`,
      plugin: 'file',
      station: `s-${i}`,
      config: { dir: join(dir, 'out', i) },
      batch: { maxMessages: 1000, maxLatencyMs: 100 },
    });
  });
  const createSeconds = (performance.now() - t0) / 1000;
  // Let start-up work (threads starting, first long polls) settle before the idle window.
  await sleep(5000);
  const idleNew = await idleWindow(broker.pid);

  // Feed every station at once: one binary batch of perStation × 1 KiB per station, 8 requests in flight.
  const value = new Uint8Array(1024).map((_, i) => 97 + (i % 26));
  const body = encodeProduceBatch(Array.from({ length: perStation }, () => ({ value })));
  const before = await written(http);
  const f0 = performance.now();
  await pool(ids, 8, async (i) => {
    const res = await http.send('POST', `/v1/stations/s-${i}/messages`, body, { 'content-type': BATCH_CONTENT_TYPE });
    if (res.status !== 200) throw new Error(`produce to s-${i}: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 300)}`);
  });
  const total = N * perStation;
  const deadline = Date.now() + 600_000;
  while ((await written(http)) - before < total) {
    if (Date.now() > deadline) throw new Error('the connectors did not write everything within 10 min');
    await sleep(200);
  }
  const fedSeconds = (performance.now() - f0) / 1000;
  const msgsPerSec = Math.round(total / fedSeconds);
  await sleep(5000);
  const idle = await idleWindow(broker.pid);
  const after = status(broker.pid);
  // Sources: a worker thread per task whatever the plugin (see core/connect's README); measured beside.
  let sources: ConnectorScaleResult['sources'];
  const S = cfg.sources ?? 20;
  if (S > 0) {
    await http.json('POST', '/v1/stations', { name: 'gen', partitions: 1 });
    const before = status(broker.pid);
    for (let i = 0; i < S; i++)
      await http.json('POST', '/v1/connectors', {
        name: `gen-${i}`,
        plugin: 'datagen',
        station: 'gen',
        config: { seed: i + 1, ratePerSec: 1 },
      });
    await sleep(5000);
    const w = await idleWindow(broker.pid);
    sources = {
      count: S,
      rssMbPerTask: +((w.rssMb - before.rssMb) / S).toFixed(1),
      threadsPerTask: +((w.threads - before.threads) / S).toFixed(2),
      cpuPctOfCore: w.cpuPctOfCore,
    };
  }
  const result: ConnectorScaleResult = {
    connectors: N,
    perStation,
    baseline: { rssMb: baseline.rssMb, threads: baseline.threads },
    idleNew,
    idle,
    fed: { messages: total, seconds: +fedSeconds.toFixed(2), msgsPerSec, perConnectorMsgsPerSec: Math.round(msgsPerSec / N) },
    afterRssMb: after.rssMb,
    peakRssMb: after.hwmMb,
    perTask: {
      rssMb: +((idle.rssMb - baseline.rssMb) / N).toFixed(2),
      threads: +((idle.threads - baseline.threads) / N).toFixed(3),
      cpuPctOfCore: +(idle.cpuPctOfCore / N).toFixed(4),
    },
    createSeconds: +createSeconds.toFixed(1),
    ...(sources && { sources }),
    notes: [
      `${N} stations of 1 partition, one file sink each (1 task, fsync on, batches of 1000, maxLatencyMs 100); broker: ${broker.command}`,
      `idle: CPU of the broker process over ${idle.seconds} s with every connector running and nothing to write: once 5 s after the last was created (none has written yet), once 5 s after they all wrote (sinks open)`,
      `fed: ${perStation} x 1 KiB produced to every station (binary batches, 8 requests in flight), timed until the connectors wrote all ${total}`,
    ],
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  http.close();
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
}
