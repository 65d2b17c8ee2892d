/**
 * Memphis REST gateway compatibility (memphis-rest-gateway, Memphis v1.4.x), so that HTTP producers and
 * consumers written for Memphis work against Junction unchanged. Ideas re-created from the documented
 * behaviour; no Memphis code is used (it is BSL-licensed).
 *
 * Routes (answers use Memphis's shapes, `{ success, error }`, plus a Junction `code` on errors):
 *   POST /stations/:station/produce/single   raw body of any content type is the value
 *   POST /stations/:station/produce/batch    JSON array, one element per message
 *   POST /stations/:station/consume/batch    fetch + ack (the gateway's consumers deliver once)
 *   POST /auth/authenticate, /auth/refreshToken   a compatibility shim, see below
 *   GET  /monitoring/status
 *
 * Differences from Memphis, on purpose:
 *   - Unknown stations answer 404 unless `autoCreateStations` is set (Memphis created them on first use).
 *   - Station and group names are case-sensitive (Memphis SDKs lowercased them).
 *   - produce/batch stores each element as its JSON text (`JSON.stringify(element)`): an object or
 *     array keeps its structure but not its original spacing or number spelling (`1.0` becomes `1`);
 *     a string element is stored with its quotes (`"abc"`).
 *   - consume/batch returns as soon as at least one message is there (or after
 *     batch_max_wait_time_ms); Memphis waited to fill the batch.
 *   - consume/batch decodes each value as UTF-8 into `message` (Memphis did the same); bytes that are
 *     not valid UTF-8 come out with U+FFFD. Use the /v1 API for binary values.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { GroupName, MiB, StationName, type StationConfigInput } from '@junction/protocol';
import type { MessageInput, ProduceResult, StationStore } from '../contract.js';
import { ErrorCode, isJunctionError } from '../errors.js';
import { describeRoute, ErrorShape } from '@junction/openapi/describe';
import { bodyInvalid, parseBody, toApiError } from './errors.js';
import { BodyGate, gateLargeBodies } from './limits.js';
import {
  DEFAULT_PRODUCE_BODY_LIMIT,
  JSON_PRODUCE_BODY_LIMIT,
  refuseSystemStation,
  registerJsonParser,
  settleByAnswer,
  withDisconnectSignal,
  type ProduceObserver,
} from './routes.js';

export interface MemphisRoutesOptions {
  store: StationStore;
  /** Body limit of the produce routes in bytes. Default 64 MiB. */
  bodyLimit?: number | undefined;
  /** The budget of large bodies in flight (see BrokerRoutesOptions.bodyGate). Default: its own. */
  bodyGate?: BodyGate | undefined;
  /** Create an unknown station on produce / consume, like Memphis did. Default false (404). */
  autoCreateStations?: boolean | undefined;
  /** Config of stations created by autoCreateStations. Default: Junction's station defaults. */
  stationDefaults?: StationConfigInput | undefined;
  metrics?: ProduceObserver | undefined;
  /**
   * Checks credentials for /auth/authenticate and /auth/refreshToken (core/server passes one when auth
   * is on). Absent: the compatibility shim that accepts anything (see memphisRoutes).
   */
  authenticator?: MemphisAuthenticator | undefined;
}

/** What /auth/authenticate and /auth/refreshToken answer (Memphis's fields; expiries in ms). */
export interface MemphisTokenAnswer {
  jwt: string;
  expires_in: number;
  jwt_refresh_token: string;
  refresh_token_expires_in: number;
}

/**
 * The contract the gateway's auth routes call when auth is on (implemented outside the broker). Both
 * throw a JunctionError UNAUTHENTICATED (401) for wrong, tampered, expired or revoked credentials.
 */
export interface MemphisAuthenticator {
  /** `from`: the client's address, for limits on failed attempts. */
  authenticate(
    body: {
      username: string;
      password?: string | undefined;
      connection_token?: string | undefined;
      token_expiry_in_minutes: number;
      refresh_token_expiry_in_minutes: number;
    },
    from: string,
  ): Promise<MemphisTokenAnswer>;
  refresh(body: {
    jwt_refresh_token: string;
    token_expiry_in_minutes: number;
    refresh_token_expiry_in_minutes: number;
  }): Promise<MemphisTokenAnswer>;
}

