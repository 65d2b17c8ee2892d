/**
 * An append-only file with group commit: appends are written in order by one writer; callers that
 * need durability wait for an fdatasync that every caller waiting at that moment shares. Its descriptor
 * is under the process's descriptor budget (log/fd-pool.ts): closed while idle (fsynced first when it
 * holds writes no fsync covered and `syncOnEvict`), reopened by the next append.
 */
import { open } from 'node:fs/promises';
import { ErrorCode, JunctionError } from '../errors.js';
import { PooledFile } from '../log/fd-pool.js';

export class AppendFile {
  private pending: Buffer[] = [];
  private pendingSync: (() => void)[] = [];
  private pendingNoSync: (() => void)[] = [];
  private pendingFail: ((err: unknown) => void)[] = [];
  private running = false;
  private closed = false;
  private failure: JunctionError | undefined;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | undefined;

  private constructor(
    private readonly file: PooledFile,
    private position: number,
    private readonly onFsync?: (seconds: number) => void,
  ) {}

  /**
   * Opens (creating) a file for appending at `position` (the valid length; anything after is
   * overwritten). `syncOnEvict`: fsync unsynced writes before the descriptor budget closes the file.
   */
  static async open(path: string, position: number, onFsync?: (seconds: number) => void, syncOnEvict = true): Promise<AppendFile> {
    const fh = await open(path, 'a+');
    try {
      if ((await fh.stat()).size !== position) {
        await fh.close();
        const w = await open(path, 'r+');
        try {
          await w.truncate(position);
        } finally {
          await w.close();
        }
      }
    } finally {
      await fh.close().catch(() => {});
    }
    const file = new PooledFile(path, 'r+');
    file.syncOnEvict = syncOnEvict;
    return new AppendFile(file, position, onFsync);
  }

  get size(): number {
    return this.position + this.pending.reduce((n, b) => n + b.length, 0);
  }

  /** Queues bytes. Resolves after they are written (and fsynced when `sync`). */
  append(buf: Buffer, sync: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new JunctionError(ErrorCode.STORE_CLOSED, 'file is closed'));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.pending.push(buf);
      (sync ? this.pendingSync : this.pendingNoSync).push(resolve);
      this.pendingFail.push(reject);
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    this.idle = new Promise((r) => (this.idleResolve = r));
    try {
      while (this.pending.length > 0) {
        const bufs = this.pending;
        const syncs = this.pendingSync;
        const noSyncs = this.pendingNoSync;
        const fails = this.pendingFail;
        this.pending = [];
        this.pendingSync = [];
        this.pendingNoSync = [];
        this.pendingFail = [];
        try {
          const data = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
          const fh = await this.file.acquire();
          if (!fh) throw new Error('the file is closed');
          try {
            let written = 0;
            while (written < data.length) {
              const { bytesWritten } = await fh.write(data, written, data.length - written, this.position + written);
              written += bytesWritten;
            }
            this.file.noteWrite();
          } finally {
            this.file.release();
          }
          this.position += data.length;
          for (const r of noSyncs) r();
          if (syncs.length > 0) {
            const t0 = performance.now();
            await this.file.datasync();
            this.onFsync?.((performance.now() - t0) / 1000);
            for (const r of syncs) r();
          }
        } catch (cause) {
          this.failure = new JunctionError(ErrorCode.IO_ERROR, `write failed: ${(cause as Error).message}`, { cause, retryable: true });
          for (const f of fails) f(this.failure);
          for (const f of this.pendingFail) f(this.failure);
          this.pending = [];
          this.pendingSync = [];
          this.pendingNoSync = [];
          this.pendingFail = [];
        }
      }
    } finally {
      this.running = false;
      this.idleResolve?.();
    }
  }

  /** Waits until everything queued so far is written. */
  async drain(): Promise<void> {
    while (this.running) await this.idle;
  }

  async sync(): Promise<void> {
    await this.drain();
    if (!this.closed && this.file.unsynced) await this.file.datasync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.drain();
    this.closed = true;
    if (this.file.unsynced) await this.file.datasync().catch(() => {});
    await this.file.dispose();
  }
}
