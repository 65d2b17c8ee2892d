/**
 * The Firebolt sink: messages → rows of one table, one multi-row INSERT per chunk, each offset once.
 *
 * - Every row carries station, station id (the incarnation: a station created again under the same
 *   name restarts at offset 1), partition and offset; the table is the record of what landed
 *   ({@link Presence}). One INSERT statement is atomic in Firebolt: all its rows land or none.
 * - A table made before the station id column gets it (`ALTER TABLE … ADD COLUMN`) at task start; its
 *   rows keep NULL there until the first write of their station after the upgrade claims them for that
 *   station's incarnation (`UPDATE … SET station_id = … WHERE station = … AND station_id IS NULL`).
 * - One INSERT per chunk, an anti-join: `INSERT INTO t (…) SELECT v.c::TYPE, … FROM (VALUES (…), …) AS
 *   v (…) WHERE v.offset NOT IN (SELECT offset FROM t WHERE station = … AND station_id = … AND
 *   partition = … AND offset BETWEEN min AND max)`. A statement that lands late — sent by a task that
 *   was killed before its answer came, run by Firebolt after the restarted task wrote the same offsets
 *   in other batches — inserts none of them. (Firebolt runs DML at snapshot isolation: two copies
 *   running at the same moment could both insert; a late one that starts after the rewrite committed
 *   cannot.) The values travel as text and are cast in the SELECT, so a value of the wrong type is a
 *   cast error of its row, never a type clash of the VALUES list.
 * - firebolt-sdk re-sends a request only after a 401/403 (a statement that did not run); the sink never
 *   re-sends blindly either: after a 5xx, a 429 or a network error the outcome is unknown, the
 *   partition is forgotten and the table asked again before the rows go out again (up to
 *   `maxAttempts` within `writeTimeoutMs`).
 * - The sink never waits past `writeTimeoutMs`: it answers retry(), and the INSERT it gave up on is
 *   *fenced* — until its request settles, no statement for that partition is sent again (from this or
 *   any sink in the process), so a late landing cannot race a re-send. After it settles, the
 *   partition is asked again.
 * - A statement refused for its data (a cast that fails, a NULL in a NOT NULL column) is split in halves
 *   until the offending rows are alone; those are dead-lettered with Firebolt's message.
 */
import { Firebolt, type Connection } from 'firebolt-sdk';
import {
  deadLetter,
  ErrorCode,
  JunctionError,
  ok,
  retry,
  type Counter,
  type Logger,
  type PartitionRef,
  type Sink,
  type SinkBatch,
  type SinkContext,
  type WriteOptions,
  type WriteResult,
  Presence,
  Fences,
  GAVE_UP,
  untilDeadline,
} from '@junction/sdk-connector';
import type { FireboltSinkConfig } from './config.js';
import { describe, isAuthError, isDataError, isNotFound, isSqlError, toJunctionError } from './errors.js';
import { PlainOrTlsHttpClient, silentLogger } from './http.js';
import { columnsOf, lit, metaColumns, q, textLit, toRow, type Col, type MetaColumns } from './rows.js';
import type { SinkMessage, StationSchemaInfo } from '@junction/sdk-connector';
import { compareColumns, schemaDecoder, type SchemaDecoder } from '@junction/sdk-connector/schema';
import { columnText, schemaColumns, typeFamily } from './schema-table.js';

type Rows = Record<string, unknown>[];

/** Requests given up on while they may still land. Module-wide: a sink opened again in the same worker respects them too. */
const fenced = new Fences();

/**
 * Test seam: forgets the requests given up on, as the restart of a killed process does (they may still
 * land: that is what the anti-join is for). Never called by the sink.
 */
export function forgetRequestsInFlight(): void {
  fenced.forgetAll();
}

interface Pending {
  index: number;
  offset: number;
  tuple: string;
}

/** Mode schema: a message decoded with the station schema, as its VALUES tuple (columns of schemaColumns()). */
function schemaRow(decoder: SchemaDecoder, ref: PartitionRef, m: SinkMessage): { tuple: string } | { reject: string } {
  const d = decoder.decode(m.value);
  if (!d.ok) return { reject: d.reason };
  const values = decoder.fields.map((f) => columnText(d.row[f.name], f.type));
  return { tuple: `(${[...values, ref.station, ref.partition, m.offset, ref.stationId].map(textLit).join(',')})` };
}
interface Budget {
  deadline: number;
  signal: AbortSignal;
}
interface Session {
  conn: Connection;
  http: PlainOrTlsHttpClient;
}

