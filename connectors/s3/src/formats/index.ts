/**
 * @junction/connector-s3/formats — how the S3 sink lays messages out in objects, and how to read them
 * back: JSON Lines, Parquet and raw encodings, gzip / zstd, and the format spec every object carries in
 * its metadata. The S3 source package reads through this module, so both sides share one definition.
 */
export { META_FIELDS, ObjectMeta, formatExtension, formatFromMetadata, formatToMetadata, type FormatSpec, type MetaField } from './spec.js';
export {
  decodeJsonlLine,
  encodeJsonlLine,
  jsonValueText,
  rawMember,
  type DecodedRecord,
  type EncodableMessage,
  type Encoded,
  type JsonlOptions,
} from './jsonl.js';
export {
  Compression,
  ZSTD_FRAME_INPUT,
  compressBuffer,
  compressStream,
  compressionFromKey,
  compressionSuffix,
  decompressStream,
  gzipChunks,
} from './compression.js';
export { ZstdFrameSplitter, loadZstd, zstdCompress, zstdDecompressFrame } from './zstd.js';
export {
  PARQUET_META_COLUMNS,
  parquetRowProblem,
  readParquetMetadata,
  readParquetRows,
  writeParquet,
  type ParquetCodec,
  type ParquetRecord,
  type ParquetWriteInput,
} from './parquet.js';
