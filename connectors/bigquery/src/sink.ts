/**
 * The BigQuery sink. Exactly once per offset, as far as BigQuery's own guarantees reach (README):
 *
 * - Every row carries station, partition and offset. Before writing, the sink knows which offsets of
 *   the partition the table already holds ({@link Presence}: one query at task start, and again after
 *   any write whose outcome is unknown, or for a replay older than what it has seen). Those messages
 *   are answered ok() and not sent again.
 * - The rest go through tabledata.insertAll in chunks, each row with insertId
 *   `<station>/<partition>/<offset>`: a request retried after a dropped answer is deduplicated by
 *   BigQuery inside its dedup window (best effort, about a minute), which covers the gap before the
 *   next presence query can see the rows.
 * - Per-row insertErrors are dead-lettered with BigQuery's reason; rows BigQuery only "stopped" are
 *   retried; a transient failure answers retry() for its chunk; auth / missing dataset fail the task.
 */
import { BigQuery, type Table } from '@google-cloud/bigquery';
import {
  deadLetter,
  ErrorCode,
  JunctionError,
  ok,
  retry,
  type Counter,
  type PartitionRef,
  type Sink,
  type SinkBatch,
  type SinkContext,
  type WriteOptions,
  type WriteResult,
  Presence,
} from '@junction/sdk-connector';
import type { BigQuerySinkConfig } from './config.js';
import { httpStatus, isTransient, reasonOf, toJunctionError } from './errors.js';
import { metaColumns, schemaOf, toRow, type MetaColumns } from './rows.js';
import type { SinkMessage, StationSchemaInfo } from '@junction/sdk-connector';
import { schemaDecoder, type SchemaDecoder } from '@junction/sdk-connector/schema';
import { mergeFields, rowValue, tableFields, type TableField } from './schema-table.js';

interface PendingRow {
  index: number;
  offset: number;
  insertId: string;
  json: Record<string, unknown>;
  bytes: number;
}

interface PartialFailure {
  errors?: { row?: { insertId?: string }; errors?: { reason?: string; message?: string; location?: string }[] }[];
}

/** Request size estimate without serializing twice: the value, key and headers dominate a row. */
function approxBytes(m: { value: Uint8Array; key?: string; headers: Record<string, string> }): number {
  let n = m.value.byteLength * 1.2 + 160 + (m.key?.length ?? 0);
  for (const k in m.headers) n += k.length + (m.headers[k]?.length ?? 0) + 6;
  return n;
}

export function createClient(config: BigQuerySinkConfig): BigQuery {
  const options: Record<string, unknown> = { projectId: config.projectId, maxRetries: config.maxRetries, autoRetry: config.maxRetries > 0 };
  if (config.location) options.location = config.location;
  if (config.apiEndpoint) options.apiEndpoint = config.apiEndpoint.replace(/\/$/, '');
  if (config.credentials) {
    try {
      options.credentials = JSON.parse(config.credentials) as unknown;
    } catch {
      throw new JunctionError(ErrorCode.CONFIG_INVALID, 'credentials is not JSON text (a service account key file)', {
        issues: [{ path: 'credentials', message: 'not JSON' }],
      });
    }
  }
  if (config.accessToken) {
    const token = config.accessToken;
    options.authClient = { getRequestHeaders: async () => new Headers({ authorization: `Bearer ${token}` }) };
  }
  return new BigQuery(options);
}

export class BigQuerySink implements Sink {
  private closed = false;
  private readonly table: Table;
  private readonly meta: MetaColumns;
  private readonly presence: Presence;
  /** Mode schema: the schema version (and set of the subject's versions) the table follows, its decoder and the table's columns for its fields. */
  private followed: { key: string; decoder: SchemaDecoder; columns: (TableField | undefined)[] } | undefined;
  private readonly m: { rows: Counter; requests: Counter; replayed: Counter; deadLetters: Counter; retries: Counter };

