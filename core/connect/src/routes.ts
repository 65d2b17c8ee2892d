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
 * | `PATCH /v1/connectors/:name/offsets` · `DELETE …/offsets` | only when STOPPED (409 CONNECTOR_NOT_STOPPED); PATCH takes KIP-875's `{ offsets }` or `{ to: StartPosition }` (offsets-to.ts) |
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
import { describeRoute } from '@junction/openapi/describe';
import type { AnswerFits, RouteDoc } from '@junction/openapi/describe';
import { ConnectorDeclaration, ConnectorName, ConnectorState } from './declaration.js';
import { ConnectErrorCode, connectError, connectStatusFor } from './errors.js';
import { ToBody } from './offsets-to.js';
import type { ConnectRuntime } from './runtime.js';
import type { ConnectorInfo, ConnectorStatus } from './runtime-types.js';
import type { TaskStatus } from './sink-types.js';

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

// ---- the answers, for the OpenAPI document (the routes answer the runtime's objects as they are)
const NameParams = z.object({ name: ConnectorName });
const TaskParams = z.object({ name: ConnectorName, task: z.string().regex(/^\d+$/).describe('the task id (0, 1, …)') });
const State = z.enum(Object.values(ConnectorState) as [string, ...string[]]);
const LastError = z.object({ code: z.string(), message: z.string(), at: z.number() });
const Retrying = z.object({
  since: z.number().describe('first failure of the oldest failing messages (ms since the epoch)'),
  attempts: z.int(),
  nextAttemptAt: z.number().optional(),
});
const FreshnessAnswer = z
  .object({
    lastLandedAt: z.string().describe('ISO time the last batch landed'),
    lastProducedAt: z.string().describe('produce time of its last message'),
    seconds: z.number().describe('landed − produced'),
  })
  .nullable()
  .describe('null until something landed');
const TaskStatusAnswer = z.object({
  freshness: FreshnessAnswer.optional(),
  id: z.int(),
  state: State,
  trace: z.string().optional(),
  worker: z.string().optional(),
  restartAt: z.number().optional(),
  restarts: z.int(),
  lastError: LastError.optional(),
  retrying: Retrying.optional(),
  partitions: z.array(z.int()).optional(),
  finished: z.boolean().optional(),
});
const ConnectorInfoAnswer = z.object({
  name: z.string(),
  type: z.enum(['sink', 'source', 'unknown']),
  plugin: z.string(),
  station: z.string(),
  config: ConnectorDeclaration.describe('the declaration: secrets redacted, references as written'),
  tasks: z.array(z.object({ connector: z.string(), task: z.int() })),
  target: z.enum(['RUNNING', 'PAUSED', 'STOPPED']),
  origin: z.enum(['api', 'file']).describe('`file` connectors follow junction.yaml'),
  createdAt: z.number(),
  updatedAt: z.number(),
});
const ConnectorStatusAnswer = z
  .object({
    name: z.string(),
    connector: z.object({ state: State, trace: z.string().optional() }),
    tasks: z.array(TaskStatusAnswer),
    type: z.enum(['sink', 'source', 'unknown']),
    lag: z.int().optional().describe('sink: messages of the station its group has not acknowledged'),
    throughput: z.object({ msgsPerSec: z.number(), bytesPerSec: z.number() }),
    lastError: LastError.optional(),
    retrying: Retrying.optional(),
    isolation: z.enum(['shared', 'thread']).optional(),
    freshness: FreshnessAnswer,
  })
  .loose();
const OffsetEntry = z.object({
  partition: z.record(z.string(), z.unknown()).describe('sink: `{ partition: <n> }`; source: `{ task: <n> }`'),
  offset: z.unknown().describe('sink: `{ offset: <n> }`; source: its position (null removes it)'),
});
const OffsetsBody = z.object({ offsets: z.array(OffsetEntry) });
const Message = z.object({ message: z.string() });
const ConnectorPage = z.object({
  connectors: z
    .union([
      z.array(z.string()),
      z.array(z.object({ name: z.string(), status: ConnectorStatusAnswer.optional(), info: ConnectorInfoAnswer.optional() })),
    ])
    .describe('names; with `expand`: objects'),
  next: z.string().optional(),
});
// The documented shapes fit what the runtime answers (a build error otherwise).
const fits: [
  AnswerFits<ConnectorInfo, z.output<typeof ConnectorInfoAnswer>>,
  AnswerFits<ConnectorStatus, z.output<typeof ConnectorStatusAnswer>>,
  AnswerFits<TaskStatus, z.output<typeof TaskStatusAnswer>>,
] = [true, true, true];
void fits;
const doc = (d: Omit<RouteDoc, 'tags'>) => describeRoute({ tags: ['connectors'], ...d });
const nameDoc = (d: Omit<RouteDoc, 'tags' | 'params'>) => doc({ params: NameParams, errors: [404], ...d });

