/**
 * A tiny in-memory SQL engine shared by the BigQuery, Snowflake and Firebolt fakes: typed tables held
 * in memory, and exactly the statement shapes the warehouse sinks and their tests issue. It is not a
 * SQL implementation; it is a store that type-checks like a warehouse, so tests can read back what
 * landed with a query through the vendor SDK.
 *
 * Statements:
 *   CREATE TABLE [IF NOT EXISTS] t (col TYPE[(…)] [NOT NULL], …)
 *   INSERT INTO t (cols) VALUES (expr, …), (…)                      — all rows or none (atomic)
 *   INSERT INTO t (cols) SELECT VALUE[i][::TYPE], … FROM TABLE(FLATTEN(INPUT => PARSE_JSON(expr)))
 *      [WHERE VALUE[i][::TYPE] NOT IN (SELECT col FROM t [WHERE pred AND …])]   — an anti-join
 *   INSERT INTO t (cols) SELECT v.c[::TYPE], … FROM (VALUES (expr, …), …) [AS] v (c, …)
 *      [WHERE v.c[::TYPE] NOT IN (SELECT col FROM t [WHERE pred AND …])]        — an anti-join
 *   UPDATE t SET col = expr[, …] [WHERE pred AND …]
 *   ALTER TABLE t ADD [COLUMN] [IF NOT EXISTS] col TYPE [NULL | NOT NULL]       — rows get NULL
 *   SELECT * | COUNT(*) | col, … FROM t [WHERE pred AND …] [ORDER BY col [ASC|DESC], …] [LIMIT n]
 *      pred: col (= | <> | != | < | <= | > | >=) expr | col BETWEEN expr AND expr | col IS [NOT] NULL
 *            | (pred OR pred …)
 *   BEGIN / COMMIT / ROLLBACK, USE …, SET …, SELECT 1 — accepted, no effect
 * Expressions: 'text' (with '' or, unless the dialect says otherwise, \' escapes), numbers, NULL, TRUE, FALSE, ? and @name parameters,
 * PARSE_JSON(expr). Identifiers: bare (case-insensitive), "quoted", `back.ticked` (last part kept).
 * Scans skip blocks of rows whose min / max rule them out, as the warehouses prune by block metadata
 * (see `scan` below): the cost of a selective query does not grow with the table.
 */

export type Kind = 'int' | 'float' | 'string' | 'bool' | 'timestamp' | 'json';

export interface Column {
  name: string;
  /** The type as written, e.g. NUMBER(38,0), INT64, TEXT. */
  type: string;
  kind: Kind;
  notNull: boolean;
}

/** Stored value: int/float → number, string → string, bool → boolean, timestamp → epoch ms, json → parsed JSON. */
export type Cell = number | string | boolean | null | { json: unknown };

export interface Table {
  name: string;
  columns: Column[];
  rows: Cell[][];
}

/** How a dialect names types and words its conversion errors. */
export interface Dialect {
  kindOf(type: string): Kind | undefined;
  /** The message of a value that does not convert to a column's type. */
  conversionError(value: unknown, column: Column): string;
  /** Case-fold bare identifiers (Snowflake: upper; others: as written, compared case-insensitively). */
  foldIdentifier(name: string): string;
  /**
   * Whether a backslash escapes the next character in a 'string' literal (default true). Firebolt's
   * standard strings keep it literal: only '' escapes a quote there.
   */
  backslashEscapes?: boolean;
}

export class SqlError extends Error {
  constructor(
    readonly kind: 'syntax' | 'not-found' | 'conversion' | 'constraint' | 'exists',
    message: string,
  ) {
    super(message);
  }
}

export interface QueryResult {
  columns: { name: string; kind: Kind; type: string }[];
  rows: Cell[][];
  /** For DML: rows inserted (or updated). */
  inserted?: number;
  statement: 'select' | 'insert' | 'update' | 'ddl' | 'other';
}

type Tok = { t: 'id' | 'qid' | 'str' | 'num' | 'param' | 'sym'; v: string };

