/**
 * Who may call which route, when auth is on. Every route the app serves is declared here, keyed by
 * method and URL pattern (the routes live in plugins of other packages, which know nothing of auth);
 * a route without a declaration is DENIED (403) and `undeclaredRoutes` names it, so the test that walks
 * fastify's route table fails when a route is added without one.
 *
 * The hook authenticates in `onRequest` (before any body is read: an unauthenticated client cannot
 * make the server parse megabytes) and checks the grants whose name is in the URL there too; grants
 * whose name is in the body (create a station, a connector; the Memphis consumer group) are checked in
 * `preHandler`, once the body is parsed and before the handler runs.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { principalAllows, principalOf, setPrincipal } from '@junction/auth';
import type { Action, AuthService, Principal, Resource } from '@junction/auth';
import type { AccessDoc } from '@junction/openapi';
import { AUDIT_STATION } from './audit.js';
import type { AuditEntry, AuditLog } from './audit.js';

/** Where a check finds the name of the resource: a URL parameter, the first non-empty string of these body fields, or a fixed name. No name: the whole collection. */
export type NameSource = { param: string } | { body: readonly string[] } | { fixed: string };

export interface AccessCheck {
  resource: Resource;
  action: Action;
  name?: NameSource | undefined;
}

/** `open`: no credential needed. `authenticated`: any valid credential (the handler decides the rest). `checks`: every one must pass. */
export type RouteAccess = { open: true } | { authenticated: true } | { checks: readonly AccessCheck[] };

const open = { open: true } as const;
const anyone = { authenticated: true } as const;
const c = (resource: Resource, action: Action, name?: NameSource): AccessCheck => ({ resource, action, ...(name && { name }) });
const station = { param: 'station' } as const;
const group = { param: 'group' } as const;
const connector = { param: 'name' } as const;
const subject = { param: 'subject' } as const;
const checks = (...list: AccessCheck[]): RouteAccess => ({ checks: list });

/**
 * The declarations, `METHOD /url/:pattern` as fastify registers it. Message contents are `consume`
 * (browsing too); metadata is `read`; changes are `manage`. Users and tokens administration is
 * `manage` on cluster `users` / `tokens`; /metrics is `read` on cluster `metrics`; the plugin catalog
 * `read` on cluster `plugins`.
 */
