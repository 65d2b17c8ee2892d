/**
 * Deciding: may these grants do `action` on `resource` named `name`? Default deny; deny wins.
 */
import { ROLES } from './model.js';
import type { Action, Grant, Principal, Resource } from './model.js';
import { matchPattern, patternContains, patternsIntersect } from './patterns.js';

/**
 * Whether `grants` allow `action` on the `resource` named `name`. `name` undefined means the whole
 * collection (a listing): allowed only when an allow grant with pattern `*` covers it and no deny
 * grant for that resource and action exists (a listing would show what a deny hides).
 */
export function allows(grants: readonly Grant[], resource: Resource, action: Action, name: string | undefined): boolean {
  let allowed = false;
  for (const g of grants) {
    if (g.resource !== resource || !g.actions.includes(action)) continue;
    const hits =
      name === undefined ? (g.effect === 'deny' ? true : g.pattern.split('').every((c) => c === '*')) : matchPattern(g.pattern, name);
    if (!hits) continue;
    if (g.effect === 'deny') return false;
    allowed = true;
  }
  return allowed;
}

/** The grants a principal acts with, as the list(s) that must ALL allow a request. */
export function grantSets(p: Principal): readonly (readonly Grant[])[] {
  return p.kind === 'user' ? [ROLES[p.role]] : [p.grants, ROLES[p.ownerRole]];
}

/** Whether the principal may do `action` on `resource` `name` (a token: its grants AND its owner's). */
export function principalAllows(p: Principal, resource: Resource, action: Action, name: string | undefined): boolean {
  return grantSets(p).every((gs) => allows(gs, resource, action, name));
}

/**
 * Whether every name and action `grant` allows is also allowed by `grants` (so a token with `grant`
 * gets nothing its creator lacks). A deny grant is always within. Sound, see patternContains.
 */
export function grantWithin(grant: Grant, grants: readonly Grant[]): boolean {
  if (grant.effect === 'deny') return true;
  return grant.actions.every((action) => {
    const relevant = grants.filter((g) => g.resource === grant.resource && g.actions.includes(action));
    if (relevant.some((g) => g.effect === 'deny' && patternsIntersect(g.pattern, grant.pattern))) return false;
    return relevant.some((g) => g.effect === 'allow' && patternContains(g.pattern, grant.pattern));
  });
}
