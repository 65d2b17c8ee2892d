/**
 * A real nats-server cluster on loopback ports for tests: N nodes (default 3) with JetStream, each with
 * its own store directory under one temp dir, routes between them, and a monitoring port that the
 * harness polls (so it needs no NATS client of its own). Nodes are stopped by PID: `kill(i)` SIGKILLs one,
 * `start(i)` brings it back with the same name, ports and store directory.
 *
 * Never leaves processes behind: `stop()` kills every node and removes the temp dir; a process `exit`
 * handler SIGKILLs what is still running; and every cluster writes a registry file with the pids it
 * started, so the next harness in any process kills the nodes of a test run that died without cleaning up
 * (only when the pid still runs nats-server with that run's config file).
 *
 * Network cuts (`cuttableRoutes: true`): every route connection then goes through a TCP relay in this
 * process, one per ordered pair of nodes (node i dials node j's relay for i→j; nothing else reaches a
 * cluster port, and each node advertises a dead address, so no gossiped route bypasses the relays).
 * `cut(i)` blackholes every route to and from node i — open connections stay open but carry nothing
 * (no FIN/RST, as with a pulled cable: the servers notice through their RAFT heartbeats and pings), new
 * ones are accepted and never answered — and `heal(i)` resets the blackholed connections so the servers
 * reconnect at once. Nothing outside this process is touched (no root, no firewall rules, no
 * namespaces), and the relays close with the cluster.
 *
 * Uses the `nats-server` binary on PATH (Debian's package; `NATS_SERVER_BIN` overrides). Never binds
 * anything but 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface NatsClusterOptions {
  /** Number of nodes. Default 3. */
  nodes?: number;
  /** Largest message a client may publish. Default 72 MiB (Junction's 64 MiB maxMessageBytes plus framing). */
  maxPayload?: number;
  /** JetStream limits per node. Defaults: 1 GiB memory, 8 GiB file. */
  maxMemoryStore?: number;
  maxFileStore?: number;
  /** How long start() waits for a JetStream meta leader. Default 30 s. */
  readyTimeoutMs?: number;
  /** Extra lines for every node's config file. */
  extraConfig?: string;
  /** Route connections through relays in this process so that `cut(i)` / `heal(i)` work. Default false. */
  cuttableRoutes?: boolean;
  /**
   * The nodes to start now (indexes); the others start with `start(i)`. Default all. With a subset,
   * `startNatsCluster` does not wait for the cluster to be ready (it may not be able to be: a fresh
   * cluster needs its peers), so tests can start NATS and Junction nodes in any order.
   */
  startNodes?: number[];
}

export interface NatsNode {
  readonly index: number;
  /** server_name, also the JetStream peer name (`n1`, `n2`, …). */
  readonly name: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly httpPort: number;
  readonly url: string;
  readonly storeDir: string;
  readonly configFile: string;
  /** The running process's pid, undefined while stopped. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** The node's last 20 kB of output. */
  output(): string;
}

/** The monitoring answer of `/jsz` (only what tests read). */
export interface Jsz {
  server_id: string;
  streams: number;
  consumers: number;
  messages: number;
  meta_cluster?: {
    name?: string;
    leader?: string;
    cluster_size: number;
    replicas?: { name: string; current: boolean; offline?: boolean }[];
  };
  account_details?: {
    name: string;
    stream_detail?: {
      name: string;
      cluster?: { leader?: string; replicas?: { name: string; current: boolean; offline?: boolean; lag?: number }[] };
      state: { messages: number; bytes: number; first_seq: number; last_seq: number; consumer_count: number };
    }[];
  }[];
}

