/**
 * `junction.yaml`: the server's settings and the stations it should have (the file is the desired
 * state; see `applyStations`). Sources are merged field by field with this precedence:
 * CLI overrides > environment (JUNCTION_*) > the file > defaults.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { CreateStationBody, FsyncPolicy, MiB, StationReplicas } from '@junction/protocol';
import { ConnectSettings, ConnectorsSection } from '@junction/connect';
import type { ConnectorDeclaration } from '@junction/connect';
import type { StationConfig } from '@junction/protocol';
import { configIssues, issuesFromZod } from './errors.js';
import type { Issue } from './errors.js';

/** Defaults when neither the CLI, the environment nor the file says otherwise. */
export const CONFIG_DEFAULTS = {
  host: '127.0.0.1',
  port: 6666,
  dataDir: './data',
  fsync: 'always',
  /** The largest request body (a produce batch), as the broker's produce route defaults to. */
  bodyLimitBytes: 64 * MiB,
  logLevel: 'info',
} as const;

/** The name of the file `junction start` picks up from the working directory. */
export const DEFAULT_CONFIG_FILE = 'junction.yaml';

export const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
export type LogLevel = z.infer<typeof LogLevel>;

const Host = z.string().min(1, 'must not be empty');
const Port = z.int().min(0).max(65_535);
const DataDir = z.string().min(1, 'must not be empty');
const BodyLimit = z
  .int()
  .min(1024)
  .max(1024 * MiB);
const MaxOpenFiles = z
  .int()
  .min(64)
  .max(1 << 30);

/** The `server:` section; every field optional (defaults are applied after merging). */
export const ServerSection = z.strictObject({
  host: Host.optional(),
  port: Port.optional(),
  /** Relative paths in the file are taken from the file's folder. */
  dataDir: DataDir.optional(),
  fsync: FsyncPolicy.optional(),
  bodyLimitBytes: BodyLimit.optional(),
  logLevel: LogLevel.optional(),
  /**
   * The key file that seals connector secrets given literally (one base64 key per line, the current one
   * first), made 0600 on first use. Relative paths are taken from the file's folder. Default
   * `$XDG_CONFIG_HOME/junction/secrets.key` or `~/.config/junction/secrets.key`. JUNCTION_SECRETS_KEY,
   * when set, is used instead of any file.
   */
  secretsKeyFile: z.string().min(1, 'must not be empty').optional(),
  /**
   * The budget of open partition and group files (idle ones are closed and reopened on demand). Default
   * half the process's soft RLIMIT_NOFILE (raised to the hard limit at start where the OS allows); the
   * rest is for connections and other files. Also JUNCTION_MAX_OPEN_FILES.
   */
  maxOpenFiles: MaxOpenFiles.optional(),
  /** Partition logs kept open (idle ones past it are closed and reopened on use). Default 4096. */
  maxOpenPartitions: z
    .int()
    .min(1)
    .max(1 << 24)
    .optional(),
  /** Stations with per-station series in /metrics (the rest are in the totals). Default 1000. */
  metricsMaxStations: z.int().min(0).max(1_000_000).optional(),
});

/**
 * `cluster:` — run on NATS JetStream (`@junction/cluster`) instead of the embedded store. `servers` may
 * also come from JUNCTION_NATS_URL or `junction start --nats` (comma-separated URLs; those win).
 */
export const NatsSection = z.strictObject({
  servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  user: z.string().optional(),
  pass: z.string().optional(),
  token: z.string().optional(),
  /** true: TLS with the system's CAs; or files as nats.js takes them. */
  tls: z
    .union([
      z.boolean(),
      z.strictObject({ caFile: z.string().optional(), certFile: z.string().optional(), keyFile: z.string().optional() }),
    ])
    .optional(),
  /**
   * Replicas of new stations that do not set their own (1–5). Default min(3, the servers of the NATS
   * cluster): 3 on a cluster of three or more, 1 on a single server.
   */
  replicas: StationReplicas.optional(),
  /** How long a node waits at start for NATS, JetStream and the metadata bucket (retrying with backoff). Default 60000 ms. */
  openTimeoutMs: z.int().min(1_000).max(3_600_000).optional(),
  /** Namespace of the streams and the KV bucket (nodes with the same prefix share stations). Default `junction`. */
  prefix: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,31}$/, 'lower case letters, digits and "_", starting with a letter')
    .optional(),
});
export const ClusterSection = z.strictObject({ nats: NatsSection });