export const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = {
  // Health probes and the Memphis monitoring probe stay open; login and refresh carry their own proof.
  'GET /healthz': open,
  'GET /monitoring/status': open,
  'POST /v1/auth/login': open,
  'POST /v1/auth/refresh': open,
  'POST /auth/authenticate': open,
  'POST /auth/refreshToken': open,
  'GET /metrics': checks(c('cluster', 'read', { fixed: 'metrics' })),
  // The API's description (OpenAPI document, reference page) is open, as Kafka's REST proxy and
  // Confluent's registry publish theirs: it lists routes and shapes, never data, and is the same for
  // every install of a version (what differs is only whether connectors / schemas are mounted).
  'GET /v1/openapi.json': open,
  'GET /docs': open,
  'GET /docs/': open,
  'GET /docs/json': open,
  'GET /docs/yaml': open,
  'GET /docs/static/*': open,
  'GET /docs/static/index.html': open,
  'GET /docs/static/swagger-initializer.js': open,

  // Auth: a principal sees itself and its own tokens; users need manage on cluster "users".
  'POST /v1/auth/logout': anyone,
  'GET /v1/auth/whoami': anyone,
  'GET /v1/tokens': anyone,
  'POST /v1/tokens': anyone,
  'DELETE /v1/tokens/:id': anyone,
  'GET /v1/users': checks(c('cluster', 'manage', { fixed: 'users' })),
  'POST /v1/users': checks(c('cluster', 'manage', { fixed: 'users' })),
  'PATCH /v1/users/:name': checks(c('cluster', 'manage', { fixed: 'users' })),
  'DELETE /v1/users/:name': checks(c('cluster', 'manage', { fixed: 'users' })),

  // Stations.
  'POST /v1/stations': checks(c('station', 'manage', { body: ['name'] })),
  'GET /v1/stations': checks(c('station', 'read')),
  'GET /v1/stations/:station': checks(c('station', 'read', station)),
  'PATCH /v1/stations/:station': checks(c('station', 'manage', station)),
  'DELETE /v1/stations/:station': checks(c('station', 'manage', station)),
  'POST /v1/stations/:station/messages': checks(c('station', 'produce', station)),
  'GET /v1/stations/:station/messages': checks(c('station', 'consume', station)),
  'GET /v1/stations/:station/dls': checks(c('station', 'consume', station)),
  'POST /v1/stations/:station/dls/replay': checks(c('station', 'manage', station)),
  'DELETE /v1/stations/:station/dls': checks(c('station', 'manage', station)),

  // Consumer groups: named on their own (like Kafka's), and always within a station.
  'GET /v1/stations/:station/groups': checks(c('station', 'read', station)),
  'PUT /v1/stations/:station/groups/:group': checks(c('station', 'consume', station), c('group', 'manage', group)),
  'GET /v1/stations/:station/groups/:group': checks(c('station', 'read', station), c('group', 'read', group)),
  'DELETE /v1/stations/:station/groups/:group': checks(c('station', 'consume', station), c('group', 'manage', group)),
  'POST /v1/stations/:station/groups/:group/fetch': checks(c('station', 'consume', station), c('group', 'consume', group)),
  'POST /v1/stations/:station/groups/:group/ack': checks(c('station', 'consume', station), c('group', 'consume', group)),
  'POST /v1/stations/:station/groups/:group/nack': checks(c('station', 'consume', station), c('group', 'consume', group)),
  'POST /v1/stations/:station/groups/:group/dead-letter': checks(c('station', 'consume', station), c('group', 'consume', group)),
  'POST /v1/stations/:station/groups/:group/seek': checks(c('station', 'consume', station), c('group', 'manage', group)),

  // The Memphis REST gateway.
  'POST /stations/:station/produce/single': checks(c('station', 'produce', station)),
  'POST /stations/:station/produce/batch': checks(c('station', 'produce', station)),
  'POST /stations/:station/consume/batch': checks(
    c('station', 'consume', station),
    c('group', 'consume', { body: ['consumer_group', 'consumer_name'] }),
  ),

  // Connectors (their configs may name any station: managing one is a wide grant).
  'GET /v1/connectors': checks(c('connector', 'read')),
  // A connector carries data across its station's boundary (a sink reads it out, a source writes it in):
  // making or changing one needs consume and produce on that station too, so a connector never gives its
  // creator more than the creator holds.
  'POST /v1/connectors': checks(
    c('connector', 'manage', { body: ['name'] }),
    c('station', 'consume', { body: ['station'] }),
    c('station', 'produce', { body: ['station'] }),
  ),
  'GET /v1/connectors/:name': checks(c('connector', 'read', connector)),
  'GET /v1/connectors/:name/config': checks(c('connector', 'read', connector)),
  'PUT /v1/connectors/:name/config': checks(
    c('connector', 'manage', connector),
    c('station', 'consume', { body: ['station'] }),
    c('station', 'produce', { body: ['station'] }),
  ),
  'DELETE /v1/connectors/:name': checks(c('connector', 'manage', connector)),
  'GET /v1/connectors/:name/status': checks(c('connector', 'read', connector)),
  'PUT /v1/connectors/:name/pause': checks(c('connector', 'manage', connector)),
  'PUT /v1/connectors/:name/resume': checks(c('connector', 'manage', connector)),
  'PUT /v1/connectors/:name/stop': checks(c('connector', 'manage', connector)),
  'POST /v1/connectors/:name/restart': checks(c('connector', 'manage', connector)),
  'GET /v1/connectors/:name/tasks': checks(c('connector', 'read', connector)),
  'GET /v1/connectors/:name/tasks/:task/status': checks(c('connector', 'read', connector)),
  'POST /v1/connectors/:name/tasks/:task/restart': checks(c('connector', 'manage', connector)),
  'GET /v1/connectors/:name/offsets': checks(c('connector', 'read', connector)),
  'PATCH /v1/connectors/:name/offsets': checks(c('connector', 'manage', connector)),
  'DELETE /v1/connectors/:name/offsets': checks(c('connector', 'manage', connector)),

  // Pipelines as code (`junction apply`): one request may create, change or delete any station and
  // connector, so it is an operator's act (cluster `pipeline`); the plan shows configs with secrets masked.
  'POST /v1/pipeline/plan': checks(c('cluster', 'read', { fixed: 'pipeline' })),
  'POST /v1/pipeline/apply': checks(c('cluster', 'manage', { fixed: 'pipeline' })),

  // The schema registry (Confluent's API), named by subject; reading by id, listings and the global
  // config / mode need the whole collection (an id may belong to any subject).
  'GET /v1/schema-registry': checks(c('schema', 'read')),
  'GET /v1/schema-registry/': checks(c('schema', 'read')),
  'GET /v1/schema-registry/schemas/types': checks(c('schema', 'read')),
  'GET /v1/schema-registry/subjects': checks(c('schema', 'read')),
  'GET /v1/schema-registry/subjects/:subject/versions': checks(c('schema', 'read', subject)),
  'GET /v1/schema-registry/subjects/:subject/versions/:version': checks(c('schema', 'read', subject)),
  'GET /v1/schema-registry/subjects/:subject/versions/:version/schema': checks(c('schema', 'read', subject)),
  'GET /v1/schema-registry/subjects/:subject/versions/:version/referencedby': checks(c('schema', 'read', subject)),
  'POST /v1/schema-registry/subjects/:subject/versions': checks(c('schema', 'manage', subject)),
  'POST /v1/schema-registry/subjects/:subject': checks(c('schema', 'read', subject)),
  'DELETE /v1/schema-registry/subjects/:subject': checks(c('schema', 'manage', subject)),
  'DELETE /v1/schema-registry/subjects/:subject/versions/:version': checks(c('schema', 'manage', subject)),
  'GET /v1/schema-registry/schemas/ids/:id': checks(c('schema', 'read')),
  'GET /v1/schema-registry/schemas/ids/:id/schema': checks(c('schema', 'read')),
  'GET /v1/schema-registry/schemas/ids/:id/versions': checks(c('schema', 'read')),
  'GET /v1/schema-registry/schemas/ids/:id/subjects': checks(c('schema', 'read')),
  'POST /v1/schema-registry/compatibility/subjects/:subject/versions/:version': checks(c('schema', 'read', subject)),
  'POST /v1/schema-registry/compatibility/subjects/:subject/versions': checks(c('schema', 'read', subject)),
  'GET /v1/schema-registry/config': checks(c('schema', 'read')),
  'PUT /v1/schema-registry/config': checks(c('schema', 'manage')),
  'DELETE /v1/schema-registry/config': checks(c('schema', 'manage')),
  'GET /v1/schema-registry/config/:subject': checks(c('schema', 'read', subject)),
  'PUT /v1/schema-registry/config/:subject': checks(c('schema', 'manage', subject)),
  'DELETE /v1/schema-registry/config/:subject': checks(c('schema', 'manage', subject)),
  'GET /v1/schema-registry/mode': checks(c('schema', 'read')),
  'PUT /v1/schema-registry/mode': checks(c('schema', 'manage')),
  'GET /v1/schema-registry/mode/:subject': checks(c('schema', 'read', subject)),
  'PUT /v1/schema-registry/mode/:subject': checks(c('schema', 'manage', subject)),
  'DELETE /v1/schema-registry/mode/:subject': checks(c('schema', 'manage', subject)),

  // The dashboard (@junction/ui): its pages and built files are public (they hold no data; the login
  // page must load); its live streams and listing need what the routes they summarize need.
  'GET /': open,
  'GET /login': open,
  'GET /stations': open,
  'GET /stations/:station': open,
  'GET /stations/:station/:tab': open,
  'GET /dead-letters': open,
  'GET /connectors': open,
  'GET /connectors/:name': open,
  'GET /schemas': open,
  'GET /users': open,
  'GET /assets/:file': open,
  'GET /v1/live/overview': checks(c('station', 'read')),
  'GET /v1/live/stations/:station': checks(c('station', 'read', station)),
  'GET /v1/live/connectors': checks(c('connector', 'read')),
  'GET /v1/dashboard/stations': checks(c('station', 'read')),

  // The plugin catalog (validation only reads).
  'GET /v1/connector-plugins': checks(c('cluster', 'read', { fixed: 'plugins' })),
  'GET /v1/connector-plugins/refused': checks(c('cluster', 'read', { fixed: 'plugins' })),
  'GET /v1/connector-plugins/:name': checks(c('cluster', 'read', { fixed: 'plugins' })),
  'PUT /v1/connector-plugins/:name/validate': checks(c('cluster', 'read', { fixed: 'plugins' })),
  'PUT /v1/connector-plugins/:name/config/validate': checks(c('cluster', 'read', { fixed: 'plugins' })),
  // Installing runs the package's code in the broker: admin only (manage on cluster "plugins").
  'POST /v1/connector-plugins': checks(c('cluster', 'manage', { fixed: 'plugins' })),
  'POST /v1/connector-plugins/refresh': checks(c('cluster', 'manage', { fixed: 'plugins' })),
  'DELETE /v1/connector-plugins/:name': checks(c('cluster', 'manage', { fixed: 'plugins' })),
};

