/** Shared by the runtime's tests: a real EmbeddedStore in a temp dir, a catalog of real and test plugins. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { Registry as PromRegistry } from 'prom-client';
import { EmbeddedStore } from '@junction/broker';
import { checkPlugin, validateConfig } from '@junction/sdk-connector';
import type { Plugin } from '@junction/sdk-connector';
import { ConnectRuntime } from '../src/index.js';
import type {
  PluginCatalog,
  PluginDescriptor,
  CatalogValidation,
  ConnectSettingsInput,
  SecretsKeySource,
  StationSchemaResolver,
  StopTimeouts,
} from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..', '..');

/** Plugin name → module path: the real file sink and datagen source, and the test plugins. */
export const PLUGIN_FILES: Record<string, string> = {
  file: join(repoRoot, 'connectors', 'file', 'dist', 'index.js'),
  datagen: join(repoRoot, 'connectors', 'datagen', 'dist', 'index.js'),
  'test-ok': join(here, 'plugins', 'ok.mjs'),
  'test-throw': join(here, 'plugins', 'throw.mjs'),
  'test-hang': join(here, 'plugins', 'hang.mjs'),
  'test-exit': join(here, 'plugins', 'exit.mjs'),
  'test-leak': join(here, 'plugins', 'leak.mjs'),
  'test-retry': join(here, 'plugins', 'retry.mjs'),
  'test-dead': join(here, 'plugins', 'dead.mjs'),
  'test-short': join(here, 'plugins', 'short.mjs'),
  'test-slow': join(here, 'plugins', 'slow.mjs'),
  'test-secret': join(here, 'plugins', 'secret.mjs'),
  'test-counter': join(here, 'plugins', 'counter-source.mjs'),
  'test-background': join(here, 'plugins', 'background.mjs'),
  'test-order': join(here, 'plugins', 'order.mjs'),
  'test-open-flaky': join(here, 'plugins', 'open-flaky.mjs'),
  'test-wedge': join(here, 'plugins', 'wedge.mjs'),
  'test-leaky': join(here, 'plugins', 'leaky.mjs'),
  'test-schema': join(here, 'plugins', 'schema.mjs'),
  'test-values': join(here, 'plugins', 'values.mjs'),
  'test-keep': join(here, 'plugins', 'keep.mjs'),
  'test-lend': join(here, 'plugins', 'lend.mjs'),
  'test-upper': join(here, 'plugins', 'upper-transform.mjs'),
};

