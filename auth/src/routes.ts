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

export interface AuthRoutesOptions {
  auth: AuthService;
}

export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app, { auth }) => {
  app.setErrorHandler(authErrorHandler);

  app.post('/v1/auth/login', async (req) => {
    const body = parseBody(LoginBody, req.body);
    return auth.login(body.username, body.password, req.ip);
  });
  app.post('/v1/auth/refresh', async (req) => auth.refresh(parseBody(RefreshBody, req.body).refreshToken));
  app.post('/v1/auth/logout', async (req, reply) => {
    await auth.logout(required(req));
    return reply.code(204).send();
  });
  app.get('/v1/auth/whoami', async (req) => auth.describe(required(req)));

  app.get('/v1/users', async () => auth.listUsers());
  app.post('/v1/users', async (req, reply) => reply.code(201).send(await auth.createUser(parseBody(CreateUserBody, req.body))));
  app.patch<{ Params: { name: string } }>('/v1/users/:name', async (req) => auth.updateUser(req.params.name, parseBody(UpdateUserBody, req.body)));
  app.delete<{ Params: { name: string } }>('/v1/users/:name', async (req, reply) => {
    await auth.deleteUser(req.params.name);
    return reply.code(204).send();
  });

  app.get('/v1/tokens', async (req) => auth.listTokens(required(req)));
  app.post('/v1/tokens', async (req, reply) => reply.code(201).send(await auth.createToken(required(req), parseBody(CreateTokenBody, req.body))));
  app.delete<{ Params: { id: string } }>('/v1/tokens/:id', async (req, reply) => {
    await auth.revokeToken(required(req), req.params.id);
    return reply.code(204).send();
  });
};
