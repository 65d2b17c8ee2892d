/**
 * `@junction/server`: the composition root. Loads `junction.yaml`, opens the station store, applies
 * the declared stations and serves every package's HTTP routes. Only the CLI and end-to-end tests
 * import it.
 */
export {
  loadConfig,
  parseConfigText,
  CONFIG_DEFAULTS,
  DEFAULT_CONFIG_FILE,
  ConfigFile,
  ServerSection,
  AuthSection,
  StationDeclaration,
  LogLevel,
} from './config.js';
export type { AuthSettings, TlsSettings, ConfigOverrides, JunctionConfig, LoadConfigOptions, ServerSettings } from './config.js';
export { applyStations, MUTABLE_STATION_OPTIONS, IMMUTABLE_STATION_OPTIONS } from './stations.js';
export type { ApplyStationsResult, StationApplyError } from './stations.js';
export { buildApp, routesOf, REQUEST_ID_HEADER } from './app.js';
export { ROUTE_ACCESS, routeAccess, undeclaredRoutes, credentialOf, addAccessHooks, isAudited } from './access.js';
export { AuditLog, AUDIT_STATION } from './audit.js';
export { PATH_NOT_ALLOWED, hostPathProblem, hostPathValues } from './confine.js';
export type { AuditEntry } from './audit.js';
export type { AccessCheck, NameSource, RouteAccess } from './access.js';
export type { BuildAppOptions } from './app.js';
export { startServer, isLoopback, checkExposure, BUILTIN_CONNECTORS_DIR } from './server.js';
export type { StartServerOptions, RunningServer } from './server.js';
export { ServerErrorCode, JunctionError, ErrorCode, isJunctionError } from './errors.js';
export { PipelineBody, planPipeline, applyPipeline, planStations, pipelineRoutes } from './pipeline.js';
export type { PipelinePlan, StationPlanEntry, PipelineDeps } from './pipeline.js';
export { validateConfigFile } from './validate.js';
export type { ValidationIssue, ValidationReport, ValidateOptions } from './validate.js';
