/**
 * A local Snowflake for tests with the real snowflake-sdk: an HTTP server on 127.0.0.1 (port 0)
 * speaking the REST subset the driver uses — login-request, query-request (with binds), token-request
 * (session renewal), heartbeat, session delete — over the in-memory typed store of
 * ../bigquery/mini-sql.ts with Snowflake's types and error texts (NUMBER, VARCHAR, VARIANT,
 * TIMESTAMP_NTZ…; "Numeric value 'x' is not recognized", code 100038).
 *
 * Databases and schemas: `createSchema(db, schema)` (DB.PUBLIC exists); each schema is its own store,
 * and a statement naming a missing database or schema is refused as Snowflake does (002003, SQLSTATE
 * 02000, "Database 'X' does not exist or not authorized.").
 *
 * Faults: `fail(status, times)` answers the next N query-requests with an HTTP status (the driver
 * retries 5xx / 429 on its own, with backoff); `slow(ms)`; `expireSession()` (next query → 390112,
 * the driver renews its session token); `expireSession({ master: true })` (the master token too: the
 * renewal is refused with 390114, a new login is needed); `dropAfterCommit()` (the next INSERT
 * applies, the socket is destroyed without an answer — the driver then re-sends the same request).
 * Late writes: `holdWrites()` holds every INSERT from then on (received, not run) until its `release()`
 * runs them in order and leaves their connections silent (see ../hold.ts).
 * Table schemas: CREATE TABLE / ALTER TABLE … ADD COLUMN keep each column's type; an INSERT naming a column
 * the table lacks is refused ("invalid identifier"), a value that does not convert is refused in Snowflake's
 * words; `DESCRIBE TABLE` answers the columns as Snowflake shows them (VARCHAR(16777216), NUMBER(38,0),
 * TIMESTAMP_TZ(9), BINARY(8388608)…).
 * Users: `users` map of user → password (390100 otherwise). `statements` logs every SQL text run,
 * `bindBytes` the size of each one's largest text bind (an INSERT's JSON bind).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { MiniSql, SqlError, type Cell, type Dialect, type Kind } from '../bigquery/mini-sql.js';
import { Holds, type HeldWrites } from '../hold.js';

const KINDS: Record<string, Kind> = {
  NUMBER: 'int',
  INT: 'int',
  INTEGER: 'int',
  BIGINT: 'int',
  FLOAT: 'float',
  DOUBLE: 'float',
  REAL: 'float',
  VARCHAR: 'string',
  STRING: 'string',
  TEXT: 'string',
  BOOLEAN: 'bool',
  TIMESTAMP_NTZ: 'timestamp',
  TIMESTAMP: 'timestamp',
  TIMESTAMP_TZ: 'timestamp',
  TIMESTAMP_LTZ: 'timestamp',
  DATE: 'timestamp',
  BINARY: 'string',
  VARIANT: 'json',
  OBJECT: 'json',
  ARRAY: 'json',
};

/** A column type as Snowflake's DESCRIBE TABLE shows it: synonyms resolved, default lengths and precisions spelt out. */
export function describedType(type: string): string {
  const t = type.toUpperCase().replace(/\s+/g, '');
  const base = t.replace(/\(.*\)/, '');
  if (['VARCHAR', 'STRING', 'TEXT'].includes(base)) return t.includes('(') ? t.replace(base, 'VARCHAR') : 'VARCHAR(16777216)';
  if (['NUMBER', 'INT', 'INTEGER', 'BIGINT', 'DECIMAL', 'NUMERIC'].includes(base))
    return t.includes('(') && base === 'NUMBER' ? t : 'NUMBER(38,0)';
  if (['FLOAT', 'DOUBLE', 'REAL', 'DOUBLEPRECISION'].includes(base)) return 'FLOAT';
  if (base === 'TIMESTAMP') return 'TIMESTAMP_NTZ(9)';
  if (base.startsWith('TIMESTAMP_')) return t.includes('(') ? t : `${base}(9)`;
  if (base === 'BINARY') return t.includes('(') ? t : 'BINARY(8388608)';
  return t;
}
const dialect: Dialect = {
  kindOf: (t) => KINDS[t.toUpperCase()],
  conversionError: (v, c) => {
    const shown = typeof v === 'object' ? JSON.stringify(v) : String(v);
    if (c.kind === 'int' || c.kind === 'float') return `Numeric value '${shown}' is not recognized`;
    if (c.kind === 'bool') return `Boolean value '${shown}' is not recognized`;
    if (c.kind === 'timestamp') return `Timestamp '${shown}' is not recognized`;
    return `Failed to cast variant value ${shown} to ${c.type}`;
  },
  foldIdentifier: (n) => n.toUpperCase(),
};

