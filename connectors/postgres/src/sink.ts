/**
 * The PostgreSQL sink. One transaction per batch:
 *
 *   BEGIN (statement_timeout, lock_timeout = what is left of writeTimeoutMs)
 *   lock the row of (connector, station id, partition) in the offsets table, read which offsets of the
 *   batch's span its `written` ranges hold (one range [1, n] in the usual case; gaps stay gaps)
 *   messages it holds: replays — answered ok, or dead-letter again if the dead-letters table has them
 *   the rest: COPY (≥ copyMinRows, insert mode) or multi-row INSERT [… ON CONFLICT (row_key) DO UPDATE]
 *   dead letters of this batch into the dead-letters table
 *   add the batch's offsets to the row's `written` (an int8multirange); COMMIT
 *
 * Exactly once: the rows and the offset commit together, and the decision which offsets are new is
 * taken under the row lock in the same transaction — so a replay after a crash, a commit whose answer
 * was lost, or a transaction of a dead writer that the server runs late all serialize on that row and
 * nothing is written twice. Batches of one partition arrive in offset order and a batch is answered
 * all-or-nothing (ok / dead-letter per message, or a thrown error for the whole batch: never a partial
 * retry); ranges rather than a high-water mark, because a batch may skip offsets a later one brings.
 *
 * A row refused for its data (SQLSTATE class 22 or 23) rolls the transaction back; the batch is then
 * written again with a SAVEPOINT per half, split until the refused rows are alone; those are
 * dead-lettered with code `SQLSTATE_<state>` and the server's message.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import {
  deadLetter,
  ErrorCode,
  JunctionError,
  ok,
  type Counter,
  type Logger,
  type Sink,
  type SinkBatch,
  type SinkContext,
  type SinkMessage,
  type StationSchemaInfo,
  type WriteOptions,
  type WriteResult,
} from '@junction/sdk-connector';
import type { PostgresSinkConfig } from './config.js';
import { describe, isDataError, isTransient, sqlState, toJunctionError } from './errors.js';
import { columnsOf, createTableSql, encodeCopy, encodeSchemaCopy, q, rejectReason, rowParams, schemaRowParams, type Row } from './rows.js';
import { schemaDecoder, type SchemaDecoder } from '@junction/sdk-connector/schema';
import { createSchemaTableSql, pgText, planTable, schemaColumns, unusableNames, type TableColumn } from './schema-table.js';

/** PostgreSQL's limit of bind parameters in one statement. */
const MAX_PARAMS = 65_535;

/** A refused row's dead letter: code and reason, also kept in the dead-letters table. */
interface Refused {
  offset: number;
  index: number;
  code: string;
  reason: string;
}

/** Clients that have an 'error' listener of ours. */
const guarded = new WeakSet<pg.PoolClient>();

/** Thrown inside a transaction when the write's signal aborted: not a server answer. */
class Aborted extends Error {}

export class PostgresSink implements Sink {
  private readonly pool: pg.Pool;
  private readonly log: Logger;
  private readonly fq: string;
  private readonly offsetsFq: string;
  private readonly deadFq: string;
  /** The target's columns the sink writes, in COPY / INSERT order (layout schema: those of the followed version). */
  private cols: string[];
  /** Layout schema: the schema version (and set of the subject's versions) the table follows, and its decoder. */
  private followed: { key: string; decoder: SchemaDecoder } | undefined;
  private closed = false;
  private readonly m: { rows: Counter; copies: Counter; inserts: Counter; replayed: Counter; deadLetters: Counter; rollbacks: Counter };