function tokenize(sql: string, backslashEscapes = true): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      while (i < sql.length && sql[i] !== '\n') i++;
      continue;
    }
    if (c === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= sql.length) throw new SqlError('syntax', 'unterminated string literal');
        const d = sql[i] as string;
        if (d === '\\' && backslashEscapes) {
          const n = sql[i + 1] ?? '';
          s += n === 'n' ? '\n' : n === 't' ? '\t' : n === '0' ? '\0' : n;
          i += 2;
          continue;
        }
        if (d === "'") {
          if (sql[i + 1] === "'") {
            s += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += d;
        i++;
      }
      out.push({ t: 'str', v: s });
      continue;
    }
    if (c === '"' || c === '`') {
      const end = sql.indexOf(c, i + 1);
      if (end < 0) throw new SqlError('syntax', 'unterminated quoted identifier');
      const full = sql.slice(i + 1, end);
      out.push({ t: 'qid', v: c === '`' ? (full.split('.').pop() as string) : full });
      i = end + 1;
      continue;
    }
    if (
      /[0-9]/.test(c) ||
      (c === '-' && /[0-9]/.test(sql[i + 1] ?? '') && !['num', 'id', 'qid', 'str'].includes(out.at(-1)?.t ?? '') && out.at(-1)?.v !== ')')
    ) {
      const m = /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(sql.slice(i)) as RegExpExecArray;
      out.push({ t: 'num', v: m[0] });
      i += m[0].length;
      continue;
    }
    if (c === '?') {
      out.push({ t: 'param', v: '?' });
      i++;
      continue;
    }
    if (c === '@') {
      const m = /^@([A-Za-z_][A-Za-z0-9_]*)/.exec(sql.slice(i)) as RegExpExecArray;
      out.push({ t: 'param', v: m[1] as string });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*/.exec(sql.slice(i)) as RegExpExecArray;
      out.push({ t: 'id', v: m[0].split('.').pop() as string });
      i += m[0].length;
      continue;
    }
    // A qualified name (db.schema.table): keep only its last part.
    if (c === '.' && (out.at(-1)?.t === 'qid' || out.at(-1)?.t === 'id')) {
      out.pop();
      i++;
      continue;
    }
    const two = sql.slice(i, i + 2);
    if (['>=', '<=', '<>', '!=', '::', '=>'].includes(two)) {
      out.push({ t: 'sym', v: two });
      i += 2;
      continue;
    }
    if ('(),*=<>;[]'.includes(c)) {
      out.push({ t: 'sym', v: c });
      i++;
      continue;
    }
    throw new SqlError('syntax', `syntax error: unexpected '${c}'`);
  }
  return out;
}

type Expr =
  | { e: 'lit'; v: unknown }
  | { e: 'param'; name: string; index: number }
  | { e: 'parse_json'; arg: Expr }
  | { e: 'col'; name: string; cast?: string }
  | { e: 'flat'; index: number; cast?: string };

class Parser {
  private p = 0;
  private paramIndex = 0;
  constructor(
    private readonly toks: Tok[],
    private readonly dialect: Dialect,
  ) {}
  peek(k = 0): Tok | undefined {
    return this.toks[this.p + k];
  }
  isKw(w: string, k = 0): boolean {
    const t = this.peek(k);
    return t?.t === 'id' && t.v.toUpperCase() === w;
  }
  kw(w: string): void {
    if (!this.isKw(w)) throw new SqlError('syntax', `syntax error: expected ${w} near '${this.peek()?.v ?? 'end'}'`);
    this.p++;
  }
  sym(s: string): void {
    if (this.peek()?.v !== s || this.peek()?.t !== 'sym')
      throw new SqlError('syntax', `syntax error: expected '${s}' near '${this.peek()?.v ?? 'end'}'`);
    this.p++;
  }
  isSym(s: string): boolean {
    return this.peek()?.t === 'sym' && this.peek()?.v === s;
  }
  ident(): string {
    const t = this.peek();
    if (!t || (t.t !== 'id' && t.t !== 'qid')) throw new SqlError('syntax', `syntax error: expected an identifier near '${t?.v ?? 'end'}'`);
    this.p++;
    return t.t === 'qid' ? t.v : this.dialect.foldIdentifier(t.v);
  }
  done(): boolean {
    while (this.isSym(';')) this.p++;
    return this.p >= this.toks.length;
  }
  expr(): Expr {
    const t = this.peek();
    if (!t) throw new SqlError('syntax', 'syntax error: unexpected end of statement');
    if (t.t === 'str') {
      this.p++;
      return { e: 'lit', v: t.v };
    }
    if (t.t === 'num') {
      this.p++;
      return { e: 'lit', v: Number(t.v) };
    }
    if (t.t === 'param') {
      this.p++;
      return { e: 'param', name: t.v, index: this.paramIndex++ };
    }
    if (t.t === 'id') {
      const u = t.v.toUpperCase();
      if (u === 'NULL') {
        this.p++;
        return { e: 'lit', v: null };
      }
      if (u === 'TRUE' || u === 'FALSE') {
        this.p++;
        return { e: 'lit', v: u === 'TRUE' };
      }
      if (u === 'PARSE_JSON') {
        this.p++;
        this.sym('(');
        const arg = this.expr();
        this.sym(')');
        return { e: 'parse_json', arg };
      }
      if (u === 'VALUE' && this.peek(1)?.v === '[') {
        this.p += 2;
        const n = Number(this.peek()?.v);
        this.p++;
        this.sym(']');
        let cast: string | undefined;
        if (this.isSym('::')) {
          this.p++;
          cast = this.typeName();
        }
        return { e: 'flat', index: n, ...(cast ? { cast } : {}) };
      }
    }
    const name = this.ident();
    if (this.isSym('::')) {
      this.p++;
      return { e: 'col', name, cast: this.typeName() };
    }
    return { e: 'col', name };
  }
  typeName(): string {
    let s = (this.peek()?.v ?? '').toUpperCase();
    this.p++;
    if (this.isSym('(')) {
      const start = ++this.p;
      while (!this.isSym(')')) this.p++;
      s += `(${this.toks
        .slice(start, this.p)
        .map((x) => x.v)
        .join('')})`;
      this.p++;
    }
    if (this.isKw('PRECISION')) {
      this.p++;
      s += ' PRECISION';
    }
    return s;
  }
}

