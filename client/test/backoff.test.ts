import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_RETRY } from '../src/index.js';
import { sleep } from '../src/backoff.js';

describe('backoffDelay', () => {
  const opts = { minDelayMs: 100, maxDelayMs: 5000 };

  it('doubles from minDelayMs and stops at maxDelayMs', () => {
    const top = (a: number) => backoffDelay(a, opts, () => 1);
    expect([0, 1, 2, 3, 4, 5, 6, 20, 1000].map(top)).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
  });

  it('jitters between half and all of the step', () => {
    for (let a = 0; a < 10; a++) {
      const step = Math.min(5000, 100 * 2 ** a);
      expect(backoffDelay(a, opts, () => 0)).toBe(step / 2);
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(a, opts);
        expect(d).toBeGreaterThanOrEqual(step / 2);
        expect(d).toBeLessThanOrEqual(step);
      }
    }
  });

  it('has sane defaults', () => {
    expect(DEFAULT_RETRY).toEqual({ retries: 5, minDelayMs: 100, maxDelayMs: 5000 });
  });
});

describe('sleep', () => {
  it('rejects with ABORTED at once when aborted', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = sleep(10_000, ac.signal);
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'ABORTED', retryable: false });
    expect(Date.now() - started).toBeLessThan(5000); // the sleep was 10 s
  });
});