export class FakeSnowflake {
  /** Stores by `DATABASE.SCHEMA` (upper case). */
  readonly schemas = new Map<string, MiniSql>([['DB.PUBLIC', new MiniSql(dialect)]]);
  readonly statements: string[] = [];
  /** UTF-8 bytes of each statement's largest text bind (0 without one), beside `statements`. */
  readonly bindBytes: number[] = [];
  readonly users = new Map<string, string>([['junction', 'secret']]);
  private server!: Server;
  private tokens = new Set<string>();
  private masters = new Set<string>();
  private failures: number[] = [];
  private delayMs = 0;
  private expire = 0;
  private dropNext = 0;
  readonly counts: Record<string, number> = {};
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
  /** The store of DB.PUBLIC. */
  get db(): MiniSql {
    return this.schemas.get('DB.PUBLIC') as MiniSql;
  }
  createSchema(database: string, schema: string): MiniSql {
    const key = `${database}.${schema}`.toUpperCase();
    let s = this.schemas.get(key);
    if (!s) this.schemas.set(key, (s = new MiniSql(dialect)));
    return s;
  }
  fail(status: number, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(status);
  }
  slow(ms: number): void {
    this.delayMs = ms;
  }
  expireSession(opts: { master?: boolean } = {}): void {
    this.expire++;
    if (opts.master) this.masters.clear();
  }
  dropAfterCommit(): void {
    this.dropNext++;
  }
  heal(): void {
    this.failures = [];
    this.delayMs = 0;
    this.expire = 0;
    this.dropNext = 0;
  }
  private readonly holds = new Holds();
  /** Holds every INSERT from now on until `stop()`, applied at `release()` (a late write: see ../hold.ts). */
  holdWrites(): HeldWrites {
    return this.holds.start();
  }