export interface Params {
  positional: unknown[];
  named: Record<string, unknown>;
}

/** A database: named tables, and the dialect's conversions. */
export class MiniSql {
  readonly tables = new Map<string, Table>();
  constructor(readonly dialect: Dialect) {}

  key(name: string): string {
    return name.toUpperCase();
  }
  table(name: string): Table | undefined {
    return this.tables.get(this.key(name));
  }

  createTable(name: string, columns: Omit<Column, 'kind'>[]): Table {
    const cols = columns.map((c) => {
      const kind = this.dialect.kindOf(
        c.type
          .toUpperCase()
          .replace(/\(.*\)/, '')
          .trim(),
      );
      if (!kind) throw new SqlError('syntax', `unsupported data type '${c.type}'`);
      return { ...c, kind };
    });
    const t: Table = { name, columns: cols, rows: [] };
    this.tables.set(this.key(name), t);
    return t;
  }

  /** Converts a value for a column, or throws a conversion SqlError in the dialect's words. */
  convert(value: unknown, column: Column): Cell {
    if (value === null || value === undefined) {
      if (column.notNull) throw new SqlError('constraint', `NULL result in a non-nullable column '${column.name}'`);
      return null;
    }
    const bad = () => new SqlError('conversion', this.dialect.conversionError(value, column));
    switch (column.kind) {
      case 'int': {
        const n =
          typeof value === 'number'
            ? value
            : typeof value === 'string' && /^\s*-?\d+(\.0*)?\s*$/.test(value)
              ? Number(value)
              : typeof value === 'boolean'
                ? Number(value)
                : NaN;
        if (!Number.isFinite(n) || !Number.isInteger(n)) throw bad();
        return n;
      }
      case 'float': {
        const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
        if (Number.isNaN(n)) throw bad();
        return n;
      }
      case 'bool':
        if (typeof value === 'boolean') return value;
        if (value === 'true' || value === 'TRUE' || value === 1) return true;
        if (value === 'false' || value === 'FALSE' || value === 0) return false;
        throw bad();
      case 'string':
        if (typeof value === 'object') return JSON.stringify(value);
        return String(value);
      case 'timestamp': {
        // A zone as an hour alone ('+00', as Postgres and Firebolt write it) is '+00:00' to Date.parse.
        const text = typeof value === 'string' ? value.replace(/(:\d\d(?:\.\d+)?[+-]\d\d)$/, '$1:00') : value;
        const ms =
          typeof text === 'number'
            ? text
            : typeof text === 'string'
              ? Date.parse(
                  text.includes('T') || text.includes(' ')
                    ? text.replace(' ', 'T').replace(/(\.\d{3})\d+/, '$1') + (/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? '' : 'Z')
                    : text,
                )
              : NaN;
        if (!Number.isFinite(ms)) throw bad();
        return ms;
      }
      case 'json':
        if (typeof value === 'object' && value !== null && 'json' in (value as object)) return value as Cell;
        return { json: value };
    }
  }

