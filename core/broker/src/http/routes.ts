/**
 * The broker's HTTP API (`/v1/...`) as an encapsulated fastify plugin. It is handed a StationStore and
 * talks to nothing else. Every param, query and body is validated with the schemas of
 * @junction/protocol; errors answer `{ code, message, issues? }` (see ./errors.ts).
 *
 * Message values are bytes end to end: the JSON API carries them as `value` (UTF-8 text) or
 * `valueBase64`; NDJSON produce takes each line's raw bytes; the binary batch codec
 * (`application/vnd.junction.batch`) carries them untouched both ways. No value is ever JSON-parsed.
 */
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  AckBody,
  BATCH_CONTENT_TYPE,
  BatchDecodeError,
  BrowseQuery,
  ListQuery,
  StationListQuery,
  CreateGroupBody,
  CreateStationBody,
  DeadLetterBody,
  DlsPurgeBody,
  DlsReplayBody,
  FetchBody,
  GroupName,
  JsonProduceMessage,
  NackBody,
  ProduceBody,
  SeekBody,
  StationName,
  StationPatch,
  StationReplicas,
  decodeProduceBatch,
  deliveryId,
  encodeMessageBatch,
  encodePackedMessageBatch,
  isSystemStation,
  SYSTEM_STATION_PREFIX,
  type ProduceOutcome,
  type SettleOutcome,
  type WireMessage,
} from '@junction/protocol';
import type { Delivery, DeliveryChunk, MessageInput, ProduceResult, StationStore, StoredMessage } from '../contract.js';
import { CHUNK_FIELDS, ChunkField, dlsName, pageOfNames } from '../contract.js';
import { ErrorCode, JunctionError, isJunctionError } from '../errors.js';
import { describeRoute } from '@junction/openapi/describe';
import { bodyInvalid, errorHandler, parseBody } from './errors.js';
import {
  FetchAnswer,
  GroupInfoAnswer,
  GroupPageAnswer,
  MessagePageAnswer,
  ProduceAnswer,
  PurgeAnswer,
  ReplayAnswer,
  SettleAnswer,
  StationInfoAnswer,
  StationPageAnswer,
} from './answers.js';
import { AnswerBuffers } from './answer-buffers.js';
import { BodyGate, gateLargeBodies, type BodyConfig } from './limits.js';

/** Default largest produce body (any of the three encodings). */
export const DEFAULT_PRODUCE_BODY_LIMIT = 64 * 1024 * 1024;
/**
 * Largest JSON produce body (at most the produce limit): JSON.parse of a hostile body holds ~9× its size
 * (a 60 MB array of zeros is 550 MB of heap), so JSON takes less than NDJSON and binary batches, whose
 * decoding holds little more than the body. 16 MiB carries an 8 MiB message in base64.
 */
export const JSON_PRODUCE_BODY_LIMIT = 16 * 1024 * 1024;
/** Body limit of ack / nack / dead-letter: AckBody allows 100000 ids of up to 64 characters. */
export const SETTLE_BODY_LIMIT = 8 * 1024 * 1024;
/** Most messages one produce request may carry (same bound as ProduceBody). */
export const MAX_PRODUCE_MESSAGES = 100_000;
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

/** What the produce route reports to metrics. registerBrokerMetrics() returns one. */
export interface ProduceObserver {
  /** Called once per produce request that reached the store, with its duration. */
  observeProduce(station: string, seconds: number, messages: number): void;
}

export interface BrokerRoutesOptions {
  store: StationStore;
  /** Body limit of the produce route in bytes. Default 64 MiB. Other routes keep the server's limit. */
  bodyLimit?: number | undefined;
  /**
   * The budget of large bodies in flight, shared by every route that takes them (core/server passes one
   * to the broker's and the Memphis routes). Default: one of this plugin's own.
   */
  bodyGate?: BodyGate | undefined;
  /** Produce latency goes here (see registerBrokerMetrics). */
  metrics?: ProduceObserver | undefined;
  /**
   * The store keeps copies of stations on several servers (cluster mode) and takes the `replicas` station
   * option in create and update. Without it, a station body with `replicas` answers 400 CONFIG_INVALID
   * (path `replicas`): the embedded engine keeps one copy on its node.
   */
  replicas?: boolean | undefined;
}

/** A message as the JSON API answers it (browse, DLS browse). */
export interface JsonMessage {
  partition: number;
  offset: number;
  timestamp: number;
  key?: string;
  headers: Record<string, string>;
  value?: string;
  valueBase64?: string;
}
/** A delivery as the JSON API answers it (fetch). */
export interface JsonDelivery extends JsonMessage {
  deliveryId: string;
  deliveryCount: number;
}

