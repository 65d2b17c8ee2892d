/** How PostgreSQL's errors (SQLSTATE) map to Junction's: retry, dead-letter, or fail the task (the CDC source uses the same, exported as `./errors`). */
import { ErrorCode, JunctionError } from '@junction/sdk-connector';

interface PgError {
  code?: unknown;
  message?: string;
  detail?: string;
  column?: string;
  constraint?: string;
}

/** The SQLSTATE of a server error, or undefined for a client / network error. */
export function sqlState(err: unknown): string | undefined {
  const c = (err as PgError | undefined)?.code;
  return typeof c === 'string' && /^[0-9A-Z]{5}$/.test(c) ? c : undefined;
}

/**
 * Data exceptions (class 22: a value that does not fit its column's type) and integrity constraint
 * violations (class 23: NOT NULL, CHECK, UNIQUE, FOREIGN KEY): the row is wrong, not the server.
 * Dead-lettered with the SQLSTATE.
 */
export function isDataError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && (s.startsWith('22') || s.startsWith('23'));
}

/**
 * Transient: connection exceptions (08), the backend terminated or the server shutting down (57P01–03),
 * a statement or lock timeout / cancel (57014, 55P03), serialization failures and deadlocks (40001,
 * 40P01, class 40), out of resources (53), and every error without a SQLSTATE (socket reset, refused,
 * "Connection terminated").
 */
export function isTransient(err: unknown): boolean {
  const s = sqlState(err);
  if (s === undefined) return true;
  return (
    s.startsWith('08') ||
    s.startsWith('40') ||
    s.startsWith('53') ||
    ['57P01', '57P02', '57P03', '57014', '55P03', '58000', '58030'].includes(s)
  );
}

/** Login or privilege refused: 28xxx (invalid authorization), 42501 (insufficient privilege). */
export function isAuthError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && (s.startsWith('28') || s === '42501');
}

/** Missing database (3D000), schema (3F000), table (42P01) or column (42703). */
export function isNotFound(err: unknown): boolean {
  return ['3D000', '3F000', '42P01', '42703'].includes(sqlState(err) ?? '');
}

export function describe(err: unknown): string {
  const e = err as PgError | undefined;
  const s = sqlState(err);
  const detail = e?.detail ? ` — ${e.detail}` : '';
  return `${e?.message ?? String(err)}${detail}${s ? ` (SQLSTATE ${s})` : ''}`;
}

/**
 * A JunctionError for a failure the sink does not answer per message: transient ones retryable
 * (CONNECTION_FAILED), auth / privilege AUTH_FAILED, missing objects NOT_FOUND, anything else the
 * server refused DESTINATION_UNUSABLE — the last three non-retryable, so the task fails clearly.
 */
export function toJunctionError(
  err: unknown,
  what: string,
  authHint = 'grant the role what the sink needs: README, "Privileges"',
): JunctionError {
  if (err instanceof JunctionError) return err;
  const msg = `${what}: ${describe(err)}`;
  if (isTransient(err)) return new JunctionError(ErrorCode.CONNECTION_FAILED, msg, { cause: err, retryable: true });
  if (isAuthError(err)) return new JunctionError(ErrorCode.AUTH_FAILED, `${msg} (${authHint})`, { cause: err });
  if (isNotFound(err)) return new JunctionError(ErrorCode.NOT_FOUND, msg, { cause: err });
  return new JunctionError(ErrorCode.DESTINATION_UNUSABLE, msg, { cause: err });
}
