/** Helpers shared by the end-to-end tests: broker processes, free ports, HTTP calls. */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/dist/index.js or test/src/index.ts). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The key that seals literal connector secrets in the brokers these tests start (never the user's key file). */
export const TEST_SECRETS_KEY = randomBytes(32).toString('base64');

export { freePort } from './ports.js';
import { freePort } from './ports.js';

export interface BrokerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** What the process wrote to stderr and stdout (for failure messages). */
  output(): string;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface BrokerOptions {
  dataDir: string;
  /** The port to bind; without it a free one (and another if that one is taken before the broker binds it). */
  port?: number;
  /** The process's working folder (where it looks for junction.yaml); default `dataDir`. */
  cwd?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Start it from a shell as `ulimit -n <n>; exec node …`: the process's open-file limit (soft and hard). */
  ulimitFiles?: number;
}

/** Starts `junction start` as a child process (the built CLI) and waits until /healthz answers. */
export async function startBroker(opts: BrokerOptions): Promise<BrokerProcess> {
  if (opts.port !== undefined) return startOn(opts, opts.port);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(opts, await freePort());
    } catch (err) {
      // Another process bound the port between the check and the broker's bind: start again on another.
      if (!(err instanceof PortTaken) || attempt >= 5) throw err;
    }
  }
}

/** The broker exited because its port was taken (LISTEN_FAILED … EADDRINUSE). */
export class PortTaken extends Error {}

async function startOn(opts: BrokerOptions, port: number): Promise<BrokerProcess> {
  const argv = [
    join(repoRoot, 'cli', 'dist', 'bin.js'),
    'start',
    '--data-dir',
    opts.dataDir,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    ...(opts.args ?? []),
  ];
  const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
  const [cmd, args] =
    opts.ulimitFiles === undefined
      ? [process.execPath, argv]
      : ['/bin/sh', ['-c', `ulimit -n ${Math.floor(opts.ulimitFiles)} && exec ${[process.execPath, ...argv].map(quote).join(' ')}`]];
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? opts.dataDir,
    // One secrets key for every broker of this test process (restarts and cluster nodes open each other's sealed secrets).
    env: { ...process.env, JUNCTION_LOG_LEVEL: 'warn', JUNCTION_SECRETS_KEY: TEST_SECRETS_KEY, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // 'close', not 'exit': the process may exit before its last output is read from the pipes.
  const exited = once(child, 'close');
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) {
      await exited; // its last output
      const message = `broker exited with ${child.exitCode} before it was ready:\n${out}`;
      throw /LISTEN_FAILED.*EADDRINUSE/.test(out) ? new PortTaken(message) : new Error(message);
    }
    try {
      // Bounded: whatever else holds the port may accept and never answer.
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`broker did not become healthy:\n${out}`);
    }
    await sleep(50);
  }
  return {
    url,
    port,
    child,
    output: () => out,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A JSON HTTP call; throws with the answer's body on a non-2xx status. */
export async function api<T = unknown>(url: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw Object.assign(new Error(`${method} ${path} → ${res.status} ${text}`), { status: res.status, body: text });
  return (text ? JSON.parse(text) : undefined) as T;
}
/** Polls `probe` every 200 ms until it gives a value (errors count as no value yet); throws after `timeoutMs`, with the last error. */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

/** Junction broker processes on their own data dirs (cluster tests); `stop()` kills them and removes the dirs. */
export class JunctionNodes {
  readonly brokers: BrokerProcess[] = [];
  private readonly dirs: string[] = [];

  /** A broker connected to NATS at `natsUrls` (comma-separated). */
  async start(natsUrls: string, prefix = 'junction-node-'): Promise<BrokerProcess> {
    const b = await startBroker({ dataDir: await this.tempDir(prefix), args: ['--nats', natsUrls] });
    this.brokers.push(b);
    return b;
  }

  /** A temporary directory removed by `stop()`. */
  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  async stop(): Promise<void> {
    await Promise.all(this.brokers.map((b) => b.kill().catch(() => {})));
    await Promise.all(this.dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** The pid in a task's `worker` field (`<host>:<pid>`) as the connector status reports it. */
export const pidOfWorker = (worker: string | undefined): number => Number(worker?.slice(worker.lastIndexOf(':') + 1));

export * from './nats-cluster.js';

/**
 * Every message of one partition, from offset 0 on: a store's read returns at most 64 MiB of values
 * by default, so this reads on from the last offset + 1 until a read comes back empty. `read` reads
 * from the offset it is given.
 */
export async function readPartition<M extends { offset: number }>(read: (fromOffset: number) => Promise<M[]>): Promise<M[]> {
  const out: M[] = [];
  let from = 0;
  for (;;) {
    const page = await read(from);
    if (page.length === 0) return out;
    out.push(...page);
    from = page[page.length - 1]!.offset + 1;
  }
}