export class FireboltSink implements Sink {
  private session: Session | undefined;
  private connecting: Promise<Session> | undefined;
  private closed = false;
  /** Requests given up on: the HTTP agents are closed only once they settle. */
  private readonly abandoned = new Set<Promise<void>>();
  private readonly presence: Presence<Budget>;
  private cols: Col[];
  private readonly meta: MetaColumns;
  /** `"a", "b", …`: the table's columns, which the VALUES list's columns are named after. */
  private columnList: string;
  /** `INSERT INTO t (…) SELECT v."a"::TYPE, …`: every INSERT's start. */
  private insertHead: string;
  /** Mode schema: the schema version (and set of the subject's versions) the table follows, and its decoder. */
  private followed: { key: string; decoder: SchemaDecoder } | undefined;
  /** Stations whose rows without a station id this sink has claimed (once per station per open). */
  private readonly claimed = new Set<string>();
  private readonly log: Logger;
  private readonly m: { rows: Counter; statements: Counter; replayed: Counter; deadLetters: Counter; retries: Counter };

  constructor(
    private readonly config: FireboltSinkConfig,
    private readonly ctx: SinkContext,
  ) {
    this.log = ctx.logger;
    this.cols = columnsOf(config);
    this.meta = metaColumns(config);
    this.columnList = this.cols.map((c) => q(c.name)).join(', ');
    this.insertHead = `INSERT INTO ${q(config.table)} (${this.columnList}) SELECT ${this.cols.map((c) => `v.${q(c.name)}::${c.sqlType}`).join(', ')}`;
    this.presence = new Presence<Budget>(async ({ station, stationId, partition }, from, to, budget) => {
      const rows = await this.exec(
        `SELECT ${q(this.meta.offset)} FROM ${q(config.table)} WHERE ${q(this.meta.station)} = ${lit(station)} AND ${q(this.meta.stationId)} = ${lit(stationId)} AND ${q(this.meta.partition)} = ${partition} AND ${q(this.meta.offset)} >= ${from} AND ${q(this.meta.offset)} < ${to}`,
        budget,
        'the query of the offsets already in the table',
      );
      return rows.map((r) => Number(r[this.meta.offset]));
    });
    this.m = {
      rows: ctx.metrics.counter('rows_inserted_total', 'Rows Firebolt accepted'),
      statements: ctx.metrics.counter('insert_statements_total', 'INSERT statements sent'),
      replayed: ctx.metrics.counter('replayed_messages_total', 'Messages answered ok because their offset was already in the table'),
      deadLetters: ctx.metrics.counter('dead_letters_total', 'Messages dead-lettered (refused by Firebolt or not JSON)'),
      retries: ctx.metrics.counter('retries_total', 'Messages answered retry'),
    };
  }

  private fenceKey(station: string, partition: number): string {
    const c = this.config;
    return [c.apiEndpoint, c.account, c.database, c.table.toLowerCase(), station, partition].join('\u0000');
  }

  private async connection(budget: Budget): Promise<Session> {
    if (this.session) return this.session;
    this.connecting ??= this.login().finally(() => (this.connecting = undefined));
    const s = await untilDeadline(this.connecting, budget.deadline, budget.signal);
    if (s === GAVE_UP)
      throw new JunctionError(
        ErrorCode.TIMEOUT,
        `Firebolt login to account ${this.config.account} did not finish within the write's time`,
        { retryable: true },
      );
    return s;
  }

