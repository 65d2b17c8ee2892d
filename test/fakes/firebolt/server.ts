/**
 * A local Firebolt for tests with the real firebolt-sdk: an HTTP server on 127.0.0.1 (port 0)
 * speaking the subset of Firebolt's protocol the SDK (1.x, service-account auth) uses, over the
 * in-memory typed store of ../bigquery/mini-sql.ts with Firebolt's types and error texts.
 *
 *   POST /oauth/token                        form client_id / client_secret → {access_token, expires_in}
 *   GET  /web/v3/account/<account>/engineUrl  → {engineUrl: "<url>/system/?account_id=…"} (404: no account)
 *   POST <engine>/query?database=…&output_format=JSON_Compact   the SQL as the raw body
 *        USE DATABASE "d" → header Firebolt-Update-Parameters: database=d
 *        USE ENGINE "e"   → header Firebolt-Update-Endpoint: <url>/engines/e?engine=e
 *        DDL / INSERT     → 200, empty body
 *        SELECT           → {meta:[{name,type}], data:[[…]], rows, statistics}
 *        error            → HTTP 400 {errors:[{severity:"ERROR", code, name, description}]}
 *   A query with a missing or unknown bearer token → 401 (the SDK then fetches a new token once).
 *
 * Databases: `createDatabase(name)` (`db` exists), each its own store; engines: `engines` (`eng`).
 * Identifiers fold to lower case; 'text' literals keep backslashes (standard strings).
 * Faults: `fail(status, times)` for the next N query requests (5xx, 429); `slow(ms)`; `expireTokens()`
 * (every token issued so far is refused with 401); `dropAfterCommit()` (the next INSERT applies, then
 * the socket is destroyed without an answer); `holdWrites()` holds every INSERT from then on until its
 * `release()` runs them in order, answering nobody (a late write, ../hold.ts). Per-row errors come from the store itself: a value that
 * does not cast to its column's type refuses the whole statement, as Firebolt does.
 * Table schemas: CREATE TABLE / ALTER TABLE … ADD COLUMN keep each column's type (TIMESTAMPTZ, DATE, BYTEA,
 * REAL besides the others), an INSERT naming a column the table lacks is refused, and
 * `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '…'`
 * answers them as Firebolt names them ('bigint', 'timestamptz', 'YES' / 'NO').
 * `clients` maps client id → secret. `statements` logs every SQL text run; `counts` requests by kind.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { MiniSql, SqlError, type Cell, type Column, type Dialect, type Kind } from '../bigquery/mini-sql.js';
import { Holds, type HeldWrites } from '../hold.js';

const KINDS: Record<string, Kind> = {
  INT: 'int',
  INTEGER: 'int',
  BIGINT: 'int',
  LONG: 'int',
  DOUBLE: 'float',
  'DOUBLE PRECISION': 'float',
  REAL: 'float',
  FLOAT: 'float',
  TEXT: 'string',
  STRING: 'string',
  VARCHAR: 'string',
  BOOLEAN: 'bool',
  BOOL: 'bool',
  TIMESTAMP: 'timestamp',
  TIMESTAMPNTZ: 'timestamp',
  TIMESTAMPTZ: 'timestamp',
  DATE: 'timestamp',
  BYTEA: 'string',
};

/** A column type as information_schema.columns.data_type (and query results) name it. */
function typeWord(type: string, kind: Kind): string {
  const t = type.toUpperCase().replace(/\s+/g, ' ').trim();
  if (/^(BIGINT|LONG)$/.test(t)) return 'bigint';
  if (/^(INT|INTEGER)$/.test(t)) return 'integer';
  if (/^(REAL|FLOAT)$/.test(t)) return 'real';
  if (t === 'TIMESTAMPTZ') return 'timestamptz';
  if (t === 'DATE') return 'date';
  if (t === 'BYTEA') return 'bytea';
  return TYPE_WORDS[kind];
}
const TYPE_WORDS: Record<Kind, string> = {
  int: 'integer',
  float: 'double precision',
  string: 'text',
  bool: 'boolean',
  timestamp: 'timestamp',
  json: 'text',
};

const dialect: Dialect = {
  kindOf: (t) => KINDS[t.toUpperCase()],
  conversionError: (v, c) => {
    const shown = typeof v === 'object' ? JSON.stringify(v) : String(v);
    const from = typeof v === 'string' ? 'text' : typeof v === 'boolean' ? 'boolean' : typeof v === 'number' ? 'numeric' : 'value';
    return `Unable to cast ${from} '${shown}' to ${TYPE_WORDS[c.kind]} (column '${c.name}')`;
  },
  foldIdentifier: (n) => n.toLowerCase(),
  backslashEscapes: false,
};

