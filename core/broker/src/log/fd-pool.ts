/**
 * A budget of open file descriptors for the files of partitions and groups (segments, checkpoints,
 * journals): an LRU of open handles. A file is opened on first use; a file nobody holds is kept open
 * (at the most recently used end) until the budget needs its descriptor, then closed — fsynced first
 * when it has writes that were not fsynced and its owner asked for that (`syncOnEvict`) — and reopened
 * on the next use. A holder (acquire … release) is never closed under, so a read or write racing an
 * eviction cannot fail; an eviction whose fsync fails makes the file fail (every later acquire throws),
 * as a failed fsync on the open handle would.
 *
 * The budget is process-wide (descriptors are a process resource): `FdPool.shared`, sized from the
 * soft RLIMIT_NOFILE (half of it: the rest is for sockets, transient files, the runtime), settable.
 * When every open file is held the budget is exceeded rather than a caller failed (counted in
 * `overBudget`); the headroom absorbs it.
 */
import { readFileSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** The soft and hard RLIMIT_NOFILE of this process (from /proc/self/limits), or undefined where it cannot be read. */
export function readNofileLimits(): { soft: number; hard: number } | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!m) return undefined;
  const num = (s: string): number => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
  const soft = num(m[1] as string);
  const hard = num(m[2] as string);
  return Number.isFinite(soft) && Number.isFinite(hard) ? { soft, hard } : undefined;
}

/** The smallest budget: below it the pool would thrash on one station's files. */
export const MIN_FD_BUDGET = 16;
/** The budget when the limits cannot be read. */
const FALLBACK_FD_BUDGET = 512;

/** The default budget: half the soft limit (at least MIN_FD_BUDGET). */
export function defaultFdBudget(): number {
  const l = readNofileLimits();
  if (!l) return FALLBACK_FD_BUDGET;
  return Math.max(MIN_FD_BUDGET, Math.floor(Math.min(l.soft, 1 << 30) / 2));
}

/** Counters of a pool (for metrics and the bench). */
export interface FdPoolStats {
  budget: number;
  /** Descriptors open (or being opened) now. */
  open: number;
  /** Of those, held by a reader or writer right now. */
  held: number;
  peak: number;
  opens: number;
  evictions: number;
  /** Opens made while every open file was held (the budget was exceeded). */
  overBudget: number;
}

/** The LRU (see the file comment). */
export class FdPool {
  private static instance: FdPool | undefined;
  /** The process-wide pool (created on first use with the default budget). */
  static get shared(): FdPool {
    FdPool.instance ??= new FdPool(defaultFdBudget());
    return FdPool.instance;
  }

  /** Open files nobody holds, least recently used first. */
  private readonly idle = new Set<PooledFile>();
  private openCount = 0;
  private heldCount = 0;
  private peak = 0;
  private opens = 0;
  private evictions = 0;
  private overBudget = 0;

  constructor(private budgetValue: number) {
    this.budgetValue = Math.max(MIN_FD_BUDGET, Math.floor(budgetValue));
  }

  get budget(): number {
    return this.budgetValue;
  }

  /** Changes the budget (closing idle files at once if it shrank). */
  setBudget(budget: number): void {
    this.budgetValue = Math.max(MIN_FD_BUDGET, Math.floor(budget));
    this.trim(0);
  }

  stats(): FdPoolStats {
    return {
      budget: this.budgetValue,
      open: this.openCount,
      held: this.heldCount,
      peak: this.peak,
      opens: this.opens,
      evictions: this.evictions,
      overBudget: this.overBudget,
    };
  }

  /** A descriptor is about to be opened: makes room for it (evicting idle files). */
  admit(): void {
    this.trim(1);
    if (this.openCount + 1 > this.budgetValue) this.overBudget++;
    this.openCount++;
    this.opens++;
    if (this.openCount > this.peak) this.peak = this.openCount;
  }

  /** A descriptor was closed (or its open failed). */
  closed(): void {
    this.openCount--;
  }

  held(delta: number): void {
    this.heldCount += delta;
  }

  /** The file is open and nobody holds it: most recently used now. */
  park(f: PooledFile): void {
    this.idle.delete(f);
    this.idle.add(f);
    if (this.openCount > this.budgetValue) this.trim(0);
  }

  /** The file is held again (or gone): not a candidate for eviction. */
  unpark(f: PooledFile): void {
    this.idle.delete(f);
  }

  private trim(room: number): void {
    while (this.openCount + room > this.budgetValue && this.idle.size > 0) {
      const f = this.idle.values().next().value as PooledFile;
      this.idle.delete(f);
      this.evictions++;
      f.evict();
    }
  }
}

