/**
 * The auth service: bootstrap, login / refresh / logout, verifying credentials on the request path,
 * deciding grants, and managing users and service tokens. State lives in memory (read at open) and
 * every change is written through the AuthStore before it is answered; changes are serialized.
 *
 * On the request path nothing is slow: a service token is checked with one sha256, a session JWT with
 * one HMAC, and both are then cached (by their exact text); every check still looks up the live
 * session / token / user, so a logout, a revocation, a deletion or a role change applies at once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { JwtKeys } from './jwt.js';
import { FailureLimiter } from './limiter.js';
import { Grant, Password, RoleName, UserName, ROLES } from './model.js';
import type { Action, AuthState, Principal, Resource, SessionRecord, TokenRecord, UserRecord } from './model.js';
import { decoyHash, hashPassword, verifyPassword, DEFAULT_SCRYPT_LOG_N } from './passwords.js';
import { grantWithin, principalAllows } from './policy.js';
import type { AuthStore, VersionedState } from './store.js';
import { AuthErrorCode, JunctionError, forbidden, unauthenticated } from './errors.js';

export interface AuthLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface AuthServiceOptions {
  store: AuthStore;
  /** Creates the `admin` user when there is no user yet. Never logged. */
  adminPassword?: string | undefined;
  logger?: AuthLogger | undefined;
  /** Lifetime of access JWTs (default 900 s). */
  accessTtlS?: number | undefined;
  /** Lifetime of a session's refresh token, renewed on each refresh (default 7 days). */
  refreshTtlS?: number | undefined;
  /** scrypt cost (log2 N) of new password hashes. Default 17; tests lower it. */
  scryptLogN?: number | undefined;
  /** The clock (ms). Default Date.now. */
  now?: (() => number) | undefined;
  /** Failed logins allowed per user within `loginWindowS` (default 10) and per address (default 50). */
  loginFailuresPerUser?: number | undefined;
  loginFailuresPerAddress?: number | undefined;
  /** Default 300 s. */
  loginWindowS?: number | undefined;
}

/** What login and refresh answer. */
export interface SessionTokens {
  /** An access JWT, sent as `Authorization: Bearer …`. */
  token: string;
  /** When `token` expires (ISO 8601). */
  expiresAt: string;
  /** Exchange at POST /v1/auth/refresh for new tokens (once: it is rotated). */
  refreshToken: string;
}

/** A service token as listed: never its secret. */
export interface TokenInfo {
  id: string;
  name: string;
  owner: string;
  grants: Grant[];
  createdAt: string;
  expiresAt?: string | undefined;
  revoked: boolean;
}

export interface UserInfo {
  name: string;
  role: RoleName;
  createdAt: string;
  updatedAt: string;
}

export const CreateUserBody = z.strictObject({ name: UserName, password: Password, role: RoleName.default('viewer') });
export const UpdateUserBody = z
  .strictObject({ role: RoleName.optional(), password: Password.optional() })
  .refine((b) => b.role !== undefined || b.password !== undefined, { message: 'give "role", "password" or both' });
export const CreateTokenBody = z.strictObject({
  name: z.string().min(1).max(128),
  grants: z.array(Grant).min(1).max(100),
  /** Seconds until it expires; absent: never (revoke it instead). */
  expiresInS: z
    .int()
    .min(1)
    .max(10 * 365 * 86_400)
    .optional(),
});
export const LoginBody = z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) });
export const RefreshBody = z.strictObject({ refreshToken: z.string().min(1).max(512) });

const TOKEN_RE = /^jnt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const REFRESH_RE = /^jrt_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;
const MAX_CACHE = 10_000;
const MAX_SESSIONS_PER_USER = 100;

type Verified = { kind: 'session'; sid: string; exp: number } | { kind: 'token'; id: string };

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const sameHex = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
const iso = (ms: number): string => new Date(ms).toISOString();