  private async login(): Promise<Session> {
    const c = this.config;
    const http = new PlainOrTlsHttpClient();
    let conn: Connection;
    try {
      const firebolt = Firebolt({ apiEndpoint: c.apiEndpoint, dependencies: { httpClient: http as never, logger: silentLogger } });
      // useCache false: no token or engine URL shared through the SDK's module-wide cache between sinks.
      conn = await firebolt.connect({
        account: c.account,
        auth: { client_id: c.clientId, client_secret: c.clientSecret },
        database: c.database,
        engineName: c.engine,
        useCache: false,
      });
    } catch (err) {
      http.destroy();
      const where = `account ${c.account}, database ${c.database}, engine ${c.engine}`;
      if (isAuthError(err))
        throw new JunctionError(ErrorCode.AUTH_FAILED, `Firebolt refused the service account's credentials (${where}): ${describe(err)}`, {
          cause: err,
        });
      if (isNotFound(err)) throw toJunctionError(err, `Firebolt ${where}`);
      if (isSqlError(err)) throw toJunctionError(err, `Firebolt ${where}`);
      throw new JunctionError(ErrorCode.CONNECTION_FAILED, `cannot connect to Firebolt (${where}): ${describe(err)}`, {
        cause: err,
        retryable: true,
      });
    }
    if (this.closed) {
      http.destroy();
      throw new JunctionError(ErrorCode.INTERNAL, 'sink closed while connecting');
    }
    this.session = { conn, http };
    return this.session;
  }

  /**
   * Runs one statement within the budget. SQL errors come back as the SDK's errors (the caller
   * decides); auth failures as AUTH_FAILED; anything else is a retryable JunctionError. Past the
   * deadline the request is abandoned (and fenced, if `fence` is given).
   */
  private async exec(sql: string, budget: Budget, what: string, fence?: string): Promise<Rows> {
    const { conn } = await this.connection(budget);
    const done = conn.execute(sql, { response: { normalizeData: true } }).then(async (st) => (await st.fetchResult()).data as Rows);
    let answer: Rows | typeof GAVE_UP;
    try {
      answer = await untilDeadline(done, budget.deadline, budget.signal);
    } catch (err) {
      if (isSqlError(err)) throw err;
      if (isAuthError(err)) throw toJunctionError(err, `Firebolt, ${what}`);
      throw new JunctionError(ErrorCode.CONNECTION_FAILED, `Firebolt, ${what}: ${describe(err)}`, { cause: err, retryable: true });
    }
    if (answer !== GAVE_UP) return answer;
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.abandoned.add(settled);
    void settled.then(() => this.abandoned.delete(settled));
    if (fence !== undefined) fenced.add(fence, settled);
    const why = budget.signal.aborted ? 'the write was aborted' : `no answer within writeTimeoutMs (${this.config.writeTimeoutMs} ms)`;
    throw new JunctionError(ErrorCode.TIMEOUT, `Firebolt, ${what}: ${why}; the request is still in flight`, { retryable: true });
  }

  /** Connects and creates (or checks) the table. Throws AUTH_FAILED / NOT_FOUND / CONNECTION_FAILED. */
  async prepare(): Promise<void> {
    const budget = { deadline: Date.now() + this.config.writeTimeoutMs, signal: new AbortController().signal };
    const what = `${this.config.database}.${this.config.table}`;
    if (this.config.mode === 'schema') {
      if (!this.ctx.schema) {
        throw new JunctionError(
          ErrorCode.CONFIG_INVALID,
          'mode schema needs a station with a schema (config.schema), and this one has none; bind one or use mode raw / columns',
          {
            issues: [{ path: 'mode', message: 'the station has no schema' }],
          },
        );
      }
      const drift = await this.followSchema(this.ctx.schema, budget);
      if (drift && this.config.onDrift === 'fail') throw new JunctionError('SCHEMA_DRIFT', drift);
      return;
    }
    try {
      if (this.config.autoCreate) {
        await this.exec(
          `CREATE TABLE IF NOT EXISTS ${q(this.config.table)} (${this.cols.map((c) => `${q(c.name)} ${c.sqlType} ${c.notNull ? 'NOT NULL' : 'NULL'}`).join(', ')})`,
          budget,
          `creating table ${what}`,
        );
      } else {
        await this.exec(`SELECT COUNT(*) FROM ${q(this.config.table)}`, budget, `checking table ${what}`);
      }
    } catch (err) {
      throw toJunctionError(err, `Firebolt table ${what}`);
    }
    await this.ensureStationIdColumn(budget, what);
  }

