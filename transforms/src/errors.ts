/**
 * The transforms' errors. Codes are stable; the runtime decides on `code`, never on the message.
 * A step that fails a message throws TRANSFORM_FAILED with the step's index and name; a chain that
 * cannot be built (a bad expression, a plugin that is not a transform) is CONFIG_INVALID with issues at
 * `transforms[i]…`.
 */
import { JunctionError, type Issue } from '@junction/sdk-connector';

export const TransformErrorCode = {
  /** A step failed on one message (not JSON where fields are needed, a field of the wrong type, a throw in a plugin). */
  TRANSFORM_FAILED: 'TRANSFORM_FAILED',
  /** The chain is not valid (issues carry `transforms[i].field` paths). */
  CONFIG_INVALID: 'CONFIG_INVALID',
} as const;
export type TransformErrorCode = (typeof TransformErrorCode)[keyof typeof TransformErrorCode];

/** One message failed in one step: `step` is its index in the chain, `stepName` its `name` or type. */
export class TransformFailed extends JunctionError {
  override name = 'TransformFailed';
  constructor(
    readonly step: number,
    readonly stepName: string,
    reason: string,
    cause?: unknown,
  ) {
    super(TransformErrorCode.TRANSFORM_FAILED, `transforms[${step}] (${stepName}): ${reason}`, { retryable: false, cause });
  }
}

/** The chain's config is invalid. */
export function configInvalid(issues: Issue[]): JunctionError {
  const first = issues[0];
  return new JunctionError(TransformErrorCode.CONFIG_INVALID, `transforms are invalid${first ? `: ${first.path}: ${first.message}` : ''}`, {
    issues,
    retryable: false,
  });
}

/** Thrown by a step for one message; the pipeline wraps it into {@link TransformFailed} with the step. */
export class StepError extends Error {
  override name = 'StepError';
}
