/**
 * Issue 15, item 3: secrets given literally are stored sealed (AES-256-GCM, a key outside the data dir),
 * files holding configuration are 0600 (and narrowed at start when older versions left them 0644), keys
 * rotate by putting a new one first, and secret values never reach answers, status, logs or dead-letter
 * headers — also when a validator or the plugin quotes them.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry as PromRegistry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedStore } from '@junction/broker';
import { ConnectRuntime, keyId, LocalPlacement } from '../src/index.js';
import type { DefinitionStore, StoredConnector } from '../src/index.js';
import { harness, lagOf, sharedCatalog, waitFor } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
const logs: string[] = [];
beforeEach(async () => {
  logs.length = 0;
  h = await harness({ logs });
});
afterEach(async () => {
  await h.cleanup();
});

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;
const connectorsFile = (): string => join(h.dir, 'connect', 'connectors.json');
const newKey = (): string => randomBytes(32).toString('base64');
const kid = (b64: string): string => keyId(Buffer.from(b64, 'base64'));

async function opened(dir: string): Promise<Record<string, string>> {
  return waitFor(async () => JSON.parse(await readFile(join(dir, 'opened.json'), 'utf8')) as Record<string, string>, {
    what: 'the sink to open',
  });
}

describe('secrets at rest', () => {
  it('literal secrets are stored sealed, files are 0600, and the sink gets them back after a restart', async () => {
    await h.store.createStation('s');
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'sec',
      plugin: 'test-secret',
      station: 's',
      config: { dir, user: 'alice', token: 's3cr3t-literal', password: 'hunter2' },
    });
    const stored = await readFile(connectorsFile(), 'utf8');
    expect(stored).not.toContain('s3cr3t-literal');
    expect(stored).not.toContain('hunter2');
    const keyFile = join(h.dir, 'keys', 'secrets.key');
    const key = (await readFile(keyFile, 'utf8')).trim();
    const seals = stored.match(/\$\{sealed:v1:([0-9a-f]{8}):[A-Za-z0-9_-]+\}/g) ?? [];
    expect(seals).toHaveLength(2);
    for (const s of seals) expect(s).toContain(`:${kid(key)}:`);
    // Non-secret fields stay readable.
    expect(stored).toContain('"user": "alice"');
    expect(await mode(connectorsFile())).toBe(0o600);
    expect(await mode(join(h.dir, 'connect'))).toBe(0o700);
    expect(await mode(keyFile)).toBe(0o600);
    expect(h.runtime.config('sec').config).toEqual({ dir, user: 'alice', token: '***', password: '***' });

    await h.reopen();
    await h.store.produce('s', [{ value: Buffer.from('x') }]);
    expect(await opened(dir)).toEqual({ dir, user: 'alice', token: 's3cr3t-literal', password: 'hunter2' });
    // Re-stored (sealed afresh) on the next change: still nothing in clear.
    await h.runtime.pause('sec');
    expect(await readFile(connectorsFile(), 'utf8')).not.toContain('hunter2');
    expect(logs.join('\n')).not.toMatch(/hunter2|s3cr3t-literal/);
  });

  it('connector files left 0644 by an older version are narrowed to 0600 at start', async () => {
    await h.store.createStation('s');
    await h.runtime.create({ name: 'a', plugin: 'test-ok', station: 's', config: { dir: join(h.dir, 'rec') } });
    await mkdir(join(h.dir, 'connect', 'offsets'), { recursive: true });
    await writeFile(join(h.dir, 'connect', 'offsets', 'src.json'), '{"version":1,"positions":{}}\n');
    await chmod(join(h.dir, 'connect', 'offsets', 'src.json'), 0o644);
    await chmod(join(h.dir, 'connect', 'offsets'), 0o755);
    await chmod(connectorsFile(), 0o644);
    await chmod(join(h.dir, 'connect'), 0o755);
    await h.reopen();
    expect(await mode(connectorsFile())).toBe(0o600);
    expect(await mode(join(h.dir, 'connect', 'offsets', 'src.json'))).toBe(0o600);
    expect(await mode(join(h.dir, 'connect', 'offsets'))).toBe(0o700);
    expect(await mode(join(h.dir, 'connect'))).toBe(0o700);
  });

  it('rotation: a new key first and the old one after it re-seals everything at start; the old key alone no longer opens it, and nothing is lost', async () => {
    const a = newKey();
    const b = newKey();
    h.options.secretsKey = { key: a };
    await h.reopen();
    await h.store.createStation('s');
    const dir = join(h.dir, 'rec');
    await h.runtime.create({
      name: 'sec',
      plugin: 'test-secret',
      station: 's',
      config: { dir, user: 'u', token: 'tok-rotated', password: 'pw-rotated' },
    });
    expect(await readFile(connectorsFile(), 'utf8')).toContain(`:${kid(a)}:`);

    h.options.secretsKey = { key: `${b},${a}` };
    await h.reopen();
    const resealed = await readFile(connectorsFile(), 'utf8');
    expect(resealed).toContain(`:${kid(b)}:`);
    expect(resealed).not.toContain(`:${kid(a)}:`);
    expect(logs.join('\n')).toMatch(/stored secrets sealed again with the current key/);

    h.options.secretsKey = { key: b };
    await h.reopen();
    await h.store.produce('s', [{ value: Buffer.from('x') }]);
    expect(await opened(dir)).toMatchObject({ token: 'tok-rotated', password: 'pw-rotated' });

    // A node with only the old key: the connector fails clearly, and its stored secrets are kept as they are.
    h.options.secretsKey = { key: a };
    await h.reopen();
    const s = await waitFor(
      async () => {
        const x = await h.runtime.status('sec');
        return x.connector.state === 'FAILED' ? x : undefined;
      },
      { what: 'FAILED' },
    );
    expect(s.lastError?.code).toBe('SECRET_UNSEALABLE');
    expect(s.connector.trace).toContain(`sealed with key ${kid(b)}, which this node does not have`);
    await h.runtime.create({ name: 'other', plugin: 'test-ok', station: 's', config: { dir: join(h.dir, 'rec-other') } });
    expect(await readFile(connectorsFile(), 'utf8')).toContain(`:${kid(b)}:`);
    expect(JSON.stringify(s)).not.toMatch(/tok-rotated|pw-rotated/);
  });

  it('a sealed value opens only where it was sealed: moved to another connector, it does not open', async () => {
    await h.store.createStation('s');
    await h.runtime.create({
      name: 'one',
      plugin: 'test-secret',
      station: 's',
      config: { dir: join(h.dir, 'r1'), user: 'u', token: 'tok-one' },
    });
    await h.runtime.create({
      name: 'two',
      plugin: 'test-secret',
      station: 's',
      config: { dir: join(h.dir, 'r2'), user: 'u', token: 'tok-two' },
    });
    await h.close();
    const file = JSON.parse(await readFile(connectorsFile(), 'utf8')) as {
      connectors: { declaration: { name: string; config: { token: string } } }[];
    };
    const [one, two] = file.connectors;
    two!.declaration.config.token = one!.declaration.config.token;
    await writeFile(connectorsFile(), JSON.stringify(file));
    await h.reopen();
    const s = await waitFor(
      async () => {
        const x = await h.runtime.status('two');
        return x.connector.state === 'FAILED' ? x : undefined;
      },
      { what: 'FAILED' },
    );
    expect(s.lastError).toMatchObject({ code: 'SECRET_UNSEALABLE' });
    expect(s.connector.trace).toContain('config.token');
    await waitFor(async () => (await h.runtime.status('one')).connector.state === 'RUNNING', { what: 'the other connector to run' });
  });

  it('without a usable key a literal secret is refused and nothing is stored; references need no key', async () => {
    h.options.secretsKey = { file: '/proc/junction-no-such-dir/secrets.key' };
    await h.reopen();
    await h.store.createStation('s');
    const err = await h.runtime
      .create({ name: 'sec', plugin: 'test-secret', station: 's', config: { dir: join(h.dir, 'rec'), user: 'u', token: 'tok-refused' } })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SECRETS_KEY_UNAVAILABLE' });
    expect((err as Error).message).toContain('/proc/junction-no-such-dir/secrets.key');
    expect(h.runtime.names()).toEqual([]);
    h.options.env = { TOKEN: 'from-env' };
    await h.reopen();
    await h.runtime.create({
      name: 'ref',
      plugin: 'test-secret',
      station: 's',
      config: { dir: join(h.dir, 'rec'), user: 'u', token: '${env:TOKEN}' },
    });
    expect(await readFile(connectorsFile(), 'utf8')).toContain('${env:TOKEN}');
  });

  it('a key that is not 32 bytes of base64 is refused with SECRETS_KEY_INVALID', async () => {
    h.options.secretsKey = { key: 'c2hvcnQ=' };
    await h.reopen();
    await h.store.createStation('s');
    const err = await h.runtime
      .create({ name: 'sec', plugin: 'test-secret', station: 's', config: { dir: join(h.dir, 'rec'), user: 'u', token: 'tok' } })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SECRETS_KEY_INVALID' });
  });

  it('secret values never reach answers, status, logs or dead-letter headers, even when a validator or the plugin quotes them', async () => {
    await h.store.createStation('s');
    const refused = await h.runtime
      .create({ name: 'v', plugin: 'test-leaky', station: 's', config: { token: 'bad-token-4711' } })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'CONFIG_INVALID', issues: [{ path: 'config.token', message: 'the token *** is refused' }] });
    expect((refused as Error).message).not.toContain('bad-token-4711');

    await h.runtime.create({ name: 'fails', plugin: 'test-leaky', station: 's', config: { token: 'tok-quoted-0815', failOpen: true } });
    await h.store.produce('s', [{ value: Buffer.from('x') }]);
    const failed = await waitFor(
      async () => {
        const x = await h.runtime.status('fails');
        return x.connector.state === 'FAILED' ? x : undefined;
      },
      { what: 'FAILED' },
    );
    expect(failed.tasks[0]!.lastError).toMatchObject({ code: 'AUTH_FAILED', message: 'login with token *** refused' });
    expect(JSON.stringify(failed)).not.toContain('tok-quoted-0815');

    await h.runtime.create({ name: 'dl', plugin: 'test-leaky', station: 's', config: { token: 'tok-in-reason-42' } });
    await waitFor(async () => (await lagOf(h.store, 's', 'dl')) === 0, { what: 'the dead letter' });
    const dls = await waitFor(
      async () => {
        const m = await h.store.read('s.dls', { partition: 0, limit: 10 });
        return m.length > 0 ? m : undefined;
      },
      { what: 'the dead letter' },
    );
    expect(JSON.stringify(dls[0]!.headers)).toContain('rejected under token ***');
    expect(JSON.stringify(dls[0]!.headers)).not.toContain('tok-in-reason-42');
    expect(logs.join('\n')).not.toMatch(/bad-token-4711|tok-quoted-0815|tok-in-reason-42/);
  });
});

/** The cluster's shared definitions, in memory: what ClusterDefinitions keeps in the NATS KV. */
class MemoryDefinitions implements DefinitionStore {
  readonly items = new Map<string, string>();
  private readonly listeners = new Set<(name: string, value: unknown) => void>();
  async load(): Promise<unknown[]> {
    return [...this.items.values()].map((v) => JSON.parse(v) as unknown);
  }
  async save(c: StoredConnector): Promise<void> {
    const text = JSON.stringify(c);
    this.items.set(c.declaration.name, text);
    for (const l of this.listeners) l(c.declaration.name, JSON.parse(text));
  }
  async remove(name: string): Promise<void> {
    this.items.delete(name);
    for (const l of this.listeners) l(name, undefined);
  }
  watch(listener: (name: string, value: unknown) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

describe('secrets at rest in shared definitions (cluster)', () => {
  it('are stored sealed in the shared store; a node with the same key opens them, one without fails the connector clearly', async () => {
    const root = await mkdtemp(join(tmpdir(), 'junction-shared-secrets-'));
    const logger = pino({ level: 'silent' });
    const store = new EmbeddedStore({ dataDir: join(root, 'store'), fsync: 'never', logger });
    await store.open();
    const defs = new MemoryDefinitions();
    const catalog = await sharedCatalog();
    const key = newKey();
    const node = (name: string, k: string) =>
      new ConnectRuntime({
        store,
        catalog,
        dataDir: join(root, name),
        logger,
        registry: new PromRegistry(),
        env: {},
        definitions: defs,
        placement: new LocalPlacement(),
        secretsKey: { key: k },
      });
    const one = node('one', key);
    const two = node('two', key);
    try {
      await one.start();
      await two.start();
      await store.createStation('s');
      const dir = join(root, 'rec');
      await one.create({
        name: 'sec',
        plugin: 'test-secret',
        station: 's',
        config: { dir, user: 'u', token: 'tok-shared', password: 'pw-shared' },
        state: 'PAUSED',
      });
      const shared = defs.items.get('sec')!;
      expect(shared).not.toMatch(/tok-shared|pw-shared/);
      expect(shared).toContain(`\${sealed:v1:${kid(key)}:`);
      // The other node learned it through the watch, opened, and compares equal (no restart loop).
      await waitFor(async () => two.has('sec'), { what: 'node two to see it' });
      await one.close();
      await two.resume('sec');
      await store.produce('s', [{ value: Buffer.from('x') }]);
      expect(await opened(dir)).toMatchObject({ token: 'tok-shared', password: 'pw-shared' });
      await two.close();

      const before = defs.items.get('sec');
      const stranger = node('three', newKey());
      await stranger.start();
      const s = await waitFor(
        async () => {
          const x = await stranger.status('sec');
          return x.connector.state === 'FAILED' ? x : undefined;
        },
        { what: 'FAILED on the node without the key' },
      );
      expect(s.lastError?.code).toBe('SECRET_UNSEALABLE');
      await stranger.close();
      // The node without the key changed nothing it could not open.
      expect(defs.items.get('sec')).toBe(before);
    } finally {
      await one.close();
      await two.close();
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
