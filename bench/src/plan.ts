/**
 * What one run measures: message sizes, counts and time caps, and the result shapes that the runner
 * child processes print and the main process reads. Both systems get the same plan.
 */

import type { CpuPerMessage } from './cpu.js';

/** Message sizes the bench knows. */
export const SIZES = [1024, 100] as const;
export type Size = (typeof SIZES)[number];

export const SYSTEMS = ['junction', 'jetstream'] as const;

/** The four scenarios; `consume` reads back what `produce` wrote, so it runs produce too. */
export const SCENARIOS = ['produce', 'consume', 'e2e', 'latency'] as const;
export type Scenario = (typeof SCENARIOS)[number];
export type System = (typeof SYSTEMS)[number];

/** Counts and caps of one run; the same for Junction and JetStream. */
export interface Plan {
  sizes: Size[];
  scenarios: Scenario[];
  /** Messages to produce in the produce scenario (the consume scenario reads them back), per size. */
  produceCount: Record<Size, number>;
  /** Messages to send through the end-to-end scenario, per size. */
  endToEndCount: Record<Size, number>;
  /** Sequential one-message produces of the latency scenario. */
  latencySamples: number;
  /** A scenario stops issuing work after this long and reports what it did (marked `capped`). */
  capMs: number;
  /** Messages per produce request (Junction) — JetStream has no request batching on this server. */
  batch: number;
  /** Produce requests in flight at once (Junction). */
  produceConcurrency: number;
  /** Fetch loops at once (Junction). */
  consumeConcurrency: number;
  /** Partitions of each Junction station (a JetStream stream is one log, so 1 compares like with like). */
  partitions: number;
  /** Unacknowledged `js.publish` calls in flight at once (JetStream). */
  jsWindow: number;
  /** Messages the JetStream pull consumer asks for per pull request. */
  jsPull: number;
}

/** The full run (≈ 1–2 min for both systems) or the smoke run (`--quick`, a few seconds). */
export function makePlan(quick: boolean, sizes: Size[], scenarios: Scenario[], cluster = false): Plan {
  if (cluster && !quick) {
    // R3 on this machine runs at 10–30k msgs/s: the time cap ends the scenarios, the counts only bound them.
    return {
      ...makePlan(false, sizes, scenarios),
      produceCount: { 1024: 200_000, 100: 300_000 },
      endToEndCount: { 1024: 150_000, 100: 200_000 },
    };
  }
  return quick
    ? {
        sizes,
        scenarios,
        produceCount: { 1024: 20_000, 100: 20_000 },
        endToEndCount: { 1024: 10_000, 100: 10_000 },
        latencySamples: 200,
        capMs: 3_000,
        batch: 1000,
        produceConcurrency: 4,
        consumeConcurrency: 4,
        partitions: 1,
        jsWindow: 200,
        jsPull: 1000,
      }
    : {
        sizes,
        scenarios,
        produceCount: { 1024: 500_000, 100: 1_000_000 },
        endToEndCount: { 1024: 300_000, 100: 500_000 },
        latencySamples: 2_000,
        capMs: 8_000,
        batch: 1000,
        produceConcurrency: 4,
        consumeConcurrency: 4,
        partitions: 1,
        jsWindow: 200,
        jsPull: 5000,
      };
}

/** One throughput scenario's outcome. `capped` when the time cap stopped it before `messages` reached the plan. */
export interface Throughput {
  messages: number;
  seconds: number;
  msgsPerSec: number;
  /** Payload megabytes (10^6 bytes of message values, no framing) per second. */
  mbPerSec: number;
  capped: boolean;
  /** CPU per message of the load generator and of the server: steadier than rates on a busy machine. */
  cpu?: CpuPerMessage;
}

/** Sequential one-message produce round trips, in milliseconds. */
export interface Latency {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

/** A scenario that was not asked for (`--scenario`) is absent. */
export interface SizeResult {
  produce?: Throughput;
  consume?: Throughput;
  endToEnd?: Throughput;
  latency?: Latency;
  /** Junction only: the same one-message requests against a bare node:http server (`echo-server.js`), right after `latency`. */
  echoLatency?: Latency;
  /** Junction only: the same requests against `echo-server.js --durable` (append + fdatasync before the answer), right after `echoLatency`. */
  durableEchoLatency?: Latency;
}

/** What a runner child prints as its single stdout line. */
export interface SystemResult {
  /** How the load was generated and anything that bears on reading the numbers. */
  notes: string[];
  sizes: Partial<Record<`${Size}`, SizeResult>>;
  /** Junction only: how the broker was started. */
  broker?: string;
  /** Junction only: which targets were met (added by main). */
  targets?: Record<string, { target: string; value: number; met: boolean }>;
}

/** The targets Junction is held to (1 KiB messages). */
export const TARGETS = {
  produceMsgsPerSec: 200_000,
  consumeMsgsPerSec: 200_000,
  endToEndMsgsPerSec: 100_000,
  latencyP99Ms: 2,
  /** The file sink draining a backlog of 1 KiB messages (the connector row). */
  connectorSinkMsgsPerSec: 150_000,
  /** N file sinks on N stations in one broker (issue 16): RSS at most this (MB), idle CPU at most this share of a core. */
  connectorsScaleRssMb: 2048,
  connectorsScaleIdleCpuPct: 5,
  /** Threads beside the shared pool's (sized to the cores): main, libuv's four, V8's and Node's own. */
  connectorsScaleThreadSlack: 16,
  /** Cluster mode: Junction on R3 JetStream at least this share of direct nats.js with the same batching (overhead <= 20%). */
  clusterRatio: 0.8,
} as const;

export function throughput(messages: number, seconds: number, size: number, capped: boolean): Throughput {
  const msgsPerSec = seconds > 0 ? messages / seconds : 0;
  return {
    messages,
    seconds: round(seconds, 3),
    msgsPerSec: Math.round(msgsPerSec),
    mbPerSec: round((msgsPerSec * size) / 1e6, 2),
    capped,
  };
}

/** Summarises round trips (ms). Percentiles by nearest rank. */
export function latency(samplesMs: number[]): Latency {
  const s = [...samplesMs].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? 0;
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : 0;
  return {
    samples: s.length,
    p50Ms: round(rank(50), 3),
    p99Ms: round(rank(99), 3),
    maxMs: round(s.at(-1) ?? 0, 3),
    meanMs: round(mean, 3),
  };
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Progress and diagnostics: stderr only, so stdout stays the result. */
export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** A payload of `size` bytes that does not compress to nothing. */
export function payload(size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 131 + 7) & 0xff;
  return b;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Latency of `op` one call at a time: 50 warm-up calls, then `samples` timed ones. */
export async function sampleLatency(samples: number, op: () => Promise<unknown>): Promise<Latency> {
  for (let i = 0; i < 50; i++) await op();
  const ms: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    await op();
    ms.push(performance.now() - t);
  }
  return latency(ms);
}

/** A throughput for the runners' logs. */
export function fmtThroughput(t: Throughput): string {
  return `${t.messages} msgs in ${t.seconds} s = ${t.msgsPerSec} msgs/s, ${t.mbPerSec} MB/s${t.capped ? ' (capped)' : ''}`;
}

/** Runs a runner's main; a failure is logged (stderr) and sets the exit code. */
export function runRunner(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    log(`${name} runner failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  });
}
