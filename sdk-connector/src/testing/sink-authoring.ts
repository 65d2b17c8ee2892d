/**
 * The sink conformance kit's checks of what plugin authors most often get wrong. Each one fails a sink
 * the runtime would otherwise carry into production with a silent bug:
 *
 * - `results-count`: batches of 1, 2, 3, 7 and 64 messages, and one whose messages all share a key,
 *   are each answered with exactly one result per message, all ok (a sink that answers per batch, per
 *   key, or drops the results of a failed sub-request fails). Every message is in the destination.
 * - `replay-idempotent`: on ONE open sink (the runtime retries a batch on the same sink after a write
 *   that threw or timed out), a batch is written, written again, then overlapped by a batch cut
 *   differently; every answer is ok — a sink that answers deadLetter() or retry() to a message it
 *   already holds (a unique-key violation taken for a bad message) fails — and the destination holds
 *   each message once (exactlyOnce) or at least once.
 * - `aborted-write`: a write whose signal is aborted while it runs settles in time (resolved or
 *   rejected: the runtime ignores its answer), and the same batch written again on the same sink is
 *   answered ok and lands completely — a sink that marks messages done before they are written, or
 *   stays broken after an abort, fails.
 * - `secrets-not-logged`: with secret config values set, nothing the sink logs (through `ctx.logger`
 *   or the console), nor a result's reason, nor an error it throws, contains a secret value — through
 *   open, ok writes, the dead-letter and retry cases, and close. Not applicable when the test config
 *   holds no secret value (of 3 characters or more).
 */
import { secretPaths } from '../config.js';
import type { JsonValue, Logger, LogFn, SinkContext, SinkMessage } from '../types.js';
import type { WriteResult } from '../results.js';
import { fakeContext } from './fake-context.js';
import type { Harness, SinkConformanceOptions } from './sink-conformance.js';
import { CheckFailed, describeError, fail, notApplicable, range, valuesAt, within } from './util.js';

/** The authoring checks, in the order they run. */
export const SINK_AUTHORING_CHECKS = ['results-count', 'replay-idempotent', 'aborted-write', 'secrets-not-logged'] as const;
export type SinkAuthoringCheck = (typeof SINK_AUTHORING_CHECKS)[number];

/** The secret values (strings of 3+ characters) set in the given raw configs, with their paths. */
export function secretValues(
  options: Pick<SinkConformanceOptions, 'plugin'>,
  configs: readonly unknown[],
): { path: string; value: string }[] {
  const out: { path: string; value: string }[] = [];
  for (const path of secretPaths(options.plugin.config)) {
    for (const config of configs) {
      for (const v of valuesAt(config, path))
        if (typeof v === 'string' && v.length >= 3 && !out.some((o) => o.value === v)) out.push({ path, value: v });
    }
  }
  return out;
}

/**
 * Why `secrets-not-logged` cannot run, known before it runs (the test config is not read: suites may
 * give it as a getter that works only once their destination has started); undefined when it may run.
 */
export function secretsCheckNotApplicable(options: Pick<SinkConformanceOptions, 'plugin'>): string | undefined {
  if (secretPaths(options.plugin.config).length === 0) return 'the config schema has no secret fields';
  return undefined;
}

