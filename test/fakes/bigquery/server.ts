/**
 * A local BigQuery for tests with the real @google-cloud/bigquery: an HTTP server on 127.0.0.1 (port
 * 0) speaking the REST subset the SDK uses — datasets.get, tables.get / insert, tabledata.insertAll
 * (insertId dedup within a window, per-row insertErrors in BigQuery's words, skipInvalidRows) and
 * jobs.query / getQueryResults / jobs.insert over an in-memory typed store (see ../bigquery/mini-sql.ts).
 *
 * Faults: `fail()` answers the next N matching requests with a status (5xx, 429, 401, 403…);
 * `slow(ms)` delays every answer; `dropAfterCommit()` applies the next insertAll, then destroys the
 * socket without answering (the write committed, the client never hears it); `holdWrites()` holds every
 * insertAll from then on until its `release()` applies them in order, answering nobody (a late write,
 * ../hold.ts).
 * Table schemas: tables.insert keeps the whole schema (RECORD fields, REPEATED modes; a RECORD without
 * fields, a bad name or type is refused), tables.get answers it with legacy type names (INTEGER, FLOAT,
 * BOOLEAN, RECORD) as BigQuery does, tables.patch accepts only what BigQuery accepts (new NULLABLE /
 * REPEATED fields at any depth, REQUIRED relaxed to NULLABLE; a removed field, a type or mode change is
 * 400 "Provided Schema does not match Table"), insertAll checks nested values (unknown fields, arrays
 * for repeated fields only, leaf types) and jobs.query answers RECORD / REPEATED cells nested as the API does.
 * Client: `new BigQuery({ projectId, apiEndpoint: fake.url, authClient })`; a bearer token is
 * required when `token` is set (401 otherwise).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { MiniSql, SqlError, type Cell, type Column, type Dialect, type Kind } from './mini-sql.js';
import { Holds, type HeldWrites } from '../hold.js';

const KINDS: Record<string, Kind> = {
  INT64: 'int',
  INTEGER: 'int',
  FLOAT64: 'float',
  FLOAT: 'float',
  NUMERIC: 'float',
  BIGNUMERIC: 'float',
  STRING: 'string',
  BOOL: 'bool',
  BOOLEAN: 'bool',
  TIMESTAMP: 'timestamp',
  DATETIME: 'timestamp',
  JSON: 'json',
  DATE: 'timestamp',
  BYTES: 'string',
  RECORD: 'json',
  STRUCT: 'json',
};

/** A field of a table schema as the REST API carries it (tables.insert / get / patch). */
export interface TableField {
  name: string;
  type: string;
  mode?: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  fields?: TableField[];
}

const LEGACY: Record<string, string> = { INT64: 'INTEGER', FLOAT64: 'FLOAT', BOOL: 'BOOLEAN', STRUCT: 'RECORD' };
/** Types as tables.get answers them (legacy names: INTEGER, FLOAT, BOOLEAN, RECORD). */
const legacy = (t: string): string => LEGACY[t.toUpperCase()] ?? t.toUpperCase();
const isRecord = (f: TableField): boolean => legacy(f.type) === 'RECORD';

/** Why a schema is invalid (as tables.insert answers), or undefined. */
function invalidSchema(fields: TableField[], prefix = ''): string | undefined {
  const seen = new Set<string>();
  for (const f of fields) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,299}$/.test(f.name))
      return `Invalid field name "${prefix}${f.name}". Fields must contain only letters, numbers, and underscores, start with a letter or underscore, and be at most 300 characters long.`;
    if (seen.has(f.name.toLowerCase())) return `Field ${prefix}${f.name} already exists in schema`;
    seen.add(f.name.toLowerCase());
    if (!KINDS[f.type.toUpperCase()]) return `Invalid field type ${f.type}`;
    if (isRecord(f)) {
      if (!f.fields?.length) return `Field ${prefix}${f.name} is type RECORD but has no schema`;
      const sub = invalidSchema(f.fields, `${prefix}${f.name}.`);
      if (sub) return sub;
    }
  }
  return undefined;
}

/**
 * Why `next` cannot replace `prev` (tables.patch / update): BigQuery lets a schema only gain NULLABLE or
 * REPEATED fields (at any depth) and relax REQUIRED to NULLABLE; a field may not go, change type or repetition.
 */
