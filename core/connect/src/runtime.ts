/**
 * The connector runtime: the connectors, their target states and their runners, kept in
 * `<dataDir>/connect/connectors.json` so connectors created over the API survive a restart.
 *
 * A connector's target state is RUNNING, PAUSED or STOPPED (as in Kafka Connect). PAUSED and STOPPED
 * both stop its tasks (in-flight batches settle, the rest is nacked back to the group, sinks are closed,
 * workers end); STOPPED additionally allows its offsets to be changed. Operations on one connector are
 * serialized; different connectors do not wait for each other.
 */
import type { StationSchemaResolver } from './sink-schema.js';
import { availableParallelism } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { StationStore } from '@junction/broker';
import type { ConfigSchema } from '@junction/sdk-connector';
import type { PluginCatalog, PluginDescriptor } from './catalog.js';
import { ConnectorDeclaration, ConnectorOrigin, ConnectorState, TargetState } from './declaration.js';
import { ConnectErrorCode, codeOf, configInvalid, connectError, messageOf, traceOf } from './errors.js';
import { restrictTree, writeJsonAtomic } from './files.js';
import { ConnectMetrics } from './metrics.js';
import { displayConfig, resolveReferences, scrubber, secretStrings } from './secrets.js';
import { hasLiteralSecrets, hasSealed, hasStaleSeals } from './sealed.js';
import type { SecretsKeySource } from './sealed.js';
import { SinkRunner, type StopTimeouts } from './sink-runner.js';
import { SourceRunner } from './source-runner.js';
import { FilePositionStore, type PositionStore } from './positions.js';
import { connectorKind, restartDelay, Serial } from './util.js';
import { LocalPlacement } from './placement.js';
import type { DefinitionStore, Placement, TaskRef } from './placement.js';
import { validateTransforms, workerTransforms } from './transform-config.js';
import { formatPath, parseOffsetsBody, redactStrings, sameDeclaration } from './runtime-helpers.js';
import { offsetsTarget } from './offsets-to.js';
import { ConnectSettings, connectorIsolation } from './isolation.js';
import { SharedSinkPool } from './shared-pool.js';
import { FreshnessTracker } from './freshness.js';
import { readOffsets, resetOffsetsOf, writeOffsets } from './runtime-offsets.js';
import { connectorStatus } from './runtime-status.js';
import { applyDesiredState } from './runtime-apply.js';
import { runtimeMetrics } from './runtime-metrics.js';
import { loadConnectorsFile } from './runtime-load.js';
import { RuntimeSeals } from './runtime-seals.js';
import type {
  ApplyResult,
  ConnectorInfo,
  ConnectorRt,
  ConnectorsFile,
  ConnectorStatus,
  ConnectRuntimeOptions,
  OffsetEntry,
  Stored,
} from './runtime-types.js';

export type { ApplyResult, ConnectorInfo, ConnectorStatus, ConnectRuntimeOptions, OffsetEntry } from './runtime-types.js';

/** The connector runtime (see the notes above). */
export class ConnectRuntime {
  readonly metrics: ConnectMetrics;
  private readonly store: StationStore;
  private readonly catalog: PluginCatalog;
  private readonly dir: string;
  private readonly log: Logger;
  private readonly env: Readonly<Record<string, string | undefined>>;
  private readonly pluginLogLevel: string;
  private readonly connectors = new Map<string, ConnectorRt>();
  private readonly persistLock = new Serial();
  private started = false;
  /** Problems with stored state found at start (a damaged connectors.json): see problems(). */
  private readonly problemNotes: string[] = [];
  private closed = false;
  private readonly placement: Placement;
  private readonly definitions: DefinitionStore | undefined;
  private readonly positions: PositionStore;
  private unwatch: (() => void) | undefined;
  private readonly secretsKey: SecretsKeySource;
  private readonly stationSchemaOf: StationSchemaResolver | undefined;
  private readonly seals: RuntimeSeals;
  /** The `connect:` settings: the shared pool and the operator's isolation per plugin. */
  private readonly settings: ConnectSettings;
  /** The shared pool of sink threads, made when the first shared task starts. */
  private shared: SharedSinkPool | undefined;
  private readonly stopTimeouts: Partial<StopTimeouts> | undefined;