  /** Runs one statement. Throws SqlError. */
  run(sql: string, params: Params = { positional: [], named: {} }): QueryResult {
    const toks = tokenize(sql, this.dialect.backslashEscapes ?? true);
    const ps = new Parser(toks, this.dialect);
    const val = (x: Expr, flatRow?: unknown[]): unknown => {
      switch (x.e) {
        case 'lit':
          return x.v;
        case 'param':
          return x.name === '?' ? params.positional[x.index] : params.named[x.name];
        case 'parse_json': {
          const s = val(x.arg, flatRow);
          if (s === null || s === undefined) return null;
          try {
            return { json: JSON.parse(String(s)) };
          } catch (err) {
            throw new SqlError('conversion', `Error parsing JSON: ${(err as Error).message}`);
          }
        }
        case 'flat':
          return flatRow?.[x.index];
        case 'col':
          throw new SqlError('syntax', `invalid identifier '${x.name}' in this position`);
      }
    };
    if (ps.isKw('BEGIN') || ps.isKw('COMMIT') || ps.isKw('ROLLBACK') || ps.isKw('USE') || ps.isKw('SET'))
      return { columns: [], rows: [], statement: 'other' };
    if (ps.isKw('ALTER')) {
      ps.kw('ALTER');
      ps.kw('TABLE');
      const name = ps.ident();
      const t = this.table(name);
      if (!t) throw new SqlError('not-found', `Table '${name}' does not exist or not authorized.`);
      ps.kw('ADD');
      if (ps.isKw('COLUMN')) ps.kw('COLUMN');
      let ifNotExists = false;
      if (ps.isKw('IF')) {
        ps.kw('IF');
        ps.kw('NOT');
        ps.kw('EXISTS');
        ifNotExists = true;
      }
      const cname = ps.ident();
      const type = ps.typeName();
      let notNull = false;
      if (ps.isKw('NOT')) {
        ps.kw('NOT');
        ps.kw('NULL');
        notNull = true;
      } else if (ps.isKw('NULL')) ps.kw('NULL');
      if (!ps.done()) throw new SqlError('syntax', `syntax error near '${ps.peek()?.v}'`);
      if (t.columns.some((c) => c.name.toUpperCase() === cname.toUpperCase())) {
        if (ifNotExists) return { columns: [], rows: [], statement: 'ddl' };
        throw new SqlError('exists', `Column '${cname}' already exists.`);
      }
      const kind = this.dialect.kindOf(type.replace(/\(.*\)/, '').trim());
      if (!kind) throw new SqlError('syntax', `unsupported data type '${type}'`);
      if (notNull && t.rows.length > 0) throw new SqlError('constraint', `cannot add NOT NULL column '${cname}' to a table with rows`);
      t.columns.push({ name: cname, type, kind, notNull });
      for (const r of t.rows) r.push(null);
      return { columns: [], rows: [], statement: 'ddl' };
    }
    if (ps.isKw('UPDATE')) {
      ps.kw('UPDATE');
      const name = ps.ident();
      const t = this.table(name);
      if (!t) throw new SqlError('not-found', `Table '${name}' does not exist or not authorized.`);
      ps.kw('SET');
      const sets: [number, Expr][] = [];
      for (;;) {
        const cname = ps.ident();
        const ci = t.columns.findIndex((c) => c.name.toUpperCase() === cname.toUpperCase());
        if (ci < 0) throw new SqlError('not-found', `invalid identifier '${cname}'`);
        ps.sym('=');
        sets.push([ci, ps.expr()]);
        if (ps.isSym(',')) {
          ps.sym(',');
          continue;
        }
        break;
      }
      const { preds, bounds } = this.where(ps, t, val);
      if (!ps.done()) throw new SqlError('syntax', `syntax error near '${ps.peek()?.v}'`);
      const hit = scan(t, preds, bounds);
      const updates = sets.map(([ci, x]) => [ci, this.convert(val(x), t.columns[ci] as Column)] as const);
      for (const r of hit) for (const [ci, v] of updates) r[ci] = v;
      // Cells changed in place: the blocks' min / max no longer hold.
      zoneMaps.delete(t);
      return { columns: [], rows: [], inserted: hit.length, statement: 'update' };
    }
    if (ps.isKw('CREATE')) {
      ps.kw('CREATE');
      ps.kw('TABLE');
      let ifNotExists = false;
      if (ps.isKw('IF')) {
        ps.kw('IF');
        ps.kw('NOT');
        ps.kw('EXISTS');
        ifNotExists = true;
      }
      const name = ps.ident();
      ps.sym('(');
      const cols: Omit<Column, 'kind'>[] = [];
      for (;;) {
        const cname = ps.ident();
        const type = ps.typeName();
        let notNull = false;
        if (ps.isKw('NOT')) {
          ps.kw('NOT');
          ps.kw('NULL');
          notNull = true;
        } else if (ps.isKw('NULL')) ps.kw('NULL');
        cols.push({ name: cname, type, notNull });
        if (ps.isSym(',')) {
          ps.sym(',');
          continue;
        }
        ps.sym(')');
        break;
      }
      if (this.table(name)) {
        if (ifNotExists) return { columns: [], rows: [], statement: 'ddl' };
        throw new SqlError('exists', `Object '${name}' already exists.`);
      }
      this.createTable(name, cols);
      return { columns: [], rows: [], statement: 'ddl' };
    }
    if (ps.isKw('INSERT')) {
      ps.kw('INSERT');
      ps.kw('INTO');
      const name = ps.ident();
      const t = this.table(name);
      if (!t) throw new SqlError('not-found', `Table '${name}' does not exist or not authorized.`);
      ps.sym('(');
      const colNames: string[] = [];
      for (;;) {
        colNames.push(ps.ident());
        if (ps.isSym(',')) {
          ps.sym(',');
          continue;
        }
        ps.sym(')');
        break;
      }
      const idx = colNames.map((c) => {
        const i = t.columns.findIndex((tc) => tc.name.toUpperCase() === c.toUpperCase());
        if (i < 0) throw new SqlError('not-found', `invalid identifier '${c}'`);
        return i;
      });
      const newRows: Cell[][] = [];
      const build = (values: unknown[]) => {
        const row: Cell[] = t.columns.map(() => null);
        const given = new Set(idx);
        idx.forEach((ci, k) => {
          row[ci] = this.convert(values[k], t.columns[ci] as Column);
        });
        t.columns.forEach((c, ci) => {
          if (!given.has(ci) && c.notNull) throw new SqlError('constraint', `NULL result in a non-nullable column '${c.name}'`);
        });
        newRows.push(row);
      };
      if (ps.isKw('VALUES')) {
        ps.kw('VALUES');
        for (;;) {
          ps.sym('(');
          const exprs: Expr[] = [];
          for (;;) {
            exprs.push(ps.expr());
            if (ps.isSym(',')) {
              ps.sym(',');
              continue;
            }
            ps.sym(')');
            break;
          }
          build(exprs.map((x) => val(x)));
          if (ps.isSym(',')) {
            ps.sym(',');
            continue;
          }
          break;
        }
      } else {
        ps.kw('SELECT');
        const exprs: Expr[] = [];
        for (;;) {
          exprs.push(ps.expr());
          if (ps.isSym(',')) {
            ps.sym(',');
            continue;
          }
          break;
        }
        ps.kw('FROM');
        if (ps.isSym('(')) {
          this.insertFromValues(ps, t, exprs, val, build);
          if (!ps.done()) throw new SqlError('syntax', `syntax error near '${ps.peek()?.v}'`);
          t.rows.push(...newRows);
          return { columns: [], rows: [], inserted: newRows.length, statement: 'insert' };
        }
        ps.kw('TABLE');
        ps.sym('(');
        ps.kw('FLATTEN');
        ps.sym('(');
        if (ps.isKw('INPUT')) {
          ps.kw('INPUT');
          ps.sym('=>');
        }
        const input = val(ps.expr()) as Cell;
        ps.sym(')');
        ps.sym(')');
        const arr = input && typeof input === 'object' && 'json' in input ? input.json : null;
        if (!Array.isArray(arr)) throw new SqlError('conversion', 'FLATTEN input is not an array');
        let excluded: ((r: unknown[]) => boolean) | undefined;
        if (ps.isKw('WHERE')) {
          ps.kw('WHERE');
          const probe = ps.expr();
          if (probe.e !== 'flat') throw new SqlError('syntax', 'syntax error: expected VALUE[i] before NOT IN');
          ps.kw('NOT');
          ps.kw('IN');
          ps.sym('(');
          const sub = this.select(ps, val);
          ps.sym(')');
          const held = new Set(sub.rows.map((r) => JSON.stringify(r[0] ?? null)));
          const castOf = (v: unknown): unknown => {
            if (!probe.cast) return v;
            const kind = this.dialect.kindOf(probe.cast.replace(/\(.*\)/, '').trim());
            if (!kind || kind === 'json') return v;
            return this.convert(v, { name: `VALUE[${probe.index}]`, type: probe.cast, kind, notNull: false });
          };
          excluded = (r) => held.has(JSON.stringify(castOf(r[probe.index]) ?? null));
        }
        for (const r of arr) {
          if (excluded?.(r as unknown[])) continue;
          build(
            exprs.map((x) => {
              const v = val(x, r as unknown[]);
              if (x.e === 'flat' && x.cast) {
                const kind = this.dialect.kindOf(x.cast.replace(/\(.*\)/, '').trim());
                if (!kind) throw new SqlError('syntax', `unsupported data type '${x.cast}'`);
                if (kind === 'json') return { json: v };
                return this.convert(v, { name: `VALUE[${x.index}]`, type: x.cast, kind, notNull: false });
              }
              return x.e === 'flat' ? { json: v } : v;
            }),
          );
        }
      }
      if (!ps.done()) throw new SqlError('syntax', `syntax error near '${ps.peek()?.v}'`);
      t.rows.push(...newRows);
      return { columns: [], rows: [], inserted: newRows.length, statement: 'insert' };
    }
    if (ps.isKw('SELECT')) {
      if (ps.peek(1)?.t === 'num' && toks.length === 2)
        return { columns: [{ name: '1', kind: 'int', type: 'INT' }], rows: [[Number(toks[1]?.v)]], statement: 'select' };
      const r = this.select(ps, val);
      if (!ps.done()) throw new SqlError('syntax', `syntax error near '${ps.peek()?.v}'`);
      return r;
    }
    throw new SqlError('syntax', `syntax error: unsupported statement '${toks[0]?.v ?? ''}'`);
  }

