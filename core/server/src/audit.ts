/**
 * The audit trail (auth on): every change (a request that manages a station, a group, a connector, a
 * user or a token; logins and logouts) and every denied request (401, 403, 429) is appended to the
 * station `__audit` as one JSON message: who, what, when, from where, and the answer's status.
 *
 * The issue names it `$audit`; `$` is not a station-name character in either engine, so it is
 * `__audit`, one of Junction's own stations (`__…`: listed only with `?system=true`, and the broker's API
 * refuses to write, change or delete them). The access hook also refuses produce and manage on it to
 * everybody, and reading it needs `read` on cluster `audit`.
 *
 * Never in an entry: bodies (passwords, connector secrets), query strings (the Memphis gateway's
 * `?authorization=`), credentials. Entries are batched (at most every 200 ms) and bounded: when more
 * than 10,000 wait (the store is down, a flood of denied requests), new ones are counted and dropped,
 * and the count is logged and written with the next entry that gets through.
 */
import type { StationStore } from '@junction/broker';
import { ErrorCode, isJunctionError } from '@junction/broker';

export const AUDIT_STATION = '__audit';

export interface AuditEntry {
  /** ISO 8601 */
  at: string;
  who: { kind: 'user'; name: string } | { kind: 'token'; id: string; name: string; owner: string } | { kind: 'anonymous' };
  /** The route pattern with its parameters, what the request was checked for (names from the body too), the answer's status. */
  what: {
    method: string;
    route: string;
    params: Record<string, string>;
    checked?: { resource: string; action: string; name?: string }[] | undefined;
    status: number;
  };
  from: string;
  requestId: string;
  /** Entries dropped before this one (the queue was full). */
  dropped?: number | undefined;
}

const MAX_QUEUE = 10_000;
const FLUSH_MS = 200;
const MAX_BATCH = 1000;

interface Logger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export class AuditLog {
  private queue: AuditEntry[] = [];
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly store: StationStore,
    private readonly logger: Logger,
  ) {}

  /** Creates the station when it is missing (retention 90 days, no dead letters). */
  async open(): Promise<void> {
    try {
      await this.store.createStation(AUDIT_STATION, {
        partitions: 1,
        retention: { maxAgeMs: 90 * 86_400_000 },
        deadLetter: { enabled: false },
      });
    } catch (err) {
      if (!isJunctionError(err) || err.code !== ErrorCode.STATION_EXISTS) throw err;
    }
  }

  record(entry: AuditEntry): void {
    if (this.closed) return;
    if (this.queue.length >= MAX_QUEUE) {
      if (this.dropped++ === 0) this.logger.warn({ station: AUDIT_STATION }, 'audit queue full: dropping entries until it drains');
      return;
    }
    if (this.dropped > 0) {
      entry.dropped = this.dropped;
      this.dropped = 0;
    }
    this.queue.push(entry);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, FLUSH_MS);
  }

  /** Writes what is queued (also called at close). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        try {
          await this.store.produce(
            AUDIT_STATION,
            batch.map((e) => ({ value: Buffer.from(JSON.stringify(e), 'utf8'), headers: { 'content-type': 'application/json' } })),
          );
        } catch (err) {
          this.logger.error(
            { err: (err as Error).message, entries: batch.length, station: AUDIT_STATION },
            'audit entries could not be written',
          );
          return;
        }
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
