/**
 * The OpenAPI document (`/v1/openapi.json`) and the reference page (`/docs`) of the fully wired server:
 * every route fastify registered is in the document with a summary and its path parameters, the document
 * is valid OpenAPI 3.1 (a maintained validator says so), and both are open even with auth on.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Validator } from '@seriousme/openapi-schema-validator';
import { EmbeddedStore } from '@junction/broker';
import { startNatsCluster, type NatsCluster } from '@junction/e2e';
import { buildApp, routesOf, startServer } from '../src/index.js';
import type { RunningServer } from '../src/index.js';

const logger = pino({ level: 'silent' });
const ADMIN_PASSWORD = 'admin-password-123';

type Operation = {
  summary?: string;
  tags?: string[];
  parameters?: { in: string; name: string }[];
  responses?: Record<string, unknown>;
  security?: unknown[];
  requestBody?: any;
};
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>>; components: any };

/** The reference page's own routes (the UI's files): not API, so not in the document. */
const DOCS_UI = /^\/docs(\/|$)/;

/**
 * fastify's `/a/:b` as OpenAPI's `/a/{b}`, without a trailing slash: fastify serves a prefixed plugin's
 * `/` route at both `/prefix` and `/prefix/` (the schema registry's root), and fastify-swagger lists it once.
 */
const openapiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/(.)\/$/, '$1');

/** The document's operations keyed by `method path`, paths as openapiPath makes them. */
function operations(doc: Doc): Map<string, Operation> {
  const out = new Map<string, Operation>();
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item)) out.set(`${method} ${path.replace(/(.)\/$/, '$1')}`, op);
  return out;
}

/**
 * What the document lacks: each route (HEAD routes, which fastify adds for GET ones, aside) must be an
 * operation with a summary, a tag, and one path parameter per `:param` of its URL.
 */
function gaps(routes: readonly { method: string; url: string }[], doc: Doc): string[] {
  const out: string[] = [];
  const ops = operations(doc);
  for (const r of routes) {
    if (r.method === 'HEAD' || DOCS_UI.test(r.url)) continue;
    const key = `${r.method} ${r.url}`;
    const op = ops.get(`${r.method.toLowerCase()} ${openapiPath(r.url)}`);
    if (!op) {
      out.push(`${key}: not in the document`);
      continue;
    }
    if (!op.summary) out.push(`${key}: no summary`);
    if (!op.tags?.length) out.push(`${key}: no tag`);
    for (const [, name] of r.url.matchAll(/:([A-Za-z0-9_]+)/g)) {
      if (!op.parameters?.some((p) => p.in === 'path' && p.name === name)) out.push(`${key}: path parameter ${name} not described`);
    }
  }
  return out;
}