/** The declaration of a route (HEAD routes, which fastify adds for GET ones, share the GET one). */
export function routeAccess(method: string, url: string): RouteAccess | undefined {
  return ROUTE_ACCESS[`${method === 'HEAD' ? 'GET' : method} ${url}`];
}

/**
 * A route's access as the OpenAPI document states it: open, any credential, or the grants it needs
 * (`manage` on station `{station}`; a name from the body reads `body.name`). Undefined: undeclared.
 */
export function accessDoc(method: string, url: string): AccessDoc | undefined {
  const decl = routeAccess(method, url);
  if (!decl) return undefined;
  if ('open' in decl || 'authenticated' in decl) return decl;
  return {
    grants: decl.checks.map((k) => {
      const name =
        k.name === undefined
          ? `every ${k.resource}`
          : 'param' in k.name
            ? `${k.resource} {${k.name.param}}`
            : 'fixed' in k.name
              ? `${k.resource} "${k.name.fixed}"`
              : `${k.resource} named by body.${k.name.body.join(' / body.')}`;
      return `${k.action} on ${name}`;
    }),
  };
}

/** The routes of `routes` (method, url) that have no declaration: each is denied to everybody. */
export function undeclaredRoutes(routes: readonly { method: string; url: string }[]): string[] {
  return routes.filter((r) => !routeAccess(r.method, r.url)).map((r) => `${r.method} ${r.url}`);
}