export class AuthService {
  private state: AuthState;
  private rev: number;
  private unwatch: (() => void) | undefined;
  private users = new Map<string, UserRecord>();
  private tokens = new Map<string, TokenRecord>();
  private sessions = new Map<string, SessionRecord>();
  private readonly cache = new Map<string, Verified>();
  private queue: Promise<unknown> = Promise.resolve();
  readonly now: () => number;
  readonly accessTtlS: number;
  readonly refreshTtlS: number;
  private readonly logN: number;
  private readonly perUser: FailureLimiter;
  private readonly perAddress: FailureLimiter;

  private constructor(
    private readonly store: AuthStore,
    loaded: VersionedState,
    private readonly keys: JwtKeys,
    opts: AuthServiceOptions,
  ) {
    this.state = loaded.state;
    this.rev = loaded.rev;
    this.index();
    // Another node's change (a revocation, a new user) applies here as soon as it arrives.
    this.unwatch = opts.store.watch?.((v) => {
      if (v.rev <= this.rev) return;
      this.state = v.state;
      this.rev = v.rev;
      this.index();
    });
    this.now = opts.now ?? Date.now;
    this.accessTtlS = opts.accessTtlS ?? 900;
    this.refreshTtlS = opts.refreshTtlS ?? 7 * 86_400;
    this.logN = opts.scryptLogN ?? DEFAULT_SCRYPT_LOG_N;
    const windowMs = (opts.loginWindowS ?? 300) * 1000;
    this.perUser = new FailureLimiter(opts.loginFailuresPerUser ?? 10, windowMs);
    this.perAddress = new FailureLimiter(opts.loginFailuresPerAddress ?? 50, windowMs);
  }

  /**
   * Loads the state and the signing secrets; creates `admin` from `adminPassword` when there is no user.
   * @throws AUTH_BOOTSTRAP_REQUIRED (no user and no password), AUTH_STATE_CORRUPT, CONFIG_INVALID (a bad password)
   */
  static async open(opts: AuthServiceOptions): Promise<AuthService> {
    const loaded = await opts.store.load();
    const keys = new JwtKeys(await opts.store.secrets());
    const svc = new AuthService(opts.store, loaded, keys, opts);
    if (svc.state.users.length === 0) {
      if (opts.adminPassword === undefined || opts.adminPassword === '') {
        throw new JunctionError(
          AuthErrorCode.AUTH_BOOTSTRAP_REQUIRED,
          'auth is enabled and there is no user yet: set JUNCTION_ADMIN_PASSWORD (at least 8 characters) to create the "admin" user',
        );
      }
      const pw = Password.safeParse(opts.adminPassword);
      if (!pw.success) {
        throw new JunctionError('CONFIG_INVALID', `JUNCTION_ADMIN_PASSWORD: ${pw.error.issues[0]?.message ?? 'invalid'}`, {
          issues: [{ path: 'JUNCTION_ADMIN_PASSWORD', message: pw.error.issues[0]?.message ?? 'invalid' }],
        });
      }
      try {
        await svc.createUser({ name: 'admin', password: opts.adminPassword, role: 'admin' });
        opts.logger?.info({ user: 'admin' }, 'auth: created the "admin" user from JUNCTION_ADMIN_PASSWORD');
      } catch (err) {
        // Another node of a cluster bootstrapped at the same moment.
        if (!(err instanceof JunctionError && err.code === AuthErrorCode.USER_EXISTS)) throw err;
      }
    }
    return svc;
  }

  // ---------------------------------------------------------------- the request path

  /**
   * The principal of a bearer credential (a session JWT, a Memphis JWT or a service token).
   * @throws UNAUTHENTICATED when it is missing, malformed, forged, expired or revoked
   */
  async authenticate(credential: string | undefined): Promise<Principal> {
    if (credential === undefined || credential === '' || credential.length > 4096) throw unauthenticated();
    let v = this.cache.get(credential);
    if (!v) {
      v = await this.verifyCredential(credential);
      // Made a moment ago on another node, not here yet: read the newest state once.
      if (!v && TOKEN_RE.test(credential) && (await this.catchUp())) v = await this.verifyCredential(credential);
      if (!v) throw unauthenticated('the token is invalid, expired or revoked');
      if (this.cache.size >= MAX_CACHE) this.cache.clear();
      this.cache.set(credential, v);
    }
    let p = this.resolve(v);
    if (!p && v.kind === 'session' && this.sessions.get(v.sid) === undefined && (await this.catchUp())) p = this.resolve(v);
    if (!p) {
      this.cache.delete(credential);
      throw unauthenticated('the token is invalid, expired or revoked');
    }
    return p;
  }

