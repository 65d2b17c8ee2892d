/**
 * The built-in steps, each compiled once into a function over a message. A step answers nothing to
 * pass the message on, {@link DROP} to drop it, or throws StepError to fail it. Steps that need fields
 * parse the value (once per message, see message.ts) and mark it changed only when they change it.
 */
import { createHash, createHmac } from 'node:crypto';
import jsonata from 'jsonata';
import type { TransformStep } from './config.js';
import { compileCondition } from './condition.js';
import { StepError } from './errors.js';
import type { Working } from './message.js';
import { deletePath, getPath, hasPath, parsePath, renameKey, renameTopKey, setPath, type Path } from './paths.js';

export const DROP = Symbol('drop');
const HASH_CACHE = 10_000;
export type StepResult = void | typeof DROP;
export type StepFn = (w: Working) => StepResult | Promise<StepResult>;

type Builtin = Exclude<TransformStep, { type: 'plugin' }>;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The text of a scalar (a string as is, others as JSON). */
function textOf(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Compiles a JSONata expression; throws its own error (with position) when it does not parse. */
export function compileExpression(expression: string): jsonata.Expression {
  return jsonata(expression);
}

function flattenInto(out: Record<string, unknown>, prefix: string, v: Record<string, unknown>, sep: string): void {
  for (const k of Object.keys(v)) {
    const x = v[k];
    const name = prefix === '' ? k : `${prefix}${sep}${k}`;
    if (isObject(x) && Object.keys(x).length > 0) flattenInto(out, name, x, sep);
    else out[name] = x;
  }
}

/** Flattens nested objects into one level (`{a:{b:1}}` → `{"a.b":1}`); arrays and empty objects stay values. */
export function flattenObject(v: Record<string, unknown>, sep: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  flattenInto(out, '', v, sep);
  return out;
}

function hasNested(v: Record<string, unknown>): boolean {
  for (const k of Object.keys(v)) {
    const x = v[k];
    if (isObject(x) && Object.keys(x).length > 0) return true;
  }
  return false;
}

/** Milliseconds since the epoch from a field's value, read as `from` says. */
export function toMillis(v: unknown, from: 'auto' | 'epochMillis' | 'epochSeconds' | 'iso'): number {
  let ms: number;
  if (from === 'iso' || (from === 'auto' && typeof v === 'string')) {
    if (typeof v !== 'string') throw new StepError(`expected a date text, found ${textOf(v)}`);
    ms = Date.parse(v);
  } else {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(n))
      throw new StepError(`expected a number of ${from === 'epochSeconds' ? 'seconds' : 'milliseconds'}, found ${textOf(v)}`);
    // auto: below 1e11 it is seconds (1e11 s is the year 5138; 1e11 ms is 1973).
    ms = from === 'epochSeconds' || (from === 'auto' && Math.abs(n) < 1e11) ? n * 1000 : n;
  }
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) throw new StepError(`not a valid time: ${textOf(v)}`);
  return ms;
}

export function fromMillis(ms: number, to: 'epochMillis' | 'epochSeconds' | 'iso'): number | string {
  if (to === 'iso') return new Date(ms).toISOString();
  return to === 'epochSeconds' ? Math.trunc(ms / 1000) : Math.trunc(ms);
}

/** The hex digest a mask step writes: SHA-256 of the value's text, or HMAC-SHA-256 with `key`. */
export function maskHash(v: unknown, key: string | undefined): string {
  const text = textOf(v);
  return (key === undefined ? createHash('sha256') : createHmac('sha256', key)).update(text, 'utf8').digest('hex');
}