/** Text of anything logged: strings as they are, errors with message and stack, the rest as JSON. */
function text(value: unknown, seen = new Set<unknown>()): string {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object') return String(value);
  if (seen.has(value)) return '';
  seen.add(value);
  // Not the stack: its frames are file paths, which may hold any word.
  if (value instanceof Error)
    return `${value.name}: ${value.message}\n${text((value as { cause?: unknown }).cause, seen)}\n${text({ ...value }, seen)}`;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${k}=${text(v, seen)}`)
    .join(' ');
}

/** Something the sink said, and where. */
interface Said {
  where: string;
  text: string;
}

/** A logger that records the text of every call, and passes it on to `inner`. */
function recordingLogger(inner: Logger, sink: Said[]): Logger {
  const method = (level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'): LogFn =>
    ((...args: unknown[]) => {
      sink.push({ where: `a ctx.logger.${level}() line`, text: args.map((a) => text(a)).join(' ') });
      (inner[level] as (...a: unknown[]) => void)(...args);
    }) as LogFn;
  return {
    trace: method('trace'),
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    fatal: method('fatal'),
    child: (bindings: Record<string, JsonValue>) => {
      sink.push({ where: 'ctx.logger.child() bindings', text: text(bindings) });
      return recordingLogger(inner.child(bindings), sink);
    },
  };
}

const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug', 'trace', 'dir'] as const;

/** Runs `fn` with the console's methods recording into `sink` (and printing nothing); restores them after. */
async function capturingConsole<T>(sink: Said[], fn: () => Promise<T>): Promise<T> {
  const saved = CONSOLE_METHODS.map((m) => [m, console[m]] as const);
  for (const m of CONSOLE_METHODS) {
    (console as unknown as Record<string, unknown>)[m] = (...args: unknown[]) =>
      void sink.push({ where: `a console.${m}() line`, text: args.map((a) => text(a)).join(' ') });
  }
  try {
    return await fn();
  } finally {
    for (const [m, f] of saved) (console as unknown as Record<string, unknown>)[m] = f;
  }
}

type CheckFn = (h: Harness) => Promise<string>;

export const authoringChecks: Record<SinkAuthoringCheck, CheckFn> = {
  async 'results-count'(h) {
    const station = h.station('count');
    const sink = await h.open();
    const expected: number[] = [];
    let next = 1;
    try {
      for (const size of [1, 2, 3, 7, 64]) {
        const offsets = range(next, next + size - 1);
        next += size;
        await h.writeOk(sink, h.batch(station, 0, h.messages(station, 0, offsets)), `a batch of ${size}`);
        expected.push(...offsets);
      }
      // Five messages under one key: a sink that keys its answers (or its rows) by message key answers fewer.
      const offsets = range(next, next + 4);
      const sameKey: SinkMessage[] = h.messages(station, 0, offsets).map((m) => ({ ...m, key: 'one-key' }));
      await h.writeOk(sink, h.batch(station, 0, sameKey), 'a batch of 5 messages with one key');
      expected.push(...offsets);
    } finally {
      await h.closeQuietly(sink);
    }
    return `batches of 1, 2, 3, 7, 64 and 5 (one key) answered one ok() per message; ${await h.verify([{ station, partition: 0, offsets: expected }])}`;
  },

  async 'replay-idempotent'(h) {
    const station = h.station('idem');
    const sink = await h.open();
    try {
      const batch = h.batch(station, 0, h.messages(station, 0, range(1, 10)));
      await h.writeOk(sink, batch, 'offsets 1-10');
      await h.writeOk(sink, batch, 'offsets 1-10 again on the same sink (a replay must be answered ok, not dead-lettered or retried)');
      await h.writeOk(
        sink,
        h.batch(station, 0, h.messages(station, 0, range(5, 14))),
        'offsets 5-14 on the same sink (overlapping the replay)',
      );
    } finally {
      await h.closeQuietly(sink);
    }
    return `a replay and an overlapping batch on one open sink answered ok; ${await h.verify([{ station, partition: 0, offsets: range(1, 14) }])}`;
  },

  async 'aborted-write'(h) {
    const station = h.station('aborted');
    const batch = h.batch(station, 0, h.messages(station, 0, range(1, 20)));
    const sink = await h.open();
    let how: string;
    try {
      const ac = new AbortController();
      const pending = Promise.resolve().then(() => sink.write(batch, { signal: ac.signal }));
      // Aborted while it runs (after its synchronous start), as the runtime's write timeout does.
      await new Promise<void>((resolve) => setImmediate(resolve));
      ac.abort(new Error('the kit aborted this write'));
      try {
        await within(pending, h.timeoutMs, 'the aborted write()');
        how = 'the aborted write resolved';
      } catch (err) {
        if (err instanceof CheckFailed) throw err;
        how = `the aborted write rejected (${describeError(err)})`;
      }
      await h.writeOk(sink, batch, 'the same batch again after the aborted write, on the same sink');
    } finally {
      await h.closeQuietly(sink);
    }
    return `${how}; written again: all ok; ${await h.verify([{ station, partition: 0, offsets: range(1, 20) }])}`;
  },

  async 'secrets-not-logged'(h) {
    const o = h.options;
    const dl = o.deadLetter && !('notApplicable' in o.deadLetter) ? o.deadLetter : undefined;
    const rc = o.retry && !('notApplicable' in o.retry) ? o.retry : undefined;
    const secrets = secretValues(o, [o.config]);
    if (secrets.length === 0)
      notApplicable(
        secretsCheckNotApplicable(o) ??
          'the test config sets no secret value of 3 characters or more: give the secret fields values in the test config',
      );
    const said: Said[] = [];
    const context = (): SinkContext => {
      const base = o.context?.() ?? fakeContext();
      return { ...base, logger: recordingLogger(base.logger, said) };
    };
    const note = (what: string, value: unknown) => void said.push({ where: what, text: text(value) });
    const station = h.station('secrets');
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        const out = await within(Promise.resolve().then(fn), h.timeoutMs, what);
        if (Array.isArray(out))
          for (const r of out as WriteResult[])
            if (r && typeof r === 'object' && 'reason' in r) note(`${what}: a result's reason`, r.reason);
      } catch (err) {
        if (err instanceof CheckFailed) throw err;
        note(`${what}: the error it threw`, err);
      }
    };
    const openWith = async (raw: unknown, what: string) => {
      let sink: Awaited<ReturnType<Harness['open']>> | undefined;
      await attempt(`open() (${what})`, async () => {
        sink = await h.open(raw, context());
      });
      return sink;
    };
    await capturingConsole(said, async () => {
      const sink = await openWith(o.config, 'the test config');
      if (sink) {
        await attempt('write()', () =>
          sink!.write(h.batch(station, 0, h.messages(station, 0, range(1, 3))), { signal: new AbortController().signal }),
        );
        await attempt('close()', () => sink!.close());
      }
      if (dl) {
        const s = await openWith(dl.config ?? o.config, 'the dead-letter case');
        const poison: SinkMessage = {
          offset: 5,
          timestamp: 1_700_000_000_050,
          headers: dl.headers ?? {},
          value: typeof dl.value === 'string' ? new TextEncoder().encode(dl.value) : new Uint8Array(dl.value),
          ...(dl.key === undefined ? {} : { key: dl.key }),
        };
        if (s) {
          await attempt('write() of the poison message', () =>
            s.write(h.batch(station, 0, [h.message(station, 0, 4), poison]), { signal: new AbortController().signal }),
          );
          await attempt('close()', () => s.close());
        }
      }
      if (rc) {
        const s = await openWith(rc.config ?? o.config, 'the retry case');
        if (s) {
          const heal = rc.breakDestination ? await rc.breakDestination({ station, partition: 0 }) : undefined;
          try {
            await attempt('write() to the broken destination', () =>
              s.write(h.batch(station, 0, h.messages(station, 0, range(6, 8))), { signal: new AbortController().signal }),
            );
          } finally {
            await attempt('close()', () => s.close());
            if (typeof heal === 'function') await within(heal(), h.timeoutMs, 'the heal function from breakDestination');
          }
        }
      }
    });
    for (const { path, value } of secrets) {
      const found = said.find((s) => s.text.includes(value));
      if (found) fail(`the value of secret ${path} appears in ${found.where}; log the config through redact(), never a secret value`);
    }
    return `${secrets.length} secret value(s) in none of ${said.length} log lines, reasons and errors`;
  },
};
