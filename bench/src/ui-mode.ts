/**
 * `npm run bench -- ui`: what the dashboard costs and how fast it is, on one broker with 10,000 stations.
 *
 * 1. Stations page: Debian's Chromium (headless, playwright-core) opens /stations; the time is from the
 *    navigation's start to the first station rows in the page (performance.now() when they appear, read
 *    by a MutationObserver in the page). The first load is cold (nothing cached), the others warm.
 *    Target: under 1 s.
 * 2. Produce throughput (the produce row of the main table, 1 KiB) without and with 3 open dashboards,
 *    alternating for a few rounds in the same run. An open dashboard is what its Overview page holds:
 *    a live stream (SSE) of /v1/live/overview, here read by plain HTTP clients in this process (so the
 *    browser's own CPU does not count against the broker on a 2-core machine); the overview scans every
 *    station (every 2 s at most; less often when a scan is slow, see @junction/ui's live.ts). Target: the
 *    dashboards cost under 5 % of produce throughput.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import type { ClientRequest } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokerLogFile, startBroker, type RunningBroker } from './broker.js';
import { log, type Plan, type SystemResult, type Throughput } from './plan.js';
import { table } from './report.js';

export const UI_RENDER_TARGET_MS = 1000;
export const UI_MAX_COST = 0.05;
const CHROMIUM = process.env['JUNCTION_CHROMIUM'] ?? '/usr/bin/chromium';

export interface UiModeDeps {
  runChild: (script: string, config: unknown) => Promise<SystemResult>;
  setBroker: (b: RunningBroker | undefined) => void;
  brokerLogLevel: string;
  fsync: string | undefined;
  transport: string;
  rounds: number;
  stations: number;
  dashboards: number;
}

export interface UiRun {
  dashboards: number;
  round: number;
  produce?: Throughput | undefined;
  /** Overview snapshots the dashboards received during the run. */
  snapshots?: number | undefined;
  error?: string | undefined;
}

export interface UiResult {
  stations: number;
  /** Navigation → first rows, ms: the first (cold) load, then warm loads. */
  renderMs: number[];
  runs: UiRun[];
  /** Median over rounds of (with dashboards / without) produce throughput. */
  ratio?: number | undefined;
  notes: string[];
  error?: string | undefined;
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1]! + s[m]!) / 2;
}

async function createStations(url: string, n: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const res = await fetch(`${url}/v1/stations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: `ui_${String(i).padStart(6, '0')}`, storage: 'memory', partitions: 1 }),
      });
      if (!res.ok && res.status !== 409) throw new Error(`create station ${i}: ${res.status} ${await res.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** Opens the stations page `loads` times (a fresh page each; the first with an empty cache). */
async function measureRender(url: string, loads: number): Promise<number[]> {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'junction-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
    viewport: { width: 1280, height: 860 },
    timeout: 120_000,
  });
  const out: number[] = [];
  try {
    for (let i = 0; i < loads; i++) {
      const page = await context.newPage();
      // Before any script of the page runs: note when the first row appears.
      // Before any script of the page runs: note when the first row appears (page code as text: this
      // package is compiled without the DOM's types).
      await page.addInitScript({
        content: `new MutationObserver((_m, obs) => {
          if (window.__firstRows === undefined && document.querySelector('.station-row')) { window.__firstRows = performance.now(); obs.disconnect(); }
        }).observe(document, { childList: true, subtree: true });`,
      });
      await page.goto(`${url}/stations`);
      await page.waitForFunction(() => (globalThis as { __firstRows?: number }).__firstRows !== undefined, undefined, { timeout: 60_000 });
      const total = (await page.getByTestId('stations-total').textContent()) ?? '';
      const ms = await page.evaluate(() => (globalThis as unknown as { __firstRows: number }).__firstRows);
      log(`ui: stations page load ${i + 1}/${loads}: first rows after ${ms.toFixed(0)} ms (${total.trim()})`);
      out.push(ms);
      await page.close();
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  return out;
}

/** `n` SSE clients on the overview stream; resolves once each got its first snapshot. */
async function openDashboards(url: string, n: number): Promise<{ snapshots: () => number; close: () => void }> {
  const reqs: ClientRequest[] = [];
  let count = 0;
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve, reject) => {
          const req = request(`${url}/v1/live/overview`, { headers: { accept: 'text/event-stream' } }, (res) => {
            res.setEncoding('utf8');
            let first = true;
            res.on('data', (d: string) => {
              const k = d.split('event: snapshot').length - 1;
              count += k;
              if (k > 0 && first) {
                first = false;
                resolve();
              }
            });
            res.on('error', () => {});
          });
          req.on('error', reject);
          req.end();
          reqs.push(req);
        }),
    ),
  );
  return { snapshots: () => count, close: () => reqs.forEach((r) => r.destroy()) };
}