describe.each(['embedded', 'cluster'] as const)('the OpenAPI document of the fully wired server (%s engine, auth on)', (engine) => {
  let dir: string;
  let server: RunningServer;
  let nats: NatsCluster | undefined;
  let doc: Doc;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-openapi-'));
    let configPath: string | undefined;
    if (engine === 'cluster') {
      nats = await startNatsCluster({ nodes: 1 });
      configPath = join(dir, 'junction.yaml');
      await writeFile(
        configPath,
        JSON.stringify({ server: { dataDir: join(dir, 'data') }, cluster: { nats: { servers: nats.servers, replicas: 1 } } }),
      );
    }
    server = await startServer({
      configPath,
      dataDir: join(dir, 'data'),
      host: '127.0.0.1',
      port: 0,
      logger,
      auth: true,
      scryptLogN: 10,
      env: { JUNCTION_ADMIN_PASSWORD: ADMIN_PASSWORD },
      watchConfig: false,
    });
    // No credential: the document is open.
    const res = await fetch(`${server.url}/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    doc = (await res.json()) as Doc;
  });
  afterAll(async () => {
    await server?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('describes every registered route with a summary, a tag and its path parameters', () => {
    const routes = routesOf(server.app);
    // Every package's routes are mounted: broker, Memphis gateway, connectors, plugins, schema registry, auth.
    for (const url of [
      '/v1/stations',
      '/stations/:station/produce/single',
      '/v1/connectors',
      '/v1/connector-plugins',
      '/v1/schema-registry/subjects',
      '/v1/tokens',
      '/healthz',
      '/v1/openapi.json',
    ]) {
      expect(
        routes.some((r) => r.url === url),
        url,
      ).toBe(true);
    }
    expect(gaps(routes, doc)).toEqual([]);
  });

  it('documents nothing that is not a route', () => {
    const served = new Set(routesOf(server.app).map((r) => `${r.method.toLowerCase()} ${openapiPath(r.url)}`));
    const documented = [...operations(doc).keys()];
    expect(documented.filter((d) => !served.has(d))).toEqual([]);
    expect(documented.length).toBeGreaterThan(80);
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(structuredClone(doc) as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('describes bodies, queries and answers from the zod schemas the routes parse with', () => {
    const create = doc.paths['/v1/stations']!['post']!;
    const body = create.requestBody.content['application/json'].schema;
    expect(body.required).toContain('name');
    expect(body.properties.partitions).toMatchObject({ type: 'integer', minimum: 1, maximum: 1024, default: 1 });
    expect(body.additionalProperties).toBe(false);
    const list = doc.paths['/v1/stations']!['get']!;
    expect(list.parameters?.map((p) => `${p.in} ${p.name}`).sort()).toEqual(['query after', 'query limit', 'query prefix', 'query system']);
    const produce = doc.paths['/v1/stations/{station}/messages']!['post']!;
    expect(Object.keys(produce.requestBody.content).sort()).toEqual([
      'application/json',
      'application/vnd.junction.batch',
      'application/x-ndjson',
    ]);
  });

  it('has the error envelopes as shared components, and each route names its own', () => {
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['ApiError', 'MemphisError', 'SchemaRegistryError']));
    expect(doc.components.schemas.ApiError.required).toEqual(['code', 'message']);
    const errorRef = (path: string, method: string, status: string) =>
      (doc.paths[path]![method]!.responses![status] as any).content['application/json'].schema.$ref;
    expect(errorRef('/v1/stations/{station}', 'get', '404')).toBe('#/components/schemas/ApiError');
    expect(errorRef('/stations/{station}/produce/batch', 'post', '400')).toBe('#/components/schemas/MemphisError');
    expect(errorRef('/v1/schema-registry/subjects/{subject}/versions', 'post', '404')).toBe('#/components/schemas/SchemaRegistryError');
  });

  it('states the security of each route: bearer, none for open routes, and the grants needed', () => {
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect((doc as any).security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/healthz']!['get']!.security).toEqual([]);
    expect(doc.paths['/v1/auth/login']!['post']!.security).toEqual([]);
    const del = doc.paths['/v1/stations/{station}']!['delete']!;
    expect(del.security).toBeUndefined();
    expect(Object.keys(del.responses!)).toEqual(expect.arrayContaining(['401', '403']));
    expect((del as any).description).toContain('`manage on station {station}`');
  });

  it("keeps the routes' own validation: a bad body still answers BODY_INVALID with the field path", async () => {
    const { token } = await server.auth!.login('admin', ADMIN_PASSWORD);
    const res = await server.app.inject({
      method: 'POST',
      url: '/v1/stations',
      headers: { authorization: `Bearer ${token}` },
      payload: { name: 'ok-name', partitions: 'two' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'partitions' }] });
  });

  it('serves the reference page offline at /docs, open', async () => {
    for (const path of ['/docs', '/docs/']) {
      const page = await fetch(`${server.url}${path}`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      const csp = page.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'self'");
      expect(csp).not.toContain('upgrade-insecure-requests');
      const html = await page.text();
      expect(html).toContain('swagger-ui');
      // Every script and stylesheet comes from this server (no CDN), resolved as a browser would.
      const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      expect(assets.length).toBeGreaterThan(2);
      for (const a of assets) {
        expect(a, a).not.toMatch(/^(https?:)?\/\//);
        const res = await fetch(new URL(a, page.url));
        expect(res.status, `${path}: ${a}`).toBe(200);
        expect((await res.arrayBuffer()).byteLength, a).toBeGreaterThan(0);
      }
    }
    const json = await fetch(`${server.url}/docs/json`);
    expect(await json.json()).toEqual(doc);
  });
});

describe('the route walk', () => {
  it('finds routes added without a description, or outside a plugin (where the document cannot see them)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'junction-openapi-gap-'));
    const store = new EmbeddedStore({ dataDir: dir, fsync: 'never', logger });
    await store.open();
    const app = buildApp({ store, logger });
    app.get('/v1/outside/:thing', async () => ({}));
    void app.register(async (scope) => {
      scope.get('/v1/undocumented/:thing', async () => ({}));
    });
    try {
      await app.ready();
      const doc = (await app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as Doc;
      expect(gaps(routesOf(app), doc)).toEqual([
        'GET /v1/outside/:thing: not in the document',
        'GET /v1/undocumented/:thing: no summary',
        'GET /v1/undocumented/:thing: no tag',
      ]);
    } finally {
      await app.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
