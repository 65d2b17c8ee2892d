/**
 * `/v1/connectors`: the connector REST API, shaped after Kafka Connect's so its users find their way.
 *
 * | route | answer |
 * | --- | --- |
 * | `GET /v1/connectors?limit&after&prefix` | a page of names in name order: `{ connectors: [name], next? }` (the contract of `GET /v1/stations`: at most `limit` ≤ 1000, default 1000, after the cursor `after`, starting with `prefix`; `next` is the next page's `after`); `?expand=status` / `?expand=info` (or both) → `{ connectors: [{ name, status?, info? }], next? }` |
 * | `POST /v1/connectors` | body: the declaration → 201 info |
 * | `GET /v1/connectors/:name` | info |
 * | `GET /v1/connectors/:name/config` | the declaration (secrets redacted, references as written) |
 * | `PUT /v1/connectors/:name/config` | creates (201) or updates (200, tasks restart with it) |
 * | `DELETE /v1/connectors/:name` | 204; the group / stored positions are kept |
 * | `GET /v1/connectors/:name/status` | `{ name, connector: { state, trace? }, tasks, type, lag, throughput, lastError?, retrying?, freshness }` (`freshness`: `{ lastLandedAt, lastProducedAt, seconds }` of the last message a sink landed, or null; per task too) |
 * | `PUT /v1/connectors/:name/pause` · `/resume` · `/stop` | 202 |
 * | `POST /v1/connectors/:name/restart?includeTasks=&onlyFailed=` | 202 with the status |
 * | `GET /v1/connectors/:name/tasks` | `[{ id: { connector, task }, config }]` |
 * | `GET /v1/connectors/:name/tasks/:task/status` | the task's status |
 * | `POST /v1/connectors/:name/tasks/:task/restart` | 204 |
 * | `GET /v1/connectors/:name/offsets` | `{ offsets: [{ partition, offset }] }` |
 * | `PATCH /v1/connectors/:name/offsets` · `DELETE …/offsets` | only when STOPPED (409 CONNECTOR_NOT_STOPPED) |
 *
 * Errors answer `{ code, message, issues? }`: CONNECTOR_NOT_FOUND 404, CONNECTOR_EXISTS 409,
 * CONFIG_INVALID 400 (issues with field paths such as `config.dir`), PLUGIN_NOT_FOUND 400,
 * SECRETS_KEY_UNAVAILABLE 503 (a literal secret, and no key to seal it with).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, LogLevel } from 'fastify';
import { pageOfNames, parseBody, toApiError } from '@junction/broker';
import { ListQuery } from '@junction/protocol';
import { z } from 'zod';
import { isJunctionError } from '@junction/sdk-connector';
import { ConnectErrorCode, connectError, connectStatusFor } from './errors.js';
import type { ConnectRuntime } from './runtime.js';

export interface ConnectRoutesOptions {
  runtime: ConnectRuntime;
  /** Log level of the routes' request logs (the server keeps them at warn unless debugging). */
  logLevel?: LogLevel | undefined;
}

function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  if (isJunctionError(error)) {
    const status = connectStatusFor(error.code);
    const body: { code: string; message: string; issues?: unknown } = { code: error.code, message: error.message };
    if (error.issues && error.issues.length > 0) body.issues = error.issues;
    if (status >= 500) request.log.error({ err: error }, 'connector request failed');
    void reply.code(status).type('application/json; charset=utf-8').send(body);
    return;
  }
  const { status, body, unexpected } = toApiError(error, request);
  if (unexpected) request.log.error({ err: error }, 'connector request failed');
  void reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** `GET /v1/connectors`: a page as `GET /v1/stations` takes it (`limit`, `after`, `prefix`), plus `expand`. */
const ConnectorListQuery = ListQuery.extend({
  expand: z.union([z.enum(['status', 'info', 'status,info', 'info,status']), z.array(z.enum(['status', 'info']))]).optional(),
});

function flag(v: unknown): boolean {
  return v === true || v === 'true' || v === '1' || v === '';
}

function taskId(raw: string, name: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw connectError(ConnectErrorCode.TASK_NOT_FOUND, `connector "${name}" has no task ${raw}`);
  return n;
}

