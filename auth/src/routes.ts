/**
 * The auth API as a fastify plugin (own scope, own error handler):
 *   POST /v1/auth/login {username,password} → {token, expiresAt, refreshToken}
 *   POST /v1/auth/refresh {refreshToken} → the same (the refresh token rotates)
 *   POST /v1/auth/logout → 204 (ends the session, or revokes the service token presented)
 *   GET  /v1/auth/whoami
 *   GET/POST /v1/users, PATCH/DELETE /v1/users/:name
 *   GET/POST /v1/tokens, DELETE /v1/tokens/:id
 * Who may call which is decided by the server's access hook before a handler runs; the handlers read
 * the principal it found with `principalOf`.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { parseBody, toApiError } from '@junction/broker';
import { describeRoute } from '@junction/openapi/describe';
import { z } from 'zod';
import { Grant, RoleName, UserName } from './model.js';
import type { Principal } from './model.js';
import { AuthService, CreateTokenBody, CreateUserBody, LoginBody, RefreshBody, UpdateUserBody } from './service.js';
import { AUTH_STATUS, JunctionError, unauthenticated } from './errors.js';

const principals = new WeakMap<FastifyRequest, Principal>();

/** Records who made `request` (the access hook calls it). */
export function setPrincipal(request: FastifyRequest, p: Principal): void {
  principals.set(request, p);
}

/** Who made `request`, as the access hook found it; undefined on open routes and with auth off. */
export function principalOf(request: FastifyRequest): Principal | undefined {
  return principals.get(request);
}

function required(request: FastifyRequest): Principal {
  const p = principals.get(request);
  if (!p) throw unauthenticated();
  return p;
}

/** `{code, message, issues?}` with 401/403/404/409 for the auth codes, the broker's table for the rest. */
export function authErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  if (error instanceof JunctionError && AUTH_STATUS[error.code] !== undefined) {
    void reply.code(AUTH_STATUS[error.code]!).type('application/json; charset=utf-8').send({ code: error.code, message: error.message });
    return;
  }
  const { status, body, unexpected } = toApiError(error, request);
  if (unexpected) request.log.error({ err: error, reqId: request.id }, 'request failed');
  void reply.code(status).type('application/json; charset=utf-8').send(body);
}

// ---- for the OpenAPI document
const Session = z.object({
  token: z.string().describe('an access JWT: `Authorization: Bearer <token>`'),
  expiresAt: z.string().describe('ISO 8601'),
  refreshToken: z.string().describe('for POST /v1/auth/refresh, once (it rotates)'),
});
const User = z.object({ name: z.string(), role: RoleName, createdAt: z.string(), updatedAt: z.string() });
const Token = z.object({
  id: z.string(),
  name: z.string(),
  owner: z.string(),
  grants: z.array(Grant),
  createdAt: z.string(),
  expiresAt: z.string().optional(),
  revoked: z.boolean(),
});
const Whoami = z.union([
  z.object({ kind: z.literal('user'), name: z.string(), role: RoleName, grants: z.array(Grant) }),
  z.object({ kind: z.literal('token'), id: z.string(), name: z.string(), owner: z.string(), ownerRole: RoleName, grants: z.array(Grant) }),
]);
const UserParams = z.object({ name: UserName });
const TokenParams = z.object({
  id: z
    .string()
    .regex(/^[0-9a-f]{16}$/)
    .describe("the token's public id"),
});

export interface AuthRoutesOptions {
  auth: AuthService;
}

