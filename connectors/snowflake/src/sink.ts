/**
 * The Snowflake sink. One `INSERT … SELECT … FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))` per chunk:
 * the rows travel as one JSON bind (VARIANT values cannot be bound, and array binds do not work with
 * INSERT … SELECT), and one statement is atomic in Snowflake — all its rows or none.
 *
 * Exactly once per offset (README):
 * - Every row carries station, station id (the incarnation: a station created again under the same
 *   name restarts at offset 1), partition and offset. {@link Presence} asks the table which offsets of
 *   the incarnation's partition it already holds at task start, after any statement whose outcome is
 *   unknown, and for replays older than what it has seen; those messages are answered ok() and not sent
 *   again.
 * - The INSERT itself skips offsets the table already holds (`WHERE VALUE[k] NOT IN (SELECT offset …)`):
 *   the driver re-sends a statement on its own after a network error, and a statement that lands late
 *   (sent by a task killed before its answer, run after the restarted task wrote the range) inserts
 *   nothing it would duplicate.
 * - A table made before the station id column gets it (`ALTER TABLE … ADD COLUMN`) at task start; its
 *   rows keep NULL there until the first write of their station after the upgrade claims them for that
 *   station's incarnation (`UPDATE … SET station_id = ? WHERE station = ? AND station_id IS NULL`).
 * - snowflake-sdk retries 5xx / network errors of a statement for a very long time (up to 1000 tries,
 *   not configurable). A write never waits past `writeTimeoutMs`: it answers retry(), and the
 *   statement it gave up on is *fenced* — until the driver settles it, no statement for that
 *   partition is sent again (from this or any sink in the process), so a late landing cannot race a
 *   re-send. After it settles, the partition is asked again.
 * - A statement refused for its data (a cast that fails, a NULL in a NOT NULL column) is split in halves
 *   until the offending rows are alone; those are dead-lettered with Snowflake's message.
 */
import snowflake from 'snowflake-sdk';
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
  type SinkMessage,
  type WriteOptions,
  type WriteResult,
  Presence,
  Fences,
  GAVE_UP,
  untilDeadline,
} from '@junction/sdk-connector';
import type { SnowflakeSinkConfig } from './config.js';
import { describe, isAuthError, isDataError, isSqlError, toJunctionError } from './errors.js';
import { columnsOf, constantColumn, metaColumns, q, toRow, type Col, type MetaColumns } from './rows.js';
import type { StationSchemaInfo } from '@junction/sdk-connector';
import { compareColumns, schemaDecoder, type SchemaDecoder } from '@junction/sdk-connector/schema';
import { bindValue, schemaColumns, typeFamily } from './schema-table.js';

snowflake.configure({ logLevel: 'OFF' } as never);

type Conn = ReturnType<typeof snowflake.createConnection>;
type Rows = Record<string, unknown>[];

let lastHeaders: object | undefined;
let lastHeaderBytes = 0;

/** About the JSON size of a headers object, in bytes (at most 3 per UTF-16 unit, plus quotes and separators). */
function headerBytes(h: Record<string, string>): number {
  if (h === lastHeaders) return lastHeaderBytes;
  let n = 2;
  for (const k in h) n += 3 * (k.length + (h[k]?.length ?? 0)) + 6;
  lastHeaders = h;
  lastHeaderBytes = n;
  return n;
}

/** Mode schema: a message decoded with the station schema, as the positional row of schemaColumns(). */
function schemaRow(decoder: SchemaDecoder, m: SinkMessage): { row: unknown[] } | { reject: string } {
  const d = decoder.decode(m.value);
  if (!d.ok) return { reject: d.reason };
  return { row: [...decoder.fields.map((f) => bindValue(d.row[f.name], f.type)), m.offset] };
}

/** Requests given up on while they may still land. Module-wide: a sink opened again in the same worker respects them too. */
const fenced = new Fences();

/**
 * Test seam: forgets the requests given up on, as the restart of a killed process does (they may still
 * land: that is what the anti-join is for). Never called by the sink.
 */
export function forgetRequestsInFlight(): void {
  fenced.forgetAll();
}

/** A row to insert: the positional array the INSERT's `VALUE[i]` picks from, and its JSON size (estimated). */
interface Pending {
  index: number;
  offset: number;
  row: unknown[];
  size: number;
}

