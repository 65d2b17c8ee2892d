/**
 * How a route describes itself for the OpenAPI document: `schema: describeRoute({...})` in its route
 * options. This file imports nothing but zod's types, so every package that serves HTTP can use it
 * without loading the document generator (`@junction/openapi/describe`).
 *
 * The zod schemas named here are the ones the handler parses with (reuse them; export them when another
 * file needs them): the document is generated from them, so it cannot drift from what the route accepts.
 * They are for the document only: fastify does not validate with them (the handlers keep their own zod
 * parsing and their stable error codes), because they are held under a symbol key fastify never reads.
 */
import type { FastifySchema } from 'fastify';
import type { z } from 'zod';

/** The key of the route schema that holds the RouteDoc (a symbol: fastify's compilers and JSON never see it). */
export const ROUTE_DOC: unique symbol = Symbol.for('junction.openapi.route-doc') as never;

/**
 * The error envelopes of the API, each a shared component of the document:
 * - `api`: `{ code, message, issues?: [{ path, message }] }` (the /v1 API, health, metrics);
 * - `memphis`: `{ success: false, error, code }` (the Memphis REST gateway);
 * - `schema-registry`: `{ error_code, message }` (the Confluent-compatible schema registry).
 */
export const ErrorShape = { api: 'api', memphis: 'memphis', schemaRegistry: 'schema-registry' } as const;
export type ErrorShape = (typeof ErrorShape)[keyof typeof ErrorShape];

/** One answer of a route. */
export interface ResponseDoc {
  description: string;
  /** The body (documented as the schema's output). Absent: no body (204, 202 without one) or a body without a fixed shape. */
  schema?: z.ZodType | undefined;
  /** Content types of the body. Default `application/json`. */
  contentTypes?: readonly string[] | undefined;
  /** Response headers worth knowing (name → description). */
  headers?: Readonly<Record<string, string>> | undefined;
}

/** What a route says about itself; see describeRoute. */
export interface RouteDoc {
  /** One line, imperative or nominal ("List stations"). Required: the document test fails without it. */
  summary: string;
  /** Longer text (markdown). */
  description?: string | undefined;
  /** The area(s) the route belongs to, e.g. `stations`; see the tag list in @junction/openapi. */
  tags: readonly [string, ...string[]];
  /** The path parameters (an object schema, one property per `:param` of the URL). */
  params?: z.ZodType | undefined;
  /** The query string (an object schema). */
  query?: z.ZodType | undefined;
  /** The body (its input type is documented). */
  body?: z.ZodType | undefined;
  /** Content types the body may have. Default `application/json`. */
  bodyContentTypes?: readonly string[] | undefined;
  /** Whether a body is required. Default true when `body` is given. */
  bodyRequired?: boolean | undefined;
  /** The answers on success, by status; a string is a description without a body schema. */
  responses: Readonly<Record<number, string | ResponseDoc>>;
  /** Statuses of the error answers worth naming (each documented with the error envelope). 400 and 500 are always added. */
  errors?: readonly number[] | undefined;
  /** Which error envelope the route answers with. Default `api`. */
  errorShape?: ErrorShape | undefined;
  deprecated?: boolean | undefined;
}

/** A fastify route `schema` carrying a RouteDoc: `summary`, `tags` and `description` as fastify-swagger reads them, the rest under ROUTE_DOC. */
export interface RouteSchema extends FastifySchema {
  summary: string;
  description?: string;
  tags: string[];
  [ROUTE_DOC]: RouteDoc;
}

/**
 * The route `schema` that documents a route. Use it in the route options:
 *
 * ```ts
 * app.get('/v1/stations/:station', { schema: describeRoute({
 *   summary: 'Get a station', tags: ['stations'], params: StationParams,
 *   responses: { 200: { description: 'the station', schema: StationInfoAnswer } }, errors: [404],
 * }) }, handler);
 * ```
 * Never throws; the schemas are converted to JSON Schema only when the document is first asked for.
 */
export function describeRoute(doc: RouteDoc): RouteSchema {
  return {
    summary: doc.summary,
    ...(doc.description !== undefined && { description: doc.description }),
    tags: [...doc.tags],
    [ROUTE_DOC]: doc,
  };
}

/** The RouteDoc of a route's `schema`, if it has one. */
export function routeDocOf(schema: unknown): RouteDoc | undefined {
  if (!schema || typeof schema !== 'object') return undefined;
  return (schema as Partial<RouteSchema>)[ROUTE_DOC];
}

/** `Doc` without its index signature (a `.loose()` schema's output: answers may carry more fields). */
type Known<T> = { [K in keyof T as string extends K ? never : K]: T[K] };

/**
 * `true` when every value of the answer type `Answer` fits the documented output `Doc` (else `never`):
 * `const fits: [AnswerFits<StationInfo, z.output<typeof StationInfoAnswer>>] = [true];` stops the build
 * when an answer's interface drifts from the schema that documents it.
 */
export type AnswerFits<Answer, Doc> = Answer extends Known<Doc> ? true : never;