/**
 * `auth:` — users, service tokens and grants (`@junction/auth`). Off by default; `junction start --auth`
 * turns it on too. With auth off the server refuses to listen on anything but loopback unless
 * `--allow-unauthenticated` is given.
 */
export const AuthSection = z.strictObject({
  enabled: z.boolean().optional(),
  /** Lifetime of access tokens (JWT) in seconds. Default 900. */
  accessTokenTtlS: z.int().min(30).max(86_400).optional(),
  /** Lifetime of a session's refresh token in seconds, renewed on each refresh. Default 7 days. */
  refreshTokenTtlS: z
    .int()
    .min(60)
    .max(365 * 86_400)
    .optional(),
  /**
   * Folders connector configs may name as host paths (the file sink's `dir`), relative to this file's
   * folder. Default: the data dir. Checked with auth on only.
   */
  hostPathRoots: z.array(z.string().min(1)).min(1).optional(),
});
/** `tls:` — serve HTTPS: PEM files (relative paths from the file's folder). Also `--tls-cert` / `--tls-key`. */
export const TlsSection = z.strictObject({ cert: z.string().min(1), key: z.string().min(1) });
export interface TlsSettings {
  /** Absolute paths. */
  cert: string;
  key: string;
}

export interface AuthSettings {
  enabled: boolean;
  accessTokenTtlS?: number | undefined;
  refreshTokenTtlS?: number | undefined;
  /** Absolute; absent: the data dir. */
  hostPathRoots?: string[] | undefined;
  /** `--allow-unauthenticated`: listen on a non-loopback address with auth off, on purpose. */
  allowUnauthenticated: boolean;
}
export type ClusterSettings = {
  nats: Omit<z.output<typeof NatsSection>, 'servers' | 'tls'> & {
    servers: string[];
    tls?: { caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined } | true | undefined;
  };
};

/**
 * One entry of `stations:`: a name plus any station option (defaults as in the HTTP API), and `replicas`
 * in cluster mode.
 */
export const StationDeclaration = CreateStationBody.extend({ replicas: StationReplicas.optional() });
export type StationDeclaration = StationConfig & { name: string; replicas?: number | undefined };

/**
 * The whole file. Unknown top-level keys are rejected. `connectors:` is the connector runtime's
 * declaration list (`@junction/connect`'s schema: shape errors here, the plugins' own config when the
 * server applies it, with paths like `connectors[1].config.dir`).
 */
export const ConfigFile = z.strictObject({
  server: ServerSection.optional(),
  cluster: ClusterSection.optional(),
  auth: AuthSection.optional(),
  tls: TlsSection.optional(),
  stations: z.array(StationDeclaration).optional(),
  /**
   * The connector runtime: `sharedPool: { threads, maxHeapMb }` (threads the sink tasks of trusted plugins
   * share; default the cores) and `plugins: { <name>: { isolation: shared | thread } }` (the operator's
   * trust per plugin: built-ins share by default, installed plugins get a thread per task).
   */
  connect: ConnectSettings.optional(),
  connectors: ConnectorsSection.optional(),
});

/** What the CLI passes; each field, when set, wins over the environment and the file. */
export interface ConfigOverrides {
  host?: string | undefined;
  port?: number | undefined;
  dataDir?: string | undefined;
  fsync?: string | undefined;
  bodyLimitBytes?: number | undefined;
  logLevel?: string | undefined;
  /** NATS URLs, comma-separated: run on JetStream (`--nats`). */
  nats?: string | undefined;
  /** `--auth`: turn auth on (wins over the file's `auth.enabled`). */
  auth?: boolean | undefined;
  /** `--allow-unauthenticated`: allow a non-loopback host with auth off. */
  allowUnauthenticated?: boolean | undefined;
  /** `--tls-cert` / `--tls-key` (both or neither): PEM files, relative to the working directory. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}

export interface ServerSettings {
  host: string;
  port: number;
  /** Absolute. */
  dataDir: string;
  fsync: FsyncPolicy;
  bodyLimitBytes: number;
  logLevel: LogLevel;
  /** Absolute, when configured (file `server.secretsKeyFile` or JUNCTION_SECRETS_KEY_FILE); else the connector runtime's default. */
  secretsKeyFile?: string | undefined;
  /** The open-file budget, when configured (`server.maxOpenFiles` or JUNCTION_MAX_OPEN_FILES); else half the soft limit. */
  maxOpenFiles?: number | undefined;
  /** Stations with per-station series in /metrics, when configured; else DEFAULT_MAX_STATION_SERIES. */
  metricsMaxStations?: number | undefined;
  /** Partition logs kept open, when configured; else DEFAULT_OPEN_LOGS. */
  maxOpenPartitions?: number | undefined;
}