/** The answer of a successful Memphis produce. */
export const MEMPHIS_OK = { success: true, error: null } as const;

/**
 * Request headers that describe the HTTP transfer or carry credentials, not the message: never copied
 * into message headers. (Memphis copied every header; hop-by-hop ones are meaningless once stored and
 * credentials must not end up in a log that consumers read.)
 */
export const EXCLUDED_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'content-length',
  'accept-encoding',
  'authorization',
  'cookie',
  'msg-id', // becomes the message's msgId instead
]);

const StationParams = z.strictObject({ station: StationName });

/** The answers, for the OpenAPI document. */
const MemphisOk = z.object({ success: z.literal(true), error: z.null() });
const MemphisTokens = z.object({
  jwt: z.string(),
  expires_in: z.int().describe('ms'),
  jwt_refresh_token: z.string(),
  refresh_token_expires_in: z.int().describe('ms'),
});
const MemphisQuery = z.object({
  authorization: z.string().optional().describe('the bearer token, as Memphis SDKs send it (instead of the Authorization header)'),
});
const memphis = { tags: ['memphis'], errorShape: ErrorShape.memphis } as const;

const emptyToUndefined = (v: unknown) => (v === '' || v === null ? undefined : v);
const ConsumeBody = z.object({
  consumer_name: GroupName,
  consumer_group: z.preprocess(emptyToUndefined, GroupName.optional()),
  batch_size: z.preprocess(emptyToUndefined, z.int().min(1).max(5000).default(10)),
  batch_max_wait_time_ms: z.preprocess(emptyToUndefined, z.int().min(0).max(300_000).default(5000)),
});

const AuthenticateBody = z
  .object({
    username: z.string().min(1),
    password: z.string().optional(),
    connection_token: z.string().optional(),
    token_expiry_in_minutes: z.int().min(1).max(525_600).default(15),
    refresh_token_expiry_in_minutes: z.int().min(1).max(525_600).default(10_080),
  })
  .refine((b) => b.password !== undefined || b.connection_token !== undefined, {
    message: 'one of "password" and "connection_token" is required',
    path: ['password'],
  });
const RefreshBody = z.object({
  jwt_refresh_token: z.string().min(1),
  token_expiry_in_minutes: z.int().min(1).max(525_600).default(15),
  refresh_token_expiry_in_minutes: z.int().min(1).max(525_600).default(10_080),
});

/**
 * The Memphis REST gateway routes, in their own scope. produce/single takes any content type as raw
 * bytes; the others take JSON. Errors answer `{ success: false, error: <message>, code }` with the
 * status of the broker's error table.
 *
 * Auth: with an `authenticator` (core/server passes one when auth is on), /auth/authenticate and
 * /auth/refreshToken check credentials and answer signed JWTs, and core/server's access hook checks the
 * token on every other route. Without one (auth off, loopback only), they accept any credentials and
 * answer an UNSIGNED, JWT-shaped token (`alg: none`) so Memphis SDK login flows work; no route checks
 * it. That shim is compatibility, not security.
 */
