/**
 * The Junction load generator, run as a child process (`node --stack-trace-limit=0`, like the
 * JetStream one) by main.ts against a broker that runs in a third process. Argument: the JSON of
 * `JunctionRunnerConfig`. Prints one `SystemResult` JSON line on stdout; logs go to stderr. Every
 * station it makes is deleted before it exits.
 *
 * Produce: `produceConcurrency` requests in flight, each a binary batch (`application/vnd.junction.batch`)
 * of `batch` messages. Consume: `consumeConcurrency` loops, each fetching `batch` messages as a binary
 * batch and acking them by deliveryId, with the ack of one batch overlapping the fetch of the next.
 */
import {
  fmtThroughput,
  latency,
  log,
  payload,
  runRunner,
  sampleLatency,
  throughput,
  type Latency,
  type Plan,
  type SizeResult,
  type SystemResult,
  type Throughput,
} from './plan.js';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BATCH_CONTENT_TYPE, encodeProduceBatch } from '@junction/protocol';
import { cpuMeter } from './cpu.js';
import { startEchoServer } from './echo-process.js';
import { Http } from './http.js';
import { makeDriver, type Driver, type Transport } from './junction-driver.js';

export interface JunctionRunnerConfig {
  plan: Plan;
  url: string;
  transport: Transport;
  /** The broker's pid, for its CPU per message (the cluster mode: the broker's and the nats-server nodes'). */
  serverPid?: number | readonly number[] | undefined;
  /** What the stations are stored in, for the notes (default: the embedded store). */
  storeNote?: string | undefined;
  /** A token for a broker with auth on. */
  token?: string | undefined;
}

const GROUP = 'bench';
/** Long-poll of a fetch that finds nothing (end to end: the consumer waits for the producer). */
const FETCH_WAIT_MS = 100;

