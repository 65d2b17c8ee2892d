/**
 * The kit's wedge checks judged against an in-memory sink: correct (eager or lazy about an unusable
 * destination) it passes them; each broken variant — hanging, retrying or misclassifying where it must
 * fail clearly, ignoring its abort signal, a close that hangs or throws after a failure — fails exactly
 * the checks that should catch it, and the kit itself never hangs.
 */
import { describe, expect, it } from 'vitest';
import { defineSink, JunctionError, ok, retry, z } from '../src/index.js';
import type { SinkBatch, WriteResult } from '../src/index.js';
import {
  runSinkConformance,
  SINK_WEDGE_CHECKS,
  sinkCheckNotApplicable,
  sinkConformanceSuite,
  type CheckResult,
  type SinkConformanceOptions,
} from '../src/testing/index.js';

type Bug =
  | 'lazy-unusable'
  | 'unusable-hangs'
  | 'unusable-retryable'
  | 'unusable-uncoded'
  | 'unusable-lazy-ok'
  | 'down-open-non-retryable'
  | 'down-open-hangs'
  | 'ignores-abort'
  | 'close-hangs-after-failure'
  | 'close-throws-after-failure';

interface Destination {
  values: Uint8Array[];
  down: boolean;
  stalled: boolean;
}
const destinations = new Map<string, Destination>();
const never = new Promise<never>(() => {});

function sink(bug?: Bug) {
  return defineSink({
    name: 'memory-wedge',
    version: '1.0.0',
    sdk: '^1',
    exactlyOnce: false,
    config: z.strictObject({ destination: z.string(), unusable: z.boolean().default(false), down: z.boolean().default(false) }),
    async open(config) {
      if (config.unusable && bug !== 'lazy-unusable' && bug !== 'unusable-lazy-ok') {
        if (bug === 'unusable-hangs') await never;
        if (bug === 'unusable-retryable') throw new JunctionError('CONNECTION_FAILED', 'cannot reach it');
        if (bug === 'unusable-uncoded') throw new Error('ENOENT: no such file or directory');
        throw new JunctionError('DESTINATION_UNUSABLE', 'this destination can never be used');
      }
      if (config.down && bug === 'down-open-non-retryable') throw new JunctionError('AUTH_FAILED', 'refused (while only down)');
      if (config.down && bug === 'down-open-hangs') await never;
      const dest = destinations.get(config.destination) ?? { values: [], down: false, stalled: false };
      destinations.set(config.destination, dest);
      let failed = false;
      return {
        // The kit's check-connection check runs it with the working config (so that check runs here too).
        async checkConnection() {
          if (config.down || dest.down) throw new JunctionError('CONNECTION_FAILED', 'the destination is down', { retryable: true });
        },
        async write(batch: SinkBatch, { signal }: { signal: AbortSignal }): Promise<WriteResult[]> {
          if (config.unusable) {
            if (bug === 'unusable-lazy-ok') return batch.messages.map(() => ok());
            throw new JunctionError('DESTINATION_UNUSABLE', 'this destination can never be used (found at the first write)');
          }
          if (dest.stalled) {
            if (bug === 'ignores-abort') await never;
            await new Promise((_, reject) => {
              if (signal.aborted) reject(signal.reason);
              signal.addEventListener('abort', () => reject(signal.reason), { once: true });
            });
          }
          if (config.down || dest.down) {
            failed = true;
            return batch.messages.map(() => retry('destination down'));
          }
          for (const m of batch.messages) dest.values.push(m.value);
          return batch.messages.map(() => ok());
        },
        async close() {
          if (failed && bug === 'close-hangs-after-failure') await never;
          if (failed && bug === 'close-throws-after-failure') throw new Error('the connection was already gone');
        },
      };
    },
  });
}