const BEARER = /^Bearer +([^\s]+) *$/i;

/**
 * The credential of a request: `Authorization: Bearer …`, or (Memphis gateway routes only, as the
 * Memphis SDKs send it) the `authorization` query parameter. Undefined when absent or malformed.
 */
export function credentialOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string') return BEARER.exec(header)?.[1];
  if (request.routeOptions.url?.startsWith('/stations/')) {
    const q = (request.query as Record<string, unknown> | undefined)?.['authorization'];
    if (typeof q === 'string' && q !== '') return q.replace(/^Bearer +/i, '');
  }
  return undefined;
}

const bodyChecksOf = new WeakMap<FastifyRequest, { principal: Principal; checks: AccessCheck[] }>();
/** What each request was checked for (for the audit entry). */
const checkedOf = new WeakMap<FastifyRequest, { resource: string; action: string; name?: string }[]>();

function noteChecked(request: FastifyRequest, check: AccessCheck, name: string | undefined): void {
  let list = checkedOf.get(request);
  if (!list) checkedOf.set(request, (list = []));
  list.push({ resource: check.resource, action: check.action, ...(name !== undefined && { name }) });
}

/**
 * Adds the access hooks to `app` (call before registering any route plugin, so that every route gets
 * them). Answers 401 `UNAUTHENTICATED` and 403 `FORBIDDEN` as `{code, message}` (Memphis gateway routes
 * also carry Memphis's `success: false, error`). Unknown URLs need a valid credential before they get
 * their 404, so that the route table cannot be probed without one.
 */
