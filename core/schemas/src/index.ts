/**
 * @junction/schemas — the schema registry: subjects of JSON Schema, Avro and Protobuf versions with
 * Confluent's compatibility levels, kept in the broker's own station `__schemas`, served with the
 * Confluent Schema Registry REST API (`schemaRegistryRoutes`).
 */
export { SchemaRegistry, SCHEMAS_STATION, checkSubject, type SchemaRegistryOptions } from './registry.js';
export { schemaRegistryRoutes, SCHEMA_REGISTRY_CONTENT_TYPE, type SchemaRegistryRoutesOptions } from './routes.js';
export { RegistryState, RegistryEvent, MODES, type Mode, type StoredSchema, type SubjectVersion } from './state.js';
export {
  COMPATIBILITY_LEVELS,
  DEFAULT_COMPATIBILITY,
  compatibilityProblems,
  isCompatibilityLevel,
  type CompatibilityLevel,
} from './compat.js';
export { SchemaErrorCode, SchemaRegistryError, isSchemaRegistryError } from './errors.js';
export * from './formats/index.js';
export { enforcedBindingOf, schemaEnforcingStore, subjectOf, SchemaProduceCode, type SchemaEnforcingOptions } from './enforce.js';
export { ValidationPool, packItems, ITEM_FIELDS, type CheckItem, type PackedItems, type SchemaSource } from './validate-pool.js';