interface Ctx {
  plan: Plan;
  driver: Driver;
  stations: Set<string>;
  prefix: string;
  /** Notes a scenario adds to the system's notes (the disk's own fdatasync of the latency row). */
  notes: string[];
  serverPid: number | readonly number[] | undefined;
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: junction-runner.js <config json>');
  const cfg = JSON.parse(arg) as JunctionRunnerConfig;
  const driver = await makeDriver(cfg.transport, cfg.url, cfg.token);
  const ctx: Ctx = {
    plan: cfg.plan,
    driver,
    stations: new Set(),
    prefix: `bench_${process.pid}_${Date.now().toString(36)}`,
    notes: [],
    serverPid: cfg.serverPid,
  };
  const p = cfg.plan;
  const result: SystemResult = {
    notes: [
      `stations: ${cfg.storeNote ?? 'embedded store'}, ${p.partitions} partition(s), file storage`,
      `load: ${driver.describe} in a child process: node --stack-trace-limit=0`,
      `produce: ${p.produceConcurrency} requests in flight of ${p.batch} messages; consume: ${p.consumeConcurrency} fetch loops of ${p.batch}, ack overlapping the next fetch`,
    ],
    sizes: {},
  };
  try {
    for (const size of p.sizes) result.sizes[`${size}`] = await runSize(ctx, size);
  } finally {
    for (const s of ctx.stations)
      await driver.deleteStation(s).catch((err: unknown) => log(`could not delete station ${s}: ${String(err)}`));
    await driver.close();
  }
  result.notes.push(...ctx.notes);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function runSize(ctx: Ctx, size: number): Promise<SizeResult> {
  const out: SizeResult = {};
  const want = new Set(ctx.plan.scenarios);
  const value = payload(size);
  ctx.driver.setValue(value);
  const count = ctx.plan.produceCount[size as keyof Plan['produceCount']];
  const e2eCount = ctx.plan.endToEndCount[size as keyof Plan['endToEndCount']];

  if (want.has('produce') || want.has('consume')) {
    const backlog = await makeStation(ctx, `${size}_backlog`);
    log(`junction ${size} B: produce ${count}`);
    const cpu = cpuMeter(ctx.serverPid);
    const t0 = performance.now();
    const stored = await produce(ctx, backlog, count, t0 + ctx.plan.capMs);
    out.produce = { ...throughput(stored, (performance.now() - t0) / 1000, size, stored < count), cpu: cpu(stored) };
    log(`junction ${size} B: produce ${fmtThroughput(out.produce)}`);
    if (want.has('consume')) {
      await ctx.driver.createGroup(backlog, GROUP);
      out.consume = await consume(ctx, backlog, { n: stored }, size, performance.now(), () => false, ctx.plan.capMs);
      log(`junction ${size} B: consume ${fmtThroughput(out.consume)}`);
    }
    await deleteStation(ctx, backlog);
  }

  if (want.has('e2e')) {
    const e2eStation = await makeStation(ctx, `${size}_e2e`);
    await ctx.driver.createGroup(e2eStation, GROUP);
    log(`junction ${size} B: end to end ${e2eCount}`);
    out.endToEnd = await endToEndRun(ctx, e2eStation, size, e2eCount);
    log(`junction ${size} B: end to end ${fmtThroughput(out.endToEnd)}`);
    await deleteStation(ctx, e2eStation);
  }

  if (want.has('latency')) {
    const latStation = await makeStation(ctx, `${size}_latency`);
    const lat = await produceLatency(ctx, latStation);
    out.latency = lat;
    log(`junction ${size} B: produce latency p50 ${lat.p50Ms} ms p99 ${lat.p99Ms} ms max ${lat.maxMs} ms`);
    await deleteStation(ctx, latStation);
    const echo = await echoLatency(ctx.plan.latencySamples, value);
    out.echoLatency = echo;
    log(`bare node:http echo ${size} B: round trip p50 ${echo.p50Ms} ms p99 ${echo.p99Ms} ms max ${echo.maxMs} ms`);
    // The least a durable acknowledgement costs here: the same server appending the body and fdatasyncing it
    // before the answer (fsync always is the broker's default).
    const durableDir = await fsp.mkdtemp(join(tmpdir(), 'junction-bench-durable-echo-'));
    try {
      const durable = await echoLatency(ctx.plan.latencySamples, value, durableDir);
      out.durableEchoLatency = durable;
      log(`bare node:http + fdatasync ${size} B: round trip p50 ${durable.p50Ms} ms p99 ${durable.p99Ms} ms max ${durable.maxMs} ms`);
    } finally {
      await fsp.rm(durableDir, { recursive: true, force: true });
    }
    // What fsync always costs on its own: the broker's produce answer waits for one of these.
    const sync = await fdatasyncLatency(ctx.plan.latencySamples, size);
    const note = `disk (${tmpdir()}): a bare ${size} B append + fdatasync, timed ${sync.samples}× after the latency rows: p50 ${sync.p50Ms} ms p99 ${sync.p99Ms} ms max ${sync.maxMs} ms (a produce under fsync always waits for one)`;
    ctx.notes.push(note);
    log(note);
  }
  return out;
}

async function makeStation(ctx: Ctx, suffix: string): Promise<string> {
  const name = `${ctx.prefix}_${suffix}`;
  await ctx.driver.createStation(name, ctx.plan.partitions);
  ctx.stations.add(name);
  return name;
}

async function deleteStation(ctx: Ctx, name: string): Promise<void> {
  await ctx.driver.deleteStation(name);
  ctx.stations.delete(name);
}

/** Produces up to `count` messages with produceConcurrency requests in flight; stops issuing at `deadline`. Resolves with how many were stored. */
async function produce(ctx: Ctx, station: string, count: number, deadline: number): Promise<number> {
  const { batch, produceConcurrency } = ctx.plan;
  let issued = 0;
  let stored = 0;
  const worker = async () => {
    while (issued < count && performance.now() < deadline) {
      const n = Math.min(batch, count - issued);
      issued += n;
      // Not `stored += await …`: that reads `stored` before the await and loses the other workers' counts.
      const ok = await ctx.driver.produce(station, n);
      stored += ok;
    }
  };
  await Promise.all(Array.from({ length: produceConcurrency }, worker));
  return stored;
}

/**
 * Fetches and acks until `target.n` messages are acked and the producer has stopped, or the cap has
 * passed since the producer stopped (measured from `start`, a performance.now()).
 */
async function consume(
  ctx: Ctx,
  station: string,
  target: { n: number },
  size: number,
  start: number,
  producing: () => boolean,
  capMs: number,
): Promise<Throughput> {
  const cpu = cpuMeter(ctx.serverPid);
  let acked = 0;
  const done = () => !producing() && (acked >= target.n || performance.now() - start > capMs);
  const loop = async () => {
    let pendingAck: Promise<void> | undefined;
    while (!done()) {
      const fetched = await ctx.driver.fetch(station, GROUP, ctx.plan.batch, FETCH_WAIT_MS);
      if (fetched.count === 0) continue;
      // One ack in flight per loop: it overlaps the next fetch, and the loop never runs ahead of it by more.
      await pendingAck;
      const ack = fetched.ack().then((n) => {
        acked += n;
      });
      // A failed ack fails the scenario where it is awaited (next turn or at the end), not earlier as an unhandled rejection.
      ack.catch(() => undefined);
      pendingAck = ack;
    }
    await pendingAck;
  };
  await Promise.all(Array.from({ length: ctx.plan.consumeConcurrency }, loop));
  const seconds = (performance.now() - start) / 1000;
  return { ...throughput(acked, seconds, size, acked < target.n), cpu: cpu(acked) };
}

async function endToEndRun(ctx: Ctx, station: string, size: number, count: number): Promise<Throughput> {
  const start = performance.now();
  let producing = true;
  const target = { n: count };
  const consumed = consume(ctx, station, target, size, start, () => producing, 2 * ctx.plan.capMs);
  const stored = await produce(ctx, station, count, start + ctx.plan.capMs);
  target.n = stored;
  producing = false;
  const t = await consumed;
  return { ...t, capped: t.capped || stored < count };
}

function produceLatency(ctx: Ctx, station: string): Promise<Latency> {
  return sampleLatency(ctx.plan.latencySamples, () => ctx.driver.produce(station, 1));
}

/**
 * The same sequential requests (the same one-message binary body, keep-alive node:http) against a bare
 * node:http server in a process of its own (`echo-server.js`): what HTTP on this machine costs, measured
 * right after the broker's row, for the target `p99 <= max(2 ms, 1.5 × echo p99)`.
 */
/** Times `samples` appends of `bytes` bytes each followed by fdatasync, in a file of the temp dir (the broker's disk here). */
async function fdatasyncLatency(samples: number, bytes: number): Promise<Latency> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'junction-bench-fsync-'));
  const handle = await fsp.open(join(dir, 'probe'), 'w');
  try {
    const buf = Buffer.alloc(bytes, 7);
    const ms: number[] = [];
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      await handle.write(buf, 0, buf.length, i * buf.length);
      await handle.datasync();
      ms.push(performance.now() - t0);
    }
    return latency(ms);
  } finally {
    await handle.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function echoLatency(samples: number, value: Uint8Array, durableDir?: string): Promise<Latency> {
  const { child, port } = await startEchoServer(durableDir);
  try {
    const http = new Http(`http://127.0.0.1:${port}`);
    const body = encodeProduceBatch([{ value }]);
    try {
      return await sampleLatency(samples, async () => {
        const res = await http.send('POST', '/v1/stations/echo/messages', body, { 'content-type': BATCH_CONTENT_TYPE });
        if (res.status !== 200) throw new Error(`echo: HTTP ${res.status}`);
        JSON.parse(res.body.toString('utf8'));
      });
    } finally {
      http.close();
    }
  } finally {
    child.kill('SIGTERM');
  }
}

runRunner('junction', main);