function prefixed(prefix: string, path: string): string {
  if (prefix === '') return path;
  if (path === '') return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

/** A PluginCatalog over module paths (the registry's behaviour, without package scanning). */
export class TestCatalog implements PluginCatalog {
  private readonly plugins = new Map<string, { d: PluginDescriptor; p: Plugin }>();
  static async open(files: Record<string, string> = PLUGIN_FILES): Promise<TestCatalog> {
    const c = new TestCatalog();
    for (const [name, entry] of Object.entries(files)) {
      const mod = (await import(pathToFileURL(entry).href)) as { default: unknown };
      const p = checkPlugin(mod.default);
      c.plugins.set(name, { d: { name, kind: p.kind, version: p.manifest.version, entry }, p });
    }
    return c;
  }
  get(name: string): PluginDescriptor | undefined {
    return this.plugins.get(name)?.d;
  }
  async load(name: string): Promise<Plugin> {
    const x = this.plugins.get(name);
    if (!x) throw Object.assign(new Error(`no plugin ${name}`), { code: 'PLUGIN_NOT_FOUND' });
    return x.p;
  }
  async validate(name: string, config: unknown, prefix = ''): Promise<CatalogValidation> {
    const r = validateConfig((await this.load(name)).config, config);
    return r.success
      ? { ok: true, config: r.config }
      : { ok: false, issues: r.issues.map((i) => ({ path: prefixed(prefix, i.path), message: i.message })) };
  }
}

let catalog: Promise<TestCatalog> | undefined;
export function sharedCatalog(): Promise<TestCatalog> {
  return (catalog ??= TestCatalog.open());
}

export interface Harness {
  dir: string;
  /** Options the runtime is (re)opened with; a test may change them before `reopen()`. */
  options: {
    secretsKey?: SecretsKeySource | undefined;
    env?: Record<string, string | undefined> | undefined;
    stationSchemaOf?: StationSchemaResolver | undefined;
    connect?: ConnectSettingsInput | undefined;
    stopTimeouts?: Partial<StopTimeouts> | undefined;
  };
  store: EmbeddedStore;
  runtime: ConnectRuntime;
  prom: PromRegistry;
  /** Closes the runtime and the store (and reopens both with `reopen`). */
  close(): Promise<void>;
  /** Closes the runtime (and the store) and opens new ones over the same data dir. */
  reopen(): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * JUNCTION_TEST_ISOLATION=shared runs the suites that do not choose their settings with every test
 * plugin trusted, on a shared pool of two threads (`npx vitest run core/connect` in both modes).
 */
function isolationFromEnv(): ConnectSettingsInput | undefined {
  if (process.env.JUNCTION_TEST_ISOLATION !== 'shared') return undefined;
  return {
    sharedPool: { threads: 2 },
    plugins: Object.fromEntries(Object.keys(PLUGIN_FILES).map((name) => [name, { isolation: 'shared' as const }])),
  };
}

export async function harness(
  options: {
    env?: Record<string, string | undefined>;
    logLevel?: string;
    /** Collects every log line (at `logLevel`, default debug then) instead of dropping them. */
    logs?: string[];
    /** Default: `{ file: <dir>/keys/secrets.key }` (the test's own key file, made on first use). */
    secretsKey?: SecretsKeySource;
    /** The runtime's station schema resolver (core/server's is backed by the registry). */
    stationSchemaOf?: StationSchemaResolver;
    /** The runtime's `connect` settings (shared pool, isolation per plugin). The test plugins are not built-ins: `thread` unless set here. */
    connect?: ConnectSettingsInput;
    /** Shorter stop waits than the product's (the runtime's `stopTimeouts`). */
    stopTimeouts?: Partial<StopTimeouts>;
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'junction-connect-'));
  const logs = options.logs;
  const logger = logs
    ? pino({ level: options.logLevel ?? 'debug' }, { write: (line: string) => void logs.push(line) })
    : pino({ level: options.logLevel ?? 'silent' });
  const cat = await sharedCatalog();
  const h = {
    dir,
    prom: new PromRegistry(),
    options: {
      secretsKey: options.secretsKey ?? { file: join(dir, 'keys', 'secrets.key') },
      env: options.env ?? {},
      stationSchemaOf: options.stationSchemaOf,
      connect: options.connect ?? isolationFromEnv(),
      stopTimeouts: options.stopTimeouts,
    },
  } as Harness;
  const open = async (): Promise<void> => {
    h.store = new EmbeddedStore({ dataDir: join(dir, 'store'), fsync: 'never', logger });
    await h.store.open();
    h.prom = new PromRegistry();
    h.runtime = new ConnectRuntime({
      store: h.store,
      catalog: cat,
      dataDir: dir,
      logger,
      registry: h.prom,
      env: h.options.env ?? {},
      secretsKey: h.options.secretsKey,
      stationSchemaOf: h.options.stationSchemaOf,
      connect: h.options.connect,
      stopTimeouts: h.options.stopTimeouts,
    });
    await h.runtime.start();
  };
  let closed = false;
  h.close = async () => {
    if (closed) return;
    closed = true;
    await h.runtime.close();
    await h.store.close();
  };
  h.reopen = async () => {
    await h.close();
    closed = false;
    await open();
  };
  h.cleanup = async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  };
  await open();
  return h;
}

export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${opts.what ?? 'a condition'} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`,
      );
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** What a test sink recorded: unique (partition, offset) pairs and the raw line count. */
export async function written(dir: string): Promise<{ unique: number; lines: number; offsets: Map<number, number[]> }> {
  let text = '';
  try {
    text = await readFile(join(dir, 'written.log'), 'utf8');
  } catch {
    // nothing written yet
  }
  const lines = text.split('\n').filter(Boolean);
  const seen = new Set(lines);
  const offsets = new Map<number, number[]>();
  for (const l of seen) {
    const [p, o] = l.split(' ').map(Number) as [number, number];
    let list = offsets.get(p);
    if (!list) offsets.set(p, (list = []));
    list.push(o);
  }
  for (const list of offsets.values()) list.sort((a, b) => a - b);
  return { unique: seen.size, lines: lines.length, offsets };
}

export async function batches(dir: string): Promise<{ partition: number; first: number; last: number; count: number }[]> {
  let text = '';
  try {
    text = await readFile(join(dir, 'batches.log'), 'utf8');
  } catch {
    // none yet
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [partition, first, last, count] = l.split(' ').map(Number) as [number, number, number, number];
      return { partition, first, last, count };
    });
}

/** Produces `n` messages `prefix-<i>` (i from 1) into the station, in batches. */
export async function produceN(
  store: EmbeddedStore,
  station: string,
  n: number,
  opts: {
    prefix?: string;
    size?: number;
    key?: (i: number) => string | undefined;
    headers?: (i: number) => Record<string, string> | undefined;
  } = {},
): Promise<void> {
  const prefix = opts.prefix ?? 'm';
  for (let i = 1; i <= n; i += 500) {
    const msgs = [];
    for (let j = i; j < Math.min(n + 1, i + 500); j++) {
      let text = `${prefix}-${j}`;
      if (opts.size && text.length < opts.size) text = text.padEnd(opts.size, '.');
      msgs.push({ value: Buffer.from(text), key: opts.key?.(j), headers: opts.headers?.(j) });
    }
    await store.produce(station, msgs);
  }
}

export async function lagOf(store: EmbeddedStore, station: string, connector: string): Promise<number> {
  return (await store.getGroup(station, `connector.${connector}`)).lag;
}