export const memphisRoutes: FastifyPluginAsync<MemphisRoutesOptions> = async (app, opts) => {
  const { store, metrics } = opts;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_PRODUCE_BODY_LIMIT;
  const gate = gateLargeBodies(opts.bodyGate ?? new BodyGate(), bodyLimit);
  app.setErrorHandler(memphisErrorHandler);
  app.removeAllContentTypeParsers();
  registerJsonParser(app, Math.min(bodyLimit, JSON_PRODUCE_BODY_LIMIT));

  const produce = async (station: string, messages: MessageInput[]): Promise<ProduceResult[]> => {
    const started = process.hrtime.bigint();
    const results = await withStation(station, () => store.produce(station, messages));
    metrics?.observeProduce(station, Number(process.hrtime.bigint() - started) / 1e9, messages.length);
    return results;
  };

  const withStation = async <T>(station: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      if (!opts.autoCreateStations || !isJunctionError(err) || err.code !== ErrorCode.STATION_NOT_FOUND) throw err;
    }
    try {
      await store.createStation(station, opts.stationDefaults);
    } catch (err) {
      if (!isJunctionError(err) || err.code !== ErrorCode.STATION_EXISTS) throw err; // created concurrently
    }
    return run();
  };

  // produce/single: its own scope, where every content type (and none) is read as raw bytes.
  await app.register(async (raw: FastifyInstance) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    raw.post(
      '/stations/:station/produce/single',
      {
        bodyLimit,
        onRequest: gate,
        schema: describeRoute({
          ...memphis,
          summary: 'Produce one message (Memphis gateway)',
          description:
            'The raw body, of any content type, is the value; request headers (but transport and credential ones) become message headers; `msg-id` is the msgId.',
          params: StationParams,
          query: MemphisQuery,
          body: z.string().describe('the value, raw bytes'),
          bodyContentTypes: ['*/*'],
          responses: { 200: { description: 'stored', schema: MemphisOk } },
          errors: [404, 413],
        }),
      },
      async (req, reply) => {
        const station = refuseSystemStation(stationOf(req));
        const message: MessageInput = { value: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), headers: messageHeaders(req) };
        const msgId = singleHeader(req, 'msg-id');
        if (msgId) message.msgId = msgId;
        const [result] = await produce(station, [message]);
        if (result?.status === 'rejected') {
          return reply.code(rejectedStatus(result.code)).send({ success: false, error: result.message, code: result.code });
        }
        return MEMPHIS_OK;
      },
    );
  });

  app.post(
    '/stations/:station/produce/batch',
    {
      onRequest: gate,
      schema: describeRoute({
        ...memphis,
        summary: 'Produce a batch (Memphis gateway)',
        description:
          'A JSON array: each element is stored as its JSON text, one message each. When some are rejected the answer (400, or 413 when all were too large) is `{ success: false, sent, fail, errors: ["message <i>: <why>"] }`.',
        params: StationParams,
        query: MemphisQuery,
        body: z.array(z.unknown()).min(1).max(100_000),
        responses: { 200: { description: 'all stored', schema: MemphisOk } },
        errors: [404, 413],
      }),
    },
    async (req, reply) => {
      const station = refuseSystemStation(stationOf(req));
      const body: unknown = req.body;
      if (!Array.isArray(body)) throw bodyInvalid('', 'body must be a JSON array with one element per message');
      if (body.length === 0) throw bodyInvalid('', 'the batch is empty');
      if (body.length > 100_000) throw bodyInvalid('', 'at most 100000 messages per batch');
      // msg-id is not applied to a batch: one id on every message would keep only the first.
      const headers = messageHeaders(req);
      const results = await produce(
        station,
        body.map((element) => ({ value: Buffer.from(JSON.stringify(element), 'utf8'), headers })),
      );
      const errors: string[] = [];
      const codes = new Set<string>();
      results.forEach((r, i) => {
        if (r.status === 'rejected') {
          errors.push(`message ${i}: ${r.message}`);
          codes.add(r.code);
        }
      });
      if (errors.length === 0) return MEMPHIS_OK;
      const status = codes.size === 1 ? rejectedStatus([...codes][0]!) : 400;
      return reply.code(status).send({ success: false, sent: results.length - errors.length, fail: errors.length, errors });
    },
  );

  app.post(
    '/stations/:station/consume/batch',
    {
      schema: describeRoute({
        ...memphis,
        summary: 'Consume a batch (Memphis gateway)',
        description:
          "Fetches for `consumer_group` (default `consumer_name`) and acknowledges what it hands out (Memphis's once-only gateway consumers). Values are decoded as UTF-8.",
        params: StationParams,
        query: MemphisQuery,
        body: ConsumeBody,
        responses: {
          200: {
            description: 'the messages',
            schema: z.array(z.object({ message: z.string(), headers: z.record(z.string(), z.string()) })),
          },
        },
        errors: [404],
      }),
    },
    async (req, reply) => {
      const station = stationOf(req);
      const body = parseBody(ConsumeBody, req.body);
      const group = body.consumer_group ?? body.consumer_name;
      const deliveries = await withStation(station, () =>
        withDisconnectSignal(reply, (signal) =>
          store.fetch(station, group, { maxMessages: body.batch_size, maxBytes: 64 * MiB, waitMs: body.batch_max_wait_time_ms, signal }),
        ),
      );
      // Decoded before the ack: a delivered value may be a view into a read buffer the next read reuses.
      const answer = deliveries.map((d) => ({
        message: Buffer.from(d.value.buffer, d.value.byteOffset, d.value.byteLength).toString('utf8'),
        headers: d.headers,
      }));
      // Gateway semantics: a message is acked when it is handed out (Memphis: maxMsgDeliveries = 1) — once
      // the answer is written to the socket; when the client went away first, the messages are given back.
      if (deliveries.length > 0) {
        const ids = deliveries.map((d) => d.deliveryId);
        settleByAnswer(
          reply,
          () => store.ack(station, group, ids),
          () => store.nack(station, group, ids),
        );
      }
      return answer;
    },
  );

  app.post(
    '/auth/authenticate',
    {
      schema: describeRoute({
        ...memphis,
        summary: 'Log in (Memphis gateway)',
        description:
          'With auth on: checks the credentials and answers signed tokens. With auth off: a compatibility shim that answers an unsigned token nobody checks.',
        body: AuthenticateBody,
        responses: { 200: { description: 'the tokens', schema: MemphisTokens } },
        errors: [401, 429],
      }),
    },
    async (req) => {
      const body = parseBody(AuthenticateBody, req.body);
      if (opts.authenticator) return opts.authenticator.authenticate(body, req.ip);
      return tokens(body.username, body.token_expiry_in_minutes, body.refresh_token_expiry_in_minutes);
    },
  );

  app.post(
    '/auth/refreshToken',
    {
      schema: describeRoute({
        ...memphis,
        summary: 'Refresh tokens (Memphis gateway)',
        body: RefreshBody,
        responses: { 200: { description: 'new tokens', schema: MemphisTokens } },
        errors: [401],
      }),
    },
    async (req) => {
      const body = parseBody(RefreshBody, req.body);
      if (opts.authenticator) return opts.authenticator.refresh(body);
      const username = usernameOf(body.jwt_refresh_token) ?? 'unknown';
      return tokens(username, body.token_expiry_in_minutes, body.refresh_token_expiry_in_minutes);
    },
  );

  app.get(
    '/monitoring/status',
    {
      schema: describeRoute({
        ...memphis,
        summary: 'Liveness (Memphis gateway)',
        responses: { 200: { description: 'up', schema: z.object({ status: z.literal('ok') }) } },
      }),
    },
    async () => ({ status: 'ok' }),
  );
};

function memphisErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, unexpected } = toApiError(error, request);
  if (unexpected) request.log.error({ err: error, reqId: request.id }, 'request failed');
  void reply.code(status).send({ success: false, error: body.message, code: body.code });
}

function rejectedStatus(code: string): number {
  return code === ErrorCode.MESSAGE_TOO_LARGE ? 413 : 400;
}

function stationOf(req: FastifyRequest): string {
  return parseBody(StationParams, req.params).station;
}

function singleHeader(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Every request header except transport and credential ones (EXCLUDED_HEADERS), names lowercase. */
export function messageHeaders(req: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name.startsWith(':') || EXCLUDED_HEADERS.has(name)) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** An unsigned JWT (`alg: none`): shaped like Memphis's tokens, verified by nothing. */
function unsignedJwt(username: string, kind: 'access' | 'refresh', minutes: number, now: number): string {
  const iat = Math.floor(now / 1000);
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub: username, username, type: kind, iss: 'junction-memphis-compat', iat, exp: iat + minutes * 60 })}.`;
}

function tokens(username: string, minutes: number, refreshMinutes: number) {
  const now = Date.now();
  return {
    jwt: unsignedJwt(username, 'access', minutes, now),
    /** milliseconds, as Memphis answered */
    expires_in: minutes * 60_000,
    jwt_refresh_token: unsignedJwt(username, 'refresh', refreshMinutes, now),
    refresh_token_expires_in: refreshMinutes * 60_000,
  };
}

function usernameOf(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const name = (parsed as { username?: unknown } | null)?.username;
    return typeof name === 'string' && name.length > 0 ? name : undefined;
  } catch {
    return undefined;
  }
}
