/**
 * The JetStream load generator, run as a child process (`node --stack-trace-limit=0`) by main.ts.
 * Argument: the JSON of `JetStreamRunnerConfig`. Prints one `SystemResult` JSON line on stdout; logs
 * go to stderr. Every stream it makes has a unique name and is deleted before it exits, also on error.
 *
 * Client: @nats-io/transport-node + @nats-io/jetstream 3.x (see README for why not `nats` 2.29).
 * Pipelining used, the best this client offers against the server on this machine (2.9): many
 * `js.publish` calls in flight (a window), a pull consumer's `consume()` with large pulls and a
 * callback (no async iterator), and a plain `ack()` per message. Batch publish / fast ingest need a
 * 2.12+ server, so they are not used.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { cpuMeter } from './cpu.js';
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

export interface JetStreamRunnerConfig {
  plan: Plan;
  servers: string;
  /** nats-server's pid, for its CPU per message (when main found exactly one); the cluster mode gives every node's. */
  serverPid?: number | readonly number[] | undefined;
  /** Replicas of the streams (default 1; the cluster mode: 3). */
  replicas?: number | undefined;
  /**
   * How to publish and consume. `window` (default): `jsWindow` js.publish in flight, `consume()` pulling
   * `jsPull`. `batched` (the cluster mode): Junction's batching — `produceConcurrency` loops, each
   * publishing `batch` messages pipelined and waiting for all their acks; `consumeConcurrency` loops,
   * each a pull (`fetch`) of `batch`, `ack()` per message and the last of the pull confirmed (`ackAck`).
   */
  batching?: 'window' | 'batched' | undefined;
}

interface Ctx {
  plan: Plan;
  pubConn: NatsConnection;
  subConn: NatsConnection;
  js: JetStreamClient;
  jsSub: JetStreamClient;
  jsm: JetStreamManager;
  streams: Set<string>;
  prefix: string;
  serverPid: number | readonly number[] | undefined;
  replicas: number;
  batched: boolean;
}

