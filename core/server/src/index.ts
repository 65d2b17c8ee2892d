/**
 * `@junction/server`: the composition root. Loads `junction.yaml`, opens the station store, applies
 * the declared stations and serves every package's HTTP routes. Only the CLI and end-to-end tests
 * import it.
 */
export { loadConfig, parseConfigText, CONFIG_DEFAULTS, DEFAULT_CONFIG_FILE, ConfigFile, ServerSection, StationDeclaration, LogLevel } from './config.js';
export type { ConfigOverrides, JunctionConfig, LoadConfigOptions, ServerSettings } from './config.js';
export { applyStations, MUTABLE_STATION_OPTIONS, IMMUTABLE_STATION_OPTIONS } from './stations.js';
export type { ApplyStationsResult, StationApplyError } from './stations.js';
export { buildApp, REQUEST_ID_HEADER } from './app.js';
export type { BuildAppOptions } from './app.js';
export { startServer, BUILTIN_CONNECTORS_DIR } from './server.js';
export type { StartServerOptions, RunningServer } from './server.js';
export { ServerErrorCode, JunctionError, ErrorCode, isJunctionError } from './errors.js';