interface Budget {
  deadline: number;
  signal: AbortSignal;
}

export class SnowflakeSink implements Sink {
  private conn: Conn | undefined;
  private connecting: Promise<Conn> | undefined;
  private closed = false;
  /** Statements given up on, per connection: a connection is destroyed only once they settle. */
  private readonly abandoned = new Map<Conn, Set<Promise<void>>>();
  private readonly presence: Presence<Budget>;
  private cols: Col[];
  /** Mode schema: the schema version (and set of the subject's versions) the table follows, and its decoder. */
  private followed: { key: string; decoder: SchemaDecoder } | undefined;
  private readonly meta: MetaColumns;
  private readonly fq: string;
  /** Stations whose rows without a station id this sink has claimed (once per station per open). */
  private readonly claimed = new Set<string>();
  private readonly log: Logger;
  private readonly m: { rows: Counter; statements: Counter; replayed: Counter; deadLetters: Counter; retries: Counter };

  constructor(
    private readonly config: SnowflakeSinkConfig,
    private readonly ctx: SinkContext,
  ) {
    this.log = ctx.logger;
    this.fq = `${q(config.database)}.${q(config.schema)}.${q(config.table)}`;
    this.cols = columnsOf(config);
    this.meta = metaColumns(config);
    this.presence = new Presence<Budget>(async ({ station, stationId, partition }, from, to, budget) => {
      const rows = await this.exec(
        `SELECT ${q(this.meta.offset)} FROM ${this.fq} WHERE ${q(this.meta.station)} = ? AND ${q(this.meta.stationId)} = ? AND ${q(this.meta.partition)} = ? AND ${q(this.meta.offset)} >= ? AND ${q(this.meta.offset)} < ?`,
        [station, stationId, partition, from, to],
        budget,
        'the query of the offsets already in the table',
      );
      return rows.map((r) => Number(r[this.meta.offset]));
    });
    this.m = {
      rows: ctx.metrics.counter('rows_inserted_total', 'Rows Snowflake accepted'),
      statements: ctx.metrics.counter('insert_statements_total', 'INSERT statements run'),
      replayed: ctx.metrics.counter('replayed_messages_total', 'Messages answered ok because their offset was already in the table'),
      deadLetters: ctx.metrics.counter('dead_letters_total', 'Messages dead-lettered (refused by Snowflake or not JSON)'),
      retries: ctx.metrics.counter('retries_total', 'Messages answered retry'),
    };
  }

  private fenceKey(station: string, partition: number): string {
    return `${this.config.accessUrl ?? ''}\u0000${this.config.account}\u0000${this.fq}\u0000${station}\u0000${partition}`;
  }

  private async connection(budget: Budget): Promise<Conn> {
    if (this.conn) return this.conn;
    this.connecting ??= this.login().finally(() => (this.connecting = undefined));
    const c = await untilDeadline(this.connecting, budget.deadline, budget.signal);
    if (c === GAVE_UP)
      throw new JunctionError(
        ErrorCode.TIMEOUT,
        `Snowflake login to account ${this.config.account} did not finish within the write's time`,
        { retryable: true },
      );
    return c;
  }

  private async login(): Promise<Conn> {
    const c = this.config;
    const conn = snowflake.createConnection({
      account: c.account,
      username: c.username,
      password: c.password,
      database: c.database,
      schema: c.schema,
      warehouse: c.warehouse,
      ...(c.role ? { role: c.role } : {}),
      ...(c.accessUrl ? { accessUrl: c.accessUrl } : {}),
      // Keep the JSON bind inline: above the threshold the driver uploads binds to a stage.
      arrayBindingThreshold: 1_000_000,
    } as never);
    try {
      // connectAsync reports a refused login through its callback, not by rejecting.
      await new Promise<void>((resolve, reject) => {
        conn.connectAsync((err) => (err ? reject(err) : resolve())).catch(reject);
      });
    } catch (err) {
      conn.destroy(() => undefined);
      if (isAuthError(err))
        throw new JunctionError(
          ErrorCode.AUTH_FAILED,
          `Snowflake refused the login of ${c.username} to account ${c.account}: ${describe(err)}`,
          { cause: err },
        );
      throw new JunctionError(ErrorCode.CONNECTION_FAILED, `cannot log in to Snowflake account ${c.account}: ${describe(err)}`, {
        cause: err,
        retryable: true,
      });
    }
    if (this.closed) {
      conn.destroy(() => undefined);
      throw new JunctionError(ErrorCode.INTERNAL, 'sink closed while logging in');
    }
    this.conn = conn;
    return conn;
  }

