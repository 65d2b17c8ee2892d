/**
 * The real PostgreSQL this machine (and CI) runs: 127.0.0.1:5432, trust auth, database `test`
 * (JUNCTION_TEST_PG_HOST / _PORT / _DATABASE / _USER override). No server is a clear failure, never a skip.
 */
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import pg from 'pg';

export const PG = {
  host: process.env.JUNCTION_TEST_PG_HOST ?? '127.0.0.1',
  port: Number(process.env.JUNCTION_TEST_PG_PORT ?? 5432),
  database: process.env.JUNCTION_TEST_PG_DATABASE ?? 'test',
  user: process.env.JUNCTION_TEST_PG_USER ?? 'postgres',
};

/** A connected admin client (the superuser of the test server). */
export async function admin(): Promise<pg.Client> {
  const c = new pg.Client(PG);
  c.on('error', () => undefined);
  try {
    await c.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${PG.host}:${PG.port} as ${PG.user} (database ${PG.database}); .ci/run starts and configures it: ${String(err)}`,
      { cause: err },
    );
  }
  return c;
}

/** A name no other test run uses: a table, a role, a slot. */
export function unique(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** Polls `f` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function until<T>(f: () => Promise<T> | T, what: string, timeoutMs = 60_000): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v as NonNullable<Awaited<T>>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A TCP proxy in front of the server, to make the connection fail as a network does: `break()` resets
 * every connection and refuses new ones until `heal()`.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private broken = false;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<this> {
    this.server = net.createServer((client) => {
      if (this.broken) {
        client.resetAndDestroy();
        return;
      }
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    this.port = (this.server?.address() as net.AddressInfo).port;
    return this;
  }

  break(): void {
    this.broken = true;
    for (const s of this.sockets) s.resetAndDestroy();
  }

  heal(): void {
    this.broken = false;
  }

  async close(): Promise<void> {
    this.break();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** A port on loopback that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