export interface JunctionConfig {
  server: ServerSettings;
  /** Set when Junction runs on NATS JetStream (file `cluster:`, JUNCTION_NATS_URL or `--nats`). */
  cluster?: ClusterSettings | undefined;
  /** Auth (file `auth:`, `--auth`, `--allow-unauthenticated`). */
  auth: AuthSettings;
  /** HTTPS (file `tls:`, `--tls-cert` / `--tls-key`). */
  tls?: TlsSettings | undefined;
  /** Declared stations with every default applied, in file order. */
  stations: StationDeclaration[];
  /** Declared connectors (defaults applied), in file order; their plugin config is checked when applied. */
  connectors: ConnectorDeclaration[];
  /** The `connect:` section (defaults applied): the shared pool and the isolation per plugin. */
  connect: ConnectSettings;
  /** The file read (absolute), when there was one. */
  configPath?: string | undefined;
  /** Things worth telling the operator that did not stop loading. */
  warnings: string[];
}

export interface LoadConfigOptions {
  /** Default `process.env`. Only JUNCTION_DATA_DIR, JUNCTION_HOST, JUNCTION_PORT, JUNCTION_LOG_LEVEL, JUNCTION_SECRETS_KEY_FILE, JUNCTION_MAX_OPEN_FILES and JUNCTION_NATS_URL are read. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Base for relative paths that come from the environment, the CLI or the defaults. Default `process.cwd()`. */
  cwd?: string;
  /** Receives the warnings (also returned in `warnings`). */
  logger?: { warn(obj: object, msg: string): void } | undefined;
}

/**
 * Loads and validates the configuration. With no `path`, only the environment, the overrides and the
 * defaults count (the CLI decides whether to look for `./junction.yaml`).
 *
 * @throws JunctionError CONFIG_INVALID when the file cannot be read, is not valid YAML, or does not
 *   match the schema; `issues` carry paths such as `stations[1].retention.maxAgeMs`, `JUNCTION_PORT`
 *   or `--port`.
 */
