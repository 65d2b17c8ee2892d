/**
 * Auth through the composed app (startServer: every package's routes, the access hook, the auth routes).
 * The table-driven test walks fastify's own route table, so a route added without an access
 * declaration fails here.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { EmbeddedStore } from '@junction/broker';
import { AuthService, FileAuthStore } from '@junction/auth';
import type { GrantInput } from '@junction/auth';
import { buildApp, checkExposure, loadConfig, routeAccess, routesOf, startServer, undeclaredRoutes } from '../src/index.js';
import type { RunningServer } from '../src/index.js';
import { startNatsCluster, type NatsCluster } from '@junction/e2e';

const logger = pino({ level: 'silent' });
const ADMIN_PASSWORD = 'admin-password-123';
let dir: string;
let server: RunningServer;
let skewMs = 0;
const clock = () => Date.now() + skewMs;

type Inject = { method: string; url: string; token?: string | undefined; body?: unknown; headers?: Record<string, string> };
async function call(o: Inject): Promise<{ status: number; json: () => any; body: string }> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token !== undefined) headers['authorization'] = `Bearer ${o.token}`;
  const res = await server.app.inject({
    method: o.method as 'GET',
    url: o.url,
    headers,
    ...(o.body !== undefined && { payload: JSON.stringify(o.body), headers: { ...headers, 'content-type': 'application/json' } }),
  });
  return { status: res.statusCode, json: () => res.json(), body: res.body };
}

async function login(username: string, password: string): Promise<string> {
  const res = await call({ method: 'POST', url: '/v1/auth/login', body: { username, password } });
  expect(res.status).toBe(200);
  return (res.json() as { token: string }).token;
}

async function makeToken(creator: string, grants: GrantInput[], expiresInS?: number): Promise<{ id: string; token: string }> {
  const res = await call({
    method: 'POST',
    url: '/v1/tokens',
    token: creator,
    body: { name: 'walk', grants, ...(expiresInS && { expiresInS }) },
  });
  expect(res.status, res.body).toBe(201);
  return res.json();
}

describe.each(['embedded', 'cluster'] as const)('auth on the %s engine', (engine) => {
  let admin: string;
  let viewer: string;

  let nats: NatsCluster | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-auth-server-'));
    // The cluster engine: users, tokens and sessions in the metadata bucket of a NATS server of its own.
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
      authClock: clock,
      env: { JUNCTION_ADMIN_PASSWORD: ADMIN_PASSWORD },
      watchConfig: false,
    });
    admin = await login('admin', ADMIN_PASSWORD);
    expect(
      (await call({ method: 'POST', url: '/v1/users', token: admin, body: { name: 'vic', password: 'viewer-password', role: 'viewer' } }))
        .status,
    ).toBe(201);
    viewer = await login('vic', 'viewer-password');
  });
  afterAll(async () => {
    await server?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const SAMPLE: Record<string, string> = {
    station: 'walk-station',
    group: 'walk-group',
    name: 'walk-name',
    id: '0123456789abcdef',
    task: '0',
  };
  const sampleUrl = (url: string) => url.replace(/:([A-Za-z]+)/g, (_m, p: string) => SAMPLE[p] ?? 'x');
  const hasBody = (method: string) => method === 'POST' || method === 'PUT' || method === 'PATCH';

  describe('every registered route × every kind of caller', () => {
    it('every route of the composed app has an access declaration', () => {
      const routes = routesOf(server.app);
      expect(routes.length).toBeGreaterThan(50);
      expect(undeclaredRoutes(routes)).toEqual([]);
    });

    it('answers 401 / 403 / neither exactly as the declarations and grants say', async () => {
      // Made before the clock moves: expired once it has.
      const expiring = await makeToken(
        admin,
        [{ resource: 'station', pattern: '*', actions: ['produce', 'consume', 'manage', 'read'] }],
        1,
      );
      const revoked = await makeToken(admin, [{ resource: 'cluster', pattern: '*', actions: ['read', 'manage'] }]);
      expect((await call({ method: 'DELETE', url: `/v1/tokens/${revoked.id}`, token: admin })).status).toBe(204);
      skewMs = 5_000;

      const routes = routesOf(server.app);
      const failures: string[] = [];
      const expectStatus = (route: string, who: string, status: number, want: 'open' | 401 | 403, body: string) => {
        const ok = want === 'open' ? status !== 401 && status !== 403 && status < 500 : status === want;
        if (!ok) failures.push(`${route} as ${who}: ${status} (want ${want}) ${body.slice(0, 200)}`);
      };
      for (const r of routes) {
        const decl = routeAccess(r.method, r.url)!;
        const key = `${r.method} ${r.url}`;
        const url = sampleUrl(r.url);
        const req = (token: string | undefined) => call({ method: r.method, url, token, ...(hasBody(r.method) && { body: {} }) });
        const isOpen = 'open' in decl;
        const checks = 'checks' in decl ? decl.checks : [];
        const onlyReads = checks.every((c) => c.action === 'read');

        let res = await req(undefined);
        expectStatus(key, 'nobody', res.status, isOpen ? 'open' : 401, res.body);
        if (!isOpen && r.method !== 'HEAD') expect(res.json()).toMatchObject({ code: 'UNAUTHENTICATED' });
        res = await req('not-a-token');
        expectStatus(key, 'a bad token', res.status, isOpen ? 'open' : 401, res.body);
        res = await req(expiring.token);
        expectStatus(key, 'an expired token', res.status, isOpen ? 'open' : 401, res.body);
        res = await req(revoked.token);
        expectStatus(key, 'a revoked token', res.status, isOpen ? 'open' : 401, res.body);
        res = await req(viewer);
        expectStatus(key, 'a viewer', res.status, isOpen || onlyReads ? 'open' : 403, res.body);
        // The walk's logout ended the viewer's session: a new one for the routes after it.
        if (key === 'POST /v1/auth/logout') viewer = await login('vic', 'viewer-password');

        // Fresh tokens per route: logout revokes the token it is called with.
        const without = await makeToken(admin, [{ resource: 'station', pattern: 'unrelated-*', actions: ['read'] }]);
        res = await req(without.token);
        expectStatus(key, 'a token without the grant', res.status, checks.length > 0 ? 403 : 'open', res.body);
        if (checks.length > 0 && r.method !== 'HEAD')
          expect(res.json().message).toMatch(
            new RegExp(`missing "${checks.find((c) => !(c.resource === 'station' && c.action === 'read'))?.action ?? 'read'}" on `),
          );

        const grants: GrantInput[] = checks.map((c) => ({ resource: c.resource, pattern: '*', actions: [c.action] }));
        const withGrant =
          grants.length > 0
            ? await makeToken(admin, grants)
            : await makeToken(admin, [{ resource: 'station', pattern: 'x', actions: ['read'] }]);
        res = await req(withGrant.token);
        expectStatus(key, 'a token with the grant', res.status, 'open', res.body);
      }
      skewMs = 0;
      viewer = await login('vic', 'viewer-password');
      expect(failures).toEqual([]);
    });

    it('a route added without a declaration is denied to everybody, admin included, and is listed', async () => {
      const store = new EmbeddedStore({ dataDir: join(dir, 'extra'), fsync: 'never', logger });
      await store.open();
      const auth = await AuthService.open({
        store: new FileAuthStore({ dir: join(dir, 'extra-auth') }),
        adminPassword: ADMIN_PASSWORD,
        scryptLogN: 10,
      });
      const app = buildApp({ store, logger, auth });
      app.get('/v1/forgotten', async () => ({ secret: true }));
      await app.ready();
      try {
        expect(undeclaredRoutes(routesOf(app))).toEqual(['GET /v1/forgotten', 'HEAD /v1/forgotten']);
        const { token } = await auth.login('admin', ADMIN_PASSWORD);
        const res = await app.inject({ method: 'GET', url: '/v1/forgotten', headers: { authorization: `Bearer ${token}` } });
        expect(res.statusCode).toBe(403);
        expect(res.json()).toMatchObject({ code: 'FORBIDDEN' });
      } finally {
        await app.close();
        await store.close();
      }
    });
  });

  describe('grants on real data', () => {
    it('a producer token produces to its stations only; consume needs its own grant; unknown URLs need a token before their 404', async () => {
      expect((await call({ method: 'POST', url: '/v1/stations', token: admin, body: { name: 'orders-eu', partitions: 1 } })).status).toBe(
        201,
      );
      expect((await call({ method: 'POST', url: '/v1/stations', token: admin, body: { name: 'payments', partitions: 1 } })).status).toBe(
        201,
      );
      const producer = await makeToken(admin, [{ resource: 'station', pattern: 'orders-*', actions: ['produce'] }]);
      const produce = (station: string, token: string) =>
        call({ method: 'POST', url: `/v1/stations/${station}/messages`, token, body: { messages: [{ value: 'hello' }] } });
      expect((await produce('orders-eu', producer.token)).status).toBe(200);
      const denied = await produce('payments', producer.token);
      expect(denied.status).toBe(403);
      expect(denied.json()).toEqual({ code: 'FORBIDDEN', message: 'missing "produce" on station "payments"' });
      expect((await call({ method: 'GET', url: '/v1/stations/orders-eu/messages?partition=0', token: producer.token })).status).toBe(403);
      // Creating a station checks the name in the body.
      const creator = await makeToken(admin, [{ resource: 'station', pattern: 'team-a-*', actions: ['manage'] }]);
      expect(
        (await call({ method: 'POST', url: '/v1/stations', token: creator.token, body: { name: 'team-a-x', partitions: 1 } })).status,
      ).toBe(201);
      const other = await call({ method: 'POST', url: '/v1/stations', token: creator.token, body: { name: 'team-b-x', partitions: 1 } });
      expect(other.status).toBe(403);
      expect(other.json().message).toBe('missing "manage" on station "team-b-x"');
      // A deny grant wins over the role's allow (a token with a deny inside the admin's allow).
      const withDeny = await makeToken(admin, [
        { resource: 'station', pattern: '*', actions: ['produce'] },
        { resource: 'station', pattern: 'payments', actions: ['produce'], effect: 'deny' } as GrantInput,
      ]);
      expect((await produce('orders-eu', withDeny.token)).status).toBe(200);
      expect((await produce('payments', withDeny.token)).status).toBe(403);

      expect((await call({ method: 'GET', url: '/v1/nothing-here' })).status).toBe(401);
      expect((await call({ method: 'GET', url: '/v1/nothing-here', token: admin })).status).toBe(404);
      expect((await call({ method: 'GET', url: '/healthz' })).status).toBe(200);
      expect((await call({ method: 'GET', url: '/metrics' })).status).toBe(401);
      expect((await call({ method: 'GET', url: '/metrics', token: viewer })).status).toBe(200);
      // A viewer cannot give itself more through a token.
      const escalate = await call({
        method: 'POST',
        url: '/v1/tokens',
        token: viewer,
        body: { name: 'x', grants: [{ resource: 'station', pattern: '*', actions: ['produce'] }] },
      });
      expect(escalate.status).toBe(403);
      expect(escalate.json().code).toBe('FORBIDDEN');
    });

    it('a connector gives its creator nothing more: making one needs consume and produce on its station', async () => {
      expect(
        (await call({ method: 'POST', url: '/v1/stations', token: admin, body: { name: 'secret-ledger', partitions: 1 } })).status,
      ).toBe(201);
      const sink = { name: 'exfil', plugin: 'file', station: 'secret-ledger', config: { dir: join(dir, 'data', 'exfil') } };
      // Connector rights alone: a file sink on a station the token cannot read is refused before it exists.
      const connectorOnly = await makeToken(admin, [{ resource: 'connector', pattern: '*', actions: ['manage', 'read'] }]);
      const refused = await call({ method: 'POST', url: '/v1/connectors', token: connectorOnly.token, body: sink });
      expect(refused.status).toBe(403);
      expect(refused.json().message).toBe('missing "consume" on station "secret-ledger"');
      expect(
        (
          await call({
            method: 'PUT',
            url: '/v1/connectors/exfil/config',
            token: connectorOnly.token,
            body: { plugin: 'file', station: 'secret-ledger', config: sink.config },
          })
        ).status,
      ).toBe(403);
      expect((await call({ method: 'GET', url: '/v1/connectors/exfil', token: admin })).status).toBe(404);
      // With the station's grants as well, the same request goes through.
      const full = await makeToken(admin, [
        { resource: 'connector', pattern: '*', actions: ['manage', 'read'] },
        { resource: 'station', pattern: 'secret-ledger', actions: ['consume', 'produce'] },
      ]);
      expect((await call({ method: 'POST', url: '/v1/connectors', token: full.token, body: sink })).status).toBe(201);
      expect((await call({ method: 'DELETE', url: '/v1/connectors/exfil', token: full.token })).status).toBe(204);
    });

    it('bad bodies on the auth routes answer 400 BODY_INVALID with the field path, and store nothing', async () => {
      const users = (await call({ method: 'GET', url: '/v1/users', token: admin })).json();
      const tokens = (await call({ method: 'GET', url: '/v1/tokens', token: admin })).json();
      const cases: { method: string; url: string; body: unknown; path: string; token?: string }[] = [
        { method: 'POST', url: '/v1/auth/login', body: { username: 'admin' }, path: 'password' },
        { method: 'POST', url: '/v1/auth/login', body: { username: 'admin', password: 'x', extra: 1 }, path: '' },
        { method: 'POST', url: '/v1/auth/refresh', body: { refreshToken: 42 }, path: 'refreshToken' },
        {
          method: 'POST',
          url: '/v1/users',
          body: { name: 'new-user', password: 'long enough password', role: 'root' },
          path: 'role',
          token: admin,
        },
        { method: 'POST', url: '/v1/users', body: { name: 'new-user' }, path: 'password', token: admin },
        { method: 'PATCH', url: '/v1/users/vic', body: { role: 'owner' }, path: 'role', token: admin },
        { method: 'POST', url: '/v1/tokens', body: { name: 'bad', grants: [] }, path: 'grants', token: admin },
        {
          method: 'POST',
          url: '/v1/tokens',
          body: { name: 'bad', grants: [{ resource: 'planet', pattern: '*', actions: ['read'] }] },
          path: 'grants[0].resource',
          token: admin,
        },
        {
          method: 'POST',
          url: '/v1/tokens',
          body: { name: 'bad', grants: [{ resource: 'station', pattern: '*', actions: ['read'] }], expiresInS: 0 },
          path: 'expiresInS',
          token: admin,
        },
      ];
      for (const c of cases) {
        const res = await call({ method: c.method, url: c.url, token: c.token, body: c.body });
        expect({ route: `${c.method} ${c.url}`, status: res.status }).toEqual({ route: `${c.method} ${c.url}`, status: 400 });
        const body = res.json() as { code: string; issues?: { path: string }[] };
        expect(body.code, `${c.method} ${c.url}`).toBe('BODY_INVALID');
        if (c.path !== '')
          expect(
            body.issues?.map((i) => i.path),
            `${c.method} ${c.url}`,
          ).toContain(c.path);
      }
      expect((await call({ method: 'GET', url: '/v1/users', token: admin })).json()).toEqual(users);
      expect((await call({ method: 'GET', url: '/v1/tokens', token: admin })).json()).toEqual(tokens);
    });

    it('login, whoami, refresh, logout: a logged-out token stops working at once', async () => {
      const res = await call({ method: 'POST', url: '/v1/auth/login', body: { username: 'vic', password: 'viewer-password' } });
      const s = res.json() as { token: string; expiresAt: string; refreshToken: string };
      expect(Date.parse(s.expiresAt)).toBeGreaterThan(Date.now());
      expect((await call({ method: 'GET', url: '/v1/auth/whoami', token: s.token })).json()).toMatchObject({
        kind: 'user',
        name: 'vic',
        role: 'viewer',
      });
      const r = await call({ method: 'POST', url: '/v1/auth/refresh', body: { refreshToken: s.refreshToken } });
      expect(r.status).toBe(200);
      expect((await call({ method: 'POST', url: '/v1/auth/refresh', body: { refreshToken: s.refreshToken } })).status).toBe(401);
      const fresh = r.json().token as string;
      expect((await call({ method: 'POST', url: '/v1/auth/logout', token: fresh })).status).toBe(204);
      expect((await call({ method: 'GET', url: '/v1/auth/whoami', token: fresh })).status).toBe(401);
      expect((await call({ method: 'GET', url: '/v1/auth/whoami', token: s.token })).status).toBe(401);
      const wrong = await call({ method: 'POST', url: '/v1/auth/login', body: { username: 'vic', password: 'nope-nope-nope' } });
      expect(wrong.status).toBe(401);
      expect(wrong.json().code).toBe('UNAUTHENTICATED');
      // Users are listed without password hashes.
      const users = await call({ method: 'GET', url: '/v1/users', token: admin });
      expect(users.body).not.toMatch(/scrypt|password/i);
    });
  });

  describe('the Memphis gateway with auth on', () => {
    it('authenticates with a password or a connection token, signs real JWTs, refreshes, and refuses tampered, expired and foreign ones', async () => {
      await call({ method: 'POST', url: '/v1/stations', token: admin, body: { name: 'memphis-st', partitions: 1 } });
      const bad = await call({ method: 'POST', url: '/auth/authenticate', body: { username: 'admin', password: 'wrong-password' } });
      expect(bad.status).toBe(401);
      expect(bad.json()).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });

      const ok = await call({
        method: 'POST',
        url: '/auth/authenticate',
        body: { username: 'admin', password: ADMIN_PASSWORD, token_expiry_in_minutes: 1 },
      });
      expect(ok.status).toBe(200);
      const t = ok.json() as { jwt: string; expires_in: number; jwt_refresh_token: string; refresh_token_expires_in: number };
      expect(t.expires_in).toBe(60_000);
      const header = JSON.parse(Buffer.from(t.jwt.split('.')[0]!, 'base64url').toString()) as { alg: string };
      expect(header.alg).toBe('HS256');
      const claims = JSON.parse(Buffer.from(t.jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      expect(claims).toMatchObject({ username: 'admin', iss: 'junction' });
      expect(claims['exp']).toBeTypeOf('number');

      const produce = (token: string | undefined, query = '') =>
        server.app.inject({
          method: 'POST',
          url: `/stations/memphis-st/produce/single${query}`,
          headers: { 'content-type': 'text/plain', ...(token && { authorization: `Bearer ${token}` }) },
          payload: 'm',
        });
      expect((await produce(t.jwt)).statusCode).toBe(200);
      expect((await produce(undefined, `?authorization=${t.jwt}`)).statusCode).toBe(200);
      expect((await produce(undefined)).statusCode).toBe(401);

      // Tampered: a changed claim with the old signature; a changed signature.
      const parts = t.jwt.split('.');
      const forgedClaims = Buffer.from(JSON.stringify({ ...claims, username: 'root' })).toString('base64url');
      expect((await produce(`${parts[0]}.${forgedClaims}.${parts[2]}`)).statusCode).toBe(401);
      const sig = parts[2]!;
      expect((await produce(`${parts[0]}.${parts[1]}.${sig.slice(0, -2)}${sig.at(-2) === 'A' ? 'B' : 'A'}${sig.at(-1)}`)).statusCode).toBe(
        401,
      );
      // Foreign: the same claims signed with another installation's secret; unsigned (what the shim made).
      const foreign = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: 'HS256', kid: header['kid' as 'alg'] })
        .sign(new Uint8Array(32).fill(7));
      expect((await produce(foreign)).statusCode).toBe(401);
      expect((await produce(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${parts[1]}.`)).statusCode).toBe(401);
      // Expired.
      skewMs = 61_000;
      const exp = await produce(t.jwt);
      expect(exp.statusCode, `${exp.body} ${JSON.stringify(claims)} ${clock()}`).toBe(401);
      skewMs = 0;

      // Refresh rotates: the old refresh token is refused afterwards.
      const r = await call({ method: 'POST', url: '/auth/refreshToken', body: { jwt_refresh_token: t.jwt_refresh_token } });
      expect(r.status).toBe(200);
      expect((await produce(r.json().jwt)).statusCode).toBe(200);
      expect((await call({ method: 'POST', url: '/auth/refreshToken', body: { jwt_refresh_token: t.jwt_refresh_token } })).status).toBe(
        401,
      );
      expect((await call({ method: 'POST', url: '/auth/refreshToken', body: { jwt_refresh_token: t.jwt } })).status).toBe(401);

      // A connection token: a service token, with its own grants.
      const app = await makeToken(admin, [{ resource: 'station', pattern: 'memphis-*', actions: ['produce'] }]);
      expect(
        (await call({ method: 'POST', url: '/auth/authenticate', body: { username: 'someone-else', connection_token: app.token } })).status,
      ).toBe(401);
      const viaToken = await call({ method: 'POST', url: '/auth/authenticate', body: { username: 'admin', connection_token: app.token } });
      expect(viaToken.status).toBe(200);
      expect((await produce(viaToken.json().jwt)).statusCode).toBe(200);
      const consume = await server.app.inject({
        method: 'POST',
        url: '/stations/memphis-st/consume/batch',
        headers: { authorization: `Bearer ${viaToken.json().jwt}` },
        payload: { consumer_name: 'c' },
      });
      expect(consume.statusCode).toBe(403);
      // Revoking the service token ends the Memphis session made with it.
      await call({ method: 'DELETE', url: `/v1/tokens/${app.id}`, token: admin });
      expect((await produce(viaToken.json().jwt)).statusCode).toBe(401);
    });
  });

  describe('the audit station', () => {
    it('records changes and denied requests (who, what, when, from where), never secrets; only the server writes it', async () => {
      const marker = `audited-${Date.now()}`;
      expect((await call({ method: 'POST', url: '/v1/stations', token: admin, body: { name: marker, partitions: 1 } })).status).toBe(201);
      expect((await call({ method: 'DELETE', url: `/v1/stations/${marker}` })).status).toBe(401);
      const weak = await makeToken(admin, [{ resource: 'station', pattern: 'nothing', actions: ['read'] }]);
      expect((await call({ method: 'DELETE', url: `/v1/stations/${marker}`, token: weak.token })).status).toBe(403);
      // A Memphis token in the query string must not reach the audit entry.
      await server.app.inject({
        method: 'POST',
        url: `/stations/${marker}/produce/single?authorization=secret-in-query`,
        headers: { 'content-type': 'text/plain' },
        payload: 'x',
      });
      await call({
        method: 'POST',
        url: '/v1/users',
        token: admin,
        body: { name: 'audited-user', password: 'audited-password', role: 'viewer' },
      });

      // Only the server writes it; reading needs read on cluster "audit".
      const write = await call({
        method: 'POST',
        url: '/v1/stations/__audit/messages',
        token: admin,
        body: { messages: [{ value: 'forged' }] },
      });
      expect(write.status).toBe(403);
      expect(write.json().message).toBe('station "__audit" is written by the server only');
      expect((await call({ method: 'DELETE', url: '/v1/stations/__audit', token: admin })).status).toBe(403);
      const reader = await makeToken(admin, [{ resource: 'station', pattern: '*', actions: ['consume'] }]);
      expect((await call({ method: 'GET', url: '/v1/stations/__audit/messages?partition=0', token: reader.token })).status).toBe(403);

      type Entry = {
        who: { kind: string; name?: string; id?: string };
        what: { method: string; route: string; params: Record<string, string>; checked?: { name?: string }[]; status: number };
        from: string;
        at: string;
      };
      let entries: Entry[] = [];
      let raw = '';
      const deadline = Date.now() + 30_000;
      for (;;) {
        const res = await call({ method: 'GET', url: '/v1/stations/__audit/messages?partition=0&limit=10000', token: viewer });
        expect(res.status).toBe(200);
        raw = res.body;
        entries = (res.json().messages as { value: string }[]).map((m) => JSON.parse(m.value) as Entry);
        // The last action above: the second user created in this file (vic was the first).
        if (
          entries.filter((e) => e.what.route === '/v1/users' && e.what.method === 'POST' && e.what.status === 201).length >= 2 ||
          Date.now() > deadline
        )
          break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const first = entries.findIndex((e) => e.what.checked?.some((c) => c.name === marker));
      expect(first).toBeGreaterThanOrEqual(0);
      expect(entries[first]!.what.checked).toEqual([{ resource: 'station', action: 'manage', name: marker }]);
      const about = entries
        .slice(first)
        .filter(
          (e) =>
            e.what.checked?.some((c) => c.name === marker) ||
            e.what.params['station'] === marker ||
            (e.what.route === '/v1/users' && e.what.method === 'POST'),
        );
      expect(
        about.map((e) => [e.who.kind, e.who.kind === 'token' ? e.who.id : e.who.name, e.what.method, e.what.route, e.what.status]),
      ).toEqual([
        ['user', 'admin', 'POST', '/v1/stations', 201],
        ['anonymous', undefined, 'DELETE', '/v1/stations/:station', 401],
        ['token', weak.id, 'DELETE', '/v1/stations/:station', 403],
        ['anonymous', undefined, 'POST', '/stations/:station/produce/single', 401],
        ['user', 'admin', 'POST', '/v1/users', 201],
      ]);
      expect(about[0]!.from).toBe('127.0.0.1');
      expect(Date.parse(about[0]!.at)).toBeGreaterThan(Date.now() - 120_000);
      expect(raw).not.toContain('secret-in-query');
      expect(raw).not.toContain('audited-password');
      expect(raw).not.toContain('forged');
    });
  });

  describe('fuzz', () => {
    it('any Authorization header on a protected route answers 401 (never 500, never through)', async () => {
      const printable = fc.string({ unit: fc.constantFrom(...'Bearer jnt_0123456789abcdef-_.eyJ=+/ \t'.split('')), maxLength: 120 });
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            printable,
            printable.map((s) => `Bearer ${s}`),
            fc.string({ unit: 'grapheme-ascii', maxLength: 200 }),
          ),
          async (header) => {
            const value = header.replace(/[^\x20-\x7e\t]/g, '');
            const res = await server.app.inject({ method: 'GET', url: '/v1/stations', headers: { authorization: value } });
            return res.statusCode === 401 && (res.json() as { code: string }).code === 'UNAUTHENTICATED';
          },
        ),
        { numRuns: 300 },
      );
    });

    it('a valid token with any one character changed, added or removed answers 401', async () => {
      const [token] = [admin];
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: token.length - 1 }),
          fc.constantFrom(...'AaZz09-_.'.split('')),
          fc.constantFrom('replace', 'insert', 'delete'),
          async (at, ch, op) => {
            const mutated =
              op === 'replace'
                ? token.slice(0, at) + ch + token.slice(at + 1)
                : op === 'insert'
                  ? token.slice(0, at) + ch + token.slice(at)
                  : token.slice(0, at) + token.slice(at + 1);
            if (mutated === token) return true;
            const res = await server.app.inject({ method: 'GET', url: '/v1/stations', headers: { authorization: `Bearer ${mutated}` } });
            // base64url's last character can carry unused bits: a change there may decode to the same signature.
            return res.statusCode === 401 || (op === 'replace' && at === token.length - 1);
          },
        ),
        { numRuns: 300 },
      );
    });
  });
});

describe('starting', () => {
  it('keeps users and tokens across a restart', async () => {
    const d = await mkdtemp(join(tmpdir(), 'junction-auth-restart-'));
    try {
      let s = await startServer({
        dataDir: d,
        host: '127.0.0.1',
        port: 0,
        logger,
        auth: true,
        scryptLogN: 10,
        env: { JUNCTION_ADMIN_PASSWORD: ADMIN_PASSWORD },
        watchConfig: false,
      });
      const tok = (
        await s.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { username: 'admin', password: ADMIN_PASSWORD } })
      ).json().token as string;
      await s.app.inject({
        method: 'POST',
        url: '/v1/users',
        headers: { authorization: `Bearer ${tok}` },
        payload: { name: 'ed', password: 'editor-password', role: 'editor' },
      });
      const svc = (
        await s.app.inject({
          method: 'POST',
          url: '/v1/tokens',
          headers: { authorization: `Bearer ${tok}` },
          payload: { name: 'app', grants: [{ resource: 'station', pattern: '*', actions: ['read'] }] },
        })
      ).json().token as string;
      await s.close();
      // No admin password now: the users file is enough.
      s = await startServer({ dataDir: d, host: '127.0.0.1', port: 0, logger, auth: true, scryptLogN: 10, env: {}, watchConfig: false });
      try {
        expect((await s.app.inject({ method: 'GET', url: '/v1/stations', headers: { authorization: `Bearer ${svc}` } })).statusCode).toBe(
          200,
        );
        expect((await s.app.inject({ method: 'GET', url: '/v1/stations', headers: { authorization: `Bearer ${tok}` } })).statusCode).toBe(
          200,
        );
        expect(
          (await s.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { username: 'ed', password: 'editor-password' } }))
            .statusCode,
        ).toBe(200);
      } finally {
        await s.close();
      }
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it('refuses to start with auth on, no users and no JUNCTION_ADMIN_PASSWORD; never logs the password', async () => {
    const d = await mkdtemp(join(tmpdir(), 'junction-auth-boot-'));
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) });
    const log = pino({ level: 'trace' }, sink);
    try {
      await expect(
        startServer({ dataDir: d, host: '127.0.0.1', port: 0, logger: log, auth: true, env: {}, watchConfig: false }),
      ).rejects.toMatchObject({ code: 'AUTH_BOOTSTRAP_REQUIRED' });
      const s = await startServer({
        dataDir: d,
        host: '127.0.0.1',
        port: 0,
        logger: log,
        auth: true,
        scryptLogN: 10,
        env: { JUNCTION_ADMIN_PASSWORD: 'very-secret-bootstrap' },
        watchConfig: false,
      });
      await s.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { username: 'admin', password: 'very-secret-bootstrap' } });
      // Request log lines (trace here) hide a token in the query string (Memphis's ?authorization=).
      await s.app.inject({
        method: 'POST',
        url: '/stations/x/produce/single?authorization=query-secret-xyz',
        headers: { 'content-type': 'text/plain' },
        payload: 'x',
      });
      await s.close();
      expect(lines.join('')).toContain('authorization=***');
      expect(lines.join('')).not.toContain('query-secret-xyz');
      expect(lines.join('')).toContain('created the \\"admin\\" user');
      expect(lines.join('')).not.toContain('very-secret-bootstrap');
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it('refuses a non-loopback host with auth off unless --allow-unauthenticated', async () => {
    await expect(startServer({ dataDir: join(dir, 'x'), host: '10.1.2.3', port: 0, logger, env: {} })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [{ path: 'server.host' }],
    });
    expect(() => checkExposure(loadConfigSync({ host: '0.0.0.0', allowUnauthenticated: true }))).not.toThrow();
    expect(() => checkExposure(loadConfigSync({ host: '0.0.0.0', auth: true }))).not.toThrow();
    expect(() => checkExposure(loadConfigSync({ host: '0.0.0.0' }))).toThrow(/not a loopback address and auth is off/);
    expect(() => checkExposure(loadConfigSync({ host: '::1' }))).not.toThrow();
  });
});

/** The config loadConfig would make (only the fields checkExposure reads). */
function loadConfigSync(o: { host: string; auth?: boolean; allowUnauthenticated?: boolean }): Awaited<ReturnType<typeof loadConfig>> {
  return {
    server: { host: o.host, port: 0, dataDir: '/tmp/x', fsync: 'always', bodyLimitBytes: 1024, logLevel: 'info' },
    auth: { enabled: o.auth === true, allowUnauthenticated: o.allowUnauthenticated === true },
    stations: [],
    connectors: [],
    warnings: [],
  };
}
