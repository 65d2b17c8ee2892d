/**
 * Free ports for the end-to-end tests and the bench (its own module: nats-cluster.ts needs it and index.ts
 * re-exports both).
 *
 * A port found free is handed to a child process that binds it a moment later. Asking the kernel for
 * port 0 gives one from the ephemeral range, the same range every outgoing connection of the machine
 * takes its local port from: with the suite running files side by side, a fetch of another test could
 * take the port in between and the broker failed to start with EADDRINUSE. So ports come from below that
 * range, where only a listener can take them; one this process handed out is not handed out again; and
 * `startBroker` still starts again on another port if the bind fails.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port handed out: below it sit the well-known services (PostgreSQL, Redis, RabbitMQ, NATS, …). */
const LOWEST = 10_000;

/** The kernel's ephemeral range (Linux), or its default where it cannot be read. */
export function ephemeralRange(text?: string): [number, number] {
  try {
    const [lo, hi] = (text ?? readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo! > 0 && hi! >= lo!) return [lo!, hi!];
  } catch {
    // not Linux: the default below
  }
  return [32_768, 60_999];
}

/** Where ports are picked: from LOWEST up to just below the ephemeral range, or above it when that leaves too few. */
export function pickRange(ephemeral: [number, number]): [number, number] {
  const [lo, hi] = ephemeral;
  if (lo - LOWEST >= 2_000) return [LOWEST, lo - 1];
  if (65_535 - hi >= 2_000) return [hi + 1, 65_535];
  return [LOWEST, 65_535]; // a machine with no room outside the range: a free port is still checked, and a failed bind retried
}

const handedOut = new Set<number>();
let range: [number, number] | undefined;

/** Whether a listener can bind `port` on 127.0.0.1 right now. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 that is free now, outside the ephemeral range, and not handed out before by this process. */
export async function freePort(): Promise<number> {
  range ??= pickRange(ephemeralRange());
  const [lo, hi] = range;
  for (let tries = 0; tries < 1_000; tries++) {
    const port = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (handedOut.has(port)) continue;
    if (!(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port between ${lo} and ${hi} after 1000 tries`);
}
