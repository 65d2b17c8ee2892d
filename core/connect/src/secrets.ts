/**
 * Secrets by reference. A config string may contain `${env:NAME}` and `${file:/path}`; they are
 * resolved when a task starts (and for validation), never stored resolved. What leaves the process
 * (API answers, logs) is the stored config with the plugin's secret fields redacted — except a secret
 * field whose value is only a reference, which is shown as the reference (it names, not reveals).
 */
import { readFile } from 'node:fs/promises';
import { REDACTED, redact } from '@junction/sdk-connector';
import type { ConfigSchema } from '@junction/sdk-connector';
import type { Issue } from './errors.js';

const REF_RE = /\$\{(env|file):([^}]+)\}/g;
/** How long reading a `${file:…}` reference may take. */
export const FILE_REFERENCE_TIMEOUT_MS = 5000;
const ONLY_REFS_RE = /^(?:\$\{(?:env|file):[^}]+\})+$/;

/** Whether a value (deeply) contains a reference. */
export function hasReferences(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('${env:') || value.includes('${file:');
  if (Array.isArray(value)) return value.some(hasReferences);
  if (value !== null && typeof value === 'object') return Object.values(value).some(hasReferences);
  return false;
}

export interface ResolveOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** Path prefix of the issues (`config`). */
  prefix?: string;
}

export interface ResolveResult {
  value: unknown;
  /** References that could not be resolved (their text is left in place). */
  issues: Issue[];
}

/**
 * A copy of `value` with every reference replaced by the environment variable's value or the file's
 * contents (a single trailing newline of a file is dropped, as `$(cat file)` would). An unresolvable
 * reference stays as it is and is reported in `issues` with its path. Never throws.
 */
export async function resolveReferences(value: unknown, options: ResolveOptions = {}): Promise<ResolveResult> {
  const env = options.env ?? process.env;
  const issues: Issue[] = [];
  const files = new Map<string, Promise<string | Error>>();
  const readOnce = (path: string): Promise<string | Error> => {
    let p = files.get(path);
    if (!p) {
      const read = readFile(path, 'utf8').then(
        (text) => (text.endsWith('\n') ? text.slice(0, text.endsWith('\r\n') ? -2 : -1) : text),
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      );
      // A path that never answers (a FIFO nobody writes, a hung mount) must not hold a connector's
      // start (and its lock, which pause and delete wait for) forever.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<Error>((resolve) => {
        timer = setTimeout(
          () => resolve(Object.assign(new Error(`no answer within ${FILE_REFERENCE_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })),
          FILE_REFERENCE_TIMEOUT_MS,
        );
      });
      p = Promise.race([read, late]).finally(() => clearTimeout(timer));
      files.set(path, p);
    }
    return p;
  };
  const walk = async (v: unknown, path: string): Promise<unknown> => {
    if (typeof v === 'string') {
      if (!v.includes('${')) return v;
      let out = '';
      let last = 0;
      for (const m of v.matchAll(REF_RE)) {
        const [whole, kind, ref] = m as unknown as [string, 'env' | 'file', string];
        out += v.slice(last, m.index);
        last = m.index + whole.length;
        if (kind === 'env') {
          const val = env[ref];
          if (val === undefined) {
            issues.push({ path, message: `environment variable ${ref} is not set` });
            out += whole;
          } else out += val;
        } else {
          const val = await readOnce(ref);
          if (val instanceof Error) {
            issues.push({ path, message: `cannot read ${ref} (${(val as NodeJS.ErrnoException).code ?? val.message})` });
            out += whole;
          } else out += val;
        }
      }
      return out + v.slice(last);
    }
    if (Array.isArray(v)) return Promise.all(v.map((item, i) => walk(item, `${path}[${i}]`)));
    if (v !== null && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) o[k] = await walk(item, path ? `${path}.${k}` : k);
      return o;
    }
    return v;
  };
  const resolved = await walk(value, options.prefix ?? '');
  return { value: resolved, issues };
}

/**
 * The config as it may be shown: secret fields (per the plugin's schema) redacted to `***`, except
 * those whose stored value is nothing but references (`${env:TOKEN}`), shown as they are. Without a
 * schema (the plugin is not installed) every string holding a literal is shown: the caller must pass
 * a schema whenever it has one. Never throws.
 */
export function displayConfig(schema: ConfigSchema | undefined, config: Record<string, unknown>): Record<string, unknown> {
  if (!schema) return config;
  const redacted = redact(schema, config);
  return restoreReferences(config, redacted) as Record<string, unknown>;
}

function restoreReferences(original: unknown, redacted: unknown): unknown {
  if (redacted === REDACTED && typeof original === 'string' && ONLY_REFS_RE.test(original)) return original;
  if (Array.isArray(original) && Array.isArray(redacted)) return redacted.map((r, i) => restoreReferences(original[i], r));
  if (original !== null && typeof original === 'object' && redacted !== null && typeof redacted === 'object' && !Array.isArray(redacted)) {
    const o: Record<string, unknown> = {};
    for (const [k, r] of Object.entries(redacted)) o[k] = restoreReferences((original as Record<string, unknown>)[k], r);
    return o;
  }
  return redacted;
}

/**
 * The secret values of a resolved config (per the plugin's schema: every string at or under a secret
 * field, of at least 4 characters), longest first: what `scrubber` hides in error texts.
 */
export function secretStrings(schema: ConfigSchema | undefined, config: unknown): string[] {
  if (!schema) return [];
  const out = new Set<string>();
  const leaves = (v: unknown): void => {
    if (typeof v === 'string') {
      if (v.length >= 4) out.add(v);
    } else if (Array.isArray(v)) v.forEach(leaves);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(leaves);
  };
  const walk = (original: unknown, redacted: unknown): void => {
    if (redacted === REDACTED && original !== REDACTED) return leaves(original);
    if (Array.isArray(original) && Array.isArray(redacted)) original.forEach((item, i) => walk(item, redacted[i]));
    else if (original !== null && typeof original === 'object' && redacted !== null && typeof redacted === 'object') {
      for (const [k, v] of Object.entries(original)) walk(v, (redacted as Record<string, unknown>)[k]);
    }
  };
  try {
    walk(config, redact(schema, config));
  } catch {
    // a schema redact() cannot walk: nothing known to hide
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/**
 * A function that replaces every occurrence of the given secret values in a text with `***`: for error
 * messages and traces that a plugin or a validator built from config values (a URL with a password, a
 * message quoting the token it refused), before they reach status, logs or dead-letter headers.
 */
export function scrubber(secrets: readonly string[]): (text: string) => string {
  if (secrets.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const v of secrets) if (out.includes(v)) out = out.split(v).join(REDACTED);
    return out;
  };
}
