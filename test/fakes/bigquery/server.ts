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
 * Client: `new BigQuery({ projectId, apiEndpoint: fake.url, authClient })`; a bearer token is
 * required when `token` is set (401 otherwise).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { MiniSql, SqlError, type Cell, type Column, type Dialect, type Kind } from './mini-sql.js';
import { Holds, type HeldWrites } from '../hold.js';

const KINDS: Record<string, Kind> = {
  INT64: 'int', INTEGER: 'int', FLOAT64: 'float', FLOAT: 'float', NUMERIC: 'float', BIGNUMERIC: 'float',
  STRING: 'string', BOOL: 'bool', BOOLEAN: 'bool', TIMESTAMP: 'timestamp', DATETIME: 'timestamp', JSON: 'json',
};

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

interface Fault { op: Op; status: number; reason: string; remaining: number }

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
    this.faults.push({ op: opts.op ?? 'any', status, reason: opts.reason ?? (status === 429 ? 'rateLimitExceeded' : status >= 500 ? 'backendError' : status === 401 ? 'authError' : 'accessDenied'), remaining: opts.times ?? 1 });
  }
  slow(ms: number): void { this.delayMs = ms; }
  dropAfterCommit(times = 1): void { this.dropNext += times; }
  heal(): void { this.faults = []; this.delayMs = 0; this.dropNext = 0; }
  private readonly holds = new Holds();
  /** Holds every insertAll from now on until `stop()`, applied at `release()` (a late write: see ../hold.ts). */
  holdWrites(): HeldWrites { return this.holds.start(); }

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
      return this.error(res, 401, 'authError', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
    }
    const fault = this.faults.find((f) => f.remaining > 0 && (f.op === 'any' || f.op === op));
    if (fault) {
      fault.remaining--;
      const msg = fault.status >= 500 ? 'Error encountered during execution. Retrying may solve the problem.' : fault.status === 429 ? 'Exceeded rate limits: too many api requests per user per method for this user_method.' : 'Access Denied: the caller does not have permission';
      return this.error(res, fault.status, fault.reason, msg);
    }
    let body: Record<string, unknown> = {};
    try { body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {}; } catch { return this.error(res, 400, 'parseError', 'Parse error'); }
    try {
      if (op === 'insertAll' && m && this.holds.holding) {
        const [, project, dataset, table] = m as unknown as [string, string, string, string];
        const applied = await this.holds.hold();
        // Its writer is gone: the rows land, the answer goes nowhere.
        try { this.insertAll(req, silent(), project, dataset, table, body); } finally { applied(); }
        return;
      }
      if (op === 'insertAll' && m) return this.insertAll(req, res, m[1] as string, m[2] as string, m[3] as string, body);
      if ((m = /^\/projects\/([^/]+)\/datasets\/([^/]+)$/.exec(path)) && req.method === 'GET') {
        if (!this.dataset(m[1] as string, m[2] as string)) return this.error(res, 404, 'notFound', `Not found: Dataset ${m[1]}:${m[2]}`);
        return this.send(res, 200, { kind: 'bigquery#dataset', id: `${m[1]}:${m[2]}`, datasetReference: { projectId: m[1], datasetId: m[2] } });
      }
      if ((m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)$/.exec(path)) && req.method === 'GET') {
        const d = this.dataset(m[1] as string, m[2] as string);
        if (!d) return this.error(res, 404, 'notFound', `Not found: Dataset ${m[1]}:${m[2]}`);
        const t = d.table(m[3] as string);
        if (!t) return this.error(res, 404, 'notFound', `Not found: Table ${m[1]}:${m[2]}.${m[3]}`);
        return this.send(res, 200, this.tableResource(m[1] as string, m[2] as string, t.name, t.columns));
      }
      if ((m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables$/.exec(path)) && req.method === 'POST') {
        const d = this.dataset(m[1] as string, m[2] as string);
        if (!d) return this.error(res, 404, 'notFound', `Not found: Dataset ${m[1]}:${m[2]}`);
        const ref = body.tableReference as { tableId: string };
        if (d.table(ref.tableId)) return this.error(res, 409, 'duplicate', `Already Exists: Table ${m[1]}:${m[2]}.${ref.tableId}`);
        const fields = ((body.schema as { fields?: { name: string; type: string; mode?: string }[] })?.fields ?? []);
        for (const f of fields) if (!KINDS[f.type.toUpperCase()]) return this.error(res, 400, 'invalid', `Invalid field type ${f.type}`);
        const t = d.createTable(ref.tableId, fields.map((f) => ({ name: f.name, type: f.type.toUpperCase(), notNull: f.mode === 'REQUIRED' })));
        return this.send(res, 200, this.tableResource(m[1] as string, m[2] as string, t.name, t.columns));
      }
      if ((m = /^\/projects\/([^/]+)\/queries$/.exec(path)) && req.method === 'POST') return this.send(res, 200, this.query(m[1] as string, body));
      if ((m = /^\/projects\/([^/]+)\/jobs$/.exec(path)) && req.method === 'POST') {
        const cfg = (body.configuration as { query: Record<string, unknown> }).query;
        const result = this.query(m[1] as string, { ...cfg, query: cfg.query, location: (body.jobReference as { location?: string })?.location });
        const jobId = (body.jobReference as { jobId?: string })?.jobId ?? result.jobReference.jobId;
        this.jobs.set(jobId, result);
        return this.send(res, 200, { kind: 'bigquery#job', id: `${m[1]}:${jobId}`, jobReference: { projectId: m[1], jobId }, status: { state: 'DONE' }, configuration: body.configuration, statistics: {} });
      }
      if ((m = /^\/projects\/([^/]+)\/jobs\/([^/]+)$/.exec(path)) && req.method === 'GET') {
        return this.send(res, 200, { kind: 'bigquery#job', jobReference: { projectId: m[1], jobId: m[2] }, status: { state: 'DONE' }, statistics: {} });
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
    return {
      kind: 'bigquery#table', id: `${project}:${dataset}.${table}`,
      tableReference: { projectId: project, datasetId: dataset, tableId: table },
      schema: { fields: columns.map((c) => ({ name: c.name, type: c.type, mode: c.notNull ? 'REQUIRED' : 'NULLABLE' })) },
      numRows: '0', type: 'TABLE',
    };
  }

  private insertAll(req: IncomingMessage, res: ServerResponse, project: string, dataset: string, table: string, body: Record<string, unknown>): void {
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
        try {
          if (col.kind === 'json') {
            if (typeof v !== 'string') throw new SqlError('conversion', `This field: ${col.name} is not a JSON string: ${JSON.stringify(v)}`);
            try { cells[ci] = { json: JSON.parse(v) }; } catch { throw new SqlError('conversion', `Field: ${col.name}; Value: ${v} cannot be parsed as JSON.`); }
          } else {
            cells[ci] = d.convert(typeof v === 'object' && v !== null ? JSON.stringify(v) : v, col);
          }
        } catch (err) {
          errors.push({ reason: 'invalid', location: col.name, debugInfo: '', message: (err as Error).message });
        }
      }
      t.columns.forEach((c, ci) => {
        if (c.notNull && cells[ci] === null && !errors.some((e) => e.location === c.name)) errors.push({ reason: 'invalid', location: c.name, debugInfo: '', message: `Missing required field: ${c.name}.` });
      });
      if (errors.length > 0) insertErrors.push({ index, errors });
      else accepted.push({ cells, ...(r.insertId === undefined ? {} : { insertId: r.insertId }) });
    });
    if (insertErrors.length > 0 && !body.skipInvalidRows) {
      const bad = new Set(insertErrors.map((e) => e.index));
      rows.forEach((_, index) => { if (!bad.has(index)) insertErrors.push({ index, errors: [{ reason: 'stopped', location: '', debugInfo: '', message: '' }] }); });
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
    this.send(res, 200, insertErrors.length > 0 ? { kind: 'bigquery#tableDataInsertAllResponse', insertErrors } : { kind: 'bigquery#tableDataInsertAllResponse' });
  }

  private query(project: string, body: Record<string, unknown>): { jobReference: { projectId: string; jobId: string; location: string }; [k: string]: unknown } {
    const sql = String(body.query ?? '');
    const named: Record<string, unknown> = {};
    for (const p of (body.queryParameters as { name: string; parameterValue: { value: unknown } }[] | undefined) ?? []) named[p.name] = p.parameterValue?.value ?? null;
    const ds = (body.defaultDataset as { datasetId?: string } | undefined)?.datasetId;
    // Table names arrive as `project.dataset.table`: find the dataset that holds the table.
    const fq = /(?:FROM|TABLE|UPDATE|INTO)\s+`([^`]+)`/i.exec(sql)?.[1]?.split('.') ?? [];
    const datasetId = fq.length === 3 ? fq[1] : fq.length === 2 ? fq[0] : ds;
    const projectId = fq.length === 3 ? (fq[0] as string) : project;
    const d = datasetId ? this.dataset(projectId, datasetId) : undefined;
    if (!d) throw new SqlError('not-found', `Not found: Dataset ${projectId}:${datasetId ?? '(none)'}`);
    const r = d.run(sql, { positional: [], named });
    const jobId = `job_${randomUUID().replaceAll('-', '')}`;
    const useInt64 = (body.formatOptions as { useInt64Timestamp?: boolean } | undefined)?.useInt64Timestamp === true;
    const fmt = (c: Cell, kind: Kind): string | null => {
      if (c === null) return null;
      if (typeof c === 'object') return JSON.stringify(c.json);
      if (kind === 'timestamp') return useInt64 ? String(Math.round((c as number) * 1000)) : String((c as number) / 1000);
      return String(c);
    };
    const types: Record<Kind, string> = { int: 'INTEGER', float: 'FLOAT', string: 'STRING', bool: 'BOOLEAN', timestamp: 'TIMESTAMP', json: 'JSON' };
    const result = {
      kind: 'bigquery#queryResponse',
      jobReference: { projectId: project, jobId, location: String(body.location ?? 'US') },
      jobComplete: true,
      schema: { fields: r.columns.map((c) => ({ name: c.name === 'COUNT(*)' ? 'f0_' : c.name, type: types[c.kind], mode: 'NULLABLE' })) },
      rows: r.rows.map((row) => ({ f: row.map((c, i) => ({ v: fmt(c, (r.columns[i] as { kind: Kind }).kind) })) })),
      totalRows: String(r.rows.length),
      cacheHit: false,
    };
    this.jobs.set(jobId, result);
    return result;
  }
}

/** A response that goes nowhere (the request's client is dead). */
function silent(): ServerResponse {
  return { writeHead: () => undefined, end: () => undefined, setHeader: () => undefined } as unknown as ServerResponse;
}

export async function startFakeBigQuery(options: FakeBigQueryOptions = {}): Promise<FakeBigQuery> {
  return new FakeBigQuery(options).start();
}
