/**
 * @junction/sdk-connector — the only package a Junction connector plugin depends on.
 *
 * A sink: `defineSink({ name, version, sdk, config, open })` whose `open` returns `{ write, close }`,
 * `write` answering `ok()`, `retry()` or `deadLetter()` per message. A source: `defineSource(...)`
 * whose `open` returns `{ read, commit, close }`. The conformance kit is `@junction/sdk-connector/testing`.
 */
export { makeDirs } from './fs.js';
export { SDK_VERSION, satisfiesSdk, isValidSdkRange, parseVersion } from './semver.js';
export {
  ErrorCode,
  JunctionError,
  isJunctionError,
  isRetryable,
  serializeError,
  deserializeError,
  type Issue,
  type JunctionErrorOptions,
  type SerializedError,
} from './errors.js';
export {
  ok,
  retry,
  deadLetter,
  isWriteResult,
  checkWriteResults,
  type WriteResult,
  type OkResult,
  type RetryResult,
  type DeadLetterResult,
} from './results.js';
export {
  z,
  secret,
  hostPath,
  isSecret,
  secretPaths,
  redact,
  REDACTED,
  configJsonSchema,
  validateConfig,
  parseConfig,
  issuesFromZod,
  type ConfigSchema,
  type ConfigValidation,
} from './config.js';
export {
  defineSink,
  defineSource,
  checkPlugin,
  isPlugin,
  PluginKind,
  type Manifest,
  type SinkManifest,
  type SourceManifest,
  type SinkDefinition,
  type SourceDefinition,
  type SinkPlugin,
  type SourcePlugin,
  type Plugin,
} from './plugin.js';
export {
  defineTransform,
  type TransformMessage,
  type TransformOutput,
  type Transformer,
  type TransformContext,
  type TransformManifest,
  type TransformDefinition,
  type TransformPlugin,
} from './transform.js';
export type {
  JsonValue,
  LogFn,
  Logger,
  Counter,
  Histogram,
  Metrics,
  ConnectorContext,
  SinkMessage,
  SinkBatch,
  WriteOptions,
  Sink,
  SinkContext,
  SchemaFormatName,
  SchemaReferenceInfo,
  SchemaVersionInfo,
  StationSchemaInfo,
  SourceMessage,
  SourceBatch,
  Source,
  SourceContext,
} from './types.js';
export {
  Fences,
  GAVE_UP,
  OffsetRanges,
  Presence,
  stationIdSegment,
  untilDeadline,
  type PartitionRef,
  type PresenceQuery,
} from './exactly-once.js';
