/**
 * Errors of the server package. Everything the server throws on purpose is a `JunctionError` (from
 * the broker, so the HTTP error handler and the CLI treat them alike) with a stable code.
 */
import { JunctionError, ErrorCode, configInvalid, issuesFromZod, isJunctionError } from '@junction/broker';
import type { Issue } from '@junction/broker';

export { JunctionError, ErrorCode, configInvalid, issuesFromZod, isJunctionError };
export type { Issue };

/** Codes the server adds to the broker's. */
export const ServerErrorCode = {
  /** The HTTP listener could not bind (address in use, permission denied, bad host). */
  LISTEN_FAILED: 'LISTEN_FAILED',
} as const;
export type ServerErrorCode = (typeof ServerErrorCode)[keyof typeof ServerErrorCode];

/** A CONFIG_INVALID error carrying the given issues; the message names the first one. */
export function configIssues(what: string, issues: Issue[]): JunctionError {
  const first = issues[0];
  return new JunctionError(ErrorCode.CONFIG_INVALID, `${what} is invalid${first ? `: ${first.path || '(root)'}: ${first.message}` : ''}`, {
    issues,
  });
}
