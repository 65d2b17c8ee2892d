import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allows, grantWithin, matchPattern, patternContains, patternsIntersect, ROLES } from '../src/index.js';
import type { Grant } from '../src/index.js';

// Small alphabets make collisions (and so interesting cases) likely.
const name = fc.string({ unit: fc.constantFrom('a', 'b', '-', '.'), maxLength: 8 });
const pattern = fc.string({ unit: fc.constantFrom('a', 'b', '-', '*'), minLength: 1, maxLength: 6 });

/** The reference: a regular expression built from the pattern. */
function reference(p: string, n: string): boolean {
  const re = new RegExp(
    `^${p
      .split('*')
      .map((s) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&'))
      .join('.*')}$`,
    's',
  );
  return re.test(n);
}

describe('patterns', () => {
  it('matchPattern agrees with a regular expression', () => {
    fc.assert(
      fc.property(pattern, name, (p, n) => matchPattern(p, n) === reference(p, n)),
      { numRuns: 5000 },
    );
  });

  it('examples', () => {
    expect(matchPattern('*', '')).toBe(true);
    expect(matchPattern('orders-*', 'orders-eu')).toBe(true);
    expect(matchPattern('orders-*', 'order')).toBe(false);
    expect(matchPattern('a*b*c', 'aXbYc')).toBe(true);
    expect(matchPattern('a*b*c', 'aXbY')).toBe(false);
    expect(patternContains('*', 'orders-*')).toBe(true);
    expect(patternContains('orders-*', '*')).toBe(false);
    expect(patternContains('orders-*', 'orders-eu-*')).toBe(true);
    expect(patternsIntersect('a*', '*b')).toBe(true);
    expect(patternsIntersect('a*', 'b*')).toBe(false);
  });

  it('patternContains is sound: a contained pattern matches only names the outer one matches', () => {
    fc.assert(
      fc.property(pattern, pattern, fc.array(name, { maxLength: 30 }), (outer, inner, names) => {
        if (!patternContains(outer, inner)) return true;
        // Names built from the inner pattern (its stars filled) and random ones.
        const built = names.map((n) => inner.replaceAll('*', n));
        return [...names, ...built].every((n) => !matchPattern(inner, n) || matchPattern(outer, n));
      }),
      { numRuns: 3000 },
    );
  });

  it('patternsIntersect finds a common name whenever one exists among random and built names', () => {
    fc.assert(
      fc.property(pattern, pattern, fc.array(name, { maxLength: 20 }), (a, b, names) => {
        const candidates = [...names, ...names.map((n) => a.replaceAll('*', n)), ...names.map((n) => b.replaceAll('*', n))];
        const common = candidates.some((n) => matchPattern(a, n) && matchPattern(b, n));
        return !common || patternsIntersect(a, b);
      }),
      { numRuns: 3000 },
    );
  });
});

const grant = fc.record({
  resource: fc.constantFrom('station', 'group'),
  pattern,
  actions: fc.subarray(['produce', 'consume', 'manage', 'read'] as const, { minLength: 1 }),
  effect: fc.constantFrom('allow', 'deny'),
}) as fc.Arbitrary<Grant>;

describe('decisions', () => {
  it('default deny: no grants allow nothing', () => {
    fc.assert(fc.property(name, (n) => !allows([], 'station', 'produce', n)));
  });

  it('deny wins: adding a matching deny grant always denies, whatever else is there', () => {
    fc.assert(
      fc.property(fc.array(grant, { maxLength: 8 }), pattern, name, (grants, p, n) => {
        if (!matchPattern(p, n)) return true;
        const withDeny = [...grants, { resource: 'station', pattern: p, actions: ['produce'], effect: 'deny' } as Grant];
        // Also in front: order must not matter.
        return !allows(withDeny, 'station', 'produce', n) && !allows([withDeny.at(-1)!, ...grants], 'station', 'produce', n);
      }),
      { numRuns: 3000 },
    );
  });

  it('allowed exactly when some allow matches and no deny matches (the spec, by brute force)', () => {
    fc.assert(
      fc.property(fc.array(grant, { maxLength: 8 }), name, fc.constantFrom('produce', 'consume', 'manage', 'read'), (grants, n, action) => {
        const rel = grants.filter((g) => g.resource === 'station' && g.actions.includes(action) && matchPattern(g.pattern, n));
        const expected = rel.some((g) => g.effect === 'allow') && !rel.some((g) => g.effect === 'deny');
        return allows(grants, 'station', action, n) === expected;
      }),
      { numRuns: 5000 },
    );
  });

  it('a grant within a set allows nothing the set denies (a token never exceeds its creator)', () => {
    fc.assert(
      fc.property(fc.array(grant, { maxLength: 6 }), grant, fc.array(name, { maxLength: 20 }), (creator, g, names) => {
        const single = { ...g, effect: 'allow' as const };
        if (!grantWithin(single, creator)) return true;
        const built = names.map((n) => g.pattern.replaceAll('*', n));
        return [...names, ...built].every((n) =>
          g.actions.every((a) => !allows([single], g.resource, a, n) || allows(creator, g.resource, a, n)),
        );
      }),
      { numRuns: 3000 },
    );
  });

  it('roles: viewer reads but does not produce; editor does not manage users; listings need "*"', () => {
    expect(allows(ROLES.viewer, 'station', 'read', 'x')).toBe(true);
    expect(allows(ROLES.viewer, 'station', 'produce', 'x')).toBe(false);
    expect(allows(ROLES.editor, 'cluster', 'manage', 'users')).toBe(false);
    expect(allows(ROLES.admin, 'cluster', 'manage', 'users')).toBe(true);
    const scoped: Grant[] = [{ resource: 'station', pattern: 'orders-*', actions: ['read'], effect: 'allow' }];
    expect(allows(scoped, 'station', 'read', undefined)).toBe(false);
    const withDeny: Grant[] = [...ROLES.admin, { resource: 'station', pattern: 'secret', actions: ['read'], effect: 'deny' }];
    expect(allows(withDeny, 'station', 'read', undefined)).toBe(false);
    expect(allows(withDeny, 'station', 'read', 'public')).toBe(true);
  });
});
