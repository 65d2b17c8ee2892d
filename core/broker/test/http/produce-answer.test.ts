/** The produce answer written without an object per message is the JSON the objects would give. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ProduceResult } from '../../src/contract.js';
import { produceAnswerJson, toOutcome } from '../../src/http/routes.js';

const offset = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const partition = fc.integer({ min: 0, max: 65_535 });
const result: fc.Arbitrary<ProduceResult> = fc.oneof(
  fc.record({ status: fc.constant('stored' as const), partition, offset }),
  fc.record({ status: fc.constant('duplicate' as const), partition, offset }),
  fc.record({ status: fc.constant('rejected' as const), code: fc.string(), message: fc.string({ unit: 'binary' }) }),
);

describe('produceAnswerJson', () => {
  it('equals JSON.stringify of the outcomes, for any mix of stored, duplicate and rejected', () => {
    fc.assert(
      fc.property(fc.array(result, { maxLength: 50 }), (results) => {
        expect(produceAnswerJson(results)).toBe(JSON.stringify({ results: results.map(toOutcome) }));
      }),
      { numRuns: 2000 },
    );
  });

  it('a rejection with quotes, backslashes and line breaks stays valid JSON', () => {
    const results: ProduceResult[] = [
      { status: 'stored', partition: 0, offset: 1 },
      { status: 'rejected', code: 'SCHEMA_VIOLATION', message: 'field "a\\b"\nmust be\u2028a number' },
    ];
    expect(JSON.parse(produceAnswerJson(results))).toEqual({
      results: [{ partition: 0, offset: 1 }, { error: { code: 'SCHEMA_VIOLATION', message: 'field "a\\b"\nmust be\u2028a number' } }],
    });
  });
});
