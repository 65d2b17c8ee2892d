/**
 * The document generator on a small app: what a RouteDoc becomes, that the schemas never validate, and
 * that nothing is converted before the document is first asked for.
 */
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeRoute, ErrorShape, jsonSchemaOf, openapiRoutes } from '../src/index.js';
import type { AccessDoc } from '../src/index.js';

const Params = z.strictObject({ station: z.string().regex(/^[a-z]+$/) });
const Body = z.strictObject({ partitions: z.int().min(1).default(1) });

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function build(
  opts: { auth?: boolean; access?: (method: string, url: string) => AccessDoc | undefined } = {},
): Promise<FastifyInstance> {
  app = Fastify();
  await app.register(openapiRoutes, { version: '9.9.9', ...opts });
  await app.register(async (scope) => {
    scope.post(
      '/v1/things/:station',
      {
        schema: describeRoute({
          summary: 'Make a thing',
          tags: ['stations'],
          params: Params,
          body: Body,
          bodyRequired: false,
          responses: {
            201: { description: 'made', schema: z.object({ id: z.string() }) },
            404: 'no such station, said by the route itself',
          },
          errors: [404, 409],
        }),
      },
      async (req, reply) => reply.code(201).send({ id: 'x', got: req.body ?? null, params: req.params }),
    );
    scope.get(
      '/gateway/:station',
      {
        schema: describeRoute({
          summary: 'Gateway',
          tags: ['memphis'],
          params: Params,
          errorShape: ErrorShape.memphis,
          responses: { 200: 'ok' },
        }),
      },
      async () => ({ ok: true }),
    );
  });
  await app.ready();
  return app;
}

async function documentOf(a: FastifyInstance): Promise<any> {
  const res = await a.inject({ method: 'GET', url: '/v1/openapi.json' });
  expect(res.statusCode).toBe(200);
  return res.json();
}

describe('openapiRoutes', () => {
  it('turns a RouteDoc into an operation: parameters, optional body, answers, the error envelope of its shape', async () => {
    const doc = await documentOf(await build());
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.version).toBe('9.9.9');
    const op = doc.paths['/v1/things/{station}'].post;
    expect(op.summary).toBe('Make a thing');
    expect(op.tags).toEqual(['stations']);
    expect(op.parameters).toEqual([{ in: 'path', name: 'station', required: true, schema: { type: 'string', pattern: '^[a-z]+$' } }]);
    expect(op.requestBody.required).toBe(false);
    expect(op.requestBody.content['application/json'].schema).toEqual({
      type: 'object',
      properties: { partitions: { type: 'integer', minimum: 1, default: 1 } },
      additionalProperties: false,
    });
    // Answers say what they hold, and may gain fields (no additionalProperties: false).
    expect(op.responses['201'].content['application/json'].schema).toEqual({
      type: 'object',
      properties: { id: { type: 'string' } },
      required: ['id'],
    });
    // The route's own description of a status wins; the others are the envelope.
    expect(op.responses['404']).toEqual({ description: 'no such station, said by the route itself' });
    for (const status of ['400', '409', '500'])
      expect(op.responses[status].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ApiError' });
    expect(doc.paths['/gateway/{station}'].get.responses['400'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/MemphisError',
    });
    expect(Object.keys(doc.components.schemas).sort()).toEqual(['ApiError', 'MemphisError', 'SchemaRegistryError']);
  });

  it('with auth: bearer security, none on open routes, 401 / 403 and the grants on the others', async () => {
    const access = (method: string, url: string): AccessDoc =>
      url === '/gateway/:station' ? { open: true } : { grants: [`manage on station {station} (${method})`] };
    const doc = await documentOf(await build({ auth: true, access }));
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/gateway/{station}'].get.security).toEqual([]);
    const op = doc.paths['/v1/things/{station}'].post;
    expect(op.security).toBeUndefined();
    expect(op.description).toBe('With auth on: needs `manage on station {station} (POST)`.');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['401', '403']));
  });

  it('without auth: no security requirement and no 401 / 403', async () => {
    const doc = await documentOf(await build({ access: () => ({ grants: ['read on every station'] }) }));
    expect(doc.security).toBeUndefined();
    expect(Object.keys(doc.paths['/v1/things/{station}'].post.responses)).not.toContain('401');
  });

  it('never validates with the schemas: the handler gets what the client sent', async () => {
    const a = await build();
    const res = await a.inject({ method: 'POST', url: '/v1/things/UPPER', payload: { partitions: 'many', extra: true } });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ id: 'x', got: { partitions: 'many', extra: true }, params: { station: 'UPPER' } });
  });

  it('builds the document on its first request, once', async () => {
    let calls = 0;
    const a = await build({ access: () => (calls++, { open: true }) });
    expect(calls).toBe(0);
    const first = await a.inject({ method: 'GET', url: '/v1/openapi.json' });
    const seen = calls;
    expect(seen).toBeGreaterThan(0);
    const again = await a.inject({ method: 'GET', url: '/v1/openapi.json' });
    expect(calls).toBe(seen);
    expect(again.body).toBe(first.body);
  });

  it('inlines a recursive schema: no `#/$defs/…` reference is left for the document to resolve', () => {
    type Cond = { field?: string; all?: Cond[] };
    const Cond: z.ZodType<Cond> = z.lazy(() => z.object({ field: z.string().optional(), all: z.array(Cond).optional() }));
    const json = jsonSchemaOf(z.object({ filter: Cond }), 'input');
    const text = JSON.stringify(json);
    expect(text).not.toContain('$defs');
    expect(text).not.toContain('$ref');
    const filter = (json as any).properties.filter;
    expect(filter.properties.field).toEqual({ type: 'string' });
    expect(filter.properties.all.items.description).toMatch(/recursive/);
  });
});
