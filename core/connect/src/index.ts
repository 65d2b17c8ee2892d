/**
 * `@junction/connect`: the connector runtime. Sinks read their station through the consumer group
 * `connector.<name>` and hand batches to plugin code in piscina worker threads; sources run in worker
 * threads of their own and produce into their station. Connectors are declared in junction.yaml
 * (`applyDesired`) or over `/v1/connectors` (`connectRoutes`), Kafka Connect style.
 */
export { ConnectRuntime } from './runtime.js';
export type { ConnectRuntimeOptions, ConnectorStatus, ConnectorInfo, OffsetEntry, ApplyResult } from './runtime.js';
export { connectRoutes } from './routes.js';
export type { ConnectRoutesOptions } from './routes.js';
export {
  ConnectorDeclaration,
  ConnectorsSection,
  ConnectorName,
  BatchOptions,
  ErrorOptions,
  TargetState,
  ConnectorState,
  ConnectorOrigin,
  groupName,
} from './declaration.js';
export type { ConnectorDeclarationInput } from './declaration.js';
export type { PluginCatalog, PluginDescriptor, CatalogValidation } from './catalog.js';
export { ConnectErrorCode, connectStatusFor } from './errors.js';
export {
  CLOSE_TIMEOUT_MS,
  CONNECTOR_DLS_HEADERS,
  OPEN_TIMEOUT_MS,
  RETRY_BASE_MS,
  SinkRunner,
  STOP_GRACE_MS,
  stopBoundMs,
  STOP_TIMEOUTS,
  TERMINATE_WAIT_MS,
} from './sink-runner.js';
export type { RetryingStatus, StopTimeouts, TaskStatus } from './sink-runner.js';
export { FreshnessTracker } from './freshness.js';
export type { Freshness } from './freshness.js';
export { ConnectMetrics } from './metrics.js';
export { ConnectSettings, Isolation, SharedPoolOptions, connectorIsolation, pluginIsolation } from './isolation.js';
export type { ConnectSettingsInput } from './isolation.js';
export { resolveReferences, displayConfig, hasReferences, scrubber, secretStrings } from './secrets.js';
export { SecretKeyring, SealedErrorCode, defaultSecretsKeyFile, isSealed, keyId, loadKeyring } from './sealed.js';
export type { SecretsKeySource } from './sealed.js';
export { LocalPlacement } from './placement.js';
export type { Placement, PlacementHooks, TaskRef, RemoteTask, DefinitionStore, StoredConnector } from './placement.js';
export { FilePositionStore } from './positions.js';
export type { PositionStore, SourcePositions } from './positions.js';
export { makeDirs } from './files.js';
export type { StationSchemaResolver } from './sink-schema.js';
export { planConnectors, applyConnectors, diffDeclarations, fieldChanges, PlanAction } from './plan.js';
export type { ConnectorPlanEntry, FieldChange, PlannableRuntime } from './plan.js';
export { offsetsTarget } from './offsets-to.js';
