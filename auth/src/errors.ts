/**
 * Errors of the auth package: JunctionErrors (from the broker, so every HTTP error handler and the CLI
 * treat them alike) with stable codes. Never match on messages.
 */
import { JunctionError } from '@junction/broker';

export const AuthErrorCode = {
  /** No credential, or one that is malformed, forged, expired or revoked (HTTP 401). */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** The principal is known but lacks the grant; the message names the action and the resource (HTTP 403). */
  FORBIDDEN: 'FORBIDDEN',
  USER_NOT_FOUND: 'USER_NOT_FOUND',
  USER_EXISTS: 'USER_EXISTS',
  TOKEN_NOT_FOUND: 'TOKEN_NOT_FOUND',
  /** Too many failed logins for this user or from this address: retry after the time the message gives (HTTP 429). */
  LOGIN_RATE_LIMITED: 'LOGIN_RATE_LIMITED',
  /** The change would leave no admin (deleting or demoting the last one). */
  LAST_ADMIN: 'LAST_ADMIN',
  /** Auth is on, nobody can log in yet and JUNCTION_ADMIN_PASSWORD is not set: the server refuses to start. */
  AUTH_BOOTSTRAP_REQUIRED: 'AUTH_BOOTSTRAP_REQUIRED',
  /** The users file and its previous copy are both unreadable: the server refuses to start rather than start empty. */
  AUTH_STATE_CORRUPT: 'AUTH_STATE_CORRUPT',
} as const;
export type AuthErrorCode = (typeof AuthErrorCode)[keyof typeof AuthErrorCode];

/** HTTP status of each auth code (the rest go through the broker's table). */
export const AUTH_STATUS: Readonly<Record<string, number>> = {
  [AuthErrorCode.UNAUTHENTICATED]: 401,
  [AuthErrorCode.FORBIDDEN]: 403,
  [AuthErrorCode.USER_NOT_FOUND]: 404,
  [AuthErrorCode.TOKEN_NOT_FOUND]: 404,
  [AuthErrorCode.USER_EXISTS]: 409,
  [AuthErrorCode.LAST_ADMIN]: 409,
  [AuthErrorCode.LOGIN_RATE_LIMITED]: 429,
};

export function unauthenticated(message = 'a valid token is required (Authorization: Bearer …)'): JunctionError {
  return new JunctionError(AuthErrorCode.UNAUTHENTICATED, message);
}

/** 403 naming what is missing: `missing "produce" on station "orders"`. */
export function forbidden(action: string, resource: string, name: string | undefined, why?: string): JunctionError {
  const target = name === undefined ? `every ${resource} (a listing)` : `${resource} "${name}"`;
  return new JunctionError(AuthErrorCode.FORBIDDEN, `missing "${action}" on ${target}${why ? ` (${why})` : ''}`);
}

export { JunctionError };
