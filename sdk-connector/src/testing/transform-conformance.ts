/**
 * The transform conformance kit: what every transform plugin must do, checked without a runtime or a
 * test runner. `runTransformConformance({ plugin, config, messages })` resolves with one result per check:
 *
 * - `manifest`: the plugin passes the SDK's `checkPlugin` and is a transform;
 * - `answers`: each message gets a message (Uint8Array value, string headers) or null, within the timeout;
 * - `deterministic`: the same messages again (from a second open) give the same answers byte for byte —
 *   a replay after a crash sends the same messages, and exactly-once sinks rely on the same result;
 * - `input-untouched`: the plugin does not change the message it is given (value bytes, headers): the
 *   runtime keeps the original for dead letters and for untouched messages;
 * - `clone`: answers survive structured clone (they cross worker threads);
 * - `close-twice`: close() may be called twice (or is absent) and does not throw.
 */
import { isDeepStrictEqual } from 'node:util';
import { checkPlugin } from '../plugin.js';
import { validateConfig } from '../config.js';
import type { TransformContext, TransformMessage, TransformOutput, TransformPlugin, Transformer } from '../transform.js';
import { fakeContext } from './fake-context.js';
import { type CheckResult, CheckFailed, cloneProblem, describeError, fail, runCheck, within } from './util.js';

export const TRANSFORM_CHECKS = ['manifest', 'answers', 'deterministic', 'input-untouched', 'clone', 'close-twice'] as const;
export type TransformCheck = (typeof TRANSFORM_CHECKS)[number];

export interface TransformConformanceOptions {
  plugin: TransformPlugin;
  /** The step's raw config (as a user writes it under `transforms[i].config`). */
  config: unknown;
  /** Messages to run through it; include the kinds it changes, keeps and drops. At least one. */
  messages: readonly TransformMessage[];
  /** Messages the plugin is expected to fail on (they throw); not run by the other checks. */
  failing?: readonly TransformMessage[];
  /** Longest one call may take. Default 5 000 ms. */
  timeoutMs?: number;
  context?: () => TransformContext;
  checks?: readonly TransformCheck[];
}

function snapshot(m: TransformMessage): { value: number[]; key: string | undefined; headers: Record<string, string>; timestamp: number } {
  return { value: [...m.value], key: m.key, headers: { ...m.headers }, timestamp: m.timestamp };
}

function shapeProblem(out: unknown): string | undefined {
  if (out === null) return undefined;
  if (typeof out !== 'object' || out === undefined) return `answered ${String(out)}: a message or null`;
  const m = out as Record<string, unknown>;
  if (!(m.value instanceof Uint8Array)) return 'answered a message whose value is not a Uint8Array';
  if (typeof m.headers !== 'object' || m.headers === null) return 'answered a message without headers';
  for (const [k, v] of Object.entries(m.headers)) if (typeof v !== 'string') return `answered header ${k} that is not a string`;
  if (m.key !== undefined && typeof m.key !== 'string') return 'answered a key that is not a string';
  return undefined;
}

class Harness {
  readonly timeoutMs: number;
  constructor(readonly o: TransformConformanceOptions) {
    this.timeoutMs = o.timeoutMs ?? 5_000;
    if (o.messages.length === 0) throw new Error('runTransformConformance needs at least one message');
  }

