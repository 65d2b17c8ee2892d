export * from './contract.js';
export * from './errors.js';
export { StoreEventHub } from './events.js';
export { EmbeddedStore, type EmbeddedStoreOptions } from './embedded/store.js';
export { partitionForKey } from './embedded/dedup.js';
export * from './http/index.js';
export { writeAtomic, readWithFallback, previousCopy, fsyncDir, type WriteAtomicOptions, type MetadataSource } from './atomic-file.js';
export { FdPool, readNofileLimits, defaultFdBudget, MIN_FD_BUDGET, type FdPoolStats } from './log/fd-pool.js';
