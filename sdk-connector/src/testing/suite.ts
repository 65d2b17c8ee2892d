/**
 * The kits as test-runner suites: one test per check. The runner's `describe` and `it` come from the
 * caller, so the SDK depends on no runner; vitest, jest, mocha and node:test all fit. A failed check
 * throws an Error carrying its detail. A check known up front to be not applicable (the options say so)
 * is not registered at all — a test that cannot run proves nothing; `runSinkConformance` still lists
 * it with its reason. One found not applicable while running (an optional method the plugin lacks) is
 * skipped through the runner's context (`ctx.skip(reason)` in vitest and node:test), or reported with
 * console.warn where the runner cannot skip.
 */
import type { CheckResult } from './util.js';
import { SINK_CHECKS, runSinkCheck, sinkCheckNotApplicable, type SinkConformanceOptions } from './sink-conformance.js';
import { SOURCE_CHECKS, runSourceCheck, type SourceConformanceOptions } from './source-conformance.js';

type TestFn = (ctx?: unknown) => Promise<void>;

/** The part of a test runner the suites use: `{ describe, it }` from vitest, jest, mocha or node:test. */
export interface TestApi {
  describe: (name: string, fn: () => void) => unknown;
  it: (name: string, fn: TestFn) => unknown;
}

async function report(result: CheckResult, ctx: unknown): Promise<void> {
  if (result.status === 'passed') return;
  if (result.status === 'failed') throw new Error(`${result.check}: ${result.detail}`);
  const skip = (ctx as { skip?: unknown } | undefined)?.skip;
  // vitest's ctx.skip() throws to stop the test; node:test's t.skip() only marks it.
  if (typeof skip === 'function') (skip as (note?: string) => void).call(ctx, `not applicable: ${result.detail}`);
  else console.warn(`[conformance] ${result.check}: not applicable: ${result.detail}`);
}

/**
 * Registers the sink conformance checks as tests, one per check, inside
 * `describe('sink conformance: <name>')`. Call it at the top level of a test file:
 *
 * ```ts
 * import { describe, it } from 'vitest';
 * sinkConformanceSuite({ describe, it }, { plugin, config, readBack, deadLetter, retry });
 * ```
 */
export function sinkConformanceSuite(api: TestApi, options: SinkConformanceOptions): void {
  api.describe(`sink conformance: ${options.plugin.manifest.name}`, () => {
    for (const check of SINK_CHECKS) {
      if (options.checks && !options.checks.includes(check)) continue;
      if (sinkCheckNotApplicable(options, check) !== undefined) continue;
      api.it(check, async (ctx) => report(await runSinkCheck(options, check), ctx));
    }
  });
}

/** Registers the source conformance checks as tests, like {@link sinkConformanceSuite}. */
export function sourceConformanceSuite(api: TestApi, options: SourceConformanceOptions): void {
  api.describe(`source conformance: ${options.plugin.manifest.name}`, () => {
    for (const check of SOURCE_CHECKS) {
      if (options.checks && !options.checks.includes(check)) continue;
      api.it(check, async (ctx) => report(await runSourceCheck(options, check), ctx));
    }
  });
}
