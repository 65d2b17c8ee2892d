/**
 * The stations rows (issue 16): one broker carrying many stations. For each scale (default 100,000
 * stations of 1 partition, then 10,000 of 10; --quick: 5,000 × 1 and 1,000 × 10) a broker (`junction
 * start`, its own process, default durability, started as `ulimit -n 1024; exec node …` — soft and
 * hard: Node raises the soft limit to the hard one itself, so the hard one is what binds) gets:
 *
 * 1. N stations created (16 requests in flight);
 * 2. one produce of one 100-byte message to each (16 in flight);
 * 3. every station listed, a page of 1000 at a time;
 * 4. a clean stop (SIGTERM) and a start: time from spawn to the first 200 on /healthz, and the store's
 *    own open time (its log line); then one produce and one fetch on a station to show it serves.
 *
 * Measured from outside: the broker's open descriptors (/proc/<pid>/fd) and RSS (/proc/<pid>/status)
 * after each phase. Targets beside them: start ≤ 5 s, RSS ≤ 1 GiB, descriptors under the limit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_BIN, freePort } from './broker.js';
import { Http } from './http.js';
import { log, sleep } from './plan.js';

export const STATIONS_START_TARGET_SECONDS = 5;
export const STATIONS_RSS_TARGET_BYTES = 1024 ** 3;
/** The broker's `ulimit -n`: 1024 (JUNCTION_BENCH_STATIONS_ULIMIT overrides, to measure a broker that needs more). */
export const STATIONS_FD_LIMIT = Number(process.env['JUNCTION_BENCH_STATIONS_ULIMIT'] || 1024);
const CONCURRENCY = 16;

export interface StationsScale {
  stations: number;
  partitions: number;
}

export interface StationsRow {
  stations: number;
  partitions: number;
  createSeconds: number;
  produceSeconds: number;
  listSeconds: number;
  listPages: number;
  listBytes: number;
  stopSeconds: number;
  /** Spawn to the first 200 on /healthz after the restart. */
  startSeconds: number;
  storeOpenMs?: number | undefined;
  /** Spawn to a produce and a fetch answered after the restart. */
  serveSeconds: number;
  fds: { afterProduce: number; afterList: number; afterRestart: number };
  rssBytes: { afterProduce: number; afterList: number; afterRestart: number; afterServe: number };
}

export type StationsOutcome = { rows: StationsRow[]; notes: string[] } | { error: string };

/** The scales: the issue's targets, or small ones with --quick; JUNCTION_BENCH_STATIONS="N×P,N×P" overrides. */
export function stationsScales(quick: boolean): StationsScale[] {
  const env = process.env['JUNCTION_BENCH_STATIONS'];
  if (env) {
    return env.split(',').map((s) => {
      const [n, p] = s.split(/[x×]/).map(Number);
      if (!Number.isInteger(n) || !Number.isInteger(p) || n! < 1 || p! < 1) throw new Error(`JUNCTION_BENCH_STATIONS: "${s}" is not N×P`);
      return { stations: n!, partitions: p! };
    });
  }
  return quick
    ? [
        { stations: 5_000, partitions: 1 },
        { stations: 1_000, partitions: 10 },
      ]
    : [
        { stations: 100_000, partitions: 1 },
        { stations: 10_000, partitions: 10 },
      ];
}

interface Started {
  child: ChildProcess;
  http: Http;
  seconds: number;
  stop(): Promise<number>;
}