  private send(res: ServerResponse, body: unknown, status = 200): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }
  private ok(res: ServerResponse, data: unknown): void {
    this.send(res, { data, code: null, message: null, success: true });
  }
  private err(res: ServerResponse, code: string, message: string, data: Record<string, unknown> = {}): void {
    this.send(res, { data: { ...data, errorCode: code }, code, message, success: false });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let buf = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip' && buf.length > 0) buf = gunzipSync(buf);
    const body = buf.length ? (JSON.parse(buf.toString('utf8')) as Record<string, unknown>) : {};
    const url = new URL(req.url ?? '/', 'http://x');
    const op = url.pathname;
    this.counts[op] = (this.counts[op] ?? 0) + 1;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const token = /Snowflake Token="([^"]+)"/.exec(String(req.headers.authorization ?? ''))?.[1];
    if (op === '/session/v1/login-request') {
      const d = body.data as { LOGIN_NAME?: string; PASSWORD?: string };
      if (this.users.get(d.LOGIN_NAME ?? '') !== d.PASSWORD)
        return this.err(res, '390100', 'Incorrect username or password was specified.');
      return this.ok(res, this.newSession());
    }
    if (op === '/session/token-request') {
      const master = token;
      if (!master || !this.masters.has(master))
        return this.err(res, '390114', 'Authentication token has expired.  The user must authenticate again.');
      return this.ok(res, { sessionToken: this.issue(), validityInSecondsST: 3600, masterToken: master, validityInSecondsMT: 14400 });
    }
    if (op === '/session' && url.searchParams.get('delete') === 'true') return this.ok(res, null);
    if (op === '/session/heartbeat') return this.ok(res, {});
    if (op === '/queries/v1/query-request') {
      if (!token || !this.tokens.has(token)) return this.err(res, '390112', 'Your session has expired. Please login again.');
      if (this.expire > 0) {
        this.expire--;
        this.tokens.delete(token);
        return this.err(res, '390112', 'Your session has expired. Please login again.');
      }
      const status = this.failures.shift();
      if (status !== undefined) {
        res.writeHead(status);
        res.end('Service Unavailable');
        return;
      }
      if (this.holds.holding && /^\s*INSERT\b/i.test(String(body.sqlText ?? ''))) {
        const applied = await this.holds.hold();
        // Its writer is gone: the statement runs, the answer goes nowhere.
        this.query(req, silent(), body, url);
        applied();
        return;
      }
      return this.query(req, res, body, url);
    }
    return this.send(res, { message: 'not found' }, 404);
  }

  private issue(): string {
    const t = `tok-${randomUUID()}`;
    this.tokens.add(t);
    return t;
  }
  private newSession(): unknown {
    const masterToken = `master-${randomUUID()}`;
    this.masters.add(masterToken);
    return {
      token: this.issue(),
      masterToken,
      validityInSeconds: 3600,
      masterValidityInSeconds: 14400,
      sessionId: Date.now(),
      parameters: [],
      sessionInfo: { databaseName: 'DB', schemaName: 'PUBLIC', warehouseName: 'WH', roleName: 'R' },
    };
  }

  /** The store a statement works on: its qualified names' database and schema, else the session's. */
  private storeOf(sql: string): MiniSql | { code: string; message: string } {
    const ident = '(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))';
    const m = new RegExp(`${ident}\\.${ident}\\.${ident}`).exec(sql);
    const db = m ? (m[1] ?? m[2]?.toUpperCase() ?? '') : 'DB';
    const schema = m ? (m[3] ?? m[4]?.toUpperCase() ?? '') : 'PUBLIC';
    if (![...this.schemas.keys()].some((k) => k.startsWith(`${db}.`)))
      return { code: '002003', message: `SQL compilation error:\nDatabase '${db}' does not exist or not authorized.` };
    const store = this.schemas.get(`${db}.${schema}`);
    if (!store) return { code: '002003', message: `SQL compilation error:\nSchema '${db}.${schema}' does not exist or not authorized.` };
    return store;
  }

  private query(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>, _url: URL): void {
    const sql = String(body.sqlText ?? '');
    this.statements.push(sql);
    const store = this.storeOf(sql);
    if (!(store instanceof MiniSql))
      return this.err(res, store.code, store.message, { sqlState: '02000', queryId: randomUUID(), type: 'COMPILATION' });
    const describe = /^\s*DESC(?:RIBE)?\s+TABLE\s+(.+?)\s*;?\s*$/i.exec(sql);
    if (describe) {
      // DESCRIBE TABLE: one row per column — name, type (as Snowflake shows it), kind, null?, and the rest empty.
      const name = /(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))\s*$/.exec(describe[1]!);
      const t = store.table(name?.[1] ?? name?.[2]?.toUpperCase() ?? '');
      if (!t)
        return this.err(res, '002003', `SQL compilation error:\nTable '${describe[1]}' does not exist or not authorized.`, {
          sqlState: '42S02',
          queryId: randomUUID(),
          type: 'COMPILATION',
        });
      const names = [
        'name',
        'type',
        'kind',
        'null?',
        'default',
        'primary key',
        'unique key',
        'check',
        'expression',
        'comment',
        'policy name',
        'privacy domain',
      ];
      return this.ok(res, {
        queryId: randomUUID(),
        statementTypeId: 4096,
        queryResultFormat: 'json',
        rowtype: names.map((n) => ({
          name: n,
          type: 'text',
          nullable: true,
          scale: null,
          precision: null,
          length: 16777216,
          byteLength: 16777216,
        })),
        rowset: t.columns.map((c) => [
          c.name,
          describedType(c.type),
          'COLUMN',
          c.notNull ? 'N' : 'Y',
          null,
          'N',
          'N',
          null,
          null,
          null,
          null,
          null,
        ]),
        total: t.columns.length,
        returned: t.columns.length,
        parameters: [],
      });
    }
    const bindings = (body.bindings ?? {}) as Record<string, { type: string; value: unknown }>;
    const positional = Object.keys(bindings)
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => bindings[k]?.value);
    this.bindBytes.push(positional.reduce<number>((n, v) => (typeof v === 'string' ? Math.max(n, Buffer.byteLength(v)) : n), 0));
    const queryId = randomUUID();
    try {
      // Array binds (one array per column) run the statement once per row set, atomically.
      let r;
      if (positional.some(Array.isArray)) {
        const n = (positional.find(Array.isArray) as unknown[]).length;
        const snapshot = store.tables.get(/INTO\s+"?([A-Za-z0-9_]+)"?/i.exec(sql)?.[1]?.toUpperCase() ?? '')?.rows.length;
        let inserted = 0;
        try {
          for (let i = 0; i < n; i++)
            inserted += store.run(sql, { positional: positional.map((p) => (Array.isArray(p) ? p[i] : p)), named: {} }).inserted ?? 0;
        } catch (e) {
          const t = store.tables.get(/INTO\s+"?([A-Za-z0-9_]+)"?/i.exec(sql)?.[1]?.toUpperCase() ?? '');
          if (t && snapshot !== undefined) t.rows.length = snapshot;
          throw e;
        }
        r = { columns: [], rows: [], inserted, statement: 'insert' as const };
      } else {
        r = store.run(sql, { positional, named: {} });
      }
      if (r.statement === 'insert' && this.dropNext > 0) {
        this.dropNext--;
        req.socket.destroy();
        return;
      }
      if (r.statement === 'select') {
        const types: Record<Kind, string> = {
          int: 'fixed',
          float: 'real',
          string: 'text',
          bool: 'boolean',
          timestamp: 'timestamp_ntz',
          json: 'variant',
        };
        const fmt = (c: Cell, kind: Kind): string | null => {
          if (c === null) return null;
          if (typeof c === 'object') return JSON.stringify(c.json);
          if (kind === 'timestamp') return ((c as number) / 1000).toFixed(9);
          if (kind === 'bool') return c ? '1' : '0';
          return String(c);
        };
        return this.ok(res, {
          queryId,
          statementTypeId: 4096,
          queryResultFormat: 'json',
          rowtype: r.columns.map((c) => ({
            name: c.name,
            type: types[c.kind],
            nullable: true,
            scale: c.kind === 'timestamp' ? 9 : 0,
            precision: c.kind === 'int' ? 38 : null,
            length: null,
            byteLength: null,
          })),
          rowset: r.rows.map((row) => row.map((c, i) => fmt(c, (r.columns[i] as { kind: Kind }).kind))),
          total: r.rows.length,
          returned: r.rows.length,
          parameters: [],
        });
      }
      const isInsert = r.statement === 'insert';
      if (r.statement === 'update') {
        return this.ok(res, {
          queryId,
          statementTypeId: 0x3200,
          queryResultFormat: 'json',
          rowtype: [
            { name: 'number of rows updated', type: 'fixed', nullable: false, scale: 0, precision: 19 },
            { name: 'number of multi-joined rows updated', type: 'fixed', nullable: false, scale: 0, precision: 19 },
          ],
          rowset: [[String(r.inserted ?? 0), '0']],
          total: 1,
          returned: 1,
          parameters: [],
        });
      }
      return this.ok(res, {
        queryId,
        statementTypeId: isInsert ? 12544 : r.statement === 'ddl' ? 24576 : 0x3000,
        queryResultFormat: 'json',
        rowtype: [
          {
            name: isInsert ? 'number of rows inserted' : 'status',
            type: isInsert ? 'fixed' : 'text',
            nullable: false,
            scale: 0,
            precision: 19,
          },
        ],
        rowset: [[isInsert ? String(r.inserted ?? 0) : 'Statement executed successfully.']],
        total: 1,
        returned: 1,
        parameters: [],
      });
    } catch (e) {
      if (e instanceof SqlError) {
        const [code, sqlState] =
          e.kind === 'conversion'
            ? ['100038', '22018']
            : e.kind === 'not-found'
              ? ['002003', '42S02']
              : e.kind === 'constraint'
                ? ['100072', '22000']
                : e.kind === 'exists'
                  ? ['002002', '42710']
                  : ['001003', '42000'];
        return this.err(res, code as string, e.message, { sqlState, queryId, type: 'COMPILATION' });
      }
      return this.err(res, '000603', `SQL execution internal error: ${(e as Error).message}`, { sqlState: 'XX000', queryId });
    }
  }
}

/** A response that goes nowhere (the statement's client is dead). */
function silent(): ServerResponse {
  return { writeHead: () => undefined, end: () => undefined, setHeader: () => undefined } as unknown as ServerResponse;
}

export async function startFakeSnowflake(): Promise<FakeSnowflake> {
  return new FakeSnowflake().start();
}