const DURABLE = 'bench';

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: jetstream-runner.js <config json>');
  const cfg = JSON.parse(arg) as JetStreamRunnerConfig;
  // noAsyncTraces: the client would otherwise build an Error per request to keep async stack traces.
  const opts = { servers: cfg.servers, noAsyncTraces: true, name: 'junction-bench' };
  const pubConn = await connect(opts);
  const subConn = await connect(opts);
  const jsm = await jetstreamManager(pubConn);
  const ctx: Ctx = {
    plan: cfg.plan,
    pubConn,
    subConn,
    js: jetstream(pubConn),
    jsSub: jetstream(subConn),
    jsm,
    streams: new Set(),
    prefix: `junction_bench_${process.pid}_${Date.now().toString(36)}`,
    serverPid: cfg.serverPid,
    replicas: cfg.replicas ?? 1,
    batched: cfg.batching === 'batched',
  };
  const info = pubConn.info;
  const p = cfg.plan;
  const result: SystemResult = {
    notes: [
      `nats-server ${info?.version ?? '?'} at ${cfg.servers}, file storage, ${ctx.replicas} replica(s), server defaults (its file store fsyncs on its own interval, not per publish)`,
      `client @nats-io/jetstream 3.x in a child process: node --stack-trace-limit=0, noAsyncTraces`,
      ctx.batched
        ? `publish: ${p.produceConcurrency} loops, each ${p.batch} js.publish pipelined then waiting for all their acks; consume: durable pull consumer, ${p.consumeConcurrency} loops of fetch(${p.batch}), ack() per message, the last of each pull confirmed (ackAck)`
        : `publish: ${p.jsWindow} js.publish in flight; consume: durable pull consumer, consume() pulling ${p.jsPull}, ack() per message`,
    ],
    sizes: {},
  };
  // Interrupted (Ctrl-C, or main stopping): still delete the streams made so far.
  const interrupted = () => {
    void Promise.allSettled([...ctx.streams].map((s) => jsm.streams.delete(s))).then(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    for (const size of cfg.plan.sizes) {
      result.sizes[`${size}`] = await runSize(ctx, size);
    }
  } finally {
    for (const s of ctx.streams) await jsm.streams.delete(s).catch((err: unknown) => log(`could not delete stream ${s}: ${String(err)}`));
    await subConn.drain().catch(() => undefined);
    await pubConn.drain().catch(() => undefined);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function runSize(ctx: Ctx, size: number): Promise<SizeResult> {
  const out: SizeResult = {};
  const want = new Set(ctx.plan.scenarios);
  const value = payload(size);
  const count = ctx.plan.produceCount[size as keyof Plan['produceCount']];
  const e2eCount = ctx.plan.endToEndCount[size as keyof Plan['endToEndCount']];

  if (want.has('produce') || want.has('consume')) {
    const backlog = await makeStream(ctx, `${size}_backlog`);
    log(`jetstream ${size} B: publish ${count}`);
    out.produce = await publish(ctx, backlog, value, count);
    log(`jetstream ${size} B: publish ${fmtThroughput(out.produce)}`);
    if (want.has('consume')) {
      await makeConsumer(ctx, backlog);
      out.consume = await consume(ctx, backlog, { n: out.produce.messages }, size, Date.now(), () => false, ctx.plan.capMs);
      log(`jetstream ${size} B: consume ${fmtThroughput(out.consume)}`);
    }
    await deleteStream(ctx, backlog);
  }

  if (want.has('e2e')) {
    const e2eStream = await makeStream(ctx, `${size}_e2e`);
    await makeConsumer(ctx, e2eStream);
    log(`jetstream ${size} B: end to end ${e2eCount}`);
    out.endToEnd = await endToEndRun(ctx, e2eStream, value, e2eCount);
    log(`jetstream ${size} B: end to end ${fmtThroughput(out.endToEnd)}`);
    await deleteStream(ctx, e2eStream);
  }

  if (want.has('latency')) {
    const latStream = await makeStream(ctx, `${size}_latency`);
    const lat = await publishLatency(ctx, latStream, value);
    out.latency = lat;
    log(`jetstream ${size} B: publish latency p50 ${lat.p50Ms} ms p99 ${lat.p99Ms} ms max ${lat.maxMs} ms`);
    await deleteStream(ctx, latStream);
  }
  return out;
}

async function makeStream(ctx: Ctx, suffix: string): Promise<string> {
  const name = `${ctx.prefix}_${suffix}`;
  await ctx.jsm.streams.add({
    name,
    subjects: [`${name}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: ctx.replicas,
  });
  ctx.streams.add(name);
  return name;
}

async function deleteStream(ctx: Ctx, name: string): Promise<void> {
  await ctx.jsm.streams.delete(name);
  ctx.streams.delete(name);
}

async function makeConsumer(ctx: Ctx, stream: string): Promise<void> {
  await ctx.jsm.consumers.add(stream, {
    durable_name: DURABLE,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: -1,
    ack_wait: 60_000_000_000,
  });
}

/**
 * Publishes `count` messages keeping `jsWindow` publishes in flight; stops issuing at the time cap (or
 * at `stop()`), then waits for what is in flight. Resolves with the number of acknowledged publishes.
 */
function pump(ctx: Ctx, subject: string, value: Uint8Array, count: number, deadline: number): Promise<number> {
  const window = ctx.plan.jsWindow;
  return new Promise((resolve, reject) => {
    let sent = 0;
    let acked = 0;
    let failed: unknown;
    const done = () => {
      acked++;
      if (sent === acked && (sent >= count || performance.now() >= deadline)) resolve(acked);
      else fill();
    };
    const fail = (err: unknown) => {
      failed ??= err;
      reject(failed as Error);
    };
    const fill = () => {
      if (failed !== undefined) return;
      // Checking the clock once per refill keeps the cap cheap.
      if (performance.now() >= deadline) {
        count = sent;
        return;
      }
      while (sent < count && sent - acked < window) {
        sent++;
        ctx.js.publish(subject, value).then(done, fail);
      }
    };
    fill();
    if (count === 0) resolve(0);
  });
}

/**
 * Junction's batching on the JetStream side: `produceConcurrency` loops, each publishing `batch`
 * messages at once (pipelined on the connection) and waiting for all their acks before the next batch —
 * what the Junction broker's JetStream store does for one produce request. Stops issuing at the cap.
 */
async function pumpBatched(ctx: Ctx, subject: string, value: Uint8Array, count: number, deadline: number): Promise<number> {
  const { batch, produceConcurrency } = ctx.plan;
  let issued = 0;
  let acked = 0;
  const loop = async () => {
    while (issued < count && performance.now() < deadline) {
      const n = Math.min(batch, count - issued);
      issued += n;
      const pending: Promise<unknown>[] = new Array(n);
      for (let i = 0; i < n; i++) pending[i] = ctx.js.publish(subject, value);
      await Promise.all(pending);
      acked += n;
    }
  };
  await Promise.all(Array.from({ length: produceConcurrency }, loop));
  return acked;
}

async function publish(ctx: Ctx, stream: string, value: Uint8Array, count: number): Promise<Throughput> {
  const cpu = cpuMeter(ctx.serverPid);
  const t0 = performance.now();
  const deadline = t0 + ctx.plan.capMs;
  const acked = await (ctx.batched ? pumpBatched : pump)(ctx, `${stream}.a`, value, count, deadline);
  const seconds = (performance.now() - t0) / 1000;
  return { ...throughput(acked, seconds, value.length, acked < count), cpu: cpu(acked) };
}

async function endToEndRun(ctx: Ctx, stream: string, value: Uint8Array, count: number): Promise<Throughput> {
  const start = Date.now();
  const deadline = performance.now() + ctx.plan.capMs;
  let producing = true;
  // The consumer's target is what the producer got acknowledged: known only when it stops.
  const target = { n: count };
  const consumed = consume(ctx, stream, target, value.length, start, () => producing, 2 * ctx.plan.capMs);
  const published = await (ctx.batched ? pumpBatched : pump)(ctx, `${stream}.a`, value, count, deadline);
  target.n = published;
  producing = false;
  const t = await consumed;
  return { ...t, capped: t.capped || published < count };
}

/**
 * Reads with the durable pull consumer, acking each message, until `target.n` messages are in and the
 * producer has stopped (or the cap passed); done when the last ack has been flushed to the server. The
 * target may shrink when the producer stops at its cap. `start` is a Date.now() that end to end shares.
 */
async function consume(
  ctx: Ctx,
  stream: string,
  target: { n: number },
  size: number,
  start: number,
  producing: () => boolean,
  capMs: number,
): Promise<Throughput> {
  if (ctx.batched) return consumeBatched(ctx, stream, target, size, start, producing, capMs);
  const cpu = cpuMeter(ctx.serverPid);
  const consumer = await ctx.jsSub.consumers.get(stream, DURABLE);
  let got = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const messages = await consumer.consume({
    max_messages: ctx.plan.jsPull,
    callback: (m: JsMsg) => {
      m.ack();
      got++;
      if (got >= target.n && !producing()) finish();
    },
  });
  const timer = setInterval(() => {
    if (!producing() && (got >= target.n || Date.now() - start > capMs)) finish();
  }, 20);
  await finished;
  clearInterval(timer);
  await ctx.subConn.flush();
  const seconds = (Date.now() - start) / 1000;
  await messages.close();
  return { ...throughput(got, seconds, size, got < target.n), cpu: cpu(got) };
}

/**
 * Junction's consume batching on the JetStream side: `consumeConcurrency` loops, each pulling `batch`
 * messages (`fetch`, 1 s expiry), `ack()` per message and the last of each pull confirmed with `ackAck()`
 * (a consumer applies acks in order, so that confirms the pull's acks — what the broker's store does
 * per ack request). Counted when confirmed. Done as in `consume`.
 */
async function consumeBatched(
  ctx: Ctx,
  stream: string,
  target: { n: number },
  size: number,
  start: number,
  producing: () => boolean,
  capMs: number,
): Promise<Throughput> {
  const cpu = cpuMeter(ctx.serverPid);
  const consumer = await ctx.jsSub.consumers.get(stream, DURABLE);
  let acked = 0;
  let received = 0;
  let end = 0;
  const done = () => !producing() && (acked >= target.n || Date.now() - start > capMs);
  const open = new Set<{ stop(): void }>();
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const check = () => {
    if (done()) {
      end ||= Date.now();
      finish();
    }
  };
  const timer = setInterval(check, 20);
  const loop = async () => {
    while (!done()) {
      const iter = await consumer.fetch({ max_messages: ctx.plan.batch, expires: 1000 });
      open.add(iter);
      let inPull = 0;
      let unconfirmed = 0;
      let last: JsMsg | undefined;
      for await (const m of iter) {
        received++;
        inPull++;
        // The last message of a full pull, or the one that completes the target: confirm it (and so the ones before).
        if (inPull === ctx.plan.batch || (received >= target.n && !producing())) {
          last = undefined;
          const n = unconfirmed + 1;
          unconfirmed = 0;
          await m.ackAck();
          acked += n;
          check();
          if (done()) break;
        } else {
          m.ack();
          unconfirmed++;
          last = m;
        }
      }
      open.delete(iter);
      if (last !== undefined && unconfirmed > 0) {
        // The pull expired short of `batch`: confirm what it acked.
        await ctx.subConn.flush();
        acked += unconfirmed;
        check();
      }
    }
  };
  const loops = Promise.all(Array.from({ length: ctx.plan.consumeConcurrency }, loop));
  await Promise.race([finished, loops]);
  end ||= Date.now();
  clearInterval(timer);
  const seconds = (end - start) / 1000;
  const t = { ...throughput(acked, seconds, size, acked < target.n), cpu: cpu(acked) };
  for (const it of open) it.stop();
  await loops.catch(() => undefined);
  return t;
}

function publishLatency(ctx: Ctx, stream: string, value: Uint8Array): Promise<Latency> {
  const subject = `${stream}.a`;
  return sampleLatency(ctx.plan.latencySamples, () => ctx.js.publish(subject, value));
}

runRunner('jetstream', main);