/** Firebolt's (Postgres-style) SQLSTATE for each kind of store error. */
const CODES: Record<SqlError['kind'], [string, string]> = {
  conversion: ['22P02', 'InvalidTextRepresentation'],
  constraint: ['23502', 'NotNullViolation'],
  'not-found': ['42P01', 'UndefinedTable'],
  exists: ['42P07', 'DuplicateTable'],
  syntax: ['42601', 'SyntaxError'],
};

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
function timestampText(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}000`;
}

export class FakeFirebolt {
  readonly databases = new Map<string, MiniSql>([['db', new MiniSql(dialect)]]);
  readonly engines = new Set<string>(['eng']);
  readonly accounts = new Set<string>(['acct']);
  readonly clients = new Map<string, string>([['junction-id', 'junction-secret']]);
  readonly statements: string[] = [];
  readonly counts: Record<string, number> = {};
  private server!: Server;
  private tokens = new Set<string>();
  private failures: number[] = [];
  private delayMs = 0;
  private dropNext = 0;
  url = '';

  async start(): Promise<this> {
    this.server = createServer(
      (req, res) =>
        void this.handle(req, res).catch((err: unknown) => {
          if (!res.headersSent) this.send(res, 500, { message: String(err) });
        }),
    );
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
  /** The store of database `db`. */
  get db(): MiniSql {
    return this.databases.get('db') as MiniSql;
  }
  createDatabase(name: string): MiniSql {
    let s = this.databases.get(name.toLowerCase());
    if (!s) this.databases.set(name.toLowerCase(), (s = new MiniSql(dialect)));
    return s;
  }
  fail(status: number, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(status);
  }
  slow(ms: number): void {
    this.delayMs = ms;
  }
  expireTokens(): void {
    this.tokens.clear();
  }
  dropAfterCommit(): void {
    this.dropNext++;
  }
  heal(): void {
    this.failures = [];
    this.delayMs = 0;
    this.dropNext = 0;
  }
  private readonly holds = new Holds();
  /** Holds every INSERT from now on until `stop()`, applied at `release()` (a late write: see ../hold.ts). */
  holdWrites(): HeldWrites {
    return this.holds.start();
  }

  private count(kind: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
  }
  private send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
    if (body === undefined) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }
  private sqlError(res: ServerResponse, code: string, name: string, description: string): void {
    this.send(res, 400, { errors: [{ severity: 'ERROR', code, name, source: 'Planner', description }] });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && url.pathname === '/oauth/token') {
      this.count('token');
      const form = new URLSearchParams(body);
      const id = form.get('client_id') ?? '';
      if (form.get('grant_type') !== 'client_credentials' || this.clients.get(id) !== form.get('client_secret')) {
        return this.send(res, 401, {
          error: 'access_denied',
          error_description: 'Unauthorized',
          message: 'Invalid client_id or client_secret',
        });
      }
      const token = `tok-${randomUUID()}`;
      this.tokens.add(token);
      return this.send(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 3600 });
    }
    const token = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    if (!token || !this.tokens.has(token)) {
      this.count('unauthorized');
      return this.send(res, 401, { message: 'Unauthorized: the access token is missing, invalid or expired' });
    }
    const account = /^\/web\/v3\/account\/([^/]+)\/engineUrl$/.exec(url.pathname)?.[1];
    if (req.method === 'GET' && account !== undefined) {
      this.count('engineUrl');
      if (!this.accounts.has(decodeURIComponent(account))) return this.send(res, 404, { message: `account ${account} not found` });
      return this.send(res, 200, { engineUrl: `${this.url}/system/?account_id=a1` });
    }
    if (req.method === 'POST' && (url.pathname === '/system/query' || url.pathname.startsWith('/engines/'))) {
      this.count('query');
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      const status = this.failures.shift();
      if (status !== undefined) {
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(status === 429 ? 'Too Many Requests' : 'Service Unavailable');
        return;
      }
      if (this.holds.holding && /^\s*INSERT\b/i.test(body)) {
        const applied = await this.holds.hold();
        // Its writer is gone: the statement runs, the answer goes nowhere.
        this.query(req, silent(), body.trim(), url);
        applied();
        return;
      }
      return this.query(req, res, body.trim(), url);
    }
    return this.send(res, 404, { message: 'not found' });
  }

  private query(req: IncomingMessage, res: ServerResponse, sql: string, url: URL): void {
    this.statements.push(sql);
    const use = /^USE\s+(DATABASE|ENGINE)\s+"?([^"]+)"?\s*;?$/i.exec(sql);
    if (use) {
      const [, what, name = ''] = use;
      if (what?.toUpperCase() === 'DATABASE') {
        if (!this.databases.has(name.toLowerCase()))
          return this.sqlError(res, '3D000', 'InvalidCatalogName', `Database '${name}' does not exist or not authorized.`);
        return this.send(res, 200, undefined, { 'Firebolt-Update-Parameters': `database=${name}` });
      }
      if (!this.engines.has(name))
        return this.sqlError(res, '42704', 'UndefinedObject', `Engine '${name}' does not exist or not authorized.`);
      return this.send(res, 200, undefined, {
        'Firebolt-Update-Endpoint': `${this.url}/engines/${encodeURIComponent(name)}?engine=${encodeURIComponent(name)}`,
      });
    }
    if (/^SELECT\s+1\s*;?$/i.test(sql))
      return this.send(res, 200, {
        meta: [{ name: '?column?', type: 'integer' }],
        data: [[1]],
        rows: 1,
        statistics: { elapsed: 0, rows_read: 0, bytes_read: 0 },
      });
    const dbName = url.searchParams.get('database');
    const store = dbName ? this.databases.get(dbName.toLowerCase()) : undefined;
    if (!store)
      return this.sqlError(
        res,
        '3D000',
        'InvalidCatalogName',
        dbName ? `Database '${dbName}' does not exist or not authorized.` : 'No database selected.',
      );
    const info =
      /^SELECT\s+column_name\s*,\s*data_type\s*,\s*is_nullable\s+FROM\s+information_schema\.columns\s+WHERE\s+table_name\s*=\s*'([^']*)'(?:\s+ORDER\s+BY\s+ordinal_position)?\s*;?$/i.exec(
        sql,
      );
    if (info) {
      // information_schema.columns: the table's columns in order, typed as Firebolt names them.
      const t = store.table(info[1]!);
      const data = (t?.columns ?? []).map((c) => [c.name, typeWord(c.type, c.kind), c.notNull ? 'NO' : 'YES']);
      return this.send(res, 200, {
        meta: [
          { name: 'column_name', type: 'text' },
          { name: 'data_type', type: 'text' },
          { name: 'is_nullable', type: 'text' },
        ],
        data,
        rows: data.length,
        statistics: { elapsed: 0, rows_read: data.length, bytes_read: 0 },
      });
    }
    try {
      const r = store.run(sql);
      if (r.statement === 'insert' && this.dropNext > 0) {
        this.dropNext--;
        req.socket.destroy();
        return;
      }
      if (r.statement !== 'select') return this.send(res, 200);
      const table = /FROM\s+"?([A-Za-z0-9_]+)"?/i.exec(sql)?.[1];
      const cols = table ? store.table(table)?.columns : undefined;
      const typeOf = (name: string, kind: Kind, type: string): string => {
        const c: Column | undefined = cols?.find((x) => x.name === name);
        const base = typeWord(c?.type ?? type, kind);
        return c && !c.notNull ? `${base} null` : base;
      };
      const fmt = (c: Cell, kind: Kind, type: string): unknown => {
        if (c === null) return null;
        if (typeof c === 'object') return JSON.stringify(c.json);
        if (kind !== 'timestamp') return c;
        const word = typeWord(type, kind);
        if (word === 'date') return timestampText(c as number).slice(0, 10);
        return word === 'timestamptz' ? `${timestampText(c as number)}+00` : timestampText(c as number);
      };
      return this.send(res, 200, {
        meta: r.columns.map((c) => ({ name: c.name, type: c.name === 'COUNT(*)' ? 'bigint' : typeOf(c.name, c.kind, c.type) })),
        data: r.rows.map((row) =>
          row.map((c, i) => {
            const col = r.columns[i] as { name: string; kind: Kind; type: string };
            return fmt(c, col.kind, cols?.find((x) => x.name === col.name)?.type ?? col.type);
          }),
        ),
        rows: r.rows.length,
        statistics: { elapsed: 0.001, rows_read: r.rows.length, bytes_read: 0 },
      });
    } catch (e) {
      if (e instanceof SqlError) {
        const [code, name] = CODES[e.kind];
        return this.sqlError(res, code, name, e.message);
      }
      return this.sqlError(res, 'XX000', 'InternalError', `internal error: ${(e as Error).message}`);
    }
  }
}

/** A response that goes nowhere (the statement's client is dead). */
function silent(): ServerResponse {
  return { writeHead: () => undefined, end: () => undefined, setHeader: () => undefined } as unknown as ServerResponse;
}
