/** Running the built CLI and a broker of its own (a child process) for the CLI's tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBroker as startE2eBroker, type BrokerProcess } from '@junction/e2e';

// The built CLI, as `npm start` runs it (npm test builds first).
export const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Environment of every child: nothing of the caller's JUNCTION_* settings leaks in. */
const CLEAN = { JUNCTION_URL: '', JUNCTION_PORT: '', JUNCTION_HOST: '', JUNCTION_DATA_DIR: '', JUNCTION_TOKEN: '', JUNCTION_NATS_URL: '' };

/** Runs the CLI to completion in `cwd`. */
export async function junction(args: string[], opts: { cwd: string; input?: string; env?: Record<string, string> }): Promise<Result> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...CLEAN, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return collect(child, opts.input);
}

export async function collect(child: ChildProcess, input?: string): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin?.end(input ?? '');
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

/** Polls `check` until it answers something other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
}

export type Broker = BrokerProcess;

/**
 * `junction start` in `dir` (data in `dir/data`, secrets key under `dir/xdg`) on a free port, with `args`
 * and `env` added; resolves once healthy (the end-to-end tests' startBroker: it starts again on another
 * port when the one it picked was taken before the broker bound it).
 */
export function startBroker(dir: string, opts: { args?: string[]; env?: Record<string, string> } = {}): Promise<Broker> {
  return startE2eBroker({
    dataDir: join(dir, 'data'),
    cwd: dir,
    args: ['--log-level', 'warn', ...(opts.args ?? [])],
    env: { ...CLEAN, JUNCTION_SECRETS_KEY: '', XDG_CONFIG_HOME: join(dir, 'xdg'), ...opts.env },
  });
}

/** A JSON request to the broker; resolves with the status and the parsed body. */
export async function api<T = unknown>(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