const StationParams = z.strictObject({ station: StationName });
/** Station bodies with the cluster-only `replicas` (checked against the store in the route). */
const CreateStationRequest = CreateStationBody.extend({ replicas: StationReplicas.optional() });
const StationPatchRequest = StationPatch.extend({ replicas: StationReplicas.optional() });
const GroupParams = z.strictObject({ station: StationName, group: GroupName });
const DlsQuery = BrowseQuery.omit({ partition: true });
const PurgeQuery = z.strictObject({ upToOffset: z.coerce.number().int().min(1).optional() });

/** Per-message metadata of NDJSON/binary produce, held to the same bounds as JSON produce. */
const BinaryMessageMeta = z.object({
  key: JsonProduceMessage.shape.key,
  headers: JsonProduceMessage.shape.headers,
  msgId: JsonProduceMessage.shape.msgId,
});

/**
 * The broker's routes. Registers, in its own scope: the JSON parser (syntax errors answer 400
 * BODY_INVALID with the parser's message), `application/x-ndjson` and `application/vnd.junction.batch`
 * (as raw buffers); every other content type answers 415. Sets errorHandler in its scope too, so it
 * answers the same error shape when mounted without core/server.
 */
export const brokerRoutes: FastifyPluginAsync<BrokerRoutesOptions> = async (app, opts) => {
  const { store, metrics } = opts;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_PRODUCE_BODY_LIMIT;
  const jsonLimit = Math.min(bodyLimit, JSON_PRODUCE_BODY_LIMIT);
  const bodyGate = opts.bodyGate ?? new BodyGate();
  const gate = gateLargeBodies(bodyGate, bodyLimit);
  const settleGate = gateLargeBodies(bodyGate, SETTLE_BODY_LIMIT);
  const answerBuffers = new AnswerBuffers();
  app.setErrorHandler(errorHandler);
  app.removeAllContentTypeParsers();
  registerJsonParser(app);

  // ---- stations ----
  /** `replicas` is an option of replicated stations (cluster mode) only: a clear error elsewhere. */
  const checkReplicas = (replicas: number | undefined): void => {
    if (replicas === undefined || opts.replicas) return;
    throw new JunctionError(
      ErrorCode.CONFIG_INVALID,
      'replicas is an option of cluster mode (junction start --nats): this broker runs the embedded engine, which keeps one copy of each station on its node',
      {
        issues: [{ path: 'replicas', message: 'only in cluster mode' }],
      },
    );
  };

  app.post(
    '/v1/stations',
    {
      schema: describeRoute({
        summary: 'Create a station',
        description:
          "Options left out take their defaults. `replicas` is an option of cluster mode only. Names starting with `__` are Junction's own (422 STATION_RESERVED).",
        tags: ['stations'],
        body: CreateStationRequest,
        responses: { 201: { description: 'the station', schema: StationInfoAnswer } },
        errors: [409, 422],
      }),
    },
    async (req, reply) => {
      const { name, ...config } = parseBody(CreateStationRequest, req.body);
      refuseSystemStation(name);
      checkReplicas(config.replicas);
      const info = await store.createStation(name, config);
      return reply.code(201).send(info);
    },
  );

  app.get(
    '/v1/stations',
    {
      schema: describeRoute({
        summary: 'List stations',
        description:
          "A page in name order: at most `limit`, after the cursor `after`, starting with `prefix`. Junction's own stations (`__…`) only with `system=true`.",
        tags: ['stations'],
        query: StationListQuery,
        responses: { 200: { description: 'a page of stations', schema: StationPageAnswer } },
      }),
    },
    async (req) => {
      const { system, ...q } = parseBody(StationListQuery, req.query);
      const listed = page('stations', await store.listStations({ ...q, limit: q.limit + 1 }), q);
      // Junction's own stations only when asked for: the page may come out shorter, `next` still holds.
      if (system !== 'true') listed.stations = listed.stations.filter((s) => !isSystemStation(s.name));
      return listed;
    },
  );

  app.get(
    '/v1/stations/:station',
    {
      schema: describeRoute({
        summary: 'Get a station',
        description: 'Its options, partitions (offsets, messages, bytes), groups, health.',
        tags: ['stations'],
        params: StationParams,
        responses: { 200: { description: 'the station', schema: StationInfoAnswer } },
        errors: [404, 503],
      }),
    },
    async (req) => store.getStation(stationOf(req)),
  );

  app.patch(
    '/v1/stations/:station',
    {
      schema: describeRoute({
        summary: "Change a station's options",
        description:
          'Fields given are changed, the others kept (`deadLetter` field by field). `partitions` and `storage` are fixed at creation (422 CONFIG_IMMUTABLE); `schema: null` removes the schema binding.',
        tags: ['stations'],
        params: StationParams,
        body: StationPatchRequest,
        responses: { 200: { description: 'the station', schema: StationInfoAnswer } },
        errors: [404, 422],
      }),
    },
    async (req) => {
      const station = writableStationOf(req);
      const body: unknown = req.body;
      if (body && typeof body === 'object' && !Array.isArray(body)) {
        const fixed = ['partitions', 'storage'].filter((k) => Object.hasOwn(body, k));
        if (fixed.length > 0) {
          throw new JunctionError(ErrorCode.CONFIG_IMMUTABLE, `${fixed.join(' and ')} cannot change after a station is created`, {
            issues: fixed.map((path) => ({ path, message: 'fixed at creation' })),
          });
        }
      }
      const patch = parseBody(StationPatchRequest, body);
      checkReplicas(patch.replicas);
      return store.updateStation(station, patch);
    },
  );

  app.delete(
    '/v1/stations/:station',
    {
      schema: describeRoute({
        summary: 'Delete a station',
        description: 'With its messages, groups and dead-letter station.',
        tags: ['stations'],
        params: StationParams,
        responses: { 204: 'deleted' },
        errors: [404, 422],
      }),
    },
    async (req, reply) => {
      await store.deleteStation(writableStationOf(req));
      return reply.code(204).send();
    },
  );

  // ---- messages ----
  // Produce in a scope of its own: its parsers have the large limits (JSON less than the others).
  await app.register(async (scope: FastifyInstance) => {
    scope.removeAllContentTypeParsers();
    registerJsonParser(scope, jsonLimit);
    scope.addContentTypeParser([NDJSON_CONTENT_TYPE, BATCH_CONTENT_TYPE], { parseAs: 'buffer', bodyLimit }, (_req, body, done) =>
      done(null, body),
    );
    scope.post(
      '/v1/stations/:station/messages',
      {
        onRequest: gate,
        schema: describeRoute({
          summary: 'Produce messages',
          description:
            "Three encodings: JSON (`{ messages: [{ value | valueBase64, key?, headers?, msgId? }] }`, at most 16 MiB), NDJSON (`application/x-ndjson`: each line's raw bytes are one message) and the binary batch codec (`application/vnd.junction.batch`, see @junction/protocol). A `msgId` seen inside the dedup window is not stored again. One outcome per message.",
          tags: ['messages'],
          params: StationParams,
          body: ProduceBody,
          bodyContentTypes: ['application/json', NDJSON_CONTENT_TYPE, BATCH_CONTENT_TYPE],
          responses: { 200: { description: 'one outcome per message, in order', schema: ProduceAnswer } },
          errors: [404, 413, 415, 422, 503],
        }),
      },
      async (req, reply) => {
        const station = writableStationOf(req);
        const messages = produceInput(req);
        const started = process.hrtime.bigint();
        const results = await store.produce(station, messages);
        metrics?.observeProduce(station, Number(process.hrtime.bigint() - started) / 1e9, messages.length);
        return reply.type('application/json; charset=utf-8').send(produceAnswerJson(results));
      },
    );
  });

  app.get(
    '/v1/stations/:station/messages',
    {
      schema: describeRoute({
        summary: 'Browse a partition',
        description:
          'Messages of one partition from `fromOffset` (default: the first retained), without a consumer group. `Accept: application/vnd.junction.batch` answers the binary codec.',
        tags: ['messages'],
        params: StationParams,
        query: BrowseQuery,
        responses: {
          200: {
            description: 'a page of messages',
            schema: MessagePageAnswer,
            contentTypes: ['application/json'],
            headers: { [NEXT_OFFSET_HEADER]: 'the fromOffset of the next page' },
          },
        },
        errors: [404],
      }),
    },
    async (req, reply) => {
      const station = stationOf(req);
      const q = parseBody(BrowseQuery, req.query);
      const messages = await store.read(station, { partition: q.partition, fromOffset: fromOffsetOf(q.fromOffset), limit: q.limit });
      return answerMessages(req, reply, messages, q.encoding ?? 'utf8');
    },
  );

  // ---- consumer groups ----
  app.put(
    '/v1/stations/:station/groups/:group',
    {
      schema: describeRoute({
        summary: 'Create a consumer group',
        description: "Starting at `start` (default earliest); ack deadline and deliveries override the station's.",
        tags: ['groups'],
        params: GroupParams,
        body: CreateGroupBody,
        bodyRequired: false,
        responses: { 201: { description: 'the group', schema: GroupInfoAnswer } },
        errors: [404, 409],
      }),
    },
    async (req, reply) => {
      const { station, group } = groupOf(req);
      const body = parseBody(CreateGroupBody, req.body ?? {});
      const info = await store.createGroup(station, group, body);
      return reply.code(201).send(info);
    },
  );

  app.get(
    '/v1/stations/:station/groups',
    {
      schema: describeRoute({
        summary: "List a station's consumer groups",
        description: 'A page in name order, with lag, pending and dead-lettered counts.',
        tags: ['groups'],
        params: StationParams,
        query: ListQuery,
        responses: { 200: { description: 'a page of groups', schema: GroupPageAnswer } },
        errors: [404],
      }),
    },
    async (req) => {
      const station = stationOf(req);
      const q = parseBody(ListQuery, req.query);
      return page('groups', await store.listGroups(station, { ...q, limit: q.limit + 1 }), q);
    },
  );

  app.get(
    '/v1/stations/:station/groups/:group',
    {
      schema: describeRoute({
        summary: 'Get a consumer group',
        description: 'Per partition: next offset, ack floor, lag, pending, queued redeliveries.',
        tags: ['groups'],
        params: GroupParams,
        responses: { 200: { description: 'the group', schema: GroupInfoAnswer } },
        errors: [404],
      }),
    },
    async (req) => {
      const { station, group } = groupOf(req);
      return store.getGroup(station, group);
    },
  );

  app.delete(
    '/v1/stations/:station/groups/:group',
    {
      schema: describeRoute({
        summary: 'Delete a consumer group',
        tags: ['groups'],
        params: GroupParams,
        responses: { 204: 'deleted' },
        errors: [404],
      }),
    },
    async (req, reply) => {
      const { station, group } = groupOf(req);
      await store.deleteGroup(station, group);
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/stations/:station/groups/:group/fetch',
    {
      schema: describeRoute({
        summary: 'Fetch messages for a group',
        description:
          'Up to `maxMessages` / `maxBytes`, waiting up to `waitMs` for the first (long poll). Each delivery must be acked, nacked or dead-lettered before its ack deadline, or it comes back. `Accept: application/vnd.junction.batch` answers the binary codec.',
        tags: ['groups'],
        params: GroupParams,
        body: FetchBody,
        bodyRequired: false,
        responses: { 200: { description: 'the deliveries', schema: FetchAnswer } },
        errors: [404],
      }),
    },
    async (req, reply) => {
      const { station, group } = groupOf(req);
      const body = parseBody(FetchBody, req.body ?? {});
      // The binary answer from the packed chunks, when the engine has them: no Delivery object or
      // deliveryId string per message (the bytes are those of encodeMessageBatch on the deliveries).
      if (store.fetchChunks && wantsBatch(req)) {
        const chunks = await withDisconnectSignal(reply, (signal) =>
          store.fetchChunks!(station, group, { maxMessages: body.maxMessages, maxBytes: body.maxBytes, waitMs: body.waitMs, signal }),
        );
        if (chunks.length > 0)
          settleByAnswer(
            reply,
            async () => {},
            () => store.nack(station, group, chunkDeliveryIds(chunks)),
          );
        return reply.type(BATCH_CONTENT_TYPE).send(encodePackedMessageBatch(chunks, (n) => answerBuffers.lend(n, reply.raw)));
      }
      const deliveries = await withDisconnectSignal(reply, (signal) =>
        store.fetch(station, group, { maxMessages: body.maxMessages, maxBytes: body.maxBytes, waitMs: body.waitMs, signal }),
      );
      // Deliveries whose answer never reached the socket come back at once, not after their ack deadline.
      if (deliveries.length > 0)
        settleByAnswer(
          reply,
          async () => {},
          () =>
            store.nack(
              station,
              group,
              deliveries.map((d) => d.deliveryId),
            ),
        );
      // A delivery carries every field of a wire message: encoded as is, no per-message object.
      if (wantsBatch(req)) return reply.type(BATCH_CONTENT_TYPE).send(encodeMessageBatch(deliveries));
      return { messages: deliveries.map((d) => jsonDelivery(d, body.encoding)) };
    },
  );

  app.post(
    '/v1/stations/:station/groups/:group/ack',
    {
      bodyLimit: SETTLE_BODY_LIMIT,
      onRequest: settleGate,
      schema: describeRoute({
        summary: 'Acknowledge deliveries',
        description:
          'One outcome per delivery id (`unknown`: no such delivery; `stale`: it was redelivered since); with `summary: true` only the count and the other outcomes.',
        tags: ['groups'],
        params: GroupParams,
        body: AckBody,
        responses: { 200: { description: 'the outcomes', schema: SettleAnswer } },
        errors: [404, 413],
      }),
    },
    async (req) => {
      const { station, group } = groupOf(req);
      const body = parseBody(AckBody, req.body);
      return settleAnswer(await store.ack(station, group, body.deliveryIds), 'acked', body.summary);
    },
  );

  app.post(
    '/v1/stations/:station/groups/:group/nack',
    {
      bodyLimit: SETTLE_BODY_LIMIT,
      onRequest: settleGate,
      schema: describeRoute({
        summary: 'Give deliveries back (redelivered after `delayMs`)',
        description:
          'One outcome per delivery id (`unknown`: no such delivery; `stale`: it was redelivered since); with `summary: true` only the count and the other outcomes.',
        tags: ['groups'],
        params: GroupParams,
        body: NackBody,
        responses: { 200: { description: 'the outcomes', schema: SettleAnswer } },
        errors: [404, 413],
      }),
    },
    async (req) => {
      const { station, group } = groupOf(req);
      const body = parseBody(NackBody, req.body);
      return settleAnswer(await store.nack(station, group, body.deliveryIds, body.delayMs), 'nacked', body.summary);
    },
  );

  app.post(
    '/v1/stations/:station/groups/:group/dead-letter',
    {
      bodyLimit: SETTLE_BODY_LIMIT,
      onRequest: settleGate,
      schema: describeRoute({
        summary: 'Dead-letter deliveries',
        description:
          'One outcome per delivery id (`unknown`: no such delivery; `stale`: it was redelivered since); with `summary: true` only the count and the other outcomes.',
        tags: ['groups'],
        params: GroupParams,
        body: DeadLetterBody,
        responses: { 200: { description: 'the outcomes', schema: SettleAnswer } },
        errors: [404, 413],
      }),
    },
    async (req) => {
      const { station, group } = groupOf(req);
      const body = parseBody(DeadLetterBody, req.body);
      return settleAnswer(await store.deadLetter(station, group, body.deliveryIds, body.reason), 'dead-lettered', body.summary);
    },
  );

  /** One outcome per id, or with `summary` the count of the verb's own status and the others. */
  function settleAnswer(results: SettleOutcome[], status: SettleOutcome['status'], summary: boolean | undefined) {
    if (!summary) return { results };
    const others = results.filter((r) => r.status !== status);
    return { count: results.length - others.length, results: others };
  }

  app.post(
    '/v1/stations/:station/groups/:group/seek',
    {
      schema: describeRoute({
        summary: 'Move a consumer group',
        description: 'To the earliest or latest message, an offset (of one partition or all) or a timestamp.',
        tags: ['groups'],
        params: GroupParams,
        body: SeekBody,
        responses: { 200: { description: 'the group', schema: GroupInfoAnswer } },
        errors: [404],
      }),
    },
    async (req) => {
      const { station, group } = groupOf(req);
      return store.seek(station, group, parseBody(SeekBody, req.body));
    },
  );

  // ---- dead-letter station ----
  app.get(
    '/v1/stations/:station/dls',
    {
      schema: describeRoute({
        summary: 'Browse dead letters',
        description:
          "The station's dead-letter station, oldest first across its partitions. Each dead letter keeps the original bytes and headers plus `junction-dls-*` headers: reason, code, group, attempts, original partition / offset.",
        tags: ['dead-letters'],
        params: StationParams,
        query: DlsQuery,
        responses: { 200: { description: 'a page of dead letters', schema: MessagePageAnswer } },
        errors: [404],
      }),
    },
    async (req, reply) => {
      const station = stationOf(req);
      const q = parseBody(DlsQuery, req.query);
      await store.getStation(station); // 404 names the station asked for, not its DLS
      const dls = dlsName(station);
      let partitions: number[];
      try {
        partitions = (await store.getStation(dls)).partitions.map((p) => p.partition);
      } catch (err) {
        // A station whose dead-lettering is off may have no DLS: it simply holds no dead letters.
        if (isJunctionError(err) && err.code === ErrorCode.STATION_NOT_FOUND) partitions = [];
        else throw err;
      }
      let messages: StoredMessage[] = [];
      for (const partition of partitions) {
        const read = await store.read(dls, { partition, fromOffset: fromOffsetOf(q.fromOffset), limit: q.limit });
        // Copied: a read's values may be views into a buffer the next read reuses.
        messages.push(...(partitions.length > 1 ? read.map((m) => ({ ...m, value: Buffer.from(m.value) })) : read));
      }
      if (partitions.length > 1) {
        messages.sort((a, b) => a.timestamp - b.timestamp || a.partition - b.partition || a.offset - b.offset);
        messages = messages.slice(0, q.limit);
      }
      return answerMessages(req, reply, messages, q.encoding ?? 'utf8');
    },
  );

  app.post(
    '/v1/stations/:station/dls/replay',
    {
      schema: describeRoute({
        summary: 'Replay dead letters',
        description:
          'Produces them to the station again (to every group, or only `group`), optionally a range of DLS offsets; `purge` removes them from the DLS afterwards.',
        tags: ['dead-letters'],
        params: StationParams,
        body: DlsReplayBody,
        bodyRequired: false,
        responses: { 200: { description: 'how many', schema: ReplayAnswer } },
        errors: [404, 422],
      }),
    },
    async (req) => {
      const station = writableStationOf(req);
      const body = parseBody(DlsReplayBody, req.body ?? {});
      return store.replayDeadLetters(station, body);
    },
  );

  app.delete(
    '/v1/stations/:station/dls',
    {
      config: { acceptsBody: true } satisfies BodyConfig,
      schema: describeRoute({
        summary: 'Purge dead letters',
        description: 'All, or up to `upToOffset` (in the query or the body).',
        tags: ['dead-letters'],
        params: StationParams,
        query: PurgeQuery,
        body: DlsPurgeBody,
        bodyRequired: false,
        responses: { 200: { description: 'how many were removed', schema: PurgeAnswer } },
        errors: [404, 422],
      }),
    },
    async (req) => {
      const station = writableStationOf(req);
      const fromBody = req.body === undefined ? undefined : parseBody(DlsPurgeBody, req.body).upToOffset;
      const fromQuery = parseBody(PurgeQuery, req.query).upToOffset;
      if (fromBody !== undefined && fromQuery !== undefined && fromBody !== fromQuery) {
        throw bodyInvalid('upToOffset', 'given in both the query and the body with different values');
      }
      return { purged: await store.purgeDeadLetters(station, fromBody ?? fromQuery) };
    },
  );
};

// ---------------------------------------------------------------------------------------------
// helpers (exported for memphis.ts; not part of the package's public face)

/**
 * One page of a listing: `{ [key]: items, next? }`, `next` being the cursor (`after`) of the following
 * page when there is one. Applies the query to what the engine answered (an engine may ignore options).
 */
function page<K extends string, T extends { name?: string; group?: string }>(
  key: K,
  items: T[],
  q: z.output<typeof ListQuery>,
): Record<K, T[]> & { next?: string } {
  const nameOf = (i: T): string => i.name ?? i.group ?? '';
  const byName = new Map(items.map((i) => [nameOf(i), i]));
  const names = pageOfNames(byName.keys(), { after: q.after, prefix: q.prefix, limit: q.limit + 1 });
  const more = names.length > q.limit;
  const kept = more ? names.slice(0, q.limit) : names;
  const out = { [key]: kept.map((n) => byName.get(n)!) } as Record<K, T[]> & { next?: string };
  if (more) out.next = kept[kept.length - 1]!;
  return out;
}

/**
 * Replaces fastify's JSON parser in `app`'s scope with one that answers 400 BODY_INVALID carrying
 * the syntax error, and treats an empty body as no body (clients send `Content-Type: application/json`
 * on bodiless POST/DELETE). Keeps fastify's protection against `__proto__` / `constructor.prototype` keys.
 */
export function registerJsonParser(app: FastifyInstance, bodyLimit?: number): void {
  const base = app.getDefaultJsonParser('error', 'error');
  if (app.hasContentTypeParser('application/json')) app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', ...(bodyLimit !== undefined && { bodyLimit }) }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    // The default JSON parser answers through the callback; its type allows a promise it never returns.
    void base(req, text, (err, value) => {
      if (!err) {
        done(null, value);
        return;
      }
      let message: string;
      try {
        JSON.parse(text);
        message = 'body has a forbidden "__proto__" or "constructor.prototype" key';
      } catch (syntax) {
        message = `body is not valid JSON: ${(syntax as Error).message}`;
      }
      done(new JunctionError(ErrorCode.BODY_INVALID, message), undefined);
    });
  });
}