  private catching: Promise<boolean> | undefined;
  private lastCatchUp = -Infinity;

  /**
   * Shared stores (a cluster): loads the newest state when a credential is unknown here, so a token or
   * session made on another node works at once. At most one load at a time and one per 200 ms (a caller
   * inside that window waits for its end), so unknown credentials cannot turn into a flood of reads.
   * True when the caller should look again (the state may have moved, by this load or by the watch).
   */
  private catchUp(): Promise<boolean> {
    if (!this.store.watch) return Promise.resolve(false);
    this.catching ??= (async () => {
      const wait = this.lastCatchUp + 200 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      this.lastCatchUp = performance.now();
      try {
        const fresh = await this.store.load();
        if (fresh.rev > this.rev) {
          this.state = fresh.state;
          this.rev = fresh.rev;
          this.index();
        }
      } catch {
        // The store is unreachable: answer with what this node knows.
      }
      return true;
    })().finally(() => (this.catching = undefined));
    return this.catching;
  }

  /** @throws FORBIDDEN naming the action and the resource */
  authorize(p: Principal, resource: Resource, action: Action, name: string | undefined): void {
    if (!principalAllows(p, resource, action, name)) throw forbidden(action, resource, name);
  }

  allows(p: Principal, resource: Resource, action: Action, name: string | undefined): boolean {
    return principalAllows(p, resource, action, name);
  }

  private async verifyCredential(credential: string): Promise<Verified | undefined> {
    const t = TOKEN_RE.exec(credential);
    if (t) {
      const rec = this.tokens.get(t[1]!);
      if (!rec || !sameHex(sha256(t[2]!), rec.secretHash)) return undefined;
      return { kind: 'token', id: rec.id };
    }
    const claims = await this.keys.verify(credential, this.now());
    if (!claims || claims['typ'] !== 'access' || typeof claims['sid'] !== 'string' || typeof claims.exp !== 'number') return undefined;
    return { kind: 'session', sid: claims['sid'], exp: claims.exp * 1000 };
  }

  private resolve(v: Verified): Principal | undefined {
    const now = this.now();
    if (v.kind === 'session') {
      if (now >= v.exp) return undefined;
      const s = this.sessions.get(v.sid);
      if (!s || now >= s.expiresAt) return undefined;
      if (s.tokenId !== undefined) {
        const tp = this.tokenPrincipal(s.tokenId, now);
        return tp && { ...tp, sessionId: s.id };
      }
      const u = this.users.get(s.user);
      return u && { kind: 'user', name: u.name, role: u.role, sessionId: s.id };
    }
    return this.tokenPrincipal(v.id, now);
  }

  private tokenPrincipal(id: string, now: number): Principal | undefined {
    const rec = this.tokens.get(id);
    if (!rec || rec.revokedAt !== undefined || (rec.expiresAt !== undefined && now >= rec.expiresAt)) return undefined;
    const owner = this.users.get(rec.owner);
    if (!owner) return undefined;
    return { kind: 'token', id: rec.id, name: rec.name, owner: owner.name, ownerRole: owner.role, grants: rec.grants };
  }

  // ---------------------------------------------------------------- sessions

  /**
   * @param from the client's address (for the per-address limit)
   * @throws UNAUTHENTICATED for an unknown user or a wrong password (the same answer, in about the same time);
   *   LOGIN_RATE_LIMITED after too many failures for the user or from the address
   */
  async login(username: string, password: string, from?: string): Promise<SessionTokens> {
    const user = await this.checkPassword(username, password, from);
    return this.newSession(user.name, 'v1');
  }