async function start(dataDir: string, logFile: string, logLevel: string): Promise<Started> {
  const port = await freePort();
  const out = createWriteStream(logFile, { flags: 'a' });
  await new Promise<void>((r) => out.once('open', () => r()));
  const t0 = performance.now();
  const argv = [
    process.execPath,
    CLI_BIN,
    'start',
    '--data-dir',
    dataDir,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--log-level',
    logLevel,
  ];
  const child = spawn('/bin/sh', ['-c', `ulimit -n ${STATIONS_FD_LIMIT} && exec ${argv.map((a) => `'${a}'`).join(' ')}`], {
    stdio: ['ignore', out, out],
    cwd: dataDir,
  });
  let dead = false;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => (dead = true));
  const http = new Http(`http://127.0.0.1:${port}`);
  const deadline = Date.now() + 600_000;
  for (;;) {
    if (dead) throw new Error(`broker exited during start-up (see ${logFile})`);
    if (Date.now() > deadline) throw new Error(`broker did not serve within 600 s (see ${logFile})`);
    if (
      await http.send('GET', '/healthz').then(
        (r) => r.status === 200,
        () => false,
      )
    )
      break;
    await sleep(10);
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    child,
    http,
    seconds,
    stop: async () => {
      const s0 = performance.now();
      if (!dead) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
      await exited;
      clearTimeout(timer);
      http.close();
      return (performance.now() - s0) / 1000;
    },
  };
}

function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** The store's open time from its "embedded store open" log line (the last one in the file). */
function storeOpenMs(logFile: string): number | undefined {
  let last: number | undefined;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('embedded store open')) continue;
    try {
      const v = (JSON.parse(line) as { openMs?: number }).openMs;
      if (typeof v === 'number') last = v;
    } catch {
      // not JSON
    }
  }
  return last;
}

async function inParallel(n: number, fn: (i: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await fn(next++);
    }),
  );
  return (performance.now() - t0) / 1000;
}

const stationName = (i: number): string => `st-${String(i).padStart(6, '0')}`;

