/**
 * The connector row of `npm run bench`: datagen → station → file sink, 1 KiB messages, in a child
 * process that is a broker (`startServer`: the embedded store with its default durability, the
 * registry, the connector runtime — what `junction start` runs), driven through the runtime's API.
 *
 * Four phases, each timed on its own:
 * - source: datagen connectors (one per core, different seeds, `padTo: 1024`) fill a station;
 * - sink: the file sink (fsync on) drains that backlog — the target: ≥ 150k msgs/s; then a second
 *   file sink with one task per core (at least 2) drains the same backlog again;
 * - pipeline: both at once into a fresh station, until the sink caught up.
 * For each: messages/s, MB/s, and the share of time spent in plugin code in worker threads versus the
 * busy time of the broker's event loop (worker plugin time / (that + loop active time)).
 *
 * Prints one JSON line (ConnectorResult) on stdout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startServer } from '@junction/server';

export interface ConnectorPhase {
  phase: string;
  messages: number;
  seconds: number;
  /** Sink phases: the steady rate, once the first quarter of the backlog was acknowledged (the task is started, warm). */
  msgsPerSec: number;
  /** All the phase's messages / the phase's time, task start included. */
  withStartMsgsPerSec: number;
  mbPerSec: number;
  /** Plugin time in worker threads / (that + the broker loop's busy time), 0..1. */
  workerShare: number;
  loopBusyMs: number;
  workerMs: number;
}

export interface ConnectorResult {
  messageBytes: number;
  sources: number;
  sinkTasks: number;
  phases: ConnectorPhase[];
  notes: string[];
}

const config = JSON.parse(process.argv[2] ?? '{}') as { messages?: number; sinkTasks?: number };
const total = config.messages ?? 200_000;
const sinkTasks = config.sinkTasks ?? 1;
const sources = Math.max(1, cpus().length);
const dir = mkdtempSync(join(tmpdir(), 'junction-bench-connector-'));

const server = await startServer({
  dataDir: join(dir, 'data'),
  host: '127.0.0.1',
  port: 0,
  logLevel: 'error',
  env: {},
  watchConfig: false,
});
const { store, connect } = server;

async function until(cond: () => Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 20));
}

async function measure(phase: string, station: string, run: () => Promise<Steady | void>): Promise<ConnectorPhase> {
  const elu0 = performance.eventLoopUtilization();
  const w0 = connect.metrics.workerMs;
  const t0 = performance.now();
  const steady = await run();
  const end = performance.now();
  const seconds = (end - t0) / 1000;
  const elu = performance.eventLoopUtilization(elu0);
  const workerMs = connect.metrics.workerMs - w0;
  const st = await store.getStation(station);
  const withStart = Math.round(st.messages / seconds);
  const rateNow = steady ? Math.round(steady.messages / ((end - steady.at) / 1000)) : withStart;
  return {
    phase,
    messages: st.messages,
    seconds: +seconds.toFixed(2),
    msgsPerSec: rateNow,
    withStartMsgsPerSec: withStart,
    mbPerSec: +((rateNow * st.bytes) / Math.max(1, st.messages) / 1e6).toFixed(1),
    workerShare: +(workerMs / (workerMs + elu.active)).toFixed(2),
    loopBusyMs: Math.round(elu.active),
    workerMs: Math.round(workerMs),
  };
}

interface Steady {
  /** When the steady clock started, and the messages acknowledged after it. */
  at: number;
  messages: number;
}

/** Waits until the sink's group has no lag; the steady clock starts once a quarter of `backlog` is acknowledged. */
async function drain(station: string, connector: string, backlog: number): Promise<Steady> {
  let steady: Steady | undefined;
  await until(async () => {
    const { lag } = await store.getGroup(station, `connector.${connector}`);
    if (!steady && backlog - lag >= backlog / 4) steady = { at: performance.now(), messages: lag };
    return lag === 0;
  });
  return steady!;
}

const per = Math.ceil(total / sources);
const gen = (name: string, seed: number, station: string) => ({
  name,
  plugin: 'datagen',
  station,
  config: { shape: 'order', seed, padTo: 1024, batchSize: 1000, maxMessages: per },
});
const sink = (name: string, station: string) => ({
  name,
  plugin: 'file',
  station,
  tasks: sinkTasks,
  config: { dir: join(dir, 'out', name), fsync: true },
  batch: { maxMessages: 5000, maxBytes: 8 * 1024 * 1024, maxLatencyMs: 200 },
});

try {
  // dedupWindowMs 0: the sources' msgIds are unique anyway; the dedup index is not what is measured.
  await store.createStation('bench', { partitions: 3, dedupWindowMs: 0 });
  await store.createStation('pipe', { partitions: 3, dedupWindowMs: 0 });
  const phases: ConnectorPhase[] = [];
  phases.push(
    await measure(`source: datagen x${sources} -> station`, 'bench', async () => {
      for (let i = 0; i < sources; i++) await connect.create(gen(`gen-${i}`, i + 1, 'bench'));
      await until(async () => (await store.getStation('bench')).messages >= per * sources);
    }),
  );
  await connect.create({ ...sink('files', 'bench'), state: 'STOPPED' });
  phases.push(
    await measure('sink: station backlog -> file sink', 'bench', async () => {
      await connect.resume('files');
      return drain('bench', 'files', per * sources);
    }),
  );
  // The same backlog again through a second connector (its own group) with one task per core: the write
  // of one batch (a worker, its fsync) overlaps the next instead of queueing behind it.
  const wide = Math.max(2, sources);
  await connect.create({ ...sink('files-wide', 'bench'), tasks: wide, state: 'STOPPED' });
  phases.push(
    await measure(`sink: station backlog -> file sink, ${wide} tasks`, 'bench', async () => {
      await connect.resume('files-wide');
      return drain('bench', 'files-wide', per * sources);
    }),
  );
  phases.push(
    await measure('pipeline: datagen -> station -> file sink', 'pipe', async () => {
      await connect.create(sink('pipe-files', 'pipe'));
      for (let i = 0; i < sources; i++) await connect.create(gen(`pipe-gen-${i}`, 100 + i, 'pipe'));
      await until(
        async () =>
          (await store.getStation('pipe')).messages >= per * sources && (await store.getGroup('pipe', 'connector.pipe-files')).lag === 0,
      );
    }),
  );
  const result: ConnectorResult = {
    messageBytes: 1024,
    sources,
    sinkTasks,
    phases,
    notes: [
      `connector: one broker process (startServer: embedded store, fsync always; registry; connector runtime), ${per * sources} messages of >= 1 KiB (datagen padTo 1024); file sink with fsync, batches of 5000`,
      'sink rows: msgs/s = the steady rate, from when a quarter of the backlog was acknowledged to no lag; "incl. start" = the whole backlog / the time from resume (worker threads starting, plugin opening)',
    ],
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
