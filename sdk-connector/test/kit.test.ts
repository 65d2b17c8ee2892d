/**
 * The conformance kits judged against reference plugins: a correct in-memory sink and source pass every
 * check; each deliberately broken variant fails exactly the check that should catch its bug.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { deadLetter, defineSink, defineSource, JunctionError, ok, retry, secret, z } from '../src/index.js';
import type { Logger, SinkBatch, WriteResult } from '../src/index.js';
import {
  fakeContext,
  runSinkConformance,
  runSourceConformance,
  sinkConformanceSuite,
  sourceConformanceSuite,
  assertConformance,
  type CheckResult,
  type SinkConformanceOptions,
} from '../src/testing/index.js';

type Bug =
  | 'wrong-count'
  | 'duplicates'
  | 'close-throws-twice'
  | 'hangs'
  | 'unclonable-results'
  | 'ok-while-broken'
  | 'throws-on-poison'
  | 'drops-offset-2'
  | 'throws-retryable-while-broken'
  | 'shared-signal'
  | 'keys-on-name'
  | 'checks-only-at-send'
  | 'answers-per-key'
  | 'dead-letters-duplicates'
  | 'marks-before-abort'
  | 'logs-config'
  | 'prints-secret'
  /** Declares keepsValues: false but keeps the values' views in the destination (instead of copies). */
  | 'keeps-views';

/** A request the destination holds (received, not applied). */
interface Held {
  apply: () => void;
}
interface Destination {
  values: Uint8Array[];
  byOffset: Map<string, Uint8Array>;
  down: boolean;
  holding: boolean;
  held: Held[];
  onHeld: (() => void)[];
  /** Writes wait for their signal to abort (the wedge checks' stalled destination). */
  stalled?: boolean;
}

/** Destinations by name, so every test run has its own. */
const destinations = new Map<string, Destination>();
const decoder = new TextDecoder();

function destination(name: string): Destination {
  let d = destinations.get(name);
  if (!d) destinations.set(name, (d = { values: [], byOffset: new Map(), down: false, holding: false, held: [], onHeld: [] }));
  return d;
}

