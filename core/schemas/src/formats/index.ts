import { avroFormat } from './avro.js';
import { jsonFormat } from './json.js';
import { protobufFormat } from './protobuf.js';
import { SchemaType } from './types.js';
import type { SchemaFormat } from './types.js';

export * from './types.js';
export { canonicalJson } from './json.js';

/** The formats by Confluent's `schemaType`. */
export const FORMATS: Record<SchemaType, SchemaFormat> = {
  [SchemaType.AVRO]: avroFormat,
  [SchemaType.JSON]: jsonFormat,
  [SchemaType.PROTOBUF]: protobufFormat,
};