  /** Exchanges a refresh token for new tokens; the old refresh token stops working. @throws UNAUTHENTICATED */
  async refresh(refreshToken: string): Promise<SessionTokens> {
    const m = REFRESH_RE.exec(refreshToken);
    if (!m) throw unauthenticated('the refresh token is invalid, expired or revoked');
    const [sid, secret] = [m[1]!, m[2]!];
    return this.mutate(async (draft) => {
      const s = draft.sessions.find((x) => x.id === sid);
      const now = this.now();
      if (!s || s.kind !== 'v1' || now >= s.expiresAt || !sameHex(sha256(secret), s.refreshHash) || !this.users.has(s.user)) {
        throw unauthenticated('the refresh token is invalid, expired or revoked');
      }
      const next = randomBytes(32).toString('base64url');
      s.refreshHash = sha256(next);
      s.expiresAt = now + this.refreshTtlS * 1000;
      return { ...(await this.accessToken(s)), refreshToken: `jrt_${s.id}_${next}` };
    });
  }

  /** Ends what the principal presented: its session (and the session's tokens), or the service token itself. */
  async logout(p: Principal): Promise<void> {
    await this.mutate(async (draft) => {
      if (p.sessionId !== undefined) draft.sessions = draft.sessions.filter((s) => s.id !== p.sessionId);
      else if (p.kind === 'token') {
        const t = draft.tokens.find((x) => x.id === p.id);
        if (t && t.revokedAt === undefined) t.revokedAt = this.now();
      }
    });
  }

  /** The principal as `GET /v1/auth/whoami` shows it. */
  describe(p: Principal): object {
    return p.kind === 'user'
      ? { kind: 'user', name: p.name, role: p.role, grants: ROLES[p.role] }
      : { kind: 'token', id: p.id, name: p.name, owner: p.owner, ownerRole: p.ownerRole, grants: p.grants };
  }

  private async checkPassword(username: string, password: string, from: string | undefined): Promise<UserRecord> {
    const now = this.now();
    const userKey = `u:${username}`;
    const addrKey = from !== undefined ? `a:${from}` : undefined;
    const wait = Math.max(this.perUser.retryAfterMs(userKey, now), addrKey ? this.perAddress.retryAfterMs(addrKey, now) : 0);
    if (wait > 0) {
      throw new JunctionError(AuthErrorCode.LOGIN_RATE_LIMITED, `too many failed logins: retry in ${Math.ceil(wait / 1000)} s`, {
        retryable: true,
      });
    }
    const user = this.users.get(username);
    const ok = await verifyPassword(password, user?.passwordHash ?? (await decoyHash(this.logN)));
    if (!user || !ok) {
      this.perUser.fail(userKey, now);
      if (addrKey) this.perAddress.fail(addrKey, now);
      throw unauthenticated('wrong username or password');
    }
    this.perUser.clear(userKey);
    return user;
  }

  private async newSession(
    user: string,
    kind: 'v1' | 'memphis',
    tokenId?: string,
    ttlS = this.refreshTtlS,
  ): Promise<SessionTokens & { session: SessionRecord }> {
    return this.mutate(async (draft) => {
      const now = this.now();
      const secret = randomBytes(32).toString('base64url');
      const s: SessionRecord = {
        id: randomBytes(16).toString('hex'),
        user,
        refreshHash: sha256(secret),
        createdAt: now,
        expiresAt: now + ttlS * 1000,
        kind,
        ...(tokenId !== undefined && { tokenId }),
      };
      const mine = draft.sessions.filter((x) => x.user === user);
      if (mine.length >= MAX_SESSIONS_PER_USER) {
        const oldest = mine.sort((a, b) => a.createdAt - b.createdAt)[0]!;
        draft.sessions = draft.sessions.filter((x) => x.id !== oldest.id);
      }
      draft.sessions.push(s);
      return { ...(await this.accessToken(s)), refreshToken: `jrt_${s.id}_${secret}`, session: s };
    });
  }

