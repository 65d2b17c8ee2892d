/**
 * The consumer: `for await (const m of consumer)` over one group of one station, long-polling the
 * broker with one batch prefetched, acks coalesced into few requests, and reconnection with backoff.
 */
import type { CreateGroupBody } from '@junction/protocol';
import { backoffDelay, sleep } from './backoff.js';
import { ClientErrorCode, JunctionApiError, toApiError } from './errors.js';
import { ConsumerMessage } from './message.js';
import { SettleBatcher } from './settle.js';
import type { Delivery, SettleResult } from './types.js';

export interface ConsumerOptions {
  /** Messages per fetch. Default 100. */
  maxMessages?: number | undefined;
  /** Bytes per fetch (at least one message comes even if larger). Default: the broker's (8 MiB). */
  maxBytes?: number | undefined;
  /** Long poll: how long a fetch waits for the first message. Default 5000 ms. */
  waitMs?: number | undefined;
  /** Create the group with these options before the first fetch (an existing group is used as it is). */
  create?: CreateGroupBody | undefined;
  /**
   * Ack each message when the loop asks for the next one. Default false. The message being handled
   * when the loop exits through break / return / throw is not acked (it comes back after the deadline).
   */
  autoAck?: boolean | undefined;
  /**
   * Settles made in one event-loop turn share a request; while one is out, new ones gather until it
   * is answered or this long has passed. Default 5 ms.
   */
  ackLingerMs?: number | undefined;
  /** A settle request leaves at once when this many ids of one kind wait. Default 1000. */
  maxAckBatch?: number | undefined;
  /** Reconnect backoff of the iterator. Default 100 ms doubling to 5 s, with jitter. */
  reconnect?: { minDelayMs?: number | undefined; maxDelayMs?: number | undefined } | undefined;
  /** Told about each failure the iterator recovers from (before it backs off and retries), and failed auto-acks. */
  onError?: ((err: JunctionApiError) => void) | undefined;
}

/** What a consumer needs of a client. JunctionClient is one; tests pass their own. */
export interface GroupClient {
  fetch(
    station: string,
    group: string,
    body: { maxMessages?: number; maxBytes?: number; waitMs?: number },
    opts?: { signal?: AbortSignal },
  ): Promise<Delivery[]>;
  createGroup(station: string, group: string, body?: CreateGroupBody, opts?: { signal?: AbortSignal }): Promise<unknown>;
  ack(station: string, group: string, deliveryIds: readonly string[]): Promise<SettleResult[]>;
  nack(station: string, group: string, deliveryIds: readonly string[], delayMs?: number): Promise<SettleResult[]>;
  deadLetter(station: string, group: string, deliveryIds: readonly string[], reason?: string): Promise<SettleResult[]>;
}

type FetchOutcome = { messages: ConsumerMessage[] } | { error: JunctionApiError } | { closed: true };
const CLOSED: FetchOutcome = { closed: true };

/**
 * A consumer of one group (`client.consumer(station, group, options)`).
 *
 * Iterating: `for await (const m of consumer)` yields every message delivered to this member, in
 * order per partition, until `close()` (or a break out of the loop, which closes it). One fetch is
 * always in flight while the application works on the current batch, so at most one batch waits
 * ahead (its deliveries' ack deadlines run meanwhile — size maxMessages to what the loop handles in
 * well under the group's maxAckTimeMs). On close, prefetched messages the loop never saw are nacked so
 * they come back at once.
 *
 * Failures: network errors, timeouts, 429 and 5xx (a broker restarting) are retried forever with
 * backoff, 100 ms doubling to 5 s with jitter; the loop just waits. Any other error (STATION_NOT_FOUND,
 * GROUP_NOT_FOUND, …) ends the loop by throwing it. One loop at a time may iterate a consumer.
 */
