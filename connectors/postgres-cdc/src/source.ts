/**
 * The PostgreSQL CDC source: pgoutput logical replication of one publication through one slot, with
 * pg-logical-replication for the protocol.
 *
 * Confirmation after storage. The slot's confirmed LSN is reported (standby status "flush") only from
 * commit(): the end LSN of the newest transaction all of whose events the station stored. Nothing
 * else reports it — the library's own periodic status (which reports what was *received*) is off, and
 * this source sends the keepalive itself with the stored LSN. A restart or kill -9 therefore starts
 * again at a transaction boundary at or before what was stored; transactions the stored position
 * already covers are skipped, and a transaction cut across batches comes again with the same msgIds
 * (`<slot>:<commit LSN>:<n>`), which the station's dedup window drops.
 *
 * A replication connection that fails ends the read with a retryable error: the task restarts and a
 * new connection starts at the slot's confirmed LSN (never at the last LSN received, which the library
 * would reuse on a resubscribe and which could skip unstored transactions).
 */
import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import {
  ErrorCode,
  JunctionError,
  type Counter,
  type Logger,
  type Source,
  type SourceBatch,
  type SourceContext,
  type SourceMessage,
} from '@junction/sdk-connector';
import type { PostgresCdcConfig } from './config.js';
import { describe, toJunctionError } from './errors.js';

/**
 * Where the source stands: `lsn` is the end LSN of the newest transaction whose events are all in the
 * station (the slot is confirmed up to it); `snapshot` tells whether the initial snapshot finished.
 */
export type CdcPosition = { lsn: string; snapshot?: 'running' | 'done' };

/** The value of every message, as JSON. */
export interface ChangeEvent {
  /** insert, update, delete, truncate; read for a row of the initial snapshot. */
  op: 'insert' | 'update' | 'delete' | 'truncate' | 'read';
  schema: string;
  table: string;
  /** The old row: all columns with REPLICA IDENTITY FULL; the key columns for a delete (or an update that changed the key); else null. */
  before: Record<string, unknown> | null;
  /** The new row (insert, update, read); null for delete and truncate. */
  after: Record<string, unknown> | null;
  /** The transaction's commit LSN (for read: the LSN the slot was created at). */
  lsn: string;
  /** The transaction's commit time, ISO 8601 (for read: when the snapshot was taken). */
  commitTime: string;
  xid?: number;
}

const parseLsn = (s: string): bigint => {
  const [hi, lo] = s.split('/');
  return (BigInt(`0x${hi ?? '0'}`) << 32n) + BigInt(`0x${lo ?? '0'}`);
};
const formatLsn = (n: bigint): string => `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`;

/** Row values as JSON: bytea as PostgreSQL's hex text, dates as ISO (pg's own parsers give strings for int8 / numeric). */
function plainRow(row: Record<string, unknown> | null | undefined): Record<string, unknown> | null {
  if (!row) return null;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(row)) {
    const v = row[k];
    out[k] = Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : v instanceof Date ? v.toISOString() : v;
  }
  return out;
}

interface Item {
  message?: SourceMessage;
  /** A transaction (or the snapshot) ends here: the position may move to it. */
  mark?: CdcPosition;
}

export class PostgresCdcSource implements Source<CdcPosition> {
  private readonly slot: string;
  private readonly queue: Item[] = [];
  private wake: (() => void) | undefined;
  private drained: (() => void) | undefined;
  private service: LogicalReplicationService | undefined;
  private closed = false;
  private fatal: Error | undefined;
  private confirmed = 0n;
  private statusTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly stored: CdcPosition | undefined;
  /** Primary key columns per published table (relation oid): the message key. */
  private readonly primaryKeys = new Map<number, string[]>();
  private lastMark: CdcPosition;
  private readonly m: { events: Counter; transactions: Counter; skipped: Counter; snapshotRows: Counter };
  // The transaction being received.
  private txn: { commitLsn: string; commitTime: string; xid: number; n: number; skip: boolean } | undefined;