  /**
   * `[WHERE pred AND …]` of a statement on `t`: the predicates, and what each allows of its column (for
   * skipping blocks by their min / max, see scan). A parenthesized `(pred OR pred …)` is one predicate
   * that skips no block.
   */
  private where(
    ps: Parser,
    t: Table,
    val: (x: Expr, flatRow?: unknown[]) => unknown,
  ): { preds: ((r: Cell[]) => boolean)[]; bounds: Bound[] } {
    const col = (n: string) => {
      const i = t.columns.findIndex((c) => c.name.toUpperCase() === n.toUpperCase());
      if (i < 0) throw new SqlError('not-found', `invalid identifier '${n}'`);
      return i;
    };
    const preds: ((r: Cell[]) => boolean)[] = [];
    const bounds: Bound[] = [];
    const one = (into: Bound[] | undefined): ((r: Cell[]) => boolean) => {
      const ci = col(ps.ident());
      const c = t.columns[ci] as Column;
      const cv = (x: Expr) => this.convert(val(x), { ...c, notNull: false });
      if (ps.isKw('IS')) {
        ps.kw('IS');
        const not = ps.isKw('NOT');
        if (not) ps.kw('NOT');
        ps.kw('NULL');
        return (r) => (r[ci] === null) !== not;
      }
      if (ps.isKw('BETWEEN')) {
        ps.kw('BETWEEN');
        const a = cv(ps.expr());
        ps.kw('AND');
        const b = cv(ps.expr());
        into?.push({ ci, lo: a, loInclusive: true, hi: b, hiInclusive: true });
        return (r) => r[ci] !== null && compare(r[ci], a) >= 0 && compare(r[ci], b) <= 0;
      }
      const op = ps.peek()?.v as string;
      ps.p++;
      const v = cv(ps.expr());
      const f: Record<string, (n: number) => boolean> = {
        '=': (n) => n === 0,
        '<>': (n) => n !== 0,
        '!=': (n) => n !== 0,
        '<': (n) => n < 0,
        '<=': (n) => n <= 0,
        '>': (n) => n > 0,
        '>=': (n) => n >= 0,
      };
      const fn = f[op];
      if (!fn) throw new SqlError('syntax', `syntax error: unexpected '${op}'`);
      if (v === null) into?.push({ ci, empty: true });
      else if (op === '=') into?.push({ ci, lo: v, loInclusive: true, hi: v, hiInclusive: true });
      else if (op === '<' || op === '<=') into?.push({ ci, hi: v, hiInclusive: op === '<=' });
      else if (op === '>' || op === '>=') into?.push({ ci, lo: v, loInclusive: op === '>=' });
      return (r) => r[ci] !== null && v !== null && fn(compare(r[ci], v));
    };
    if (!ps.isKw('WHERE')) return { preds, bounds };
    ps.kw('WHERE');
    for (;;) {
      if (ps.isSym('(')) {
        ps.sym('(');
        const any: ((r: Cell[]) => boolean)[] = [];
        for (;;) {
          any.push(one(undefined));
          if (ps.isKw('OR')) {
            ps.kw('OR');
            continue;
          }
          break;
        }
        ps.sym(')');
        preds.push((r) => any.some((p) => p(r)));
      } else {
        preds.push(one(bounds));
      }
      if (ps.isKw('AND')) {
        ps.kw('AND');
        continue;
      }
      break;
    }
    return { preds, bounds };
  }