  constructor(
    private readonly config: PostgresSinkConfig,
    private readonly ctx: SinkContext,
  ) {
    this.log = ctx.logger;
    this.fq = `${q(config.schema)}.${q(config.table)}`;
    this.offsetsFq = `${q(config.schema)}.${q(config.offsetsTable)}`;
    this.deadFq = `${q(config.schema)}.${q(config.deadLettersTable)}`;
    this.cols = columnsOf(config);
    this.pool = new pg.Pool({
      host: config.host,
      port: config.port,
      database: config.database,
      user: config.user,
      ...(config.password === undefined ? {} : { password: config.password }),
      ...(config.ssl ? { ssl: { rejectUnauthorized: true } } : {}),
      max: config.poolSize,
      connectionTimeoutMillis: Math.min(config.writeTimeoutMs, 10_000),
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: `junction-sink:${ctx.connector}:${ctx.task}`,
    });
    // An idle connection the server dropped (restart, pg_terminate_backend) errors here; the pool discards it.
    this.pool.on('error', (err) =>
      this.log.warn({ err: describe(err) }, 'an idle PostgreSQL connection failed; it is replaced on next use'),
    );
    this.m = {
      rows: ctx.metrics.counter('rows_written_total', 'Rows written (inserted or upserted)'),
      copies: ctx.metrics.counter('copy_statements_total', 'COPY FROM STDIN statements run'),
      inserts: ctx.metrics.counter('insert_statements_total', 'Multi-row INSERT statements run'),
      replayed: ctx.metrics.counter('replayed_messages_total', 'Messages answered from the offsets table: already written'),
      deadLetters: ctx.metrics.counter('dead_letters_total', 'Messages dead-lettered (refused by PostgreSQL or not writable)'),
      rollbacks: ctx.metrics.counter(
        'data_error_rollbacks_total',
        'Transactions rolled back for a refused row and written again row-guarded',
      ),
    };
  }

  private async connect(what: string): Promise<pg.PoolClient> {
    try {
      const client = await this.pool.connect();
      // A checked-out client whose connection dies emits 'error' with no pool listener: the query in flight rejects anyway.
      if (!guarded.has(client)) {
        guarded.add(client);
        client.on('error', () => undefined);
      }
      return client;
    } catch (err) {
      throw toJunctionError(
        err,
        `cannot connect to PostgreSQL at ${this.config.host}:${this.config.port}, database ${this.config.database}, as ${this.config.user} (${what})`,
      );
    }
  }