/** Compiles a built-in step (already validated). `key` of a mask step must be resolved by now. */
export function compileBuiltin(step: Builtin): StepFn {
  switch (step.type) {
    case 'filter': {
      const keep = step.keep !== undefined;
      const p = compileCondition((step.keep ?? step.drop)!);
      return (w) => (p(w) === keep ? undefined : DROP);
    }
    case 'drop': {
      const paths = step.fields.map(parsePath);
      return (w) => {
        let root = w.json();
        let changed = false;
        for (const p of paths) {
          const next = deletePath(root, p);
          if (next !== undefined) {
            root = next;
            changed = true;
          }
        }
        if (changed) w.replace(root);
      };
    }
    case 'keep': {
      const paths = step.fields.map(parsePath);
      return (w) => {
        const root = w.json();
        if (!isObject(root)) throw new StepError('keep needs a JSON object value');
        const out: Record<string, unknown> = {};
        for (const p of paths) {
          const v = getPath(root, p);
          if (v !== undefined) setPath(out, p, v);
        }
        // Unchanged when every field was kept (same keys, same order): the bytes stay.
        if (JSON.stringify(Object.keys(out)) !== JSON.stringify(Object.keys(root)) || paths.some((p) => p.length > 1)) w.replace(out);
      };
    }
    case 'rename': {
      const pairs: [Path, Path][] = Object.entries(step.fields).map(([a, b]) => [parsePath(a), parsePath(b)]);
      return (w) => {
        let root = w.json();
        let changed = false;
        for (const [from, to] of pairs) {
          // A top-level key of an object value (the usual case): renamed in place without the general path walk.
          if (from.length === 1 && to.length === 1 && isObject(root)) {
            if (!Object.hasOwn(root, from[0]!)) continue;
            root = renameTopKey(root, from[0]!, to[0]!);
            changed = true;
            continue;
          }
          if (!hasPath(root, from)) continue;
          changed = true;
          // Within one object: rebuilt with the key renamed in its place.
          if (from.length === to.length && from.slice(0, -1).every((seg, i) => seg === to[i])) {
            root = renameKey(root, from, to[to.length - 1]!);
            continue;
          }
          const v = getPath(root, from);
          root = deletePath(root, from);
          if (!setPath(root, to, v)) throw new StepError(`cannot rename to ${to.join('.')}: a field on the way is not an object`);
        }
        if (changed) w.replace(root);
      };
    }
    case 'mask': {
      const paths = step.fields.map(parsePath);
      const { method, replacement, key } = step;
      // Masked values repeat (the same user, card or email across messages): hashes of strings are kept
      // for the next ones, at most HASH_CACHE of them (then the cache starts over).
      const hashes = new Map<string, string>();
      const hashOf = (v: unknown): string => {
        if (typeof v !== 'string') return maskHash(v, key);
        let h = hashes.get(v);
        if (h === undefined) {
          if (hashes.size >= HASH_CACHE) hashes.clear();
          h = maskHash(v, key);
          hashes.set(v, h);
        }
        return h;
      };
      return (w) => {
        const root = w.json();
        for (const p of paths) {
          const v = getPath(root, p);
          if (v === undefined) continue;
          setPath(root, p, method === 'hash' ? hashOf(v) : replacement);
          w.touch();
        }
      };
    }
    case 'setHeader': {
      const { header, value } = step;
      if (value !== undefined) {
        // Messages of a batch share their headers object (most batches have one or a few); the same input
        // object gives the same output object, so sinks that cache by headers object (the file sink's
        // header JSON) keep doing so. Weak: a batch's objects go with it.
        const made = new WeakMap<object, Readonly<Record<string, string>>>();
        return (w) => {
          if (w.headers[header] === value) return;
          let out = made.get(w.headers);
          if (out === undefined) {
            out = Object.freeze({ ...w.headers, [header]: value });
            made.set(w.headers, out);
          }
          w.setHeaders(out);
        };
      }
      const path = parsePath(step.from!);
      return (w) => {
        const v = getPath(w.json(), path);
        if (v !== undefined) w.setHeader(header, textOf(v));
      };
    }
    case 'route': {
      const path = parsePath(step.field);
      const { station, missing } = step;
      return (w) => {
        const v = getPath(w.json(), path);
        if (v === undefined || v === null) {
          if (missing === 'fail') throw new StepError(`the value has no field ${step.field} to route by`);
          return;
        }
        if (typeof v === 'object') throw new StepError(`field ${step.field} holds an object or array, not a name to route by`);
        w.station = station.replaceAll('{value}', String(v));
      };
    }
    case 'flatten': {
      const sep = step.separator;
      const path = step.field === undefined ? undefined : parsePath(step.field);
      return (w) => {
        const root = w.json();
        if (path === undefined) {
          if (isObject(root) && hasNested(root)) w.replace(flattenObject(root, sep));
          return;
        }
        const v = getPath(root, path);
        if (isObject(v) && hasNested(v)) {
          setPath(root, path, flattenObject(v, sep));
          w.touch();
        }
      };
    }
    case 'timestamp': {
      const path = parsePath(step.field);
      const { from, to } = step;
      return (w) => {
        const root = w.json();
        const v = getPath(root, path);
        if (v === undefined) return;
        const next = fromMillis(toMillis(v, from), to);
        if (next !== v) {
          setPath(root, path, next);
          w.touch();
        }
      };
    }
    case 'map': {
      const expr = compileExpression(step.expression);
      return async (w) => {
        let out: unknown;
        try {
          out = await expr.evaluate(w.json(), { headers: w.headers, key: w.key, timestamp: w.timestamp });
        } catch (err) {
          if (err instanceof StepError) throw err;
          const e = err as { message?: string; code?: string };
          throw new StepError(`the expression failed${e.code ? ` (${e.code})` : ''}: ${e.message ?? String(err)}`);
        }
        if (out === undefined) return DROP;
        w.replace(out);
      };
    }
  }
}