/** The media type of the request (lowercase, without parameters), '' when absent. */
export function mediaTypeOf(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** True when the Accept header lists the binary batch type (with q > 0). */
export function wantsBatch(req: FastifyRequest): boolean {
  const accept = req.headers.accept;
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';');
    if (type?.trim().toLowerCase() !== BATCH_CONTENT_TYPE) return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

function stationOf(req: FastifyRequest): string {
  return parseBody(StationParams, req.params).station;
}
/** The station of a route that writes to it or changes it: never one of Junction's own (`__…`). */
export function writableStationOf(req: FastifyRequest): string {
  return refuseSystemStation(stationOf(req));
}
export function refuseSystemStation(station: string): string {
  if (isSystemStation(station)) {
    throw new JunctionError(
      ErrorCode.STATION_RESERVED,
      `station "${station}" belongs to Junction (names starting with "${SYSTEM_STATION_PREFIX}" are reserved): it can be read, not written, changed or deleted through the API`,
    );
  }
  return station;
}
function groupOf(req: FastifyRequest): { station: string; group: string } {
  return parseBody(GroupParams, req.params);
}

/** Offsets start at 1; `fromOffset=0` means "from the first retained offset". */
function fromOffsetOf(fromOffset: number | undefined): number | undefined {
  return fromOffset === 0 ? undefined : fromOffset;
}

/**
 * Runs a long poll with a signal that fires when the client goes away before the answer is sent,
 * so a dropped connection ends the wait instead of holding deliveries for nobody.
 */
/**
 * Settles what an answer carries by what became of the answer: `written` once it was handed to the
 * socket in full, `giveBack` when the client went away first (the connection closed before the answer was
 * written, or had already closed when the deliveries were taken). Exactly one of the two runs; its
 * failure is logged. "Written" means handed to the operating system: a client that vanishes after that
 * may still miss the answer (what an ack-on-delivery protocol cannot avoid).
 */
export function settleByAnswer(reply: FastifyReply, written: () => Promise<unknown>, giveBack: () => Promise<unknown>): void {
  const res = reply.raw;
  let done = false;
  const settle = (ok: boolean): void => {
    if (done) return;
    done = true;
    res.off('finish', onFinish);
    res.off('close', onClose);
    (ok ? written : giveBack)().catch((err: unknown) =>
      reply.log.warn({ err }, ok ? 'settling the deliveries of an answer failed' : 'giving back the deliveries of an unsent answer failed'),
    );
  };
  // A client that closed its side of the connection (FIN) will not read the answer, whatever the write
  // did: it counts as gone (one that half-closes and still reads gets the messages again: a duplicate,
  // never a loss).
  const clientGone = (): boolean => {
    const sock = reply.request.raw.socket as { destroyed?: boolean; readableEnded?: boolean } | null | undefined;
    return sock?.destroyed === true || sock?.readableEnded === true;
  };
  const onFinish = (): void => settle(!clientGone());
  const onClose = (): void => settle(res.writableFinished && !clientGone());
  if (res.destroyed || clientGone()) {
    settle(false);
    return;
  }
  res.on('finish', onFinish);
  res.on('close', onClose);
}

/** The deliveryIds of packed deliveries, in order (what `fetch` would have given them). */
export function chunkDeliveryIds(chunks: readonly DeliveryChunk[]): string[] {
  const ids: string[] = [];
  for (const c of chunks) {
    for (let i = 0; i < c.count; i++)
      ids.push(c.deliveryIds?.[i] ?? deliveryId(c.partition, c.nums[i * CHUNK_FIELDS + ChunkField.offset]!, c.attempts?.[i] ?? 1, c.epoch));
  }
  return ids;
}

export async function withDisconnectSignal<T>(reply: FastifyReply, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableEnded) controller.abort();
  };
  res.on('close', onClose);
  try {
    return await run(controller.signal);
  } finally {
    res.off('close', onClose);
  }
}

