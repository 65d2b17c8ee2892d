/**
 * The connector declaration: one shape for `junction.yaml` (`connectors:`) and the REST API
 * (`POST /v1/connectors`, `PUT /v1/connectors/:name/config`). The plugin's own `config` is checked
 * by the plugin's schema (through the registry), not here.
 */
import { z } from 'zod';
import { MiB } from '@junction/protocol';
import { TransformsConfig } from '@junction/transforms';

/** Target states a user asks for. */
export const TargetState = { RUNNING: 'RUNNING', PAUSED: 'PAUSED', STOPPED: 'STOPPED' } as const;
export type TargetState = (typeof TargetState)[keyof typeof TargetState];

/** States reported in `/status` for a connector and each task (Kafka Connect's words). */
export const ConnectorState = {
  RUNNING: 'RUNNING',
  PAUSED: 'PAUSED',
  STOPPED: 'STOPPED',
  FAILED: 'FAILED',
  /** Not started yet (or restarting). */
  UNASSIGNED: 'UNASSIGNED',
} as const;
export type ConnectorState = (typeof ConnectorState)[keyof typeof ConnectorState];

/** Where a connector came from: `file` connectors follow junction.yaml, `api` ones are left alone by it. */
export const ConnectorOrigin = { api: 'api', file: 'file' } as const;
export type ConnectorOrigin = (typeof ConnectorOrigin)[keyof typeof ConnectorOrigin];

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

export const ConnectorName = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(NAME_RE, 'letters, digits, ".", "_" and "-", starting with a letter or digit');

export const BatchOptions = z.strictObject({
  /** Most messages in one batch handed to a sink's `write`. */
  maxMessages: z.int().min(1).max(100_000).default(1000),
  /** Most value bytes in one batch (a single larger message still goes alone). */
  maxBytes: z
    .int()
    .min(1)
    .max(256 * MiB)
    .default(MiB),
  /** Longest a message waits in the runtime for its batch to fill; a partial batch is written then. */
  maxLatencyMs: z.int().min(0).max(3_600_000).default(1000),
});

export const ErrorOptions = z.strictObject({
  /** `none`: when retries run out the task fails (messages stay unacknowledged). `all`: they are dead-lettered. */
  tolerance: z.enum(['none', 'all']).default('none'),
  /** How long messages may keep failing (retry answers, retryable errors, crashes) before tolerance applies. */
  retryTimeoutMs: z
    .int()
    .min(0)
    .max(24 * 3_600_000)
    .default(300_000),
  /** The largest pause between two attempts (exponential backoff with full jitter from 100 ms). */
  retryMaxDelayMs: z.int().min(1).max(3_600_000).default(60_000),
});

/**
 * A connector: an instance of a plugin with its config, bound to a station.
 *
 * - `tasks`: worker threads running the plugin (a sink's partitions are spread over them: partition
 *   p belongs to task p mod tasks; a source runs `tasks` readers, each with its own position).
 * - `config`: the plugin's config; strings may hold `${env:NAME}` / `${file:/path}` references, resolved
 *   when a task starts and never stored resolved.
 * - `writeTimeoutMs`: longest a sink's write may take; past it the worker is terminated and the task fails.
 * - `maxHeapMb`: heap limit of each worker thread of its own (isolation `thread`; shared threads have the pool's) (a leaking plugin fails its task, not the broker).
 *   V8 sizes a heap's growth by this limit: at 256 MB it collects the old generation each time the heap
 *   grows by 30 %, from 2048 MB (the default) at 4x, as it does on the main thread. A sink moving 5000-row
 *   batches ran 12 full collections where it now runs 3, at 7-11 % more rows/s; a lower limit costs that.
 * - `state`: the target state when the connector is created (or when its declaration changes in junction.yaml).
 */
export const ConnectorDeclaration = z.strictObject({
  name: ConnectorName,
  plugin: z.string().min(1, 'must not be empty'),
  station: z.string().min(1, 'must not be empty'),
  tasks: z.int().min(1).max(64).default(1),
  config: z.record(z.string(), z.unknown()).default({}),
  batch: BatchOptions.prefault({}),
  errors: ErrorOptions.prefault({}),
  writeTimeoutMs: z.int().min(10).max(3_600_000).default(30_000),
  maxHeapMb: z.int().min(16).max(16_384).default(2048),
  /**
   * Sinks: `thread` runs each task on a thread of its own even if the plugin is trusted to share; `shared`
   * is accepted only for a plugin that is trusted already (see isolation.ts). Absent: the plugin's.
   */
  isolation: z.enum(['shared', 'thread']).optional(),
  state: z.enum(['RUNNING', 'PAUSED', 'STOPPED']).optional(),
  /**
   * Steps applied to each message in the task's worker thread, in order: after a source's read, before
   * a sink's write (see @junction/transforms). A message a step fails follows `errors.tolerance`: `all`
   * dead-letters it (code TRANSFORM_FAILED, the step in the reason), `none` fails the task.
   */
  transforms: TransformsConfig.default([]),
});
/** A declaration with every default applied. */
export type ConnectorDeclaration = z.output<typeof ConnectorDeclaration>;
/** What a user writes. */
export type ConnectorDeclarationInput = z.input<typeof ConnectorDeclaration>;

/** The `connectors:` section of junction.yaml. */
export const ConnectorsSection = z.array(ConnectorDeclaration).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((c, i) => {
    if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate connector "${c.name}"` });
    seen.add(c.name);
  });
});

/** The consumer group a sink connector reads its station through. */
export function groupName(connector: string): string {
  return `connector.${connector}`;
}
