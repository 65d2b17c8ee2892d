/** Small helpers the runtime shares: backoff, a wake-up signal, a rate meter. */

/** Exponential backoff with full jitter: uniform in [0, min(max, base·2^(attempt-1))]. `attempt` from 1. */
export function jitteredBackoff(attempt: number, baseMs: number, maxMs: number): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.floor(Math.random() * cap);
}

/** Restart backoff of a failed task: 1 s, 2 s, 4 s … 60 s (no jitter: predictable in status). */
export function restartDelay(failures: number, baseMs = 1000, maxMs = 60_000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
}

/** A level-triggered wake-up: `wait()` resolves at the next `notify()` (or at once if one came since the last wait). */
export class Wakeup {
  private pending = false;
  private waiters: (() => void)[] = [];
  notify(): void {
    if (this.waiters.length === 0) {
      this.pending = true;
      return;
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  wait(timeoutMs?: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      this.waiters.push(done);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiters = this.waiters.filter((f) => f !== done);
          resolve();
        }, timeoutMs);
        timer.unref?.();
      }
    });
  }
}

/** Messages and bytes per second over the last `windowSec` seconds, in one-second buckets. */
export class RateMeter {
  private readonly msgs: number[];
  private readonly bytes: number[];
  private second = 0;
  constructor(private readonly windowSec = 10) {
    this.msgs = new Array<number>(windowSec).fill(0);
    this.bytes = new Array<number>(windowSec).fill(0);
  }
  private roll(now: number): void {
    const s = Math.floor(now / 1000);
    if (s === this.second) return;
    const gap = Math.min(this.windowSec, s - this.second);
    for (let i = 1; i <= gap; i++) {
      const idx = (this.second + i) % this.windowSec;
      this.msgs[idx] = 0;
      this.bytes[idx] = 0;
    }
    this.second = s;
  }
  add(messages: number, bytes: number, now = Date.now()): void {
    this.roll(now);
    const idx = this.second % this.windowSec;
    this.msgs[idx] = (this.msgs[idx] ?? 0) + messages;
    this.bytes[idx] = (this.bytes[idx] ?? 0) + bytes;
  }
  /** Rates over the completed seconds of the window (the current, partial second excluded). */
  rate(now = Date.now()): { msgsPerSec: number; bytesPerSec: number } {
    this.roll(now);
    const cur = this.second % this.windowSec;
    let m = 0;
    let b = 0;
    for (let i = 0; i < this.windowSec; i++) {
      if (i === cur) continue;
      m += this.msgs[i] ?? 0;
      b += this.bytes[i] ?? 0;
    }
    const n = this.windowSec - 1;
    return { msgsPerSec: Math.round(m / n), bytesPerSec: Math.round(b / n) };
  }
}

/** Runs async functions one after another (a per-connector lock). */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => {});
    return next;
  }
}

/**
 * Waits for `p` at most `ms`: true when it settled in time (fulfilled or rejected), false when the time
 * ran out (`p` keeps running; its outcome is ignored). Never rejects.
 */
export function settleWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, ms));
    p.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * The kind a connector has: a transform plugin is never a connector's own plugin (refused with
 * PLUGIN_KIND_MISMATCH), so its kind counts as unknown here.
 */
export function connectorKind(kind: 'sink' | 'source' | 'transform' | undefined): 'sink' | 'source' | undefined {
  return kind === 'transform' ? undefined : kind;
}