export async function loadConfig(path?: string, overrides: ConfigOverrides = {}, options: LoadConfigOptions = {}): Promise<JunctionConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const warnings: string[] = [];

  let file: z.output<typeof ConfigFile> = {};
  let configPath: string | undefined;
  if (path !== undefined) {
    configPath = resolve(cwd, path);
    file = parseConfigText(await readConfigFile(configPath), configPath);
  }
  const fromFile = file.server ?? {};
  if (fromFile.dataDir !== undefined && configPath !== undefined) fromFile.dataDir = resolve(dirname(configPath), fromFile.dataDir);
  if (fromFile.secretsKeyFile !== undefined && configPath !== undefined)
    fromFile.secretsKeyFile = resolve(dirname(configPath), fromFile.secretsKeyFile);

  const fromEnv = parseEnv(env);
  const { auth: authFlag, allowUnauthenticated, tlsCert, tlsKey, ...serverOverrides } = overrides;
  let tls: TlsSettings | undefined;
  if (tlsCert !== undefined || tlsKey !== undefined) {
    if (tlsCert === undefined || tlsKey === undefined)
      throw configIssues('the command line', [
        { path: tlsCert === undefined ? '--tls-cert' : '--tls-key', message: 'give both --tls-cert and --tls-key' },
      ]);
    tls = { cert: resolve(cwd, tlsCert), key: resolve(cwd, tlsKey) };
  } else if (file.tls) {
    const base = configPath !== undefined ? dirname(configPath) : cwd;
    tls = { cert: resolve(base, file.tls.cert), key: resolve(base, file.tls.key) };
  }
  const fromCli = parseOverrides(serverOverrides);
  const auth: AuthSettings = {
    enabled: authFlag === true || file.auth?.enabled === true,
    ...(file.auth?.accessTokenTtlS !== undefined && { accessTokenTtlS: file.auth.accessTokenTtlS }),
    ...(file.auth?.refreshTokenTtlS !== undefined && { refreshTokenTtlS: file.auth.refreshTokenTtlS }),
    ...(file.auth?.hostPathRoots !== undefined && {
      hostPathRoots: file.auth.hostPathRoots.map((r) => resolve(configPath !== undefined ? dirname(configPath) : cwd, r)),
    }),
    allowUnauthenticated: allowUnauthenticated === true,
  };

  const pick = <K extends keyof ServerSettings>(key: K): ServerSettings[K] | undefined =>
    (fromCli[key] ?? fromEnv[key] ?? fromFile[key]) as ServerSettings[K] | undefined;

  const server: ServerSettings = {
    host: pick('host') ?? CONFIG_DEFAULTS.host,
    port: pick('port') ?? CONFIG_DEFAULTS.port,
    dataDir: resolve(cwd, pick('dataDir') ?? CONFIG_DEFAULTS.dataDir),
    fsync: pick('fsync') ?? CONFIG_DEFAULTS.fsync,
    bodyLimitBytes: pick('bodyLimitBytes') ?? CONFIG_DEFAULTS.bodyLimitBytes,
    logLevel: pick('logLevel') ?? CONFIG_DEFAULTS.logLevel,
  };
  const maxOpenFiles = pick('maxOpenFiles');
  if (maxOpenFiles !== undefined) server.maxOpenFiles = maxOpenFiles;
  const maxOpenPartitions = pick('maxOpenPartitions');
  if (maxOpenPartitions !== undefined) server.maxOpenPartitions = maxOpenPartitions;
  const metricsMaxStations = pick('metricsMaxStations');
  if (metricsMaxStations !== undefined) server.metricsMaxStations = metricsMaxStations;
  const keyFile = pick('secretsKeyFile');
  if (keyFile !== undefined) {
    server.secretsKeyFile = resolve(cwd, keyFile);
    const rel = relative(server.dataDir, server.secretsKeyFile);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
      warnings.push(
        `server.secretsKeyFile ${server.secretsKeyFile} is inside the data dir it protects: a copy of the data dir then carries the key (keep it elsewhere)`,
      );
    }
  }

  for (const w of warnings) options.logger?.warn({ configPath }, w);

  const natsUrls = fromCli.nats ?? env['JUNCTION_NATS_URL'];
  const fileNats = file.cluster?.nats;
  let cluster: ClusterSettings | undefined;
  if ((natsUrls !== undefined && natsUrls !== '') || fileNats) {
    const servers = natsUrls
      ? natsUrls
          .split(',')
          .map((u) => u.trim())
          .filter((u) => u !== '')
      : [fileNats!.servers].flat();
    if (servers.length === 0)
      throw configIssues('the NATS servers', [
        { path: fromCli.nats !== undefined ? '--nats' : 'JUNCTION_NATS_URL', message: 'no URL given' },
      ]);
    const { tls, ...rest } = fileNats ?? {};
    cluster = { nats: { ...rest, servers, ...(tls !== undefined && tls !== false && { tls: tls === true ? true : tls }) } };
  }

  const stations = (file.stations ?? []) as StationDeclaration[];
  if (!cluster) {
    const replicated = stations.flatMap((st, i) =>
      st.replicas !== undefined
        ? [
            {
              path: `stations[${i}].replicas`,
              message: 'only in cluster mode (cluster.nats, --nats or JUNCTION_NATS_URL): the embedded engine keeps one copy',
            },
          ]
        : [],
    );
    if (replicated.length > 0) throw configIssues(configPath ?? 'configuration', replicated);
  }
  return {
    server,
    ...(cluster && { cluster }),
    auth,
    ...(tls && { tls }),
    stations,
    connectors: file.connectors ?? [],
    connect: file.connect ?? ConnectSettings.parse({}),
    configPath,
    warnings,
  };
}

/**
 * Parses and validates the text of a configuration file (exposed for tests and tools).
 * @throws JunctionError CONFIG_INVALID
 */