  async open(): Promise<Transformer> {
    const parsed = validateConfig(this.o.plugin.config, this.o.config);
    if (!parsed.success) fail(`config does not parse: ${parsed.issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    try {
      const t = await within(this.o.plugin.open(parsed.config, this.o.context?.() ?? fakeContext()), this.timeoutMs, 'open()');
      if (typeof t !== 'object' || t === null || typeof t.transform !== 'function')
        fail('open() must resolve to an object with transform()');
      return t;
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`open() threw ${describeError(err)}`);
    }
  }

  async runAll(t: Transformer): Promise<TransformOutput[]> {
    const out: TransformOutput[] = [];
    for (let i = 0; i < this.o.messages.length; i++) {
      let r: TransformOutput;
      try {
        r = await within(Promise.resolve(t.transform(this.o.messages[i]!)), this.timeoutMs, `transform() of message ${i}`);
      } catch (err) {
        if (err instanceof CheckFailed) throw err;
        fail(`transform() threw on message ${i}: ${describeError(err)}`);
      }
      const problem = shapeProblem(r);
      if (problem) fail(`message ${i}: ${problem}`);
      out.push(r);
    }
    return out;
  }

  async close(t: Transformer): Promise<void> {
    await within(Promise.resolve(t.close?.()), this.timeoutMs, 'close()');
  }
}

const plain = (o: TransformOutput): unknown =>
  o === null ? null : { value: [...o.value], key: o.key, headers: { ...o.headers }, timestamp: o.timestamp };

async function check(name: TransformCheck, h: Harness): Promise<CheckResult> {
  return runCheck(name, async () => {
    switch (name) {
      case 'manifest': {
        const p = checkPlugin(h.o.plugin);
        if (p.kind !== 'transform') fail(`the plugin is a ${p.kind}, not a transform`);
        return `transform plugin ${p.manifest.name} ${p.manifest.version}`;
      }
      case 'answers': {
        const t = await h.open();
        const out = await h.runAll(t);
        for (let i = 0; i < (h.o.failing ?? []).length; i++) {
          let threw = false;
          try {
            await within(Promise.resolve(t.transform(h.o.failing![i]!)), h.timeoutMs, `transform() of failing message ${i}`);
          } catch (err) {
            if (err instanceof CheckFailed) throw err;
            threw = true;
          }
          if (!threw) fail(`failing message ${i} did not throw`);
        }
        await h.close(t);
        return `${out.filter((o) => o !== null).length} kept, ${out.filter((o) => o === null).length} dropped${h.o.failing?.length ? `, ${h.o.failing.length} failed as expected` : ''}`;
      }
      case 'deterministic': {
        const a = await h.open();
        const first = (await h.runAll(a)).map(plain);
        await h.close(a);
        const b = await h.open();
        const second = (await h.runAll(b)).map(plain);
        await h.close(b);
        const i = first.findIndex((x, k) => !isDeepStrictEqual(x, second[k]));
        if (i >= 0) fail(`message ${i} was answered differently the second time`);
        return `${first.length} messages answered the same twice`;
      }
      case 'input-untouched': {
        const before = h.o.messages.map(snapshot);
        const t = await h.open();
        await h.runAll(t);
        await h.close(t);
        const i = h.o.messages.findIndex((m, k) => !isDeepStrictEqual(snapshot(m), before[k]));
        if (i >= 0) fail(`message ${i} was changed in place (return a new message instead)`);
        return 'inputs unchanged';
      }
      case 'clone': {
        const t = await h.open();
        const out = await h.runAll(t);
        await h.close(t);
        for (let i = 0; i < out.length; i++) {
          const problem = cloneProblem(out[i]);
          if (problem) fail(`the answer to message ${i} does not survive structured clone: ${problem}`);
        }
        return 'answers are plain data';
      }
      case 'close-twice': {
        const t = await h.open();
        await h.runAll(t);
        try {
          await h.close(t);
          await h.close(t);
        } catch (err) {
          if (err instanceof CheckFailed) throw err;
          fail(`close() threw ${describeError(err)}`);
        }
        return t.close ? 'close() twice' : 'no close()';
      }
    }
  });
}

/** Runs the transform checks (all, or `options.checks`), one result each. Never throws for a failing plugin. */
export async function runTransformConformance(options: TransformConformanceOptions): Promise<CheckResult[]> {
  const h = new Harness(options);
  const out: CheckResult[] = [];
  for (const name of options.checks ?? TRANSFORM_CHECKS) out.push(await check(name, h));
  return out;
}
