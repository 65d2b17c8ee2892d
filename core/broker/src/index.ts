export * from './contract.js';
export * from './errors.js';
export { StoreEventHub } from './events.js';
export { EmbeddedStore, type EmbeddedStoreOptions } from './embedded/store.js';
export { partitionForKey } from './embedded/dedup.js';
/** The embedded engine's dedup index (compact, keyed 128-bit digests); exported for the bench's memory rows. */
export { DedupIndex, type DedupHit, type DedupKey } from './embedded/dedup.js';
export * from './http/index.js';
export { writeAtomic, readWithFallback, previousCopy, fsyncDir, type WriteAtomicOptions, type MetadataSource } from './atomic-file.js';
