/**
 * The start-up rows: how long a broker with a lot stored takes to serve again. A data dir is filled with
 * `JUNCTION_BENCH_STARTUP_GB` GB (default 10; 0.5 with --quick) of 1 KiB messages in 4 partitions plus a
 * consumer group (startup-fill.js, its own process), then the broker (`junction start`, its own process,
 * default durability) is started on it three times and timed from spawn to its first `200` on /healthz
 * and to its first successful fetch (a delivery to the group):
 *
 * 1. an empty data dir (what the process start itself costs, for comparison);
 * 2. the filled dir after a clean stop;
 * 3. the filled dir after `kill -9` of the broker in the middle of produce and fetch/ack load (4
 *    produce requests of 1000 in flight and a fetch/ack loop), with a check that the restarted broker's
 *    next offsets lie above every offset it acknowledged before the kill.
 *
 * Target: ≤ 2 s to the first fetch after either stop (issue 14, item 4).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BATCH_CONTENT_TYPE, encodeProduceBatch } from '@junction/protocol';
import { CLI_BIN, freePort } from './broker.js';
import { Http } from './http.js';
import { log, payload, sleep } from './plan.js';
import type { FillConfig, FillResult } from './startup-fill.js';

export const STARTUP_TARGET_SECONDS = 2;
const STATION = 'bench-startup';
const GROUP = 'startup';
const PARTITIONS = 4;

export interface StartupRow {
  label: string;
  /** ms the embedded store took to open (recovery), from the broker's "embedded store open" log line. */
  storeOpenMs?: number | undefined;
  /** Seconds from spawning the broker to its first 200 on /healthz. */
  healthSeconds: number;
  /** Seconds from spawning the broker to its first fetch that delivered a message (absent: not measured). */
  fetchSeconds?: number | undefined;
  /** Compared with the target (rows after a stop only). */
  met?: boolean | undefined;
}

export interface StartupResult {
  gigabytes: number;
  stored: { messages: number; bytes: number; fillSeconds: number };
  rows: StartupRow[];
  notes: string[];
}

export type StartupOutcome = StartupResult | { error: string };

/** How many GB the start-up rows store: JUNCTION_BENCH_STARTUP_GB, else 10 (0.5 with --quick). */
export function startupGigabytes(quick: boolean): number {
  const env = process.env['JUNCTION_BENCH_STARTUP_GB'];
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`JUNCTION_BENCH_STARTUP_GB must be a positive number of GB, not "${env}"`);
    return n;
  }
  return quick ? 0.5 : 10;
}