  /**
   * Mode schema: makes the table follow a schema version — created with its columns (autoCreate), the
   * columns a newer version adds added (evolve) — or says why it cannot (a column whose type differs,
   * new fields with evolve off, a NOT NULL column the table lacks). Answers that drift (checked again at
   * the next write, so a table fixed by hand is taken up), or undefined once the table follows.
   */
  private async followSchema(schema: StationSchemaInfo, budget: Budget): Promise<string | undefined> {
    const key = `${schema.id}:${schema.versions.map((v) => v.id).join(',')}`;
    if (this.followed?.key === key) return undefined;
    const what = `${this.config.database}.${this.config.table}`;
    const decoder = await schemaDecoder(schema);
    const wanted = schemaColumns(decoder.fields);
    let existing: Rows;
    try {
      if (this.config.autoCreate) {
        await this.exec(
          `CREATE TABLE IF NOT EXISTS ${q(this.config.table)} (${wanted.map((c) => `${q(c.name)} ${c.sqlType} ${c.notNull ? 'NOT NULL' : 'NULL'}`).join(', ')})`,
          budget,
          `creating table ${what}`,
        );
      }
      existing = await this.exec(
        `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = ${lit(this.config.table.toLowerCase())} ORDER BY ordinal_position`,
        budget,
        `reading the columns of ${what}`,
      );
    } catch (err) {
      throw toJunctionError(err, `Firebolt table ${what}`);
    }
    if (existing.length === 0)
      throw new JunctionError(
        ErrorCode.NOT_FOUND,
        `Firebolt table ${what} does not exist${this.config.autoCreate ? '' : ' and autoCreate is false'}`,
      );
    const drift = compareColumns(
      existing.map((r) => ({ name: String(r.column_name), type: typeFamily(String(r.data_type)) })),
      wanted.map((c) => ({ name: c.name, type: typeFamily(c.sqlType), nullable: !c.notNull })),
      { foldCase: true },
    );
    const problems = [
      ...drift.changed.map((c) => `column ${c.name} is ${c.from} in the table but schema version ${schema.version} needs ${c.to}`),
      ...(drift.required.length > 0 ? [`the table lacks the NOT NULL column(s) ${drift.required.join(', ')}`] : []),
      ...(drift.added.length > drift.required.length && !this.config.evolve
        ? [
            `the table lacks column(s) ${drift.added
              .filter((c) => c.nullable !== false)
              .map((c) => c.name)
              .join(', ')} of schema version ${schema.version} and evolve is off`,
          ]
        : []),
    ];
    if (problems.length > 0) {
      this.log.warn({ subject: schema.subject, version: schema.version, problems }, 'the table does not follow the station schema');
      return `Firebolt table ${what} cannot take schema subject "${schema.subject}" version ${schema.version}: ${problems.join('; ')}`;
    }
    for (const c of drift.added) {
      try {
        await this.exec(
          `ALTER TABLE ${q(this.config.table)} ADD COLUMN IF NOT EXISTS ${q(c.name)} ${c.type} NULL`,
          budget,
          `adding column ${c.name} to ${what}`,
        );
      } catch (err) {
        throw toJunctionError(err, `Firebolt table ${what}: adding column ${c.name} for schema version ${schema.version}`);
      }
      this.log.info(
        { column: c.name, type: c.type, subject: schema.subject, version: schema.version },
        'column added for a new schema version',
      );
    }
    this.cols = wanted;
    this.columnList = wanted.map((c) => q(c.name)).join(', ');
    this.insertHead = `INSERT INTO ${q(this.config.table)} (${this.columnList}) SELECT ${wanted.map((c) => `v.${q(c.name)}::${c.sqlType}`).join(', ')}`;
    this.followed = { key, decoder };
    return undefined;
  }

  /**
   * A table made before station ids (or by hand without the column) gets it: exactly-once keys on it.
   * Probed first, so a table that has it needs no ALTER privilege.
   */
  private async ensureStationIdColumn(budget: Budget, what: string): Promise<void> {
    const col = q(this.meta.stationId);
    try {
      await this.exec(`SELECT ${col} FROM ${q(this.config.table)} LIMIT 0`, budget, `checking column ${this.meta.stationId} of ${what}`);
      return;
    } catch (err) {
      if (!isSqlError(err)) throw toJunctionError(err, `Firebolt table ${what}`);
    }
    try {
      await this.exec(
        `ALTER TABLE ${q(this.config.table)} ADD COLUMN IF NOT EXISTS ${col} TEXT NULL`,
        budget,
        `adding column ${this.meta.stationId} to ${what}`,
      );
    } catch (err) {
      throw toJunctionError(
        err,
        `Firebolt table ${what} has no column ${this.meta.stationId} (the station's incarnation, which exactly-once needs) and adding it failed; add it: ALTER TABLE ${q(this.config.table)} ADD COLUMN ${col} TEXT NULL`,
      );
    }
  }

