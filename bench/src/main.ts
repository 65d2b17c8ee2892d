/**
 * `npm run bench`: Junction beside NATS JetStream on this machine, in one run.
 *
 * Processes: this one only orchestrates. The Junction broker runs as its own process (`junction
 * start`, temporary data dir, free port, default durability: fsync always); each system's load
 * generator runs in a child process of its own (`node --stack-trace-limit=0`), one system after the
 * other, so neither competes with the other for the two cores. JetStream is the nats-server already
 * running on this machine (default nats://127.0.0.1:4222).
 *
 * stdout carries the result only (the table, or with --json one JSON object); progress goes to stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, copyFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPid } from './cpu.js';
import { brokerLogFile, startBroker, type RunningBroker } from './broker.js';
import { TRANSPORTS, type Transport } from './junction-driver.js';
import { SCENARIOS, SIZES, SYSTEMS, log, makePlan, type Plan, type Scenario, type Size, type System, type SystemResult } from './plan.js';
import { renderProfile, summarizeProfile } from './profile.js';
import {
  clusterOverhead,
  renderCluster,
  renderConnector,
  renderConnectorScale,
  type ConnectorScaleRow,
  renderSinks,
  renderStartup,
  renderTable,
  targetCheck,
  issue22Ratios,
  type ClusterResult,
  type ConnectorPhaseRow,
  type Outcome,
  type SinksOutcome,
} from './report.js';
import { startNatsCluster, type NatsCluster } from '@junction/e2e';
import { removeStartupData, runStartup, startupGigabytes, type StartupOutcome } from './startup.js';
import { renderDedup, runDedup, type DedupOutcome } from './dedup.js';
import { renderStations, runStations, stationsScales, type StationsOutcome } from './stations.js';
import { renderAuth, runAuthMode } from './auth-mode.js';
import { renderUi, runUiMode } from './ui-mode.js';

const USAGE = `usage: npm run bench -- [cluster] [options]   (or: node bench/dist/main.js [cluster] [options])
  schemas                instead of the default run: produce with a JSON Schema / an Avro schema attached beside
                         the same without (validation in the broker; target ≥ 0.7 of no schema); --quick, --json
  transforms             instead of the default run: a file sink with a 3-step transform chain (filter + mask +
                         rename) beside the same without, same backlog (target ≥ 0.8); --quick, --json,
                         --rows 0,1 (only those rows: 0 plain, 1 chain, 2 filter, 3 header steps)
  postgres               instead of the default run: station -> postgres sink beside a plain pg COPY of the same
                         rows (the real PostgreSQL on 127.0.0.1:5432; target ≥ 0.8); --quick, --json
  mqtt                   instead of the default run: mqtt -> station at QoS 1 beside a bare mqtt.js subscriber
                         (a Mosquitto of its own); --quick, --json
  postgres-cdc           instead of the default run: inserts into PostgreSQL and the changes the postgres-cdc source
                         brings into a station, both rates; --quick, --json
  cluster                instead of the default run: a 3-node nats-server cluster (test/ harness), Junction
                         on it (junction start --nats, R3 stations) beside direct nats.js with the same
                         batching on the same cluster; produce, consume, end to end (1 KiB unless --size)
  ui                     instead of the default run: the dashboard on a broker with 10,000 stations (1,000 with
                         --quick): the stations page in Chromium (navigation → first rows, target < 1 s), and
                         the produce row (1 KiB) without and with 3 open dashboards (target: cost < 5 %)
  auth                   instead of the default run: the produce row (1 KiB) with auth off and on
                         (a service token), alternating for 5 rounds (1 with --quick); target: on costs <= 5 %
  --json                 print one JSON object {"junction":{…},"jetstream":{…}} on stdout, nothing else
  --quick                small counts (a smoke run of a few seconds per system)
  --only junction|jetstream
  --size 1024|100        message size (repeat or comma-separate; default both)
  --scenario LIST        produce,consume,e2e,latency (default all; consume implies produce)
  --transport raw|client Junction load generator: raw node:http + codec (default) or @junction/client
  --partitions N         partitions of each Junction station (default 1)
  --broker-log-level L   the broker's log level (default info, the broker's default)
  --fsync POLICY         the broker's --fsync (always | never | interval:<ms>; default: its own, always)
  --nats URL             JetStream server (default $NATS_URL or nats://127.0.0.1:4222)
  --js-window N          js.publish calls in flight (default 200)
  --js-pull N            messages per pull of the JetStream consumer (default 5000; 1000 with --quick)
  --batch N              messages per Junction produce / fetch request (default 1000)
  --concurrency P,C      Junction produce requests in flight, fetch loops (default 4,4)
  --profile              run the broker with --cpu-prof and print where its time went (stderr)
  --no-connector         skip the connector rows (file sink, S3 sink, warehouse sinks; Junction only)
  --connectors           only the connector rows (neither system's broker table)
  --connectors-scale     only the connector scale rows: 1000 file sinks on 1000 stations (200 with --quick)
  --no-connectors-scale  skip the connector scale rows
  --scale-connectors N   connectors of the scale rows (default 1000; 200 with --quick)
  --sinks LIST           which sink rows: s3,bigquery,snowflake,firebolt (default all; 'none' for none)
  --no-startup           skip the start-up rows (Junction only)
  --startup              only the start-up rows: time to serve after a clean stop and after kill -9 with
                         JUNCTION_BENCH_STARTUP_GB GB stored (default 10; 0.5 with --quick)
  --dedup                only the dedup rows: bytes per remembered msgId, produce with msgIds, restart
                         with the window full (1M ids, ~1 min; 200k with --quick)
  --no-dedup             skip the dedup rows (Junction only)
  --dedup-ids N          msgIds the dedup rows produce (default 1000000; 200000 with --quick)
  --no-stations          skip the stations rows (Junction; the default run has them at the --quick scale)
  --stations             only the stations rows: N stations created, produced to, listed (paged) and
                         restarted under ulimit -n 1024 (100000 x 1 and 10000 x 10, ~15 min; --quick
                         5000 x 1 and 1000 x 10; JUNCTION_BENCH_STATIONS="N×P,…" overrides)
  --help`;

interface Options {
  cluster: boolean;
  auth: boolean;
  ui: boolean;
  json: boolean;
  quick: boolean;
  systems: System[];
  sizes: Size[];
  scenarios: Scenario[];
  transport: Transport;
  partitions: number;
  brokerLogLevel: string;
  fsync: string | undefined;
  nats: string;
  profile: boolean;
  connector: boolean;
  connectorsOnly: boolean;
  scale: boolean;
  scaleOnly: boolean;
  scaleConnectors: number | undefined;
  startup: boolean;
  startupOnly: boolean;
  dedup: boolean;
  dedupOnly: boolean;
  dedupIds: number | undefined;
  stations: boolean;
  stationsOnly: boolean;
  sinks: string[];
  overrides: Partial<Pick<Plan, 'jsWindow' | 'jsPull' | 'batch' | 'produceConcurrency' | 'consumeConcurrency'>>;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    cluster: false,
    auth: false,
    ui: false,
    json: false,
    quick: false,
    systems: [...SYSTEMS],
    sizes: [],
    scenarios: [],
    transport: 'raw',
    partitions: 1,
    brokerLogLevel: 'info',
    fsync: undefined,
    nats: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222',
    profile: false,
    connector: true,
    connectorsOnly: false,
    scale: true,
    scaleOnly: false,
    scaleConnectors: undefined,
    startup: true,
    startupOnly: false,
    dedup: true,
    dedupOnly: false,
    dedupIds: undefined,
    stations: true,
    stationsOnly: false,
    sinks: [...SINK_PARTS],
    overrides: {},
  };
  const list = (v: string) =>
    v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case 'cluster':
        o.cluster = true;
        break;
      case 'auth':
        o.auth = true;
        break;
      case 'ui':
        o.ui = true;
        break;
      case '--json':
        o.json = true;
        break;
      case '--quick':
        o.quick = true;
        break;
      case '--profile':
        o.profile = true;
        break;
      case '--no-connector':
        o.connector = false;
        break;
      case '--connectors':
        o.connectorsOnly = true;
        break;
      case '--connectors-scale':
        o.scaleOnly = true;
        break;
      case '--no-connectors-scale':
        o.scale = false;
        break;
      case '--scale-connectors':
        o.scaleConnectors = positive(flag, value());
        break;
      case '--no-startup':
        o.startup = false;
        break;
      case '--startup':
        o.startupOnly = true;
        break;
      case '--dedup':
        o.dedupOnly = true;
        break;
      case '--no-dedup':
        o.dedup = false;
        break;
      case '--dedup-ids':
        o.dedupIds = positive(flag, value());
        break;
      case '--no-stations':
        o.stations = false;
        break;
      case '--stations':
        o.stationsOnly = true;
        break;
      case '--sinks': {
        const v = list(value());
        if (v.length === 1 && v[0] === 'none') o.sinks = [];
        else {
          for (const x of v)
            if (!(SINK_PARTS as readonly string[]).includes(x)) throw new UsageError(`--sinks takes ${SINK_PARTS.join(', ')} or none`);
          o.sinks = v;
        }
        break;
      }
      case '--only': {
        const v = value();
        if (!(SYSTEMS as readonly string[]).includes(v)) throw new UsageError(`--only takes ${SYSTEMS.join(' or ')}`);
        o.systems = [v as System];
        break;
      }
      case '--size':
        for (const v of list(value())) {
          const n = Number(v);
          if (!(SIZES as readonly number[]).includes(n)) throw new UsageError(`--size takes ${SIZES.join(' or ')}`);
          if (!o.sizes.includes(n as Size)) o.sizes.push(n as Size);
        }
        break;
      case '--scenario':
        for (const v of list(value())) {
          if (!(SCENARIOS as readonly string[]).includes(v)) throw new UsageError(`--scenario takes ${SCENARIOS.join(', ')}`);
          if (!o.scenarios.includes(v as Scenario)) o.scenarios.push(v as Scenario);
        }
        break;
      case '--transport': {
        const v = value();
        if (!(TRANSPORTS as readonly string[]).includes(v)) throw new UsageError(`--transport takes ${TRANSPORTS.join(' or ')}`);
        o.transport = v as Transport;
        break;
      }
      case '--partitions': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError('--partitions takes 1..64');
        o.partitions = n;
        break;
      }
      case '--js-window':
        o.overrides.jsWindow = positive(flag, value());
        break;
      case '--js-pull':
        o.overrides.jsPull = positive(flag, value());
        break;
      case '--batch':
        o.overrides.batch = Math.min(10_000, positive(flag, value()));
        break;
      case '--concurrency': {
        const [p, c] = list(value());
        o.overrides.produceConcurrency = positive(flag, p ?? '');
        if (c !== undefined) o.overrides.consumeConcurrency = positive(flag, c);
        break;
      }
      case '--fsync':
        o.fsync = value();
        break;
      case '--broker-log-level':
        o.brokerLogLevel = value();
        break;
      case '--nats':
        o.nats = value();
        break;
      case '--help':
      case '-h':
        process.stderr.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option ${a}`);
    }
  }
  if (o.auth || o.ui) {
    o.sizes = [1024];
    o.scenarios = ['produce'];
  }
  if (o.sizes.length === 0) o.sizes = o.cluster ? [1024] : [...SIZES];
  if (o.scenarios.length === 0) o.scenarios = o.cluster ? ['produce', 'consume', 'e2e'] : [...SCENARIOS];
  return o;
}

/** nats-server's pid when the URL is on this machine and exactly one nats-server runs. */
function localNatsPid(url: string): number | undefined {
  const host = /^(?:nats:\/\/)?([^:/]+)/.exec(url)?.[1];
  return host === '127.0.0.1' || host === 'localhost' ? findPid('nats-server') : undefined;
}

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} takes a positive integer`);
  return n;
}

const SINK_PARTS = ['s3', 'bigquery', 'snowflake', 'firebolt'] as const;

class UsageError extends Error {
  override name = 'UsageError';
}

const children = new Set<ChildProcess>();
let broker: RunningBroker | undefined;
let workDir: string | undefined;

/** Runs one load generator child; resolves with its result line. */
function runChild<R = SystemResult>(script: string, config: unknown): Promise<R> {
  const file = fileURLToPath(new URL(script, import.meta.url));
  return new Promise((resolve, reject) => {
    // --stack-trace-limit=0 for both systems alike: nats.js builds an Error per request, which
    // costs about half its throughput otherwise; the same flag is given to the Junction side.
    // JUNCTION_BENCH_CHILD_PROF=<dir>: each child (load generators, sink rows) writes a .cpuprofile there.
    const prof = process.env.JUNCTION_BENCH_CHILD_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.JUNCTION_BENCH_CHILD_PROF] : [];
    const child = spawn(process.execPath, ['--stack-trace-limit=0', ...prof, file, JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (out += c));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      children.delete(child);
      const last = out.trim().split('\n').at(-1);
      if (code === 0 && last) {
        try {
          resolve(JSON.parse(last) as R);
          return;
        } catch {
          // fall through
        }
      }
      reject(new Error(`${script} exited with ${signal ?? code}${last ? `: ${last.slice(0, 300)}` : ''}`));
    });
  });
}

async function runJunction(opts: Options, plan: Plan, dir: string): Promise<SystemResult> {
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const profileDir = opts.profile ? join(dir, 'profile') : undefined;
  if (profileDir) mkdirSync(profileDir);
  broker = await startBroker({ dataDir, logLevel: opts.brokerLogLevel, fsync: opts.fsync, profileDir, logFile: brokerLogFile(dir) });
  const command = broker.command;
  try {
    const result = await runChild('./junction-runner.js', { plan, url: broker.url, transport: opts.transport, serverPid: broker.pid });
    const durability = opts.fsync ? `fsync ${opts.fsync} (--fsync)` : 'fsync always (the default: a produce is answered once fsynced)';
    result.notes.unshift(`broker: its own process, ${durability}, log level ${opts.brokerLogLevel} to a file: ${command}`);
    return { ...result, broker: command };
  } finally {
    await broker.stop();
    broker = undefined;
    if (profileDir) {
      const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
      if (file) {
        const kept = join(tmpdir(), `junction-bench-broker-${Date.now()}.cpuprofile`);
        copyFileSync(join(profileDir, file), kept);
        process.stderr.write(
          `\n${renderProfile(summarizeProfile(kept))}\n\nfull profile: ${kept} (open in Chrome DevTools > Performance)\n\n`,
        );
      } else log('the broker wrote no CPU profile (it did not exit cleanly?)');
    }
  }
}

let natsCluster: NatsCluster | undefined;

/**
 * `npm run bench -- cluster`: one 3-node nats-server cluster (the test/ harness), then Junction on it
 * (`junction start --nats <the three> --config <replicas: 3>`, stations R3) and direct nats.js on the same
 * cluster with the same batching (R3 streams), one after the other.
 */
async function runClusterMode(opts: Options, plan: Plan, dir: string): Promise<ClusterResult> {
  log('cluster: starting a 3-node nats-server cluster (test/ harness)');
  const t0 = Date.now();
  natsCluster = await startNatsCluster({ nodes: 3 });
  const nodePids = () => natsCluster!.nodes.map((n) => n.pid).filter((p): p is number => p !== undefined);
  const servers = natsCluster.servers;
  log(`cluster: up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${servers.join(', ')}`);
  const out: ClusterResult = { servers, junction: { error: 'not run' }, jetstream: { error: 'not run' } };
  try {
    for (const system of opts.systems) {
      const load = loadavg()[0]!.toFixed(2);
      log(`cluster: ${system}, sizes ${plan.sizes.join(', ')} B, scenarios ${plan.scenarios.join(', ')}`);
      try {
        let r: SystemResult;
        if (system === 'junction') {
          const dataDir = join(dir, 'cluster-data');
          mkdirSync(dataDir, { recursive: true });
          const config = join(dir, 'junction-cluster.yaml');
          // JSON is YAML. `--nats` gives the servers; the file only the replicas of new stations.
          writeFileSync(config, JSON.stringify({ cluster: { nats: { servers, replicas: 3, prefix: `bench${Date.now().toString(36)}` } } }));
          broker = await startBroker({
            dataDir,
            logLevel: opts.brokerLogLevel,
            logFile: join(dir, 'broker-cluster.log'),
            extraArgs: ['--nats', servers.join(','), '--config', config],
          });
          const command = broker.command;
          try {
            r = await runChild('./junction-runner.js', {
              plan,
              url: broker.url,
              transport: opts.transport,
              serverPid: [broker.pid, ...nodePids()],
              storeNote: 'JetStream (core/cluster JetStreamStore), replicas 3',
            });
          } finally {
            await broker.stop();
            broker = undefined;
          }
          r.notes.unshift(
            `broker: its own process on the cluster (a produce is answered once 2 of 3 replicas stored it), log level ${opts.brokerLogLevel} to a file: ${command}`,
          );
          r.notes.push('CPU: "server" is the Junction broker process plus the 3 nats-server nodes');
          r.broker = command;
        } else {
          r = await runChild('./jetstream-runner.js', {
            plan,
            servers: servers.join(','),
            serverPid: nodePids(),
            replicas: 3,
            batching: 'batched',
          });
          r.notes.push('CPU: "server" is the sum of the 3 nats-server nodes');
        }
        r.notes.push(`machine: ${cpus().length} cores, 1-min load average ${load} when this system's run started`);
        out[system] = r;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log(`cluster ${system} failed: ${message}`);
        out[system] = { error: message };
      }
    }
  } finally {
    await natsCluster.stop();
    natsCluster = undefined;
  }
  return out;
}