  constructor(options: ConnectRuntimeOptions) {
    const settings = ConnectSettings.safeParse(options.connect ?? {});
    if (!settings.success)
      throw configInvalid(
        'connect',
        settings.error.issues.map((i) => ({ path: formatPath(['connect', ...i.path]), message: i.message })),
      );
    this.settings = settings.data;
    this.store = options.store;
    this.catalog = options.catalog;
    this.dir = join(options.dataDir, 'connect');
    this.log = (options.logger ?? pino({ level: 'info', name: 'junction' })).child({ component: 'connect' });
    this.env = options.env ?? process.env;
    this.pluginLogLevel = options.pluginLogLevel ?? this.log.level;
    this.stopTimeouts = options.stopTimeouts;
    this.placement = options.placement ?? new LocalPlacement();
    this.definitions = options.definitions;
    this.positions = options.positions ?? new FilePositionStore(join(this.dir, 'offsets'));
    this.stationSchemaOf = options.stationSchemaOf;
    this.secretsKey = options.secretsKey ?? { key: this.env.JUNCTION_SECRETS_KEY, file: this.env.JUNCTION_SECRETS_KEY_FILE };
    this.seals = new RuntimeSeals(this.secretsKey, this.log);
    this.metrics = runtimeMetrics(options.registry, this.connectors, () => this.shared);
  }

  private get connectorsFile(): string {
    return join(this.dir, 'connectors.json');
  }

  /** Problems found with the runtime's stored state (for /healthz): empty when there are none. */
  problems(): string[] {
    return [...this.problemNotes];
  }

  /** `<dataDir>/connect/offsets/<name>.json`: a source connector's stored positions. */
  offsetsPath(name: string): string {
    return join(this.dir, 'offsets', `${encodeURIComponent(name)}.json`);
  }

  /** Loads the stored connectors and starts those whose target is RUNNING. Call once, after the store is open. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (!this.definitions) {
      // Files holding configuration are the owner's only; older versions wrote them 0644.
      const narrowed = await restrictTree(this.dir).catch((err: unknown) => {
        this.log.warn({ dir: this.dir, err: messageOf(err) }, 'cannot narrow the permissions of the connector files');
        return 0;
      });
      if (narrowed > 0) this.log.info({ dir: this.dir, entries: narrowed }, 'connector files narrowed to their owner (0600, folders 0700)');
    }
    const stored = this.definitions
      ? ((await this.definitions.load()) as Stored[])
      : await loadConnectorsFile(this.connectorsFile, this.log, this.problemNotes);
    let stale = 0;
    for (const s of stored) {
      const parsed = ConnectorDeclaration.safeParse(s.declaration);
      if (!parsed.success) {
        this.log.error(
          { connector: (s.declaration as { name?: unknown } | undefined)?.name },
          'a stored connector is not valid any more; skipped',
        );
        continue;
      }
      const c = this.newRt({ ...s, declaration: await this.seals.unseal(parsed.data) });
      if (c.declaration.config === parsed.data.config && hasSealed(parsed.data.config)) c.sealError = this.seals.lastUnsealError;
      else if (hasSealed(parsed.data.config) && hasStaleSeals(await this.seals.keyring(false), parsed.data.config)) stale++;
      await this.learn(c);
      this.connectors.set(c.declaration.name, c);
    }
    if (stale > 0) await this.resealAll(stale);
    this.unwatch = this.definitions?.watch((name, value) => void this.onStored(name, value));
    await this.placement.start({
      tasks: () => this.wantedTasks(),
      stateOf: (ref) => this.taskState(ref),
      changed: () => this.reconcileAll(),
    });
    for (const c of this.connectors.values()) void this.reconcile(c);
  }

  // ── placement (cluster mode) ─────────────────────────────────────────────────────────────────

  /** The tasks that should run on some node: a sink's every task; a source as a whole (its task 0). */
  private wantedTasks(): TaskRef[] {
    const out: TaskRef[] = [];
    for (const c of this.connectors.values()) {
      if (c.deleted || c.target !== TargetState.RUNNING) continue;
      const n = c.kind === 'source' ? 1 : c.declaration.tasks;
      for (let task = 0; task < n; task++) out.push({ connector: c.declaration.name, task });
    }
    return out;
  }

  private taskState(ref: TaskRef): string | undefined {
    const c = this.connectors.get(ref.connector);
    if (!c) return undefined;
    const st = c.runner?.taskStatuses().find((t) => t.id === ref.task)?.state;
    return st ?? (c.state === ConnectorState.FAILED ? ConnectorState.FAILED : undefined);
  }

  /** The tasks this node may run now (a source runs whole, on the node owning its task 0). */
  private ownedTasks(c: ConnectorRt): number[] {
    const name = c.declaration.name;
    const all = Array.from({ length: c.declaration.tasks }, (_, t) => t);
    if (c.kind === 'source') return this.placement.owns({ connector: name, task: 0 }) ? all : [];
    return all.filter((task) => this.placement.owns({ connector: name, task }));
  }

