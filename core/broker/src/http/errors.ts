/**
 * How the broker's HTTP API answers errors: one status table, one error handler, one body shape
 * (`{ code, message, issues? }`, see ApiError in @junction/protocol). Routes throw JunctionErrors;
 * everything else that reaches the handler (fastify's own errors, bugs) is mapped to a stable code.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiError } from '@junction/protocol';
import type { z } from 'zod';
import { ErrorCode, JunctionError, isJunctionError, issuesFromZod, type Issue } from '../errors.js';

/**
 * Codes that only the HTTP layer produces (the broker's own codes are in ErrorCode). Stable: clients
 * may switch on them.
 */
export const HttpErrorCode = {
  ROUTE_NOT_FOUND: 'ROUTE_NOT_FOUND',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  /** A 4xx from fastify that has no better code (e.g. a malformed header or URL). */
  BAD_REQUEST: 'BAD_REQUEST',
  /** Too many large bodies are being received at once (see BodyGate): retry. */
  SERVER_BUSY: 'SERVER_BUSY',
  /** The client closed the connection before its request was read in full (nobody sees the answer). */
  REQUEST_ABORTED: 'REQUEST_ABORTED',
  /** No valid credential (auth on): missing, malformed, forged, expired or revoked. Set by core/server's auth. */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** The credential lacks a grant (auth on); the message names the action and the resource. */
  FORBIDDEN: 'FORBIDDEN',
  /** Too many failed logins for a user or from an address (auth on); retry later. */
  LOGIN_RATE_LIMITED: 'LOGIN_RATE_LIMITED',
} as const;
export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];

const STATUS: Record<string, number> = {
  [ErrorCode.STATION_NOT_FOUND]: 404,
  [ErrorCode.GROUP_NOT_FOUND]: 404,
  [ErrorCode.PARTITION_NOT_FOUND]: 404,
  [HttpErrorCode.ROUTE_NOT_FOUND]: 404,
  [HttpErrorCode.UNAUTHENTICATED]: 401,
  [HttpErrorCode.FORBIDDEN]: 403,
  [HttpErrorCode.LOGIN_RATE_LIMITED]: 429,
  [ErrorCode.STATION_EXISTS]: 409,
  [ErrorCode.GROUP_EXISTS]: 409,
  // Malformed or out-of-range input: the client must change the request.
  [ErrorCode.BODY_INVALID]: 400,
  [ErrorCode.CONFIG_INVALID]: 400,
  [ErrorCode.OFFSET_OUT_OF_RANGE]: 400,
  [HttpErrorCode.BAD_REQUEST]: 400,
  // Well-formed and understood, but refused by the station's rules.
  [ErrorCode.CONFIG_IMMUTABLE]: 422,
  [ErrorCode.STATION_RESERVED]: 422,
  [ErrorCode.MESSAGE_TOO_LARGE]: 413,
  [HttpErrorCode.BODY_TOO_LARGE]: 413,
  [HttpErrorCode.UNSUPPORTED_MEDIA_TYPE]: 415,
  [HttpErrorCode.REQUEST_ABORTED]: 400,
  [ErrorCode.STORE_CLOSED]: 503,
  [HttpErrorCode.SERVER_BUSY]: 503,
  // The station exists but cannot serve until an operator deletes it or restores its files.
  [ErrorCode.STATION_DAMAGED]: 503,
};

/** 5xx codes that describe a known state of the broker rather than a failure of this request: not logged per request. */
const EXPECTED_5XX = new Set<string>([ErrorCode.STATION_DAMAGED]);

/** The HTTP status of an error code: 404 not found, 409 exists, 400/422 bad input, 413, 415, 503 closed, else 500. */
export function httpStatusFor(code: string): number {
  return STATUS[code] ?? 500;
}

/**
 * Turns any thrown value into a status and an ApiError body. Never exposes the message of an error
 * that was not thrown on purpose (those answer 500 INTERNAL with a generic message).
 */
