/**
 * Config schemas: zod (re-exported as `z`, so a plugin needs no zod of its own), secret fields, and
 * the views of a config that leave the process (redacted values, JSON Schema).
 *
 * A field is secret when its schema carries zod metadata `{ secret: true }` — what {@link secret}
 * adds. Introspection goes through the schema's own `.meta()` and `_zod.def`, so it also works on a
 * schema built by another copy of zod.
 */
import { z } from 'zod';
import { ErrorCode, JunctionError, type Issue } from './errors.js';

export { z };

/** What replaces a secret value in redacted output. */
export const REDACTED = '***';

/** Any zod schema; a plugin's config schema is usually `z.strictObject({...})`. */
export type ConfigSchema = z.ZodType;

/**
 * Marks a field as secret: never logged, never returned by the API (redacted to `'***'`), and
 * `writeOnly` in the JSON Schema. Keeps the schema's type and its other metadata (description).
 *
 * ```ts
 * config: z.strictObject({ user: z.string(), password: secret(z.string()).describe('the account password') })
 * ```
 */
export function secret<T extends z.ZodType>(schema: T): T {
  return schema.meta({ secret: true });
}

/**
 * Marks a field as a path on the broker's host (a directory or file the plugin reads or writes). With
 * auth on, the server refuses configs whose host paths lie outside its configured roots (`../`,
 * absolute paths elsewhere, symlinks out). In the JSON Schema: `x-host-path: true`.
 */
export function hostPath<T extends z.ZodType>(schema: T): T {
  return schema.meta({ hostPath: true });
}

/** Whether this very schema (not its children) is marked secret. */
export function isSecret(schema: unknown): boolean {
  const meta = metaOf(schema);
  return meta !== undefined && meta.secret === true;
}

function metaOf(schema: unknown): Record<string, unknown> | undefined {
  const fn = (schema as { meta?: unknown } | null)?.meta;
  if (typeof fn !== 'function') return undefined;
  const meta: unknown = fn.call(schema);
  return typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : undefined;
}

interface Def {
  type: string;
  [key: string]: unknown;
}

function defOf(schema: unknown): Def | undefined {
  const def = (schema as { _zod?: { def?: unknown } } | null)?._zod?.def;
  return typeof def === 'object' && def !== null && typeof (def as Def).type === 'string' ? (def as Def) : undefined;
}

/** Wrappers whose value has the shape of their inner schema. */
const WRAPPERS: Record<string, string> = {
  optional: 'innerType',
  nullable: 'innerType',
  default: 'innerType',
  prefault: 'innerType',
  catch: 'innerType',
  readonly: 'innerType',
  nonoptional: 'innerType',
  success: 'innerType',
};

/** The schema(s) a schema delegates to for the same value: wrapped, piped (input side), lazy, union or intersection parts. */
function delegates(schema: unknown, def: Def): unknown[] | undefined {
  const inner = WRAPPERS[def.type];
  if (inner !== undefined) return [def[inner]];
  switch (def.type) {
    case 'pipe':
      return [def.in];
    case 'lazy':
      return [(schema as { _zod: { innerType?: unknown } })._zod.innerType];
    case 'union':
      return def.options as unknown[];
    case 'intersection':
      return [def.left, def.right];
    default:
      return undefined;
  }
}

/**
 * The paths of the secret fields: dotted, `[*]` for any array element, `.*` for any record value
 * (`password`, `auth.token`, `endpoints[*].apiKey`, `headers.*`); '' when the whole config is secret.
 * A recursive (lazy) schema's secrets are listed at their first level only; `redact` covers every level.
 */
export function secretPaths(schema: ConfigSchema): string[] {
  const out = new Set<string>();
  walkPaths(schema, '', out, new Set());
  return [...out];
}

function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function walkPaths(schema: unknown, path: string, out: Set<string>, active: Set<unknown>): void {
  if (isSecret(schema)) {
    out.add(path);
    return;
  }
  const def = defOf(schema);
  // `active` stops a recursive (lazy) schema from walking forever.
  if (!def || active.has(schema)) return;
  active.add(schema);
  const next = delegates(schema, def);
  if (next) for (const s of next) walkPaths(s, path, out, active);
  else if (def.type === 'object') {
    for (const [key, c] of Object.entries(def.shape as Record<string, unknown>)) walkPaths(c, child(path, key), out, active);
    if (def.catchall !== undefined) walkPaths(def.catchall, child(path, '*'), out, active);
  } else if (def.type === 'record') walkPaths(def.valueType, child(path, '*'), out, active);
  else if (def.type === 'array') walkPaths(def.element, `${path}[*]`, out, active);
  else if (def.type === 'tuple') {
    (def.items as unknown[]).forEach((item, i) => walkPaths(item, `${path}[${i}]`, out, active));
    if (def.rest != null) walkPaths(def.rest, `${path}[*]`, out, active);
  }
  active.delete(schema);
}

