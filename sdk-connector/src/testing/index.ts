/**
 * @junction/sdk-connector/testing — the conformance kits every connector runs in its own tests, and a
 * fake context for unit tests. Depends on no test runner.
 */
export {
  runSinkConformance,
  runSinkCheck,
  sinkCheckNotApplicable,
  SINK_CHECKS,
  type SinkCheck,
  type SinkConformanceOptions,
  type DeadLetterCase,
  type RetryCase,
  type BreakDestination,
} from './sink-conformance.js';
export { SINK_AUTHORING_CHECKS, type SinkAuthoringCheck } from './sink-authoring.js';
export { SINK_WEDGE_CHECKS, type SinkWedgeCheck, type SinkWedgeOptions, type UnusableCase, type StallDestination } from './sink-wedge.js';
export {
  EXACTLY_ONCE_CHECKS,
  type ExactlyOnceCheck,
  type ExactlyOnceOptions,
  type HeldWrites,
  type LateWriteCase,
} from './sink-exactly-once.js';
export {
  runSourceConformance,
  runSourceCheck,
  SOURCE_CHECKS,
  type SourceCheck,
  type SourceConformanceOptions,
} from './source-conformance.js';
export {
  runTransformConformance,
  TRANSFORM_CHECKS,
  type TransformCheck,
  type TransformConformanceOptions,
} from './transform-conformance.js';
export { sinkConformanceSuite, sourceConformanceSuite, type TestApi } from './suite.js';
export { assertConformance, type CheckResult, type CheckStatus, type NotApplicable } from './util.js';
export {
  fakeContext,
  type FakeContext,
  type FakeContextOptions,
  type FakeMetrics,
  type MetricValue,
  type LogRecord,
  type LogLevel,
} from './fake-context.js';
