/**
 * With auth on, connector configs may only name host paths (fields a plugin marks with the SDK's
 * `hostPath`, `x-host-path` in its JSON Schema: the file sink's `dir`) under the configured roots
 * (`auth.hostPathRoots`, default the data dir): `../` out of them, absolute paths elsewhere and
 * symlinks that lead out are refused with PATH_NOT_ALLOWED and the field path. A user who may manage
 * connectors therefore cannot make the broker write where its OS user may write.
 *
 * Checked when a connector is created or its config replaced (API), and for the connectors of
 * junction.yaml at start and on reload. What is checked is the path as it is now: a symlink planted
 * inside a root afterwards by someone with shell access is outside this model (they have the host).
 */
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry as PluginRegistry } from '@junction/registry';
import { JunctionError } from './errors.js';
import type { Issue } from './errors.js';

export const PATH_NOT_ALLOWED = 'PATH_NOT_ALLOWED';

/** The values of the host-path fields of `config` per the plugin's JSON Schema, with their paths (`dir`). */
export function hostPathValues(schema: unknown, config: unknown, path = ''): { path: string; value: string }[] {
  const out: { path: string; value: string }[] = [];
  const walk = (s: unknown, v: unknown, p: string, depth: number): void => {
    if (depth > 32 || s === null || typeof s !== 'object' || v === undefined) return;
    const js = s as Record<string, unknown>;
    if (js['x-host-path'] === true) {
      if (typeof v === 'string') out.push({ path: p, value: v });
      return;
    }
    for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
      if (Array.isArray(js[key])) for (const sub of js[key] as unknown[]) walk(sub, v, p, depth + 1);
    }
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && js['properties'] && typeof js['properties'] === 'object') {
      for (const [k, sub] of Object.entries(js['properties'] as Record<string, unknown>))
        walk(sub, (v as Record<string, unknown>)[k], p === '' ? k : `${p}.${k}`, depth + 1);
    }
    if (Array.isArray(v) && js['items'] && typeof js['items'] === 'object')
      v.forEach((item, i) => walk(js['items'], item, `${p}[${i}]`, depth + 1));
  };
  walk(schema, config, path, 0);
  // One value may be reached through several union branches.
  return out.filter((x, i) => out.findIndex((y) => y.path === x.path) === i);
}

const inside = (root: string, p: string): boolean => {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
};

/** The real path of `p`, or of its deepest existing ancestor with the rest appended. */
async function realOrAncestor(p: string): Promise<string> {
  let dir = p;
  const rest: string[] = [];
  for (;;) {
    try {
      return resolve(await realpath(dir), ...rest.reverse());
    } catch {
      const parent = dirname(dir);
      if (parent === dir) return p;
      rest.push(dir.slice(parent.length).replace(/^[/\\]+/, ''));
      dir = parent;
    }
  }
}

/** Why `value` is not allowed under `roots` (absolute), or undefined when it is. Relative values are resolved against `cwd`, as the plugin does. */
export async function hostPathProblem(value: string, roots: readonly string[], cwd = process.cwd()): Promise<string | undefined> {
  const p = resolve(cwd, value);
  const lexical = roots.filter((r) => inside(resolve(r), p));
  if (lexical.length === 0) return `${p} is outside the allowed roots (${roots.join(', ')}): set auth.hostPathRoots to allow another place`;
  const real = await realOrAncestor(p);
  for (const r of lexical) if (inside(await realOrAncestor(resolve(r)), real)) return undefined;
  return `${p} leads outside the allowed roots through a symbolic link (to ${real})`;
}

/** The issues of one connector declaration's host paths (`prefix`: where the declaration is, e.g. `connectors[1].`). */
export async function connectorPathIssues(plugins: PluginRegistry, decl: unknown, roots: readonly string[], prefix = ''): Promise<Issue[]> {
  if (decl === null || typeof decl !== 'object') return [];
  const { plugin, config } = decl as { plugin?: unknown; config?: unknown };
  if (typeof plugin !== 'string') return [];
  const schema = plugins.get(plugin)?.configSchema;
  const issues: Issue[] = [];
  for (const { path, value } of hostPathValues(schema, config, `${prefix}config`)) {
    const problem = await hostPathProblem(value, roots);
    if (problem) issues.push({ path, message: problem });
  }
  return issues;
}

export function pathNotAllowed(issues: Issue[]): JunctionError {
  const first = issues[0]!;
  return new JunctionError(PATH_NOT_ALLOWED, `${first.path}: ${first.message}`, { issues });
}

/** Checks every declaration (junction.yaml's connectors). @throws PATH_NOT_ALLOWED with paths like `connectors[1].config.dir` */
export async function checkDeclaredPaths(plugins: PluginRegistry, decls: readonly unknown[], roots: readonly string[]): Promise<void> {
  const issues: Issue[] = [];
  for (const [i, d] of decls.entries()) issues.push(...(await connectorPathIssues(plugins, d, roots, `connectors[${i}].`)));
  if (issues.length > 0) throw pathNotAllowed(issues);
}

const CONFIG_ROUTES = new Set(['POST /v1/connectors', 'PUT /v1/connectors/:name/config']);

/** A preHandler for the connector routes that take a config: 400 PATH_NOT_ALLOWED with the issues. */
export function confineConnectorPaths(plugins: PluginRegistry, roots: readonly string[]) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (!CONFIG_ROUTES.has(`${request.method} ${request.routeOptions.url ?? ''}`)) return undefined;
    const issues = await connectorPathIssues(plugins, request.body, roots);
    if (issues.length === 0) return undefined;
    const err = pathNotAllowed(issues);
    return reply.code(400).type('application/json; charset=utf-8').send({ code: err.code, message: err.message, issues });
  };
}