  private async reconcileAll(): Promise<void> {
    await Promise.all([...this.connectors.values()].map((c) => this.reconcile(c)));
  }

  /** A definition written by any node (this one included: then it matches and nothing happens). */
  private async onStored(name: string, value: unknown): Promise<void> {
    if (this.closed) return;
    const c = this.connectors.get(name);
    if (value === undefined) {
      if (!c || c.deleted) return;
      c.deleted = true;
      await c.lock.run(async () => {
        clearTimeout(c.startTimer);
        await this.stopRunner(c);
      });
      this.connectors.delete(name);
      this.metrics.removeConnector(name, c.declaration.tasks);
      this.placement.poke();
      this.log.info({ connector: name }, 'connector deleted on another node');
      return;
    }
    const s = value as Stored;
    const parsed = ConnectorDeclaration.safeParse(s.declaration);
    if (!parsed.success) {
      this.log.error({ connector: name }, 'a shared connector definition is not valid; ignored');
      return;
    }
    const declaration = await this.seals.unseal(parsed.data);
    const unsealable = declaration.config === parsed.data.config && hasSealed(parsed.data.config) ? this.seals.lastUnsealError : undefined;
    const next: Stored = { declaration, origin: s.origin, target: s.target, createdAt: s.createdAt, updatedAt: s.updatedAt };
    if (!c || c.deleted) {
      const fresh = this.newRt(next);
      fresh.sealError = unsealable;
      await this.learn(fresh);
      this.connectors.set(name, fresh);
      this.placement.poke();
      await this.reconcile(fresh);
      return;
    }
    const declChanged = !sameDeclaration(c.declaration, next.declaration);
    if (!declChanged && c.target === next.target && c.origin === next.origin && c.updatedAt === next.updatedAt) return;
    await c.lock.run(async () => {
      if (declChanged) {
        clearTimeout(c.startTimer);
        await this.stopRunner(c);
        c.declaration = next.declaration;
        c.sealError = unsealable;
        await this.learn(c);
        c.startFailures = 0;
        c.startFailingSince = undefined;
        c.trace = undefined;
      }
      c.origin = next.origin;
      c.target = next.target;
      c.updatedAt = next.updatedAt;
    });
    this.placement.poke();
    await this.reconcile(c);
  }

  /**
   * Worker threads running plugin code that were terminated and have not exited: blocked in a native
   * call that does not return. While there are any, Node cannot exit this process normally (it waits for
   * every thread): a caller ending the process must end it by a signal (see the CLI's `start`).
   */
  get strandedThreads(): number {
    return this.metrics.strandedCount;
  }

  /** Stops every connector's tasks (their target states stay as stored). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    await Promise.all(
      [...this.connectors.values()].map((c) =>
        c.lock.run(async () => {
          clearTimeout(c.startTimer);
          await this.stopRunner(c);
        }),
      ),
    );
    await this.persistLock.run(async () => {});
    await this.shared?.close();
    // After the runners stopped: the leases go, so other nodes take the tasks at once.
    await this.placement.close().catch((err: unknown) => this.log.warn({ err: messageOf(err) }, 'closing the placement failed'));
  }

  private newRt(s: Stored): ConnectorRt {
    return {
      ...s,
      lock: new Serial(),
      state: ConnectorState.UNASSIGNED,
      startFailures: 0,
      deleted: false,
      scrub: (text) => text,
      freshness: new FreshnessTracker(),
    };
  }

  // ── secrets at rest ──────────────────────────────────────────────────────────────────────────

  /** Rotation: values sealed with an older key are sealed again with the current one. */
  private async resealAll(stale: number): Promise<void> {
    const ring = await this.seals.keyring(false);
    if (this.definitions) {
      for (const c of this.connectors.values()) if (!c.sealError) await this.persist(c.declaration.name);
    } else if (this.connectors.size > 0) {
      await this.persist([...this.connectors.keys()][0]!);
    }
    this.log.info({ connectors: stale, key: ring.current }, 'stored secrets sealed again with the current key');
  }

  // ── declarations ─────────────────────────────────────────────────────────────────────────────

