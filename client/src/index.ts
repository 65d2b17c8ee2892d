/**
 * @junction/client — the typed TypeScript client of Junction. It talks HTTP only (binary batch codec
 * on the hot path) and imports nothing of the server.
 */
export {
  JunctionClient,
  type ClientOptions,
  type CallOptions,
  type ReadOptions,
  type DeadLetterListOptions,
  type TokenGrant,
  type TokenInfo,
  type UserInfo,
  type SessionTokens,
  type ConnectorStatusInfo,
  type ConnectorOffset,
  type PipelineFieldChange,
  type PipelinePlanEntry,
  type PipelinePlan,
  type PipelineSpec,
  type ConnectorFreshness,
  type PluginInfo,
  type RefusedPluginInfo,
} from './client.js';
export { Producer, type ProducerOptions, type ProduceSender } from './producer.js';
export { Consumer, type ConsumerOptions, type GroupClient } from './consumer.js';
export { ConsumerMessage } from './message.js';
export { SettleBatcher, type SettleKind, type SettleSend, type SettleBatcherOptions } from './settle.js';
export { JunctionApiError, ClientErrorCode, isJunctionApiError, isRetryable, isRetryableStatus, type Issue } from './errors.js';
export { backoffDelay, DEFAULT_RETRY, type RetryOptions } from './backoff.js';
export { HttpTransport, type Transport, type TransportRequest, type TransportResponse, type HttpTransportOptions } from './transport.js';
export type * from './types.js';
export type { StationConfigInput, StationPatch, CreateGroupBody, StartPosition, DlsReplayBody, FetchBody } from '@junction/protocol';
export { DLS_HEADERS } from '@junction/protocol';