export class Consumer implements AsyncIterable<ConsumerMessage> {
  private readonly settler: SettleBatcher;
  private readonly abort = new AbortController();
  private readonly unyielded = new Set<ConsumerMessage>();
  private readonly fetchBody: { maxMessages: number; maxBytes?: number; waitMs: number };
  private readonly reconnect: { minDelayMs: number; maxDelayMs: number };
  private groupReady: boolean;
  private inFlight: Promise<FetchOutcome> | undefined;
  private iterating = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly client: GroupClient,
    readonly station: string,
    readonly group: string,
    private readonly opts: ConsumerOptions = {},
    private readonly onClose: () => void = () => {},
  ) {
    this.fetchBody = { maxMessages: opts.maxMessages ?? 100, waitMs: opts.waitMs ?? 5000 };
    if (opts.maxBytes !== undefined) this.fetchBody.maxBytes = opts.maxBytes;
    this.reconnect = { minDelayMs: opts.reconnect?.minDelayMs ?? 100, maxDelayMs: opts.reconnect?.maxDelayMs ?? 5000 };
    this.groupReady = opts.create === undefined;
    this.settler = new SettleBatcher(
      (kind, ids, arg) =>
        kind === 'ack'
          ? client.ack(station, group, ids)
          : kind === 'nack'
            ? client.nack(station, group, ids, arg as number | undefined)
            : client.deadLetter(station, group, ids, arg as string | undefined),
      { lingerMs: opts.ackLingerMs, maxIds: opts.maxAckBatch },
    );
  }

  /** True once close() was called (or the loop ended). */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * One fetch, by hand: up to maxMessages, waiting up to waitMs (both default to the consumer's).
   * Creates the group first when `create` was given. Not retried; rejects with the error. Settle the
   * messages as usual. Rejects with ABORTED when close() interrupts it, CLOSED after close().
   */
  async fetch(options: { maxMessages?: number; maxBytes?: number; waitMs?: number } = {}): Promise<ConsumerMessage[]> {
    if (this.closed) throw new JunctionApiError(ClientErrorCode.CLOSED, 'the consumer is closed');
    await this.ensureGroup();
    const ds = await this.client.fetch(this.station, this.group, { ...this.fetchBody, ...options }, { signal: this.abort.signal });
    return ds.map((d) => new ConsumerMessage(d, this.station, this.group, this.settler));
  }

  [Symbol.asyncIterator](): AsyncIterator<ConsumerMessage> {
    return this.iterate();
  }

  /**
   * Ends the iteration (an in-flight long poll is aborted), nacks prefetched messages the loop never
   * saw, and waits for the settles already made to be answered. Idempotent; never rejects.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.abort.abort();
      this.closing = (async () => {
        // A fetch that was answered just before the abort still hands its messages to unyielded.
        if (this.inFlight) await this.inFlight;
        const back = [...this.unyielded];
        this.unyielded.clear();
        for (const m of back) m.nack().catch(() => {});
        await this.settler.flush();
        this.onClose();
      })();
    }
    return this.closing;
  }

  private async *iterate(): AsyncGenerator<ConsumerMessage, void, undefined> {
    if (this.iterating) throw new JunctionApiError(ClientErrorCode.INVALID_INPUT, 'a consumer can be iterated by one loop at a time');
    if (this.closed) return;
    this.iterating = true;
    try {
      let next = this.startFetch();
      for (;;) {
        const outcome = await next;
        if ('closed' in outcome) return;
        if ('error' in outcome) throw outcome.error;
        // Prefetch: the next batch is on its way while the loop handles this one; never more than one.
        next = this.startFetch();
        for (const m of outcome.messages) {
          if (this.closed) return;
          this.unyielded.delete(m);
          yield m;
          if (this.opts.autoAck && !m.settled) m.ack().catch((err: unknown) => this.opts.onError?.(toApiError(err)));
        }
      }
    } finally {
      this.iterating = false;
      await this.close();
    }
  }

  private startFetch(): Promise<FetchOutcome> {
    const p = this.fetchWithReconnect();
    this.inFlight = p;
    return p;
  }

  /** Fetches until it gets an answer, the consumer closes, or a non-retryable error. Never rejects. */
  private async fetchWithReconnect(): Promise<FetchOutcome> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) return CLOSED;
      try {
        await this.ensureGroup();
        const ds = await this.client.fetch(this.station, this.group, this.fetchBody, { signal: this.abort.signal });
        const messages = ds.map((d) => new ConsumerMessage(d, this.station, this.group, this.settler));
        for (const m of messages) this.unyielded.add(m);
        return { messages };
      } catch (raw) {
        if (this.closed) return CLOSED;
        const err = toApiError(raw);
        if (!err.retryable) return { error: err };
        this.opts.onError?.(err);
        try {
          await sleep(backoffDelay(attempt, this.reconnect), this.abort.signal);
        } catch {
          return CLOSED;
        }
      }
    }
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      await this.client.createGroup(this.station, this.group, this.opts.create, { signal: this.abort.signal });
    } catch (err) {
      if (!(err instanceof JunctionApiError && err.code === 'GROUP_EXISTS')) throw err;
    }
    this.groupReady = true;
  }
}
