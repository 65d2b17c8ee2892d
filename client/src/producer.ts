/**
 * The batching producer: `send()` one message at a time, and it travels with its neighbours in one
 * binary request. A batch leaves when it holds maxBatchMessages or maxBatchBytes, or lingerMs after
 * its first message — and while maxInFlight requests are already out, it keeps filling instead, so
 * under load batches grow and requests stay few.
 */
import type { ProduceMessage } from '@junction/protocol';
import { backoffDelay, type RetryOptions } from './backoff.js';
import { toWireMessage } from './wire.js';
import { ClientErrorCode, JunctionApiError, toApiError } from './errors.js';
import type { MessageValue, ProduceResult, ProducerMessage, StoredResult } from './types.js';

export interface ProducerOptions {
  /** How long a batch waits for more messages after its first. Default 2 ms; 0 sends on the next turn of the event loop. */
  lingerMs?: number | undefined;
  /** A batch leaves when it holds this many messages. Default 1000. */
  maxBatchMessages?: number | undefined;
  /** …or this many bytes (values, keys, headers; approximate). Default 4 MiB. A larger single message travels alone. */
  maxBatchBytes?: number | undefined;
  /** Requests out at once. Default 4. With more than 1, batches may be stored in a different order than sent. */
  maxInFlight?: number | undefined;
  /** Retries of batches of messages with a msgId (see Producer). Default: the client's retry options. */
  retry?: Partial<RetryOptions> | undefined;
}

/**
 * What a producer needs of a client: one produce request per batch. JunctionClient is one; tests
 * pass their own.
 */
export interface ProduceSender {
  readonly retry: RetryOptions;
  produceEncoded(station: string, messages: readonly ProduceMessage[]): Promise<ProduceResult[]>;
}

interface Item {
  msg: ProduceMessage;
  size: number;
  settle(r: ProduceResult): void;
  fail(e: JunctionApiError): void;
}

interface Batch {
  items: Item[];
  bytes: number;
  done: Promise<void>;
  resolveDone(): void;
}

const FRAME_OVERHEAD = 16;

/**
 * Refusals worth sending again (a cluster node during a leader election): UNAVAILABLE was not stored, so
 * any message is resent; NOT_ACKNOWLEDGED may have been stored, so only one with a msgId is (the dedup
 * window answers `duplicate` if it was).
 */
const NOT_STORED = 'UNAVAILABLE';
const MAYBE_STORED = 'NOT_ACKNOWLEDGED';

function retryableRefusal(code: string): boolean {
  return code === NOT_STORED || code === MAYBE_STORED;
}

function newBatch(): Batch {
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  return { items: [], bytes: 0, done, resolveDone };
}

function itemSize(m: ProduceMessage): number {
  let size = FRAME_OVERHEAD + m.value.byteLength;
  if (m.key !== undefined) size += m.key.length;
  if (m.msgId !== undefined) size += m.msgId.length;
  if (m.headers) for (const k in m.headers) size += 6 + k.length + (m.headers[k]?.length ?? 0);
  return size;
}

/**
 * A producer for one station (`client.producer(station, options)`).
 *
 * Delivery: `send()` resolves once the broker stored the message durably (under the station's fsync
 * policy) with its partition and offset, or answered it as a duplicate of an earlier msgId. It
 * rejects with a JunctionApiError when the broker refused the message (e.g. MESSAGE_TOO_LARGE, not
 * retryable) or when its batch's request failed.
 *
 * Network failures: when a batch's request fails in a way that may be temporary (network error,
 * timeout, 429, 5xx), it is unknown whether the broker stored it. Messages that carry a `msgId` are
 * then sent again by the producer itself, with backoff, up to `retry.retries` times — the broker's dedup
 * window makes that safe (a stored one answers `duplicate`). Messages without a msgId are not resent:
 * their promises reject with the retryable error, and the application decides (resending may store
 * them twice). Give every message a msgId for at-least-once without duplicates.
 *
 * Refusals during a leader election (cluster mode): a message refused UNAVAILABLE (not stored) is sent
 * again, with or without a msgId; one answered NOT_ACKNOWLEDGED (perhaps stored) only with a msgId; both
 * with the same backoff and `retry.retries`, then they reject with `retryable: true`. A resent message
 * may be stored after messages sent later.
 *
 * Memory: the producer holds what has been sent and not yet answered; await `send()` (or use
 * `flush()`) to bound it.
 */