const routes: FastifyPluginAsync<ConnectRoutesOptions> = async (app: FastifyInstance, opts) => {
  const { runtime } = opts;
  const logLevel: LogLevel = opts.logLevel ?? 'warn';
  app.setErrorHandler(errorHandler);

  app.get('/v1/connectors', { logLevel }, async (request) => {
    const q = parseBody(ConnectorListQuery, request.query);
    const expand = new Set(([] as string[]).concat(q.expand ?? []).flatMap((e) => e.split(',')));
    // One more than asked: whether a next page exists.
    const names = pageOfNames(runtime.names(), { after: q.after, prefix: q.prefix, limit: q.limit + 1 });
    const more = names.length > q.limit;
    const kept = more ? names.slice(0, q.limit) : names;
    const next = more ? { next: kept[kept.length - 1]! } : {};
    if (!expand.has('status') && !expand.has('info')) return { connectors: kept, ...next };
    const out: { name: string; status?: unknown; info?: unknown }[] = [];
    for (const name of kept) {
      const entry: { name: string; status?: unknown; info?: unknown } = { name };
      try {
        if (expand.has('info')) entry.info = runtime.info(name);
        if (expand.has('status')) entry.status = await runtime.status(name);
      } catch {
        continue; // deleted meanwhile
      }
      out.push(entry);
    }
    return { connectors: out, ...next };
  });

  app.post('/v1/connectors', { logLevel }, async (request, reply) => {
    const info = await runtime.create(request.body ?? {});
    return reply.code(201).send(info);
  });

  app.get<{ Params: { name: string } }>('/v1/connectors/:name', { logLevel }, async (request) => runtime.info(request.params.name));

  app.get<{ Params: { name: string } }>('/v1/connectors/:name/config', { logLevel }, async (request) => runtime.config(request.params.name));

  app.put<{ Params: { name: string } }>('/v1/connectors/:name/config', { logLevel }, async (request, reply) => {
    const { created, info } = await runtime.put(request.params.name, request.body ?? {});
    return reply.code(created ? 201 : 200).send(info);
  });

  app.delete<{ Params: { name: string } }>('/v1/connectors/:name', { logLevel }, async (request, reply) => {
    await runtime.delete(request.params.name);
    return reply.code(204).send();
  });

  app.get<{ Params: { name: string } }>('/v1/connectors/:name/status', { logLevel }, async (request) => runtime.status(request.params.name));

  for (const action of ['pause', 'resume', 'stop'] as const) {
    app.put<{ Params: { name: string } }>(`/v1/connectors/:name/${action}`, { logLevel }, async (request, reply) => {
      await runtime[action](request.params.name);
      return reply.code(202).send();
    });
  }

  app.post<{ Params: { name: string }; Querystring: { includeTasks?: string; onlyFailed?: string } }>(
    '/v1/connectors/:name/restart',
    { logLevel },
    async (request, reply) => {
      await runtime.restart(request.params.name, { includeTasks: flag(request.query.includeTasks), onlyFailed: flag(request.query.onlyFailed) });
      return reply.code(202).send(await runtime.status(request.params.name));
    },
  );

  app.get<{ Params: { name: string } }>('/v1/connectors/:name/tasks', { logLevel }, async (request) => {
    const info = runtime.info(request.params.name);
    return info.tasks.map((id) => ({ id, config: info.config.config }));
  });

  app.get<{ Params: { name: string; task: string } }>('/v1/connectors/:name/tasks/:task/status', { logLevel }, async (request) => {
    const status = await runtime.status(request.params.name);
    const id = taskId(request.params.task, request.params.name);
    const t = status.tasks.find((x) => x.id === id);
    if (!t) throw connectError(ConnectErrorCode.TASK_NOT_FOUND, `connector "${request.params.name}" has no task ${request.params.task}`);
    return t;
  });

  app.post<{ Params: { name: string; task: string } }>('/v1/connectors/:name/tasks/:task/restart', { logLevel }, async (request, reply) => {
    await runtime.restartTask(request.params.name, taskId(request.params.task, request.params.name));
    return reply.code(204).send();
  });

  app.get<{ Params: { name: string } }>('/v1/connectors/:name/offsets', { logLevel }, async (request) => runtime.offsets(request.params.name));

  app.patch<{ Params: { name: string } }>('/v1/connectors/:name/offsets', { logLevel }, async (request) => runtime.setOffsets(request.params.name, request.body));

  app.delete<{ Params: { name: string } }>('/v1/connectors/:name/offsets', { logLevel }, async (request) => runtime.resetOffsets(request.params.name));
};

/**
 * The connector routes as a fastify plugin: `app.register(connectRoutes, { runtime })`. Registered
 * without fastify-plugin on purpose: its error handler stays scoped to these routes.
 */
export const connectRoutes: FastifyPluginAsync<ConnectRoutesOptions> = routes;
