/**
 * Opening the store while NATS starts too. Junction nodes and NATS servers are often started at the same
 * moment (docker-compose, a Kubernetes rollout, a machine boot): the servers may not listen yet, then
 * listen without JetStream answering (no responders, or no meta leader: timeouts), then answer while the
 * cluster's peers are still joining (no suitable peers for a replicated bucket). Each step is retried here
 * with backoff until the open deadline, with a log line saying what is awaited; only errors that cannot
 * pass with time (authentication, a bad config) end the wait early.
 */
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { ErrorCode, JetStreamApiError, JsErr, JunctionError } from './errors.js';
import { NoRespondersError, RequestTimeoutError, type Wire } from './wire.js';

/** JetStream API errors that mean "not ready yet" while a cluster starts (nats-server's errors.json). */
const STARTING_CODES: ReadonlySet<number> = new Set([
  JsErr.CLUSTER_NOT_AVAILABLE, // no meta leader yet
  JsErr.NO_SUITABLE_PEERS, // fewer peers known than the replicas asked for: servers still joining
  JsErr.INSUFFICIENT_RESOURCES,
  10039, // JetStream not enabled for account: the server has not finished enabling it
  10076, // JetStream not enabled
]);

/** nats.js errors (by name: nats.js classes are not ours) that mean "not ready yet". */
const STARTING_NAMES: ReadonlySet<string> = new Set([
  'TimeoutError',
  'NoResponders',
  'NoRespondersError',
  'JetStreamNotEnabled',
  'RequestError',
  'ConnectionError',
]);

/** Whether an error of the NATS or JetStream layer can pass by itself while the cluster starts. */
export function isStarting(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof RequestTimeoutError || e instanceof NoRespondersError) return true;
    if (e instanceof JetStreamApiError) return e.status === 503 || STARTING_CODES.has(e.errCode);
    const named = e as Error & { code?: unknown; status?: unknown };
    if (named.name === 'JetStreamApiError')
      return named.status === 503 || (typeof named.code === 'number' && STARTING_CODES.has(named.code));
    if (STARTING_NAMES.has(named.name)) return true;
    // Node's socket errors while servers come up (connection refused or reset).
    if (typeof named.code === 'string' && /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT)$/.test(named.code)) return true;
  }
  return false;
}

/** Keeps trying `attempt` while it fails with a starting-up error, with backoff, until `deadline` (performance.now()). */
export async function retryWhileStarting<T>(
  what: string,
  deadline: number,
  log: Logger,
  attempt: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const began = performance.now();
  let lastLog = -Infinity;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      const out = await attempt();
      if (lastLog > -Infinity) log.info({ waitedMs: Math.round(performance.now() - began) }, `${what}: ready`);
      return out;
    } catch (err) {
      const left = deadline - performance.now();
      if (!isStarting(err) || left <= 0 || signal?.aborted) throw err;
      // The first line at once, then one every 5 s: an operator sees what the node waits for.
      if (performance.now() - lastLog >= 5_000) {
        lastLog = performance.now();
        log.warn(
          { reason: describe(err), waitedMs: Math.round(performance.now() - began), givesUpInMs: Math.round(left) },
          `${what}: not ready yet, trying again with backoff`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, left))));
    }
  }
}

function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) parts.push(e.message);
  return parts.join(': ') || String(err);
}

/** Connects to NATS, waiting (with backoff) for a server to listen, until `deadline`. */
export function connectUntil(options: ConnectionOptions, deadline: number, log: Logger, servers: string): Promise<NatsConnection> {
  return retryWhileStarting(`waiting for NATS at ${servers}`, deadline, log, () =>
    connect({ ...options, timeout: Math.max(1_000, Math.min(5_000, deadline - performance.now())) }),
  );
}

/** Waits until JetStream answers its account info (the servers have enabled it and elected a meta leader). */
export async function waitForJetStream(wire: Wire, deadline: number, log: Logger, servers: string): Promise<void> {
  await retryWhileStarting(`waiting for JetStream at ${servers}`, deadline, log, async () => {
    await wire.api('$JS.API.INFO', undefined, Math.max(500, Math.min(wire.timeoutMs, 5_000, deadline - performance.now())));
  });
}

/**
 * How many servers the NATS cluster has, as far as a client can tell: the servers the node was given and
 * the client URLs the servers advertise (`connect_urls`, every server of the cluster once it joined). A
 * server without a cluster (`cluster` absent from its INFO) is one, whatever the URLs. Servers that have
 * not joined yet and are not in the node's list are not counted.
 */
export function clusterSize(nc: NatsConnection, configured: readonly string[]): number {
  const info = nc.info;
  if (!info?.cluster) return 1;
  const hostPort = (u: string): string =>
    u
      .replace(/^[a-z]+:\/\//i, '')
      .replace(/\/.*$/, '')
      .toLowerCase();
  const advertised = new Set((info.connect_urls ?? []).map(hostPort));
  const given = new Set(configured.map(hostPort));
  return Math.max(1, advertised.size, given.size);
}

/** A JunctionError for an open that ran out of time. */
export function openFailed(what: string, err: unknown): JunctionError {
  return new JunctionError(ErrorCode.UNAVAILABLE, `${what}: ${describe(err)}`, { retryable: true, cause: err });
}