  /**
   * The rest of `INSERT INTO t (…) SELECT <exprs> FROM` when a `(VALUES …) [AS] v (c, …)` follows,
   * with an optional `WHERE v.c[::TYPE] NOT IN (SELECT …)` anti-join evaluated against the table as it
   * is before this statement's rows land (one statement: all its rows or none).
   */
  private insertFromValues(
    ps: Parser,
    t: Table,
    exprs: Expr[],
    val: (x: Expr, flatRow?: unknown[]) => unknown,
    build: (values: unknown[]) => void,
  ): void {
    ps.sym('(');
    ps.kw('VALUES');
    const tuples: unknown[][] = [];
    for (;;) {
      ps.sym('(');
      const row: unknown[] = [];
      for (;;) {
        row.push(val(ps.expr()));
        if (ps.isSym(',')) {
          ps.sym(',');
          continue;
        }
        ps.sym(')');
        break;
      }
      tuples.push(row);
      if (ps.isSym(',')) {
        ps.sym(',');
        continue;
      }
      break;
    }
    ps.sym(')');
    if (ps.isKw('AS')) ps.kw('AS');
    ps.ident();
    ps.sym('(');
    const names: string[] = [];
    for (;;) {
      names.push(ps.ident().toUpperCase());
      if (ps.isSym(',')) {
        ps.sym(',');
        continue;
      }
      ps.sym(')');
      break;
    }
    for (const r of tuples)
      if (r.length !== names.length) throw new SqlError('syntax', `VALUES list has ${r.length} values for ${names.length} columns`);
    const at = (name: string) => {
      const i = names.indexOf(name.toUpperCase());
      if (i < 0) throw new SqlError('not-found', `invalid identifier '${name}'`);
      return i;
    };
    const cast = (v: unknown, type: string | undefined, what: string): unknown => {
      if (!type) return v;
      const kind = this.dialect.kindOf(type.replace(/\(.*\)/, '').trim());
      if (!kind) throw new SqlError('syntax', `unsupported data type '${type}'`);
      if (kind === 'json') return { json: v };
      return this.convert(v, { name: what, type, kind, notNull: false });
    };
    const pick = (x: Expr, r: unknown[]): unknown => (x.e === 'col' ? cast(r[at(x.name)], x.cast, x.name) : val(x));
    let excluded: ((r: unknown[]) => boolean) | undefined;
    if (ps.isKw('WHERE')) {
      ps.kw('WHERE');
      const probe = ps.expr();
      if (probe.e !== 'col') throw new SqlError('syntax', 'syntax error: expected a column of the VALUES list before NOT IN');
      ps.kw('NOT');
      ps.kw('IN');
      ps.sym('(');
      const sub = this.select(ps, val);
      ps.sym(')');
      const held = new Set(sub.rows.map((r) => JSON.stringify(r[0] ?? null)));
      excluded = (r) => held.has(JSON.stringify(pick(probe, r) ?? null));
    }
    for (const r of tuples) {
      if (excluded?.(r)) continue;
      build(exprs.map((x) => pick(x, r)));
    }
  }