/** Runs the three start-ups in `dir` (which it fills and leaves for the caller to remove). */
export async function runStartup(dir: string, gigabytes: number, logLevel: string): Promise<StartupResult> {
  const bytes = Math.round(gigabytes * 1e9);
  const free = statfsSync(dir).bavail * statfsSync(dir).bsize;
  if (free < bytes * 1.1 + 1e9)
    throw new Error(
      `not enough free disk for ${gigabytes} GB in ${dir} (${(free / 1e9).toFixed(1)} GB free); set JUNCTION_BENCH_STARTUP_GB lower`,
    );
  const notes: string[] = [];
  const rows: StartupRow[] = [];

  const empty = join(dir, 'startup-empty');
  mkdirSync(empty, { recursive: true });
  const e = await timeStart(empty, join(dir, 'startup-empty.log'), logLevel, false);
  rows.push({ label: 'empty data dir (process start)', healthSeconds: e.health, storeOpenMs: storeOpenMs(join(dir, 'startup-empty.log')) });
  await e.stop('SIGTERM');

  const dataDir = join(dir, 'startup-data');
  log(`start-up rows: filling ${gigabytes} GB (${PARTITIONS} partitions, 1 KiB messages)`);
  const fill = await runFill({ dataDir, station: STATION, group: GROUP, partitions: PARTITIONS, bytes, groupAcked: 100_000 });
  log(`start-up rows: filled ${(fill.bytes / 1e9).toFixed(2)} GB in ${fill.seconds.toFixed(0)} s`);

  const clean = await timeStart(dataDir, join(dir, 'startup-clean.log'), logLevel, true);
  rows.push({
    label: 'after a clean stop',
    healthSeconds: clean.health,
    fetchSeconds: clean.fetch,
    storeOpenMs: storeOpenMs(join(dir, 'startup-clean.log')),
    met: clean.fetch! <= STARTUP_TARGET_SECONDS,
  });

  // Load, then kill -9 while requests are in flight.
  const load = startLoad(clean.url);
  await sleep(3000);
  clean.child.kill('SIGKILL');
  await clean.exited;
  const acked = await load.stop();
  log(`start-up rows: killed the broker under load after ${acked.produced} acknowledged produces`);

  const killed = await timeStart(dataDir, join(dir, 'startup-kill.log'), logLevel, true);
  rows.push({
    label: 'after kill -9 under load',
    healthSeconds: killed.health,
    fetchSeconds: killed.fetch,
    storeOpenMs: storeOpenMs(join(dir, 'startup-kill.log')),
    met: killed.fetch! <= STARTUP_TARGET_SECONDS,
  });
  // Offsets acknowledged before the kill are never handed out again.
  const http = new Http(killed.url);
  try {
    const info = await http.json<{ partitions: Array<{ partition: number; nextOffset: number }> }>('GET', `/v1/stations/${STATION}`);
    const bad = info.partitions.filter((p) => p.nextOffset <= (acked.maxOffset.get(p.partition) ?? 0));
    notes.push(
      bad.length === 0
        ? `after kill -9: ${acked.produced} produces of 1000 were acknowledged under load; every partition's next offset lies above every offset acknowledged (checked)`
        : `after kill -9: NEXT OFFSET AT OR BELOW AN ACKNOWLEDGED ONE in partitions ${bad.map((p) => p.partition).join(', ')}`,
    );
  } finally {
    http.close();
  }
  await killed.stop('SIGTERM');
  notes.push(
    `stored: ${fill.messages.toLocaleString('en-US')} messages, ${(fill.bytes / 1e9).toFixed(2)} GB in ${PARTITIONS} partitions (64 MiB segments), a consumer group that acked 100k; filled in ${fill.seconds.toFixed(0)} s by an embedded store in its own process`,
  );
  notes.push(
    'store open: the embedded store\'s own recovery (openMs of its "embedded store open" log line); /healthz 200 and first fetch: from spawning `node cli/dist/bin.js start` to the first 200 of GET /healthz and to the first fetch that delivered a message (polled every 5 ms), so they include what the empty row costs (node, modules, the connector runtime); the page cache holds what the fill wrote',
  );
  return { gigabytes, stored: { messages: fill.messages, bytes: fill.bytes, fillSeconds: fill.seconds }, rows, notes };
}

function runFill(config: FillConfig): Promise<FillResult> {
  const file = fileURLToPath(new URL('./startup-fill.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (out += c));
    child.once('error', reject);
    child.once('exit', (code) => {
      const last = out.trim().split('\n').at(-1);
      if (code === 0 && last) resolve(JSON.parse(last) as FillResult);
      else reject(new Error(`startup-fill exited with ${code}: ${last ?? ''}`));
    });
  });
}