const REGISTRY = join(tmpdir(), 'junction-nats-harness');
const live = new Set<NatsCluster>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.killAllSync();
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills nodes left by harness runs whose process is gone (crashed test workers). */
function reapOrphans(): void {
  if (!existsSync(REGISTRY)) return;
  for (const f of readdirSync(REGISTRY)) {
    const file = join(REGISTRY, f);
    try {
      const entry = JSON.parse(readFileSync(file, 'utf8')) as { owner: number; nodes: { pid: number; config: string }[]; dir: string };
      if (pidAlive(entry.owner)) continue;
      for (const n of entry.nodes) {
        let cmdline = '';
        try {
          cmdline = readFileSync(`/proc/${n.pid}/cmdline`, 'utf8');
        } catch {
          continue;
        }
        if (cmdline.includes('nats-server') && cmdline.includes(n.config)) {
          try {
            process.kill(n.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      rmSync(entry.dir, { recursive: true, force: true });
      unlinkSync(file);
    } catch {
      // a registry file being written right now, or garbage: leave it
    }
  }
}

/** One relayed route connection (i→j). */
interface Relayed {
  from: number;
  to: number;
  inbound: Socket;
  outbound?: Socket | undefined;
  /** Cut: data is read and dropped. */
  blackholed: boolean;
}

/** TCP relays for the routes: one listener per ordered pair (from → to), forwarding to `to`'s cluster port. */
class RouteRelays {
  readonly cut = new Set<number>();
  private readonly conns = new Set<Relayed>();
  private readonly servers: Server[] = [];
  /** ports[from][to]: the relay port node `from` dials to reach node `to`. */
  readonly ports: number[][] = [];
  /** Port of a listener that closes every connection: what the nodes advertise (so gossip finds nothing). */
  deadPort = 0;

  /** `avoid`: ports picked for the nodes but not bound yet (an ephemeral port of a relay must not take one). */
  static async create(clusterPorts: number[], avoid: ReadonlySet<number>): Promise<RouteRelays> {
    const r = new RouteRelays();
    try {
      const dead = createServer((s) => s.destroy());
      r.servers.push(dead);
      r.deadPort = await listen(dead, avoid);
      for (let from = 0; from < clusterPorts.length; from++) {
        r.ports.push([]);
        for (let to = 0; to < clusterPorts.length; to++) {
          if (from === to) {
            r.ports[from]!.push(0);
            continue;
          }
          const srv = createServer((sock) => r.accept(from, to, clusterPorts[to]!, sock));
          r.servers.push(srv);
          r.ports[from]!.push(await listen(srv, avoid));
        }
      }
    } catch (err) {
      await r.close();
      throw err;
    }
    return r;
  }

  private accept(from: number, to: number, target: number, inbound: Socket): void {
    const c: Relayed = { from, to, inbound, blackholed: false };
    this.conns.add(c);
    inbound.setNoDelay(true);
    inbound.on('error', () => {});
    inbound.on('close', () => {
      c.outbound?.destroy();
      this.conns.delete(c);
    });
    if (this.cut.has(from) || this.cut.has(to)) {
      this.blackhole(c);
      return;
    }
    const outbound = createConnection({ host: '127.0.0.1', port: target });
    c.outbound = outbound;
    outbound.setNoDelay(true);
    outbound.on('error', () => {});
    outbound.on('close', () => inbound.destroy());
    inbound.on('data', (d: Buffer) => {
      if (!c.blackholed && !outbound.write(d)) inbound.pause();
    });
    outbound.on('drain', () => inbound.resume());
    outbound.on('data', (d: Buffer) => {
      if (!c.blackholed && !inbound.write(d)) outbound.pause();
    });
    inbound.on('drain', () => outbound.resume());
  }

  /** Stops forwarding: both sides keep reading (so nobody blocks) and the bytes are dropped. */
  private blackhole(c: Relayed): void {
    c.blackholed = true;
    c.inbound.resume();
    c.outbound?.resume();
    if (c.inbound.listenerCount('data') === 0) c.inbound.on('data', () => {});
  }

  cutNode(i: number): void {
    this.cut.add(i);
    for (const c of this.conns) if (c.from === i || c.to === i) this.blackhole(c);
  }

  healNode(i: number): void {
    this.cut.delete(i);
    for (const c of [...this.conns]) {
      if (c.blackholed && !this.cut.has(c.from) && !this.cut.has(c.to)) {
        // Its stream lost bytes: reset both sides, the servers dial again.
        c.inbound.resetAndDestroy();
        c.outbound?.resetAndDestroy();
        this.conns.delete(c);
      }
    }
  }

  async close(): Promise<void> {
    for (const c of this.conns) {
      c.inbound.destroy();
      c.outbound?.destroy();
    }
    this.conns.clear();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** Listens on an ephemeral loopback port that is not in `avoid`. */
async function listen(srv: Server, avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        srv.off('error', reject);
        resolve((srv.address() as { port: number }).port);
      });
    });
    if (!avoid.has(port)) return port;
    await new Promise<void>((r) => srv.close(() => r()));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

class Node implements NatsNode {
  child: ChildProcess | undefined;
  exited: Promise<unknown> | undefined;
  /** Killed or stopped on purpose: its exit is not a start failure. */
  expectedDown = false;
  private out = '';
  constructor(
    readonly index: number,
    readonly name: string,
    readonly port: number,
    readonly clusterPort: number,
    readonly httpPort: number,
    readonly storeDir: string,
    readonly configFile: string,
  ) {}
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }
  output(): string {
    return this.out;
  }
  append(d: Buffer): void {
    this.out = (this.out + d.toString()).slice(-20_000);
  }
}

/** create(): a node could not bind a port (another process took it between the pick and the bind). */
class PortTaken {
  constructor(readonly err: unknown) {}
}

/** A running test cluster. Create with {@link startNatsCluster}. */
export class NatsCluster {
  private readonly bin = process.env['NATS_SERVER_BIN'] ?? 'nats-server';
  private readonly registryFile: string;
  private stopped = false;

  private constructor(
    readonly dir: string,
    private readonly nodeList: Node[],
    private readonly readyTimeoutMs: number,
    private readonly relays?: RouteRelays | undefined,
  ) {
    this.registryFile = join(REGISTRY, `${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  }

  /** Client URLs of every node (running or not), for a client's server list. */
  get servers(): string[] {
    return this.nodeList.map((n) => n.url);
  }

  get nodes(): readonly NatsNode[] {
    return this.nodeList;
  }

  node(indexOrName: number | string): NatsNode {
    const n = typeof indexOrName === 'number' ? this.nodeList[indexOrName] : this.nodeList.find((x) => x.name === indexOrName);
    if (!n) throw new Error(`no node ${String(indexOrName)}`);
    return n;
  }

  /**
   * @internal Ports are picked free (bound and released), so another process on the machine (other test
   * runs) can take one before nats-server binds it: a node that fails to bind makes the whole cluster start
   * again on fresh ports, up to 5 times.
   */
  static async create(opts: NatsClusterOptions): Promise<NatsCluster> {
    installExitHook();
    reapOrphans();
    mkdirSync(REGISTRY, { recursive: true });
    for (let attempt = 1; ; attempt++) {
      const made = await NatsCluster.build(opts);
      if (!(made instanceof PortTaken) || attempt >= 5) {
        if (made instanceof PortTaken) throw made.err;
        return made;
      }
    }
  }

  /** One try of create(): the cluster, or PortTaken when a node could not bind its ports (stopped already). */
  private static async build(opts: NatsClusterOptions): Promise<NatsCluster | PortTaken> {
    const count = opts.nodes ?? 3;
    const dir = await mkdtemp(join(tmpdir(), 'junction-nats-'));
    const ports: { client: number; cluster: number; http: number }[] = [];
    const taken = new Set<number>();
    const pick = async (): Promise<number> => {
      for (;;) {
        const p = await freePort();
        if (!taken.has(p)) {
          taken.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < count; i++) ports.push({ client: await pick(), cluster: await pick(), http: await pick() });
    const relays =
      opts.cuttableRoutes && count > 1
        ? await RouteRelays.create(
            ports.map((p) => p.cluster),
            taken,
          )
        : undefined;
    const routes = ports.map((p) => `nats-route://127.0.0.1:${p.cluster}`);
    const routesOf = (i: number): string[] =>
      relays ? relays.ports[i]!.flatMap((port, j) => (j === i ? [] : [`nats-route://127.0.0.1:${port}`])) : routes;
    const maxPayload = opts.maxPayload ?? 72 * 1024 * 1024;
    const nodes: Node[] = [];
    for (let i = 0; i < count; i++) {
      const name = `n${i + 1}`;
      const storeDir = join(dir, name);
      await mkdir(storeDir, { recursive: true });
      const configFile = join(dir, `${name}.conf`);
      const p = ports[i]!;
      await writeFile(
        configFile,
        [
          `server_name: ${name}`,
          `listen: 127.0.0.1:${p.client}`,
          `http: 127.0.0.1:${p.http}`,
          `max_payload: ${maxPayload}`,
          `max_pending: ${Math.max(256 * 1024 * 1024, maxPayload * 2)}`,
          `jetstream {`,
          `  store_dir: "${storeDir}"`,
          `  max_memory_store: ${opts.maxMemoryStore ?? 1024 * 1024 * 1024}`,
          `  max_file_store: ${opts.maxFileStore ?? 8 * 1024 * 1024 * 1024}`,
          `}`,
          // One node runs JetStream standalone: a one-node cluster would wait for a meta leader forever.
          ...(count > 1
            ? [
                `cluster {`,
                `  name: junction-test`,
                `  listen: 127.0.0.1:${p.cluster}`,
                ...(relays ? [`  advertise: 127.0.0.1:${relays.deadPort}`] : []),
                `  routes: [`,
                ...routesOf(i).map((r) => `    ${r}`),
                `  ]`,
                `}`,
              ]
            : []),
          opts.extraConfig ?? '',
          '',
        ].join('\n'),
      );
      nodes.push(new Node(i, name, p.client, p.cluster, p.http, storeDir, configFile));
    }
    const cluster = new NatsCluster(dir, nodes, opts.readyTimeoutMs ?? 30_000, relays);
    live.add(cluster);
    const now = opts.startNodes ?? nodes.map((n) => n.index);
    try {
      for (const n of nodes) if (now.includes(n.index)) cluster.spawnNode(n);
      if (now.length === nodes.length) await cluster.waitUntilReady();
      else await cluster.waitForBinds(now);
    } catch (err) {
      const taken = cluster.portTaken();
      await cluster.stop();
      if (taken) return new PortTaken(err);
      throw err;
    }
    return cluster;
  }

  /** Whether a node failed because one of its ports was in use (another process took it). */
  private portTaken(): boolean {
    return this.nodeList.some((n) => /address already in use/i.test(n.output()));
  }

  /** Waits until the given nodes listen for clients (their /healthz answers at all), for a start without readiness. */
  private async waitForBinds(indexes: number[]): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (const i of indexes) {
      const n = this.nodeList[i]!;
      for (;;) {
        if (n.child && !n.running) throw new Error(`${n.name} exited while starting:\n${n.output()}`);
        const up = await fetch(`http://127.0.0.1:${n.httpPort}/varz`, { signal: AbortSignal.timeout(2_000) }).then(
          (r) => r.ok,
          () => false,
        );
        if (up) break;
        if (Date.now() > deadline) throw new Error(`${n.name} did not listen within ${this.readyTimeoutMs} ms:\n${n.output()}`);
        await sleep(50);
      }
    }
  }

  private spawnNode(n: Node): void {
    if (this.stopped) throw new Error('cluster stopped');
    if (n.running) return;
    const child = spawn(this.bin, ['-c', n.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => n.append(d));
    child.stderr!.on('data', (d: Buffer) => n.append(d));
    n.child = child;
    n.exited = once(child, 'exit').catch(() => undefined);
    child.on('error', (err) => n.append(Buffer.from(`spawn error: ${err.message}\n`)));
    this.writeRegistry();
  }

  private writeRegistry(): void {
    const nodes = this.nodeList.flatMap((n) => (n.pid !== undefined ? [{ pid: n.pid, config: n.configFile }] : []));
    try {
      writeFileSync(this.registryFile, JSON.stringify({ owner: process.pid, dir: this.dir, nodes }));
    } catch {
      // the registry is a safety net only
    }
  }

  /** GET a node's monitoring endpoint. */
  async monitor<T = unknown>(index: number, path: string): Promise<T> {
    const n = this.nodeList[index]!;
    const res = await fetch(`http://127.0.0.1:${n.httpPort}${path}`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`${n.name} ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** `/jsz` of one node; `streams: true` includes that node's own view of every stream. */
  jsz(index: number, opts: { streams?: boolean } = {}): Promise<Jsz> {
    return this.monitor<Jsz>(index, opts.streams ? '/jsz?accounts=true&streams=true' : '/jsz');
  }

  /** Waits until every running node is healthy and they agree on one JetStream meta leader; returns its name (a lone node: its own). */
  async waitUntilReady(timeoutMs = this.readyTimeoutMs): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const running = this.nodeList.filter((n) => n.running);
      if (running.length === 0) throw new Error('no node is running');
      try {
        const leaders = new Set<string>();
        for (const n of running) {
          const health = await fetch(`http://127.0.0.1:${n.httpPort}/healthz`, { signal: AbortSignal.timeout(2_000) });
          if (!health.ok) throw new Error(`${n.name} /healthz: ${health.status} ${await health.text()}`);
          if (this.nodeList.length === 1) {
            leaders.add(n.name);
            continue;
          }
          const j = await this.jsz(n.index);
          const leader = j.meta_cluster?.leader;
          if (!leader) throw new Error(`${n.name} has no meta leader yet`);
          leaders.add(leader);
        }
        if (leaders.size === 1) return [...leaders][0]!;
        last = `nodes disagree on the meta leader: ${[...leaders].join(', ')}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      const dead = this.nodeList.find((n) => n.child && !n.running && !n.expectedDown);
      if (dead) throw new Error(`${dead.name} exited while starting:\n${dead.output()}`);
      if (Date.now() > deadline)
        throw new Error(
          `NATS cluster not ready after ${timeoutMs} ms: ${last}\n${this.nodeList.map((n) => `--- ${n.name}\n${n.output().slice(-3_000)}`).join('\n')}`,
        );
      await sleep(100);
    }
  }

  /** SIGKILLs one node and waits for it to exit. */
  async kill(index: number): Promise<void> {
    const n = this.nodeList[index]!;
    n.expectedDown = true;
    if (n.running) {
      n.child!.kill('SIGKILL');
      await n.exited;
    }
    this.writeRegistry();
  }

  /**
   * Starts a node (again: same name, ports and store dir) and waits until the cluster is ready, or with
   * `wait: false` only until the node listens. A port another process took meanwhile is tried again for
   * 10 s.
   */
  async start(index: number, opts: { wait?: boolean } = {}): Promise<void> {
    const n = this.nodeList[index]!;
    n.expectedDown = false;
    for (const deadline = Date.now() + 10_000; ;) {
      this.spawnNode(n);
      try {
        await this.waitForBinds([index]);
        break;
      } catch (err) {
        if (!/address already in use/i.test(n.output()) || Date.now() > deadline) throw err;
        await n.exited;
        await sleep(250);
      }
    }
    if (opts.wait ?? true) await this.waitUntilReady();
  }

  /**
   * Cuts node `index` off the network of routes (needs `cuttableRoutes`): every route to and from it is
   * blackholed until `heal(index)`. Its clients stay connected to it (cut the routes, not the clients).
   */
  cut(index: number): void {
    if (!this.relays) throw new Error('cut() needs startNatsCluster({ cuttableRoutes: true })');
    this.relays.cutNode(index);
  }

  /** Ends a cut: the blackholed routes are reset and the servers reconnect. */
  heal(index: number): void {
    this.relays?.healNode(index);
  }

  /** The nodes cut off now. */
  get cutNodes(): number[] {
    return this.relays ? [...this.relays.cut] : [];
  }

  /** Kills every node, removes the store dirs. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const n of this.nodeList) {
      n.expectedDown = true;
      if (n.running) n.child!.kill('SIGKILL');
    }
    await Promise.all(this.nodeList.map((n) => n.exited));
    await this.relays?.close();
    live.delete(this);
    try {
      unlinkSync(this.registryFile);
    } catch {
      // not written
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  /** @internal Synchronous last resort for the process exit hook. */
  killAllSync(): void {
    for (const n of this.nodeList) {
      if (n.running) {
        try {
          process.kill(n.child!.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
      unlinkSync(this.registryFile);
    } catch {
      // best effort
    }
  }
}

/** Starts a JetStream cluster on loopback ports and waits for its meta leader. Call `stop()` when done (afterAll). */
/** The leader of `stream` as the first answering node among `among` (default: the running nodes) sees it. */
export async function streamLeader(cluster: NatsCluster, stream: string, among?: number[]): Promise<string | undefined> {
  for (const i of among ?? cluster.nodes.filter((n) => n.running).map((n) => n.index)) {
    const j = await cluster.jsz(i, { streams: true }).catch(() => undefined);
    const sd = j?.account_details?.flatMap((a) => a.stream_detail ?? []).find((d) => d.name === stream);
    if (sd?.cluster?.leader) return sd.cluster.leader;
  }
  return undefined;
}

/** One node's own replica state of a stream. */
export async function localState(cluster: NatsCluster, index: number, stream: string) {
  const j = await cluster.jsz(index, { streams: true });
  return j.account_details?.flatMap((a) => a.stream_detail ?? []).find((d) => d.name === stream)?.state;
}

/**
 * Whether this nats-server version has the raft catch-up fix (nats-io/nats-server#5987, 2.10.23): before
 * it, a stream leader that took a publish it could not replicate (cut off, or killed with it in flight)
 * keeps that entry after it rejoins and serves it when it leads again (core/cluster README).
 */
export function raftDesyncFixed(version: string): boolean {
  const [a = 0, b = 0, c = 0] = version.split(/[.-]/).map((x) => Number.parseInt(x, 10));
  return a > 2 || (a === 2 && (b > 10 || (b === 10 && c >= 23)));
}

export function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  return NatsCluster.create(opts);
}
