/**
 * Starts the Junction broker as its own process, the way an operator does (`junction start`), on a
 * temporary data dir and a free port, and stops it with SIGTERM (a graceful close, which also lets
 * `--cpu-prof` write its profile).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, sleep } from './plan.js';

/** The CLI entry that `npm run build` makes. */
export const CLI_BIN = fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url));
/** The bench's own fallback entry (`startServer` from @junction/server), for trees where cli/ is not built. */
const FALLBACK_BIN = fileURLToPath(new URL('./broker-main.js', import.meta.url));

export interface BrokerOptions {
  dataDir: string;
  /** Broker log level. */
  logLevel: string;
  /** The broker's --fsync; undefined keeps its default (always). */
  fsync?: string | undefined;
  /** When set, the broker runs with `--cpu-prof` writing into this directory. */
  profileDir?: string | undefined;
  /** The broker's stdout and stderr go here. */
  logFile: string;
  /** More `junction start` arguments (the cluster mode: `--nats …`, `--config …`). Needs the built CLI. */
  extraArgs?: string[] | undefined;
  /** More environment for the broker (e.g. JUNCTION_ADMIN_PASSWORD with `--auth`). */
  env?: Record<string, string> | undefined;
}

export interface RunningBroker {
  url: string;
  pid: number;
  /** How the broker was started, for the report. */
  command: string;
  stop(): Promise<void>;
}

/** A port for the broker to bind (below the ephemeral range: no outgoing connection of the load takes it first). */
export { freePort } from '@junction/e2e';
import { freePort } from '@junction/e2e';

/** Starts the broker and resolves once GET /healthz answers 200. Throws (with the log's tail) if it does not within 30 s. */
export async function startBroker(opts: BrokerOptions): Promise<RunningBroker> {
  const port = await freePort();
  const useCli = existsSync(CLI_BIN);
  if (!useCli && opts.extraArgs?.length) throw new Error(`${CLI_BIN} is not built (npm run build): needed for ${opts.extraArgs.join(' ')}`);
  const nodeArgs = opts.profileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.profileDir] : [];
  const args = useCli
    ? [
        ...nodeArgs,
        CLI_BIN,
        'start',
        '--data-dir',
        opts.dataDir,
        '--port',
        String(port),
        '--host',
        '127.0.0.1',
        '--log-level',
        opts.logLevel,
        ...(opts.fsync ? ['--fsync', opts.fsync] : []),
        ...(opts.extraArgs ?? []),
      ]
    : [...nodeArgs, FALLBACK_BIN, opts.dataDir, String(port), opts.logLevel, opts.fsync ?? ''];
  const out = createWriteStream(opts.logFile);
  await new Promise<void>((r) => out.once('open', () => r()));
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', out, out],
    cwd: opts.dataDir,
    ...(opts.env && { env: { ...process.env, ...opts.env } }),
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let dead = false;
  void exited.then(() => (dead = true));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (dead) throw new Error(`broker exited during start-up; log tail:\n${tail(opts.logFile)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`broker did not answer /healthz within 30 s; log tail:\n${tail(opts.logFile)}`);
    }
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  const command = `node ${args.map((a) => (a === CLI_BIN ? 'cli/dist/bin.js' : a === FALLBACK_BIN ? 'bench/dist/broker-main.js' : a)).join(' ')}`;
  log(`broker up at ${url} (pid ${child.pid}): ${command}`);
  return {
    url,
    pid: child.pid ?? 0,
    command,
    stop: () => stopChild(child, exited),
  };
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}

export const brokerLogFile = (dir: string) => join(dir, 'broker.log');
