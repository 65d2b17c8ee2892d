/**
 * @junction/cluster: the StationStore contract on NATS JetStream. Select it with
 * `new JetStreamStore({ servers, replicas })` wherever an EmbeddedStore would go; the README says how
 * Junction concepts map onto JetStream and what differs from the embedded engine.
 */
export { JetStreamStore, type JetStreamStoreOptions } from './store.js';
export { ClusterStationConfigInput, ClusterStationPatch, Replicas, type ClusterStationConfig } from './config.js';
export { ErrorCode, JetStreamApiError } from './errors.js';
export { Names, PREFIX_PATTERN, parseAckSubject, ackSubject, type AckInfo } from './names.js';
export { encodeEnvelope, decodeEnvelope } from './envelope.js';
export { ClusterPlacement, ClusterDefinitions, ClusterPositions, assign, taskKey, type ClusterPlacementOptions } from './placement.js';
