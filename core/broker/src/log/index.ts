/** The partition log: its contract, the file-backed and in-memory implementations, and the record frame codec. */
export type { CorruptRange, LogOptions, LogRecord, PartitionLog, ReadLimits, RecordInput, TornTail } from './types.js';
export { openFileLog, segmentFileName, INDEX_INTERVAL_BYTES } from './file-log.js';
export { createMemoryLog } from './memory-log.js';
export {
  FLAGS_KNOWN,
  FRAME_FIXED_BYTES,
  FRAME_MAGIC,
  FrameFault,
  MAX_FRAME_BYTES,
  MIN_FRAME_BYTES,
  checkFrame,
  decodeRecord,
  describeFault,
  encodeRecords,
  encodedSize,
  findNextFrame,
  frameOffset,
  frameTimestamp,
} from './record-codec.js';
