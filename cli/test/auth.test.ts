import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type Broker } from './helpers.js';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const ADMIN_PASSWORD = 'cli-admin-password';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let url: string;
let broker: Broker;

async function junction(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Result> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...process.env, HOME: dir, XDG_CONFIG_HOME: '', JUNCTION_URL: url, JUNCTION_TOKEN: '', JUNCTION_PASSWORD: '', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin!.end(opts.input ?? '');
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-cli-auth-'));
  broker = await startBroker(dir, { args: ['--auth'], env: { JUNCTION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
  url = broker.url;
});

afterAll(async () => {
  await broker.kill();
  await rm(dir, { recursive: true, force: true });
});

describe('junction CLI with auth on', () => {
  it('refuses without a token, logs in, manages users and tokens, and uses --token / JUNCTION_TOKEN', async () => {
    const denied = await junction(['stations', 'list']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^error UNAUTHENTICATED: /);

    const wrong = await junction(['login', '--username', 'admin'], { input: 'not-the-password\n' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^error UNAUTHENTICATED: /);

    const login = await junction(['login', '--username', 'admin'], { input: `${ADMIN_PASSWORD}\n` });
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    const credPath = join(dir, '.config', 'junction', 'credentials');
    expect((await stat(credPath)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(credPath, 'utf8'))[url].token).toMatch(/^ey/);

    // The stored token is used by the client commands.
    expect((await junction(['stations', 'create', 'orders-eu'])).code).toBe(0);
    expect((await junction(['stations', 'create', 'payments'])).code).toBe(0);

    const created = await junction(['users', 'create', 'vic', '--role', 'viewer'], { input: 'viewer-password\n' });
    expect(created.stdout).toBe('created user vic (viewer)\n');
    expect((await junction(['users', 'set-role', 'vic', 'editor'])).stdout).toBe('user vic is now editor\n');
    const users = await junction(['users', 'list']);
    expect(users.stdout).toMatch(/^vic\s+editor\s+/m);

    const token = await junction(['tokens', 'create', 'producer', '--grant', 'station:orders-*:produce,read']);
    expect(token.code).toBe(0);
    const secret = token.stdout.trim();
    expect(secret).toMatch(/^jnt_[0-9a-f]{16}_/);
    const id = secret.slice(4, 20);

    const produced = await junction(['--token', secret, 'produce', 'orders-eu'], { input: 'a\nb\n' });
    expect(produced.stderr).toBe('');
    expect(produced.stdout).toContain('2 stored');
    const forbidden = await junction(['produce', 'payments'], { input: 'a\n', env: { JUNCTION_TOKEN: secret } });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/^error FORBIDDEN: missing "produce" on station "payments"/);

    const list = await junction(['tokens', 'list']);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+producer\\s+admin\\s+-\\s+active\\s+station:orders-\\*:produce,read`, 'm'));
    expect(list.stdout).not.toContain(secret.slice(21));
    expect((await junction(['tokens', 'revoke', id])).stdout).toBe(`revoked token ${id}\n`);
    const revoked = await junction(['--token', secret, 'stations', 'get', 'orders-eu']);
    expect(revoked.stderr).toMatch(/^error UNAUTHENTICATED: /);

    const printed = await junction(['login', '--username', 'vic', '--print'], { env: { JUNCTION_PASSWORD: 'viewer-password' } });
    expect(printed.stdout).toMatch(/^ey[^\n]+\n$/);
    expect((await junction(['users', 'delete', 'vic'])).stdout).toBe('deleted user vic\n');
    expect((await junction(['--token', printed.stdout.trim(), 'stations', 'list'])).stderr).toMatch(/^error UNAUTHENTICATED: /);

    const badGrant = await junction(['tokens', 'create', 'x', '--grant', 'topic:*:read']);
    expect(badGrant.stderr).toMatch(/^error USAGE: --grant "topic:\*:read"/);
  });
});