  constructor(
    private readonly config: PostgresCdcConfig,
    ctx: SourceContext<CdcPosition>,
  ) {
    this.log = ctx.logger;
    this.slot = config.slot ?? `junction_${ctx.connector.replace(/[^A-Za-z0-9_]/g, '_').toLowerCase()}`.slice(0, 63);
    this.stored = ctx.position;
    this.lastMark = ctx.position ?? { lsn: '0/0' };
    this.m = {
      events: ctx.metrics.counter('change_events_total', 'Change events emitted'),
      transactions: ctx.metrics.counter('transactions_total', 'Transactions received'),
      skipped: ctx.metrics.counter('skipped_transactions_total', 'Transactions skipped because the stored position already covers them'),
      snapshotRows: ctx.metrics.counter('snapshot_rows_total', 'Rows emitted by the initial snapshot'),
    };
  }

  private clientConfig(): pg.ClientConfig {
    const c = this.config;
    return {
      host: c.host,
      port: c.port,
      database: c.database,
      user: c.user,
      ...(c.password === undefined ? {} : { password: c.password }),
      application_name: `junction-cdc:${this.slot}`,
      connectionTimeoutMillis: 10_000,
    };
  }

  /** Checks the server, makes the publication and slot when missing, runs the snapshot if asked, starts streaming. */
  async start(): Promise<void> {
    const admin = new pg.Client(this.clientConfig());
    admin.on('error', () => undefined);
    try {
      await admin.connect();
    } catch (err) {
      throw toJunctionError(
        err,
        `cannot connect to PostgreSQL at ${this.config.host}:${this.config.port}, database ${this.config.database}`,
      );
    }
    let snapshotNeeded = false;
    try {
      const wal = (await admin.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
      if (wal !== 'logical') {
        throw new JunctionError(
          ErrorCode.DESTINATION_UNUSABLE,
          `PostgreSQL runs with wal_level=${wal}; logical replication needs wal_level=logical (ALTER SYSTEM SET wal_level = logical, then restart the server)`,
        );
      }
      const pub = await admin.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [this.config.publication]);
      if (pub.rowCount === 0) {
        if (this.config.tables.length === 0)
          throw new JunctionError(
            ErrorCode.NOT_FOUND,
            `publication ${this.config.publication} does not exist (create it, or list tables to have it created)`,
            { issues: [{ path: 'publication', message: 'does not exist' }] },
          );
        const tables = this.config.tables
          .map((t) =>
            t
              .split('.')
              .map((p) => `"${p}"`)
              .join('.'),
          )
          .join(', ');
        await admin.query(`CREATE PUBLICATION "${this.config.publication}" FOR TABLE ${tables}`);
      }
      const pks = await admin.query<{ oid: number; cols: string[] }>(
        `SELECT c.oid::int AS oid, array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum)) AS cols
           FROM pg_publication_tables pt
           JOIN pg_namespace n ON n.nspname = pt.schemaname
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
           JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
          WHERE pt.pubname = $1 GROUP BY c.oid`,
        [this.config.publication],
      );
      for (const r of pks.rows) this.primaryKeys.set(r.oid, r.cols);
      const slot = await admin.query<{ confirmed: string | null; plugin: string }>(
        'SELECT confirmed_flush_lsn::text AS confirmed, plugin FROM pg_replication_slots WHERE slot_name = $1',
        [this.slot],
      );
      const existing = slot.rows[0];
      if (existing && existing.plugin !== 'pgoutput')
        throw new JunctionError(
          ErrorCode.DESTINATION_UNUSABLE,
          `replication slot ${this.slot} uses plugin ${existing.plugin}, not pgoutput`,
        );
      snapshotNeeded =
        this.config.snapshot &&
        this.stored?.snapshot !== 'done' &&
        (existing === undefined || this.stored?.snapshot === 'running' || this.stored === undefined);
      if (existing && snapshotNeeded) {
        // A snapshot cut short (or never stored): its exported snapshot is gone, so it starts over with a new slot.
        this.log.warn({ slot: this.slot }, 'the initial snapshot did not finish: dropping the slot and taking it again');
        await admin.query('SELECT pg_drop_replication_slot($1)', [this.slot]);
      }
      if (!existing && !snapshotNeeded) await admin.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [this.slot]);
      if (!snapshotNeeded) {
        // The keepalive answers the server with this from the start (an idle stream would otherwise hit wal_sender_timeout).
        const now = await admin.query<{ confirmed: string | null }>(
          'SELECT confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1',
          [this.slot],
        );
        const c = now.rows[0]?.confirmed;
        this.confirmed = c ? parseLsn(c) : 0n;
      }
    } catch (err) {
      throw toJunctionError(err, `PostgreSQL logical replication (publication ${this.config.publication}, slot ${this.slot})`);
    } finally {
      await admin.end().catch(() => undefined);
    }
    if (snapshotNeeded) await this.snapshotThenStream();
    else this.stream();
  }

  /**
   * Creates the slot exporting its snapshot, reads every published row in that snapshot (op read), then
   * streams from the slot's consistent point — no change is missed or seen twice between the two.
   */
  private async snapshotThenStream(): Promise<void> {
    const repl = new pg.Client({ ...this.clientConfig(), replication: 'database' } as pg.ClientConfig);
    repl.on('error', () => undefined);
    const reader = new pg.Client(this.clientConfig());
    reader.on('error', () => undefined);
    let consistent: string;
    let snapshotName: string;
    try {
      await repl.connect();
      const created = await repl.query<{ consistent_point: string; snapshot_name: string }>(
        `CREATE_REPLICATION_SLOT "${this.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT`,
      );
      consistent = formatLsn(parseLsn(created.rows[0]?.consistent_point as string));
      snapshotName = created.rows[0]?.snapshot_name as string;
      await reader.connect();
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await reader.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replaceAll("'", "''")}'`);
    } catch (err) {
      await Promise.all([repl.end().catch(() => undefined), reader.end().catch(() => undefined)]);
      throw toJunctionError(err, `creating replication slot ${this.slot} with a snapshot`);
    }
    // The snapshot is imported: the replication connection may go. The slot is confirmed at its consistent point.
    await repl.end().catch(() => undefined);
    this.confirmed = parseLsn(consistent);
    const taken = new Date().toISOString();
    void (async () => {
      try {
        const tables = await reader.query<{ schemaname: string; tablename: string }>(
          'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2',
          [this.config.publication],
        );
        for (const { schemaname, tablename } of tables.rows) {
          const fq = `"${schemaname}"."${tablename}"`;
          await reader.query(`DECLARE snap NO SCROLL CURSOR FOR SELECT * FROM ${fq}`);
          let n = 0;
          for (;;) {
            if (this.closed) return;
            const rows = await reader.query<Record<string, unknown>>('FETCH 1000 FROM snap');
            for (const row of rows.rows) {
              const event: ChangeEvent = {
                op: 'read',
                schema: schemaname,
                table: tablename,
                before: null,
                after: plainRow(row),
                lsn: consistent,
                commitTime: taken,
              };
              this.push(
                { message: this.message(event, `${this.slot}:snapshot:${consistent}:${schemaname}.${tablename}:${n++}`, undefined) },
                { lsn: consistent, snapshot: 'running' },
              );
              this.m.snapshotRows.inc();
            }
            if (rows.rows.length < 1000) break;
            await this.room();
          }
          await reader.query('CLOSE snap');
        }
        await reader.query('COMMIT');
        this.push({ mark: { lsn: consistent, snapshot: 'done' } });
        this.stream();
      } catch (err) {
        this.fail(toJunctionError(err, `the initial snapshot of publication ${this.config.publication}`));
      } finally {
        await reader.end().catch(() => undefined);
      }
    })();
  }

  private snapshotState(): 'done' | undefined {
    return this.config.snapshot ? 'done' : undefined;
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.fatal ??= err;
    this.wake?.();
  }

  /** Starts the replication stream at the slot's confirmed LSN. */
  private stream(): void {
    if (this.closed) return;
    const service = new LogicalReplicationService(this.clientConfig(), {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: true },
    });
    this.service = service;
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.config.publication] });
    service.on('data', async (_lsn: string, msg: Pgoutput.Message) => {
      this.onMessage(msg);
      await this.room();
    });
    service.on('heartbeat', (_lsn: string, _ts: number, respond: boolean) => {
      if (respond) this.sendStatus();
    });
    service.on('error', (err: Error) => this.fail(toJunctionError(err, `PostgreSQL replication of slot ${this.slot}`)));
    service.subscribe(plugin, this.slot).then(
      () =>
        this.fail(new JunctionError(ErrorCode.CONNECTION_FAILED, `the replication stream of slot ${this.slot} ended`, { retryable: true })),
      (err: unknown) => this.fail(toJunctionError(err, `PostgreSQL replication of slot ${this.slot}`)),
    );
    this.statusTimer = setInterval(() => this.sendStatus(), this.config.statusIntervalMs);
  }

  /** Reports the stored LSN as written / flushed / applied (the library adds 1 to what it is given). */
  private sendStatus(): void {
    if (this.confirmed <= 0n || !this.service) return;
    void this.service.acknowledge(formatLsn(this.confirmed - 1n)).catch(() => undefined);
  }

  private onMessage(msg: Pgoutput.Message): void {
    switch (msg.tag) {
      case 'begin': {
        const commitLsn = formatLsn(parseLsn(msg.commitLsn ?? '0/0'));
        const commitTime = new Date(Number(msg.commitTime as unknown as bigint) / 1000).toISOString();
        this.txn = { commitLsn, commitTime, xid: msg.xid, n: 0, skip: false };
        return;
      }
      case 'commit': {
        const end = formatLsn(parseLsn(msg.commitEndLsn ?? '0/0'));
        this.m.transactions.inc();
        // A transaction the stored position already covers (the slot's confirmation lagged behind the station).
        if (this.stored && parseLsn(end) <= parseLsn(this.stored.lsn)) this.m.skipped.inc();
        this.txn = undefined;
        this.push({ mark: { lsn: end, ...(this.snapshotState() ? { snapshot: 'done' as const } : {}) } });
        return;
      }
      case 'insert':
        return this.change('insert', msg.relation, null, msg.new);
      case 'update':
        return this.change('update', msg.relation, msg.old ?? msg.key, msg.new);
      case 'delete':
        return this.change('delete', msg.relation, msg.old ?? msg.key, null);
      case 'truncate':
        for (const r of msg.relations) this.change('truncate', r, null, null);
        return;
      default:
        return;
    }
  }

  private change(
    op: ChangeEvent['op'],
    rel: Pgoutput.MessageRelation,
    before: Record<string, unknown> | null,
    after: Record<string, unknown> | null,
  ): void {
    const t = this.txn;
    if (!t) return;
    const n = t.n++;
    // Skipped when the stored position covers this transaction: its commit LSN is below the stored end LSN.
    if (this.stored && parseLsn(t.commitLsn) < parseLsn(this.stored.lsn)) return;
    const event: ChangeEvent = {
      op,
      schema: rel.schema,
      table: rel.name,
      before: plainRow(before),
      after: plainRow(after),
      lsn: t.commitLsn,
      commitTime: t.commitTime,
      xid: t.xid,
    };
    const keyRow = event.after ?? event.before;
    const cols = this.primaryKeys.get(rel.relationOid) ?? (rel.replicaIdentity === 'full' ? [] : rel.keyColumns);
    const key = keyRow && cols.length > 0 ? JSON.stringify(cols.map((k) => keyRow[k] ?? null)) : undefined;
    this.push({ message: this.message(event, `${this.slot}:${t.commitLsn}:${n}`, key) });
  }

  private message(event: ChangeEvent, msgId: string, key: string | undefined): SourceMessage {
    this.m.events.inc();
    return {
      value: Buffer.from(JSON.stringify(event)),
      ...(key === undefined ? {} : { key: `${event.schema}.${event.table}:${key}` }),
      headers: { 'pg-table': `${event.schema}.${event.table}`, 'pg-op': event.op, 'pg-lsn': event.lsn },
      msgId,
    };
  }

  private push(item: Item, mark?: CdcPosition): void {
    this.queue.push(item);
    if (mark) this.queue.push({ mark });
    this.wake?.();
  }

  /** Waits while the queue is full (the replication stream or the snapshot reader pauses meanwhile). */
  private async room(): Promise<void> {
    while (!this.closed && this.queue.length >= this.config.maxBuffered) await new Promise<void>((r) => (this.drained = r));
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }

  private messagesQueued(): number {
    let n = 0;
    for (const i of this.queue) if (i.message) n++;
    return n;
  }

  async *read(signal: AbortSignal): AsyncIterable<SourceBatch<CdcPosition>> {
    while (!signal.aborted && !this.closed) {
      if (this.fatal) throw this.fatal;
      if (this.queue.length === 0) {
        await this.sleep(1000, signal);
        continue;
      }
      const deadline = Date.now() + this.config.maxLatencyMs;
      while (this.messagesQueued() < this.config.maxMessages && !signal.aborted && !this.closed && !this.fatal && Date.now() < deadline)
        await this.sleep(deadline - Date.now(), signal);
      if (signal.aborted || this.closed) return;
      const messages: SourceMessage[] = [];
      let mark: CdcPosition | undefined;
      let taken = 0;
      for (const item of this.queue) {
        if (item.message) {
          if (messages.length >= this.config.maxMessages) break;
          messages.push(item.message);
        }
        if (item.mark) mark = item.mark;
        taken++;
      }
      this.queue.splice(0, taken);
      if (this.queue.length < this.config.maxBuffered) {
        const d = this.drained;
        this.drained = undefined;
        d?.();
      }
      if (mark && (parseLsn(mark.lsn) > parseLsn(this.lastMark.lsn) || mark.snapshot !== this.lastMark.snapshot)) this.lastMark = mark;
      if (messages.length === 0 && !mark) continue;
      yield { messages, position: this.lastMark };
    }
  }

  /** The station stored these batches: the slot may be confirmed up to their newest transaction end. */
  async commit(positions: CdcPosition[]): Promise<void> {
    for (const p of positions) {
      const lsn = parseLsn(p.lsn);
      // A snapshot still running has nothing to confirm yet (the slot starts at its consistent point anyway).
      if (p.snapshot === 'running') continue;
      if (lsn > this.confirmed) this.confirmed = lsn;
    }
    this.sendStatus();
  }

  async checkConnection(): Promise<void> {
    const c = new pg.Client(this.clientConfig());
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SELECT 1');
    } catch (err) {
      throw toJunctionError(err, `cannot reach PostgreSQL at ${this.config.host}:${this.config.port}: ${describe(err)}`);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** Stops streaming (the slot stays, confirmed up to what was stored). Idempotent; never throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.wake?.();
    this.drained?.();
    const s = this.service;
    this.service = undefined;
    if (s) {
      // A last status with what was stored, asking for an answer: once the server answered it has read
      // the status (replies are processed in order), so the slot is confirmed before the connection goes.
      if (this.confirmed > 0n) {
        const answered = new Promise<void>((r) => {
          s.once('heartbeat', () => r());
          setTimeout(r, 2000);
        });
        const sent = await s.acknowledge(formatLsn(this.confirmed - 1n), true).catch(() => false);
        if (sent) await answered;
      }
      await s.destroy().catch(() => undefined);
    }
  }
}