  /**
   * Runs one statement within the budget. SQL errors come back as the driver's errors (the caller
   * decides); anything else is a retryable JunctionError, and the session is dropped (a new login
   * next time). Past the deadline the statement is abandoned (and fenced, if `fence` is given).
   */
  private async exec(sqlText: string, binds: unknown[], budget: Budget, what: string, fence?: string): Promise<Rows> {
    const conn = await this.connection(budget);
    const done = new Promise<Rows>((resolve, reject) => {
      conn.execute({ sqlText, binds: binds as never, complete: (err, _stmt, rows) => (err ? reject(err) : resolve((rows ?? []) as Rows)) });
    });
    let answer: Rows | typeof GAVE_UP;
    try {
      answer = await untilDeadline(done, budget.deadline, budget.signal);
    } catch (err) {
      if (isSqlError(err)) throw err;
      this.dropConnection(conn);
      throw new JunctionError(ErrorCode.CONNECTION_FAILED, `Snowflake, ${what}: ${describe(err)}`, { cause: err, retryable: true });
    }
    if (answer !== GAVE_UP) return answer;
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    let mine = this.abandoned.get(conn);
    if (!mine) this.abandoned.set(conn, (mine = new Set()));
    mine.add(settled);
    void settled.then(() => mine.delete(settled));
    if (fence !== undefined) fenced.add(fence, settled);
    const why = budget.signal.aborted ? 'the write was aborted' : `no answer within writeTimeoutMs (${this.config.writeTimeoutMs} ms)`;
    throw new JunctionError(ErrorCode.TIMEOUT, `Snowflake, ${what}: ${why}; the driver keeps retrying it (5xx / network trouble)`, {
      retryable: true,
    });
  }

  /** Forgets a session; it is closed once the statements abandoned on it have settled. */
  private dropConnection(conn: Conn): void {
    if (this.conn === conn) this.conn = undefined;
    const pending = [...(this.abandoned.get(conn) ?? [])];
    this.abandoned.delete(conn);
    void Promise.all(pending).then(() => conn.destroy(() => undefined));
  }