function produceInput(req: FastifyRequest): MessageInput[] {
  const type = mediaTypeOf(req);
  if (type === NDJSON_CONTENT_TYPE) return ndjsonMessages(req.body);
  if (type === BATCH_CONTENT_TYPE) return binaryMessages(req.body);
  const body = parseBody(ProduceBody, req.body);
  return body.messages.map((m) => {
    const out: MessageInput = {
      value: m.valueBase64 !== undefined ? Buffer.from(m.valueBase64, 'base64') : Buffer.from(m.value ?? '', 'utf8'),
    };
    if (m.key !== undefined) out.key = m.key;
    if (m.headers !== undefined) out.headers = m.headers;
    if (m.msgId !== undefined) out.msgId = m.msgId;
    return out;
  });
}

/**
 * NDJSON produce: every `\n` ends a message whose value is the line's raw bytes (a `\r` before the
 * `\n` is dropped). The last line needs no `\n`, and a final `\n` does not make an empty message; an
 * empty line in the middle is an empty message, so the lines come back byte for byte. Stops after
 * `max` + 1 lines (a body of newlines would otherwise be millions of objects).
 */
export function splitLines(buf: Buffer, max = Number.MAX_SAFE_INTEGER): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  while (start < buf.length && lines.length <= max) {
    const nl = buf.indexOf(0x0a, start);
    if (nl === -1) {
      lines.push(buf.subarray(start));
      break;
    }
    const end = nl > start && buf[nl - 1] === 0x0d ? nl - 1 : nl;
    lines.push(buf.subarray(start, end));
    start = nl + 1;
  }
  return lines;
}