interface Started {
  url: string;
  child: ChildProcess;
  exited: Promise<void>;
  health: number;
  fetch?: number | undefined;
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** Spawns `junction start` on `dataDir` and times its first /healthz 200 (and, with `fetch`, its first delivery). */
async function timeStart(dataDir: string, logFile: string, logLevel: string, fetch: boolean): Promise<Started> {
  const port = await freePort();
  const out = createWriteStream(logFile);
  await new Promise<void>((r) => out.once('open', () => r()));
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [CLI_BIN, 'start', '--data-dir', dataDir, '--port', String(port), '--host', '127.0.0.1', '--log-level', logLevel],
    {
      stdio: ['ignore', out, out],
      cwd: dataDir,
    },
  );
  let dead = false;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => (dead = true));
  const url = `http://127.0.0.1:${port}`;
  const http = new Http(url);
  const deadline = Date.now() + 120_000;
  const poll = async (probe: () => Promise<boolean>): Promise<number> => {
    for (;;) {
      if (dead) throw new Error(`broker exited during start-up (see ${logFile})`);
      if (Date.now() > deadline) throw new Error(`broker did not serve within 120 s (see ${logFile})`);
      if (await probe().catch(() => false)) return (performance.now() - t0) / 1000;
      await sleep(5);
    }
  };
  try {
    const health = await poll(async () => (await http.send('GET', '/healthz')).status === 200);
    let fetched: number | undefined;
    if (fetch) {
      fetched = await poll(async () => {
        const res = await http.send(
          'POST',
          `/v1/stations/${STATION}/groups/${GROUP}/fetch`,
          JSON.stringify({ maxMessages: 1, waitMs: 0 }),
          { 'content-type': 'application/json' },
        );
        if (res.status !== 200) return false;
        return (JSON.parse(res.body.toString('utf8')) as { messages: unknown[] }).messages.length > 0;
      });
    }
    return {
      url,
      child,
      exited,
      health,
      fetch: fetched,
      stop: async (signal) => {
        if (!dead) child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    http.close();
  }
}

/** Produce (4 requests of 1000 in flight) and fetch/ack load until stop(); records the largest acknowledged offset per partition. */
function startLoad(url: string): { stop(): Promise<{ produced: number; maxOffset: Map<number, number> }> } {
  const http = new Http(url);
  const body = encodeProduceBatch(Array.from({ length: 1000 }, () => ({ value: payload(1024) })));
  const maxOffset = new Map<number, number>();
  let produced = 0;
  let running = true;
  const producer = async () => {
    while (running) {
      const res = await http
        .send('POST', `/v1/stations/${STATION}/messages`, body, { 'content-type': BATCH_CONTENT_TYPE })
        .catch(() => undefined);
      if (!res || res.status !== 200) return;
      produced++;
      for (const r of (JSON.parse(res.body.toString('utf8')) as { results: Array<{ partition?: number; offset?: number }> }).results) {
        if (r.partition !== undefined && r.offset !== undefined && r.offset > (maxOffset.get(r.partition) ?? 0))
          maxOffset.set(r.partition, r.offset);
      }
    }
  };
  const consumer = async () => {
    const path = `/v1/stations/${STATION}/groups/${GROUP}`;
    while (running) {
      const res = await http
        .send('POST', `${path}/fetch`, JSON.stringify({ maxMessages: 1000, waitMs: 100 }), { 'content-type': 'application/json' })
        .catch(() => undefined);
      if (!res || res.status !== 200) return;
      const ids = (JSON.parse(res.body.toString('utf8')) as { messages: Array<{ deliveryId: string }> }).messages.map((m) => m.deliveryId);
      if (ids.length > 0)
        await http
          .send('POST', `${path}/ack`, JSON.stringify({ deliveryIds: ids, summary: true }), { 'content-type': 'application/json' })
          .catch(() => undefined);
    }
  };
  const loops = [producer(), producer(), producer(), producer(), consumer()];
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      http.close();
      return { produced, maxOffset };
    },
  };
}

/** The `openMs` of the broker's "embedded store open" log line (the store's own recovery time). */
function storeOpenMs(logFile: string): number | undefined {
  try {
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      if (!line.includes('embedded store open')) continue;
      const ms = (JSON.parse(line) as { openMs?: unknown }).openMs;
      if (typeof ms === 'number') return ms;
    }
  } catch {
    // not readable: left out
  }
  return undefined;
}

/** Removes what runStartup wrote in `dir`. */
export function removeStartupData(dir: string): void {
  for (const d of ['startup-empty', 'startup-data']) rmSync(join(dir, d), { recursive: true, force: true });
}
