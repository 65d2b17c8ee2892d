/**
 * Errors of the connector runtime. Everything it throws on purpose is a `JunctionError` of the broker
 * package (the class core/server's error handler knows) with a stable code; `connectStatusFor` gives
 * the HTTP status of the codes this package adds.
 */
import { JunctionError, isJunctionError, httpStatusFor } from '@junction/broker';
import type { Issue } from '@junction/broker';

export { JunctionError, isJunctionError };
export type { Issue };

/** Codes the runtime adds to the broker's. Stable: clients may switch on them. */
export const ConnectErrorCode = {
  CONNECTOR_NOT_FOUND: 'CONNECTOR_NOT_FOUND',
  CONNECTOR_EXISTS: 'CONNECTOR_EXISTS',
  /** Offsets may be changed only while the connector is STOPPED (as in Kafka Connect). */
  CONNECTOR_NOT_STOPPED: 'CONNECTOR_NOT_STOPPED',
  TASK_NOT_FOUND: 'TASK_NOT_FOUND',
  CONFIG_INVALID: 'CONFIG_INVALID',
  PLUGIN_NOT_FOUND: 'PLUGIN_NOT_FOUND',
  /** The plugin is a sink where a source is needed, or the other way round. */
  PLUGIN_KIND_MISMATCH: 'PLUGIN_KIND_MISMATCH',
  /** A `${env:…}` / `${file:…}` reference could not be resolved when a task started. */
  SECRET_UNRESOLVED: 'SECRET_UNRESOLVED',
  /** A write did not settle within `writeTimeoutMs`; its worker was terminated. */
  WRITE_TIMEOUT: 'WRITE_TIMEOUT',
  /** A sink's `open()` did not settle within `max(30 s, writeTimeoutMs)`; its worker was terminated. */
  OPEN_TIMEOUT: 'OPEN_TIMEOUT',
  /**
   * A terminated worker thread did not exit: plugin code is blocked in a native call that never returns.
   * The thread is abandoned; its task restarts once it exits (or by hand).
   */
  WORKER_STUCK: 'WORKER_STUCK',
  /** The worker thread running plugin code exited (process.exit, crash) or ran out of heap. */
  WORKER_CRASHED: 'WORKER_CRASHED',
  WORKER_OUT_OF_MEMORY: 'WORKER_OUT_OF_MEMORY',
  /**
   * A thread of the shared pool was recycled (terminated) because of another task on it (its write
   * timed out, its close hung): the batches this task had on that thread are sent again on the fresh one.
   * Not a failure of this task; it never reaches its status.
   */
  WORKER_RECYCLED: 'WORKER_RECYCLED',
  /** Messages still answered retry (or failed) when `errors.retryTimeoutMs` ran out. */
  RETRIES_EXHAUSTED: 'RETRIES_EXHAUSTED',
  RUNTIME_CLOSED: 'RUNTIME_CLOSED',
  /** A source's positions were written by a newer owner of the task (cluster): this runner is stale. */
  POSITION_FENCED: 'POSITION_FENCED',
  /** A source's stored positions (and their previous copy) are unreadable: the source does not start over by itself. */
  POSITIONS_DAMAGED: 'POSITIONS_DAMAGED',
} as const;
export type ConnectErrorCode = (typeof ConnectErrorCode)[keyof typeof ConnectErrorCode];

const STATUS: Record<string, number> = {
  [ConnectErrorCode.CONNECTOR_NOT_FOUND]: 404,
  [ConnectErrorCode.TASK_NOT_FOUND]: 404,
  [ConnectErrorCode.CONNECTOR_EXISTS]: 409,
  [ConnectErrorCode.CONNECTOR_NOT_STOPPED]: 409,
  [ConnectErrorCode.CONFIG_INVALID]: 400,
  // In a connector declaration an unknown plugin is bad input (400), as in Kafka Connect.
  [ConnectErrorCode.PLUGIN_NOT_FOUND]: 400,
  [ConnectErrorCode.PLUGIN_KIND_MISMATCH]: 400,
  PLUGIN_INVALID: 400,
  SDK_INCOMPATIBLE: 400,
  [ConnectErrorCode.RUNTIME_CLOSED]: 503,
  [ConnectErrorCode.POSITION_FENCED]: 409,
  // Sealing secrets at rest (sealed.ts): the server's key is missing or broken, not the request.
  SECRETS_KEY_UNAVAILABLE: 503,
  SECRETS_KEY_INVALID: 500,
  SECRET_UNSEALABLE: 500,
};

/** HTTP status for a code: this package's table first, then the broker's. */
export function connectStatusFor(code: string): number {
  return STATUS[code] ?? httpStatusFor(code);
}

export function connectError(
  code: ConnectErrorCode | (string & {}),
  message: string,
  opts: { cause?: unknown; issues?: Issue[]; retryable?: boolean } = {},
): JunctionError {
  return new JunctionError(code, message, opts);
}

/** CONFIG_INVALID with the issues; the message names the first one (`config.dir: Required`). */
export function configInvalid(what: string, issues: Issue[]): JunctionError {
  const first = issues[0];
  return new JunctionError(
    ConnectErrorCode.CONFIG_INVALID,
    `${what} is invalid${first ? `: ${first.path || '(root)'}: ${first.message}` : ''}`,
    { issues },
  );
}

/** `code` of any error-like value (a JunctionError of any package copy, a deserialized one). */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A readable trace for status: the stack when there is one (it starts with the message), else the message. */
export function traceOf(err: unknown): string {
  if (err instanceof Error) {
    const code = codeOf(err);
    const head = code ? `${code}: ` : '';
    let out = typeof err.stack === 'string' && err.stack.length > 0 ? `${head}${err.stack}` : `${head}${err.message}`;
    let cause = (err as { cause?: unknown }).cause;
    for (let depth = 0; cause !== undefined && depth < 4; depth++) {
      out += `\nCaused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`;
      cause = cause instanceof Error ? (cause as { cause?: unknown }).cause : undefined;
    }
    return out;
  }
  return String(err);
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