function ndjsonMessages(body: unknown): MessageInput[] {
  const lines = Buffer.isBuffer(body) ? splitLines(body, MAX_PRODUCE_MESSAGES) : [];
  if (lines.length === 0) throw bodyInvalid('', 'an NDJSON body needs at least one line');
  if (lines.length > MAX_PRODUCE_MESSAGES) throw bodyInvalid('', `at most ${MAX_PRODUCE_MESSAGES} messages per request`);
  return lines.map((value) => ({ value }));
}

function binaryMessages(body: unknown): MessageInput[] {
  let decoded;
  try {
    decoded = decodeProduceBatch(Buffer.isBuffer(body) ? body : Buffer.alloc(0), MAX_PRODUCE_MESSAGES);
  } catch (err) {
    if (err instanceof BatchDecodeError) throw bodyInvalid(`messages[${err.index}]`, err.message);
    throw err;
  }
  if (decoded.length === 0) throw bodyInvalid('', 'a binary batch needs at least one message');
  return decoded.map((m, i) => {
    // A bare message (no key, msgId or headers: most of them) has nothing zod could refuse.
    if (isBare(m)) return { value: m.value };
    parseBody(BinaryMessageMeta, { key: m.key, headers: m.headers, msgId: m.msgId }, `messages[${i}]`);
    const out: MessageInput = { value: m.value };
    if (m.key !== undefined) out.key = m.key;
    if (m.headers !== undefined && Object.keys(m.headers).length > 0) out.headers = m.headers;
    if (m.msgId !== undefined) out.msgId = m.msgId;
    return out;
  });
}

