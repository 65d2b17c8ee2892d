/**
 * The engine's own request layer over one NATS connection. nats.js's `request()` and `js.publish()` cost
 * a subscription lookup, a timer and an Error object (for async stack traces) per call; at tens of
 * thousands of publishes per second that is most of the client's CPU. Here every reply comes to ONE
 * wildcard subscription and is matched by its last subject token, and one interval sweeps timeouts, so
 * a publish costs a map entry and a promise.
 *
 * Pulls (consumer fetches) use a subscription of their own per fetch (see {@link PullSession}). It stays
 * subscribed after its fetch ended until every pull request of it ended on the server (its batch, a status,
 * its `expires`): a pull still waiting then (the other partitions' pulls of a long poll, a no-wait pull
 * stalled behind others) may still deliver, and with the inbox unsubscribed a delivery crossing a route
 * in that instant would be lost — left pending in JetStream until its ack deadline. Such late deliveries go
 * to the wire's `onOrphan` (the store carries them to the next fetch).
 */
import { headers as natsHeaders, nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { JetStreamApiError } from './errors.js';

/** A request that got no answer in time. */
export class RequestTimeoutError extends Error {
  override name = 'RequestTimeoutError';
}

/** A request to a subject nobody listens on (503 no responders): e.g. a stream without a leader, or deleted. */
export class NoRespondersError extends Error {
  override name = 'NoRespondersError';
}

/** The connection closed with the request in flight. */
export class WireClosedError extends Error {
  override name = 'WireClosedError';
}

/**
 * A publish to a stream that has no reachable leader right now (see leaders.ts). `sent`: the message went
 * out before that was known, so it may still be stored; otherwise it was not sent at all.
 */
export class LeaderlessError extends Error {
  override name = 'LeaderlessError';
  constructor(
    /** What the stream is, for messages: `partition 0 of station "orders"`. */
    readonly what: string,
    readonly reason: string,
    readonly sent: boolean,
  ) {
    super(`${what} has no reachable leader: ${reason}`);
  }
}

export interface PubAck {
  stream: string;
  seq: number;
  duplicate?: boolean;
}

interface Pending {
  resolve(m: Msg): void;
  reject(e: Error): void;
  deadline: number;
  subject: string;
  /** A publish with a Nats-Msg-Id keeps what it sent: it may be sent again (see resendWhere). */
  data?: Uint8Array | undefined;
  hdrs?: Record<string, string> | undefined;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class Wire {
  /** Every reply subject of this wire starts with this. */
  readonly root: string;
  private readonly replyPrefix: string;
  private readonly pending = new Map<number, Pending>();
  /** Requests with a timeout of their own (shorter than timeoutMs): swept whole, they are few. */
  private readonly short = new Map<number, Pending>();
  private seq = 0;
  private readonly sub: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private closedErr: Error | undefined;
  /** Receives what pulls deliver after their fetch ended (set by the store). */
  onOrphan: ((m: Msg) => void) | undefined;

  constructor(
    readonly nc: NatsConnection,
    /** Every request times out after this long. One value for all keeps the pending map in deadline order. */
    readonly timeoutMs: number,
  ) {
    this.root = `_JNC.${nuid.next()}`;
    this.replyPrefix = `${this.root}.r.`;
    this.sub = nc.subscribe(`${this.replyPrefix}*`, { callback: (_err, m) => this.onReply(m) });
    this.sweeper = setInterval(() => this.sweep(), Math.min(100, Math.max(10, timeoutMs / 10)));
    this.sweeper.unref();
  }

  private onReply(m: Msg): void {
    const id = Number(m.subject.slice(this.replyPrefix.length));
    let p = this.pending.get(id);
    if (p) this.pending.delete(id);
    else {
      p = this.short.get(id);
      if (!p) return; // timed out already
      this.short.delete(id);
    }
    if (m.headers?.code === 503) p.reject(new NoRespondersError(`no responders on ${p.subject}`));
    else p.resolve(m);
  }

  private sweep(): void {
    const now = performance.now();
    for (const [id, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(id);
      p.reject(new RequestTimeoutError(`no answer on ${p.subject} within ${this.timeoutMs} ms`));
    }
    for (const [id, p] of this.short) {
      if (p.deadline > now) continue;
      this.short.delete(id);
      p.reject(new RequestTimeoutError(`no answer on ${p.subject} in time`));
    }
  }

  /**
   * Fails the requests in flight to `subject` (all, or those sent before `sentBefore`, a performance.now()
   * time) with `err()`; their replies, if any come, are dropped. Returns how many.
   */
  failWhere(subject: string, err: () => Error, sentBefore = Infinity): number {
    let n = 0;
    for (const [id, p] of this.pending) {
      if (p.subject !== subject || p.deadline - this.timeoutMs >= sentBefore) continue;
      this.pending.delete(id);
      p.reject(err());
      n++;
    }
    return n;
  }

  /**
   * Sends again, under the same reply subject, the publishes to `subject` sent before `sentBefore` (a
   * performance.now() time) that carry a Nats-Msg-Id and are still unanswered: the first answer to either
   * copy settles it (JetStream's dedup makes the second a duplicate of the first if both land). Keeps
   * their deadlines. Returns how many.
   */
  resendWhere(subject: string, sentBefore: number): number {
    let n = 0;
    for (const [id, p] of this.pending) {
      if (p.subject !== subject || p.hdrs === undefined || p.deadline - this.timeoutMs >= sentBefore) continue;
      try {
        this.send1(subject, p.data, p.hdrs, `${this.replyPrefix}${id}`);
        n++;
      } catch {
        // the connection is closing: the request fails with it
      }
    }
    return n;
  }

  private send1(subject: string, data: Uint8Array | undefined, hdrs: Record<string, string> | undefined, reply: string): void {
    if (hdrs === undefined) {
      this.nc.publish(subject, data, { reply });
    } else {
      const h = natsHeaders();
      for (const k in hdrs) h.set(k, hdrs[k]!);
      this.nc.publish(subject, data, { reply, headers: h });
    }
  }

  /**
   * Sends a request and resolves with the reply. Rejects with RequestTimeoutError / NoRespondersError / WireClosedError.
   * `timeoutMs` below the wire's own timeout gives this request a shorter one.
   */
  request(subject: string, data: Uint8Array | undefined, hdrs?: Record<string, string>, timeoutMs?: number): Promise<Msg> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    const id = ++this.seq;
    const own = timeoutMs !== undefined && timeoutMs < this.timeoutMs;
    return new Promise<Msg>((resolve, reject) => {
      const p: Pending = { resolve, reject, deadline: performance.now() + (own ? timeoutMs : this.timeoutMs), subject };
      if (hdrs?.['Nats-Msg-Id'] !== undefined) {
        p.data = data;
        p.hdrs = hdrs;
      }
      (own ? this.short : this.pending).set(id, p);
      try {
        this.send1(subject, data, hdrs, `${this.replyPrefix}${id}`);
      } catch (err) {
        this.pending.delete(id);
        this.short.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** A JetStream API call: JSON in, JSON out; an `error` answer rejects with JetStreamApiError. */
  async api<T>(subject: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const m = await this.request(subject, body === undefined ? undefined : enc.encode(JSON.stringify(body)), undefined, timeoutMs);
    const text = dec.decode(m.data);
    const parsed = (text ? JSON.parse(text) : {}) as { error?: { code: number; err_code?: number; description?: string } } & T;
    if (parsed.error)
      throw new JetStreamApiError(parsed.error.code, parsed.error.err_code ?? 0, parsed.error.description ?? 'JetStream error', subject);
    return parsed;
  }

  /** Publishes to a stream subject and resolves with the store acknowledgement. */
  async publish(subject: string, data: Uint8Array, hdrs?: Record<string, string>): Promise<PubAck> {
    const m = await this.request(subject, data, hdrs);
    const ack = JSON.parse(dec.decode(m.data)) as PubAck & { error?: { code: number; err_code?: number; description?: string } };
    if (ack.error) throw new JetStreamApiError(ack.error.code, ack.error.err_code ?? 0, ack.error.description ?? 'publish failed', subject);
    return ack;
  }

  /** Fire and forget (acks that need no confirmation). */
  send(subject: string, data?: Uint8Array): void {
    if (!this.closedErr) this.nc.publish(subject, data);
  }

  /** Starts a pull session: a subscription of its own for the pull requests of one fetch. */
  pullSession(onMessage: (m: Msg, stream: string) => void): PullSession {
    return new PullSession(this, onMessage);
  }

  /** Fails every request in flight. The connection itself is closed by its owner. */
  close(): void {
    if (this.closedErr) return;
    this.closedErr = new WireClosedError('the store is closed');
    clearInterval(this.sweeper);
    for (const p of this.pending.values()) p.reject(this.closedErr);
    for (const p of this.short.values()) p.reject(this.closedErr);
    this.pending.clear();
    this.short.clear();
    try {
      this.sub.unsubscribe();
    } catch {
      // connection already closed
    }
  }
}

/** The terminal status of one pull request. */
export interface PullEnd {
  /** 404 no messages, 408 request timeout / pending, 409 max bytes exceeded or consumer gone, 0 = batch complete. */
  code: number;
  description: string;
}

/** How long an ended session stays subscribed at most for a pull without `expires` (a stalled no-wait pull). */
const LINGER_MAX_MS = 30_000;
/** Past a pull's `expires`, how long its end (the 408 status) may take to arrive. */
const EXPIRY_GRACE_MS = 2_000;

/**
 * The pull requests of one fetch, on a subscription of their own. `request()` sends one pull; messages
 * come to `onMessage`, and each request ends with a status (or with its batch delivered). `close()` ends
 * the fetch's part: its waiting requests resolve at once; the subscription stays until they ended on the
 * server too (or their `expires` passed), and what they deliver meanwhile goes to the wire's `onOrphan`.
 *
 * JetStream delivers a pulled message under its stream subject, not the pull's reply subject; only
 * status messages (404, 408, 409) come on the reply subject. So a message is matched to its pull by the
 * stream named in its ack subject: a session has at most one open pull per stream.
 */
export class PullSession {
  private readonly sub: Subscription;
  private readonly prefix: string;
  private n = 0;
  private readonly open = new Map<number, { stream: string; left: number; done: (end: PullEnd) => void; until: number }>();
  private readonly byStream = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly wire: Wire,
    private readonly onMessage: (m: Msg, stream: string) => void,
  ) {
    this.prefix = `${wire.root}.f.${nuid.next()}.`;
    this.sub = wire.nc.subscribe(`${this.prefix}*`, { callback: (_err, m) => this.onMsg(m) });
  }

  private end(req: number, end: PullEnd): void {
    const st = this.open.get(req);
    if (!st) return;
    this.open.delete(req);
    if (this.byStream.get(st.stream) === req) this.byStream.delete(st.stream);
    st.done(end);
  }

  private onMsg(m: Msg): void {
    const code = m.headers?.code ?? 0;
    if (code !== 0 && m.data.byteLength === 0 && m.subject.startsWith(this.prefix)) {
      if (code !== 100) this.end(Number(m.subject.slice(this.prefix.length)), { code, description: m.headers?.description ?? '' });
      return;
    }
    // $JS.ACK.<stream>.<consumer>.… (2.9); $JS.ACK.<domain>.<hash>.<stream>.… (2.10+)
    const t = m.reply?.split('.', 5);
    if (!t || t[0] !== '$JS' || t[1] !== 'ACK') return;
    let stream = t[2]!;
    let req = this.byStream.get(stream);
    if (req === undefined && t[4] !== undefined) {
      stream = t[4];
      req = this.byStream.get(stream);
    }
    if (this.closed) this.wire.onOrphan?.(m);
    else this.onMessage(m, stream);
    if (req === undefined) return;
    const st = this.open.get(req);
    if (st && --st.left <= 0) this.end(req, { code: 0, description: 'batch complete' });
  }

  /** Pull requests that have not ended yet. */
  get openCount(): number {
    return this.open.size;
  }

  /**
   * Sends one pull request. Resolves when it ends: its batch delivered, or a status. Never rejects; a
   * request that gets nothing back ends when the session closes (code -1).
   */
  request(
    stream: string,
    consumer: string,
    body: { batch: number; max_bytes?: number; no_wait?: boolean; expires?: number },
  ): Promise<PullEnd> {
    const req = ++this.n;
    return new Promise<PullEnd>((resolve) => {
      if (this.closed || this.byStream.has(stream)) {
        resolve({ code: -1, description: this.closed ? 'session closed' : 'a pull on this stream is still open' });
        return;
      }
      const until = performance.now() + (body.expires !== undefined ? body.expires / 1e6 + EXPIRY_GRACE_MS : LINGER_MAX_MS);
      this.open.set(req, { stream, left: body.batch, done: resolve, until });
      this.byStream.set(stream, req);
      try {
        this.wire.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`, enc.encode(JSON.stringify(body)), {
          reply: `${this.prefix}${req}`,
        });
      } catch {
        this.end(req, { code: -1, description: 'connection closed' });
      }
    });
  }

  /**
   * Ends the fetch's use of the session: requests still open resolve now (code -1). The subscription stays
   * until they have ended on the server (or their `expires` passed); what they deliver meanwhile goes to the
   * wire's `onOrphan`, so nothing delivered to this node is dropped.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiting = [...this.open.values()];
    for (const st of waiting) st.done({ code: -1, description: 'session closed' });
    if (waiting.length === 0 || this.wire.nc.isClosed()) return this.unsubscribe();
    // The requests stay in `open` (their promises are settled: done again is a no-op) until they end.
    const check = (): void => {
      const now = performance.now();
      for (const [req, st] of this.open) if (st.until <= now) this.open.delete(req);
      if (this.open.size === 0 || this.wire.nc.isClosed()) this.unsubscribe();
      else setTimeout(check, 250).unref();
    };
    setTimeout(check, 250).unref();
  }

  private unsubscribe(): void {
    try {
      this.sub.unsubscribe();
    } catch {
      // the connection closed: nothing more can arrive
    }
  }
}
