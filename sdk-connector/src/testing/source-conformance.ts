/**
 * The source conformance kit: what every source must do whatever its origin. Like the sink kit it
 * depends on no test runner: `runSourceConformance(options)` resolves with one result per check.
 */
import { isDeepStrictEqual } from 'node:util';
import { checkPlugin, type SourcePlugin } from '../plugin.js';
import { validateConfig } from '../config.js';
import type { JsonValue, Source, SourceBatch, SourceContext, SourceMessage } from '../types.js';
import { fakeContext } from './fake-context.js';
import {
  type CheckResult,
  CheckFailed,
  checkConnectionWorks,
  cloneProblem,
  describeError,
  fail,
  notApplicable,
  runCheck,
  within,
} from './util.js';

export const SOURCE_CHECKS = [
  'manifest',
  'open-close',
  'close-twice',
  'check-connection',
  'read-batches',
  'abort',
  'commit',
  'resume',
] as const;
export type SourceCheck = (typeof SOURCE_CHECKS)[number];

export interface SourceConformanceOptions {
  plugin: SourcePlugin;
  /** The raw config (as a user writes it). The origin must yield at least `batches + 1` batches under it. */
  config: unknown;
  /** Batches to read per check. Default 3 (at least 2). */
  batches?: number;
  /**
   * `exact`: after resuming from a batch's position, the source yields exactly the messages that
   * followed that batch before (same bytes, keys, headers and msgIds) — a deterministic or replayable
   * origin. `at-least-once` (default): only that it resumes and yields again.
   */
  resume?: 'exact' | 'at-least-once';
  /** Longest any single plugin call (open, next batch, commit, close) may take. Default 10 000 ms. */
  timeoutMs?: number;
  /** A context per opened source, given the position to resume from. Default: {@link fakeContext}. */
  context?: (position: JsonValue | undefined) => SourceContext;
  checks?: readonly SourceCheck[];
}