async function main(): Promise<number> {
  // `npm run bench -- schemas [--quick] [--json]`: the cost of validating values in the broker.
  if (process.argv[2] === 'schemas') {
    const { runSchemasBench } = await import('./schemas-bench.js');
    return runSchemasBench({
      quick: process.argv.includes('--quick'),
      json: process.argv.includes('--json'),
      profile: process.argv.includes('--profile'),
    });
  }
  // `npm run bench -- transforms [--quick] [--json] [--rows 0,1]`: a file sink with a 3-step transform chain beside the same without.
  if (process.argv[2] === 'transforms') {
    const { runTransformsBench } = await import('./transforms-bench.js');
    const at = process.argv.indexOf('--rows');
    const rows =
      at > 0
        ? (process.argv[at + 1] ?? '')
            .split(',')
            .filter((x) => x !== '')
            .map(Number)
        : undefined;
    if (rows !== undefined && (rows.length === 0 || rows.some((r) => !Number.isInteger(r) || r < 0 || r > 3))) {
      process.stderr.write('--rows takes row numbers 0-3 separated by commas (0 plain, 1 chain, 2 filter, 3 header steps)\n');
      return 2;
    }
    return runTransformsBench({ quick: process.argv.includes('--quick'), json: process.argv.includes('--json'), rows });
  }
  // `npm run bench -- postgres | mqtt [--quick] [--json]`: the connectors against the real services beside their plain clients.
  if (process.argv[2] === 'postgres' || process.argv[2] === 'mqtt' || process.argv[2] === 'postgres-cdc') {
    const bench = await import('./real-connectors-bench.js');
    const run = { postgres: bench.runPostgresBench, mqtt: bench.runMqttBench, 'postgres-cdc': bench.runPostgresCdcBench }[process.argv[2]];
    return run({ quick: process.argv.includes('--quick'), json: process.argv.includes('--json') });
  }
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const plan: Plan = { ...makePlan(opts.quick, opts.sizes, opts.scenarios, opts.cluster), ...opts.overrides, partitions: opts.partitions };
  workDir = mkdtempSync(join(tmpdir(), 'junction-bench-'));
  if (opts.ui) {
    const started = Date.now();
    let result;
    try {
      // Runs of 20 s (time-capped): long enough to hold several overview samples, so the first one (taken
      // as the dashboards open) does not stand for the whole cost.
      const uiPlan: Plan = opts.quick ? plan : { ...plan, produceCount: { ...plan.produceCount, 1024: 10_000_000 }, capMs: 20_000 };
      result = await runUiMode(uiPlan, workDir, {
        runChild: (script, config) => runChild(script, config),
        setBroker: (b) => (broker = b),
        brokerLogLevel: opts.brokerLogLevel,
        fsync: opts.fsync,
        transport: opts.transport,
        rounds: opts.quick ? 1 : 5,
        stations: opts.quick ? 1000 : 10_000,
        dashboards: 3,
      });
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
    log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (opts.json) process.stdout.write(`${JSON.stringify({ ui: result })}\n`);
    else process.stdout.write(`${renderUi(result)}\n`);
    return result.error !== undefined || result.runs.some((r) => r.error !== undefined) ? 1 : 0;
  }
  if (opts.auth) {
    const started = Date.now();
    let result;
    try {
      result = await runAuthMode(plan, workDir, {
        runChild: (script, config) => runChild(script, config),
        setBroker: (b) => (broker = b),
        brokerLogLevel: opts.brokerLogLevel,
        fsync: opts.fsync,
        transport: opts.transport,
        rounds: opts.quick ? 1 : 5,
      });
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
    log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (opts.json) process.stdout.write(`${JSON.stringify({ auth: result })}\n`);
    else process.stdout.write(`${renderAuth(result)}\n`);
    return result.runs.some((r) => r.error !== undefined) ? 1 : 0;
  }
  if (opts.cluster) {
    const started = Date.now();
    let result: ClusterResult;
    try {
      result = await runClusterMode(opts, plan, workDir);
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
    log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    result.overhead = clusterOverhead(result);
    if (opts.json) process.stdout.write(`${JSON.stringify({ cluster: result })}\n`);
    else process.stdout.write(`${renderCluster(plan.sizes, result)}\n`);
    return 'error' in result.junction || 'error' in result.jetstream ? 1 : 0;
  }
  const results: Partial<Record<System, Outcome>> = {};
  let connector: { phases: ConnectorPhaseRow[]; notes: string[] } | { error: string } | undefined;
  let sinks: SinksOutcome | undefined;
  let scale: ConnectorScaleRow | { error: string } | undefined;
  let startup: StartupOutcome | undefined;
  let dedup: DedupOutcome | undefined;
  let stations: StationsOutcome | undefined;
  const started = Date.now();
  const timings: Record<string, number> = {};
  const only = opts.connectorsOnly || opts.startupOnly || opts.scaleOnly || opts.dedupOnly || opts.stationsOnly;
  try {
    for (const system of only ? [] : opts.systems) {
      const ts = Date.now();
      log(`${system}: ${opts.quick ? 'quick' : 'full'} run, sizes ${plan.sizes.join(', ')} B, scenarios ${plan.scenarios.join(', ')}`);
      // Others' work on the same two cores skews everything; say how busy the machine was.
      const load = loadavg()[0]!.toFixed(2);
      try {
        const r =
          system === 'junction'
            ? await runJunction(opts, plan, workDir)
            : await runChild('./jetstream-runner.js', { plan, servers: opts.nats, serverPid: localNatsPid(opts.nats) });
        r.notes.push(`machine: ${cpus().length} cores, 1-min load average ${load} when this system's run started`);
        results[system] = r;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log(`${system} failed: ${message}`);
        results[system] = { error: message };
      }
      timings[system] = (Date.now() - ts) / 1000;
    }
    if (
      (opts.stationsOnly || (opts.stations && !opts.connectorsOnly && !opts.startupOnly && !opts.scaleOnly && !opts.dedupOnly)) &&
      opts.systems.includes('junction')
    ) {
      const ts = Date.now();
      try {
        // The full scales take ~15 min (creating 100,000 stations alone ~10): the default run uses the
        // --quick ones; --stations runs the full ones.
        stations = await runStations(workDir, stationsScales(opts.quick || !opts.stationsOnly), opts.brokerLogLevel);
      } catch (err) {
        stations = { error: err instanceof Error ? err.message : String(err) };
        log(`stations rows failed: ${stations.error}`);
      }
      timings['stations'] = (Date.now() - ts) / 1000;
    }
    if (
      opts.connector &&
      !opts.startupOnly &&
      !opts.scaleOnly &&
      !opts.dedupOnly &&
      !opts.stationsOnly &&
      opts.systems.includes('junction')
    ) {
      log('junction: connector row (datagen -> station -> file sink, 1 KiB)');
      const ts = Date.now();
      try {
        connector = await runChild<{ phases: ConnectorPhaseRow[]; notes: string[] }>('./connector-runner.js', {
          messages: opts.quick ? 40_000 : 200_000,
        });
      } catch (err) {
        connector = { error: err instanceof Error ? err.message : String(err) };
        log(`connector row failed: ${connector.error}`);
      }
      timings['connector (file sink)'] = (Date.now() - ts) / 1000;
      if (opts.sinks.length > 0) {
        log(`junction: sink rows (${opts.sinks.join(', ')}) beside direct uploads / inserts`);
        const t1 = Date.now();
        try {
          sinks = await runChild<SinksOutcome>('./sinks-runner.js', {
            s3Messages: opts.quick ? 20_000 : 200_000,
            // 100k timed rows: at 50k a path's window was under half a second and the ratio swung by ±30 %.
            warehouseRows: opts.quick ? 10_000 : 100_000,
            parts: opts.sinks,
          });
        } catch (err) {
          sinks = { error: err instanceof Error ? err.message : String(err) };
          log(`sink rows failed: ${sinks.error}`);
        }
        timings['sinks (S3, warehouses)'] = (Date.now() - t1) / 1000;
      }
    }
    if (
      (opts.scaleOnly || (opts.scale && opts.connector && !opts.startupOnly && !opts.dedupOnly && !opts.stationsOnly)) &&
      opts.systems.includes('junction')
    ) {
      const n = opts.scaleConnectors ?? (opts.quick ? 200 : 1000);
      log(`junction: connector scale rows (${n} file sinks on ${n} stations)`);
      const ts = Date.now();
      try {
        scale = await runChild<ConnectorScaleRow>('./connectors-scale-runner.js', { connectors: n, perStation: opts.quick ? 500 : 1000 });
      } catch (err) {
        scale = { error: err instanceof Error ? err.message : String(err) };
        log(`connector scale rows failed: ${scale.error}`);
      }
      timings['connectors scale'] = (Date.now() - ts) / 1000;
    }
    if (
      (opts.dedupOnly || (opts.dedup && !opts.connectorsOnly && !opts.startupOnly && !opts.scaleOnly && !opts.stationsOnly)) &&
      opts.systems.includes('junction')
    ) {
      const ts = Date.now();
      const dir = join(workDir, 'dedup');
      try {
        dedup = await runDedup(dir, opts.quick, opts.brokerLogLevel, opts.dedupIds);
      } catch (err) {
        dedup = { error: err instanceof Error ? err.message : String(err) };
        log(`dedup rows failed: ${dedup.error}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      timings['dedup'] = (Date.now() - ts) / 1000;
    }
    // Last: its data fills the page cache, which must not weigh on the rows above.
    if (
      (opts.startupOnly || (opts.startup && !opts.connectorsOnly && !opts.scaleOnly && !opts.dedupOnly && !opts.stationsOnly)) &&
      opts.systems.includes('junction')
    ) {
      const ts = Date.now();
      try {
        startup = await runStartup(workDir, startupGigabytes(opts.quick), opts.brokerLogLevel);
      } catch (err) {
        startup = { error: err instanceof Error ? err.message : String(err) };
        log(`start-up rows failed: ${startup.error}`);
      } finally {
        removeStartupData(workDir);
      }
      timings['start-up'] = (Date.now() - ts) / 1000;
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  log(
    `done in ${((Date.now() - started) / 1000).toFixed(1)} s (${Object.entries(timings)
      .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
      .join(', ')})`,
  );

  const junction = results.junction;
  if (junction && !('error' in junction)) junction.targets = targetCheck(junction);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ junction: junction ?? null, jetstream: results.jetstream ?? null, connector: connector ?? null, sinks: sinks ?? null, connectorsScale: scale ?? null, startup: startup ?? null, dedup: dedup ?? null, stations: stations ?? null, issue22: issue22Ratios(junction, results.jetstream, sinks), timings })}\n`,
    );
  } else {
    if (!only) process.stdout.write(`${renderTable(plan.sizes, junction, results.jetstream)}\n`);
    if (connector) process.stdout.write(`\n${renderConnector(connector)}\n`);
    if (sinks) process.stdout.write(`\n${renderSinks(sinks)}\n`);
    if (scale) {
      const single =
        connector && !('error' in connector)
          ? connector.phases.find((p) => p.phase === 'sink: station backlog -> file sink')?.msgsPerSec
          : undefined;
      process.stdout.write(`\n${renderConnectorScale(scale, cpus().length, single)}\n`);
    }
    if (dedup) process.stdout.write(`\n${renderDedup(dedup)}\n`);
    if (startup) process.stdout.write(`\n${renderStartup(startup)}\n`);
    if (stations) process.stdout.write(`\n${renderStations(stations)}\n`);
  }
  const sinkFailed = sinks !== undefined && ('error' in sinks || sinks.rows.some((r) => r.error !== undefined));
  const startupFailed =
    (startup !== undefined && 'error' in startup) ||
    (dedup !== undefined && 'error' in dedup) ||
    (stations !== undefined && 'error' in stations);
  const scaleFailed = scale !== undefined && 'error' in scale;
  return Object.values(results).some((r) => r && 'error' in r) ||
    (connector !== undefined && 'error' in connector) ||
    sinkFailed ||
    startupFailed ||
    scaleFailed
    ? 1
    : 0;
}

async function shutdown(signal: NodeJS.Signals): Promise<void> {
  log(`${signal}: stopping`);
  for (const c of children) c.kill('SIGTERM');
  await broker?.stop().catch(() => undefined);
  await natsCluster?.stop().catch(() => undefined);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  process.exit(130);
}
process.once('SIGINT', (s) => void shutdown(s));
process.once('SIGTERM', (s) => void shutdown(s));

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
