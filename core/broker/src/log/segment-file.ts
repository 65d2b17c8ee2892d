/**
 * A segment's file handle, shared by the writer, the fsync chain and readers. It closes only once
 * nobody holds it, so deleting a segment never closes a descriptor under an in-flight read or fsync.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** A reference-counted file handle (see the file comment). */
export class SegmentFile {
  private handle: FileHandle | null = null;
  private opening: Promise<FileHandle> | null = null;
  private refs = 0;
  private disposed: Promise<void> | null = null;
  private onIdle: (() => void) | null = null;

  constructor(readonly path: string) {}

  /** Installs an already open handle (the active segment's read-write handle). */
  adopt(handle: FileHandle): void {
    this.handle = handle;
  }

  /** The open handle (opening it read-only on first use), or null once disposed. Pair with release(). */
  async acquire(): Promise<FileHandle | null> {
    if (this.disposed) return null;
    this.refs++;
    if (this.handle) return this.handle;
    try {
      this.opening ??= fsp.open(this.path, 'r');
      this.handle = await this.opening;
      return this.handle;
    } catch (err) {
      this.opening = null;
      this.release();
      throw err;
    }
  }

  release(): void {
    this.refs--;
    if (this.refs === 0 && this.onIdle) this.onIdle();
  }

  /** Closes the handle once every holder released it. Idempotent. */
  dispose(): Promise<void> {
    this.disposed ??= new Promise<void>((resolve) => {
      const finish = (): void => {
        this.onIdle = null;
        const h = this.handle;
        this.handle = null;
        if (h) h.close().then(resolve, () => resolve());
        else resolve();
      };
      if (this.refs === 0) finish();
      else this.onIdle = finish;
    });
    return this.disposed;
  }
}
