import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import Fastify from 'fastify';
import { ProduceBody } from '@junction/protocol';
import { JunctionError } from '../../src/errors.js';
import { errorHandler, httpStatusFor, notFoundHandler, parseBody, toApiError } from '../../src/http/index.js';

describe('httpStatusFor', () => {
  it('maps every broker code to its status', () => {
    expect(httpStatusFor('STATION_NOT_FOUND')).toBe(404);
    expect(httpStatusFor('GROUP_NOT_FOUND')).toBe(404);
    expect(httpStatusFor('PARTITION_NOT_FOUND')).toBe(404);
    expect(httpStatusFor('STATION_EXISTS')).toBe(409);
    expect(httpStatusFor('GROUP_EXISTS')).toBe(409);
    expect(httpStatusFor('BODY_INVALID')).toBe(400);
    expect(httpStatusFor('CONFIG_INVALID')).toBe(400);
    expect(httpStatusFor('OFFSET_OUT_OF_RANGE')).toBe(400);
    expect(httpStatusFor('CONFIG_IMMUTABLE')).toBe(422);
    expect(httpStatusFor('STATION_RESERVED')).toBe(422);
    expect(httpStatusFor('MESSAGE_TOO_LARGE')).toBe(413);
    expect(httpStatusFor('STORE_CLOSED')).toBe(503);
    expect(httpStatusFor('LOG_CORRUPT')).toBe(500);
    expect(httpStatusFor('SOMETHING_ELSE')).toBe(500);
  });
});

describe('parseBody', () => {
  it('throws BODY_INVALID with bracketed field paths', () => {
    const body = { messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }, { valueBase64: '***' }] };
    let err: unknown;
    try {
      parseBody(ProduceBody, body);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JunctionError);
    const je = err as JunctionError;
    expect(je.code).toBe('BODY_INVALID');
    expect(je.issues?.map((i) => i.path)).toEqual(['messages[3].valueBase64']);
    expect(je.message).toContain('messages[3].valueBase64');
  });

  it('prefixes paths and returns the parsed output', () => {
    expect(parseBody(z.object({ n: z.int().default(3) }), {})).toEqual({ n: 3 });
    expect(() => parseBody(z.object({ n: z.int() }), { n: 'x' }, 'query')).toThrow(/query\.n/);
  });
});

describe('toApiError', () => {
  it('hides the message of unexpected errors', () => {
    const r = toApiError(new Error('secret detail'));
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ code: 'INTERNAL', message: 'internal error' });
    expect(r.unexpected).toBe(true);
  });

  it('keeps issues of a JunctionError', () => {
    const r = toApiError(new JunctionError('CONFIG_INVALID', 'bad', { issues: [{ path: 'a.b', message: 'Required' }] }));
    expect(r).toEqual({
      status: 400,
      body: { code: 'CONFIG_INVALID', message: 'bad', issues: [{ path: 'a.b', message: 'Required' }] },
      unexpected: false,
    });
  });
});

describe('errorHandler at the root', () => {
  it('answers fastify schema validation errors, thrown bugs and unknown routes in one shape', async () => {
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    app.setNotFoundHandler(notFoundHandler);
    app.post(
      '/schema',
      {
        schema: {
          body: { type: 'object', required: ['a'], properties: { a: { type: 'object', properties: { b: { type: 'integer' } } } } },
        },
      },
      async () => ({ ok: true }),
    );
    app.get('/boom', async () => {
      throw new Error('database password is hunter2');
    });
    app.get('/default-json', async () => ({ ok: true }));
    app.post('/default-json', async () => ({ ok: true }));

    const v = await app.inject({ method: 'POST', url: '/schema', payload: { a: { b: 'x' } } });
    expect(v.statusCode).toBe(400);
    expect(v.json()).toMatchObject({ code: 'BODY_INVALID', issues: [{ path: 'a.b' }] });

    const boom = await app.inject({ method: 'GET', url: '/boom' });
    expect(boom.statusCode).toBe(500);
    expect(boom.json()).toEqual({ code: 'INTERNAL', message: 'internal error' });

    const nf = await app.inject({ method: 'GET', url: '/nope?x=1' });
    expect(nf.statusCode).toBe(404);
    expect(nf.json()).toEqual({ code: 'ROUTE_NOT_FOUND', message: 'no route GET /nope' });

    // fastify's own JSON parser (outside the broker's scope) maps to the same code
    const bad = await app.inject({
      method: 'POST',
      url: '/default-json',
      headers: { 'content-type': 'application/json' },
      payload: '{"a":',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'BODY_INVALID' });

    const media = await app.inject({
      method: 'POST',
      url: '/default-json',
      headers: { 'content-type': 'application/xml' },
      payload: '<a/>',
    });
    expect(media.statusCode).toBe(415);
    expect(media.json()).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
    await app.close();
  });
});