function schemaChangeProblem(table: string, prev: TableField[], next: TableField[], prefix = ''): string | undefined {
  for (const p of prev) {
    const n = next.find((x) => x.name.toLowerCase() === p.name.toLowerCase());
    const path = `${prefix}${p.name}`;
    if (!n) return `Provided Schema does not match Table ${table}. Field ${path} is missing in new schema`;
    if (legacy(n.type) !== legacy(p.type))
      return `Provided Schema does not match Table ${table}. Field ${path} has changed type from ${legacy(p.type)} to ${legacy(n.type)}`;
    const pm = p.mode ?? 'NULLABLE';
    const nm = n.mode ?? 'NULLABLE';
    if (pm !== nm && !(pm === 'REQUIRED' && nm === 'NULLABLE'))
      return `Provided Schema does not match Table ${table}. Field ${path} has changed mode from ${pm} to ${nm}`;
    if (isRecord(p)) {
      const sub = schemaChangeProblem(table, p.fields ?? [], n.fields ?? [], `${path}.`);
      if (sub) return sub;
    }
  }
  for (const n of next) {
    if (!prev.some((x) => x.name.toLowerCase() === n.name.toLowerCase()) && n.mode === 'REQUIRED')
      return `Provided Schema does not match Table ${table}. Cannot add required fields to an existing schema. (field: ${prefix}${n.name})`;
  }
  return undefined;
}

const dialect: Dialect = {
  kindOf: (t) => KINDS[t.toUpperCase()],
  conversionError: (v, c) => {
    const shown = typeof v === 'object' ? JSON.stringify(v) : String(v);
    const what = { int: 'integer', float: 'double', bool: 'boolean', timestamp: 'timestamp', string: 'string', json: 'JSON' }[c.kind];
    return `Cannot convert value to ${what} (bad value): ${shown}`;
  },
  foldIdentifier: (n) => n,
};

export type Op = 'insertAll' | 'query' | 'tables.get' | 'tables.insert' | 'datasets.get' | 'any';

interface Fault {
  op: Op;
  status: number;
  reason: string;
  remaining: number;
}

export interface FakeBigQueryOptions {
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
  /** insertId dedup window (ms). BigQuery's is "at least one minute", best effort. Default 60 000. */
  dedupWindowMs?: number;
}

export class FakeBigQuery {
  readonly projects = new Map<string, Map<string, MiniSql>>(); // project → dataset → tables
  private server!: Server;
  private faults: Fault[] = [];
  private delayMs = 0;
  private dropNext = 0;
  private readonly insertIds = new Map<string, number>();
  private readonly jobs = new Map<string, unknown>();
  /** Each table's schema as created or patched (nested fields, modes), by `project.dataset.table` (lower case). */
  readonly tableSchemas = new Map<string, TableField[]>();
  private schemaKey(project: string, dataset: string, table: string): string {
    return `${project}.${dataset}.${table}`.toLowerCase();
  }
  /** The table's schema: as kept, or made from the store's flat columns (tables the tests made directly). */
  schemaOf(project: string, dataset: string, table: string): TableField[] {
    const kept = this.tableSchemas.get(this.schemaKey(project, dataset, table));
    if (kept) return kept;
    const t = this.dataset(project, dataset)?.table(table);
    return (t?.columns ?? []).map((c) => ({ name: c.name, type: c.type, mode: c.notNull ? 'REQUIRED' : 'NULLABLE' }));
  }
  /** Requests seen, by operation (for "never one request per row" assertions). */
  readonly counts: Record<string, number> = {};
  url = '';

  constructor(readonly options: FakeBigQueryOptions = {}) {}

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

  createDataset(project: string, dataset: string): MiniSql {
    let p = this.projects.get(project);
    if (!p) this.projects.set(project, (p = new Map()));
    let d = p.get(dataset);
    if (!d) p.set(dataset, (d = new MiniSql(dialect)));
    return d;
  }
  dataset(project: string, dataset: string): MiniSql | undefined {
    return this.projects.get(project)?.get(dataset);
  }