  /** SELECT … FROM t [WHERE …] [ORDER BY …] [LIMIT n], from the SELECT keyword; stops before what follows it. */
  private select(ps: Parser, val: (x: Expr, flatRow?: unknown[]) => unknown): QueryResult {
    ps.kw('SELECT');
    let star = false;
    let count = false;
    const picks: string[] = [];
    if (ps.isSym('*')) {
      ps.sym('*');
      star = true;
    } else if (ps.isKw('COUNT')) {
      ps.kw('COUNT');
      ps.sym('(');
      ps.sym('*');
      ps.sym(')');
      count = true;
    } else {
      for (;;) {
        picks.push(ps.ident());
        if (ps.isSym(',')) {
          ps.sym(',');
          continue;
        }
        break;
      }
    }
    ps.kw('FROM');
    const name = ps.ident();
    const t = this.table(name);
    if (!t) throw new SqlError('not-found', `Table '${name}' does not exist or not authorized.`);
    const col = (n: string) => {
      const i = t.columns.findIndex((c) => c.name.toUpperCase() === n.toUpperCase());
      if (i < 0) throw new SqlError('not-found', `invalid identifier '${n}'`);
      return i;
    };
    const { preds, bounds } = this.where(ps, t, val);
    let rows = scan(t, preds, bounds);
    if (ps.isKw('ORDER')) {
      ps.kw('ORDER');
      ps.kw('BY');
      const keys: [number, number][] = [];
      for (;;) {
        const ci = col(ps.ident());
        let dir = 1;
        if (ps.isKw('ASC')) ps.kw('ASC');
        else if (ps.isKw('DESC')) {
          ps.kw('DESC');
          dir = -1;
        }
        keys.push([ci, dir]);
        if (ps.isSym(',')) {
          ps.sym(',');
          continue;
        }
        break;
      }
      rows = [...rows].sort((a, b) => {
        for (const [ci, d] of keys) {
          const c = compare(a[ci] ?? null, b[ci] ?? null);
          if (c !== 0) return c * d;
        }
        return 0;
      });
    }
    if (ps.isKw('LIMIT')) {
      ps.kw('LIMIT');
      rows = rows.slice(0, Number(ps.peek()?.v));
      ps.p++;
    }
    if (count) return { columns: [{ name: 'COUNT(*)', kind: 'int', type: 'INT' }], rows: [[rows.length]], statement: 'select' };
    const idxs = star ? t.columns.map((_, i) => i) : picks.map(col);
    return {
      columns: idxs.map((i) => ({
        name: (t.columns[i] as Column).name,
        kind: (t.columns[i] as Column).kind,
        type: (t.columns[i] as Column).type,
      })),
      rows: rows.map((r) => idxs.map((i) => r[i] ?? null)),
      statement: 'select',
    };
  }
}