function isBare(m: { key?: string; msgId?: string; headers?: Record<string, string> }): boolean {
  if (m.key !== undefined || m.msgId !== undefined) return false;
  for (const _ in m.headers) return false;
  return true;
}

/**
 * The produce answer's JSON text: exactly `JSON.stringify({ results: results.map(toOutcome) })` (a
 * property test holds them equal), with the stored and duplicate outcomes — numbers in a fixed template —
 * written without an object per message (half the cost of the objects and their serialization at 1000
 * messages a request); a rejection, which carries text, goes through JSON.stringify.
 */
export function produceAnswerJson(results: readonly ProduceResult[]): string {
  let s = '{"results":[';
  for (let i = 0; i < results.length; i++) {
    const r = results[i] as ProduceResult;
    if (i > 0) s += ',';
    if (r.status === 'stored') s += `{"partition":${r.partition},"offset":${r.offset}}`;
    else if (r.status === 'duplicate') s += `{"duplicate":true,"partition":${r.partition},"offset":${r.offset}}`;
    else s += JSON.stringify(toOutcome(r));
  }
  return `${s}]}`;
}

/** Maps the store's per-message result to the API's outcome. */
export function toOutcome(r: ProduceResult): ProduceOutcome {
  switch (r.status) {
    case 'stored':
      return { partition: r.partition, offset: r.offset };
    case 'duplicate':
      return { duplicate: true, partition: r.partition, offset: r.offset };
    case 'rejected':
      return { error: { code: r.code, message: r.message } };
  }
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** `value` when the bytes are valid UTF-8 and base64 was not asked for; `valueBase64` otherwise. */
export function jsonMessage(m: StoredMessage, encoding: 'utf8' | 'base64'): JsonMessage {
  const out: JsonMessage = { partition: m.partition, offset: m.offset, timestamp: m.timestamp, headers: m.headers };
  if (m.key !== undefined) out.key = m.key;
  const value = asBuffer(m.value);
  if (encoding !== 'base64' && isUtf8(value)) out.value = value.toString('utf8');
  else out.valueBase64 = value.toString('base64');
  return out;
}

function jsonDelivery(d: Delivery, encoding: 'utf8' | 'base64'): JsonDelivery {
  return { deliveryId: d.deliveryId, ...jsonMessage(d, encoding), deliveryCount: d.deliveryCount };
}

function toWire(m: StoredMessage, deliveryCount: number, deliveryId: string): WireMessage {
  const w: WireMessage = {
    partition: m.partition,
    offset: m.offset,
    timestamp: m.timestamp,
    deliveryCount,
    deliveryId,
    headers: m.headers,
    value: m.value,
  };
  if (m.key !== undefined) w.key = m.key;
  return w;
}

/**
 * A page of stored messages. `next` (also the `junction-next-offset` header) is the `fromOffset` of the
 * page after it: the last offset + 1 when the page holds messages, absent when it is empty — read until
 * an empty page to reach the current end (a page may hold fewer than `limit` when it hits the byte cap).
 */
function answerMessages(req: FastifyRequest, reply: FastifyReply, messages: StoredMessage[], encoding: 'utf8' | 'base64') {
  const last = messages.at(-1);
  const next = last ? last.offset + 1 : undefined;
  if (next !== undefined) reply.header(NEXT_OFFSET_HEADER, String(next));
  if (wantsBatch(req)) return reply.type(BATCH_CONTENT_TYPE).send(encodeMessageBatch(messages.map((m) => toWire(m, 0, ''))));
  return { messages: messages.map((m) => jsonMessage(m, encoding)), ...(next !== undefined ? { next } : {}) };
}

/** Response header of a message page: the `fromOffset` of the page after it. */
export const NEXT_OFFSET_HEADER = 'junction-next-offset';
