/**
 * Pipelines as code over HTTP (`junction apply`): a body holding the `stations:` and `connectors:` of a
 * junction.yaml is planned or applied against the running broker, by the same code that applies the
 * server's own file (`applyStations`, the connector runtime's create / put / delete).
 *
 * | route | answer |
 * | --- | --- |
 * | `POST /v1/pipeline/plan` | `{ stations: [entry], connectors: [entry] }`: what applying would change; nothing changes |
 * | `POST /v1/pipeline/apply` | the same entries, applied; an entry that failed carries `error: { code, message }` |
 *
 * Body: `{ stations?: [...], connectors?: [...], prune?: boolean }`. An entry is `{ name, action:
 * create | update | delete | unchanged | conflict, changes?: [{ path, from?, to? }] }` (secrets `***`).
 * `prune` (default false): stations and connectors the body does not name are deleted — never Junction's
 * own stations (`__…`), dead-letter stations (`….dls`, deleted with their station) nor a station a
 * declared connector uses. Without it nothing is deleted. A station option fixed at creation (partitions,
 * storage) that differs is a `conflict`: the plan reports it, and apply then changes nothing (422
 * CONFIG_IMMUTABLE with the paths).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, LogLevel } from 'fastify';
import { z } from 'zod';
import { describeRoute } from '@junction/openapi/describe';
import { parseBody, toApiError } from '@junction/broker';
import type { StationStore, StationInfo } from '@junction/broker';
import { applyConnectors, connectStatusFor, fieldChanges, planConnectors } from '@junction/connect';
import type { ConnectRuntime, ConnectorPlanEntry, FieldChange } from '@junction/connect';
import type { Registry as PluginRegistry } from '@junction/registry';
import { StationDeclaration } from './config.js';
import { PATH_NOT_ALLOWED, checkDeclaredPaths } from './confine.js';
import { ErrorCode, JunctionError, configIssues, isJunctionError } from './errors.js';
import { IMMUTABLE_STATION_OPTIONS, applyStations, diffMutable, same } from './stations.js';

export const PipelineBody = z.strictObject({
  stations: z.array(StationDeclaration).default([]),
  connectors: z.array(z.unknown()).default([]),
  prune: z.boolean().default(false),
});
export type PipelineBody = z.input<typeof PipelineBody>;

export interface StationPlanEntry {
  name: string;
  action: 'create' | 'update' | 'delete' | 'unchanged' | 'conflict';
  changes?: FieldChange[] | undefined;
  /** conflict: why (an option fixed at creation differs). */
  message?: string | undefined;
  error?: { code: string; message: string } | undefined;
}

export interface PipelinePlan {
  stations: StationPlanEntry[];
  connectors: (ConnectorPlanEntry & { error?: { code: string; message: string } | undefined })[];
}

/** Stations `prune` may never delete: Junction's own and dead-letter stations. */
function protectedStation(name: string): boolean {
  return name.startsWith('__') || name.endsWith('.dls');
}

/** What applying `desired` would do to the store's stations (nothing is changed). */
export async function planStations(
  store: StationStore,
  desired: readonly StationDeclaration[],
  opts: { prune?: boolean | undefined; keep?: ReadonlySet<string> | undefined } = {},
): Promise<StationPlanEntry[]> {
  const existing = new Map<string, StationInfo>((await store.listStations()).map((s) => [s.name, s]));
  const out: StationPlanEntry[] = [];
  for (const decl of desired) {
    const { name, ...config } = decl;
    const current = existing.get(name);
    if (!current) {
      out.push({ name, action: 'create', changes: fieldChanges(undefined, config, '') });
      continue;
    }
    const fixed = IMMUTABLE_STATION_OPTIONS.filter((k) => !same(current.config[k], config[k]));
    if (fixed.length > 0) {
      out.push({
        name,
        action: 'conflict',
        changes: fixed.flatMap((k) => fieldChanges(current.config[k], config[k], k)),
        message: `${fixed.join(' and ')} cannot change after creation (delete and re-create the station to change it)`,
      });
      continue;
    }
    const patch = diffMutable(current, config);
    const keys = Object.keys(patch) as (keyof typeof patch)[];
    if (keys.length === 0) out.push({ name, action: 'unchanged' });
    else
      out.push({
        name,
        action: 'update',
        changes: keys.flatMap((k) => fieldChanges((current.config as Record<string, unknown>)[k], patch[k], k)),
      });
  }
  if (opts.prune) {
    const declared = new Set(desired.map((d) => d.name));
    for (const name of [...existing.keys()].sort()) {
      if (declared.has(name) || protectedStation(name) || opts.keep?.has(name)) continue;
      out.push({ name, action: 'delete' });
    }
  }
  return out;
}