function flag(v: unknown): boolean {
  return v === true || v === 'true' || v === '1' || v === '';
}

const RestartQuery = z.object({
  includeTasks: z.enum(['true', 'false', '1', '']).optional(),
  onlyFailed: z.enum(['true', 'false', '1', '']).optional(),
});
const ACTION_TEXT = {
  pause: 'Its tasks stop taking messages until it is resumed.',
  resume: 'Back to RUNNING.',
  stop: 'Its tasks are shut down; offsets may be changed only while it is STOPPED.',
} as const;

function taskId(raw: string, name: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n))
    throw connectError(ConnectErrorCode.TASK_NOT_FOUND, `connector "${name}" has no task ${raw}`);
  return n;
}

const routes: FastifyPluginAsync<ConnectRoutesOptions> = async (app: FastifyInstance, opts) => {
  const { runtime } = opts;
  const logLevel: LogLevel = opts.logLevel ?? 'warn';
  app.setErrorHandler(errorHandler);

  app.get(
    '/v1/connectors',
    {
      logLevel,
      schema: doc({
        summary: 'List connectors',
        description: 'A page of names in name order (as `GET /v1/stations`); `expand=status` / `expand=info` (or both) answers objects.',
        query: ConnectorListQuery,
        responses: { 200: { description: 'a page', schema: ConnectorPage } },
      }),
    },
    async (request) => {
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
    },
  );

  app.post(
    '/v1/connectors',
    {
      logLevel,
      schema: doc({
        summary: 'Create a connector',
        description:
          "The plugin's config is checked against its schema (`GET /v1/connector-plugins/{name}`); issues name the field (`config.dir`). Strings may hold `${env:NAME}` / `${file:/path}` references; literal secrets are sealed.",
        body: ConnectorDeclaration,
        responses: { 201: { description: 'the connector', schema: ConnectorInfoAnswer } },
        errors: [409, 503],
      }),
    },
    async (request, reply) => {
      const info = await runtime.create(request.body ?? {});
      return reply.code(201).send(info);
    },
  );

  app.get<{ Params: { name: string } }>(
    '/v1/connectors/:name',
    {
      logLevel,
      schema: nameDoc({ summary: 'Get a connector', responses: { 200: { description: 'the connector', schema: ConnectorInfoAnswer } } }),
    },
    async (request) => runtime.info(request.params.name),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/connectors/:name/config',
    {
      logLevel,
      schema: nameDoc({
        summary: "Get a connector's declaration",
        description: 'Secrets redacted, references as written.',
        responses: { 200: { description: 'the declaration', schema: ConnectorDeclaration } },
      }),
    },
    async (request) => runtime.config(request.params.name),
  );

  app.put<{ Params: { name: string } }>(
    '/v1/connectors/:name/config',
    {
      logLevel,
      schema: doc({
        summary: 'Create or replace a connector',
        description: 'Creates it (201) or replaces its declaration (200: its tasks restart with it). `name` may be left out of the body.',
        params: NameParams,
        body: ConnectorDeclaration.partial({ name: true }),
        responses: {
          200: { description: 'updated', schema: ConnectorInfoAnswer },
          201: { description: 'created', schema: ConnectorInfoAnswer },
        },
        errors: [503],
      }),
    },
    async (request, reply) => {
      const { created, info } = await runtime.put(request.params.name, request.body ?? {});
      return reply.code(created ? 201 : 200).send(info);
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/connectors/:name',
    {
      logLevel,
      schema: nameDoc({
        summary: 'Delete a connector',
        description: 'Its group and stored positions are kept.',
        responses: { 204: 'deleted' },
      }),
    },
    async (request, reply) => {
      await runtime.delete(request.params.name);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { name: string } }>(
    '/v1/connectors/:name/status',
    {
      logLevel,
      schema: nameDoc({
        summary: "Get a connector's status",
        description: 'State, tasks (with their error and trace), lag, throughput, the last error, retries in progress.',
        responses: { 200: { description: 'the status', schema: ConnectorStatusAnswer } },
      }),
    },
    async (request) => runtime.status(request.params.name),
  );

  for (const action of ['pause', 'resume', 'stop'] as const) {
    app.put<{ Params: { name: string } }>(
      `/v1/connectors/:name/${action}`,
      {
        logLevel,
        schema: nameDoc({
          summary: `${action[0]!.toUpperCase()}${action.slice(1)} a connector`,
          description: ACTION_TEXT[action],
          responses: { 202: 'accepted' },
        }),
      },
      async (request, reply) => {
        await runtime[action](request.params.name);
        return reply.code(202).send();
      },
    );
  }

  app.post<{ Params: { name: string }; Querystring: { includeTasks?: string; onlyFailed?: string } }>(
    '/v1/connectors/:name/restart',
    {
      logLevel,
      schema: nameDoc({
        summary: 'Restart a connector',
        description: 'With `includeTasks` its tasks too; with `onlyFailed` only the failed ones.',
        query: RestartQuery,
        responses: { 202: { description: 'the status', schema: ConnectorStatusAnswer } },
      }),
    },
    async (request, reply) => {
      await runtime.restart(request.params.name, {
        includeTasks: flag(request.query.includeTasks),
        onlyFailed: flag(request.query.onlyFailed),
      });
      return reply.code(202).send(await runtime.status(request.params.name));
    },
  );

  app.get<{ Params: { name: string } }>(
    '/v1/connectors/:name/tasks',
    {
      logLevel,
      schema: nameDoc({
        summary: "List a connector's tasks",
        responses: {
          200: {
            description: 'the tasks',
            schema: z.array(
              z.object({ id: z.object({ connector: z.string(), task: z.int() }), config: z.record(z.string(), z.unknown()) }),
            ),
          },
        },
      }),
    },
    async (request) => {
      const info = runtime.info(request.params.name);
      return info.tasks.map((id) => ({ id, config: info.config.config }));
    },
  );

  app.get<{ Params: { name: string; task: string } }>(
    '/v1/connectors/:name/tasks/:task/status',
    {
      logLevel,
      schema: doc({
        summary: "Get a task's status",
        params: TaskParams,
        responses: { 200: { description: 'the task', schema: TaskStatusAnswer } },
        errors: [404],
      }),
    },
    async (request) => {
      const status = await runtime.status(request.params.name);
      const id = taskId(request.params.task, request.params.name);
      const t = status.tasks.find((x) => x.id === id);
      if (!t) throw connectError(ConnectErrorCode.TASK_NOT_FOUND, `connector "${request.params.name}" has no task ${request.params.task}`);
      return t;
    },
  );

  app.post<{ Params: { name: string; task: string } }>(
    '/v1/connectors/:name/tasks/:task/restart',
    { logLevel, schema: doc({ summary: 'Restart a task', params: TaskParams, responses: { 204: 'restarting' }, errors: [404] }) },
    async (request, reply) => {
      await runtime.restartTask(request.params.name, taskId(request.params.task, request.params.name));
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { name: string } }>(
    '/v1/connectors/:name/offsets',
    {
      logLevel,
      schema: nameDoc({
        summary: "Get a connector's offsets",
        description: "Sink: its group's position per partition; source: each task's position.",
        responses: { 200: { description: 'the offsets', schema: OffsetsBody } },
      }),
    },
    async (request) => runtime.offsets(request.params.name),
  );

  app.patch<{ Params: { name: string } }>(
    '/v1/connectors/:name/offsets',
    {
      logLevel,
      schema: nameDoc({
        summary: "Set a connector's offsets",
        description:
          "Only while STOPPED (409 CONNECTOR_NOT_STOPPED). KIP-875's `{ offsets }`, or `{ to }`: a sink's group moves to `earliest`, `latest`, a timestamp or an offset (the answer names where each partition now starts); a source takes only `earliest` (its plugin starts over).",
        body: z.union([OffsetsBody, ToBody]),
        responses: {
          200: {
            description: 'done',
            schema: Message.extend({ offsets: z.array(OffsetEntry).optional().describe('with `to`: where each partition now starts') }),
          },
        },
        errors: [404, 409],
      }),
    },
    async (request) => runtime.setOffsets(request.params.name, request.body),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/connectors/:name/offsets',
    {
      logLevel,
      schema: nameDoc({
        summary: "Reset a connector's offsets",
        description:
          'Only while STOPPED (409 CONNECTOR_NOT_STOPPED): a sink starts again from the earliest message, a source from the start.',
        responses: { 200: { description: 'done', schema: Message } },
        errors: [404, 409],
      }),
    },
    async (request) => runtime.resetOffsets(request.params.name),
  );
};

/**
 * The connector routes as a fastify plugin: `app.register(connectRoutes, { runtime })`. Registered
 * without fastify-plugin on purpose: its error handler stays scoped to these routes.
 */
export const connectRoutes: FastifyPluginAsync<ConnectRoutesOptions> = routes;