  /** Logs in and creates (or checks) the table. Throws AUTH_FAILED / NOT_FOUND / CONNECTION_FAILED. */
  async prepare(): Promise<void> {
    const budget = { deadline: Date.now() + this.config.writeTimeoutMs, signal: new AbortController().signal };
    const what = `${this.config.database}.${this.config.schema}.${this.config.table}`;
    if (this.config.mode === 'schema') {
      if (!this.ctx.schema) {
        throw new JunctionError(
          ErrorCode.CONFIG_INVALID,
          `mode schema needs a station with a schema (config.schema), and this one has none; bind one or use mode raw / columns`,
          {
            issues: [{ path: 'mode', message: 'the station has no schema' }],
          },
        );
      }
      const drift = await this.followSchema(this.ctx.schema, budget);
      if (drift && this.config.onDrift === 'fail') throw new JunctionError('SCHEMA_DRIFT', drift);
      if (!drift) await this.ensureStationIdColumn(budget, what);
      return;
    }
    try {
      if (this.config.autoCreate) {
        await this.exec(
          `CREATE TABLE IF NOT EXISTS ${this.fq} (${this.cols.map((c) => `${q(c.name)} ${c.sqlType}${c.notNull ? ' NOT NULL' : ''}`).join(', ')})`,
          [],
          budget,
          `creating table ${what}`,
        );
      } else {
        await this.exec(`SELECT COUNT(*) FROM ${this.fq}`, [], budget, `checking table ${what}`);
      }
    } catch (err) {
      throw toJunctionError(err, `Snowflake table ${what}`);
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
    const what = `${this.config.database}.${this.config.schema}.${this.config.table}`;
    const decoder = await schemaDecoder(schema);
    const wanted = schemaColumns(decoder.fields);
    let existing: Rows;
    try {
      if (this.config.autoCreate) {
        await this.exec(
          `CREATE TABLE IF NOT EXISTS ${this.fq} (${wanted.map((c) => `${q(c.name)} ${c.sqlType}${c.notNull ? ' NOT NULL' : ''}`).join(', ')})`,
          [],
          budget,
          `creating table ${what}`,
        );
      }
      existing = await this.exec(`DESCRIBE TABLE ${this.fq}`, [], budget, `reading the columns of ${what}`);
    } catch (err) {
      throw toJunctionError(err, `Snowflake table ${what}`);
    }
    const drift = compareColumns(
      existing.map((r) => ({ name: String(r.name), type: typeFamily(String(r.type)) })),
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
      const message = `Snowflake table ${what} cannot take schema subject "${schema.subject}" version ${schema.version}: ${problems.join('; ')}`;
      this.log.warn({ subject: schema.subject, version: schema.version, problems }, 'the table does not follow the station schema');
      return message;
    }
    for (const c of drift.added) {
      try {
        await this.exec(
          `ALTER TABLE ${this.fq} ADD COLUMN IF NOT EXISTS ${q(c.name)} ${c.type}`,
          [],
          budget,
          `adding column ${c.name} to ${what}`,
        );
      } catch (err) {
        throw toJunctionError(err, `Snowflake table ${what}: adding column ${c.name} for schema version ${schema.version}`);
      }
      this.log.info(
        { column: c.name, type: c.type, subject: schema.subject, version: schema.version },
        'column added for a new schema version',
      );
    }
    this.cols = wanted;
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
      await this.exec(`SELECT ${col} FROM ${this.fq} LIMIT 0`, [], budget, `checking column ${this.meta.stationId} of ${what}`);
      return;
    } catch (err) {
      if (!isSqlError(err)) throw toJunctionError(err, `Snowflake table ${what}`);
    }
    try {
      await this.exec(
        `ALTER TABLE ${this.fq} ADD COLUMN IF NOT EXISTS ${col} VARCHAR`,
        [],
        budget,
        `adding column ${this.meta.stationId} to ${what}`,
      );
    } catch (err) {
      const e = toJunctionError(
        err,
        `Snowflake table ${what} has no column ${this.meta.stationId} (the station's incarnation, which exactly-once needs) and adding it failed; add it: ALTER TABLE ${this.fq} ADD COLUMN ${col} VARCHAR`,
      );
      throw e;
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
        `UPDATE ${this.fq} SET ${q(this.meta.stationId)} = ? WHERE ${q(this.meta.station)} = ? AND ${q(this.meta.stationId)} IS NULL`,
        [ref.stationId, ref.station],
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
      const r = decoder ? schemaRow(decoder, m) : toRow(this.config, m);
      if ('reject' in r) {
        results[index] = deadLetter(ErrorCode.SINK_REJECTED, r.reject);
        this.m.deadLetters.inc();
      } else
        rows.push({
          index,
          offset: m.offset,
          row: r.row,
          size: m.value.byteLength + 128 + (m.key?.length ?? 0) * 3 + headerBytes(m.headers),
        });
    });
    const unanswered = (why: string): WriteResult[] => {
      const out = results.map((r) => r ?? retry(why, { delayMs: 1000 }));
      this.m.retries.inc(results.filter((r) => r === undefined).length);
      return out;
    };
    if (rows.length === 0) return unanswered('not attempted');

    const fence = this.fenceKey(station, partition);
    const earlier = await fenced.wait(fence, budget.deadline, signal);
    if (earlier === 'timeout')
      return unanswered(
        'an earlier INSERT into this partition is still being retried by the Snowflake driver; its outcome decides what to write',
      );
    if (earlier === 'settled') this.presence.forget(ref);

