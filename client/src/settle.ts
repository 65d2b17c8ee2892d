/**
 * Coalesces acks (and nacks, dead-letters) of single messages into few requests, one per kind (and
 * per nack delay / dead-letter reason). Each id's promise resolves with the broker's status for it.
 *
 * When to send, like a group commit: settles made in one turn of the event loop leave together at the
 * end of that turn; while a request is out, new ones gather until it is answered (or `lingerMs` has
 * passed) and then leave together; `maxIds` waiting of one kind leave at once. So a loop that awaits
 * each ack pays one round trip per message, not a linger, and a loop that does not await sends few,
 * large requests.
 */
import type { SettleStatus } from '@junction/protocol';
import { toApiError, type JunctionApiError } from './errors.js';
import type { SettleResult } from './types.js';

export type SettleKind = 'ack' | 'nack' | 'dead-letter';

/** Sends one settle request; `arg` is the nack delay or the dead-letter reason. */
export type SettleSend = (kind: SettleKind, deliveryIds: string[], arg: number | string | undefined) => Promise<SettleResult[]>;

export interface SettleBatcherOptions {
  /** How long ids wait for a request in flight before they go anyway. Default 5 ms. */
  lingerMs?: number | undefined;
  /** A request leaves at once when this many ids of one kind wait. Default 1000. */
  maxIds?: number | undefined;
}

interface Waiter {
  resolve(s: SettleStatus): void;
  reject(e: JunctionApiError): void;
}

interface Bucket {
  kind: SettleKind;
  arg: number | string | undefined;
  ids: string[];
  waiters: Waiter[];
}

export class SettleBatcher {
  private readonly lingerMs: number;
  private readonly maxIds: number;
  private readonly buckets = new Map<string, Bucket>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** Requests sent so far (for tests and metrics). */
  requests = 0;

  constructor(
    private readonly send: SettleSend,
    opts: SettleBatcherOptions = {},
  ) {
    this.lingerMs = opts.lingerMs ?? 5;
    this.maxIds = opts.maxIds ?? 1000;
  }

  /** Ids collected and not sent yet. */
  get waiting(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.ids.length;
    return n;
  }

  /**
   * Queues one delivery id. Resolves with the broker's status for it (`unknown` if the answer did not
   * mention it); rejects with the request's error when the request failed (after the client's retries).
   */
  add(kind: SettleKind, deliveryId: string, arg?: number | string): Promise<SettleStatus> {
    const key = `${kind}\u0000${arg === undefined ? '' : typeof arg === 'number' ? `n${arg}` : `s${arg}`}`;
    let b = this.buckets.get(key);
    if (!b) {
      b = { kind, arg, ids: [], waiters: [] };
      this.buckets.set(key, b);
    }
    const bucket = b;
    return new Promise<SettleStatus>((resolve, reject) => {
      bucket.ids.push(deliveryId);
      bucket.waiters.push({ resolve, reject });
      if (bucket.ids.length >= this.maxIds) this.sendBucket(key, bucket);
      else this.schedule();
    });
  }

  /** Sends everything waiting now and resolves when every request sent so far is answered. Never rejects. */
  async flush(): Promise<void> {
    this.sendAll();
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private schedule(): void {
    if (this.inFlight.size === 0) {
      this.immediate ??= setImmediate(() => {
        this.immediate = undefined;
        this.sendAll();
      });
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.sendAll();
      }, this.lingerMs);
    }
  }

  private unschedule(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  private sendAll(): void {
    this.unschedule();
    for (const [key, b] of [...this.buckets]) this.sendBucket(key, b);
  }

  private sendBucket(key: string, b: Bucket): void {
    this.buckets.delete(key);
    if (this.buckets.size === 0) this.unschedule();
    this.requests++;
    const p = this.send(b.kind, b.ids, b.arg).then(
      (results) => {
        const byId = new Map<string, SettleStatus>();
        for (const r of results) byId.set(r.deliveryId, r.status);
        for (let i = 0; i < b.ids.length; i++) b.waiters[i]!.resolve(byId.get(b.ids[i]!) ?? 'unknown');
      },
      (err: unknown) => {
        const e = toApiError(err);
        for (const w of b.waiters) w.reject(e);
      },
    );
    this.inFlight.add(p);
    void p.finally(() => {
      this.inFlight.delete(p);
      // What gathered while this request was out leaves now.
      if (this.inFlight.size === 0 && this.buckets.size > 0) {
        this.unschedule();
        this.schedule();
      }
    });
  }
}