/**
 * Micro-partition pruning, as Snowflake does it (BigQuery and Firebolt prune likewise by their own
 * block metadata): the rows of a table, in the order they landed, are cut into blocks of
 * {@link BLOCK_ROWS}; each block keeps, per column, the min and max of its non-null values (computed
 * the first time a predicate needs them). A scan skips a block whose range cannot satisfy a predicate,
 * so a selective query on data that arrived in order (e.g. `OFFSET BETWEEN a AND b` on rows loaded by
 * offset) reads the blocks it needs, not the whole table. Results are those of a full scan: a block is
 * only skipped when no row of it can match, and the metadata of a block is dropped when its rows
 * change (rows are only ever appended, or cut off at the end by a failed statement, so a block whose
 * first and last rows are still the same objects is unchanged).
 */
const BLOCK_ROWS = 1024;

/** What a predicate allows of one column: non-null values within [lo, hi] (either side open), or nothing. */
type Bound = { ci: number; empty?: boolean; lo?: Cell; loInclusive?: boolean; hi?: Cell; hiInclusive?: boolean };

interface Zone {
  first: Cell[];
  last: Cell[];
  /** Min / max of the column's non-null values in the block; undefined when all are null. */
  min?: Cell;
  max?: Cell;
}

/** Per table, per column: the blocks' metadata, by block index. */
const zoneMaps = new WeakMap<Table, Map<number, Zone[]>>();

function zoneOf(t: Table, ci: number, block: number): Zone {
  let byColumn = zoneMaps.get(t);
  if (!byColumn) zoneMaps.set(t, (byColumn = new Map()));
  let zones = byColumn.get(ci);
  if (!zones) byColumn.set(ci, (zones = []));
  const start = block * BLOCK_ROWS;
  const first = t.rows[start] as Cell[];
  const last = t.rows[start + BLOCK_ROWS - 1] as Cell[];
  const z = zones[block];
  if (z && z.first === first && z.last === last) return z;
  const fresh: Zone = { first, last };
  for (let i = start; i < start + BLOCK_ROWS; i++) {
    const v = (t.rows[i] as Cell[])[ci] ?? null;
    if (v === null) continue;
    if (fresh.min === undefined || compare(v, fresh.min) < 0) fresh.min = v;
    if (fresh.max === undefined || compare(v, fresh.max) > 0) fresh.max = v;
  }
  zones[block] = fresh;
  return fresh;
}

/** Whether some non-null value in [z.min, z.max] can satisfy the bound. */
function mayMatch(z: Zone, b: Bound): boolean {
  if (b.empty || z.min === undefined || z.max === undefined) return false;
  if (b.lo !== undefined) {
    const c = compare(z.max, b.lo ?? null);
    if (c < 0 || (c === 0 && !b.loInclusive)) return false;
  }
  if (b.hi !== undefined) {
    const c = compare(z.min, b.hi ?? null);
    if (c > 0 || (c === 0 && !b.hiInclusive)) return false;
  }
  return true;
}

/** The rows of `t` that satisfy every predicate, in table order, skipping blocks that cannot match. */
function scan(t: Table, preds: ((r: Cell[]) => boolean)[], bounds: Bound[]): Cell[][] {
  const all = (r: Cell[]) => preds.every((p) => p(r));
  const full = Math.floor(t.rows.length / BLOCK_ROWS);
  if (bounds.length === 0 || full === 0) return t.rows.filter(all);
  const out: Cell[][] = [];
  for (let b = 0; b < full; b++) {
    if (!bounds.every((bd) => mayMatch(zoneOf(t, bd.ci, b), bd))) continue;
    for (let i = b * BLOCK_ROWS; i < (b + 1) * BLOCK_ROWS; i++) if (all(t.rows[i] as Cell[])) out.push(t.rows[i] as Cell[]);
  }
  for (let i = full * BLOCK_ROWS; i < t.rows.length; i++) if (all(t.rows[i] as Cell[])) out.push(t.rows[i] as Cell[]);
  return out;
}

function compare(a: Cell, b: Cell): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = typeof a === 'object' ? JSON.stringify(a.json) : String(a);
  const sb = typeof b === 'object' ? JSON.stringify(b.json) : String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}