function memorySink(opts: { bug?: Bug; exactlyOnce?: boolean; sdk?: string; keepsValues?: boolean } = {}) {
  const keepsValues = opts.bug === 'keeps-views' ? false : opts.keepsValues;
  // A sink that declares it keeps no value past write() stores copies (unless it has that bug).
  const stored = (v: Uint8Array): Uint8Array => (keepsValues === false && opts.bug !== 'keeps-views' ? v.slice() : v);
  return defineSink({
    name: 'memory',
    version: '1.0.0',
    sdk: opts.sdk ?? '^1',
    exactlyOnce: opts.exactlyOnce ?? true,
    ...(keepsValues !== undefined && { keepsValues }),
    config: z.strictObject({
      destination: z.string(),
      token: secret(z.string()).optional(),
      failing: z.boolean().default(false).describe('answer retry() for every message (tests)'),
      unusable: z.boolean().default(false).describe('a destination that can never be used (tests)'),
    }),
    async open(config, ctx) {
      if (opts.bug === 'logs-config') ctx.logger.info({ config }, 'memory sink opened');
      // The 'dead-letters-duplicates' bug: what this sink wrote, taken for a unique key a replay violates.
      const mine = new Set<string>();
      if (config.unusable) throw new JunctionError('DESTINATION_UNUSABLE', `destination ${config.destination} cannot be used`);
      let closed = 0;
      // The 'shared-signal' bug: "the current write" kept in a field (a concurrent write replaces it).
      let current: AbortSignal | undefined;
      const dest = destination(config.destination);
      // The destination applies a request: a row whose id it holds already is skipped (an anti-join),
      // unless the 'checks-only-at-send' bug trusts what the sink decided when it sent the request.
      const apply = (rows: { id: string; value: Uint8Array }[]) => {
        for (const r of rows) {
          if (opts.bug === 'duplicates' || opts.bug === 'checks-only-at-send' || !dest.byOffset.has(r.id))
            dest.values.push(stored(r.value));
          dest.byOffset.set(r.id, stored(r.value));
        }
      };
      const send = (rows: { id: string; value: Uint8Array }[]): Promise<void> => {
        if (!dest.holding) {
          apply(rows);
          return Promise.resolve();
        }
        // The answer never comes: the writer that sent it is dead.
        return new Promise<void>(() => {
          dest.held.push({ apply: () => apply(rows) });
          for (const f of dest.onHeld.splice(0)) f();
        });
      };
      return {
        async write(batch: SinkBatch, { signal }: { signal: AbortSignal }): Promise<WriteResult[]> {
          if (opts.bug === 'hangs') return new Promise(() => {});
          if (dest.stalled) {
            // A stalled destination holds the write until its signal aborts.
            await new Promise((_, reject) => {
              if (signal.aborted) reject(signal.reason);
              signal.addEventListener('abort', () => reject(signal.reason), { once: true });
            });
          }
          current = signal;
          await Promise.resolve();
          if (opts.bug === 'shared-signal' && current.aborted)
            throw new JunctionError('TIMEOUT', 'the write was aborted', { retryable: true });
          const broken = config.failing || dest.down;
          if (opts.bug === 'marks-before-abort' && !broken && !dest.holding) {
            // Marked as written before the (slow) send: when the send is aborted, the replay skips them.
            const fresh = batch.messages.filter(
              (m) =>
                decoder.decode(m.value) !== 'POISON' &&
                !dest.byOffset.has(`${batch.station}#${batch.stationId}/${batch.partition}/${m.offset}`),
            );
            for (const m of fresh) dest.byOffset.set(`${batch.station}#${batch.stationId}/${batch.partition}/${m.offset}`, m.value);
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, 20);
              signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
              if (signal.aborted) resolve();
            });
            if (signal.aborted) throw new JunctionError('TIMEOUT', 'the write was aborted', { retryable: true });
            for (const m of fresh) dest.values.push(stored(m.value));
            return batch.messages.map((m) => (decoder.decode(m.value) === 'POISON' ? deadLetter('SINK_REJECTED', 'poison') : ok()));
          }
          if (broken && opts.bug === 'throws-retryable-while-broken') throw new JunctionError('CONNECTION_FAILED', 'down');
          const rows: { id: string; value: Uint8Array }[] = [];
          const results = batch.messages.map((m): WriteResult => {
            if (decoder.decode(m.value) === 'POISON') {
              if (opts.bug === 'throws-on-poison') throw new Error('cannot parse');
              return deadLetter('SINK_REJECTED', 'poison');
            }
            if (broken && opts.bug !== 'ok-while-broken') return retry('destination down', { delayMs: 10 });
            if (broken) return ok();
            if (opts.bug === 'drops-offset-2' && m.offset === 2) return ok();
            const id =
              opts.bug === 'keys-on-name'
                ? `${batch.station}/${batch.partition}/${m.offset}`
                : `${batch.station}#${batch.stationId}/${batch.partition}/${m.offset}`;
            if (opts.bug === 'dead-letters-duplicates') {
              if (mine.has(id)) return deadLetter('DUPLICATE_KEY', 'duplicate key value violates unique constraint');
              mine.add(id);
            }
            if (!dest.byOffset.has(id) || opts.bug === 'duplicates') rows.push({ id, value: m.value });
            return ok();
          });
          if (rows.length > 0) await send(rows);
          if (opts.bug === 'wrong-count') results.pop();
          // One answer per key when every message has one (rows grouped by key).
          if (opts.bug === 'answers-per-key' && batch.messages.every((m) => m.key !== undefined))
            return [...new Set(batch.messages.map((m) => m.key))].map(() => ok());
          if (opts.bug === 'unclonable-results') return results.map((r) => ({ ...r, toString: () => 'x' }) as unknown as WriteResult);
          return results;
        },
        async close() {
          if (opts.bug === 'prints-secret' && config.token !== undefined)
            console.error(`closing ${config.destination} (token ${config.token})`);
          closed += 1;
          if (opts.bug === 'close-throws-twice' && closed > 1) throw new Error('already closed');
        },
        async checkConnection() {
          if (dest.down) throw new JunctionError('CONNECTION_FAILED', 'down');
        },
      };
    },
  });
}