async function runScale(dir: string, scale: StationsScale, logLevel: string): Promise<StationsRow> {
  const dataDir = join(dir, `stations-${scale.stations}x${scale.partitions}`);
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(dir, `stations-${scale.stations}x${scale.partitions}.log`);
  let b = await start(dataDir, logFile, logLevel);
  const pid = b.child.pid!;
  log(`stations rows: creating ${scale.stations} stations of ${scale.partitions} partition(s)`);
  const createSeconds = await inParallel(scale.stations, async (i) => {
    await b.http.json('POST', '/v1/stations', { name: stationName(i), partitions: scale.partitions });
  });
  log(`stations rows: created in ${createSeconds.toFixed(1)} s; producing one message to each`);
  const value = Buffer.alloc(100, 'x').toString();
  const produceSeconds = await inParallel(scale.stations, async (i) => {
    await b.http.json('POST', `/v1/stations/${stationName(i)}/messages`, { messages: [{ value }] });
  });
  const afterProduce = { fds: fds(pid), rss: rss(pid) };
  const l0 = performance.now();
  let pages = 0;
  let bytes = 0;
  let listed = 0;
  let after: string | undefined;
  for (;;) {
    const res = await b.http.send('GET', `/v1/stations?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    if (res.status !== 200) throw new Error(`GET /v1/stations: HTTP ${res.status}`);
    pages++;
    bytes += res.body.length;
    const page = JSON.parse(res.body.toString('utf8')) as { stations: { name: string }[]; next?: string };
    listed += page.stations.length;
    if (!page.next) break;
    after = page.next;
  }
  const listSeconds = (performance.now() - l0) / 1000;
  // Every station and its dead-letter station.
  if (listed !== 2 * scale.stations) throw new Error(`listed ${listed} stations, expected ${2 * scale.stations}`);
  const afterList = { fds: fds(pid), rss: rss(pid) };
  log(`stations rows: listed ${listed} in ${listSeconds.toFixed(1)} s; restarting`);
  const stopSeconds = await b.stop();
  b = await start(dataDir, logFile, logLevel);
  const pid2 = b.child.pid!;
  const afterRestart = { fds: fds(pid2), rss: rss(pid2) };
  const s0 = performance.now();
  const probe = stationName(Math.floor(scale.stations / 2));
  await b.http.json('POST', `/v1/stations/${probe}/messages`, { messages: [{ value }] });
  const got = await b.http.json<{ messages: unknown[] }>('POST', `/v1/stations/${probe}/groups/bench/fetch`, {
    maxMessages: 10,
    waitMs: 0,
  });
  if (got.messages.length !== 2) throw new Error(`after the restart, ${probe} delivered ${got.messages.length} messages, expected 2`);
  const serveSeconds = b.seconds + (performance.now() - s0) / 1000;
  const afterServe = rss(pid2);
  await b.stop();
  rmSync(dataDir, { recursive: true, force: true });
  return {
    stations: scale.stations,
    partitions: scale.partitions,
    createSeconds,
    produceSeconds,
    listSeconds,
    listPages: pages,
    listBytes: bytes,
    stopSeconds,
    startSeconds: b.seconds,
    storeOpenMs: storeOpenMs(logFile),
    serveSeconds,
    fds: { afterProduce: afterProduce.fds, afterList: afterList.fds, afterRestart: afterRestart.fds },
    rssBytes: { afterProduce: afterProduce.rss, afterList: afterList.rss, afterRestart: afterRestart.rss, afterServe },
  };
}

/** Runs every scale in `dir` (removing each data dir after it). */
export async function runStations(dir: string, scales: StationsScale[], logLevel: string): Promise<StationsOutcome> {
  const rows: StationsRow[] = [];
  const notes: string[] = [
    `broker started as \`ulimit -n ${STATIONS_FD_LIMIT}; exec node cli/dist/bin.js start\` (fsync always); each station also has its dead-letter station (listed: 2 × N)`,
  ];
  for (const s of scales) rows.push(await runScale(dir, s, logLevel));
  return { rows, notes };
}

const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MiB`;

/** The stations table (markdown). */
export function renderStations(result: StationsOutcome): string {
  if ('error' in result) return `stations: FAILED: ${result.error}`;
  const header = [
    'stations × partitions',
    'create',
    'produce 1 each',
    'list (pages)',
    'restart: /healthz',
    'store open',
    'fds max',
    'RSS max',
    'targets',
  ];
  const rows = result.rows.map((r) => {
    const fdMax = Math.max(r.fds.afterProduce, r.fds.afterList, r.fds.afterRestart);
    const rssMax = Math.max(r.rssBytes.afterProduce, r.rssBytes.afterList, r.rssBytes.afterRestart, r.rssBytes.afterServe);
    const ok = (b: boolean) => (b ? 'ok' : 'MISS');
    return [
      `${r.stations.toLocaleString('en')} × ${r.partitions}`,
      `${r.createSeconds.toFixed(1)} s (${Math.round(r.stations / r.createSeconds)}/s)`,
      `${r.produceSeconds.toFixed(1)} s`,
      `${r.listSeconds.toFixed(2)} s (${r.listPages}, ${(r.listBytes / 1e6).toFixed(1)} MB)`,
      `${r.startSeconds.toFixed(2)} s`,
      r.storeOpenMs === undefined ? '-' : `${(r.storeOpenMs / 1000).toFixed(2)} s`,
      `${fdMax}`,
      mib(rssMax),
      `start <= ${STATIONS_START_TARGET_SECONDS} s ${ok(r.startSeconds <= STATIONS_START_TARGET_SECONDS)}; RSS <= 1 GiB ${ok(rssMax <= STATIONS_RSS_TARGET_BYTES)}; fds < ${STATIONS_FD_LIMIT} ${ok(fdMax < STATIONS_FD_LIMIT)}`,
    ];
  });
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  const detail = result.rows.map(
    (r) =>
      `${r.stations} × ${r.partitions}: fds after produce ${r.fds.afterProduce}, after list ${r.fds.afterList}, after restart ${r.fds.afterRestart}; ` +
      `RSS after produce ${mib(r.rssBytes.afterProduce)}, after list ${mib(r.rssBytes.afterList)}, after restart ${mib(r.rssBytes.afterRestart)}, after a produce + fetch ${mib(r.rssBytes.afterServe)}; ` +
      `stop ${r.stopSeconds.toFixed(1)} s; serving (produce + fetch) ${r.serveSeconds.toFixed(2)} s after spawn`,
  );
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line), ...result.notes, ...detail].join('\n');
}
