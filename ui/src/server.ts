/**
 * The dashboard as a fastify plugin: the built single-page app (static, public: the login page must
 * load without a token) and the API only the dashboard needs (its live streams and a sortable station
 * listing). Every data route is under /v1 and goes through the server's access hook like the rest.
 *
 * | route | answer |
 * | --- | --- |
 * | `GET /`, `/login`, `/stations`, `/stations/*`, `/dead-letters`, `/connectors`, `/connectors/*`, `/schemas`, `/users` | the app's index.html (client routes) |
 * | `GET /assets/*` | the app's built files (immutable names) |
 * | `GET /v1/live/overview` | with `Accept: text/event-stream`: SSE, `event: snapshot` with an OverviewSnapshot every interval (when it changed); otherwise the current snapshot as JSON |
 * | `GET /v1/live/stations/:station` | SSE: StationSnapshot of one station (404 STATION_NOT_FOUND before the stream starts) |
 * | `GET /v1/live/connectors` | SSE: ConnectorsSnapshot |
 * | `GET /v1/dashboard/stations?q&sort&order&offset&limit` | `{ total, offset, stations: [StationRow] }`: filtered (substring of the name), sorted, one page |
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { errorHandler, parseBody } from '@junction/broker';
import type { StationInfo, StationStore } from '@junction/broker';
import { StationName, isSystemStation } from '@junction/protocol';
import { describeRoute } from '@junction/openapi/describe';
import { ConnectorsAnswer, OverviewAnswer, StationRowsAnswer, StationSnapshotAnswer } from './answers.js';
import { LiveHub } from './live.js';
import type { LiveHubOptions } from './live.js';
import { ConnectorsSampler, OverviewSampler, StationSampler, allStations } from './snapshots.js';
import type { ConnectorsSource } from './snapshots.js';

/** The client routes of the app: each answers index.html (the app routes itself in the browser). */
export const UI_PAGES = [
  '/',
  '/login',
  '/stations',
  '/stations/:station',
  '/stations/:station/:tab',
  '/dead-letters',
  '/connectors',
  '/connectors/:name',
  '/schemas',
  '/users',
] as const;
/** Where the built files are served (`/assets/:file`: Vite puts them in one flat folder). */
export const ASSETS_PREFIX = '/assets/';

/** Path parameters of the pages (the app reads them; the server answers the same page for any). */
const PageParams = z.object({ station: z.string().optional(), tab: z.string().optional(), name: z.string().optional() });
const AssetParams = z.strictObject({ file: z.string().describe('a built file, e.g. index-CEDfTQWC.js') });

/** `GET /v1/live/stations/:station` params. */
export const LiveStationParams = z.strictObject({ station: StationName });