/**
 * A copy of `config` with every secret value (per `schema`: nested objects, arrays, records and union
 * branches included) replaced by `'***'`; an absent secret stays absent. Works on raw input and on
 * parsed output alike and never throws: values that do not match the schema are copied as they are.
 * Where a union makes it ambiguous, a key that is secret in any branch is redacted.
 */
export function redact<T>(schema: ConfigSchema, config: T): T {
  return redactValue(schema, config, new Set()) as T;
}

/** `active`: the schemas already delegated through for this same value (a lazy or union cycle ends there). */
function redactValue(schema: unknown, value: unknown, active: Set<unknown>): unknown {
  if (value === undefined) return value;
  if (isSecret(schema)) return REDACTED;
  const def = defOf(schema);
  if (!def || active.has(schema)) return value;
  active.add(schema);
  let out: unknown = value;
  const next = delegates(schema, def);
  if (next) {
    for (const s of next) out = redactValue(s, out, active);
  } else if (def.type === 'object' && isPlainObject(value)) {
    const shape = def.shape as Record<string, unknown>;
    const o: Record<string, unknown> = { ...value };
    for (const key of Object.keys(o)) {
      const c = Object.hasOwn(shape, key) ? shape[key] : def.catchall;
      if (c !== undefined) o[key] = redactValue(c, o[key], new Set());
    }
    out = o;
  } else if (def.type === 'record' && isPlainObject(value)) {
    const o: Record<string, unknown> = { ...value };
    for (const key of Object.keys(o)) o[key] = redactValue(def.valueType, o[key], new Set());
    out = o;
  } else if (def.type === 'array' && Array.isArray(value)) {
    out = value.map((item) => redactValue(def.element, item, new Set()));
  } else if (def.type === 'tuple' && Array.isArray(value)) {
    const items = def.items as unknown[];
    out = value.map((item, i) => {
      const c = i < items.length ? items[i] : def.rest;
      return c == null ? item : redactValue(c, item, new Set());
    });
  }
  active.delete(schema);
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The config schema as JSON Schema (draft 2020-12, describing the input a user writes: fields with
 * defaults are optional). Secret fields get `writeOnly: true` and `x-secret: true`. Descriptions
 * and other metadata come along; types JSON Schema cannot express (transforms, custom checks) are
 * left unconstrained rather than failing.
 */
export function configJsonSchema(schema: ConfigSchema): Record<string, unknown> {
  return z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    override(ctx) {
      const meta = metaOf(ctx.zodSchema);
      if (meta === undefined) return;
      const json = ctx.jsonSchema as Record<string, unknown>;
      // Metadata of a schema from another zod copy is not in this copy's registry: bring it over.
      for (const [key, value] of Object.entries(meta)) {
        if (key !== 'id' && key !== 'secret' && key !== 'hostPath' && json[key] === undefined) json[key] = value;
      }
      if (meta.hostPath === true) {
        delete json.hostPath;
        json['x-host-path'] = true;
      }
      if (meta.secret === true) {
        delete json.secret;
        json.writeOnly = true;
        json['x-secret'] = true;
      }
    },
  }) as Record<string, unknown>;
}

/** `path: message` from zod issues, with dotted/bracketed paths (`auth.password`, `hosts[1]`). */
export function issuesFromZod(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }, prefix = ''): Issue[] {
  return error.issues.map((i) => ({ path: formatPath(prefix, i.path), message: i.message }));
}

function formatPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

export type ConfigValidation<T> = { success: true; config: T } | { success: false; issues: Issue[] };

/**
 * Checks a raw config (as a user wrote it, secrets resolved) against a plugin's schema: the parsed
 * config, or every problem with its field path. Never throws for bad input.
 */
export function validateConfig<S extends ConfigSchema>(schema: S, raw: unknown): ConfigValidation<z.output<S>> {
  const result = schema.safeParse(raw);
  if (result.success) return { success: true, config: result.data };
  return { success: false, issues: issuesFromZod(result.error) };
}

/**
 * Like {@link validateConfig} but throws JunctionError CONFIG_INVALID (not retryable) carrying the
 * issues; its message names the first one. Issue messages never contain the offending value.
 */
export function parseConfig<S extends ConfigSchema>(schema: S, raw: unknown, prefix = ''): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issues = issuesFromZod(result.error, prefix);
  const first = issues[0];
  throw new JunctionError(ErrorCode.CONFIG_INVALID, `config is invalid${first ? `: ${first.path || '(root)'}: ${first.message}` : ''}`, {
    issues,
    retryable: false,
  });
}
