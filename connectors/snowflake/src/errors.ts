/** How snowflake-sdk's errors map to Junction's: retry, dead-letter, or fail the task. */
import { ErrorCode, JunctionError } from '@junction/sdk-connector';

interface SfError {
  code?: unknown;
  sqlState?: string;
  message?: string;
}

const codeOf = (err: unknown): string => String((err as SfError)?.code ?? '');

/** Conversion / constraint failures (SQLSTATE class 22, Snowflake's 1000xx codes): the rows, not the service, are wrong. */
export function isDataError(err: unknown): boolean {
  return (
    ((err as SfError)?.sqlState ?? '').startsWith('22') ||
    ['100038', '100035', '100037', '100040', '100069', '100071', '100072'].includes(codeOf(err))
  );
}

/** Login refused, password expired, user locked, master token gone. */
export function isAuthError(err: unknown): boolean {
  return ['390100', '390101', '390102', '390144', '390318', '390114', '250001'].includes(codeOf(err));
}

/** Missing database, schema or table ("does not exist or not authorized"). */
export function isNotFound(err: unknown): boolean {
  return (
    ['002003', '002043', '390201'].includes(codeOf(err)) || (err as SfError)?.sqlState === '42S02' || (err as SfError)?.sqlState === '02000'
  );
}

/**
 * An answer of the SQL engine (it has a SQLSTATE): the statement ran, or was compiled, and was refused.
 * Class 08 (connection exception — e.g. 407002 "terminated connection" after the master token
 * expired) is not: a new session fixes it.
 */
export function isSqlError(err: unknown): boolean {
  const s = (err as SfError)?.sqlState;
  return typeof s === 'string' && s.length === 5 && !s.startsWith('08');
}

export function describe(err: unknown): string {
  const e = err as SfError;
  const code = e?.code === undefined ? '' : ` (${String(e.code)}${e.sqlState ? `, SQLSTATE ${e.sqlState}` : ''})`;
  return `${e?.message ?? String(err)}${code}`;
}

/** A JunctionError for a statement the task cannot get past by retrying (auth, missing objects, bad SQL). */
export function toJunctionError(err: unknown, what: string): JunctionError {
  if (err instanceof JunctionError) return err;
  const msg = `${what}: ${describe(err)}`;
  if (isAuthError(err))
    return new JunctionError(ErrorCode.AUTH_FAILED, `${msg} (check username / password and that the user may log in)`, { cause: err });
  if (isNotFound(err))
    return new JunctionError(
      ErrorCode.NOT_FOUND,
      `${msg} (the database and schema must exist, and the role must be granted USAGE on them)`,
      { cause: err },
    );
  if (isSqlError(err)) return new JunctionError(ErrorCode.SINK_REJECTED, msg, { cause: err, retryable: false });
  return new JunctionError(ErrorCode.CONNECTION_FAILED, msg, { cause: err, retryable: true });
}
