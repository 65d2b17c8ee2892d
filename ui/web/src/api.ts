/**
 * The dashboard talks to the broker over its /v1 API only, with the session's bearer token. A 401 on a
 * request tries the refresh token once, then sends the user to the login page.
 */

export interface ApiErrorBody {
  code: string;
  message: string;
  issues?: { path: string; message: string }[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(`${body.code}: ${body.message}`);
  }
}

interface Session {
  token: string;
  refreshToken: string;
}

const KEY = 'junction.session';

function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : undefined;
  } catch {
    return undefined;
  }
}

let session: Session | undefined = loadSession();
const onLogout = new Set<() => void>();

export function setSession(s: Session | undefined): void {
  session = s;
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

export function hasSession(): boolean {
  return session !== undefined;
}

export function onSessionLost(f: () => void): () => void {
  onLogout.add(f);
  return () => onLogout.delete(f);
}

function headers(extra?: Record<string, string>): Record<string, string> {
  return { ...(session && { authorization: `Bearer ${session.token}` }), ...extra };
}

async function refresh(): Promise<boolean> {
  if (!session) return false;
  const res = await fetch('/v1/auth/refresh', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refreshToken: session.refreshToken }),
  });
  if (!res.ok) return false;
  const t = (await res.json()) as { token: string; refreshToken: string };
  setSession({ token: t.token, refreshToken: t.refreshToken });
  return true;
}

/** A JSON call. Throws ApiError with the answer's `{code, message, issues}` on a non-2xx status. */
export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const init = (): RequestInit => ({
    method,
    headers: headers(body === undefined ? undefined : { 'content-type': 'application/json' }),
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  let res = await fetch(path, init());
  if (res.status === 401 && session && (await refresh())) res = await fetch(path, init());
  const text = await res.text();
  if (!res.ok) {
    let parsed: ApiErrorBody;
    try {
      parsed = JSON.parse(text) as ApiErrorBody;
    } catch {
      parsed = { code: `HTTP_${res.status}`, message: text || res.statusText };
    }
    if (res.status === 401 && path !== '/v1/auth/login') {
      setSession(undefined);
      for (const f of onLogout) f();
    }
    throw new ApiError(res.status, parsed);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

/**
 * Follows a live stream (Server-Sent Events read with fetch, so the bearer token goes in a header, not
 * the URL). Calls `onSnapshot` with each snapshot; reconnects after a drop; `close()` (the returned
 * function) ends it. One stream per page.
 */
export function live<T>(path: string, onSnapshot: (s: T) => void, onError?: (e: ApiErrorBody) => void): () => void {
  const controller = new AbortController();
  let stopped = false;
  const run = async (): Promise<void> => {
    while (!stopped) {
      // A stream the server ended after serving it (it ends each one after a while, to check the
      // credential again) is reopened at once; a failed one after a pause.
      let served = false;
      try {
        const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal: controller.signal });
        if (!res.ok || !res.body) {
          const body = (await res.json().catch(() => ({ code: `HTTP_${res.status}`, message: res.statusText }))) as ApiErrorBody;
          onError?.(body);
          if (res.status === 401 && !(await refresh())) {
            setSession(undefined);
            for (const f of onLogout) f();
            return;
          }
          if (res.status === 404 || res.status === 403) return;
        } else {
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            served = true;
            buf += value;
            let end: number;
            while ((end = buf.indexOf('\n\n')) >= 0) {
              const frame = buf.slice(0, end);
              buf = buf.slice(end + 2);
              let event = 'message';
              let data = '';
              for (const line of frame.split('\n')) {
                if (line.startsWith('event: ')) event = line.slice(7);
                else if (line.startsWith('data: ')) data += line.slice(6);
              }
              if (!data) continue;
              if (event === 'snapshot') onSnapshot(JSON.parse(data) as T);
              else if (event === 'error') onError?.(JSON.parse(data) as ApiErrorBody);
            }
          }
        }
      } catch {
        if (stopped) return;
        served = false;
      }
      if (!served) await new Promise((r) => setTimeout(r, 2000));
    }
  };
  void run();
  return () => {
    stopped = true;
    controller.abort();
  };
}

// ---- formatting ----
export function fmtNum(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return '—';
  return n.toLocaleString('en-US', { maximumFractionDigits: n < 10 ? 2 : 0 });
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function fmtTime(ms: number | string | undefined): string {
  if (ms === undefined) return '—';
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

export function fmtDuration(ms: number | undefined): string {
  if (ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(0)} h`;
  return `${(s / 86400).toFixed(0)} d`;
}

export const enc = encodeURIComponent;