export function parseConfigText(text: string, source = 'configuration'): z.output<typeof ConfigFile> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw configIssues(
      source,
      doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0] ?? e.message}` })),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  // `stations:` with nothing under it reads as null: take it as absent, like an empty section.
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    for (const [key, value] of Object.entries(raw)) if (value === null) delete (raw as Record<string, unknown>)[key];
  }
  const parsed = ConfigFile.safeParse(raw);
  if (!parsed.success) throw configIssues(source, issuesFromZod(parsed.error));
  const issues = duplicateStations(parsed.data.stations ?? []);
  if (issues.length > 0) throw configIssues(source, issues);
  return parsed.data;
}

async function readConfigFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw configIssues(path, [{ path: '', message: `cannot read the file (${code ?? String(err)})` }]);
  }
}

function duplicateStations(stations: readonly { name: string }[]): Issue[] {
  const seen = new Set<string>();
  const issues: Issue[] = [];
  stations.forEach((s, i) => {
    if (seen.has(s.name)) issues.push({ path: `stations[${i}].name`, message: `duplicate station "${s.name}"` });
    seen.add(s.name);
  });
  return issues;
}

const ENV_VARS = {
  dataDir: 'JUNCTION_DATA_DIR',
  host: 'JUNCTION_HOST',
  port: 'JUNCTION_PORT',
  logLevel: 'JUNCTION_LOG_LEVEL',
  secretsKeyFile: 'JUNCTION_SECRETS_KEY_FILE',
  maxOpenFiles: 'JUNCTION_MAX_OPEN_FILES',
} as const;

function parseEnv(env: Readonly<Record<string, string | undefined>>): Partial<ServerSettings> {
  const out: Partial<ServerSettings> = {};
  const issues: Issue[] = [];
  const dataDir = env[ENV_VARS.dataDir];
  if (dataDir !== undefined && dataDir !== '') out.dataDir = dataDir;
  const keyFile = env[ENV_VARS.secretsKeyFile];
  if (keyFile !== undefined && keyFile !== '') out.secretsKeyFile = keyFile;
  const host = env[ENV_VARS.host];
  if (host !== undefined && host !== '') out.host = host;
  const port = env[ENV_VARS.port];
  if (port !== undefined && port !== '') {
    const parsed = Port.safeParse(/^\d+$/.test(port) ? Number(port) : port);
    if (parsed.success) out.port = parsed.data;
    else issues.push({ path: ENV_VARS.port, message: `must be an integer from 0 to 65535 (got "${port}")` });
  }
  const maxOpenFiles = env[ENV_VARS.maxOpenFiles];
  if (maxOpenFiles !== undefined && maxOpenFiles !== '') {
    const parsed = MaxOpenFiles.safeParse(/^\d+$/.test(maxOpenFiles) ? Number(maxOpenFiles) : maxOpenFiles);
    if (parsed.success) out.maxOpenFiles = parsed.data;
    else issues.push({ path: ENV_VARS.maxOpenFiles, message: `must be an integer of at least 64 (got "${maxOpenFiles}")` });
  }
  const logLevel = env[ENV_VARS.logLevel];
  if (logLevel !== undefined && logLevel !== '') {
    const parsed = LogLevel.safeParse(logLevel);
    if (parsed.success) out.logLevel = parsed.data;
    else issues.push({ path: ENV_VARS.logLevel, message: `must be one of ${LogLevel.options.join(', ')} (got "${logLevel}")` });
  }
  if (issues.length > 0) throw configIssues('the environment', issues);
  return out;
}

const Overrides = z.strictObject({
  host: Host.optional(),
  port: Port.optional(),
  dataDir: DataDir.optional(),
  fsync: FsyncPolicy.optional(),
  bodyLimitBytes: BodyLimit.optional(),
  logLevel: LogLevel.optional(),
  nats: z.string().min(1).optional(),
});

const FLAG_NAMES: Record<string, string> = {
  host: '--host',
  port: '--port',
  dataDir: '--data-dir',
  fsync: '--fsync',
  bodyLimitBytes: '--body-limit-bytes',
  logLevel: '--log-level',
  nats: '--nats',
};

function parseOverrides(overrides: ConfigOverrides): Partial<ServerSettings> & { nats?: string | undefined } {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const parsed = Overrides.safeParse(defined);
  if (!parsed.success) {
    throw configIssues(
      'the command line',
      issuesFromZod(parsed.error).map((i) => {
        const key = i.path.split(/[.[]/)[0] ?? '';
        return { path: FLAG_NAMES[key] ?? i.path, message: i.message };
      }),
    );
  }
  return parsed.data;
}
