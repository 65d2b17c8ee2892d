import { describe, expect, it } from 'vitest';
import { isValidSdkRange, satisfiesSdk, SDK_VERSION } from '../src/semver.js';

describe('satisfiesSdk', () => {
  const cases: [string, string, boolean][] = [
    ['*', '1.0.0', true],
    ['*', '0.0.1', true],
    ['^1', '1.0.0', true],
    ['^1', '1.9.3', true],
    ['^1', '2.0.0', false],
    ['^1', '0.9.9', false],
    ['^1.2', '1.2.0', true],
    ['^1.2', '1.1.9', false],
    ['^1.2', '1.99.0', true],
    ['^1.2.3', '1.2.2', false],
    ['^1.2.3', '1.2.3', true],
    ['^0.2', '0.2.5', true],
    ['^0.2', '0.3.0', false],
    ['^0.0.3', '0.0.3', true],
    ['^0.0.3', '0.0.4', false],
    ['^0', '0.9.0', true],
    ['^0', '1.0.0', false],
    ['~1.2', '1.2.9', true],
    ['~1.2', '1.3.0', false],
    ['~1.2.3', '1.2.2', false],
    ['~1.2.3', '1.2.4', true],
    ['~1', '1.5.0', true],
    ['~1', '2.0.0', false],
    ['>=1.2.3', '1.2.3', true],
    ['>=1.2.3', '1.2.2', false],
    ['>=1.2.3', '7.0.0', true],
    ['>=1', '1.0.0', true],
    ['1.2.3', '1.2.3', true],
    ['1.2.3', '1.2.4', false],
    ['1', '1.4.0', true],
    ['1.2', '1.3.0', false],
    ['^1 || ^2', '2.1.0', true],
    ['^1 || ^2', '3.0.0', false],
    // prereleases: just below their release; never inside an excluded upper bound
    ['^1', '1.1.0-beta.1', true],
    ['>=1.0.0', '1.0.0-rc.1', false],
    ['^1', '2.0.0-beta.1', false],
    ['^1', '1.0.0+build.5', true],
  ];
  for (const [range, version, expected] of cases) {
    it(`${range} ${expected ? '∋' : '∌'} ${version}`, () => {
      expect(satisfiesSdk(range, version)).toBe(expected);
    });
  }

  it('answers false, never throws, for what it cannot parse', () => {
    for (const bad of ['', ' ', '^', '^x', '>1', '<2', '1.2.3.4', 'latest', '^01', '1 - 2']) {
      expect(isValidSdkRange(bad)).toBe(false);
      expect(satisfiesSdk(bad, '1.0.0')).toBe(false);
    }
    expect(satisfiesSdk('^1', 'not-a-version')).toBe(false);
  });

  it('defaults to the SDK version, which satisfies ^1', () => {
    expect(SDK_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(satisfiesSdk('^1')).toBe(true);
    expect(satisfiesSdk('^2')).toBe(false);
  });
});