export class Producer {
  private readonly lingerMs: number;
  private readonly maxBatchMessages: number;
  private readonly maxBatchBytes: number;
  private readonly maxInFlight: number;
  private readonly retry: RetryOptions;

  private current: Batch = newBatch();
  private readonly queue: Batch[] = [];
  private readonly outstanding = new Set<Batch>();
  private inFlight = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** The linger of the current batch ran out while every request slot was busy. */
  private lingerExpired = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly client: ProduceSender,
    readonly station: string,
    opts: ProducerOptions = {},
    private readonly onClose: () => void = () => {},
  ) {
    this.lingerMs = opts.lingerMs ?? 2;
    this.maxBatchMessages = opts.maxBatchMessages ?? 1000;
    this.maxBatchBytes = opts.maxBatchBytes ?? 4 * 1024 * 1024;
    this.maxInFlight = opts.maxInFlight ?? 4;
    this.retry = { ...client.retry, ...opts.retry };
    for (const [k, v] of Object.entries({
      lingerMs: this.lingerMs,
      maxBatchMessages: this.maxBatchMessages,
      maxBatchBytes: this.maxBatchBytes,
      maxInFlight: this.maxInFlight,
    })) {
      const min = k === 'lingerMs' ? 0 : 1;
      if (!Number.isFinite(v) || v < min)
        throw new JunctionApiError(ClientErrorCode.INVALID_INPUT, `producer option ${k} must be a number >= ${min}`);
    }
  }

  /** Messages waiting in the current batch or queued batches, plus those in requests not yet answered. */
  get pending(): number {
    let n = this.current.items.length;
    for (const b of this.outstanding) n += b.items.length;
    return n;
  }

  /**
   * Queues one message for the next batch. Resolves with where it was stored; see the class comment
   * for what rejects. Throws (rejects) CLOSED after close().
   */
  send(message: ProducerMessage | MessageValue): Promise<StoredResult> {
    if (this.closed) return Promise.reject(closedError());
    let msg: ProduceMessage;
    try {
      msg = toWireMessage(typeof message === 'string' || message instanceof Uint8Array ? { value: message } : message);
    } catch (err) {
      return Promise.reject(toApiError(err));
    }
    return new Promise<StoredResult>((resolve, reject) => {
      this.add({
        msg,
        size: itemSize(msg),
        settle: (r) =>
          r.status === 'rejected' ? reject(new JunctionApiError(r.code, r.message, { retryable: retryableRefusal(r.code) })) : resolve(r),
        fail: reject,
      });
    });
  }

  /**
   * Sends these messages together as one request of their own (not merged with send()'s batches,
   * though it shares the maxInFlight slots). Resolves with one result per message, in order; a
   * message the broker refused is a `rejected` result. Rejects when the request failed (after the
   * msgId retries described on the class); then the stored state of messages without a msgId is unknown.
   */
  sendBatch(messages: readonly (ProducerMessage | MessageValue)[]): Promise<ProduceResult[]> {
    if (this.closed) return Promise.reject(closedError());
    if (messages.length === 0) return Promise.resolve([]);
    let wire: ProduceMessage[];
    try {
      wire = messages.map((m) => toWireMessage(typeof m === 'string' || m instanceof Uint8Array ? { value: m } : m));
    } catch (err) {
      return Promise.reject(toApiError(err));
    }
    return new Promise<ProduceResult[]>((resolve, reject) => {
      const results = new Array<ProduceResult>(wire.length);
      let left = wire.length;
      let failed = false;
      const batch = newBatch();
      wire.forEach((msg, i) => {
        const size = itemSize(msg);
        batch.bytes += size;
        batch.items.push({
          msg,
          size,
          settle: (r) => {
            results[i] = r;
            if (--left === 0 && !failed) resolve(results);
          },
          fail: (e) => {
            if (failed) return;
            failed = true;
            reject(e);
          },
        });
      });
      this.seal();
      this.enqueue(batch);
    });
  }

  /** Sends the current batch now and resolves when every message sent before this call is answered (whatever the answer). */
  async flush(): Promise<void> {
    this.seal();
    await Promise.all([...this.outstanding].map((b) => b.done));
  }

  /** Flushes, then refuses further sends (CLOSED). Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = this.flush().finally(() => this.onClose());
    }
    return this.closing;
  }

  private add(item: Item): void {
    const cur = this.current;
    if (cur.items.length > 0 && cur.bytes + item.size > this.maxBatchBytes) this.seal();
    this.current.items.push(item);
    this.current.bytes += item.size;
    if (this.current.items.length >= this.maxBatchMessages || this.current.bytes >= this.maxBatchBytes) this.seal();
    else if (this.timer === undefined && !this.lingerExpired) this.startLinger();
  }

  private startLinger(): void {
    const expire = () => {
      this.timer = undefined;
      if (this.inFlight < this.maxInFlight) this.seal();
      // Every slot busy: keep filling; the next free slot takes this batch (see pump).
      else this.lingerExpired = true;
    };
    this.timer = this.lingerMs === 0 ? setImmediate(expire) : setTimeout(expire, this.lingerMs);
  }

  private clearLinger(): void {
    if (this.timer !== undefined) {
      // setTimeout and setImmediate handles need their own clear function.
      if (this.lingerMs === 0) clearImmediate(this.timer as NodeJS.Immediate);
      else clearTimeout(this.timer as NodeJS.Timeout);
      this.timer = undefined;
    }
    this.lingerExpired = false;
  }

  /** Closes the current batch and queues it for sending. */
  private seal(): void {
    this.clearLinger();
    if (this.current.items.length === 0) return;
    const b = this.current;
    this.current = newBatch();
    this.enqueue(b);
  }

  private enqueue(b: Batch): void {
    this.outstanding.add(b);
    this.queue.push(b);
    this.pump();
  }

  private pump(): void {
    if (this.queue.length === 0 && this.lingerExpired && this.inFlight < this.maxInFlight) this.seal();
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const b = this.queue.shift()!;
      this.inFlight++;
      void this.dispatch(b.items).finally(() => {
        this.inFlight--;
        this.outstanding.delete(b);
        b.resolveDone();
        this.pump();
      });
    }
  }

  /**
   * Sends items; on retryable failures resends what is safe to send again: after a failed request, those
   * with a msgId; after per-message refusals, UNAVAILABLE ones and NOT_ACKNOWLEDGED ones with a msgId.
   * Never rejects: every item is settled or failed.
   */
  private async dispatch(items: Item[]): Promise<void> {
    let pending = items;
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.retry.retries;
      const again: Item[] = [];
      try {
        const results = await this.client.produceEncoded(
          this.station,
          pending.map((i) => i.msg),
        );
        for (let i = 0; i < pending.length; i++) {
          const item = pending[i]!;
          const r = results[i]!;
          if (!last && r.status === 'rejected' && (r.code === NOT_STORED || (r.code === MAYBE_STORED && item.msg.msgId !== undefined)))
            again.push(item);
          else item.settle(r);
        }
      } catch (raw) {
        const err = toApiError(raw);
        if (!err.retryable || last) {
          for (const i of pending) i.fail(err);
          return;
        }
        for (const i of pending) {
          if (i.msg.msgId !== undefined) again.push(i);
          else i.fail(err);
        }
      }
      if (again.length === 0) return;
      pending = again;
      await new Promise((r) => setTimeout(r, backoffDelay(attempt, this.retry)));
    }
  }
}

function closedError(): JunctionApiError {
  return new JunctionApiError(ClientErrorCode.CLOSED, 'the producer is closed');
}
