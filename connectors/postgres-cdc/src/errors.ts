/** PostgreSQL's errors (SQLSTATE) as Junction's: the postgres sink's mapping (one copy), with the source's own hint for privileges. */
import type { JunctionError } from '@junction/sdk-connector';
import {
  describe,
  isAuthError,
  isNotFound,
  isTransient,
  sqlState,
  toJunctionError as toJunctionErrorOf,
} from '@junction/connector-postgres/errors';

export { describe, isAuthError, isNotFound, isTransient, sqlState };

export function toJunctionError(err: unknown, what: string): JunctionError {
  return toJunctionErrorOf(err, what, 'the role needs REPLICATION, and SELECT on the tables for a snapshot: README');
}