function options(plugin: ReturnType<typeof memorySink>, over: Partial<SinkConformanceOptions> = {}): SinkConformanceOptions {
  const name = `d-${Math.random().toString(36).slice(2)}`;
  return {
    plugin,
    config: { destination: name, token: 'super-secret-token' },
    readBack: async () => destinations.get(name)?.values ?? [],
    deadLetter: { value: 'POISON' },
    unusable: { config: { destination: name, unusable: true } },
    stall: async () => {
      const d = destinations.get(name);
      if (d) d.stalled = true;
      return async () => {
        if (d) d.stalled = false;
      };
    },
    retry: {
      config: { destination: name, failing: true },
      breakDestination: async () => {
        const d = destinations.get(name);
        if (d) d.down = true;
        return async () => {
          if (d) d.down = false;
        };
      },
    },
    lateWrite: {
      hold: async () => {
        const d = destination(name);
        d.holding = true;
        return {
          held: () => new Promise<void>((resolve) => (d.held.length > 0 ? resolve() : d.onHeld.push(resolve))),
          stop: () => {
            d.holding = false;
          },
          // Applied; the answers never reach the dead writer.
          release: async () => {
            d.holding = false;
            for (const h of d.held.splice(0)) h.apply();
          },
        };
      },
    },
    timeoutMs: 500,
    manyMessages: 50,
    ...over,
  };
}

function statuses(results: CheckResult[]): Record<string, string> {
  return Object.fromEntries(results.map((r) => [r.check, r.status]));
}

function failed(results: CheckResult[]): string[] {
  return results.filter((r) => r.status === 'failed').map((r) => r.check);
}