  /**
   * Rows written before the station id column existed (NULL there) belong to the incarnation that
   * existed then: the first write of their station after the upgrade claims them for its own.
   */
  private async claimLegacyRows(ref: PartitionRef, budget: Budget): Promise<void> {
    if (this.claimed.has(ref.station)) return;
    try {
      await this.exec(
        `UPDATE ${q(this.config.table)} SET ${q(this.meta.stationId)} = ${lit(ref.stationId)} WHERE ${q(this.meta.station)} = ${lit(ref.station)} AND ${q(this.meta.stationId)} IS NULL`,
        budget,
        'claiming the rows written before station ids',
      );
    } catch (err) {
      if (!isSqlError(err)) throw err;
      // Without UPDATE privilege the old rows stay unclaimed: they then count for no incarnation, and at
      // worst the batch in flight at the upgrade is written again. Said once per station.
      this.log.warn(
        { station: ref.station, err: describe(err) },
        'could not claim the rows written before station ids for this incarnation',
      );
    }
    this.claimed.add(ref.station);
  }

  async write(batch: SinkBatch, { signal }: WriteOptions): Promise<WriteResult[]> {
    if (this.closed) throw new JunctionError(ErrorCode.INTERNAL, 'write() after close()');
    signal.throwIfAborted();
    const budget: Budget = { deadline: Date.now() + this.config.writeTimeoutMs, signal };
    const { station, partition } = batch;
    const ref: PartitionRef = { station, stationId: batch.stationId, partition };
    const results: (WriteResult | undefined)[] = new Array(batch.messages.length).fill(undefined);
    const rows: Pending[] = [];
    let decoder: SchemaDecoder | undefined;
    if (this.config.mode === 'schema') {
      const schema = batch.schema ?? this.ctx.schema;
      const drift = schema ? await this.followSchema(schema, budget) : 'the station has no schema any more (mode schema)';
      if (drift) {
        if (this.config.onDrift === 'fail') throw new JunctionError('SCHEMA_DRIFT', drift);
        this.m.deadLetters.inc(batch.messages.length);
        return batch.messages.map(() => deadLetter('SCHEMA_DRIFT', drift));
      }
      decoder = this.followed!.decoder;
    }
    batch.messages.forEach((m, index) => {
      const r = decoder ? schemaRow(decoder, ref, m) : toRow(this.config, ref, m);
      if ('reject' in r) {
        results[index] = deadLetter(ErrorCode.SINK_REJECTED, r.reject);
        this.m.deadLetters.inc();
      } else rows.push({ index, offset: m.offset, tuple: r.tuple });
    });
    const unanswered = (why: string): WriteResult[] => {
      this.m.retries.inc(results.filter((r) => r === undefined).length);
      return results.map((r) => r ?? retry(why, { delayMs: 1000 }));
    };
    if (rows.length === 0) return unanswered('not attempted');

    const fence = this.fenceKey(station, partition);
    const earlier = await fenced.wait(fence, budget.deadline, signal);
    if (earlier === 'timeout')
      return unanswered('an earlier INSERT into this partition is still in flight; its outcome decides what to write');
    if (earlier === 'settled') this.presence.forget(ref);

    for (let attempt = 1; ; attempt++) {
      const stopped = await this.attempt(
        ref,
        rows.filter((r) => results[r.index] === undefined),
        results,
        budget,
        fence,
      );
      if (stopped === undefined) return unanswered('not attempted');
      const backoff = Math.min(2000, 100 * 2 ** attempt);
      if (
        attempt >= this.config.maxAttempts ||
        !stopped.retryable ||
        stopped.code === ErrorCode.TIMEOUT ||
        Date.now() + backoff >= budget.deadline
      ) {
        return unanswered(stopped.message);
      }
      await untilDeadline(new Promise((r) => setTimeout(r, backoff)), budget.deadline, signal);
    }
  }

