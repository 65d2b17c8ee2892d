import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ntz } from '../src/rows.js';

describe('TIMESTAMP_NTZ text', () => {
  it('is toISOString() without the zone, for any integral ms (before 1970 and after 9999 too)', () => {
    for (const ms of [0, 1, -1, 999, 1_700_000_000_007, -86_400_001, 253_402_300_799_999, 253_402_300_800_000, -62_135_596_800_000]) {
      expect(ntz(ms)).toBe(new Date(ms).toISOString().slice(0, -1));
    }
    fc.assert(
      fc.property(fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }), (ms) => {
        expect(ntz(ms)).toBe(new Date(ms).toISOString().slice(0, -1));
      }),
      { numRuns: 5000 },
    );
  });
});
