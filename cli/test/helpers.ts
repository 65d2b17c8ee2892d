/** Running the built CLI and a broker of its own (a child process) for the CLI's tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
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

export interface Broker {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `junction start` in `dir` (data in `dir/data`, secrets key under `dir/xdg`) on a free port; resolves once healthy. */
export async function startBroker(dir: string): Promise<Broker> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [BIN, 'start', '--data-dir', join(dir, 'data'), '--port', String(port), '--log-level', 'warn'], {
    cwd: dir,
    env: { ...process.env, ...CLEAN, XDG_CONFIG_HOME: join(dir, 'xdg') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = collect(child);
  await eventually('the broker healthy', 60_000, async () => {
    if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode}: ${(await out).stderr}`);
    const res = await fetch(`${url}/healthz`).catch(() => undefined);
    return res?.status === 200 ? true : undefined;
  });
  return {
    url,
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await out;
      }
    },
  };
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
