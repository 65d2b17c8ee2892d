/**
 * Station config on JetStream: the protocol's schemas (so validation and defaults are identical to the
 * embedded engine's) plus `replicas`, the one cluster-only option, and the mapping of a station's config
 * to the JetStream stream config of each of its partitions.
 */
import { StationConfigInput, StationPatch, StationReplicas, type StationConfig } from '@junction/protocol';
import { z } from 'zod';

/** Copies of a station's data on the NATS servers (JetStream's num_replicas, at most 5). */
export const Replicas = StationReplicas;
export type Replicas = z.infer<typeof Replicas>;

/** What createStation accepts on this engine: the protocol's config and `replicas` (default: the store's). */
export const ClusterStationConfigInput = StationConfigInput.extend({ replicas: Replicas.optional() });
export type ClusterStationConfigInput = z.input<typeof ClusterStationConfigInput>;

/** What updateStation accepts: the protocol's patch and `replicas` (JetStream moves replicas live). */
export const ClusterStationPatch = StationPatch.extend({ replicas: Replicas.optional() });
export type ClusterStationPatch = z.input<typeof ClusterStationPatch>;

/** A station's config as this engine keeps and answers it: the protocol's, with the replica count. */
export type ClusterStationConfig = StationConfig & { replicas: number };

/** JetStream refuses a max age or duplicate window under 100 ms (nats-server 2.9 checkStreamCfg). */
export const JS_MIN_WINDOW_MS = 100;

const NS = 1_000_000;

/** The JetStream stream config of one partition (nats-server 2.9 field names). */
export interface JsStreamConfig {
  name: string;
  description?: string;
  subjects: string[];
  retention: 'limits' | 'interest' | 'workqueue';
  max_consumers: number;
  max_msgs: number;
  max_bytes: number;
  max_age: number;
  max_msgs_per_subject: number;
  max_msg_size: number;
  storage: 'file' | 'memory';
  discard: 'old' | 'new';
  num_replicas: number;
  duplicate_window: number;
  allow_direct: boolean;
  deny_delete: boolean;
  deny_purge: boolean;
  allow_rollup_hdrs: boolean;
}

/** The dedup window JetStream gets for a station (it cannot be 0, nor larger than the max age). */
export function duplicateWindowMs(config: StationConfig): number {
  let w = Math.max(JS_MIN_WINDOW_MS, config.dedupWindowMs);
  const age = config.retention.maxAgeMs;
  if (age !== undefined) w = Math.min(w, Math.max(JS_MIN_WINDOW_MS, age));
  return w;
}

export function streamConfig(
  name: string,
  subject: string,
  station: string,
  partition: number,
  config: ClusterStationConfig,
): JsStreamConfig {
  const r = config.retention;
  return {
    name,
    description: `Junction station ${station}, partition ${partition}`,
    subjects: [subject],
    retention: r.ackBased ? 'interest' : 'limits',
    max_consumers: -1,
    max_msgs: r.maxMessages ?? -1,
    max_bytes: r.maxBytes ?? -1,
    max_age: r.maxAgeMs !== undefined ? Math.max(JS_MIN_WINDOW_MS, r.maxAgeMs) * NS : 0,
    max_msgs_per_subject: -1,
    max_msg_size: -1,
    storage: config.storage,
    discard: 'old',
    num_replicas: config.replicas,
    duplicate_window: duplicateWindowMs(config) * NS,
    // Reads go to the stream leader (STREAM.MSG.GET): a direct get may be answered by a replica that
    // has not applied the latest writes yet.
    allow_direct: false,
    deny_delete: false,
    deny_purge: false,
    allow_rollup_hdrs: false,
  };
}

/** The config of a station's dead-letter station (the embedded engine's, plus the origin's replicas). */
export function dlsConfig(origin: ClusterStationConfig): ClusterStationConfig {
  // Dead letters keep what failed as it was: the origin's schema does not apply to them.
  const { schema: _schema, ...rest } = origin;
  return {
    ...rest,
    partitions: 1,
    retention: { maxAgeMs: 30 * 24 * 3600_000 },
    dedupWindowMs: 10 * 60_000,
    maxMessageBytes: 64 * 1024 * 1024,
    deadLetter: { ...origin.deadLetter, enabled: false },
  };
}

/** Dead-letter marks a station keeps per partition (shared by its groups), and for how long (as its DLS). */
export const MARKS_PER_PARTITION = 10_000;
export const MARKS_MAX_AGE_MS = 30 * 24 * 3600_000;

/**
 * The config of a station's marks stream (names.ts `marksStream`): one empty message per dead letter on
 * its own subject, so "was this offset dead-lettered" is one STREAM.MSG.GET by subject.
 */
export function marksConfig(name: string, subjects: string, station: string, config: ClusterStationConfig): JsStreamConfig {
  return {
    ...streamConfig(name, subjects, station, -1, config),
    description: `Junction station ${station}: offsets its groups dead-lettered`,
    retention: 'limits',
    max_msgs: MARKS_PER_PARTITION * config.partitions,
    max_bytes: -1,
    max_age: MARKS_MAX_AGE_MS * NS,
    max_msgs_per_subject: 1,
    duplicate_window: 60_000 * NS,
  };
}