    let held: Set<number>;
    try {
      await this.claimLegacyRows(ref, budget);
      held = await this.presence.held(
        ref,
        rows.map((r) => r.offset),
        budget,
      );
    } catch (err) {
      throw toJunctionError(err, `Snowflake, the query of the offsets already in ${this.config.table}`);
    }
    const todo = rows.filter((r) => {
      if (!held.has(r.offset)) return true;
      results[r.index] = ok();
      this.m.replayed.inc();
      return false;
    });
    let chunk: Pending[] = [];
    let bytes = 0;
    const chunks: Pending[][] = [];
    for (const r of todo) {
      if (chunk.length > 0 && (chunk.length >= this.config.maxRowsPerStatement || bytes + r.size > this.config.maxBytesPerStatement)) {
        chunks.push(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(r);
      bytes += r.size + 1;
    }
    if (chunk.length > 0) chunks.push(chunk);
    for (const c of chunks) {
      const stopped = await this.insert(ref, c, results, budget, fence);
      if (stopped) return unanswered(`not attempted: ${stopped}`);
    }
    return unanswered('not attempted');
  }

  /** Inserts one chunk; answers its rows. Returns why the write must stop (transient trouble), or undefined. */
  private async insert(
    ref: PartitionRef,
    rows: Pending[],
    results: (WriteResult | undefined)[],
    budget: Budget,
    fence: string,
  ): Promise<string | undefined> {
    // Station, station id and partition are the same in every row: bound once, not carried by each row
    // of the JSON bind (a smaller bind: less for the driver to escape, compress and send, and for
    // Snowflake to parse). The rows hold the other columns, in order.
    const constants: unknown[] = [];
    let j = 0;
    let k = -1;
    const select = this.cols
      .map((c) => {
        const constant = constantColumn(this.meta, c.name);
        if (constant) {
          constants.push(ref[constant]);
          return '?';
        }
        if (c.name === this.meta.offset) k = j;
        const i = j++;
        return c.cast ? `VALUE[${i}]::${c.cast}` : `VALUE[${i}]`;
      })
      .join(', ');
    const offsets = rows.map((r) => r.offset);
    // The anti-join makes a statement the driver re-sends (after a lost answer) insert nothing twice.
    const sql =
      `INSERT INTO ${this.fq} (${this.cols.map((c) => q(c.name)).join(', ')}) SELECT ${select} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))` +
      ` WHERE VALUE[${k}]::NUMBER(38,0) NOT IN (SELECT ${q(this.meta.offset)} FROM ${this.fq} WHERE ${q(this.meta.station)} = ? AND ${q(this.meta.stationId)} = ? AND ${q(this.meta.partition)} = ? AND ${q(this.meta.offset)} BETWEEN ? AND ?)`;
    this.m.statements.inc();
    try {
      // One JSON.stringify of all the rows (native, one pass) rather than a string per row joined.
      await this.exec(
        sql,
        [
          ...constants,
          JSON.stringify(rows.map((r) => r.row)),
          ref.station,
          ref.stationId,
          ref.partition,
          Math.min(...offsets),
          Math.max(...offsets),
        ],
        budget,
        'INSERT',
        fence,
      );
    } catch (err) {
      if (isDataError(err)) {
        if (rows.length === 1) {
          results[(rows[0] as Pending).index] = deadLetter(ErrorCode.SINK_REJECTED, `Snowflake refused the row: ${describe(err)}`);
          this.m.deadLetters.inc();
          return undefined;
        }
        const half = Math.ceil(rows.length / 2);
        return (
          (await this.insert(ref, rows.slice(0, half), results, budget, fence)) ??
          (await this.insert(ref, rows.slice(half), results, budget, fence))
        );
      }
      if (err instanceof JunctionError && err.retryable) {
        // The statement may have committed before its answer was lost: ask the table next time.
        this.presence.forget(ref);
        for (const r of rows) results[r.index] = retry(err.message, { delayMs: 1000 });
        this.m.retries.inc(rows.length);
        return err.message;
      }
      throw toJunctionError(err, `Snowflake INSERT into ${this.config.database}.${this.config.schema}.${this.config.table}`);
    }
    for (const r of rows) results[r.index] = ok();
    this.presence.written(ref, offsets);
    this.m.rows.inc(rows.length);
    return undefined;
  }

  async checkConnection(): Promise<void> {
    await this.prepare();
  }

  /** Closes the session (once statements abandoned on it have settled). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const c = this.conn;
    this.conn = undefined;
    for (const [conn] of this.abandoned) if (conn !== c) this.dropConnection(conn);
    if (c) {
      if ((this.abandoned.get(c)?.size ?? 0) > 0) this.dropConnection(c);
      else await new Promise<void>((r) => c.destroy(() => r()));
    }
  }
}
