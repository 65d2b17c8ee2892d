/**
 * Pipelines as code, the connectors' half: what applying a list of declarations would change
 * (`planConnectors`), and applying it (`applyConnectors`) through the runtime's own create / put /
 * delete — the same paths the REST API takes. A plan never changes anything.
 *
 * Field diffs are shown as the API shows configs: a secret field of the plugin's schema is `***` on
 * both sides (it says that it changed, never what it holds), a reference (`${env:NAME}`) as written.
 * Declarations are compared as stored: references as written, not resolved.
 *
 * `prune`: connectors the list does not name are deleted (Terraform's default; here explicit and off by
 * default, since connectors created over the API are usually not in the file).
 */
import { REDACTED } from '@junction/sdk-connector';
import type { ConfigSchema } from '@junction/sdk-connector';
import type { ConnectorDeclaration, ConnectorOrigin, TargetState } from './declaration.js';
import { ConnectorOrigin as Origin } from './declaration.js';
import { configInvalid, isJunctionError, messageOf } from './errors.js';
import type { Issue } from './errors.js';
import { redactStrings, sameDeclaration } from './runtime-helpers.js';
import { displayConfig } from './secrets.js';

/** One field that differs: `from` absent = not set before, `to` absent = not set after. */
export interface FieldChange {
  path: string;
  from?: unknown;
  to?: unknown;
}

export const PlanAction = { create: 'create', update: 'update', delete: 'delete', unchanged: 'unchanged' } as const;
export type PlanAction = (typeof PlanAction)[keyof typeof PlanAction];

export interface ConnectorPlanEntry {
  name: string;
  action: PlanAction;
  plugin: string;
  station: string;
  /** update: the fields that differ; create: every field set (defaults applied), secrets masked. */
  changes?: FieldChange[] | undefined;
}

/** What the planner needs of the runtime (ConnectRuntime has it). */
export interface PlannableRuntime {
  validate(raw: unknown, prefix?: string): Promise<ConnectorDeclaration>;
  names(): string[];
  /** The declaration as it runs (secrets open: never to be answered as is) and the plugin's schema. */
  current(
    name: string,
  ): { declaration: ConnectorDeclaration; schema: ConfigSchema | undefined; origin: ConnectorOrigin; target: TargetState } | undefined;
  /** The plugin's zod config schema (for masking), undefined when it cannot be loaded. */
  pluginSchema(plugin: string): Promise<ConfigSchema | undefined>;
  create(raw: unknown, origin?: ConnectorOrigin): Promise<unknown>;
  put(name: string, raw: unknown, origin?: ConnectorOrigin): Promise<unknown>;
  delete(name: string): Promise<void>;
}

/**
 * Validates every declaration (all issues at once, paths `connectors[i].…`) and answers what applying
 * them would do, in list order, then the deletions (with `prune`).
 * @throws CONFIG_INVALID (issues with paths), PLUGIN_NOT_FOUND-coded issues inside it.
 */
export async function planConnectors(
  runtime: PlannableRuntime,
  raw: readonly unknown[],
  opts: { prune?: boolean | undefined } = {},
): Promise<{ entries: ConnectorPlanEntry[]; declarations: ConnectorDeclaration[] }> {
  const decls: ConnectorDeclaration[] = [];
  const issues: Issue[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < raw.length; i++) {
    try {
      const d = await runtime.validate(raw[i], `connectors[${i}]`);
      if (seen.has(d.name)) issues.push({ path: `connectors[${i}].name`, message: `duplicate connector "${d.name}"` });
      seen.add(d.name);
      decls.push(d);
    } catch (err) {
      if (isJunctionError(err) && err.issues && err.issues.length > 0) issues.push(...err.issues);
      else issues.push({ path: `connectors[${i}]`, message: messageOf(err) });
    }
  }
  if (issues.length > 0) throw configInvalid('connectors', issues);
  const entries: ConnectorPlanEntry[] = [];
  for (const d of decls) {
    const now = runtime.current(d.name);
    const base = { name: d.name, plugin: d.plugin, station: d.station };
    const schema = await runtime.pluginSchema(d.plugin);
    if (!now) {
      entries.push({ ...base, action: PlanAction.create, changes: diffDeclarations(undefined, d, undefined, schema) });
    } else if (!sameDeclaration(now.declaration, d)) {
      entries.push({ ...base, action: PlanAction.update, changes: diffDeclarations(now.declaration, d, now.schema, schema) });
    } else {
      entries.push({ ...base, action: PlanAction.unchanged });
    }
  }
  if (opts.prune) {
    for (const name of runtime.names()) {
      if (seen.has(name)) continue;
      const now = runtime.current(name);
      if (now) entries.push({ name, action: PlanAction.delete, plugin: now.declaration.plugin, station: now.declaration.station });
    }
  }
  return { entries, declarations: decls };
}

