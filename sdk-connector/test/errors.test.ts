import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { deserializeError, ErrorCode, isJunctionError, isRetryable, JunctionError, serializeError } from '../src/errors.js';

describe('JunctionError', () => {
  it('takes retryable from the code unless told', () => {
    expect(new JunctionError(ErrorCode.CONNECTION_FAILED, 'x').retryable).toBe(true);
    expect(new JunctionError(ErrorCode.TIMEOUT, 'x').retryable).toBe(true);
    expect(new JunctionError(ErrorCode.AUTH_FAILED, 'x').retryable).toBe(false);
    expect(new JunctionError(ErrorCode.SINK_REJECTED, 'x', { retryable: true }).retryable).toBe(true);
    expect(new JunctionError('MY_PLUGIN_CODE', 'x').retryable).toBe(false);
  });

  it('keeps its cause', () => {
    const cause = new Error('socket hang up');
    const err = new JunctionError(ErrorCode.CONNECTION_FAILED, 'upload failed', { cause });
    expect(err.cause).toBe(cause);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('JunctionError');
  });

  it('is recognised structurally, e.g. from another copy of the SDK', () => {
    class Foreign extends Error {
      code = 'NOT_FOUND';
      retryable = false;
    }
    expect(isJunctionError(new Foreign('x'))).toBe(true);
    expect(isJunctionError(new Error('x'))).toBe(false);
    expect(isJunctionError({ code: 'X', retryable: true, message: 'plain' })).toBe(false);
  });
});

describe('isRetryable', () => {
  it('follows JunctionError.retryable, transient system errors and TimeoutError', () => {
    expect(isRetryable(new JunctionError(ErrorCode.TIMEOUT, 'x'))).toBe(true);
    expect(isRetryable(new JunctionError(ErrorCode.CONFIG_INVALID, 'x'))).toBe(false);
    expect(isRetryable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isRetryable(Object.assign(new Error('nope'), { code: 'EACCES' }))).toBe(false);
    expect(isRetryable(new DOMException('timed out', 'TimeoutError'))).toBe(true);
    expect(isRetryable(new TypeError('x'))).toBe(false);
    expect(isRetryable('string')).toBe(false);
    expect(isRetryable(undefined)).toBe(false);
  });
});

describe('serializeError / deserializeError', () => {
  it('round-trips a JunctionError through structured clone with code, retryable, issues, stack and cause', () => {
    const err = new JunctionError(ErrorCode.CONFIG_INVALID, 'config is invalid: bucket: Required', {
      issues: [{ path: 'bucket', message: 'Required' }],
      cause: new JunctionError(ErrorCode.NOT_FOUND, 'inner'),
    });
    const plain = structuredClone(serializeError(err));
    expect(plain).toMatchObject({
      code: 'CONFIG_INVALID',
      message: err.message,
      retryable: false,
      issues: [{ path: 'bucket', message: 'Required' }],
    });
    const back = deserializeError(plain);
    expect(back).toBeInstanceOf(JunctionError);
    expect(back.code).toBe('CONFIG_INVALID');
    expect(back.retryable).toBe(false);
    expect(back.issues).toEqual([{ path: 'bucket', message: 'Required' }]);
    expect(back.stack).toBe(err.stack);
    expect((back.cause as JunctionError).code).toBe('NOT_FOUND');
  });

  it('gives other errors a code from what they are', () => {
    expect(serializeError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toMatchObject({
      code: 'CONNECTION_FAILED',
      retryable: true,
    });
    expect(serializeError(Object.assign(new Error('slow'), { code: 'ETIMEDOUT' }))).toMatchObject({ code: 'TIMEOUT', retryable: true });
    expect(serializeError(new TypeError('x is undefined'))).toMatchObject({
      code: 'INTERNAL',
      message: 'x is undefined',
      retryable: false,
      name: 'TypeError',
    });
    expect(serializeError('boom')).toEqual({ code: 'INTERNAL', message: 'boom', retryable: false });
    expect(serializeError({ weird: 1 })).toMatchObject({ code: 'INTERNAL', retryable: false });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(serializeError(circular).code).toBe('INTERNAL');
  });

  it('stops a cause chain that loops', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    const plain = serializeError(a);
    expect(() => structuredClone(plain)).not.toThrow();
  });

  it('rebuilds malformed input as INTERNAL rather than throwing', () => {
    expect(deserializeError(null).code).toBe('INTERNAL');
    expect(deserializeError({ code: 42 }).code).toBe('INTERNAL');
    expect(deserializeError({ code: 'TIMEOUT', message: 'm', retryable: true }).retryable).toBe(true);
  });

  it('crosses a real worker thread', async () => {
    const errorsModule = new URL('../dist/errors.js', import.meta.url).href;
    const worker = new Worker(
      `import('${errorsModule}').then(({ JunctionError, serializeError }) => {
         const { parentPort } = require('node:worker_threads');
         parentPort.postMessage(serializeError(new JunctionError('SINK_REJECTED', 'row too large', { issues: [{ path: 'value', message: 'too large' }] })));
       });`,
      { eval: true },
    );
    const plain = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    const err = deserializeError(plain);
    expect(err.code).toBe('SINK_REJECTED');
    expect(err.retryable).toBe(false);
    expect(err.issues).toEqual([{ path: 'value', message: 'too large' }]);
    expect(err.stack).toContain('row too large');
  });
});