export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app, { auth }) => {
  app.setErrorHandler(authErrorHandler);

  app.post(
    '/v1/auth/login',
    {
      schema: describeRoute({
        summary: 'Log in',
        description: 'Answers an access token and a refresh token. Failed logins are limited per user and per address (429).',
        tags: ['auth'],
        body: LoginBody,
        responses: { 200: { description: 'a session', schema: Session } },
        errors: [401, 429],
      }),
    },
    async (req) => {
      const body = parseBody(LoginBody, req.body);
      return auth.login(body.username, body.password, req.ip);
    },
  );
  app.post(
    '/v1/auth/refresh',
    {
      schema: describeRoute({
        summary: 'Refresh a session',
        description: 'The refresh token rotates: the old one is spent.',
        tags: ['auth'],
        body: RefreshBody,
        responses: { 200: { description: 'new tokens', schema: Session } },
        errors: [401],
      }),
    },
    async (req) => auth.refresh(parseBody(RefreshBody, req.body).refreshToken),
  );
  app.post(
    '/v1/auth/logout',
    {
      schema: describeRoute({
        summary: 'Log out',
        description: 'Ends the session, or revokes the service token presented.',
        tags: ['auth'],
        responses: { 204: 'done' },
      }),
    },
    async (req, reply) => {
      await auth.logout(required(req));
      return reply.code(204).send();
    },
  );
  app.get(
    '/v1/auth/whoami',
    {
      schema: describeRoute({
        summary: 'Who am I',
        description: 'The principal of the credential and its grants.',
        tags: ['auth'],
        responses: { 200: { description: 'the principal', schema: Whoami } },
      }),
    },
    async (req) => auth.describe(required(req)),
  );

  app.get(
    '/v1/users',
    {
      schema: describeRoute({
        summary: 'List users',
        tags: ['users'],
        responses: { 200: { description: 'the users', schema: z.array(User) } },
      }),
    },
    async () => auth.listUsers(),
  );
  app.post(
    '/v1/users',
    {
      schema: describeRoute({
        summary: 'Create a user',
        description:
          'Roles: admin (everything), editor (every action on stations, groups, connectors, schemas; read on the cluster), viewer (read on everything).',
        tags: ['users'],
        body: CreateUserBody,
        responses: { 201: { description: 'the user', schema: User } },
        errors: [409],
      }),
    },
    async (req, reply) => reply.code(201).send(await auth.createUser(parseBody(CreateUserBody, req.body))),
  );
  app.patch<{ Params: { name: string } }>(
    '/v1/users/:name',
    {
      schema: describeRoute({
        summary: "Change a user's role or password",
        tags: ['users'],
        params: UserParams,
        body: UpdateUserBody,
        responses: { 200: { description: 'the user', schema: User } },
        errors: [404],
      }),
    },
    async (req) => auth.updateUser(req.params.name, parseBody(UpdateUserBody, req.body)),
  );
  app.delete<{ Params: { name: string } }>(
    '/v1/users/:name',
    {
      schema: describeRoute({
        summary: 'Delete a user',
        description: 'Its sessions and tokens stop working.',
        tags: ['users'],
        params: UserParams,
        responses: { 204: 'deleted' },
        errors: [404, 409],
      }),
    },
    async (req, reply) => {
      await auth.deleteUser(req.params.name);
      return reply.code(204).send();
    },
  );

  app.get(
    '/v1/tokens',
    {
      schema: describeRoute({
        summary: 'List service tokens',
        description: "The caller's own (with `manage` on cluster `tokens`: everybody's); never their secrets.",
        tags: ['tokens'],
        responses: { 200: { description: 'the tokens', schema: z.array(Token) } },
      }),
    },
    async (req) => auth.listTokens(required(req)),
  );
  app.post(
    '/v1/tokens',
    {
      schema: describeRoute({
        summary: 'Create a service token',
        description: 'The secret is in this answer only. A token never does more than its owner may do now.',
        tags: ['tokens'],
        body: CreateTokenBody,
        responses: {
          201: {
            description: 'the token, with its secret',
            schema: Token.extend({ token: z.string().describe('the secret: shown once') }),
          },
        },
        errors: [403],
      }),
    },
    async (req, reply) => reply.code(201).send(await auth.createToken(required(req), parseBody(CreateTokenBody, req.body))),
  );
  app.delete<{ Params: { id: string } }>(
    '/v1/tokens/:id',
    {
      schema: describeRoute({
        summary: 'Revoke a service token',
        tags: ['tokens'],
        params: TokenParams,
        responses: { 204: 'revoked' },
        errors: [404],
      }),
    },
    async (req, reply) => {
      await auth.revokeToken(required(req), req.params.id);
      return reply.code(204).send();
    },
  );
};
