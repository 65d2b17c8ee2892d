export * from './contract.js';
export * from './errors.js';
export { StoreEventHub } from './events.js';
export { EmbeddedStore, DEFAULT_MANIFEST_MIN_STATIONS, type EmbeddedStoreOptions } from './embedded/store.js';
export { LogLru, DEFAULT_OPEN_LOGS } from './log/lazy-log.js';
export { partitionForKey } from './embedded/dedup.js';
/** The embedded engine's dedup index (compact, keyed 128-bit digests); exported for the bench's memory rows. */
export { DedupIndex, type DedupHit, type DedupKey } from './embedded/dedup.js';
export * from './http/index.js';
export { writeAtomic, readWithFallback, previousCopy, fsyncDir, type WriteAtomicOptions, type MetadataSource } from './atomic-file.js';
export { FdPool, readNofileLimits, defaultFdBudget, MIN_FD_BUDGET, type FdPoolStats } from './log/fd-pool.js';
export { BufferShelf } from './buffer-shelf.js';