class Harness {
  readonly timeoutMs: number;
  readonly batches: number;
  constructor(readonly options: SourceConformanceOptions) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.batches = Math.max(2, options.batches ?? 3);
  }

  async open(position?: JsonValue): Promise<Source> {
    const parsed = validateConfig(this.options.plugin.config, this.options.config);
    if (!parsed.success) fail(`config does not parse: ${parsed.issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    const ctx = this.options.context?.(position) ?? fakeContext(position === undefined ? {} : { position });
    let source: Source;
    try {
      source = await within(this.options.plugin.open(parsed.config, ctx), this.timeoutMs, 'open()');
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`open() threw ${describeError(err)}`);
    }
    if (
      typeof source !== 'object' ||
      source === null ||
      typeof source.read !== 'function' ||
      typeof source.commit !== 'function' ||
      typeof source.close !== 'function'
    ) {
      fail('open() must resolve to an object with read(), commit() and close()');
    }
    return source;
  }

  async close(source: Source, what = 'close()'): Promise<void> {
    try {
      await within(source.close(), this.timeoutMs, what);
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`${what} threw ${describeError(err)}`);
    }
  }

  async closeQuietly(source: Source | undefined): Promise<void> {
    if (!source) return;
    try {
      await within(source.close(), this.timeoutMs, 'close()');
    } catch {
      // The check's own verdict stands.
    }
  }

  /** Reads up to `n` batches (validating each), then aborts the read and ends the iteration. */
  async read(source: Source, n: number): Promise<SourceBatch[]> {
    const ac = new AbortController();
    const iterator = source.read(ac.signal)[Symbol.asyncIterator]();
    const out: SourceBatch[] = [];
    try {
      while (out.length < n) {
        const step = await within(iterator.next(), this.timeoutMs, `batch ${out.length + 1} from read()`);
        if (step.done) break;
        validateBatch(step.value, out.length);
        out.push(step.value);
      }
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`read() threw ${describeError(err)} after ${out.length} batch(es)`);
    } finally {
      ac.abort();
      await within(
        Promise.resolve(iterator.return?.()).catch(() => undefined),
        this.timeoutMs,
        'ending the read() iteration',
      ).catch(() => undefined);
    }
    if (out.length === 0) fail('read() ended without yielding a batch');
    return out;
  }
}

function validateBatch(batch: unknown, index: number): asserts batch is SourceBatch {
  const where = `batch ${index + 1}`;
  if (typeof batch !== 'object' || batch === null) fail(`${where} is not an object`);
  const b = batch as { messages?: unknown; position?: unknown };
  if (!Array.isArray(b.messages)) fail(`${where}: messages is not an array`);
  b.messages.forEach((m: unknown, i: number) => validateMessage(m, `${where} message ${i}`));
  if (b.position === undefined) fail(`${where}: position is missing`);
  let json: string | undefined;
  try {
    json = JSON.stringify(b.position);
  } catch (err) {
    fail(`${where}: position is not JSON-serializable (${describeError(err)})`);
  }
  if (json === undefined || !isDeepStrictEqual(JSON.parse(json), b.position))
    fail(`${where}: position does not survive a JSON round trip: ${String(json)}`);
  const problem = cloneProblem(batch);
  if (problem) fail(`${where} cannot cross a worker thread (structured clone failed: ${problem})`);
}

function validateMessage(m: unknown, where: string): asserts m is SourceMessage {
  if (typeof m !== 'object' || m === null) fail(`${where} is not an object`);
  const msg = m as Record<string, unknown>;
  if (!(msg.value instanceof Uint8Array)) fail(`${where}: value must be a Uint8Array`);
  if (msg.key !== undefined && typeof msg.key !== 'string') fail(`${where}: key must be a string`);
  if (msg.msgId !== undefined && (typeof msg.msgId !== 'string' || msg.msgId === '')) fail(`${where}: msgId must be a non-empty string`);
  if (msg.headers !== undefined) {
    if (typeof msg.headers !== 'object' || msg.headers === null || Array.isArray(msg.headers)) fail(`${where}: headers must be an object`);
    for (const [k, v] of Object.entries(msg.headers)) if (typeof v !== 'string') fail(`${where}: header ${k} is not a string`);
  }
}

function sameMessage(a: SourceMessage, b: SourceMessage): boolean {
  return (
    Buffer.from(a.value).equals(Buffer.from(b.value)) &&
    a.key === b.key &&
    a.msgId === b.msgId &&
    isDeepStrictEqual(a.headers ?? {}, b.headers ?? {})
  );
}

type CheckFn = (h: Harness) => Promise<string>;

const checks: Record<SourceCheck, CheckFn> = {
  async manifest(h) {
    const { plugin } = h.options;
    try {
      checkPlugin(plugin);
    } catch (err) {
      fail(describeError(err));
    }
    if (plugin.kind !== 'source') fail(`kind is ${JSON.stringify(plugin.kind)}, expected "source"`);
    const parsed = validateConfig(plugin.config, h.options.config);
    if (!parsed.success)
      fail(`the test config does not parse: ${parsed.issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    return `${plugin.manifest.name} ${plugin.manifest.version} (sdk ${plugin.manifest.sdk})`;
  },

  async 'open-close'(h) {
    await h.close(await h.open());
    return 'opened and closed';
  },

  async 'close-twice'(h) {
    const source = await h.open();
    await h.read(source, 1);
    await h.close(source, 'first close()');
    await h.close(source, 'second close()');
    return 'a second close() resolved';
  },

  async 'check-connection'(h) {
    const source = await h.open();
    try {
      return await checkConnectionWorks(source, 'source', h.timeoutMs);
    } finally {
      await h.closeQuietly(source);
    }
  },

  async 'read-batches'(h) {
    const source = await h.open();
    let batches: SourceBatch[];
    try {
      batches = await h.read(source, h.batches);
    } finally {
      await h.closeQuietly(source);
    }
    const ids = new Set<string>();
    let withId = 0;
    let count = 0;
    for (const b of batches) {
      for (const m of b.messages) {
        count += 1;
        if (m.msgId === undefined) continue;
        withId += 1;
        if (ids.has(m.msgId)) fail(`msgId ${m.msgId} was emitted twice in one run: the station would drop the second as a duplicate`);
        ids.add(m.msgId);
      }
    }
    return `${batches.length} well-formed batch(es), ${count} message(s), ${withId} with a unique msgId; positions are JSON`;
  },

  async abort(h) {
    const source = await h.open();
    const ac = new AbortController();
    try {
      const iterator = source.read(ac.signal)[Symbol.asyncIterator]();
      const first = await within(iterator.next(), h.timeoutMs, 'the first batch');
      if (first.done) notApplicable('read() ended before the first batch');
      ac.abort();
      try {
        // Either the iteration ends or the pending next() rejects; it must not hang.
        for (let i = 0; i < 2; i++) {
          const step = await within(iterator.next(), h.timeoutMs, 'next() after the signal was aborted');
          if (step.done) return 'the iteration ended after the abort';
        }
      } catch (err) {
        if (err instanceof CheckFailed) throw err;
        return `next() rejected after the abort (${describeError(err)})`;
      }
      fail('read() kept yielding batches after its signal was aborted');
    } finally {
      ac.abort();
      await h.closeQuietly(source);
    }
  },

  async commit(h) {
    const source = await h.open();
    try {
      const batches = await h.read(source, 2);
      try {
        await within(source.commit(batches.map((b) => b.position)), h.timeoutMs, 'commit()');
      } catch (err) {
        if (err instanceof CheckFailed) throw err;
        fail(`commit() of positions it yielded threw ${describeError(err)}`);
      }
      return `commit() of ${batches.length} position(s) resolved`;
    } finally {
      await h.closeQuietly(source);
    }
  },

  async resume(h) {
    const first = await h.open();
    let before: SourceBatch[];
    try {
      before = await h.read(first, h.batches);
    } finally {
      await h.closeQuietly(first);
    }
    if (before.length < 2) notApplicable('the origin yielded a single batch: nothing to resume to');
    const resumeFrom = before[0] as SourceBatch;
    const expected = before.slice(1).flatMap((b) => b.messages);
    const again = await h.open(resumeFrom.position);
    let after: SourceBatch[];
    try {
      after = await h.read(again, h.batches);
    } finally {
      await h.closeQuietly(again);
    }
    const got = after.flatMap((b) => b.messages);
    if (h.options.resume !== 'exact') {
      return `resumed from ${JSON.stringify(resumeFrom.position)} and yielded ${got.length} message(s) (exactness not checked: resume is not 'exact')`;
    }
    const n = Math.min(expected.length, got.length);
    if (n === 0) fail('no messages after resuming to compare');
    for (let i = 0; i < n; i++) {
      if (!sameMessage(expected[i] as SourceMessage, got[i] as SourceMessage)) {
        fail(
          `after resuming from ${JSON.stringify(resumeFrom.position)}, message ${i} differs from the one first read after that position`,
        );
      }
    }
    return `resumed from ${JSON.stringify(resumeFrom.position)}: the next ${n} message(s) equal those first read after it`;
  },
};

export async function runSourceCheck(options: SourceConformanceOptions, check: SourceCheck): Promise<CheckResult> {
  return runCheck(check, () => checks[check](new Harness(options)));
}

/**
 * Runs the source conformance checks and resolves with one result per check. Never rejects for a
 * misbehaving source. The checks:
 * - `manifest`: a valid source manifest whose `sdk` range this SDK satisfies; the config parses.
 * - `open-close`, `close-twice`.
 * - `check-connection`: resolves (not applicable when the source has none).
 * - `read-batches`: well-formed batches (Uint8Array values, string keys / headers / msgIds), positions
 *   that survive JSON and structured clone, msgIds unique within a run.
 * - `abort`: aborting read()'s signal ends the iteration (or rejects its next()) promptly.
 * - `commit`: commit() of yielded positions resolves.
 * - `resume`: reopened with the first batch's position, the source yields again — and with
 *   `resume: 'exact'`, exactly the messages that followed that batch.
 */
export async function runSourceConformance(options: SourceConformanceOptions): Promise<CheckResult[]> {
  const selected = SOURCE_CHECKS.filter((c) => !options.checks || options.checks.includes(c));
  const out: CheckResult[] = [];
  for (const check of selected) out.push(await runSourceCheck(options, check));
  return out;
}