export function addAccessHooks(app: FastifyInstance, auth: AuthService, audit?: AuditLog): void {
  app.addHook('onRequest', async (request, reply) => {
    const url = request.routeOptions.url;
    const decl = url === undefined ? anyone : routeAccess(request.method, url);
    if (!decl) {
      request.log.error({ method: request.method, url }, 'route has no access declaration: denied');
      return deny(reply, request, 403, 'FORBIDDEN', `${request.method} ${url ?? ''} has no access declaration: denied to everybody`);
    }
    if ('open' in decl) return;
    let principal: Principal;
    try {
      principal = await auth.authenticate(credentialOf(request));
    } catch (err) {
      return deny(reply, request, 401, 'UNAUTHENTICATED', (err as Error).message);
    }
    setPrincipal(request, principal);
    if (!('checks' in decl)) return;
    const later: AccessCheck[] = [];
    for (const check of decl.checks) {
      if (check.name && 'body' in check.name) {
        later.push(check);
        continue;
      }
      const name =
        check.name === undefined
          ? undefined
          : 'fixed' in check.name
            ? check.name.fixed
            : (request.params as Record<string, string>)[check.name.param];
      noteChecked(request, check, name);
      const refused = refusal(principal, check, name);
      if (refused) return deny(reply, request, 403, 'FORBIDDEN', refused);
    }
    if (later.length > 0) bodyChecksOf.set(request, { principal, checks: later });
  });

  if (audit) {
    app.addHook('onResponse', async (request, reply) => {
      if (isAudited(request.method, request.routeOptions.url, reply.statusCode)) audit.record(auditEntry(request, reply.statusCode));
    });
  }

  app.addHook('preHandler', async (request, reply) => {
    const pending = bodyChecksOf.get(request);
    if (!pending) return;
    const body = request.body as Record<string, unknown> | null | undefined;
    for (const check of pending.checks) {
      const fields = check.name && 'body' in check.name ? check.name.body : [];
      const name = fields
        .map((f) => (body && typeof body === 'object' ? body[f] : undefined))
        .find((v): v is string => typeof v === 'string' && v !== '');
      noteChecked(request, check, name);
      const refused = refusal(pending.principal, check, name);
      if (refused) return deny(reply, request, 403, 'FORBIDDEN', refused);
    }
  });
}

/** Routes that change something besides those whose checks include `manage`. */
const AUDITED = new Set([
  'POST /v1/auth/login',
  'POST /v1/auth/logout',
  'POST /v1/tokens',
  'DELETE /v1/tokens/:id',
  'POST /auth/authenticate',
]);

/** Whether a request is audited: a denial (401, 403, 429), or a change (any answer). */
export function isAudited(method: string, url: string | undefined, status: number): boolean {
  if (status === 401 || status === 403 || status === 429) return true;
  if (method === 'GET' || method === 'HEAD' || url === undefined) return false;
  if (AUDITED.has(`${method} ${url}`)) return true;
  const decl = routeAccess(method, url);
  return decl !== undefined && 'checks' in decl && decl.checks.some((c) => c.action === 'manage');
}

function auditEntry(request: FastifyRequest, status: number): AuditEntry {
  const p = principalOf(request);
  const who: AuditEntry['who'] = !p
    ? { kind: 'anonymous' }
    : p.kind === 'user'
      ? { kind: 'user', name: p.name }
      : { kind: 'token', id: p.id, name: p.name, owner: p.owner };
  return {
    at: new Date().toISOString(),
    who,
    // The route pattern and its parameters, never the query string (Memphis's ?authorization=) or the body.
    what: {
      method: request.method,
      route: request.routeOptions.url ?? '(no route)',
      params: { ...(request.params as Record<string, string> | undefined) },
      ...(checkedOf.has(request) && { checked: checkedOf.get(request) }),
      status,
    },
    from: request.ip,
    requestId: String(request.id),
  };
}

function refusal(p: Principal, check: AccessCheck, name: string | undefined): string | undefined {
  // The audit station: written by the server only; read (consume, browse) with read on cluster "audit".
  if (check.resource === 'station' && name === AUDIT_STATION) {
    if (check.action !== 'consume' && check.action !== 'read') return `station "${AUDIT_STATION}" is written by the server only`;
    return principalAllows(p, 'cluster', 'read', 'audit') ? undefined : `missing "read" on cluster "audit"`;
  }
  if (principalAllows(p, check.resource, check.action, name)) return undefined;
  const target = name === undefined ? `every ${check.resource} (a listing)` : `${check.resource} "${name}"`;
  return `missing "${check.action}" on ${target}`;
}

function deny(reply: FastifyReply, request: FastifyRequest, status: 401 | 403, code: string, message: string): FastifyReply {
  const memphis = request.routeOptions.url?.startsWith('/stations/') === true;
  if (status === 401) reply.header('www-authenticate', 'Bearer');
  return reply
    .code(status)
    .type('application/json; charset=utf-8')
    .send(memphis ? { success: false, error: message, code, message } : { code, message });
}
