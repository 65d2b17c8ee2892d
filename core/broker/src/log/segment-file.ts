/**
 * A segment's file handle, shared by the writer, the fsync chain and readers: a PooledFile (fd-pool.ts)
 * opened read-write on first use and closed by the process's descriptor budget while nobody holds it.
 * It closes only once nobody holds it, so deleting a segment (dispose) or an eviction never closes a
 * descriptor under an in-flight read, write or fsync.
 */
import { FdPool, PooledFile } from './fd-pool.js';

/** A segment file under the descriptor budget (see the file comment). The file must exist before the first acquire. */
export class SegmentFile extends PooledFile {
  constructor(path: string, pool: FdPool = FdPool.shared) {
    super(path, 'r+', pool);
  }
}
