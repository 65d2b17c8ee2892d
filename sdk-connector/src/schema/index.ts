/**
 * @junction/sdk-connector/schema — what a sink needs to use its station's schema (`ctx.schema`,
 * `batch.schema`): the schema as columns (`schemaFields`, one neutral field model for Avro, JSON Schema
 * and Protobuf) and a decoder from stored values — plain or in the Confluent wire format — to rows
 * (`schemaDecoder`). A separate entry point so that the SDK's main entry stays light: this one loads
 * avsc or protobufjs (optional peer dependencies) only when a schema of that format is met.
 */
export { schemaFields, SCHEMA_UNSUPPORTED, type FieldType, type FieldKind, type SchemaField } from './fields.js';
export { messageIndexes, schemaDecoder, wireFormatId, type DecodeResult, type SchemaDecoder } from './decode.js';
export { compareColumns, type ColumnLike, type ColumnDrift } from './drift.js';
