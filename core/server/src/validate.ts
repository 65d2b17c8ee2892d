/**
 * `junction validate`: checks a junction.yaml offline — no broker, no store opened — and reports every
 * issue at once, each with its field path and, where the file has the node, its line and column:
 *
 * - YAML syntax (then nothing else can be read);
 * - the file's schema (`server`, `cluster`, `auth`, `tls`, `stations` and their options, `connect`);
 * - each connector: its declaration (the runtime's own zod schema, so fields added to it are checked as
 *   they are added), its plugin (found the way the server finds it: the built-in connectors and
 *   `<dataDir>/plugins`), its config against the plugin's schema, its isolation, and — with auth on —
 *   its host paths under `auth.hostPathRoots`;
 * - secrets: every `${env:NAME}` / `${file:/path}` reference resolvable (only names are printed, never
 *   values; a validator's message quoting a secret is scrubbed);
 * - references: a connector's station is declared under `stations:` (or, when `stationExists` is given,
 *   exists on a broker).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import { ConnectSettings, ConnectorDeclaration, connectorIsolation, resolveReferences, scrubber, secretStrings } from '@junction/connect';
import { Registry as PluginRegistry } from '@junction/registry';
import { ConfigFile, CONFIG_DEFAULTS } from './config.js';
import { connectorPathIssues } from './confine.js';
import { issuesFromZod } from './errors.js';
import { BUILTIN_CONNECTORS_DIR } from './server.js';

export interface ValidationIssue {
  /** The field path (`connectors[2].config.bucket`); empty for the file as a whole. */
  path: string;
  message: string;
  /** 1-based, where the file has the node (or its nearest ancestor). */
  line?: number | undefined;
  column?: number | undefined;
}

export interface ValidationReport {
  /** The file checked (absolute). */
  file: string;
  valid: boolean;
  issues: ValidationIssue[];
  /** What the file declares (counted when they could be read). */
  stations: number;
  connectors: number;
  /** The plugins found, as the server would find them. */
  plugins: string[];
}

export interface ValidateOptions {
  /** For `${env:…}` references and JUNCTION_DATA_DIR / JUNCTION_NATS_URL. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Base of a data dir that comes from the environment or the default. Default `process.cwd()`. */
  cwd?: string | undefined;
  /** Folders of built-in connector packages. Default: the repository's `connectors/`. */
  builtinConnectorDirs?: string[] | undefined;
  /** Asked for a connector's station that `stations:` does not declare (e.g. a broker's answer). Absent: such a station is an issue. */
  stationExists?: ((name: string) => Promise<boolean>) | undefined;
}

const silent = { warn: () => {}, debug: () => {} };