  /** Creates the missing tables (autoCreate), checks the target's columns and the role's privileges. */
  async prepare(): Promise<void> {
    const bySchema = this.config.layout === 'schema';
    if (bySchema && !this.ctx.schema) {
      throw new JunctionError(
        ErrorCode.CONFIG_INVALID,
        'layout schema needs a station with a schema (config.schema), and this one has none; bind one or use layout default',
        {
          issues: [{ path: 'layout', message: 'the station has no schema' }],
        },
      );
    }
    const client = await this.connect('task start');
    let broken: unknown;
    try {
      const names = [this.config.table, this.config.offsetsTable, this.config.deadLettersTable];
      const exists =
        (
          await client.query<{ r: (string | null)[] }>(
            'SELECT ARRAY[to_regclass($1), to_regclass($2), to_regclass($3)]::text[] AS r',
            names.map((n) => `${q(this.config.schema)}.${q(n)}`),
          )
        ).rows[0]?.r ?? [];
      if (exists.some((r) => r === null)) {
        if (!this.config.autoCreate && exists[0] === null)
          throw new JunctionError(
            ErrorCode.NOT_FOUND,
            `table ${this.config.schema}.${this.config.table} does not exist and autoCreate is false`,
          );
        await client.query('BEGIN');
        try {
          // One DDL at a time among tasks: concurrent CREATE TABLE IF NOT EXISTS can still collide in pg_type.
          await client.query(`SELECT pg_advisory_xact_lock(hashtext('junction-postgres-sink-ddl'))`);
          if (this.config.autoCreate && !bySchema) await client.query(createTableSql(this.config, this.fq));
          await client.query(
            `CREATE TABLE IF NOT EXISTS ${this.offsetsFq} (connector text NOT NULL, station text NOT NULL, station_id text NOT NULL, partition integer NOT NULL, written int8multirange NOT NULL, last_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (connector, station_id, partition))`,
          );
          await client.query(
            `CREATE TABLE IF NOT EXISTS ${this.deadFq} (connector text NOT NULL, station text NOT NULL, station_id text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL, code text NOT NULL, reason text NOT NULL, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (connector, station_id, partition, "offset"))`,
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }
      if (bySchema) {
        const drift = await this.followSchema(this.ctx.schema!, client);
        if (drift && this.config.onDrift === 'fail') throw new JunctionError('SCHEMA_DRIFT', drift);
      }
      // From the catalog, not a SELECT: the sink needs no SELECT privilege on its target.
      const have = new Set(
        (
          await client.query<{ n: string }>(
            'SELECT attname AS n FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped',
            [this.fq],
          )
        ).rows.map((r) => r.n),
      );
      const missing = bySchema ? [] : this.cols.filter((c) => !have.has(c));
      if (missing.length > 0) {
        throw new JunctionError(
          ErrorCode.DESTINATION_UNUSABLE,
          `table ${this.config.schema}.${this.config.table} lacks the column(s) ${missing.join(', ')}; the sink writes ${this.cols.join(', ')} (README, "Default layout")`,
          {
            issues: [{ path: 'table', message: `missing column(s) ${missing.join(', ')}` }],
          },
        );
      }
      const need: [string, string][] = [
        [this.fq, this.config.mode === 'upsert' ? 'INSERT, UPDATE' : 'INSERT'],
        [this.offsetsFq, 'SELECT, INSERT, UPDATE'],
        [this.deadFq, 'SELECT, INSERT'],
      ];
      for (const [table, privs] of need) {
        for (const p of privs.split(', ')) {
          const r = await client.query<{ ok: boolean }>('SELECT has_table_privilege($1, $2) AS ok', [table, p]);
          if (!r.rows[0]?.ok)
            throw new JunctionError(
              ErrorCode.AUTH_FAILED,
              `role ${this.config.user} lacks ${p} on ${table} (the sink needs ${privs} there: README, "Privileges")`,
            );
        }
      }
    } catch (err) {
      broken = err;
      throw toJunctionError(err, `PostgreSQL table ${this.config.schema}.${this.config.table}`);
    } finally {
      client.release(broken !== undefined && isTransient(broken) ? (broken as Error) : undefined);
    }
  }

  /**
   * Layout schema: makes the table follow a schema version — created from it (autoCreate), the nullable
   * columns a newer version adds added (evolve) — or says why it cannot (planTable). DDL runs under the
   * sinks' advisory lock, so tasks of several connectors on one table do not collide. Answers the drift
   * (checked again at the next write, so a table fixed by hand is taken up), or undefined once it follows.
   */
  private async followSchema(schema: StationSchemaInfo, held?: pg.PoolClient): Promise<string | undefined> {
    const key = `${schema.id}:${schema.versions.map((v) => v.id).join(',')}`;
    if (this.followed?.key === key) return undefined;
    const where = `${this.config.schema}.${this.config.table}`;
    const decoder = await schemaDecoder(schema);
    const wanted = schemaColumns(decoder.fields, this.config.mode === 'upsert');
    // The task start's connection when it has one (a pool of one connection would wait for itself).
    const client = held ?? (await this.connect('following the station schema'));
    let broken: unknown;
    let drift: string | undefined;
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('junction-postgres-sink-ddl'))`);
      const exists = (await client.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [this.fq])).rows[0]?.r ?? null;
      const unusable = unusableNames(decoder.fields);
      if (exists === null && unusable.length === 0) {
        if (!this.config.autoCreate) throw new JunctionError(ErrorCode.NOT_FOUND, `table ${where} does not exist and autoCreate is false`);
        await client.query(createSchemaTableSql(this.fq, wanted));
        this.log.info({ table: where, subject: schema.subject, version: schema.version }, 'table created from the station schema');
      }
      const existing =
        exists === null && unusable.length > 0
          ? []
          : (
              await client.query<{ name: string; type: string; notnull: boolean; hasdef: boolean }>(
                'SELECT attname AS name, format_type(atttypid, atttypmod) AS type, attnotnull AS notnull, atthasdef AS hasdef FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum',
                [this.fq],
              )
            ).rows.map((r): TableColumn => ({ name: r.name, type: r.type, nullable: !r.notnull, hasDefault: r.hasdef }));
      const { add, problems } = planTable(existing, wanted, decoder.fields, schema.version, this.config.evolve);
      if (problems.length > 0) {
        await client.query('ROLLBACK');
        this.log.warn({ subject: schema.subject, version: schema.version, problems }, 'the table does not follow the station schema');
        drift = `PostgreSQL table ${where} cannot take schema subject "${schema.subject}" version ${schema.version}: ${problems.join('; ')}`;
      } else {
        if (add.length > 0) {
          await client.query(`ALTER TABLE ${this.fq} ${add.map((c) => `ADD COLUMN IF NOT EXISTS ${q(c.name)} ${c.type}`).join(', ')}`);
          this.log.info(
            { table: where, added: add.map((c) => c.name), subject: schema.subject, version: schema.version },
            'columns added for a new schema version',
          );
        }
        await client.query('COMMIT');
      }
    } catch (err) {
      broken = err;
      await client.query('ROLLBACK').catch(() => undefined);
      if (held) throw err; // the caller releases it (and converts the error)
      throw toJunctionError(err, `PostgreSQL table ${where}, following schema subject "${schema.subject}" version ${schema.version}`);
    } finally {
      if (!held) client.release(broken !== undefined && isTransient(broken) ? (broken as Error) : undefined);
    }
    if (drift) return drift;
    this.followed = { key, decoder };
    this.cols = wanted.map((c) => c.name);
    return undefined;
  }

  /** Layout schema: a message decoded with the followed schema version, as cells (and its row key in upsert mode). */
  private schemaRow(m: SinkMessage): { reject: string } | { rowKey?: string; cells: (string | null)[] } {
    const { decoder } = this.followed!;
    const d = decoder.decode(m.value);
    if (!d.ok) return { reject: d.reason };
    const cells = decoder.fields.map((f) => pgText(d.row[f.name], f.type));
    if (this.config.mode !== 'upsert') return { cells };
    if (this.config.upsertBy === 'key')
      return m.key === undefined ? { reject: 'upsert by key: the message has no key' } : { rowKey: m.key, cells };
    const field = this.config.upsertBy.field;
    const at = decoder.fields.findIndex((f) => f.name === field);
    const v = at < 0 ? null : cells[at];
    if (v === null || v === undefined) return { reject: `upsert by field ${field}: the value has no such top-level field` };
    return { rowKey: v, cells };
  }

  async checkConnection(): Promise<void> {
    const client = await this.connect('connection check');
    try {
      await client.query('SELECT 1');
    } finally {
      client.release();
    }
  }

  async write(batch: SinkBatch, { signal }: WriteOptions): Promise<WriteResult[]> {
    if (this.closed) throw new JunctionError(ErrorCode.INTERNAL, 'write() after close()');
    signal.throwIfAborted();
    const deadline = Date.now() + this.config.writeTimeoutMs;
    let drift: string | undefined;
    if (this.config.layout === 'schema') {
      const schema = batch.schema ?? this.ctx.schema;
      drift = schema ? await this.followSchema(schema) : 'the station has no schema any more (layout schema)';
      if (drift && this.config.onDrift === 'fail') throw new JunctionError('SCHEMA_DRIFT', drift);
    }
    try {
      return await this.attempt(batch, signal, deadline, false, drift);
    } catch (err) {
      if (err instanceof Aborted)
        throw new JunctionError(ErrorCode.TIMEOUT, 'the write was aborted; its transaction was dropped with its connection', {
          retryable: true,
        });
      if (isDataError(err)) {
        // Unreachable in practice (row-guarded writes answer these per message); never dead-letter a whole batch for it.
        throw new JunctionError(ErrorCode.INTERNAL, `PostgreSQL refused a row outside the guarded path: ${describe(err)}`, {
          cause: err,
          retryable: true,
        });
      }
      throw toJunctionError(
        err,
        `PostgreSQL, writing ${batch.messages.length} messages of ${batch.station}[${batch.partition}] into ${this.config.schema}.${this.config.table}`,
      );
    }
  }

  /**
   * One transaction for the batch. `guarded`: every chunk of rows under a SAVEPOINT, refused rows
   * isolated by halving (the path after a data error rolled the fast one back).
   */
  private async attempt(batch: SinkBatch, signal: AbortSignal, deadline: number, guarded: boolean, drift?: string): Promise<WriteResult[]> {
    const client = await this.connect('write');
    let broken: Error | undefined;
    const onAbort = (): void => {
      // The only way to stop a statement under way in node-postgres: drop its connection (the server rolls the transaction back).
      broken = new Aborted('aborted');
      (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const out = await this.transaction(client, batch, deadline, guarded, drift);
      if (out === 'data-error') {
        this.m.rollbacks.inc();
        client.release();
        signal.removeEventListener('abort', onAbort);
        return await this.attempt(batch, signal, deadline, true, drift);
      }
      client.release();
      return out;
    } catch (err) {
      if (broken === undefined) {
        broken = err as Error;
        await client.query('ROLLBACK').catch(() => undefined);
      }
      if (signal.aborted) throw new Aborted('aborted');
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (broken !== undefined) client.release(broken);
    }
  }

  /** `drift` (layout schema, onDrift dead-letter): the table cannot follow the schema; every new message is dead-lettered with it. */
  private async transaction(
    client: pg.PoolClient,
    batch: SinkBatch,
    deadline: number,
    guarded: boolean,
    drift: string | undefined,
  ): Promise<WriteResult[] | 'data-error'> {
    const { station, stationId, partition } = batch;
    const left = Math.max(1, deadline - Date.now());
    // client_connection_check_interval: a backend whose client died while it waited on a lock notices within 1 s.
    await client.query(
      `BEGIN; SET LOCAL statement_timeout = ${left}; SET LOCAL lock_timeout = ${left}; SET LOCAL client_connection_check_interval = 1000`,
    );
    // Locks the partition's row and reads which offsets of this batch's span it already holds.
    const locked = await client.query<{ held: string }>(
      `WITH r AS (INSERT INTO ${this.offsetsFq} (connector, station, station_id, partition, written, last_offset) VALUES ($1, $2, $3, $4, '{}', 0)` +
        ` ON CONFLICT (connector, station_id, partition) DO UPDATE SET station = EXCLUDED.station RETURNING written)` +
        ` SELECT (written * int8multirange(int8range($5, $6, '[]')))::text AS held FROM r`,
      [this.ctx.connector, station, stationId, partition, batch.firstOffset, batch.lastOffset],
    );
    const held = OffsetSet.parse(locked.rows[0]?.held ?? '{}');
    const results: (WriteResult | undefined)[] = new Array(batch.messages.length).fill(undefined);

    const replayed: number[] = [];
    const rows: Row[] = [];
    const refused: Refused[] = [];
    batch.messages.forEach((message, index) => {
      if (held.has(message.offset)) {
        replayed.push(index);
        return;
      }
      if (drift !== undefined) {
        refused.push({ offset: message.offset, index, code: 'SCHEMA_DRIFT', reason: drift });
        return;
      }
      const r = this.config.layout === 'schema' ? this.schemaRow(message) : rejectReason(this.config, message);
      if ('reject' in r) refused.push({ offset: message.offset, index, code: ErrorCode.SINK_REJECTED, reason: r.reject });
      else {
        const cells = (r as { cells?: (string | null)[] }).cells;
        rows.push({
          index,
          offset: message.offset,
          message,
          ...(r.rowKey === undefined ? {} : { rowKey: r.rowKey }),
          ...(cells ? { cells } : {}),
        });
      }
    });

    if (replayed.length > 0) {
      const offsets = replayed.map((i) => (batch.messages[i] as { offset: number }).offset);
      const dead = await client.query<{ offset: string; code: string; reason: string }>(
        `SELECT "offset", code, reason FROM ${this.deadFq} WHERE connector = $1 AND station_id = $2 AND partition = $3 AND "offset" = ANY($4::bigint[])`,
        [this.ctx.connector, stationId, partition, offsets],
      );
      const byOffset = new Map(dead.rows.map((r) => [Number(r.offset), r]));
      for (const i of replayed) {
        const d = byOffset.get((batch.messages[i] as { offset: number }).offset);
        results[i] = d ? deadLetter(d.code, d.reason) : ok();
      }
      this.m.replayed.inc(replayed.length);
    }

    if (rows.length === 0 && refused.length === 0) {
      await client.query('COMMIT');
      return results.map((r) => r ?? ok());
    }

    if (guarded) await this.writeGuarded(client, batch, rows, refused);
    else {
      try {
        await this.writeRows(client, batch, rows);
      } catch (err) {
        if (!isDataError(err)) throw err;
        await client.query('ROLLBACK');
        return 'data-error';
      }
    }

    for (const r of rows) results[r.index] = ok();
    if (refused.length > 0) {
      const params: unknown[] = [];
      const values = refused.map((d, i) => {
        params.push(d.offset, d.code, d.reason);
        return `($1, $2, $3, $4, $${5 + i * 3}, $${6 + i * 3}, $${7 + i * 3})`;
      });
      await client.query(
        `INSERT INTO ${this.deadFq} (connector, station, station_id, partition, "offset", code, reason) VALUES ${values.join(', ')} ON CONFLICT DO NOTHING`,
        [this.ctx.connector, station, stationId, partition, ...params],
      );
      for (const d of refused) results[d.index] = deadLetter(d.code, d.reason);
      this.m.deadLetters.inc(refused.length);
    }
    const written = [...rows.map((r) => r.offset), ...refused.map((d) => d.offset)];
    await client.query(
      `UPDATE ${this.offsetsFq} SET written = written + ${client.escapeLiteral(OffsetSet.literal(written))}::int8multirange,` +
        ` last_offset = greatest(last_offset, ${Math.max(...written)}), updated_at = now()` +
        ` WHERE connector = ${client.escapeLiteral(this.ctx.connector)} AND station_id = ${client.escapeLiteral(stationId)} AND partition = ${partition}; COMMIT`,
    );
    this.m.rows.inc(rows.length);
    return results.map((r) => r ?? ok());
  }

  /** Writes the rows, each chunk under a savepoint; rows the server refuses end up alone and in `refused`. */
  private async writeGuarded(client: pg.PoolClient, batch: SinkBatch, rows: Row[], refused: Refused[]): Promise<void> {
    const accepted: Row[] = [];
    const go = async (part: Row[]): Promise<void> => {
      if (part.length === 0) return;
      await client.query('SAVEPOINT guard');
      try {
        await this.writeRows(client, batch, part);
        await client.query('RELEASE SAVEPOINT guard');
        accepted.push(...part);
      } catch (err) {
        if (!isDataError(err)) throw err;
        await client.query('ROLLBACK TO SAVEPOINT guard; RELEASE SAVEPOINT guard');
        if (part.length === 1) {
          const r = part[0] as Row;
          refused.push({
            offset: r.offset,
            index: r.index,
            code: `SQLSTATE_${sqlState(err) ?? 'UNKNOWN'}`,
            reason: `PostgreSQL refused the row: ${describe(err)}`,
          });
          return;
        }
        const half = Math.ceil(part.length / 2);
        await go(part.slice(0, half));
        await go(part.slice(half));
      }
    };
    await go(rows);
    rows.splice(0, rows.length, ...accepted);
  }

  /** COPY for large insert-mode batches, multi-row INSERTs otherwise (and always for upsert). */
  private async writeRows(client: pg.PoolClient, batch: SinkBatch, rows: Row[]): Promise<void> {
    if (rows.length === 0) return;
    if (this.config.mode === 'insert' && rows.length >= this.config.copyMinRows) {
      const chunks =
        this.config.layout === 'schema'
          ? encodeSchemaCopy(this.config.maxBytesPerStatement, batch.station, batch.stationId, batch.partition, rows)
          : encodeCopy(this.config, batch.station, batch.stationId, batch.partition, rows);
      const stream = client.query(copyStreams.from(`COPY ${this.fq} (${this.cols.map(q).join(', ')}) FROM STDIN`));
      this.m.copies.inc();
      await pipeline(Readable.from(chunks), stream);
      return;
    }
    const perRow = this.cols.length;
    const maxRows = Math.min(this.config.maxRowsPerStatement, Math.floor(MAX_PARAMS / perRow));
    let chunk: Row[] = [];
    let bytes = 0;
    for (const r of this.config.mode === 'upsert' ? lastPerKey(rows) : rows) {
      const size = r.message.value.byteLength + 64;
      if (chunk.length > 0 && (chunk.length >= maxRows || bytes + size > this.config.maxBytesPerStatement)) {
        await this.insert(client, batch, chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(r);
      bytes += size;
    }
    if (chunk.length > 0) await this.insert(client, batch, chunk);
  }

  private async insert(client: pg.PoolClient, batch: SinkBatch, rows: Row[]): Promise<void> {
    const perRow = this.cols.length;
    const params: unknown[] = [];
    const tuples = rows.map((r, i) => {
      params.push(
        ...(this.config.layout === 'schema'
          ? schemaRowParams(batch.station, batch.stationId, batch.partition, r)
          : rowParams(this.config, batch.station, batch.stationId, batch.partition, r)),
      );
      return `(${this.cols.map((_, c) => `$${i * perRow + c + 1}`).join(', ')})`;
    });
    let sql = `INSERT INTO ${this.fq} (${this.cols.map(q).join(', ')}) VALUES ${tuples.join(', ')}`;
    if (this.config.mode === 'upsert') {
      sql += ` ON CONFLICT (row_key) DO UPDATE SET ${this.cols
        .filter((c) => c !== 'row_key')
        .map((c) => `${q(c)} = EXCLUDED.${q(c)}`)
        .join(', ')}`;
    }
    this.m.inserts.inc();
    await client.query(sql, params);
  }

  /** Releases the pool. Idempotent; never throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }
}

/** Offsets as sorted half-open ranges, read from and written as PostgreSQL's int8multirange text. */
export class OffsetSet {
  private constructor(private readonly ranges: [number, number][]) {}

  /** `{[1,21),[25,26)}` (the canonical form of an int8multirange). */
  static parse(text: string): OffsetSet {
    const ranges: [number, number][] = [];
    for (const m of text.matchAll(/\[(\d+),(\d+)\)/g)) ranges.push([Number(m[1]), Number(m[2])]);
    return new OffsetSet(ranges);
  }

  has(offset: number): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b] = this.ranges[mid] as [number, number];
      if (offset < a) hi = mid - 1;
      else if (offset >= b) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** The int8multirange literal of a list of offsets (runs of consecutive offsets as one range). */
  static literal(offsets: number[]): string {
    const sorted = [...offsets].sort((a, b) => a - b);
    const parts: string[] = [];
    let start = sorted[0] as number;
    let prev = start;
    for (const o of sorted.slice(1)) {
      if (o === prev + 1) {
        prev = o;
        continue;
      }
      parts.push(`[${start},${prev + 1})`);
      start = prev = o;
    }
    parts.push(`[${start},${prev + 1})`);
    return `{${parts.join(',')}}`;
  }
}

/**
 * Upsert: a statement may not touch one row twice (ON CONFLICT … "cannot affect row a second time"),
 * so only the newest message per row key of a chunk goes in; the older ones are superseded (answered ok).
 */
function lastPerKey(rows: Row[]): Row[] {
  const newest = new Map<string, Row>();
  for (const r of rows) newest.set(r.rowKey as string, r);
  return rows.filter((r) => newest.get(r.rowKey as string) === r);
}
