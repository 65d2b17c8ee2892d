/**
 * `@junction/ui`: Junction's dashboard. `uiRoutes` serves the built single-page app at `/` and the
 * dashboard's own API (live SSE streams, the sortable station listing); core/server wires it.
 */
export { uiRoutes, UI_PAGES, ASSETS_PREFIX, LiveStationParams, DashboardStationsQuery, defaultWebRoot } from './server.js';
export type { UiRoutesOptions, StationRow } from './server.js';
export { LiveHub, MAX_BUFFERED_BYTES, MAX_SAMPLING_SHARE } from './live.js';
export type { LiveHubOptions, Sampler } from './live.js';
export {
  OverviewSampler,
  StationSampler,
  ConnectorsSampler,
  MAX_GROUPS_SCANNED,
  MAX_STATIONS_SCANNED,
  MAX_CONNECTORS_SCANNED,
} from './snapshots.js';
export type { Alert, ConnectorRow, ConnectorsSource, ConnectorsSnapshot, OverviewSnapshot, StationSnapshot } from './snapshots.js';