  /**
   * Validates a declaration: its shape, the plugin (it must exist and be usable) and the plugin's
   * config (references resolved where they can be; an unresolvable one is left as its text and
   * reported when a task starts). Issue paths start with `prefix` (`connectors[1]` for the yaml).
   * @throws CONFIG_INVALID with issues such as `config.dir: Required`; PLUGIN_NOT_FOUND.
   */
  async validate(raw: unknown, prefix = ''): Promise<ConnectorDeclaration> {
    const parsed = ConnectorDeclaration.safeParse(raw);
    const at = (path: string): string => (prefix ? (path ? `${prefix}.${path}` : prefix) : path);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ path: at(formatPath(i.path)), message: i.message }));
      throw configInvalid('connector', issues);
    }
    const decl = parsed.data;
    const descriptor = await this.lookup(decl.plugin, at('plugin'));
    await validateTransforms(this.catalog, decl, descriptor, at);
    const iso = connectorIsolation(descriptor, decl.isolation, this.settings);
    if ('problem' in iso) throw configInvalid('connector', [{ path: at('isolation'), message: iso.problem }]);
    const { value } = await resolveReferences(decl.config, { env: this.env });
    const v = await this.catalog.validate(descriptor.name, value, at('config'));
    if (!v.ok) {
      // A validator may quote the value it refused: never a secret's.
      const scrub = scrubber(secretStrings(await this.schemaOf(descriptor.name), value));
      throw configInvalid(
        `connector ${decl.name}`,
        v.issues.map((i) => ({ path: i.path, message: scrub(i.message) })),
      );
    }
    // Literal secrets are stored sealed: without a usable key the declaration is refused, not stored in clear.
    if (hasLiteralSecrets(await this.schemaOf(descriptor.name), decl.config)) await this.seals.keyring(true);
    return decl;
  }

  private async lookup(plugin: string, path = 'plugin'): Promise<PluginDescriptor> {
    const d = this.catalog.get(plugin);
    if (d) return d;
    // Not listed: say why when a refused package looks like it (its SDK range, a broken manifest).
    const refused = this.catalog.refused?.().find((r) => {
      const pkg = r.packageName ?? '';
      return (
        pkg === plugin ||
        pkg.endsWith(`/${plugin}`) ||
        pkg.endsWith(`-${plugin}`) ||
        r.path.endsWith(`/${plugin}`) ||
        r.path.endsWith(`-${plugin}`)
      );
    });
    if (refused) {
      const message = `connector plugin "${plugin}" was refused by the registry (${refused.code}): ${refused.message}`;
      throw connectError(refused.code, message, { issues: [{ path, message }] });
    }
    const message = `no connector plugin named "${plugin}"`;
    throw connectError(ConnectErrorCode.PLUGIN_NOT_FOUND, message, { issues: [{ path, message }] });
  }

  /** Remembers the plugin's kind and config schema (for status and redaction before the first start). */
  private async learn(c: ConnectorRt): Promise<void> {
    const d = this.catalog.get(c.declaration.plugin);
    c.kind = connectorKind(d?.kind);
    c.schema = d ? await this.schemaOf(d.name) : undefined;
  }

  /** The plugin's zod config schema (for redaction), or undefined when it cannot be loaded. */
  pluginSchema(plugin: string): Promise<ConfigSchema | undefined> {
    return this.catalog.get(plugin) ? this.schemaOf(plugin) : Promise.resolve(undefined);
  }

  /** For pipeline plans (plan.ts): the declaration as it runs — secrets open, never to be answered as is. */
  current(
    name: string,
  ): { declaration: ConnectorDeclaration; schema: ConfigSchema | undefined; origin: ConnectorOrigin; target: TargetState } | undefined {
    const c = this.connectors.get(name);
    return c && !c.deleted ? { declaration: c.declaration, schema: c.schema, origin: c.origin, target: c.target } : undefined;
  }

  private async schemaOf(plugin: string): Promise<ConfigSchema | undefined> {
    try {
      return (await this.catalog.load(plugin)).config;
    } catch {
      return undefined;
    }
  }

  // ── CRUD ─────────────────────────────────────────────────────────────────────────────────────

  names(): string[] {
    return [...this.connectors.keys()].sort();
  }

  has(name: string): boolean {
    return this.connectors.has(name);
  }

  private get(name: string): ConnectorRt {
    const c = this.connectors.get(name);
    if (!c || c.deleted) throw connectError(ConnectErrorCode.CONNECTOR_NOT_FOUND, `no connector named "${name}"`);
    return c;
  }

  /** Creates a connector (CONNECTOR_EXISTS if the name is taken) and starts it unless its `state` says otherwise. `raw` is a ConnectorDeclarationInput from outside: validated here (CONFIG_INVALID). */
  async create(raw: unknown, origin: ConnectorOrigin = ConnectorOrigin.api): Promise<ConnectorInfo> {
    this.assertOpen();
    const decl = await this.validate(raw);
    if (this.connectors.has(decl.name)) throw connectError(ConnectErrorCode.CONNECTOR_EXISTS, `connector "${decl.name}" already exists`);
    const now = Date.now();
    const c = this.newRt({ declaration: decl, origin, target: decl.state ?? TargetState.RUNNING, createdAt: now, updatedAt: now });
    await this.learn(c);
    this.connectors.set(decl.name, c);
    await this.persist(decl.name);
    this.placement.poke();
    this.log.info({ connector: decl.name, plugin: decl.plugin, station: decl.station, origin }, 'connector created');
    await this.reconcile(c);
    return this.info(decl.name);
  }

  /**
   * Creates or updates (`PUT …/config`): an update replaces the declaration and restarts the tasks
   * with it. `created` tells which happened.
   */
  async put(name: string, raw: unknown, origin: ConnectorOrigin = ConnectorOrigin.api): Promise<{ created: boolean; info: ConnectorInfo }> {
    this.assertOpen();
    const body = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? { ...(raw as Record<string, unknown>) } : raw;
    if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
      const b = body as Record<string, unknown>;
      if (b.name !== undefined && b.name !== name)
        throw configInvalid('connector', [{ path: 'name', message: `must be "${name}" (the name in the URL) or left out` }]);
      b.name = name;
    }
    const decl = await this.validate(body);
    const existing = this.connectors.get(name);
    if (!existing || existing.deleted) {
      const info = await this.create(decl, origin);
      return { created: true, info };
    }
    await this.update(
      existing,
      decl,
      existing.origin === ConnectorOrigin.file && origin === ConnectorOrigin.api ? ConnectorOrigin.file : origin,
    );
    return { created: false, info: this.info(name) };
  }

  private async update(c: ConnectorRt, decl: ConnectorDeclaration, origin: ConnectorOrigin): Promise<void> {
    await c.lock.run(async () => {
      clearTimeout(c.startTimer);
      await this.stopRunner(c);
      c.declaration = decl;
      c.origin = origin;
      await this.learn(c);
      if (decl.state) c.target = decl.state;
      c.updatedAt = Date.now();
      c.startFailures = 0;
      c.startFailingSince = undefined;
      c.trace = undefined;
    });
    await this.persist(decl.name);
    this.placement.poke();
    this.log.info({ connector: decl.name }, 'connector updated');
    await this.reconcile(c);
  }

  /**
   * Deletes a connector: stops its tasks and forgets it. Like Kafka Connect, its progress is kept: a
   * sink's consumer group `connector.<name>` and a source's stored positions stay, so a connector
   * created again with the same name resumes (reset its offsets first to start over).
   */
  async delete(name: string): Promise<void> {
    const c = this.get(name);
    c.deleted = true;
    await c.lock.run(async () => {
      clearTimeout(c.startTimer);
      await this.stopRunner(c);
    });
    this.connectors.delete(name);
    this.metrics.removeConnector(name, c.declaration.tasks);
    await this.persist(name);
    this.placement.poke();
    this.log.info({ connector: name }, 'connector deleted');
  }

  // ── target states ────────────────────────────────────────────────────────────────────────────

  async pause(name: string): Promise<void> {
    await this.setTarget(name, TargetState.PAUSED);
  }

  async resume(name: string): Promise<void> {
    await this.setTarget(name, TargetState.RUNNING);
  }

  async stop(name: string): Promise<void> {
    await this.setTarget(name, TargetState.STOPPED);
  }

  private async setTarget(name: string, target: TargetState): Promise<void> {
    const c = this.get(name);
    if (c.target !== target) {
      c.target = target;
      c.updatedAt = Date.now();
      await this.persist(name);
      this.placement.poke();
      this.log.info({ connector: name, target }, 'connector target state changed');
    }
    await this.reconcile(c);
  }

  /**
   * Kafka Connect's restart: without options restarts the connector (a failed one starts again, a
   * running one is stopped and started); `includeTasks` also restarts its tasks, `onlyFailed` limits
   * that to failed ones (and a connector that is not failed is left as it is).
   */
  async restart(name: string, opts: { includeTasks?: boolean; onlyFailed?: boolean } = {}): Promise<void> {
    const c = this.get(name);
    if (c.target !== TargetState.RUNNING) return;
    const connectorFailed = c.state === ConnectorState.FAILED;
    if (!opts.onlyFailed || connectorFailed) {
      await c.lock.run(async () => {
        clearTimeout(c.startTimer);
        await this.stopRunner(c);
        c.startFailures = 0;
        c.startFailingSince = undefined;
      });
      await this.reconcile(c);
      return;
    }
    if (opts.includeTasks && c.runner) {
      for (const t of c.runner.taskStatuses()) if (t.state === ConnectorState.FAILED) c.runner.restartTask(t.id);
    }
  }

  /** Restarts one task now (a failed task waiting for its backoff, or a running one). */
  async restartTask(name: string, task: number): Promise<void> {
    const c = this.get(name);
    if (!Number.isInteger(task) || task < 0 || task >= c.declaration.tasks) {
      throw connectError(ConnectErrorCode.TASK_NOT_FOUND, `connector "${name}" has no task ${task}`);
    }
    if (!c.runner) {
      if (c.target === TargetState.RUNNING) await this.restart(name);
      return;
    }
    c.runner.restartTask(task, true);
    if (c.state === ConnectorState.FAILED && c.runner.taskStatuses().every((t) => t.state !== ConnectorState.FAILED)) {
      c.state = ConnectorState.RUNNING;
      c.trace = undefined;
    }
  }

  /** Makes the runner match the target state (starting with backoff when the start fails). */
  private reconcile(c: ConnectorRt): Promise<void> {
    return c.lock.run(async () => {
      if (c.deleted || this.closed) return;
      if (c.target !== TargetState.RUNNING) {
        clearTimeout(c.startTimer);
        await this.stopRunner(c);
        c.state = c.target === TargetState.PAUSED ? ConnectorState.PAUSED : ConnectorState.STOPPED;
        c.trace = undefined;
        for (let t = 0; t < c.declaration.tasks; t++) this.metrics.setTaskState(c.declaration.name, t, c.state);
        return;
      }
      const owned = this.ownedTasks(c);
      if (c.runner && isDeepStrictEqual(c.owned, owned)) return;
      if (c.runner) await this.stopRunner(c);
      if (owned.length === 0) {
        // Every task runs on other nodes (cluster placement).
        clearTimeout(c.startTimer);
        c.state = ConnectorState.RUNNING;
        c.trace = undefined;
        return;
      }
      clearTimeout(c.startTimer);
      try {
        await this.startRunner(c, owned);
        c.state = ConnectorState.RUNNING;
        c.trace = undefined;
        c.startFailures = 0;
        c.startFailingSince = undefined;
        c.nextStartAt = undefined;
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        c.startFailures++;
        c.startFailingSince ??= Date.now();
        c.state = ConnectorState.FAILED;
        c.trace = c.scrub(traceOf(e));
        c.lastError = { code: codeOf(e) ?? 'INTERNAL', message: c.scrub(e.message), at: Date.now() };
        for (let t = 0; t < c.declaration.tasks; t++) this.metrics.setTaskState(c.declaration.name, t, ConnectorState.UNASSIGNED);
        const delay = restartDelay(c.startFailures);
        this.log.error(
          { connector: c.declaration.name, code: c.lastError.code, err: c.lastError.message, retryInMs: delay },
          'connector could not start; trying again after a backoff',
        );
        c.nextStartAt = Date.now() + delay;
        c.startTimer = setTimeout(() => void this.reconcile(c), delay);
        c.startTimer.unref?.();
      }
    });
  }

  private async startRunner(c: ConnectorRt, owned: number[]): Promise<void> {
    const decl = c.declaration;
    if (c.sealError) throw c.sealError;
    const descriptor = await this.lookup(decl.plugin);
    c.kind = connectorKind(descriptor.kind);
    c.schema = await this.schemaOf(descriptor.name);
    const { value, issues } = await resolveReferences(decl.config, { env: this.env, prefix: 'config' });
    const {
      transforms,
      secrets: transformSecrets,
      untrusted,
    } = await workerTransforms(this.catalog, decl, descriptor, this.env, this.settings);
    c.scrub = scrubber([...secretStrings(c.schema, value), ...transformSecrets]);
    if (issues.length > 0) {
      const first = issues[0]!;
      throw connectError(ConnectErrorCode.SECRET_UNRESOLVED, `${first.path}: ${first.message}`, { issues });
    }
    const v = await this.catalog.validate(descriptor.name, value, 'config');
    if (!v.ok)
      throw configInvalid(
        `connector ${decl.name}`,
        v.issues.map((i) => ({ path: i.path, message: c.scrub(i.message) })),
      );
    const config = value as Record<string, unknown>;
    const logger = this.log.child({ connector: decl.name });
    const events = {
      onFatal: (err: Error) => {
        c.state = ConnectorState.FAILED;
        c.trace = c.scrub(traceOf(err));
        c.lastError = { code: codeOf(err) ?? 'INTERNAL', message: c.scrub(err.message), at: Date.now() };
      },
    };
    const common = {
      store: this.store,
      decl,
      pluginName: descriptor.name,
      entry: descriptor.entry,
      config,
      logger,
      logLevel: this.pluginLogLevel,
      metrics: this.metrics,
      events,
      scrub: c.scrub,
      transforms,
      stopTimeouts: this.stopTimeouts,
    };
    // Re-checked at each start: the operator's settings may have changed since the declaration was accepted.
    const iso = connectorIsolation(descriptor, decl.isolation, this.settings);
    if ('problem' in iso) throw configInvalid(`connector ${decl.name}`, [{ path: 'isolation', message: iso.problem }]);
    if (iso.isolation === 'shared' && untrusted) iso.isolation = 'thread';
    c.isolation = descriptor.kind === 'sink' ? iso.isolation : 'thread';
    const runner =
      descriptor.kind === 'sink'
        ? new SinkRunner({
            ...common,
            tasks: owned,
            worker: this.placement.node,
            reclaim: this.placement.node !== undefined,
            stationSchemaOf: this.stationSchemaOf,
            freshness: c.freshness,
            shared: iso.isolation === 'shared' ? this.sharedPool() : undefined,
          })
        : new SourceRunner({
            ...common,
            positions: this.positions,
            // A source runs whole where its task 0 is owned: that lease fences its positions.
            fence: this.placement.fence ? () => this.placement.fence!({ connector: decl.name, task: 0 }) : undefined,
          });
    try {
      await runner.start();
    } catch (err) {
      await runner.stop().catch(() => {});
      throw err;
    }
    c.runner = runner;
    c.owned = owned;
    this.log.info(
      {
        connector: decl.name,
        kind: descriptor.kind,
        tasks: decl.tasks,
        ...(this.placement.node !== undefined && { owned, node: this.placement.node }),
        config: displayConfig(c.schema, decl.config),
      },
      'connector started',
    );
  }

  /** The shared pool of sink threads (made on first use, sized by `connect.sharedPool.threads`, default the cores). */
  private sharedPool(): SharedSinkPool {
    this.shared ??= new SharedSinkPool({
      threads: this.settings.sharedPool.threads ?? availableParallelism(),
      maxHeapMb: this.settings.sharedPool.maxHeapMb,
      logger: this.log,
      strand: (w) => this.metrics.strand(w),
      recycled: () => this.metrics.sharedRecycles.inc(),
      terminateWaitMs: this.stopTimeouts?.terminateWaitMs,
    });
    return this.shared;
  }

  /** Threads of the shared pool and the sink tasks pinned to it now (tests, the benchmark). */
  sharedPoolStats(): { threads: number; tasks: number; lanes: number } {
    return { threads: this.shared?.threads ?? 0, tasks: this.shared?.tasks ?? 0, lanes: this.shared?.lanes.length ?? 0 };
  }

  private async stopRunner(c: ConnectorRt): Promise<void> {
    const runner = c.runner;
    if (!runner) return;
    c.runner = undefined;
    c.owned = undefined;
    await runner
      .stop()
      .catch((err: unknown) => this.log.error({ connector: c.declaration.name, err: messageOf(err) }, 'stopping the connector failed'));
  }

  // ── views ────────────────────────────────────────────────────────────────────────────────────

  /** The declaration as it may be shown: secret fields redacted, references as written. */
  config(name: string): ConnectorDeclaration {
    const c = this.get(name);
    return { ...c.declaration, config: this.display(c) };
  }

  private display(c: ConnectorRt): Record<string, unknown> {
    if (c.schema) return displayConfig(c.schema, c.declaration.config);
    // Without the plugin's schema nothing says which fields are secret: show no literal strings.
    return redactStrings(c.declaration.config) as Record<string, unknown>;
  }

  info(name: string): ConnectorInfo {
    const c = this.get(name);
    const d = c.declaration;
    return {
      name: d.name,
      type: c.kind ?? 'unknown',
      plugin: d.plugin,
      station: d.station,
      config: { ...d, config: this.display(c) },
      tasks: Array.from({ length: d.tasks }, (_, task) => ({ connector: d.name, task })),
      target: c.target,
      origin: c.origin,
      createdAt: c.createdAt,
      updatedAt: c.updatedAt,
    };
  }

  async status(name: string): Promise<ConnectorStatus> {
    const c = this.get(name);
    const d = c.declaration;
    if (!c.kind && !c.schema) {
      // Learn the kind (and the schema, for redaction) even if the connector never started.
      try {
        const desc = await this.lookup(d.plugin);
        c.kind = connectorKind(desc.kind);
        c.schema = await this.schemaOf(desc.name);
      } catch {
        // unknown plugin: the status says FAILED with the reason already
      }
    }
    return connectorStatus(c, this.placement, this.store);
  }

  /** What a sink runner holds now (tests and the benchmark). */
  buffered(name: string): ReturnType<SinkRunner['buffered']> | undefined {
    const r = this.get(name).runner;
    return r instanceof SinkRunner ? r.buffered() : undefined;
  }

  // ── offsets ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Kafka Connect's offsets view. Sink: per partition of the station, `offset` is the group's ack
   * floor, the next offset the connector will process (`{ partition: { station, partition }, offset: { offset } }`).
   * Source: the stored position of each task (`{ partition: { task }, offset: <position> }`).
   */
  async offsets(name: string): Promise<{ offsets: OffsetEntry[] }> {
    const c = this.get(name);
    const d = c.declaration;
    const kind =
      c.kind ??
      (await this.lookup(d.plugin).then(
        (x) => connectorKind(x.kind),
        () => undefined,
      ));
    return readOffsets({ store: this.store, positions: this.positions }, d, kind);
  }

  /**
   * Sets offsets (only while STOPPED). Sink: `{ offsets: [{ partition: { partition: 0 }, offset: { offset: 42 } }] }`
   * moves the group's cursor of that partition to 42. Source: `{ offsets: [{ partition: { task: 0 }, offset: <position> }] }`
   * stores that position (null removes it). Or `{ to: earliest | latest | timestamp | offset }` (offsets-to.ts).
   */
  async setOffsets(name: string, body: unknown): Promise<{ message: string; offsets?: OffsetEntry[] }> {
    const c = this.assertStopped(name);
    const d = c.declaration;
    const to = offsetsTarget(body);
    const entries = to ? [] : parseOffsetsBody(body);
    const kind = c.kind ?? connectorKind((await this.lookup(d.plugin)).kind);
    return c.lock.run(() => writeOffsets({ store: this.store, positions: this.positions }, d, kind, to, entries));
  }

  /** Resets offsets (only while STOPPED): a sink's group goes back to the earliest message; a source's positions are removed. */
  async resetOffsets(name: string): Promise<{ message: string }> {
    const c = this.assertStopped(name);
    const d = c.declaration;
    const kind = c.kind ?? connectorKind((await this.lookup(d.plugin)).kind);
    return c.lock.run(() => resetOffsetsOf({ store: this.store, positions: this.positions }, d, kind));
  }

  private assertStopped(name: string): ConnectorRt {
    const c = this.get(name);
    if (c.target !== TargetState.STOPPED) {
      throw connectError(
        ConnectErrorCode.CONNECTOR_NOT_STOPPED,
        `connector "${name}" must be STOPPED to change its offsets (PUT /v1/connectors/${name}/stop first)`,
      );
    }
    return c;
  }

  // ── desired state from junction.yaml ─────────────────────────────────────────────────────────

  /**
   * Makes `decls` (the `connectors:` of junction.yaml) the desired state of the connectors they name:
   * creates the missing ones, updates those whose declaration changed (restarting their tasks; a
   * `state:` in the file is applied then), and takes over API-created connectors of the same name.
   * Connectors that came from the file and are no longer in it are deleted; API-created ones are left
   * alone. All declarations are validated first: one invalid declaration changes nothing.
   * @throws CONFIG_INVALID with paths like `connectors[1].config.dir`.
   */
  async applyDesired(raw: readonly unknown[]): Promise<ApplyResult> {
    this.assertOpen();
    return applyDesiredState(
      {
        connectors: this.connectors,
        log: this.log,
        validate: (r, prefix) => this.validate(r, prefix),
        create: (d, origin) => this.create(d, origin),
        update: (c, d, origin) => this.update(c, d, origin),
        persist: (name) => this.persist(name),
        delete: (name) => this.delete(name),
      },
      raw,
    );
  }

  // ── persistence ──────────────────────────────────────────────────────────────────────────────

  /** Stores the connector's definition (all of them, in the file), literal secrets sealed. */
  private persist(name: string): Promise<void> {
    return this.persistLock.run(async () => {
      if (this.definitions) {
        const c = this.connectors.get(name);
        if (c && !c.deleted)
          await this.definitions.save({
            declaration: await this.seals.sealed(c),
            origin: c.origin,
            target: c.target,
            createdAt: c.createdAt,
            updatedAt: c.updatedAt,
          });
        else await this.definitions.remove(name);
        return;
      }
      const connectors: Stored[] = [];
      for (const c of this.connectors.values()) {
        if (!c.deleted)
          connectors.push({
            declaration: await this.seals.sealed(c),
            origin: c.origin,
            target: c.target,
            createdAt: c.createdAt,
            updatedAt: c.updatedAt,
          });
      }
      await writeJsonAtomic(this.connectorsFile, { version: 1, connectors } satisfies ConnectorsFile);
    });
  }

  private assertOpen(): void {
    if (this.closed) throw connectError(ConnectErrorCode.RUNTIME_CLOSED, 'the connector runtime is closed');
  }
}