export interface PipelineDeps {
  store: StationStore;
  runtime: ConnectRuntime;
  logger: { info(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** With auth on: connector configs naming host paths must stay inside these (as on the connector routes). */
  confine?: { plugins: PluginRegistry; roots: readonly string[] } | undefined;
}

function checkedBody(raw: unknown): z.output<typeof PipelineBody> {
  const body = parseBody(PipelineBody, raw ?? {});
  const seen = new Set<string>();
  const issues = body.stations.flatMap((s, i) => {
    const dup = seen.has(s.name);
    seen.add(s.name);
    return dup ? [{ path: `stations[${i}].name`, message: `duplicate station "${s.name}"` }] : [];
  });
  if (issues.length > 0) throw configIssues('the pipeline', issues);
  return body;
}

async function plan(deps: PipelineDeps, body: z.output<typeof PipelineBody>) {
  if (deps.confine) await checkDeclaredPaths(deps.confine.plugins, body.connectors, deps.confine.roots);
  const connectors = await planConnectors(deps.runtime, body.connectors, { prune: body.prune });
  const keep = new Set(connectors.declarations.map((d) => d.station));
  const stations = await planStations(deps.store, body.stations as StationDeclaration[], { prune: body.prune, keep });
  return { stations, connectors };
}

/** Plans a pipeline (validating all of it first: CONFIG_INVALID with every issue). Changes nothing. */
export async function planPipeline(deps: PipelineDeps, raw: unknown): Promise<PipelinePlan> {
  const p = await plan(deps, checkedBody(raw));
  return { stations: p.stations, connectors: p.connectors.entries };
}

/**
 * Applies a pipeline: stations created and updated first, then connectors, then (with `prune`) the
 * stations no longer declared. Invalid input or a conflict changes nothing (CONFIG_INVALID,
 * CONFIG_IMMUTABLE); past that, one entry's failure is reported on it and the others are applied.
 */
export async function applyPipeline(deps: PipelineDeps, raw: unknown): Promise<PipelinePlan> {
  const body = checkedBody(raw);
  const p = await plan(deps, body);
  // A station that cannot become what the file says stops the apply before anything changes.
  const conflicts = p.stations.flatMap((e) => {
    if (e.action !== 'conflict') return [];
    const i = body.stations.findIndex((s) => s.name === e.name);
    return (e.changes ?? []).map((c) => ({
      path: `stations[${i}].${c.path}`,
      message: `is ${JSON.stringify(c.from)} on the broker; ${e.message ?? ''}`,
    }));
  });
  if (conflicts.length > 0) {
    throw new JunctionError(
      ErrorCode.CONFIG_IMMUTABLE,
      `nothing was applied: ${conflicts.length === 1 ? 'an option' : 'options'} fixed at creation differ (${conflicts[0]!.path})`,
      { issues: conflicts },
    );
  }
  const errors = new Map<string, { code: string; message: string }>();
  const applied = await applyStations(deps.store, body.stations as StationDeclaration[], deps.logger);
  for (const e of applied.errors) if (e.code !== 'CONFIG_IMMUTABLE') errors.set(e.station, { code: e.code, message: e.message });
  const connectors = await applyConnectors(deps.runtime, p.connectors);
  for (const e of p.stations) {
    if (e.action !== 'delete') continue;
    try {
      await deps.store.deleteStation(e.name);
      deps.logger.info({ station: e.name }, 'station deleted by a pipeline apply (prune)');
    } catch (err) {
      errors.set(e.name, { code: isJunctionError(err) ? err.code : 'INTERNAL', message: err instanceof Error ? err.message : String(err) });
    }
  }
  const stations = p.stations.map((e) => (errors.has(e.name) ? { ...e, error: errors.get(e.name) } : e));
  const summary = (list: { action: string; name: string }[]) =>
    Object.fromEntries(['create', 'update', 'delete'].map((a) => [a, list.filter((e) => e.action === a).map((e) => e.name)]));
  deps.logger.info({ stations: summary(stations), connectors: summary(connectors) }, 'pipeline applied');
  return { stations, connectors };
}

function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  if (isJunctionError(error)) {
    const body: { code: string; message: string; issues?: unknown } = { code: error.code, message: error.message };
    if (error.issues && error.issues.length > 0) body.issues = error.issues;
    const status = error.code === PATH_NOT_ALLOWED ? 400 : connectStatusFor(error.code);
    if (status >= 500) request.log.error({ err: error }, 'pipeline request failed');
    void reply.code(status).type('application/json; charset=utf-8').send(body);
    return;
  }
  const { status, body, unexpected } = toApiError(error, request);
  if (unexpected) request.log.error({ err: error }, 'pipeline request failed');
  void reply.code(status).type('application/json; charset=utf-8').send(body);
}

// ---- for the OpenAPI document
const Change = z.object({ path: z.string(), from: z.unknown().optional(), to: z.unknown().optional() }).describe('secrets `***`');
const EntryError = z.object({ code: z.string(), message: z.string() });
const PlanAnswer = z.object({
  stations: z.array(
    z.object({
      name: z.string(),
      action: z.enum(['create', 'update', 'delete', 'unchanged', 'conflict']),
      changes: z.array(Change).optional(),
      message: z.string().optional(),
      error: EntryError.optional(),
    }),
  ),
  connectors: z.array(
    z.object({
      name: z.string(),
      action: z.enum(['create', 'update', 'delete', 'unchanged']),
      plugin: z.string(),
      station: z.string(),
      changes: z.array(Change).optional(),
      error: EntryError.optional(),
    }),
  ),
});
const PIPELINE_BODY = PipelineBody.extend({
  connectors: z.array(z.record(z.string(), z.unknown())).default([]).describe('connector declarations, as in POST /v1/connectors'),
});
const PLAN_DOC = describeRoute({
  summary: 'Plan a pipeline (nothing changes)',
  description:
    'The `stations:` and `connectors:` of a junction.yaml: what applying them would create, update or delete (`prune`: also what the body does not name, never `__…` or dead-letter stations). An option fixed at creation that differs is a `conflict`.',
  tags: ['pipeline'],
  body: PIPELINE_BODY,
  responses: { 200: { description: 'the plan', schema: PlanAnswer } },
});
const APPLY_DOC = describeRoute({
  summary: 'Apply a pipeline',
  description: 'Applies the plan; an entry that failed carries `error`. A conflict changes nothing (422 CONFIG_IMMUTABLE with the paths).',
  tags: ['pipeline'],
  body: PIPELINE_BODY,
  responses: { 200: { description: 'the entries, applied', schema: PlanAnswer } },
  errors: [422],
});

/** `POST /v1/pipeline/plan` and `/apply` as a fastify plugin (its error handler scoped to them). */
export const pipelineRoutes: FastifyPluginAsync<PipelineDeps & { logLevel?: LogLevel | undefined }> = async (app, deps) => {
  const logLevel: LogLevel = deps.logLevel ?? 'warn';
  app.setErrorHandler(errorHandler);
  app.post('/v1/pipeline/plan', { logLevel, schema: PLAN_DOC }, async (request) => planPipeline(deps, request.body));
  app.post('/v1/pipeline/apply', { logLevel, schema: APPLY_DOC }, async (request) => applyPipeline(deps, request.body));
};