  /** Asks which offsets are in, inserts the rest in chunks. Returns the transient trouble that stopped it, or undefined. */
  private async attempt(
    ref: PartitionRef,
    rows: Pending[],
    results: (WriteResult | undefined)[],
    budget: Budget,
    fence: string,
  ): Promise<JunctionError | undefined> {
    if (rows.length === 0) return undefined;
    let held: Set<number>;
    try {
      await this.claimLegacyRows(ref, budget);
      held = await this.presence.held(
        ref,
        rows.map((r) => r.offset),
        budget,
      );
    } catch (err) {
      const e = toJunctionError(err, `Firebolt, the query of the offsets already in ${this.config.table}`);
      if (e.retryable) return e;
      throw e;
    }
    const todo = rows.filter((r) => {
      if (!held.has(r.offset)) return true;
      results[r.index] = ok();
      this.m.replayed.inc();
      return false;
    });
    const chunks: Pending[][] = [];
    let chunk: Pending[] = [];
    let bytes = 0;
    for (const r of todo) {
      if (
        chunk.length > 0 &&
        (chunk.length >= this.config.maxRowsPerStatement || bytes + r.tuple.length > this.config.maxBytesPerStatement)
      ) {
        chunks.push(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(r);
      bytes += r.tuple.length + 1;
    }
    if (chunk.length > 0) chunks.push(chunk);
    for (const c of chunks) {
      const stopped = await this.insert(ref, c, results, budget, fence);
      if (stopped) return stopped;
    }
    return undefined;
  }

  /** Inserts one chunk; answers its rows. Returns the transient trouble that stopped it, or undefined. */
  private async insert(
    ref: PartitionRef,
    rows: Pending[],
    results: (WriteResult | undefined)[],
    budget: Budget,
    fence: string,
  ): Promise<JunctionError | undefined> {
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (const r of rows) {
      if (r.offset < min) min = r.offset;
      if (r.offset > max) max = r.offset;
    }
    const m = this.meta;
    const sql =
      `${this.insertHead} FROM (VALUES ${rows.map((r) => r.tuple).join(',')}) AS v (${this.columnList})` +
      ` WHERE v.${q(m.offset)}::BIGINT NOT IN (SELECT ${q(m.offset)} FROM ${q(this.config.table)} WHERE ${q(m.station)} = ${lit(ref.station)} AND ${q(m.stationId)} = ${lit(ref.stationId)} AND ${q(m.partition)} = ${ref.partition} AND ${q(m.offset)} BETWEEN ${min} AND ${max})`;
    this.m.statements.inc();
    try {
      await this.exec(sql, budget, 'INSERT', fence);
    } catch (err) {
      if (isDataError(err)) {
        if (rows.length === 1) {
          results[(rows[0] as Pending).index] = deadLetter(ErrorCode.SINK_REJECTED, `Firebolt refused the row: ${describe(err)}`);
          this.m.deadLetters.inc();
          return undefined;
        }
        const half = Math.ceil(rows.length / 2);
        return (
          (await this.insert(ref, rows.slice(0, half), results, budget, fence)) ??
          (await this.insert(ref, rows.slice(half), results, budget, fence))
        );
      }
      const e = toJunctionError(err, `Firebolt INSERT into ${this.config.database}.${this.config.table}`);
      if (e.retryable) {
        // The statement may have committed before its answer was lost: ask the table before sending again.
        this.presence.forget(ref);
        return e;
      }
      throw e;
    }
    for (const r of rows) results[r.index] = ok();
    this.presence.written(
      ref,
      rows.map((r) => r.offset),
    );
    this.m.rows.inc(rows.length);
    return undefined;
  }

  async checkConnection(): Promise<void> {
    await this.prepare();
  }

  /** Lets go of the connection (its HTTP agents close once requests given up on have settled). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const s = this.session;
    this.session = undefined;
    if (!s) return;
    const pending = [...this.abandoned];
    if (pending.length === 0) {
      await s.conn.destroy();
      s.http.destroy();
    } else {
      void Promise.all(pending).then(() => s.http.destroy());
    }
  }
}