  private async accessToken(s: SessionRecord, ttlS = this.accessTtlS): Promise<{ token: string; expiresAt: string }> {
    const now = this.now();
    const exp = Math.floor(now / 1000) + ttlS;
    const token = await this.keys.sign({ typ: 'access', sid: s.id, sub: s.user }, now, exp);
    return { token, expiresAt: iso(exp * 1000) };
  }

  // ---------------------------------------------------------------- Memphis gateway

  /**
   * Memphis's `/auth/authenticate`: a username with its password, or with a connection token (a service
   * token whose owner or name is `username`). Answers Memphis's fields with signed JWTs.
   * @throws UNAUTHENTICATED
   */
  async memphisAuthenticate(
    body: {
      username: string;
      password?: string | undefined;
      connection_token?: string | undefined;
      token_expiry_in_minutes: number;
      refresh_token_expiry_in_minutes: number;
    },
    from?: string,
  ): Promise<MemphisTokens> {
    let tokenId: string | undefined;
    let user: string;
    if (body.connection_token !== undefined) {
      const p = await this.authenticate(body.connection_token).catch(() => undefined);
      if (!p || p.kind !== 'token' || p.sessionId !== undefined || (p.owner !== body.username && p.name !== body.username)) {
        throw unauthenticated('wrong username or connection token');
      }
      tokenId = p.id;
      user = p.owner;
    } else {
      user = (await this.checkPassword(body.username, body.password ?? '', from)).name;
    }
    const refreshS = body.refresh_token_expiry_in_minutes * 60;
    const { session } = await this.newSession(user, 'memphis', tokenId, refreshS);
    return this.mutate((draft) =>
      this.memphisTokens(draft, session.id, body.username, body.token_expiry_in_minutes, body.refresh_token_expiry_in_minutes),
    );
  }

  /** Memphis's `/auth/refreshToken`: a valid, unrevoked refresh JWT (rotated). @throws UNAUTHENTICATED */
  async memphisRefresh(body: {
    jwt_refresh_token: string;
    token_expiry_in_minutes: number;
    refresh_token_expiry_in_minutes: number;
  }): Promise<MemphisTokens> {
    const claims = await this.keys.verify(body.jwt_refresh_token, this.now());
    const sid = claims?.['sid'];
    if (!claims || claims['typ'] !== 'refresh' || typeof sid !== 'string')
      throw unauthenticated('the refresh token is invalid, expired or revoked');
    return this.mutate(async (draft) => {
      const s = draft.sessions.find((x) => x.id === sid);
      if (!s || s.kind !== 'memphis' || this.now() >= s.expiresAt || !sameHex(sha256(body.jwt_refresh_token), s.refreshHash)) {
        throw unauthenticated('the refresh token is invalid, expired or revoked');
      }
      s.expiresAt = this.now() + body.refresh_token_expiry_in_minutes * 60_000;
      return this.memphisTokens(
        draft,
        s.id,
        String(claims['username'] ?? s.user),
        body.token_expiry_in_minutes,
        body.refresh_token_expiry_in_minutes,
      );
    });
  }

  private async memphisTokens(
    draft: AuthState,
    sid: string,
    username: string,
    minutes: number,
    refreshMinutes: number,
  ): Promise<MemphisTokens> {
    const s = draft.sessions.find((x) => x.id === sid)!;
    const now = this.now();
    const iat = Math.floor(now / 1000);
    const common = { sid, username, user_type: s.tokenId !== undefined ? 'application' : 'management', aud: 'memphis', sub: s.user };
    const jwt = await this.keys.sign({ ...common, typ: 'access' }, now, iat + minutes * 60);
    const refresh = await this.keys.sign(
      { ...common, typ: 'refresh', jti: randomBytes(8).toString('hex') },
      now,
      iat + refreshMinutes * 60,
    );
    s.refreshHash = sha256(refresh);
    return { jwt, expires_in: minutes * 60_000, jwt_refresh_token: refresh, refresh_token_expires_in: refreshMinutes * 60_000 };
  }