describe('runSinkConformance', () => {
  it('passes a correct exactly-once sink on every check', async () => {
    const results = await runSinkConformance(options(memorySink()));
    expect(results.filter((r) => r.status !== 'passed')).toEqual([]);
    expect(results.map((r) => r.check)).toEqual([
      'manifest',
      'open-close',
      'close-twice',
      'check-connection',
      'single-message',
      'many-messages',
      'partitions-and-stations',
      'concurrent-partitions',
      'dead-letter',
      'retry',
      'replay-same-batch',
      'replay-overlapping',
      'aborted-signal',
      'results-count',
      'replay-idempotent',
      'aborted-write',
      'secrets-not-logged',
      'open-unusable',
      'open-unreachable',
      'write-stalled-abort',
      'close-after-failure',
      'station-identity',
      'late-write',
    ]);
    expect(results.find((r) => r.check === 'replay-overlapping')?.detail).toContain('exactly once');
    expect(() => assertConformance(results)).not.toThrow();
  });

  it('keepsValues: false — passes a sink that copies what it keeps; fails one that keeps views of the values past write()', async () => {
    const copies = await runSinkConformance(options(memorySink({ keepsValues: false })));
    expect(copies.filter((r) => r.status !== 'passed')).toEqual([]);
    const views = await runSinkConformance(options(memorySink({ bug: 'keeps-views' })));
    const failed = views.filter((r) => r.status === 'failed').map((r) => r.check);
    // Every check that reads the destination back after a clean write finds the values gone.
    expect(failed).toEqual(expect.arrayContaining(['single-message', 'many-messages', 'partitions-and-stations', 'replay-same-batch']));
    // The same sink declaring the default (it keeps values) passes: the kit lends only to sinks that say they do not keep them.
    expect((await runSinkConformance(options(memorySink()))).filter((r) => r.status !== 'passed')).toEqual([]);
  });

  it('also accepts a retry path that throws a retryable error', async () => {
    const results = await runSinkConformance({ ...options(memorySink({ bug: 'throws-retryable-while-broken' })), checks: ['retry'] });
    expect(results[0]).toMatchObject({ status: 'passed' });
    expect(results[0]?.detail).toContain('threw a retryable error');
  });

  it('a retry case may be a config under which the sink fails', async () => {
    const o = options(memorySink());
    const results = await runSinkConformance({ ...o, retry: { config: { ...(o.config as object), failing: true } }, checks: ['retry'] });
    expect(results[0]).toMatchObject({ status: 'passed' });
  });

  const bugs: [Bug, string[]][] = [
    [
      'wrong-count',
      [
        'single-message',
        'many-messages',
        'partitions-and-stations',
        'concurrent-partitions',
        'dead-letter',
        'retry',
        'replay-same-batch',
        'replay-overlapping',
        'aborted-signal',
        'station-identity',
        'late-write',
        'results-count',
        'replay-idempotent',
        'aborted-write',
      ],
    ],
    ['duplicates', ['replay-same-batch', 'replay-overlapping', 'station-identity', 'late-write', 'replay-idempotent', 'aborted-write']],
    ['close-throws-twice', ['close-twice']],
    [
      'unclonable-results',
      [
        'single-message',
        'many-messages',
        'partitions-and-stations',
        'concurrent-partitions',
        'dead-letter',
        'retry',
        'replay-same-batch',
        'replay-overlapping',
        'aborted-signal',
        'station-identity',
        'late-write',
        'results-count',
        'replay-idempotent',
        'aborted-write',
      ],
    ],
    ['ok-while-broken', ['retry']],
    ['throws-on-poison', ['dead-letter']],
    ['shared-signal', ['concurrent-partitions']],
    [
      'drops-offset-2',
      [
        'many-messages',
        'partitions-and-stations',
        'concurrent-partitions',
        'retry',
        'replay-same-batch',
        'replay-overlapping',
        'station-identity',
        'late-write',
        'results-count',
        'replay-idempotent',
        'aborted-write',
      ],
    ],
    ['keys-on-name', ['station-identity']],
    ['checks-only-at-send', ['late-write']],
    ['answers-per-key', ['results-count']],
    // Also caught where other checks replay on one open sink.
    ['dead-letters-duplicates', ['replay-idempotent', 'replay-overlapping', 'aborted-write', 'station-identity', 'late-write']],
    ['marks-before-abort', ['aborted-write']],
    ['logs-config', ['secrets-not-logged']],
    ['prints-secret', ['secrets-not-logged']],
  ];
  for (const [bug, expected] of bugs) {
    it(`catches a sink with bug "${bug}"`, async () => {
      const results = await runSinkConformance(options(memorySink({ bug })));
      expect(failed(results).sort()).toEqual([...expected].sort());
      for (const r of results.filter((x) => x.status === 'failed')) expect(r.detail.length).toBeGreaterThan(10);
    });
  }

  it('fails a hanging sink on time instead of hanging itself', async () => {
    const results = await runSinkConformance({ ...options(memorySink({ bug: 'hangs' })), checks: ['single-message'] });
    expect(results[0]).toMatchObject({ status: 'failed' });
    expect(results[0]?.detail).toContain('did not settle within 500 ms');
  });

  it('holds an at-least-once sink to at least once only', async () => {
    const results = await runSinkConformance(options(memorySink({ bug: 'duplicates', exactlyOnce: false })));
    expect(failed(results)).toEqual([]);
    expect(results.find((r) => r.check === 'replay-same-batch')?.detail).toContain('at least once');
  });

  it('reports not applicable, with the reason, rather than passing silently', async () => {
    const results = await runSinkConformance(
      options(memorySink(), { readBack: undefined, deadLetter: undefined, retry: { notApplicable: 'this sink cannot fail' } }),
    );
    const s = statuses(results);
    expect(s).toMatchObject({
      'dead-letter': 'not-applicable',
      retry: 'not-applicable',
      'replay-same-batch': 'not-applicable',
      'replay-overlapping': 'not-applicable',
    });
    expect(results.find((r) => r.check === 'retry')?.detail).toBe('this sink cannot fail');
    expect(results.find((r) => r.check === 'single-message')?.detail).toContain('not verified');
  });

  it('fails the manifest of a plugin built for another SDK', async () => {
    const results = await runSinkConformance({ ...options(memorySink({ sdk: '^2' })), checks: ['manifest'] });
    expect(results[0]).toMatchObject({ status: 'failed' });
    expect(results[0]?.detail).toContain('SDK_INCOMPATIBLE');
  });

  it('works with a real pino logger in the context', async () => {
    const logger: Logger = pino({ level: 'silent' }).child({ connector: 'c', task: 0 });
    const results = await runSinkConformance({
      ...options(memorySink()),
      context: () => ({ ...fakeContext(), logger }),
      checks: ['single-message'],
    });
    expect(results[0]?.status).toBe('passed');
  });
});

// The kit as a vitest suite, the way a connector's test file uses it.
sinkConformanceSuite({ describe, it }, options(memorySink()));
describe('sinkConformanceSuite', () => {
  it('does not register a check the options declare not applicable', () => {
    const names: string[] = [];
    const api = { describe: (_: string, fn: () => void) => fn(), it: (name: string) => void names.push(name) };
    sinkConformanceSuite(api, options(memorySink(), { deadLetter: { notApplicable: 'this sink cannot reject a message' } }));
    expect(names).not.toContain('dead-letter');
    expect(names).toContain('retry');
  });
});

// ── sources ──

