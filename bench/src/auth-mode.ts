/**
 * `npm run bench -- auth`: what the token check costs. The produce row (1 KiB, the same load generator
 * and plan as the main table) against a broker with auth off and one with `--auth` and a service token,
 * alternating off / on for a few rounds in the same run (so a change in the machine's load hits both),
 * each broker fresh. The target: the median throughput with auth on is at most 5 % below auth off.
 */
import { mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { brokerLogFile, startBroker, type RunningBroker } from './broker.js';
import { log, type Plan, type SystemResult, type Throughput } from './plan.js';
import { table } from './report.js';

export interface AuthRun {
  auth: boolean;
  round: number;
  produce?: Throughput | undefined;
  error?: string | undefined;
}

export interface AuthResult {
  runs: AuthRun[];
  notes: string[];
  /** The median over rounds of (auth-on throughput / auth-off throughput) of the same round. */
  ratio?: number | undefined;
  /** Median broker CPU µs per message, auth off and on (steadier than rates on a busy machine). */
  cpuOff?: number | undefined;
  cpuOn?: number | undefined;
}

/** The most the token check may cost: 5 % of produce throughput. */
export const AUTH_MAX_COST = 0.05;
const ADMIN_PASSWORD = 'bench-admin-password';

export interface AuthModeDeps {
  runChild: (script: string, config: unknown) => Promise<SystemResult>;
  /** Tells main which broker to stop on Ctrl-C. */
  setBroker: (b: RunningBroker | undefined) => void;
  brokerLogLevel: string;
  fsync: string | undefined;
  transport: string;
  rounds: number;
}

export async function runAuthMode(plan: Plan, dir: string, deps: AuthModeDeps): Promise<AuthResult> {
  const runs: AuthRun[] = [];
  const load = loadavg()[0]!.toFixed(2);
  for (let round = 0; round < deps.rounds; round++) {
    // The order flips every round, so a drift in the machine's load does not always favour one side.
    for (const auth of round % 2 === 0 ? [false, true] : [true, false]) {
      const runDir = join(dir, `auth-${round}-${auth ? 'on' : 'off'}`);
      const dataDir = join(runDir, 'data');
      mkdirSync(dataDir, { recursive: true });
      log(`auth row: round ${round + 1}/${deps.rounds}, auth ${auth ? 'on' : 'off'}`);
      let broker: RunningBroker | undefined;
      try {
        broker = await startBroker({
          dataDir,
          logLevel: deps.brokerLogLevel,
          fsync: deps.fsync,
          logFile: brokerLogFile(runDir),
          ...(auth && { extraArgs: ['--auth'], env: { JUNCTION_ADMIN_PASSWORD: ADMIN_PASSWORD } }),
        });
        deps.setBroker(broker);
        const token = auth ? await serviceToken(broker.url) : undefined;
        const r = await deps.runChild('./junction-runner.js', {
          plan,
          url: broker.url,
          transport: deps.transport,
          serverPid: broker.pid,
          token,
        });
        runs.push({ auth, round, produce: r.sizes['1024']?.produce });
      } catch (err) {
        runs.push({ auth, round, error: err instanceof Error ? err.message : String(err) });
      } finally {
        await broker?.stop();
        deps.setBroker(undefined);
      }
    }
  }
  const ratios: number[] = [];
  for (let round = 0; round < deps.rounds; round++) {
    const off = runs.find((r) => r.round === round && !r.auth)?.produce;
    const on = runs.find((r) => r.round === round && r.auth)?.produce;
    if (off && on) ratios.push(on.msgsPerSec / off.msgsPerSec);
  }
  const cpu = (auth: boolean) =>
    median(runs.filter((r) => r.auth === auth && r.produce?.cpu?.serverUs !== undefined).map((r) => r.produce!.cpu!.serverUs!));
  return {
    runs,
    ratio: ratios.length === deps.rounds ? median(ratios) : undefined,
    cpuOff: cpu(false),
    cpuOn: cpu(true),
    notes: [
      `produce of 1 KiB, ${plan.batch} messages per request, ${plan.produceConcurrency} in flight, ${deps.transport} load generator; fsync ${deps.fsync ?? 'always'}; a fresh broker per run`,
      'auth on: `junction start --auth`, the load generator sends a service token (jnt_…) with station and group grants on every request',
      `machine: ${cpus().length} cores, 1-min load average ${load} at the start`,
    ],
  };
}

/** Logs in as the bootstrap admin and makes a service token that may do what the load generator does. */
async function serviceToken(url: string): Promise<string> {
  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as { token: string };
  };
  const session = await post('/v1/auth/login', { username: 'admin', password: ADMIN_PASSWORD });
  const t = await post(
    '/v1/tokens',
    {
      name: 'bench',
      grants: [
        { resource: 'station', pattern: 'bench_*', actions: ['produce', 'consume', 'manage', 'read'] },
        { resource: 'group', pattern: '*', actions: ['consume', 'manage', 'read'] },
      ],
    },
    session.token,
  );
  return t.token;
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const us = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(2));

export function renderAuth(r: AuthResult): string {
  const rows = r.runs.map((run) => [
    `produce 1 KiB, round ${run.round + 1}, auth ${run.auth ? 'on' : 'off'}`,
    run.produce ? `${int(run.produce.msgsPerSec)}${run.produce.capped ? '*' : ''}` : `FAILED: ${run.error ?? '?'}`,
    us(run.produce?.cpu?.serverUs),
    us(run.produce?.cpu?.loadGenUs),
  ]);
  const out = table(['auth row', 'msgs/s', 'broker CPU µs/msg', 'load gen CPU µs/msg'], rows);
  out.push('');
  if (r.ratio !== undefined) {
    const cost = 1 - r.ratio;
    out.push(
      `throughput, median over rounds of auth on / auth off: ${r.ratio.toFixed(3)} (cost ${(cost * 100).toFixed(1)} %; target <= ${AUTH_MAX_COST * 100} %: ${cost <= AUTH_MAX_COST ? 'ok' : 'MISS'})`,
    );
  } else out.push('throughput, auth on / auth off: - (a run failed)');
  if (r.cpuOff !== undefined && r.cpuOn !== undefined) {
    out.push(
      `broker CPU per message, median: ${us(r.cpuOff)} µs off, ${us(r.cpuOn)} µs on (${(((r.cpuOn - r.cpuOff) / r.cpuOff) * 100).toFixed(1)} %): the steadier measure when the machine is busy`,
    );
  }
  out.push('* = stopped by the time cap before the planned count; the rate is still messages / elapsed time.');
  for (const n of r.notes) out.push(n);
  return out.join('\n');
}