  constructor(
    private readonly client: BigQuery,
    private readonly config: BigQuerySinkConfig,
    private readonly ctx: SinkContext,
  ) {
    this.table = client.dataset(config.dataset).table(config.table);
    const meta = (this.meta = metaColumns(config));
    const fq = `\`${config.projectId}.${config.dataset}.${config.table}\``;
    this.presence = new Presence(async ({ station, stationId, partition }, from, to) => {
      try {
        // Rows written before the station id column (NULL there) count for every incarnation: BigQuery
        // cannot UPDATE rows still in its streaming buffer to claim them for one (README).
        const [rows] = await client.query({
          query: `SELECT \`${meta.offset}\` FROM ${fq} WHERE \`${meta.station}\` = @station AND (\`${meta.stationId}\` = @stationId OR \`${meta.stationId}\` IS NULL) AND \`${meta.partition}\` = @partition AND \`${meta.offset}\` >= @from AND \`${meta.offset}\` < @to`,
          params: { station, stationId, partition, from, to },
          ...(config.location ? { location: config.location } : {}),
        });
        return (rows as Record<string, unknown>[]).map((r) => Number(r[meta.offset]));
      } catch (err) {
        throw toJunctionError(err, `BigQuery query of the offsets already in ${config.dataset}.${config.table}`);
      }
    });
    this.m = {
      rows: ctx.metrics.counter('rows_inserted_total', 'Rows BigQuery accepted'),
      requests: ctx.metrics.counter('insert_requests_total', 'insertAll requests'),
      replayed: ctx.metrics.counter('replayed_messages_total', 'Messages answered ok because their offset was already in the table'),
      deadLetters: ctx.metrics.counter('dead_letters_total', 'Messages dead-lettered (rejected by BigQuery or not JSON)'),
      retries: ctx.metrics.counter('retries_total', 'Messages answered retry'),
    };
  }