/** Splits `connectors[2].config.bucket` into `['connectors', 2, 'config', 'bucket']`. */
function segments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/** Line and column of the node at `path`, or of its nearest ancestor the file has. */
function locate(doc: Document, counter: LineCounter, path: string): { line?: number; column?: number } {
  const segs = segments(path);
  for (let n = segs.length; n >= 0; n--) {
    const node = doc.getIn(segs.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node && Array.isArray(node.range)) {
      const pos = counter.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * Validates a junction.yaml without a broker. Never throws for what the file holds; an unreadable file
 * is an issue too (path empty).
 */
export async function validateConfigFile(path: string, options: ValidateOptions = {}): Promise<ValidationReport> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = resolve(cwd, path);
  const report: ValidationReport = { file, valid: false, issues: [], stations: 0, connectors: 0, plugins: [] };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    report.issues.push({ path: '', message: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})` });
    return report;
  }
  const counter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter: counter });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0];
      report.issues.push({
        path: '',
        message: `YAML: ${e.message.split('\n')[0] ?? e.message}`,
        ...(pos && { line: pos.line, column: pos.col }),
      });
    }
    return report;
  }
  const issues: { path: string; message: string }[] = [];
  const raw = doc.toJS() ?? {};
  const top = asRecord(raw);
  if (!top) {
    report.issues.push({ path: '', message: 'the file must be a map of sections (server, stations, connectors, …)', line: 1, column: 1 });
    return report;
  }
  // An empty section (`stations:` with nothing under it) reads as null: taken as absent, as the server does.
  for (const [k, v] of Object.entries(top)) if (v === null) delete top[k];
  const { connectors: rawConnectors, ...rest } = top;

  // The file's own sections (connectors are checked one by one below, so each gets every issue).
  const parsed = ConfigFile.omit({ connectors: true }).safeParse(rest);
  if (!parsed.success) issues.push(...issuesFromZod(parsed.error));
  const rawStations = Array.isArray(top['stations']) ? (top['stations'] as unknown[]) : [];
  const stationNames = new Set<string>();
  rawStations.forEach((s, i) => {
    const name = asRecord(s)?.['name'];
    if (typeof name !== 'string') return;
    if (stationNames.has(name)) issues.push({ path: `stations[${i}].name`, message: `duplicate station "${name}"` });
    stationNames.add(name);
  });
  report.stations = rawStations.length;
  const clustered = top['cluster'] !== undefined || (env['JUNCTION_NATS_URL'] ?? '') !== '';
  if (!clustered) {
    rawStations.forEach((s, i) => {
      if (asRecord(s)?.['replicas'] !== undefined)
        issues.push({
          path: `stations[${i}].replicas`,
          message: 'only in cluster mode (cluster.nats, --nats or JUNCTION_NATS_URL): the embedded engine keeps one copy',
        });
    });
  }

  // Plugins: where the server finds them (the built-ins, `<dataDir>/plugins`).
  const fileDir = dirname(file);
  const server = asRecord(top['server']);
  const envDataDir = env['JUNCTION_DATA_DIR'];
  const dataDir =
    envDataDir !== undefined && envDataDir !== ''
      ? resolve(cwd, envDataDir)
      : typeof server?.['dataDir'] === 'string'
        ? resolve(fileDir, server['dataDir'])
        : resolve(cwd, CONFIG_DEFAULTS.dataDir);
  let connectors: unknown[] = [];
  if (rawConnectors !== undefined && !Array.isArray(rawConnectors))
    issues.push({ path: 'connectors', message: 'must be a list of connector declarations' });
  else connectors = rawConnectors ?? [];
  report.connectors = connectors.length;
  const plugins = await PluginRegistry.open({
    builtinDirs: options.builtinConnectorDirs ?? [BUILTIN_CONNECTORS_DIR],
    pluginsDir: join(dataDir, 'plugins'),
    logger: silent,
  });
  report.plugins = plugins.list().map((p) => p.name);
  const settings = ConnectSettings.safeParse(top['connect'] ?? {});
  const auth = asRecord(top['auth']);
  const roots =
    auth?.['enabled'] === true
      ? Array.isArray(auth['hostPathRoots'])
        ? (auth['hostPathRoots'] as unknown[]).filter((r): r is string => typeof r === 'string').map((r) => resolve(fileDir, r))
        : [dataDir]
      : undefined;

  const connectorNames = new Set<string>();
  for (let i = 0; i < connectors.length; i++) {
    const at = `connectors[${i}]`;
    const d = ConnectorDeclaration.safeParse(connectors[i]);
    if (!d.success) {
      issues.push(...issuesFromZod(d.error, at));
      continue;
    }
    const decl = d.data;
    if (connectorNames.has(decl.name)) issues.push({ path: `${at}.name`, message: `duplicate connector "${decl.name}"` });
    connectorNames.add(decl.name);
    if (!stationNames.has(decl.station) && !(await options.stationExists?.(decl.station).catch(() => false))) {
      issues.push({
        path: `${at}.station`,
        message: `station "${decl.station}" is not declared under stations:${options.stationExists ? ' and does not exist on the broker' : ''}`,
      });
    }
    const descriptor = plugins.get(decl.plugin);
    if (!descriptor) {
      const refused = plugins
        .refused()
        .find(
          (r) =>
            r.packageName === decl.plugin ||
            (r.packageName ?? '').endsWith(`-${decl.plugin}`) ||
            r.path.endsWith(`-${decl.plugin}`) ||
            r.path.endsWith(`/${decl.plugin}`),
        );
      issues.push({
        path: `${at}.plugin`,
        message: refused
          ? `plugin "${decl.plugin}" was refused by the registry (${refused.code}): ${refused.message}`
          : `no connector plugin named "${decl.plugin}" (found: ${report.plugins.join(', ') || 'none'})`,
      });
      continue;
    }
    if (settings.success) {
      const iso = connectorIsolation(descriptor, decl.isolation, settings.data);
      if ('problem' in iso) issues.push({ path: `${at}.isolation`, message: iso.problem });
    }
    const resolved = await resolveReferences(decl.config, { env, prefix: `${at}.config` });
    issues.push(...resolved.issues);
    const unresolved = new Set(resolved.issues.map((x) => x.path));
    const v = await plugins.validate(descriptor.name, resolved.value, `${at}.config`);
    if (!v.ok) {
      const scrub = scrubber(secretStrings((await plugins.load(descriptor.name)).config, resolved.value));
      // A field whose reference did not resolve holds the reference's text: its issue is said already.
      for (const x of v.issues) if (!unresolved.has(x.path)) issues.push({ path: x.path, message: scrub(x.message) });
    }
    if (roots) issues.push(...(await connectorPathIssues(plugins, decl, roots, `${at}.`)));
  }

  report.issues = issues.map((x) => ({ ...x, ...locate(doc, counter, x.path) }));
  report.valid = report.issues.length === 0;
  return report;
}
