import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthService, FileAuthStore } from '../src/index.js';
import type { AuthServiceOptions } from '../src/index.js';

let dir: string;
let clock: number;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-auth-'));
  clock = Date.UTC(2026, 0, 1);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = (extra: Partial<AuthServiceOptions> = {}) =>
  AuthService.open({
    store: new FileAuthStore({ dir: join(dir, 'auth') }),
    adminPassword: 'admin-password',
    scryptLogN: 10,
    now: () => clock,
    ...extra,
  });

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { code?: string }) => e.code,
  );

describe('AuthService', () => {
  it('refuses to start with no user and no admin password, and never starts empty over a damaged file', async () => {
    await expect(code(open({ adminPassword: undefined }))).resolves.toBe('AUTH_BOOTSTRAP_REQUIRED');
    await expect(code(open({ adminPassword: 'short' }))).resolves.toBe('CONFIG_INVALID');
    await open();
    // Both the file and its previous copy damaged: refuse.
    await writeFile(join(dir, 'auth', 'auth.json'), '{"version":1,"users":[');
    await writeFile(join(dir, 'auth', 'auth.json.prev'), 'garbage');
    await expect(code(open())).resolves.toBe('AUTH_STATE_CORRUPT');
  });

  it('keeps users, tokens and sessions across a restart; files are 0600 in a 0700 folder', async () => {
    const a = await open();
    const s = await a.login('admin', 'admin-password');
    const admin = await a.authenticate(s.token);
    await a.createUser({ name: 'carol', password: 'carol-password', role: 'editor' });
    const t = await a.createToken(admin, { name: 'app', grants: [{ resource: 'station', pattern: 'orders-*', actions: ['produce'] }] });
    expect(t.token).toMatch(/^jnt_[0-9a-f]{16}_/);

    const b = await open({ adminPassword: undefined });
    expect(b.listUsers().map((u) => [u.name, u.role])).toEqual([
      ['admin', 'admin'],
      ['carol', 'editor'],
    ]);
    const tp = await b.authenticate(t.token);
    expect(b.allows(tp, 'station', 'produce', 'orders-eu')).toBe(true);
    expect(b.allows(tp, 'station', 'produce', 'payments')).toBe(false);
    expect(b.allows(tp, 'station', 'consume', 'orders-eu')).toBe(false);
    await expect(b.authenticate(s.token)).resolves.toMatchObject({ kind: 'user', name: 'admin' });
    await expect(b.refresh(s.refreshToken)).resolves.toHaveProperty('token');
    // The token is stored hashed: its secret is nowhere in the file.
    const text = await import('node:fs/promises').then((fs) => fs.readFile(join(dir, 'auth', 'auth.json'), 'utf8'));
    expect(text).not.toContain(t.token.slice(21));
    expect(text).not.toContain('carol-password');
    for (const f of ['auth.json', 'jwt.secret']) expect((await stat(join(dir, 'auth', f))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'auth'))).mode & 0o777).toBe(0o700);
  });

  it('wrong passwords, revocation, logout, refresh rotation and expiry answer UNAUTHENTICATED at once', async () => {
    const a = await open();
    await expect(code(a.login('admin', 'wrong-password'))).resolves.toBe('UNAUTHENTICATED');
    await expect(code(a.login('nobody', 'admin-password'))).resolves.toBe('UNAUTHENTICATED');
    const s = await a.login('admin', 'admin-password');
    const admin = await a.authenticate(s.token);
    const t = await a.createToken(admin, { name: 'x', grants: [{ resource: 'station', pattern: '*', actions: ['read'] }], expiresInS: 60 });
    await a.authenticate(t.token); // cached now
    await a.revokeToken(admin, t.id);
    await expect(code(a.authenticate(t.token))).resolves.toBe('UNAUTHENTICATED');

    const r = await a.refresh(s.refreshToken);
    await expect(code(a.refresh(s.refreshToken))).resolves.toBe('UNAUTHENTICATED'); // rotated
    const p = await a.authenticate(r.token);
    await a.logout(p);
    await expect(code(a.authenticate(r.token))).resolves.toBe('UNAUTHENTICATED');
    await expect(code(a.authenticate(s.token))).resolves.toBe('UNAUTHENTICATED'); // same session
    await expect(code(a.refresh(r.refreshToken))).resolves.toBe('UNAUTHENTICATED');

    const s2 = await a.login('admin', 'admin-password');
    const t2 = await a.createToken(await a.authenticate(s2.token), {
      name: 'y',
      grants: [{ resource: 'station', pattern: '*', actions: ['read'] }],
      expiresInS: 60,
    });
    await a.authenticate(t2.token);
    clock += 61_000;
    await expect(code(a.authenticate(t2.token))).resolves.toBe('UNAUTHENTICATED');
    clock += a.accessTtlS * 1000;
    await expect(code(a.authenticate(s2.token))).resolves.toBe('UNAUTHENTICATED');
  });

  it('a token never gets more than its creator, now and after the creator is demoted or deleted', async () => {
    const a = await open();
    const admin = await a.authenticate((await a.login('admin', 'admin-password')).token);
    await a.createUser({ name: 'vic', password: 'vic-password', role: 'viewer' });
    const vic = await a.authenticate((await a.login('vic', 'vic-password')).token);
    await expect(
      code(a.createToken(vic, { name: 'p', grants: [{ resource: 'station', pattern: '*', actions: ['produce'] }] })),
    ).resolves.toBe('FORBIDDEN');
    const ok = await a.createToken(vic, { name: 'r', grants: [{ resource: 'station', pattern: 'o*', actions: ['read'] }] });
    expect((await a.authenticate(ok.token)).kind).toBe('token');

    await a.createUser({ name: 'ed', password: 'ed-password', role: 'editor' });
    const ed = await a.authenticate((await a.login('ed', 'ed-password')).token);
    const et = await a.createToken(ed, { name: 'e', grants: [{ resource: 'station', pattern: '*', actions: ['produce'] }] });
    expect(a.allows(await a.authenticate(et.token), 'station', 'produce', 's')).toBe(true);
    await a.updateUser('ed', { role: 'viewer' });
    expect(a.allows(await a.authenticate(et.token), 'station', 'produce', 's')).toBe(false);
    await a.deleteUser('ed');
    await expect(code(a.authenticate(et.token))).resolves.toBe('UNAUTHENTICATED');
    await expect(code(a.deleteUser('admin'))).resolves.toBe('LAST_ADMIN');
    await expect(code(a.updateUser('admin', { role: 'viewer' }))).resolves.toBe('LAST_ADMIN');
    expect(a.listTokens(admin).length).toBe(2);
    expect(a.listTokens(vic).map((t) => t.name)).toEqual(['r']);
    // A service token sees and revokes only itself, not its owner's other tokens.
    const second = await a.createToken(vic, { name: 'r2', grants: [{ resource: 'station', pattern: 'o*', actions: ['read'] }] });
    const asToken = await a.authenticate(second.token);
    expect(a.listTokens(asToken).map((t) => t.name)).toEqual(['r2']);
    await expect(code(a.revokeToken(asToken, ok.id))).resolves.toBe('TOKEN_NOT_FOUND');
    await a.revokeToken(asToken, second.id);
    await expect(code(a.authenticate(second.token))).resolves.toBe('UNAUTHENTICATED');
  });

  it('limits failed logins per user and per address; the wait ends; the KDF is not run while refused', async () => {
    const a = await open({ loginFailuresPerUser: 3, loginFailuresPerAddress: 5, loginWindowS: 60 });
    await a.createUser({ name: 'bob', password: 'bob-password', role: 'viewer' });
    for (let i = 0; i < 3; i++) await expect(code(a.login('admin', 'wrong-password', '10.0.0.1'))).resolves.toBe('UNAUTHENTICATED');
    // The right password is refused too while the user is limited, from any address.
    await expect(code(a.login('admin', 'admin-password', '10.0.0.2'))).resolves.toBe('LOGIN_RATE_LIMITED');
    // Other users from another address are not affected.
    await expect(a.login('bob', 'bob-password', '10.0.0.2')).resolves.toHaveProperty('token');
    // Per address: two more failures from 10.0.0.1 (other users) reach its limit of 5.
    for (const u of ['x1', 'x2']) await expect(code(a.login(u, 'wrong-password', '10.0.0.1'))).resolves.toBe('UNAUTHENTICATED');
    await expect(code(a.login('bob', 'bob-password', '10.0.0.1'))).resolves.toBe('LOGIN_RATE_LIMITED');
    clock += 61_000;
    await expect(a.login('admin', 'admin-password', '10.0.0.1')).resolves.toHaveProperty('token');
  });
});
