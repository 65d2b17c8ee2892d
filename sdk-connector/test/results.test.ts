import { describe, expect, it } from 'vitest';
import { checkWriteResults, deadLetter, isWriteResult, ok, retry } from '../src/results.js';

describe('results', () => {
  it('are plain data that survives structured clone', () => {
    const results = [ok(), retry('HTTP 429', { delayMs: 1500 }), retry('HTTP 503'), deadLetter('SINK_REJECTED', 'HTTP 400')];
    expect(structuredClone(results)).toEqual([
      { status: 'ok' },
      { status: 'retry', reason: 'HTTP 429', delayMs: 1500 },
      { status: 'retry', reason: 'HTTP 503' },
      { status: 'deadLetter', code: 'SINK_REJECTED', reason: 'HTTP 400' },
    ]);
    expect(Object.keys(retry('x'))).toEqual(['status', 'reason']);
  });

  it('retry refuses a bad delay', () => {
    expect(() => retry('x', { delayMs: -1 })).toThrow(expect.objectContaining({ code: 'PLUGIN_INVALID' }));
    expect(() => retry('x', { delayMs: Number.NaN })).toThrow(expect.objectContaining({ code: 'PLUGIN_INVALID' }));
  });

  it('isWriteResult tells well-formed results from anything else', () => {
    expect(isWriteResult({ status: 'ok' })).toBe(true);
    expect(isWriteResult({ status: 'retry', reason: 'r', delayMs: 0 })).toBe(true);
    expect(isWriteResult({ status: 'retry' })).toBe(false);
    expect(isWriteResult({ status: 'retry', reason: 'r', delayMs: -5 })).toBe(false);
    expect(isWriteResult({ status: 'deadLetter', code: '', reason: 'r' })).toBe(false);
    expect(isWriteResult({ status: 'done' })).toBe(false);
    expect(isWriteResult(undefined)).toBe(false);
    expect(isWriteResult('ok')).toBe(false);
  });

  it('checkWriteResults wants exactly one well-formed result per message', () => {
    expect(checkWriteResults([ok(), ok()], 2)).toHaveLength(2);
    expect(() => checkWriteResults([ok()], 2)).toThrow(/1 results for 2 messages/);
    expect(() => checkWriteResults(undefined, 1)).toThrow(expect.objectContaining({ code: 'PLUGIN_INVALID', retryable: false }));
    expect(() => checkWriteResults([ok(), { status: 'fine' }], 2)).toThrow(/result \[1\]/);
  });
});