/**
 * Applies a plan made by `planConnectors`: creates (origin `api`: a server's own junction.yaml leaves
 * them alone), updates (a connector keeps its origin; its tasks restart with the new declaration) and,
 * with `prune`, deletes. Answers the entries with an `error` on those that failed (the others are still
 * applied).
 */
export async function applyConnectors(
  runtime: PlannableRuntime,
  plan: { entries: ConnectorPlanEntry[]; declarations: ConnectorDeclaration[] },
): Promise<(ConnectorPlanEntry & { error?: { code: string; message: string } })[]> {
  const byName = new Map(plan.declarations.map((d) => [d.name, d]));
  const out: (ConnectorPlanEntry & { error?: { code: string; message: string } })[] = [];
  for (const e of plan.entries) {
    try {
      if (e.action === PlanAction.create) await runtime.create(byName.get(e.name)!, Origin.api);
      else if (e.action === PlanAction.update) await runtime.put(e.name, byName.get(e.name)!, Origin.api);
      else if (e.action === PlanAction.delete) await runtime.delete(e.name);
      out.push(e);
    } catch (err) {
      out.push({ ...e, error: { code: isJunctionError(err) ? err.code : 'INTERNAL', message: messageOf(err) } });
    }
  }
  return out;
}

/** The leaves that differ between two JSON values, by path under `prefix` (unmasked: for values without secrets). */
export function fieldChanges(from: unknown, to: unknown, prefix = ''): FieldChange[] {
  const a = leaves(from === undefined ? undefined : JSON.parse(JSON.stringify(from)), prefix);
  const b = leaves(to === undefined ? undefined : JSON.parse(JSON.stringify(to)), prefix);
  const out: FieldChange[] = [];
  for (const p of new Set([...a.keys(), ...b.keys()])) {
    if (a.has(p) && b.has(p) && JSON.stringify(a.get(p)) === JSON.stringify(b.get(p))) continue;
    out.push({ path: p, ...(a.has(p) && { from: a.get(p) }), ...(b.has(p) && { to: b.get(p) }) });
  }
  return out;
}

/** The leaves of a JSON value by path (`a.b[1].c`); empty objects and arrays are leaves of their own. */
export function leaves(value: unknown, path = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (value === undefined) return out;
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(path, []);
    value.forEach((v, i) => leaves(v, `${path}[${i}]`, out));
  } else if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined);
    if (keys.length === 0) out.set(path, {});
    for (const k of keys) leaves((value as Record<string, unknown>)[k], path ? `${path}.${k}` : k, out);
  } else out.set(path, value);
  return out;
}

/** The declaration as it may be shown: the plugin's secret fields `***` (every literal string when the schema is unknown). */
function shown(d: ConnectorDeclaration, schema: ConfigSchema | undefined): Record<string, unknown> {
  const config = schema ? displayConfig(schema, d.config) : (redactStrings(d.config) as Record<string, unknown>);
  return JSON.parse(JSON.stringify({ ...d, config })) as Record<string, unknown>;
}

/** The value to show at `path` of a shown declaration: `***` when the path lies under a redacted field. */
function shownAt(view: Map<string, unknown>, path: string): unknown {
  if (view.has(path)) return view.get(path);
  for (let cut = path.length; cut > 0; cut--) {
    const ch = path[cut];
    if (ch !== '.' && ch !== '[') continue;
    if (view.get(path.slice(0, cut)) === REDACTED) return REDACTED;
  }
  return REDACTED;
}

/**
 * The fields that differ between two declarations (`from` undefined: a creation), compared on the
 * declarations themselves and shown masked: the old one with the running plugin's schema (`schema`), the
 * new one with its plugin's (`toSchema`); without a schema every literal string is masked.
 */
export function diffDeclarations(
  from: ConnectorDeclaration | undefined,
  to: ConnectorDeclaration,
  schema: ConfigSchema | undefined,
  toSchema: ConfigSchema | undefined,
): FieldChange[] {
  const va = from === undefined ? new Map<string, unknown>() : leaves(shown(from, schema));
  const vb = leaves(shown(to, toSchema));
  return fieldChanges(from, to).map((c) => ({
    path: c.path,
    ...('from' in c && { from: shownAt(va, c.path) }),
    ...('to' in c && { to: shownAt(vb, c.path) }),
  }));
}