/** `GET /v1/dashboard/stations` query. */
export const DashboardStationsQuery = z.strictObject({
  /** Keep stations whose name contains this (case-insensitive). */
  q: z.string().max(200).optional(),
  sort: z.enum(['name', 'messages', 'bytes', 'partitions', 'groups', 'deadLetters', 'createdAt']).default('name'),
  order: z.enum(['asc', 'desc']).default('asc'),
  offset: z.coerce.number().int().min(0).max(10_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** One row of `GET /v1/dashboard/stations`. */
export interface StationRow {
  name: string;
  partitions: number;
  messages: number;
  bytes: number;
  groups: number;
  deadLetters: number;
  createdAt: number;
  health: 'ok' | 'degraded' | 'damaged';
}

export interface UiRoutesOptions {
  store: StationStore;
  /** The connector runtime (connector rows in the overview, the connectors stream). */
  connectors?: ConnectorsSource | undefined;
  /** The built app (index.html and assets/). Default: this package's dist/web. */
  webRoot?: string | undefined;
  live?: LiveHubOptions | undefined;
  /** Whether the request's principal may read every connector (auth on); default: yes. */
  canReadConnectors?: ((request: FastifyRequest) => boolean) | undefined;
  /** The hub the streams use (default: one of the plugin's own, closed with the app). */
  hub?: LiveHub | undefined;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** The app's own files only; scripts from this origin only (no CDN: the app works offline). */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** The default web root: dist/web beside this file (dist/server.js). */
export function defaultWebRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'web');
}

async function filesUnder(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let entries;
  try {
    entries = await readdir(root, { recursive: true, withFileTypes: true });
  } catch {
    return out; // not built
  }
  for (const e of entries) {
    if (!e.isFile()) continue;
    const full = join(e.parentPath, e.name);
    out.set(relative(root, full).split(sep).join('/'), await readFile(full));
  }
  return out;
}

function rowOf(s: StationInfo, dls: Map<string, number>): StationRow {
  return {
    name: s.name,
    partitions: s.partitions.length,
    messages: s.messages,
    bytes: s.bytes,
    groups: s.groups.length,
    deadLetters: dls.get(s.name) ?? 0,
    createdAt: s.createdAt,
    health: s.health?.status ?? 'ok',
  };
}

/** How long the station listing's rows are reused between requests (scrolling asks for many pages). */
const ROWS_TTL_MS = 1000;

/**
 * The dashboard plugin. Register it in the server's root scope after the access hook. Reads the built
 * app into memory once (a few hundred kB); serves nothing from disk per request, so no request path
 * ever reaches the file system.
 */
export const uiRoutes: FastifyPluginAsync<UiRoutesOptions> = async (app, opts) => {
  const { store } = opts;
  app.setErrorHandler(errorHandler);
  const hub = opts.hub ?? new LiveHub({ ...opts.live, onError: (key, err) => app.log.warn({ err, stream: key }, 'live snapshot failed') });
  app.addHook('onClose', async () => hub.close());

  const files = await filesUnder(opts.webRoot ?? defaultWebRoot());
  const index = files.get('index.html');

  const sendIndex = async (_req: FastifyRequest, reply: FastifyReply) => {
    if (!index) {
      return reply
        .code(503)
        .send({ code: 'UI_NOT_BUILT', message: 'the dashboard is not built: run `npm run build` (it builds @junction/ui with vite)' });
    }
    return reply
      .type(CONTENT_TYPES['.html']!)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .send(index);
  };
  const html = { 200: { description: "the dashboard's index.html", contentTypes: ['text/html'] } };
  for (const page of UI_PAGES) {
    const params = [...page.matchAll(/:([a-z]+)/g)].map((m) => m[1]!);
    const schema = describeRoute({
      summary: `The dashboard page ${page}`,
      description: "Public: the app (HTML) holds no data; it reads everything through the /v1 API with the user's token.",
      tags: ['dashboard'],
      ...(params.length > 0 && { params: PageParams.pick(Object.fromEntries(params.map((n) => [n, true])) as never).required() }),
      responses: html,
      errors: [503],
    });
    app.get(page, { logLevel: 'warn', schema }, sendIndex);
  }

  app.get(
    `${ASSETS_PREFIX}:file`,
    {
      logLevel: 'warn',
      schema: describeRoute({
        summary: 'A built file of the dashboard (hashed name, immutable)',
        tags: ['dashboard'],
        params: AssetParams,
        responses: { 200: { description: 'the file', contentTypes: ['text/javascript', 'text/css'] } },
        errors: [404],
      }),
    },
    async (req, reply) => {
      const name = parseBody(AssetParams, req.params).file;
      const body = files.get(`assets/${name}`);
      if (!body) return reply.callNotFound();
      return reply
        .type(CONTENT_TYPES[extname(name)] ?? 'application/octet-stream')
        .header('cache-control', 'public, max-age=31536000, immutable')
        .header('x-content-type-options', 'nosniff')
        .send(body);
    },
  );

  // ---- live streams ----
  const overviewKey = (withConnectors: boolean) => (withConnectors ? 'overview' : 'overview:stations');
  // A client that asks for an event stream gets one; any other request gets the current snapshot as
  // JSON (`curl`, scripts, a probe) and its answer ends.
  const stream = async (req: FastifyRequest, reply: FastifyReply, key: string, make: () => { sample(): Promise<unknown> }) => {
    if (!(req.headers.accept ?? '').includes('text/event-stream')) return reply.send(await hub.snapshot(key, make));
    reply.hijack();
    if (!hub.subscribe(key, reply.raw, make)) {
      reply.raw.writeHead(503, { 'content-type': 'application/json; charset=utf-8' });
      reply.raw.end(JSON.stringify({ code: 'LIVE_FULL', message: 'too many live streams are open: retry later' }));
    }
    return reply;
  };

  const sse = (what: string, schema: z.ZodType) => ({
    200: {
      description: `with \`Accept: text/event-stream\`: Server-Sent Events, \`event: snapshot\` frames of ${what} (when it changed); otherwise the current snapshot as JSON`,
      schema,
      contentTypes: ['text/event-stream', 'application/json'],
    },
  });
  app.get(
    '/v1/live/overview',
    {
      schema: describeRoute({
        summary: 'Follow the overview (live)',
        tags: ['dashboard'],
        responses: sse('the overview', OverviewAnswer),
        errors: [503],
      }),
    },
    async (req, reply) => {
      const withConnectors = opts.connectors !== undefined && (opts.canReadConnectors?.(req) ?? true);
      return stream(
        req,
        reply,
        overviewKey(withConnectors),
        () => new OverviewSampler(store, withConnectors ? opts.connectors : undefined),
      );
    },
  );

  app.get(
    '/v1/live/stations/:station',
    {
      schema: describeRoute({
        summary: 'Follow a station (live)',
        tags: ['dashboard'],
        params: LiveStationParams,
        responses: sse('the station, its groups and rates', StationSnapshotAnswer),
        errors: [404, 503],
      }),
    },
    async (req, reply) => {
      const { station } = parseBody(LiveStationParams, req.params);
      await store.getStation(station); // 404 before the stream starts
      return stream(req, reply, `station:${station}`, () => new StationSampler(store, station));
    },
  );

  app.get(
    '/v1/live/connectors',
    {
      schema: describeRoute({
        summary: 'Follow the connectors (live)',
        tags: ['dashboard'],
        responses: sse("every connector's status", ConnectorsAnswer),
        errors: [404, 503],
      }),
    },
    async (req, reply) => {
      const connectors = opts.connectors;
      if (!connectors) return reply.callNotFound();
      return stream(req, reply, 'connectors', () => new ConnectorsSampler(connectors));
    },
  );

  // ---- the station listing: filter, sort and page on the server ----
  let cached: { at: number; rows: Promise<StationRow[]> } | undefined;
  const rows = (): Promise<StationRow[]> => {
    const now = Date.now();
    if (!cached || now - cached.at > ROWS_TTL_MS) {
      const p = allStations(store).then((all) => {
        const dls = new Map<string, number>();
        for (const s of all) if (s.deadLetterOf !== undefined) dls.set(s.deadLetterOf, s.messages);
        return all.filter((s) => !isSystemStation(s.name) && s.deadLetterOf === undefined).map((s) => rowOf(s, dls));
      });
      cached = { at: now, rows: p };
      p.catch(() => {
        if (cached?.rows === p) cached = undefined;
      });
    }
    return cached.rows;
  };

  app.get(
    '/v1/dashboard/stations',
    {
      schema: describeRoute({
        summary: "List stations filtered, sorted and paged (the dashboard's station list)",
        tags: ['dashboard', 'stations'],
        query: DashboardStationsQuery,
        responses: { 200: { description: 'one page and the total', schema: StationRowsAnswer } },
      }),
    },
    async (req) => {
      const q = parseBody(DashboardStationsQuery, req.query);
      let list = await rows();
      if (q.q) {
        const needle = q.q.toLowerCase();
        list = list.filter((r) => r.name.toLowerCase().includes(needle));
      }
      const key = q.sort;
      const dir = q.order === 'asc' ? 1 : -1;
      const sorted =
        key === 'name'
          ? dir === 1
            ? list // already in name order
            : [...list].reverse()
          : [...list].sort((a, b) => (a[key] - b[key]) * dir || (a.name < b.name ? -1 : 1));
      return { total: sorted.length, offset: q.offset, stations: sorted.slice(q.offset, q.offset + q.limit) };
    },
  );
};