export function toApiError(err: unknown, request?: FastifyRequest): { status: number; body: ApiError; unexpected: boolean } {
  if (isJunctionError(err)) {
    const body: ApiError = { code: err.code, message: err.message };
    if (err.issues && err.issues.length > 0) body.issues = err.issues;
    return { status: httpStatusFor(err.code), body, unexpected: httpStatusFor(err.code) >= 500 && !EXPECTED_5XX.has(err.code) };
  }
  const fe = err as Partial<FastifyError> | null | undefined;
  const fcode = typeof fe?.code === 'string' ? fe.code : undefined;
  // The client went away while its body was being read (Node's "aborted", ECONNRESET): not our failure,
  // and nobody will read the answer.
  if (fcode === 'ECONNRESET' || fcode === 'ECONNABORTED' || request?.raw.aborted === true) {
    return clientError(400, HttpErrorCode.REQUEST_ABORTED, 'the client closed the connection before the request was read');
  }
  switch (fcode) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const type = request?.headers['content-type'];
      return clientError(
        415,
        HttpErrorCode.UNSUPPORTED_MEDIA_TYPE,
        type ? `unsupported content type "${type}"` : 'a body needs a content type',
      );
    }
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return clientError(413, HttpErrorCode.BODY_TOO_LARGE, 'request body is larger than this route accepts');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return clientError(400, ErrorCode.BODY_INVALID, 'body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return clientError(400, ErrorCode.BODY_INVALID, 'body is empty but content-type is application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return clientError(400, ErrorCode.BODY_INVALID, 'body size does not match content-length');
    case 'FST_ERR_VALIDATION': {
      const issues: Issue[] = (fe?.validation ?? []).map((v) => ({
        path: jsonPointerToPath(v.instancePath),
        message: v.message ?? 'invalid',
      }));
      const r = clientError(400, ErrorCode.BODY_INVALID, fe?.message ?? 'request is invalid');
      if (issues.length > 0) r.body.issues = issues;
      return r;
    }
  }
  if (err instanceof SyntaxError && typeof fe?.statusCode === 'number' && fe.statusCode === 400) {
    return clientError(400, ErrorCode.BODY_INVALID, `body is not valid JSON: ${err.message}`);
  }
  // Other fastify client errors (their messages are written for clients).
  if (fcode?.startsWith('FST_') && typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return clientError(fe.statusCode, HttpErrorCode.BAD_REQUEST, fe.message ?? 'bad request');
  }
  return { status: 500, body: { code: ErrorCode.INTERNAL, message: 'internal error' }, unexpected: true };
}

function clientError(status: number, code: string, message: string): { status: number; body: ApiError; unexpected: boolean } {
  return { status, body: { code, message }, unexpected: false };
}

function jsonPointerToPath(pointer: string | undefined): string {
  if (!pointer) return '';
  return formatSegments(
    pointer
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')),
  );
}

function formatSegments(segments: string[]): string {
  let out = '';
  for (const s of segments) out += /^\d+$/.test(s) ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

/**
 * The fastify error handler of the broker's API. core/server sets it at the root; the broker's route
 * plugins also set it in their own scope so they answer the same shape when mounted alone. Logs
 * unexpected errors (with the request id, via request.log) and answers them 500 INTERNAL.
 */
export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, unexpected } = toApiError(error, request);
  if (unexpected) request.log.error({ err: error, reqId: request.id }, 'request failed');
  else request.log.debug({ code: body.code, status, reqId: request.id }, 'request rejected');
  void reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** Answers unknown routes with 404 `{ code: 'ROUTE_NOT_FOUND' }`. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  const body: ApiError = { code: HttpErrorCode.ROUTE_NOT_FOUND, message: `no route ${request.method} ${request.url.split('?')[0] ?? ''}` };
  void reply.code(404).type('application/json; charset=utf-8').send(body);
}

/**
 * Validates `input` with `schema`. Returns the parsed output; throws JunctionError BODY_INVALID whose
 * issues carry the field path (`messages[3].valueBase64: Invalid base64`), prefixed with `prefix`.
 */
export function parseBody<S extends z.ZodType>(schema: S, input: unknown, prefix = ''): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = issuesFromZod(r.error, prefix);
  const first = issues[0];
  throw new JunctionError(ErrorCode.BODY_INVALID, `request is invalid${first ? `: ${first.path || '(body)'}: ${first.message}` : ''}`, {
    issues,
  });
}

/** BODY_INVALID with one issue. */
export function bodyInvalid(path: string, message: string): JunctionError {
  return new JunctionError(ErrorCode.BODY_INVALID, `request is invalid: ${path || '(body)'}: ${message}`, { issues: [{ path, message }] });
}