/**
 * One file under an FdPool: opened on acquire (with `flags`; never created — whoever creates the file
 * does so first), closed by the pool when idle, reopened on the next acquire. Pair acquire with release.
 */
export class PooledFile {
  private handle: FileHandle | null = null;
  private opening: Promise<FileHandle> | null = null;
  private evicting: Promise<void> | null = null;
  private failure: Error | null = null;
  private refs = 0;
  private disposed: Promise<void> | null = null;
  private onIdle: (() => void) | null = null;
  /** Writes made through this file, and how many of them an fsync covered. */
  private writes = 0;
  private syncedWrites = 0;
  /** fsync the file before an eviction closes it when it has writes no fsync covered. */
  syncOnEvict = true;

  constructor(
    readonly path: string,
    private readonly flags: 'r' | 'r+' = 'r+',
    private readonly pool: FdPool = FdPool.shared,
  ) {}

  /** Installs a handle the caller opened (a file it just created); the pool now owns it. */
  adopt(handle: FileHandle): void {
    if (this.handle || this.disposed) {
      void handle.close().catch(() => {});
      return;
    }
    this.pool.admit();
    this.handle = handle;
    if (this.refs === 0) this.pool.park(this);
  }

  /** The open handle (opening it when needed), or null once disposed. Pair with release(). */
  async acquire(): Promise<FileHandle | null> {
    if (this.disposed) return null;
    this.refs++;
    if (this.refs === 1) {
      this.pool.held(1);
      this.pool.unpark(this);
    }
    try {
      while (!this.handle) {
        if (this.evicting) await this.evicting;
        if (this.failure) throw this.failure;
        if (this.handle) break;
        if (!this.opening) {
          this.pool.admit();
          this.opening = fsp.open(this.path, this.flags).catch((err: unknown) => {
            this.pool.closed();
            throw err;
          });
          const opening = this.opening;
          void opening.then(
            (h) => {
              if (this.opening === opening) {
                this.handle = h;
                this.opening = null;
              }
            },
            () => {
              if (this.opening === opening) this.opening = null;
            },
          );
        }
        const h = await this.opening;
        this.handle ??= h;
      }
      return this.handle;
    } catch (err) {
      this.release();
      throw err;
    }
  }

  release(): void {
    this.refs--;
    if (this.refs > 0) return;
    this.pool.held(-1);
    if (this.disposed) {
      this.onIdle?.();
      return;
    }
    if (this.handle) this.pool.park(this);
  }

  /** A write was made through the handle (an eviction fsyncs before closing, unless an fsync covered it). */
  noteWrite(): void {
    this.writes++;
  }

  /** fdatasync through the file (acquiring it), recording what it covered. */
  async datasync(): Promise<void> {
    const h = await this.acquire();
    if (!h) return;
    try {
      const covered = this.writes;
      await h.datasync();
      if (covered > this.syncedWrites) this.syncedWrites = covered;
    } finally {
      this.release();
    }
  }

  /** Writes no fsync covered yet. */
  get unsynced(): boolean {
    return this.writes > this.syncedWrites;
  }

  /** Called by the pool (the file is idle): closes the handle, fsyncing first when needed. */
  evict(): void {
    const h = this.handle;
    if (!h || this.refs > 0) return;
    this.handle = null;
    const sync = this.syncOnEvict && this.unsynced;
    const covered = this.writes;
    const prev = this.evicting;
    this.evicting = (async () => {
      await prev;
      try {
        if (sync) {
          await h.datasync();
          if (covered > this.syncedWrites) this.syncedWrites = covered;
        }
      } catch (err) {
        // Data the fsync covered is in doubt: the file fails as it would have with the handle open.
        this.failure = err instanceof Error ? err : new Error(String(err));
      } finally {
        await h.close().catch(() => {});
        this.pool.closed();
      }
    })().finally(() => {
      if (this.evicting === current) this.evicting = null;
    });
    const current = this.evicting;
  }

  /** Closes the handle once every holder released it; later acquires answer null. Idempotent. */
  dispose(): Promise<void> {
    this.disposed ??= new Promise<void>((resolve) => {
      const finish = (): void => {
        this.onIdle = null;
        this.pool.unpark(this);
        void (async () => {
          if (this.opening) await this.opening.catch(() => {});
          if (this.evicting) await this.evicting;
          const h = this.handle;
          this.handle = null;
          if (h) {
            await h.close().catch(() => {});
            this.pool.closed();
          }
          resolve();
        })();
      };
      if (this.refs === 0) finish();
      else this.onIdle = finish;
    });
    return this.disposed;
  }
}
