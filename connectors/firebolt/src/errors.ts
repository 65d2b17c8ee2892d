/** How firebolt-sdk's errors map to Junction's: retry, dead-letter, or fail the task. */
import { ErrorCode, JunctionError } from '@junction/sdk-connector';

/** One entry of Firebolt's structured error answer `{errors:[…]}`. */
interface FbError {
  code?: string;
  name?: string;
  description?: string;
  severity?: string;
}
interface SdkError {
  status?: number;
  raw?: { errors?: FbError[]; message?: string };
  errors?: FbError[];
  message?: string;
  url?: string;
  code?: unknown;
  name?: string;
}

/** Firebolt's structured errors in an SDK error: CompositeError (`errors`, HTTP 200) or ApiError (`raw.errors`, HTTP 4xx/5xx). */
export function fireboltErrors(err: unknown): FbError[] {
  const e = err as SdkError;
  return (Array.isArray(e?.errors) ? e.errors : Array.isArray(e?.raw?.errors) ? e.raw.errors : []) as FbError[];
}
const sqlStates = (err: unknown): string[] => fireboltErrors(err).map((x) => String(x.code ?? ''));
const status = (err: unknown): number | undefined => (typeof (err as SdkError)?.status === 'number' ? (err as SdkError).status : undefined);

/** A value that does not cast to its column, a NULL in a NOT NULL column (SQLSTATE class 22, 23502): the rows are wrong, not the service. */
export function isDataError(err: unknown): boolean {
  return sqlStates(err).some((c) => c.startsWith('22') || c === '23502');
}

/** The engine answered with a structured SQL error (the statement was refused, not lost). */
export function isSqlError(err: unknown): boolean {
  return (
    fireboltErrors(err).length > 0 &&
    !sqlStates(err).some((c) => c.startsWith('08') || c.startsWith('57') || c.startsWith('53') || c === 'XX000')
  );
}

/** Credentials refused: the token request answered 400/401/403, or the SDK could not renew its token. */
export function isAuthError(err: unknown): boolean {
  const e = err as SdkError;
  if (e?.constructor?.name === 'AuthenticationError') return true;
  return (status(err) === 401 || status(err) === 403 || status(err) === 400) && /oauth\/token/.test(String(e?.url ?? ''));
}

/** A missing account, database, engine or table. */
export function isNotFound(err: unknown): boolean {
  if ((err as SdkError)?.constructor?.name === 'AccountNotFoundError') return true;
  return sqlStates(err).some((c) => ['3D000', '42704', '42P01'].includes(c));
}

/** 5xx, 429, network trouble, a refused token renewal aside: trying again may work. */
export function isTransient(err: unknown): boolean {
  const s = status(err);
  if (s !== undefined) return s >= 500 || s === 429 || s === 408;
  return !isSqlError(err) && !isAuthError(err) && !isNotFound(err);
}

export function describe(err: unknown): string {
  const fb = fireboltErrors(err);
  if (fb.length > 0) return fb.map((x) => `${x.description ?? x.name ?? 'error'}${x.code ? ` (${x.code})` : ''}`).join('; ');
  const e = err as SdkError;
  const s = status(err);
  if (s !== undefined) {
    const reason = /Reason: (.*)/.exec(e.message ?? '')?.[1];
    return `HTTP ${s}${reason ? `: ${reason}` : ''}`;
  }
  return e?.message ?? String(err);
}

/** A JunctionError for a statement the task cannot get past by retrying (auth, missing objects, bad SQL), or a retryable one. */
export function toJunctionError(err: unknown, what: string): JunctionError {
  if (err instanceof JunctionError) return err;
  const msg = `${what}: ${describe(err)}`;
  if (isAuthError(err))
    return new JunctionError(
      ErrorCode.AUTH_FAILED,
      `${msg} (check clientId / clientSecret and that the service account is linked to a user)`,
      { cause: err },
    );
  if (isNotFound(err))
    return new JunctionError(
      ErrorCode.NOT_FOUND,
      `${msg} (the account, database and engine must exist, and the user must be granted access to them)`,
      { cause: err },
    );
  if (isSqlError(err)) return new JunctionError(ErrorCode.SINK_REJECTED, msg, { cause: err, retryable: false });
  return new JunctionError(ErrorCode.CONNECTION_FAILED, msg, { cause: err, retryable: true });
}
