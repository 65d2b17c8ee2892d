/**
 * Who is logged in and what they may do. The dashboard hides or disables what the grants do not
 * allow; the API still refuses it (the dashboard is a convenience, not the guard). The rules mirror
 * @junction/auth's: default deny, deny wins, `*` matches any run of characters, a listing (no name)
 * needs an allow grant whose pattern is all `*`.
 */
import { ApiError, api } from './api.js';

export type Resource = 'station' | 'group' | 'connector' | 'schema' | 'cluster';
export type Action = 'produce' | 'consume' | 'manage' | 'read';
interface Grant {
  resource: Resource;
  pattern: string;
  actions: Action[];
  effect: 'allow' | 'deny';
}

export interface Me {
  kind: 'user' | 'token';
  name: string;
  role?: string;
  grants: Grant[];
}

/**
 * `off`: the broker runs without auth (everything allowed); `anonymous`: auth on, not logged in;
 * `pending`: not known yet (pages load their data meanwhile; actions stay hidden until it is known).
 */
export type AuthState = { mode: 'off' } | { mode: 'anonymous' } | { mode: 'pending' } | { mode: 'user'; me: Me };

export async function whoami(): Promise<AuthState> {
  try {
    return { mode: 'user', me: await api<Me>('GET', '/v1/auth/whoami') };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { mode: 'off' };
    if (err instanceof ApiError && err.status === 401) return { mode: 'anonymous' };
    throw err;
  }
}

function matchPattern(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    's',
  );
  return re.test(name);
}

export function allows(state: AuthState, resource: Resource, action: Action, name?: string): boolean {
  if (state.mode === 'off') return true;
  if (state.mode === 'anonymous' || state.mode === 'pending') return false;
  let allowed = false;
  for (const g of state.me.grants) {
    if (g.resource !== resource || !g.actions.includes(action)) continue;
    const hits = name === undefined ? g.effect === 'deny' || /^\*+$/.test(g.pattern) : matchPattern(g.pattern, name);
    if (!hits) continue;
    if (g.effect === 'deny') return false;
    allowed = true;
  }
  return allowed;
}