function counterSource(
  opts: {
    badPosition?: boolean;
    ignoresAbort?: boolean;
    duplicateIds?: boolean;
    random?: boolean;
    checkConnection?: () => Promise<void>;
  } = {},
) {
  return defineSource({
    name: 'counter',
    version: '1.0.0',
    sdk: '^1',
    config: z.strictObject({ batch: z.int().default(5) }),
    open(config, ctx) {
      const start = typeof ctx.position === 'number' ? ctx.position : 0;
      let closed = false;
      return {
        async *read(signal: AbortSignal) {
          let n = start;
          while (opts.ignoresAbort || (!signal.aborted && !closed)) {
            await new Promise((r) => setTimeout(r, 1));
            const messages = Array.from({ length: config.batch }, (_, i) => {
              const seq = n + i + 1;
              const v = opts.random ? Math.random() : seq;
              return {
                value: new TextEncoder().encode(`m${v}`),
                msgId: opts.duplicateIds ? 'same' : `c-${seq}`,
                headers: { n: String(seq) },
              };
            });
            n += config.batch;
            yield { messages, position: opts.badPosition ? ({ at: n, when: new Date(0) } as never) : n };
          }
        },
        commit: async () => {},
        close: async () => {
          closed = true;
        },
        ...(opts.checkConnection && { checkConnection: opts.checkConnection }),
      };
    },
  });
}

describe('runSourceConformance', () => {
  it('passes a correct deterministic source, resume exact', async () => {
    const results = await runSourceConformance({ plugin: counterSource(), config: {}, resume: 'exact', timeoutMs: 1000 });
    expect(results.filter((r) => r.status !== 'passed').map((r) => `${r.check}: ${r.detail}`)).toEqual([
      'check-connection: the source has no checkConnection()',
    ]);
  });

  it('catches a position that is not JSON, duplicate msgIds, a source that ignores abort, and an inexact resume', async () => {
    expect(failed(await runSourceConformance({ plugin: counterSource({ badPosition: true }), config: {}, timeoutMs: 500 }))).toEqual(
      expect.arrayContaining(['read-batches']),
    );
    expect(failed(await runSourceConformance({ plugin: counterSource({ duplicateIds: true }), config: {}, timeoutMs: 500 }))).toEqual([
      'read-batches',
    ]);
    expect(failed(await runSourceConformance({ plugin: counterSource({ ignoresAbort: true }), config: {}, timeoutMs: 500 }))).toEqual([
      'abort',
    ]);
    expect(
      failed(await runSourceConformance({ plugin: counterSource({ random: true }), config: {}, resume: 'exact', timeoutMs: 500 })),
    ).toEqual(['resume']);
  });
});

sourceConformanceSuite({ describe, it }, { plugin: counterSource({ checkConnection: async () => {} }), config: {}, resume: 'exact' });

describe('source check-connection', () => {
  it('fails a source whose checkConnection throws', async () => {
    const broken = counterSource({
      checkConnection: async () => {
        throw new Error('unreachable');
      },
    });
    expect(failed(await runSourceConformance({ plugin: broken, config: {}, resume: 'exact', timeoutMs: 500 }))).toEqual([
      'check-connection',
    ]);
  });
});

describe('fakeContext', () => {
  it('records logs with bindings and keeps metrics in memory', () => {
    const ctx = fakeContext({ connector: 'orders', task: 2, position: { seq: 4 } });
    ctx.logger.child({ file: 'a' }).info({ n: 1 }, 'wrote %s', 'a');
    ctx.logger.warn('plain');
    expect(ctx.logs).toEqual([
      { level: 'info', msg: 'wrote %s a', fields: { connector: 'orders', task: 2, file: 'a', n: 1 } },
      { level: 'warn', msg: 'plain', fields: { connector: 'orders', task: 2 } },
    ]);
    ctx.metrics.counter('files_total', 'files').inc();
    ctx.metrics.counter('files_total', 'files').inc(2);
    ctx.metrics.histogram('write_seconds', 'latency').observe(0.5);
    expect(ctx.metrics.snapshot()).toMatchObject({
      files_total: { kind: 'counter', value: 3 },
      write_seconds: { kind: 'histogram', count: 1, sum: 0.5 },
    });
    expect(() => ctx.metrics.histogram('files_total', 'x')).toThrow(/already a counter/);
    expect(() => ctx.metrics.counter('Bad-Name', 'x')).toThrow(/snake_case/);
    expect(() => ctx.metrics.counter('c', 'x').inc(-1)).toThrow();
    expect(ctx.position).toEqual({ seq: 4 });
  });
});