  /**
   * Checks the dataset and the table; creates the table when missing and autoCreate is set, and adds
   * the station id column to a table made before it (exactly-once keys on it).
   */
  async ensureTable(): Promise<void> {
    const where = `${this.config.projectId}.${this.config.dataset}.${this.config.table}`;
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
      const drift = await this.followSchema(this.ctx.schema);
      if (drift && this.config.onDrift === 'fail') throw new JunctionError('SCHEMA_DRIFT', drift);
      return;
    }
    try {
      const [exists] = await this.table.exists();
      if (exists) return await this.ensureStationIdColumn(where);
    } catch (err) {
      if (err instanceof JunctionError) throw err;
      throw toJunctionError(err, `BigQuery table ${where}`);
    }
    try {
      const [datasetExists] = await this.client.dataset(this.config.dataset).exists();
      if (!datasetExists)
        throw new JunctionError(
          ErrorCode.NOT_FOUND,
          `BigQuery dataset ${this.config.projectId}.${this.config.dataset} does not exist; create it (the sink creates tables, never datasets)`,
        );
      if (!this.config.autoCreate)
        throw new JunctionError(ErrorCode.NOT_FOUND, `BigQuery table ${where} does not exist and autoCreate is false`);
      await this.client.dataset(this.config.dataset).createTable(this.config.table, { schema: { fields: schemaOf(this.config) } });
    } catch (err) {
      if (err instanceof JunctionError) throw err;
      if (httpStatus(err) === 409) return; // created meanwhile by another task
      throw toJunctionError(err, `creating BigQuery table ${where}`);
    }
  }

  /**
   * Mode schema: makes the table follow a schema version — created from it (autoCreate), the NULLABLE
   * columns a newer version adds patched in (evolve) — or says why it cannot (a type or repetition that
   * differs, new fields with evolve off). Answers that drift (checked again at the next write, so a table
   * fixed by hand is taken up), or undefined once the table follows.
   */
  private async followSchema(schema: StationSchemaInfo): Promise<string | undefined> {
    const key = `${schema.id}:${schema.versions.map((v) => v.id).join(',')}`;
    if (this.followed?.key === key) return undefined;
    const where = `${this.config.projectId}.${this.config.dataset}.${this.config.table}`;
    const decoder = await schemaDecoder(schema);
    const wanted = tableFields(decoder.fields);
    let existing: TableField[];
    try {
      const [exists] = await this.table.exists();
      if (!exists) {
        const [datasetExists] = await this.client.dataset(this.config.dataset).exists();
        if (!datasetExists)
          throw new JunctionError(
            ErrorCode.NOT_FOUND,
            `BigQuery dataset ${this.config.projectId}.${this.config.dataset} does not exist; create it (the sink creates tables, never datasets)`,
          );
        if (!this.config.autoCreate)
          throw new JunctionError(ErrorCode.NOT_FOUND, `BigQuery table ${where} does not exist and autoCreate is false`);
        try {
          await this.client.dataset(this.config.dataset).createTable(this.config.table, { schema: { fields: wanted } });
          this.ctx.logger.info({ table: where, subject: schema.subject, version: schema.version }, 'table created from the station schema');
        } catch (err) {
          if (httpStatus(err) !== 409) throw err; // 409: created meanwhile by another task
        }
      }
      const [metadata] = (await this.table.getMetadata()) as unknown as [{ schema?: { fields?: TableField[] } }];
      existing = metadata.schema?.fields ?? [];
    } catch (err) {
      if (err instanceof JunctionError) throw err;
      throw toJunctionError(err, `BigQuery table ${where}`);
    }
    const { merged, added, problems } = mergeFields(existing, wanted);
    if (added.length > 0 && !this.config.evolve)
      problems.push(`the table lacks column(s) ${added.join(', ')} of schema version ${schema.version} and evolve is off`);
    if (problems.length > 0) {
      this.ctx.logger.warn({ subject: schema.subject, version: schema.version, problems }, 'the table does not follow the station schema');
      return `BigQuery table ${where} cannot take schema subject "${schema.subject}" version ${schema.version}: ${problems.join('; ')}`;
    }
    if (added.length > 0) {
      try {
        await this.table.setMetadata({ schema: { fields: merged } });
      } catch (err) {
        throw toJunctionError(err, `BigQuery table ${where}: adding column(s) ${added.join(', ')} for schema version ${schema.version}`);
      }
      this.ctx.logger.info(
        { table: where, added, subject: schema.subject, version: schema.version },
        'columns added for a new schema version',
      );
    }
    const columns = decoder.fields.map((f) => merged.find((m) => m.name.toLowerCase() === f.name.toLowerCase()));
    this.followed = { key, decoder, columns };
    return undefined;
  }

  /** Mode schema: a message decoded with the station schema, as an insertAll row. */
  private schemaRow(ref: PartitionRef, m: SinkMessage): { row: Record<string, unknown> } | { reject: string } {
    const { decoder, columns } = this.followed!;
    const d = decoder.decode(m.value);
    if (!d.ok) return { reject: d.reason };
    const row: Record<string, unknown> = {
      _junction_station: ref.station,
      _junction_partition: ref.partition,
      _junction_offset: m.offset,
      _junction_station_id: ref.stationId,
    };
    decoder.fields.forEach((f, i) => {
      const col = columns[i];
      // A missing field is NULL (or an empty array for a REPEATED column).
      const v = col ? rowValue(d.row[f.name], f.type, col) : null;
      if (col && v !== null) row[col.name] = v;
    });
    return { row };
  }

  /** Adds the station id column when the table lacks it (`ALTER TABLE … ADD COLUMN IF NOT EXISTS`). */
  private async ensureStationIdColumn(where: string): Promise<void> {
    const [metadata] = (await this.table.getMetadata()) as unknown as [{ schema?: { fields?: { name?: string }[] } }];
    if ((metadata.schema?.fields ?? []).some((f) => f.name?.toLowerCase() === this.meta.stationId)) return;
    const sql = `ALTER TABLE \`${this.config.projectId}.${this.config.dataset}.${this.config.table}\` ADD COLUMN IF NOT EXISTS \`${this.meta.stationId}\` STRING`;
    try {
      await this.client.query({ query: sql, ...(this.config.location ? { location: this.config.location } : {}) });
    } catch (err) {
      throw toJunctionError(
        err,
        `BigQuery table ${where} has no column ${this.meta.stationId} (the station's incarnation, which exactly-once needs) and adding it failed; add it: ${sql}`,
      );
    }
  }

  async write(batch: SinkBatch, { signal }: WriteOptions): Promise<WriteResult[]> {
    if (this.closed) throw new JunctionError(ErrorCode.INTERNAL, 'write() after close()');
    signal.throwIfAborted();
    const { station, partition } = batch;
    const ref: PartitionRef = { station, stationId: batch.stationId, partition };
    const results: (WriteResult | undefined)[] = new Array(batch.messages.length).fill(undefined);
    const candidates: PendingRow[] = [];
    const bySchema = this.config.mode === 'schema';
    if (bySchema) {
      const schema = batch.schema ?? this.ctx.schema;
      const drift = schema ? await this.followSchema(schema) : 'the station has no schema any more (mode schema)';
      if (drift) {
        if (this.config.onDrift === 'fail') throw new JunctionError('SCHEMA_DRIFT', drift);
        this.m.deadLetters.inc(batch.messages.length);
        return batch.messages.map(() => deadLetter('SCHEMA_DRIFT', drift));
      }
    }
    batch.messages.forEach((m, index) => {
      const r = bySchema ? this.schemaRow(ref, m) : toRow(this.config, ref, m);
      if ('reject' in r) {
        results[index] = deadLetter(ErrorCode.SINK_REJECTED, r.reject);
        this.m.deadLetters.inc();
        return;
      }
      candidates.push({
        index,
        offset: m.offset,
        insertId: `${station}/${batch.stationId}/${partition}/${m.offset}`,
        json: r.row,
        bytes: approxBytes(m),
      });
    });
    let pending = candidates;
    if (candidates.length > 0) {
      const held = await this.presence.held(
        ref,
        candidates.map((c) => c.offset),
      );
      pending = candidates.filter((c) => {
        if (!held.has(c.offset)) return true;
        results[c.index] = ok();
        this.m.replayed.inc();
        return false;
      });
    }
    const chunks: PendingRow[][] = [];
    let chunk: PendingRow[] = [];
    let bytes = 0;
    for (const row of pending) {
      if (chunk.length > 0 && (chunk.length >= this.config.maxRowsPerRequest || bytes + row.bytes > this.config.maxBytesPerRequest)) {
        chunks.push(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(row);
      bytes += row.bytes;
    }
    if (chunk.length > 0) chunks.push(chunk);

    let fatal: { err: unknown } | undefined;
    let next = 0;
    const worker = async () => {
      while (next < chunks.length && fatal === undefined) {
        const c = chunks[next++] as PendingRow[];
        try {
          await this.insertChunk(ref, c, results);
        } catch (err) {
          fatal ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.requestConcurrency, chunks.length) }, worker));
    if (fatal !== undefined) throw fatal.err;
    return results.map((r) => r ?? retry('not attempted after an earlier failure in this batch'));
  }

  private async insertChunk(ref: PartitionRef, chunk: PendingRow[], results: (WriteResult | undefined)[]): Promise<void> {
    this.m.requests.inc();
    try {
      await this.table.insert(
        chunk.map((r) => ({ insertId: r.insertId, json: r.json })),
        { raw: true, skipInvalidRows: true, partialRetries: 0 },
      );
    } catch (err) {
      if ((err as Error)?.name === 'PartialFailureError') {
        const byId = new Map<string, { reason?: string; message?: string; location?: string }[]>();
        for (const e of (err as PartialFailure).errors ?? []) if (e.row?.insertId) byId.set(e.row.insertId, e.errors ?? []);
        const done: number[] = [];
        for (const r of chunk) {
          const errors = byId.get(r.insertId);
          if (!errors) {
            results[r.index] = ok();
            done.push(r.offset);
            continue;
          }
          const real = errors.filter((e) => e.reason !== 'stopped');
          if (real.length === 0) {
            results[r.index] = retry('BigQuery stopped this row because another row of its request was invalid');
            this.m.retries.inc();
          } else {
            const reason = real
              .map((e) => `${e.location ? `${e.location}: ` : ''}${e.message ?? ''} (${e.reason ?? 'invalid'})`)
              .join('; ');
            results[r.index] = deadLetter(ErrorCode.SINK_REJECTED, `BigQuery rejected the row: ${reason}`);
            this.m.deadLetters.inc();
          }
        }
        this.presence.written(ref, done);
        this.m.rows.inc(done.length);
        return;
      }
      if (isTransient(err)) {
        // The rows may have landed (an answer lost after BigQuery committed): ask the table next time.
        this.presence.forget(ref);
        const why = httpStatus(err)
          ? `BigQuery answered ${httpStatus(err)} ${reasonOf(err) ?? ''}`.trim()
          : `BigQuery unreachable: ${(err as Error)?.message ?? String(err)}`;
        for (const r of chunk) results[r.index] = retry(why, { delayMs: httpStatus(err) === 429 ? 2000 : 500 });
        this.m.retries.inc(chunk.length);
        return;
      }
      throw toJunctionError(err, `BigQuery insertAll into ${this.config.dataset}.${this.config.table}`);
    }
    for (const r of chunk) results[r.index] = ok();
    this.presence.written(
      ref,
      chunk.map((r) => r.offset),
    );
    this.m.rows.inc(chunk.length);
  }

  async checkConnection(): Promise<void> {
    await this.ensureTable();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
