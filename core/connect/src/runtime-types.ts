/**
 * The connector runtime's public shapes (options, status, info, offsets, apply results) and the records
 * it keeps per connector. See runtime.ts.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { StationStore } from '@junction/broker';
import type { ConfigSchema, JsonValue } from '@junction/sdk-connector';
import type { PluginCatalog } from './catalog.js';
import type { ConnectorDeclaration, ConnectorOrigin, ConnectorState, TargetState } from './declaration.js';
import type { SecretsKeySource } from './sealed.js';
import type { SinkRunner } from './sink-runner.js';
import type { RetryingStatus, StopTimeouts, TaskStatus } from './sink-runner.js';
import type { SourceRunner } from './source-runner.js';
import type { PositionStore } from './positions.js';
import type { Serial } from './util.js';
import type { DefinitionStore, Placement } from './placement.js';
import type { StationSchemaResolver } from './sink-schema.js';
import type { ConnectSettingsInput, Isolation } from './isolation.js';
import type { Freshness, FreshnessTracker } from './freshness.js';

export interface ConnectRuntimeOptions {
  store: StationStore;
  catalog: PluginCatalog;
  /** The broker's data directory; the runtime keeps its files under `<dataDir>/connect`. */
  dataDir: string;
  logger?: Logger | undefined;
  /** Where the runtime's metrics go (the server's /metrics registry). */
  registry?: Registry | undefined;
  /** For `${env:NAME}` references. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Log level of plugin loggers in worker threads. Default: the logger's level. */
  pluginLogLevel?: string | undefined;
  /** Which tasks this node runs. Default `LocalPlacement`: all of them (one node). */
  placement?: Placement | undefined;
  /**
   * Where connector definitions live. Default: `<dataDir>/connect/connectors.json`. Cluster mode: the
   * shared bucket, so every node sees (and serves) the same connectors.
   */
  definitions?: DefinitionStore | undefined;
  /**
   * Where source connectors keep their positions. Default: `<dataDir>/connect/offsets/<name>.json`
   * (`FilePositionStore`). Cluster mode: the shared metadata bucket, fenced by the task's lease, so a
   * source that moves to another node resumes where its last owner stopped.
   */
  positions?: PositionStore | undefined;
  /**
   * The key that seals secrets given literally, at rest (see sealed.ts): `{ key }` (the value of
   * JUNCTION_SECRETS_KEY) or `{ file }` (a key file, made 0600 on first use). Default: JUNCTION_SECRETS_KEY
   * from `env`, else the file JUNCTION_SECRETS_KEY_FILE names, else `~/.config/junction/secrets.key`.
   * Every node of a cluster needs the same keys.
   */
  secretsKey?: SecretsKeySource | undefined;
  /**
   * The schema of a station with a `schema` binding (core/server resolves it with the registry), handed
   * to sink plugins as `ctx.schema` and `batch.schema`. Called after each fetch that brought messages:
   * keep it cheap. Default: sinks see no schema.
   */
  stationSchemaOf?: StationSchemaResolver | undefined;
  /**
   * The `connect:` section of junction.yaml: `sharedPool: { threads, maxHeapMb }` (the threads the sink
   * tasks of trusted plugins share; default the cores) and `plugins: { <name>: { isolation } }` (the
   * operator's trust per plugin). See isolation.ts. Invalid settings throw CONFIG_INVALID (`connect.…`).
   */
  connect?: ConnectSettingsInput | undefined;
  /**
   * Shorter waits for a stop to spend on a plugin that does not cooperate (its close, a terminated
   * thread's exit) than the product's STOP_TIMEOUTS. For tests that wait these bounds out many times
   * (the wedge matrix); core/server never sets it.
   */
  stopTimeouts?: Partial<StopTimeouts> | undefined;
}

/** What `GET /v1/connectors/:name/status` answers. */
export interface ConnectorStatus {
  name: string;
  connector: { state: ConnectorState; trace?: string | undefined };
  tasks: TaskStatus[];
  type: 'sink' | 'source' | 'unknown';
  /** Sink: messages of the station its group has not acknowledged. */
  lag?: number | undefined;
  throughput: { msgsPerSec: number; bytesPerSec: number };
  /** The newest error of the connector or any of its tasks (kept after they recovered; see `retrying`). */
  lastError?: { code: string; message: string; at: number } | undefined;
  /**
   * Present while messages keep failing and are retried, or the connector keeps failing to start:
   * since the earliest of its tasks' `retrying.since` (or its first failed start), attempts summed over
   * its tasks (or failed starts), the next attempt due.
   */
  retrying?: RetryingStatus | undefined;
  /** Where its tasks run while it runs: `shared` (the shared pool's threads) or `thread` (a thread per task; every source). */
  isolation?: Isolation | undefined;
  /**
   * Sink: produce → landed of the last message landed (by the task that landed most recently, on this
   * node); null until something landed, and for sources.
   */
  freshness: Freshness | null;
}

/** What `GET /v1/connectors/:name` answers (Kafka Connect's connector info). */
export interface ConnectorInfo {
  name: string;
  type: 'sink' | 'source' | 'unknown';
  plugin: string;
  station: string;
  /** The declaration as it may be shown (secrets redacted, references as references). */
  config: ConnectorDeclaration;
  tasks: { connector: string; task: number }[];
  target: TargetState;
  origin: ConnectorOrigin;
  createdAt: number;
  updatedAt: number;
}

/** An offset entry in Kafka Connect's shape: `{ partition, offset }`. */
export interface OffsetEntry {
  partition: Record<string, JsonValue>;
  offset: JsonValue;
}

export interface ApplyResult {
  created: string[];
  updated: string[];
  deleted: string[];
  unchanged: string[];
}

/** A connector as stored (file or shared store). */
export interface Stored {
  declaration: ConnectorDeclaration;
  origin: ConnectorOrigin;
  target: TargetState;
  createdAt: number;
  updatedAt: number;
}

/** `<dataDir>/connect/connectors.json`. */
export interface ConnectorsFile {
  version: 1;
  connectors: Stored[];
}

/** What the runtime keeps per connector (internal to runtime.ts). */
export interface ConnectorRt extends Stored {
  lock: Serial;
  kind?: 'sink' | 'source' | undefined;
  schema?: ConfigSchema | undefined;
  runner?: SinkRunner | SourceRunner | undefined;
  state: ConnectorState;
  trace?: string | undefined;
  lastError?: { code: string; message: string; at: number } | undefined;
  startFailures: number;
  /** The first of the current run of failed starts (ms since epoch). */
  startFailingSince?: number | undefined;
  /** When the next start is tried. */
  nextStartAt?: number | undefined;
  startTimer?: NodeJS.Timeout | undefined;
  deleted: boolean;
  /** The tasks the current runner runs. */
  owned?: number[] | undefined;
  /** Its stored secrets do not open (no key, another key, altered): its declaration stays sealed and it cannot start. */
  sealError?: Error | undefined;
  /** Hides the connector's resolved secret values in error texts (set when a start resolved its config). */
  scrub: (text: string) => string;
  /** Where the current runner's tasks run. */
  isolation?: Isolation | undefined;
  /** What its sink tasks last landed (kept across runners). */
  freshness: FreshnessTracker;
}
