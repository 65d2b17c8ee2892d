/** Shared pieces of the conformance kits. */
import { isJunctionError } from '../errors.js';

export type CheckStatus = 'passed' | 'failed' | 'not-applicable';

/** The outcome of one conformance check. */
export interface CheckResult {
  /** The check's stable name, e.g. `replay-same-batch`. */
  readonly check: string;
  readonly status: CheckStatus;
  /** Passed: what was verified. Failed: what went wrong. Not applicable: why it could not run. */
  readonly detail: string;
  readonly durationMs: number;
}

/** Declares that a check cannot apply to this plugin, with the reason (reported, never silently passed). */
export interface NotApplicable {
  readonly notApplicable: string;
}

export class CheckFailed extends Error {
  override name = 'CheckFailed';
}
export class CheckNotApplicable extends Error {
  override name = 'CheckNotApplicable';
}

export function fail(message: string): never {
  throw new CheckFailed(message);
}

export function notApplicable(reason: string): never {
  throw new CheckNotApplicable(reason);
}

export function describeError(err: unknown): string {
  if (isJunctionError(err)) return `${err.code}${err.retryable ? ' (retryable)' : ''}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** Resolves like `p`, or fails the check when `p` has not settled within `ms`. */
export async function within<T>(p: Promise<T> | T, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.resolve(p), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The `check-connection` check of a sink or source opened with the working config: not applicable without
 * a `checkConnection()`, failed when it throws or does not settle within `ms`.
 */
export async function checkConnectionWorks(
  plugin: { checkConnection?: () => Promise<void> },
  kind: 'sink' | 'source',
  ms: number,
): Promise<string> {
  if (typeof plugin.checkConnection !== 'function') notApplicable(`the ${kind} has no checkConnection()`);
  try {
    await within(plugin.checkConnection(), ms, 'checkConnection()');
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    fail(`checkConnection() threw with the working config: ${describeError(err)}`);
  }
  return 'checkConnection() resolved';
}

export async function runCheck(check: string, body: () => Promise<string>): Promise<CheckResult> {
  const started = performance.now();
  const result = (status: CheckStatus, detail: string): CheckResult => ({
    check,
    status,
    detail,
    durationMs: Math.round(performance.now() - started),
  });
  try {
    return result('passed', await body());
  } catch (err) {
    if (err instanceof CheckNotApplicable) return result('not-applicable', err.message);
    if (err instanceof CheckFailed) return result('failed', err.message);
    return result('failed', `unexpected error: ${describeError(err)}`);
  }
}

export function randomId(): string {
  return Math.random().toString(36).slice(2, 8).padEnd(6, '0');
}

/** Whether a value survives structured clone (what crossing a worker thread does) unchanged in shape. */
export function cloneProblem(value: unknown): string | undefined {
  try {
    structuredClone(value);
    return undefined;
  } catch (err) {
    return describeError(err);
  }
}

/**
 * Throws when any check failed, with one line per failed check; returns the results otherwise.
 * For runners other than vitest: `assertConformance(await runSinkConformance(...))`.
 */
export function assertConformance(results: readonly CheckResult[]): readonly CheckResult[] {
  const failed = results.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    throw new Error(`conformance failed:\n${failed.map((r) => `  ✗ ${r.check}: ${r.detail}`).join('\n')}`);
  }
  return results;
}

/** The integers from `from` to `to`, both included. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Values at a secret path (`a.b`, `a[*].b`, `a.*`) of a raw config (the redaction and secrets-not-logged checks). */
export function valuesAt(value: unknown, path: string): unknown[] {
  if (path === '') return [value];
  const tokens = path
    .replace(/\[\*\]/g, '.*')
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.');
  let current: unknown[] = [value];
  for (const t of tokens) {
    const next: unknown[] = [];
    for (const c of current) {
      if (typeof c !== 'object' || c === null) continue;
      if (t === '*') next.push(...Object.values(c as object));
      else if (Object.hasOwn(c, t)) next.push((c as Record<string, unknown>)[t]);
    }
    current = next;
  }
  return current;
}