function options(bug?: Bug): SinkConformanceOptions {
  const destination = `w-${Math.random().toString(36).slice(2)}`;
  return {
    plugin: sink(bug),
    config: { destination },
    readBack: async () => destinations.get(destination)?.values ?? [],
    deadLetter: { notApplicable: 'the memory sink accepts every value' },
    unusable: { config: { destination, unusable: true } },
    retry: {
      config: { destination, down: true },
      breakDestination: async () => {
        const d = destinations.get(destination);
        if (d) d.down = true;
        return async () => {
          if (d) d.down = false;
        };
      },
    },
    stall: async () => {
      const d = destinations.get(destination);
      if (d) d.stalled = true;
      return async () => {
        if (d) d.stalled = false;
      };
    },
    timeoutMs: 300,
    abortGraceMs: 300,
  };
}

function failed(results: CheckResult[]): string[] {
  return results.filter((r) => r.status === 'failed').map((r) => r.check);
}

describe('the wedge checks', () => {
  it('pass a sink that fails clearly at open, and one that fails clearly at its first write', async () => {
    for (const bug of [undefined, 'lazy-unusable'] as const) {
      const results = await runSinkConformance(options(bug));
      expect(results.filter((r) => r.status === 'failed').map((r) => `${r.check}: ${r.detail}`)).toEqual([]);
      const wedge = results.filter((r) => (SINK_WEDGE_CHECKS as readonly string[]).includes(r.check));
      expect(wedge.map((r) => [r.check, r.status])).toEqual(SINK_WEDGE_CHECKS.map((c) => [c, 'passed']));
      expect(results.find((r) => r.check === 'open-unusable')?.detail).toContain('DESTINATION_UNUSABLE, not retryable');
    }
  });

  const bugs: [Bug, string[], RegExp][] = [
    ['unusable-hangs', ['open-unusable'], /open\(\) did not settle within 300 ms/],
    ['unusable-retryable', ['open-unusable'], /retryable error .*can never be used/],
    ['unusable-uncoded', ['open-unusable'], /throw a JunctionError with a stable code/],
    ['unusable-lazy-ok', ['open-unusable'], /although the destination can never be used/],
    [
      'down-open-non-retryable',
      ['open-unreachable', 'retry', 'close-after-failure'],
      /non-retryable error while the destination is only down/,
    ],
    ['down-open-hangs', ['open-unreachable', 'retry', 'close-after-failure'], /open\(\) did not settle within 300 ms/],
    ['ignores-abort', ['write-stalled-abort'], /did not settle within 300 ms of its signal aborting/],
    ['close-hangs-after-failure', ['close-after-failure'], /close\(\) after a failed write did not settle/],
    ['close-throws-after-failure', ['close-after-failure'], /close\(\) after a failed write threw/],
  ];
  for (const [bug, expected, detail] of bugs) {
    it(`catch a sink with bug "${bug}"`, async () => {
      const results = await runSinkConformance(options(bug));
      expect(failed(results).sort()).toEqual([...expected].sort());
      expect(results.find((r) => r.check === expected[0])?.detail).toMatch(detail);
    });
  }

  it('are not applicable, with the reason, without their cases', async () => {
    const o: SinkConformanceOptions = {
      ...options(),
      unusable: undefined,
      stall: { notApplicable: 'writes cannot be stalled from outside' },
      retry: undefined,
    };
    const results = await runSinkConformance({ ...o, checks: [...SINK_WEDGE_CHECKS] });
    expect(results.map((r) => [r.check, r.status])).toEqual(SINK_WEDGE_CHECKS.map((c) => [c, 'not-applicable']));
    expect(results.find((r) => r.check === 'write-stalled-abort')?.detail).toBe('writes cannot be stalled from outside');
    for (const c of SINK_WEDGE_CHECKS) expect(sinkCheckNotApplicable(o, c)).toBeDefined();
    expect(sinkCheckNotApplicable(options(), 'open-unusable')).toBeUndefined();
  });
});

// As a connector's test file registers them.
sinkConformanceSuite({ describe, it }, options());
