/**
 * @junction/transforms — the steps of a connector's `transforms:` chain and the engine that runs them
 * in a connector's worker thread: built-ins (filter, drop, keep, rename, mask, setHeader, route,
 * flatten, timestamp, map with JSONata) and transform plugins (`defineTransform` in the SDK).
 *
 * ```ts
 * const check = checkTransforms(raw, 'sink');            // issues at transforms[2].fields[0]
 * const chain = await Pipeline.open(check.steps, { loadPlugin });
 * const outcome = await chain.runOne({ value, headers, timestamp });  // keep | drop | fail
 * ```
 */
export { TransformErrorCode, TransformFailed, StepError, configInvalid } from './errors.js';
export { TransformStep, TransformsConfig, Condition, stepLabel, type TransformStepInput, type Comparison } from './config.js';
export { checkTransforms, type TransformsCheck } from './check.js';
export { Pipeline, type Outcome, type PipelineOptions, type RunOptions } from './pipeline.js';
export type { Message } from './message.js';
export { flattenObject, maskHash, toMillis, fromMillis } from './steps.js';
export { getPath, setPath, deletePath, parsePath, FIELD_PATH_RE } from './paths.js';
