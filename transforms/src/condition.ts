/** Conditions of a filter step, compiled once into a function over a message. */
import type { Comparison, Condition } from './config.js';
import { getPath, parsePath } from './paths.js';
import type { Working } from './message.js';

export type Predicate = (w: Working) => boolean;

function compare(v: unknown, op: number | string, fromText: boolean): number | undefined {
  if (typeof op === 'number') {
    const n = typeof v === 'number' ? v : fromText && typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    return Number.isNaN(n) ? undefined : n - op;
  }
  return typeof v === 'string' ? (v < op ? -1 : v > op ? 1 : 0) : undefined;
}

function comparison(c: Comparison): Predicate {
  // Headers and keys are text: a number in the condition compares with the text read as a number.
  let subject: (w: Working) => unknown;
  let fromText = false;
  if (c.field !== undefined) {
    const path = parsePath(c.field);
    subject = (w) => getPath(w.json(), path);
  } else if (c.header !== undefined) {
    const h = c.header;
    fromText = true;
    subject = (w) => (Object.hasOwn(w.headers, h) ? w.headers[h] : undefined);
  } else {
    fromText = true;
    subject = (w) => w.key;
  }
  const eqText = (v: unknown, x: unknown): boolean =>
    v === x || (fromText && typeof x !== 'string' && x !== null && typeof v === 'string' && v === String(x));
  if (c.exists !== undefined) {
    const want = c.exists;
    return (w) => (subject(w) !== undefined) === want;
  }
  if (c.eq !== undefined) {
    const x = c.eq;
    return (w) => eqText(subject(w), x);
  }
  if (c.ne !== undefined) {
    const x = c.ne;
    return (w) => !eqText(subject(w), x);
  }
  if (c.in !== undefined) {
    const xs = c.in;
    return (w) => {
      const v = subject(w);
      return xs.some((x) => eqText(v, x));
    };
  }
  if (c.matches !== undefined) {
    const re = new RegExp(c.matches);
    return (w) => {
      const v = subject(w);
      return (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && re.test(String(v));
    };
  }
  const [op, test] =
    c.gt !== undefined
      ? [c.gt, (d: number) => d > 0]
      : c.gte !== undefined
        ? [c.gte, (d: number) => d >= 0]
        : c.lt !== undefined
          ? [c.lt, (d: number) => d < 0]
          : [c.lte!, (d: number) => d <= 0];
  return (w) => {
    const d = compare(subject(w), op, fromText);
    return d !== undefined && test(d);
  };
}

/** Compiles a (validated) condition. */
export function compileCondition(c: Condition): Predicate {
  if ('all' in c) {
    const ps = c.all.map(compileCondition);
    return (w) => ps.every((p) => p(w));
  }
  if ('any' in c) {
    const ps = c.any.map(compileCondition);
    return (w) => ps.some((p) => p(w));
  }
  if ('not' in c) {
    const p = compileCondition(c.not);
    return (w) => !p(w);
  }
  return comparison(c);
}