export async function runUiMode(plan: Plan, dir: string, deps: UiModeDeps): Promise<UiResult> {
  const load = loadavg()[0]!.toFixed(2);
  const runDir = join(dir, 'ui');
  const dataDir = join(runDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const result: UiResult = { stations: deps.stations, renderMs: [], runs: [], notes: [] };
  let broker: RunningBroker | undefined;
  try {
    broker = await startBroker({ dataDir, logLevel: deps.brokerLogLevel, fsync: deps.fsync, logFile: brokerLogFile(runDir) });
    deps.setBroker(broker);
    log(`ui: creating ${deps.stations} stations`);
    const t0 = Date.now();
    await createStations(broker.url, deps.stations);
    log(`ui: ${deps.stations} stations in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    result.renderMs = await measureRender(broker.url, 5);
    for (let round = 0; round < deps.rounds; round++) {
      for (const dashboards of round % 2 === 0 ? [0, deps.dashboards] : [deps.dashboards, 0]) {
        log(`ui: produce round ${round + 1}/${deps.rounds} with ${dashboards} dashboards open`);
        let open: Awaited<ReturnType<typeof openDashboards>> | undefined;
        try {
          if (dashboards > 0) open = await openDashboards(broker.url, dashboards);
          const before = open?.snapshots() ?? 0;
          const r = await deps.runChild('./junction-runner.js', {
            plan,
            url: broker.url,
            transport: deps.transport,
            serverPid: broker.pid,
          });
          result.runs.push({ dashboards, round, produce: r.sizes['1024']?.produce, ...(open && { snapshots: open.snapshots() - before }) });
        } catch (err) {
          result.runs.push({ dashboards, round, error: err instanceof Error ? err.message : String(err) });
        } finally {
          open?.close();
        }
      }
    }
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
  } finally {
    await broker?.stop();
    deps.setBroker(undefined);
  }
  const ratios: number[] = [];
  for (let round = 0; round < deps.rounds; round++) {
    const off = result.runs.find((r) => r.round === round && r.dashboards === 0)?.produce;
    const on = result.runs.find((r) => r.round === round && r.dashboards > 0)?.produce;
    if (off && on) ratios.push(on.msgsPerSec / off.msgsPerSec);
  }
  result.ratio = ratios.length === deps.rounds ? median(ratios) : undefined;
  result.notes.push(
    `${deps.stations} stations on the broker (memory storage); Chromium ${CHROMIUM} headless, a fresh page per load`,
    `produce of 1 KiB, ${plan.batch} messages per request, ${plan.produceConcurrency} in flight, ${deps.transport} load generator; fsync ${deps.fsync ?? 'always'}; ${deps.dashboards} dashboards = ${deps.dashboards} SSE clients of /v1/live/overview (a snapshot of every station every 2 s at most, sampling at most 1/50 of the broker's time)`,
    `machine: ${cpus().length} cores, 1-min load average ${load} at the start`,
  );
  return result;
}

export function renderUi(r: UiResult): string {
  const lines: string[] = [];
  if (r.error) lines.push(`error: ${r.error}`);
  const warm = r.renderMs.slice(1);
  lines.push(
    `Stations page with ${r.stations.toLocaleString('en-US')} stations: navigation → first rows (target < ${UI_RENDER_TARGET_MS} ms)`,
  );
  lines.push(
    ...table(
      ['load', 'ms', 'target'],
      [
        [
          'first (cold cache)',
          r.renderMs[0]?.toFixed(0) ?? '—',
          r.renderMs[0] !== undefined ? (r.renderMs[0] < UI_RENDER_TARGET_MS ? 'met' : 'MISSED') : '—',
        ],
        [
          `warm, median of ${warm.length}`,
          median(warm)?.toFixed(0) ?? '—',
          (median(warm) ?? Infinity) < UI_RENDER_TARGET_MS ? 'met' : 'MISSED',
        ],
        ['warm, worst', warm.length ? Math.max(...warm).toFixed(0) : '—', ''],
      ],
    ),
  );
  lines.push('');
  lines.push(`Produce throughput (1 KiB) without and with open dashboards (target: cost < ${UI_MAX_COST * 100} %)`);
  lines.push(
    ...table(
      ['round', 'dashboards', 'msgs/s', 'MB/s', 'server CPU µs/msg', 'snapshots received'],
      r.runs.map((x) => [
        String(x.round + 1),
        String(x.dashboards),
        x.produce ? Math.round(x.produce.msgsPerSec).toLocaleString('en-US') : `error: ${x.error ?? '?'}`,
        x.produce ? x.produce.mbPerSec.toFixed(1) : '',
        x.produce?.cpu?.serverUs !== undefined ? x.produce.cpu.serverUs.toFixed(1) : '',
        x.snapshots !== undefined ? String(x.snapshots) : '',
      ]),
    ),
  );
  const cpu = (on: boolean) =>
    median(r.runs.filter((x) => x.dashboards > 0 === on && x.produce?.cpu?.serverUs !== undefined).map((x) => x.produce!.cpu!.serverUs!));
  const cpuOff = cpu(false);
  const cpuOn = cpu(true);
  if (cpuOff !== undefined && cpuOn !== undefined)
    lines.push(
      `broker CPU per message, median: ${cpuOff.toFixed(2)} µs without, ${cpuOn.toFixed(2)} µs with (${(((cpuOn - cpuOff) / cpuOff) * 100).toFixed(1)} %)`,
    );
  if (r.ratio !== undefined)
    lines.push(
      `with / without (median of rounds): ${r.ratio.toFixed(3)} → cost ${((1 - r.ratio) * 100).toFixed(1)} % (${1 - r.ratio < UI_MAX_COST ? 'met' : 'MISSED'})`,
    );
  for (const n of r.notes) lines.push(`- ${n}`);
  return lines.join('\n');
}