  // ---------------------------------------------------------------- users

  listUsers(): UserInfo[] {
    return [...this.users.values()].map(userInfo).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** @throws USER_EXISTS */
  async createUser(input: z.input<typeof CreateUserBody>): Promise<UserInfo> {
    const body = CreateUserBody.parse(input);
    const passwordHash = await hashPassword(body.password, this.logN);
    return this.mutate((draft) => {
      if (draft.users.some((u) => u.name === body.name)) throw new JunctionError(AuthErrorCode.USER_EXISTS, `user "${body.name}" exists`);
      const now = this.now();
      const u: UserRecord = { name: body.name, role: body.role, passwordHash, createdAt: now, updatedAt: now };
      draft.users.push(u);
      return userInfo(u);
    });
  }

  /** Changes role and/or password; a new password ends the user's sessions. @throws USER_NOT_FOUND, LAST_ADMIN */
  async updateUser(name: string, input: z.input<typeof UpdateUserBody>): Promise<UserInfo> {
    const body = UpdateUserBody.parse(input);
    const passwordHash = body.password !== undefined ? await hashPassword(body.password, this.logN) : undefined;
    return this.mutate((draft) => {
      const u = draft.users.find((x) => x.name === name);
      if (!u) throw new JunctionError(AuthErrorCode.USER_NOT_FOUND, `no user "${name}"`);
      if (
        body.role !== undefined &&
        body.role !== 'admin' &&
        u.role === 'admin' &&
        draft.users.filter((x) => x.role === 'admin').length === 1
      ) {
        throw new JunctionError(AuthErrorCode.LAST_ADMIN, `"${name}" is the last admin`);
      }
      if (body.role !== undefined) u.role = body.role;
      if (passwordHash !== undefined) {
        u.passwordHash = passwordHash;
        draft.sessions = draft.sessions.filter((s) => s.user !== name || s.tokenId !== undefined);
      }
      u.updatedAt = this.now();
      return userInfo(u);
    });
  }

  /** Deletes the user, their sessions, and revokes their tokens. @throws USER_NOT_FOUND, LAST_ADMIN */
  async deleteUser(name: string): Promise<void> {
    await this.mutate((draft) => {
      const u = draft.users.find((x) => x.name === name);
      if (!u) throw new JunctionError(AuthErrorCode.USER_NOT_FOUND, `no user "${name}"`);
      if (u.role === 'admin' && draft.users.filter((x) => x.role === 'admin').length === 1) {
        throw new JunctionError(AuthErrorCode.LAST_ADMIN, `"${name}" is the last admin`);
      }
      draft.users = draft.users.filter((x) => x.name !== name);
      draft.sessions = draft.sessions.filter((s) => s.user !== name);
      const now = this.now();
      for (const t of draft.tokens) if (t.owner === name && t.revokedAt === undefined) t.revokedAt = now;
    });
  }

  // ---------------------------------------------------------------- service tokens

  /**
   * The tokens `p` may see: all with `manage` on cluster `tokens`; a user its own; a service token only
   * itself (a narrow token must not learn about, or revoke, its owner's other tokens).
   */
  listTokens(p: Principal): TokenInfo[] {
    return [...this.tokens.values()].filter((t) => this.mayHandle(p, t)).map(tokenInfo);
  }

  private mayHandle(p: Principal, t: TokenRecord): boolean {
    if (principalAllows(p, 'cluster', 'manage', 'tokens')) return true;
    return p.kind === 'user' ? t.owner === p.name : t.id === p.id;
  }

  /**
   * Makes a service token for `p`'s user. Every grant must be within what `p` may do (checked now, and
   * again on every request against the owner's role). The secret is in `token`, shown this once.
   * @throws FORBIDDEN naming a grant beyond `p`'s
   */
  async createToken(p: Principal, input: z.input<typeof CreateTokenBody>): Promise<TokenInfo & { token: string }> {
    const body = CreateTokenBody.parse(input);
    for (const g of body.grants) {
      for (const action of g.actions) {
        const single = { ...g, actions: [action] };
        const within =
          p.kind === 'user' ? grantWithin(single, ROLES[p.role]) : grantWithin(single, p.grants) && grantWithin(single, ROLES[p.ownerRole]);
        if (!within) throw forbidden(action, g.resource, g.pattern, 'a token cannot get more than its creator');
      }
    }
    const owner = p.kind === 'user' ? p.name : p.owner;
    const secret = randomBytes(32).toString('base64url');
    return this.mutate((draft) => {
      const now = this.now();
      let id: string;
      do id = randomBytes(8).toString('hex');
      while (draft.tokens.some((t) => t.id === id));
      const rec: TokenRecord = {
        id,
        name: body.name,
        owner,
        grants: body.grants,
        secretHash: sha256(secret),
        createdAt: now,
        ...(body.expiresInS !== undefined && { expiresAt: now + body.expiresInS * 1000 }),
      };
      draft.tokens.push(rec);
      return { ...tokenInfo(rec), token: `jnt_${id}_${secret}` };
    });
  }

  /** Revokes at once (the token and the sessions made with it). @throws TOKEN_NOT_FOUND (also for a token `p` may not see: see listTokens) */
  async revokeToken(p: Principal, id: string): Promise<void> {
    await this.mutate((draft) => {
      const t = draft.tokens.find((x) => x.id === id);
      if (!t || !this.mayHandle(p, t)) throw new JunctionError(AuthErrorCode.TOKEN_NOT_FOUND, `no token "${id}"`);
      if (t.revokedAt === undefined) t.revokedAt = this.now();
      draft.sessions = draft.sessions.filter((s) => s.tokenId !== id);
    });
  }

  // ---------------------------------------------------------------- state

  /** Stops following another writer's changes. */
  close(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }

  /**
   * Runs `change` on a copy of the state, saves it if the stored state did not move meanwhile, then
   * makes it current; when another writer (a node of the cluster) came first, loads the newest state
   * and runs `change` again. One change at a time in this process.
   */
  private mutate<T>(change: (draft: AuthState) => T | Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      for (let attempt = 0; ; attempt++) {
        // The base revision is taken with the state it belongs to: a watch event may move this.rev meanwhile.
        const base = this.rev;
        const draft = structuredClone(this.state);
        const out = await change(draft);
        const now = this.now();
        draft.sessions = draft.sessions.filter((s) => s.expiresAt > now);
        const rev = await this.store.save(draft, base);
        if (rev !== undefined) {
          if (rev > this.rev) {
            this.state = draft;
            this.rev = rev;
            this.index();
          }
          return out;
        }
        if (attempt >= 20)
          throw new JunctionError('UNAVAILABLE', 'the auth state keeps changing under this write: retry', { retryable: true });
        const fresh = await this.store.load();
        this.state = fresh.state;
        this.rev = fresh.rev;
        this.index();
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private index(): void {
    this.users = new Map(this.state.users.map((u) => [u.name, u]));
    this.tokens = new Map(this.state.tokens.map((t) => [t.id, t]));
    this.sessions = new Map(this.state.sessions.map((s) => [s.id, s]));
  }
}

export interface MemphisTokens {
  jwt: string;
  /** ms, as Memphis answered */
  expires_in: number;
  jwt_refresh_token: string;
  refresh_token_expires_in: number;
}

function userInfo(u: UserRecord): UserInfo {
  return { name: u.name, role: u.role, createdAt: iso(u.createdAt), updatedAt: iso(u.updatedAt) };
}

function tokenInfo(t: TokenRecord): TokenInfo {
  return {
    id: t.id,
    name: t.name,
    owner: t.owner,
    grants: t.grants,
    createdAt: iso(t.createdAt),
    ...(t.expiresAt !== undefined && { expiresAt: iso(t.expiresAt) }),
    revoked: t.revokedAt !== undefined,
  };
}
