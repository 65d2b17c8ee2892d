/** The broker's HTTP face: route plugins, the error handler core/server sets at the root, and metrics. */
export { HttpErrorCode, httpStatusFor, toApiError, errorHandler, notFoundHandler, parseBody, bodyInvalid } from './errors.js';
export {
  brokerRoutes,
  DEFAULT_PRODUCE_BODY_LIMIT,
  JSON_PRODUCE_BODY_LIMIT,
  MAX_PRODUCE_MESSAGES,
  SETTLE_BODY_LIMIT,
  NDJSON_CONTENT_TYPE,
  type BrokerRoutesOptions,
  type ProduceObserver,
  type JsonMessage,
  type JsonDelivery,
} from './routes.js';
export { BodyGate, GATE_FREE_BYTES, gateLargeBodies, refuseUnexpectedBodies, type BodyConfig, type BodyGateOptions } from './limits.js';
export {
  memphisRoutes,
  MEMPHIS_OK,
  EXCLUDED_HEADERS,
  type MemphisRoutesOptions,
  type MemphisAuthenticator,
  type MemphisTokenAnswer,
} from './memphis.js';
export {
  registerBrokerMetrics,
  metricsRoutes,
  DEFAULT_MAX_STATION_SERIES,
  OTHER_STATIONS_LABEL,
  type BrokerMetrics,
  type BrokerMetricsOptions,
} from './metrics.js';