  fail(status: number, opts: { op?: Op; times?: number; reason?: string } = {}): void {
    this.faults.push({
      op: opts.op ?? 'any',
      status,
      reason:
        opts.reason ??
        (status === 429 ? 'rateLimitExceeded' : status >= 500 ? 'backendError' : status === 401 ? 'authError' : 'accessDenied'),
      remaining: opts.times ?? 1,
    });
  }
  slow(ms: number): void {
    this.delayMs = ms;
  }
  dropAfterCommit(times = 1): void {
    this.dropNext += times;
  }
  heal(): void {
    this.faults = [];
    this.delayMs = 0;
    this.dropNext = 0;
  }
  private readonly holds = new Holds();
  /** Holds every insertAll from now on until `stop()`, applied at `release()` (a late write: see ../hold.ts). */
  holdWrites(): HeldWrites {
    return this.holds.start();
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify(body));
  }
  private error(res: ServerResponse, status: number, reason: string, message: string): void {
    this.send(res, status, { error: { code: status, message, errors: [{ reason, message, domain: 'global' }], status: reason } });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/^\/bigquery\/v2/, '');
    let m: RegExpExecArray | null;
    let op: Op = 'any';
    if ((m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)\/insertAll$/.exec(path))) op = 'insertAll';
    else if (/^\/projects\/[^/]+\/(queries|jobs)/.test(path)) op = 'query';
    else if (/^\/projects\/[^/]+\/datasets\/[^/]+\/tables\/[^/]+$/.test(path)) op = 'tables.get';
    else if (/^\/projects\/[^/]+\/datasets\/[^/]+\/tables$/.test(path)) op = 'tables.insert';
    else if (/^\/projects\/[^/]+\/datasets\/[^/]+$/.test(path)) op = 'datasets.get';
    this.counts[op] = (this.counts[op] ?? 0) + 1;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.options.token !== undefined && req.headers.authorization !== `Bearer ${this.options.token}`) {
      return this.error(
        res,
        401,
        'authError',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
      );
    }
    const fault = this.faults.find((f) => f.remaining > 0 && (f.op === 'any' || f.op === op));
    if (fault) {
      fault.remaining--;
      const msg =
        fault.status >= 500
          ? 'Error encountered during execution. Retrying may solve the problem.'
          : fault.status === 429
            ? 'Exceeded rate limits: too many api requests per user per method for this user_method.'
            : 'Access Denied: the caller does not have permission';
      return this.error(res, fault.status, fault.reason, msg);
    }
    let body: Record<string, unknown> = {};
    try {
      body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
    } catch {
      return this.error(res, 400, 'parseError', 'Parse error');
    }
    try {
      if (op === 'insertAll' && m && this.holds.holding) {
        const [, project, dataset, table] = m as unknown as [string, string, string, string];
        const applied = await this.holds.hold();
        // Its writer is gone: the rows land, the answer goes nowhere.
        try {
          this.insertAll(req, silent(), project, dataset, table, body);
        } finally {
          applied();
        }
        return;
      }
      if (op === 'insertAll' && m) return this.insertAll(req, res, m[1] as string, m[2] as string, m[3] as string, body);
      if ((m = /^\/projects\/([^/]+)\/datasets\/([^/]+)$/.exec(path)) && req.method === 'GET') {
        if (!this.dataset(m[1] as string, m[2] as string)) return this.error(res, 404, 'notFound', `Not found: Dataset ${m[1]}:${m[2]}`);
        return this.send(res, 200, {
          kind: 'bigquery#dataset',
          id: `${m[1]}:${m[2]}`,
          datasetReference: { projectId: m[1], datasetId: m[2] },
        });
      }
      if ((m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)$/.exec(path)) && req.method === 'GET') {
        const d = this.dataset(m[1] as string, m[2] as string);
        if (!d) return this.error(res, 404, 'notFound', `Not found: Dataset ${m[1]}:${m[2]}`);
        const t = d.table(m[3] as string);
        if (!t) return this.error(res, 404, 'notFound', `Not found: Table ${m[1]}:${m[2]}.${m[3]}`);
        return this.send(res, 200, this.tableResource(m[1] as string, m[2] as string, t.name, t.columns));
      }
      if (
        (m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)$/.exec(path)) &&
        (req.method === 'PATCH' || req.method === 'PUT')
      ) {
        const [project, dataset, table] = [m[1] as string, m[2] as string, m[3] as string];
        const d = this.dataset(project, dataset);
        const t = d?.table(table);
        if (!d || !t) return this.error(res, 404, 'notFound', `Not found: Table ${project}:${dataset}.${table}`);
        const next = (body.schema as { fields?: TableField[] } | undefined)?.fields;
        if (next) {
          const problem =
            invalidSchema(next) ?? schemaChangeProblem(`${project}:${dataset}.${t.name}`, this.schemaOf(project, dataset, t.name), next);
          if (problem) return this.error(res, 400, 'invalid', problem);
          for (const f of next) {
            if (t.columns.some((c) => c.name.toLowerCase() === f.name.toLowerCase())) continue;
            const kind = f.mode === 'REPEATED' ? 'json' : (KINDS[f.type.toUpperCase()] as Kind);
            t.columns.push({ name: f.name, type: f.type.toUpperCase(), kind, notNull: false });
            for (const r of t.rows) r.push(null);
          }
          this.tableSchemas.set(
            this.schemaKey(project, dataset, t.name),
            next.map((f) => ({ ...f, mode: f.mode ?? 'NULLABLE' })),
          );
        }
        return this.send(res, 200, this.tableResource(project, dataset, t.name, t.columns));
      }
      if ((m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables$/.exec(path)) && req.method === 'POST') {
        const d = this.dataset(m[1] as string, m[2] as string);
        if (!d) return this.error(res, 404, 'notFound', `Not found: Dataset ${m[1]}:${m[2]}`);
        const ref = body.tableReference as { tableId: string };
        if (d.table(ref.tableId)) return this.error(res, 409, 'duplicate', `Already Exists: Table ${m[1]}:${m[2]}.${ref.tableId}`);
        const fields = (body.schema as { fields?: TableField[] })?.fields ?? [];
        const invalid = invalidSchema(fields);
        if (invalid) return this.error(res, 400, 'invalid', invalid);
        const t = d.createTable(
          ref.tableId,
          fields.map((f) => ({ name: f.name, type: f.type.toUpperCase(), notNull: f.mode === 'REQUIRED' })),
        );
        // REPEATED columns hold arrays: kept as JSON cells, checked against the field when rows come.
        fields.forEach((f, i) => {
          if (f.mode === 'REPEATED') (t.columns[i] as Column).kind = 'json';
        });
        this.tableSchemas.set(
          this.schemaKey(m[1] as string, m[2] as string, t.name),
          fields.map((f) => ({ ...f, mode: f.mode ?? 'NULLABLE' })),
        );
        return this.send(res, 200, this.tableResource(m[1] as string, m[2] as string, t.name, t.columns));
      }
      if ((m = /^\/projects\/([^/]+)\/queries$/.exec(path)) && req.method === 'POST')
        return this.send(res, 200, this.query(m[1] as string, body));
      if ((m = /^\/projects\/([^/]+)\/jobs$/.exec(path)) && req.method === 'POST') {
        const cfg = (body.configuration as { query: Record<string, unknown> }).query;
        const result = this.query(m[1] as string, {
          ...cfg,
          query: cfg.query,
          location: (body.jobReference as { location?: string })?.location,
        });
        const jobId = (body.jobReference as { jobId?: string })?.jobId ?? result.jobReference.jobId;
        this.jobs.set(jobId, result);
        return this.send(res, 200, {
          kind: 'bigquery#job',
          id: `${m[1]}:${jobId}`,
          jobReference: { projectId: m[1], jobId },
          status: { state: 'DONE' },
          configuration: body.configuration,
          statistics: {},
        });
      }
      if ((m = /^\/projects\/([^/]+)\/jobs\/([^/]+)$/.exec(path)) && req.method === 'GET') {
        return this.send(res, 200, {
          kind: 'bigquery#job',
          jobReference: { projectId: m[1], jobId: m[2] },
          status: { state: 'DONE' },
          statistics: {},
        });
      }
      if ((m = /^\/projects\/([^/]+)\/queries\/([^/]+)$/.exec(path)) && req.method === 'GET') {
        const r = this.jobs.get(m[2] as string);
        if (!r) return this.error(res, 404, 'notFound', `Not found: Job ${m[1]}:${m[2]}`);
        return this.send(res, 200, r);
      }
      return this.error(res, 404, 'notFound', `Not found: ${req.method} ${url.pathname}`);
    } catch (err) {
      if (err instanceof SqlError) {
        const status = err.kind === 'not-found' ? 404 : 400;
        return this.error(res, status, err.kind === 'not-found' ? 'notFound' : 'invalidQuery', err.message);
      }
      return this.error(res, 500, 'internalError', (err as Error).message);
    }
  }

  private tableResource(project: string, dataset: string, table: string, columns: Column[]): unknown {
    const kept = this.tableSchemas.get(this.schemaKey(project, dataset, table));
    const withLegacy = (f: TableField): TableField => ({
      ...f,
      type: legacy(f.type),
      ...(f.fields ? { fields: f.fields.map(withLegacy) } : {}),
    });
    return {
      kind: 'bigquery#table',
      id: `${project}:${dataset}.${table}`,
      tableReference: { projectId: project, datasetId: dataset, tableId: table },
      schema: {
        fields: kept
          ? kept.map(withLegacy)
          : columns.map((c) => ({ name: c.name, type: c.type, mode: c.notNull ? 'REQUIRED' : 'NULLABLE' })),
      },
      numRows: '0',
      type: 'TABLE',
    };
  }

  private insertAll(
    req: IncomingMessage,
    res: ServerResponse,
    project: string,
    dataset: string,
    table: string,
    body: Record<string, unknown>,
  ): void {
    const d = this.dataset(project, dataset);
    if (!d) return this.error(res, 404, 'notFound', `Not found: Dataset ${project}:${dataset}`);
    const t = d.table(table);
    if (!t) return this.error(res, 404, 'notFound', `Not found: Table ${project}:${dataset}.${table}`);
    const rows = (body.rows as { insertId?: string; json: Record<string, unknown> }[]) ?? [];
    const now = Date.now();
    const window = this.options.dedupWindowMs ?? 60_000;
    const insertErrors: { index: number; errors: { reason: string; location: string; debugInfo: string; message: string }[] }[] = [];
    const accepted: { cells: Cell[]; insertId?: string }[] = [];
    rows.forEach((r, index) => {
      const cells: Cell[] = t.columns.map(() => null);
      const errors: { reason: string; location: string; debugInfo: string; message: string }[] = [];
      for (const [k, v] of Object.entries(r.json ?? {})) {
        const ci = t.columns.findIndex((c) => c.name.toLowerCase() === k.toLowerCase());
        if (ci < 0) {
          if (!body.ignoreUnknownValues) errors.push({ reason: 'invalid', location: k, debugInfo: '', message: `no such field: ${k}.` });
          continue;
        }
        const col = t.columns[ci] as Column;
        const def = this.tableSchemas
          .get(this.schemaKey(project, dataset, t.name))
          ?.find((f) => f.name.toLowerCase() === col.name.toLowerCase());
        try {
          if (def && (def.mode === 'REPEATED' || isRecord(def))) {
            cells[ci] = v === null ? null : { json: checkNested(def, v, def.name) };
          } else if (def && legacy(def.type) === 'BYTES') {
            if (v !== null && (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)))
              throw new SqlError('conversion', `Could not decode base64 string to bytes. Field: ${col.name}; Value: ${String(v)}`);
            cells[ci] = v as string | null;
          } else if (col.kind === 'json' && v === null) {
            if (col.notNull) throw new SqlError('constraint', `Missing required field: ${col.name}.`);
          } else if (col.kind === 'json') {
            if (typeof v !== 'string')
              throw new SqlError('conversion', `This field: ${col.name} is not a JSON string: ${JSON.stringify(v)}`);
            try {
              cells[ci] = { json: JSON.parse(v) };
            } catch {
              throw new SqlError('conversion', `Field: ${col.name}; Value: ${v} cannot be parsed as JSON.`);
            }
          } else {
            cells[ci] = d.convert(typeof v === 'object' && v !== null ? JSON.stringify(v) : v, col);
          }
        } catch (err) {
          errors.push({ reason: 'invalid', location: col.name, debugInfo: '', message: (err as Error).message });
        }
      }
      t.columns.forEach((c, ci) => {
        if (c.notNull && cells[ci] === null && !errors.some((e) => e.location === c.name))
          errors.push({ reason: 'invalid', location: c.name, debugInfo: '', message: `Missing required field: ${c.name}.` });
      });
      if (errors.length > 0) insertErrors.push({ index, errors });
      else accepted.push({ cells, ...(r.insertId === undefined ? {} : { insertId: r.insertId }) });
    });
    if (insertErrors.length > 0 && !body.skipInvalidRows) {
      const bad = new Set(insertErrors.map((e) => e.index));
      rows.forEach((_, index) => {
        if (!bad.has(index)) insertErrors.push({ index, errors: [{ reason: 'stopped', location: '', debugInfo: '', message: '' }] });
      });
      insertErrors.sort((a, b) => a.index - b.index);
      return this.send(res, 200, { kind: 'bigquery#tableDataInsertAllResponse', insertErrors });
    }
    for (const a of accepted) {
      if (a.insertId !== undefined) {
        const key = `${project}.${dataset}.${t.name}/${a.insertId}`;
        const seen = this.insertIds.get(key);
        if (seen !== undefined && now - seen < window) continue;
        this.insertIds.set(key, now);
      }
      t.rows.push(a.cells);
    }
    if (this.dropNext > 0) {
      this.dropNext--;
      req.socket.destroy();
      return;
    }
    this.send(
      res,
      200,
      insertErrors.length > 0
        ? { kind: 'bigquery#tableDataInsertAllResponse', insertErrors }
        : { kind: 'bigquery#tableDataInsertAllResponse' },
    );
  }

  private query(
    project: string,
    body: Record<string, unknown>,
  ): { jobReference: { projectId: string; jobId: string; location: string }; [k: string]: unknown } {
    const sql = String(body.query ?? '');
    const named: Record<string, unknown> = {};
    for (const p of (body.queryParameters as { name: string; parameterValue: { value: unknown } }[] | undefined) ?? [])
      named[p.name] = p.parameterValue?.value ?? null;
    const ds = (body.defaultDataset as { datasetId?: string } | undefined)?.datasetId;
    // Table names arrive as `project.dataset.table`: find the dataset that holds the table.
    const fq = /(?:FROM|TABLE|UPDATE|INTO)\s+`([^`]+)`/i.exec(sql)?.[1]?.split('.') ?? [];
    const datasetId = fq.length === 3 ? fq[1] : fq.length === 2 ? fq[0] : ds;
    const projectId = fq.length === 3 ? (fq[0] as string) : project;
    const d = datasetId ? this.dataset(projectId, datasetId) : undefined;
    if (!d) throw new SqlError('not-found', `Not found: Dataset ${projectId}:${datasetId ?? '(none)'}`);
    const r = d.run(sql, { positional: [], named });
    const defs = fq.length >= 2 ? this.tableSchemas.get(this.schemaKey(projectId, datasetId as string, fq.at(-1) as string)) : undefined;
    const jobId = `job_${randomUUID().replaceAll('-', '')}`;
    const useInt64 = (body.formatOptions as { useInt64Timestamp?: boolean } | undefined)?.useInt64Timestamp === true;
    const fmt = (c: Cell, kind: Kind): string | null => {
      if (c === null) return null;
      if (typeof c === 'object') return JSON.stringify(c.json);
      if (kind === 'timestamp') return useInt64 ? String(Math.round((c as number) * 1000)) : String((c as number) / 1000);
      return String(c);
    };
    const types: Record<Kind, string> = {
      int: 'INTEGER',
      float: 'FLOAT',
      string: 'STRING',
      bool: 'BOOLEAN',
      timestamp: 'TIMESTAMP',
      json: 'JSON',
    };
    const result = {
      kind: 'bigquery#queryResponse',
      jobReference: { projectId: project, jobId, location: String(body.location ?? 'US') },
      jobComplete: true,
      schema: {
        fields: r.columns.map((c) => {
          const def = defs?.find((f) => f.name.toLowerCase() === c.name.toLowerCase());
          if (def && (def.mode === 'REPEATED' || isRecord(def))) return { ...def, type: legacy(def.type) };
          if (def && ['DATE', 'BYTES'].includes(legacy(def.type))) return { name: c.name, type: legacy(def.type), mode: 'NULLABLE' };
          return { name: c.name === 'COUNT(*)' ? 'f0_' : c.name, type: types[c.kind], mode: 'NULLABLE' };
        }),
      },
      rows: r.rows.map((row) => ({
        f: row.map((c, i) => {
          const col = r.columns[i] as { name: string; kind: Kind };
          const def = defs?.find((f) => f.name.toLowerCase() === col.name.toLowerCase());
          if (def && (def.mode === 'REPEATED' || isRecord(def)))
            return { v: c === null ? (def.mode === 'REPEATED' ? [] : null) : queryCell(def, (c as { json: unknown }).json) };
          if (def && legacy(def.type) === 'DATE' && typeof c === 'number') return { v: new Date(c).toISOString().slice(0, 10) };
          return { v: fmt(c, col.kind) };
        }),
      })),
      totalRows: String(r.rows.length),
      cacheHit: false,
    };
    this.jobs.set(jobId, result);
    return result;
  }
}

/** A value for a RECORD or REPEATED field, checked as insertAll does (unknown fields, arrays where they belong, leaf types). */
function checkNested(f: TableField, v: unknown, path: string): unknown {
  if (f.mode === 'REPEATED') {
    if (v === null) return [];
    if (!Array.isArray(v)) throw new SqlError('conversion', `Value of repeated field ${path} is not an array.`);
    return v.map((x) => checkNested({ ...f, mode: 'NULLABLE' }, x, path));
  }
  if (v === null || v === undefined) {
    if (f.mode === 'REQUIRED') throw new SqlError('constraint', `Missing required field: ${path}.`);
    return null;
  }
  if (Array.isArray(v)) throw new SqlError('conversion', `Array specified for non-repeated field: ${path}.`);
  if (isRecord(f)) {
    if (typeof v !== 'object') throw new SqlError('conversion', `This field: ${path} is not a record.`);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const sub = f.fields?.find((s) => s.name.toLowerCase() === k.toLowerCase());
      if (!sub) throw new SqlError('conversion', `no such field: ${path}.${k}.`);
      out[sub.name] = checkNested(sub, x, `${path}.${sub.name}`);
    }
    for (const sub of f.fields ?? [])
      if (sub.mode === 'REQUIRED' && out[sub.name] == null)
        throw new SqlError('constraint', `Missing required field: ${path}.${sub.name}.`);
    return out;
  }
  const bad = (): never => {
    throw new SqlError(
      'conversion',
      `Cannot convert value to ${legacy(f.type).toLowerCase()} (bad value): ${typeof v === 'object' ? JSON.stringify(v) : String(v)} (field ${path})`,
    );
  };
  switch (legacy(f.type)) {
    case 'INTEGER':
      return typeof v === 'number' && Number.isInteger(v) ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : bad();
    case 'FLOAT':
    case 'NUMERIC':
    case 'BIGNUMERIC':
      return typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : bad();
    case 'BOOLEAN':
      return typeof v === 'boolean' ? v : v === 'true' || v === 'false' ? v === 'true' : bad();
    case 'STRING':
      return typeof v === 'string' ? v : bad();
    case 'BYTES':
      return typeof v === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(v) ? v : bad();
    case 'TIMESTAMP':
    case 'DATETIME': {
      const ms = typeof v === 'number' ? v * 1000 : typeof v === 'string' ? Date.parse(v) : NaN;
      return Number.isFinite(ms) ? new Date(ms).toISOString() : bad();
    }
    case 'DATE':
      return typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v) ? v : bad();
    case 'JSON':
      if (typeof v !== 'string') return bad();
      try {
        return JSON.parse(v);
      } catch {
        return bad();
      }
    default:
      return v;
  }
}

/** A cell of a RECORD / REPEATED / scalar field as jobs.query answers it: `{v}` with nested `{f:[…]}` rows and `[{v}]` arrays. */
function queryCell(f: TableField, v: unknown): unknown {
  if (f.mode === 'REPEATED') return (Array.isArray(v) ? v : []).map((x) => ({ v: queryCell({ ...f, mode: 'NULLABLE' }, x) }));
  if (v === null || v === undefined) return null;
  if (isRecord(f)) return { f: (f.fields ?? []).map((sub) => ({ v: queryCell(sub, (v as Record<string, unknown>)[sub.name]) })) };
  switch (legacy(f.type)) {
    case 'TIMESTAMP':
      return String(Date.parse(String(v)) / 1000);
    case 'JSON':
      return JSON.stringify(v);
    case 'BOOLEAN':
      return v ? 'true' : 'false';
    default:
      return String(v);
  }
}

/** A response that goes nowhere (the request's client is dead). */
function silent(): ServerResponse {
  return { writeHead: () => undefined, end: () => undefined, setHeader: () => undefined } as unknown as ServerResponse;
}

export async function startFakeBigQuery(options: FakeBigQueryOptions = {}): Promise<FakeBigQuery> {
  return new FakeBigQuery(options).start();
}
