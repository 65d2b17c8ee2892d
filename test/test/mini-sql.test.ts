/**
 * The fakes' SQL engine skips blocks of rows by their min / max (as Snowflake prunes micro-partitions).
 * Whatever the data, the predicates and the changes to the table, a query answers exactly what a full
 * scan answers.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MiniSql, type Cell, type Dialect, type Kind } from '../fakes/bigquery/mini-sql.js';

const KINDS: Record<string, Kind> = {
  NUMBER: 'int',
  FLOAT: 'float',
  VARCHAR: 'string',
  BOOLEAN: 'bool',
  TIMESTAMP_NTZ: 'timestamp',
  VARIANT: 'json',
};
const dialect: Dialect = {
  kindOf: (t) => KINDS[t.toUpperCase()],
  conversionError: (v) => `bad value ${String(v)}`,
  foldIdentifier: (n) => n.toUpperCase(),
};

const COLS = ['N', 'F', 'S', 'B', 'T'] as const;

function table(): MiniSql {
  const db = new MiniSql(dialect);
  db.run('CREATE TABLE T (N NUMBER, F FLOAT, S VARCHAR, B BOOLEAN, T TIMESTAMP_NTZ, J VARIANT)');
  return db;
}

/** The reference: every row of the table through the same predicates, no blocks skipped. */
function fullScan(db: MiniSql, where: Pred[]): Cell[][] {
  const t = db.table('T')!;
  const idx = (c: string) => t.columns.findIndex((x) => x.name === c);
  const cmp = (a: Cell, b: Cell) =>
    typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
  return t.rows.filter((r) =>
    where.every((p) => {
      const v = r[idx(p.col)] ?? null;
      if (p.op === 'IS NULL') return v === null;
      if (p.op === 'IS NOT NULL') return v !== null;
      if (v === null || p.a === null) return false;
      const a = p.col === 'T' ? Date.parse(`${String(p.a)}Z`) : p.a;
      if (p.op === 'BETWEEN') {
        const b = p.col === 'T' ? Date.parse(`${String(p.b)}Z`) : p.b;
        return b !== null && b !== undefined && cmp(v, a) >= 0 && cmp(v, b) <= 0;
      }
      const c = cmp(v, a);
      return { '=': c === 0, '<>': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 }[p.op];
    }),
  );
}

type Pred = { col: (typeof COLS)[number]; op: string; a: Cell; b?: Cell };

/** Rows from a seed: a few nulls in every column, values drawn from small ranges so that predicates hit. */
function rowsOf(count: number, seed: number): Row[] {
  let x = seed >>> 0 || 1;
  const next = () => ((x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0) >>> 8) / 2 ** 24;
  const maybe = <T>(v: T): T | null => (next() < 0.05 ? null : v);
  return Array.from({ length: count }, () => ({
    n: maybe(Math.floor(next() * 350) - 50),
    f: maybe((next() - 0.5) * 20),
    s: maybe(['a', 'b', 'c', 'ab', 'zz', ''][Math.floor(next() * 6)]!),
    b: maybe(next() < 0.5),
    t: maybe(Math.floor(next() * 10_000)),
  }));
}
type Row = { n: number | null; f: number | null; s: string | null; b: boolean | null; t: number | null };

const ts = (ms: number) => new Date(1_700_000_000_000 + ms).toISOString().slice(0, -1);
const valueOf = (col: Pred['col'], x: number): Cell =>
  col === 'N'
    ? x
    : col === 'F'
      ? x / 600 - 5
      : col === 'S'
        ? ['a', 'b', 'c', 'ab', 'zz', ''][Math.abs(x) % 6]!
        : col === 'B'
          ? x % 2 === 0
          : ts(x * 40);
const predArb: fc.Arbitrary<Pred> = fc
  .tuple(
    fc.constantFrom(...COLS),
    fc.constantFrom('=', '<>', '<', '<=', '>', '>=', 'BETWEEN', 'IS NULL', 'IS NOT NULL'),
    fc.integer({ min: -60, max: 12_500 }),
    fc.integer({ min: -60, max: 12_500 }),
    fc.boolean(),
  )
  .map(([col, op, x, y, nul]) => ({
    col,
    op,
    a: nul && op !== 'BETWEEN' ? null : valueOf(col, Math.min(x, y)),
    b: valueOf(col, Math.max(x, y)),
  }));

function sqlOf(where: Pred[]): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const parts = where.map((p) => {
    if (p.op === 'IS NULL' || p.op === 'IS NOT NULL') return `${p.col} ${p.op}`;
    params.push(p.a);
    if (p.op === 'BETWEEN') {
      params.push(p.b);
      return `${p.col} BETWEEN ? AND ?`;
    }
    return `${p.col} ${p.op} ?`;
  });
  return { sql: `SELECT * FROM T${parts.length ? ` WHERE ${parts.join(' AND ')}` : ''}`, params };
}

function insert(db: MiniSql, rows: Row[], from: number): void {
  if (rows.length === 0) return;
  const json = JSON.stringify(rows.map((r, i) => [r.n, r.f, r.s, r.b, r.t === null ? null : ts(r.t * 40), { i: from + i }]));
  db.run(
    'INSERT INTO T (N, F, S, B, T, J) SELECT VALUE[0]::NUMBER, VALUE[1]::FLOAT, VALUE[2]::VARCHAR, VALUE[3]::BOOLEAN, VALUE[4]::TIMESTAMP_NTZ, VALUE[5] FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))',
    { positional: [json], named: {} },
  );
}

describe('mini-sql block pruning', () => {
  it('answers what a full scan answers, through appends, truncations and re-appends', () => {
    fc.assert(
      fc.property(
        // Runs of rows, some sorted by N (as offsets arrive), so that blocks are both prunable and not.
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.integer(), fc.boolean(), fc.nat(3000)), { minLength: 1, maxLength: 4 }),
        fc.array(fc.array(predArb, { maxLength: 3 }), { minLength: 1, maxLength: 6 }),
        (steps, queries) => {
          const db = table();
          const t = db.table('T')!;
          let n = 0;
          for (const [count, seed, sorted, cut] of steps) {
            const rows = rowsOf(count, seed);
            const ordered = sorted ? rows.map((r, i) => ({ ...r, n: n + i })) : rows;
            insert(db, ordered, n);
            n += rows.length;
            for (const where of queries) {
              const { sql, params } = sqlOf(where);
              expect(db.run(sql, { positional: params, named: {} }).rows).toEqual(fullScan(db, where));
            }
            // A failed statement cuts the table back (the Snowflake fake's rollback); blocks change.
            if (cut < t.rows.length) t.rows.length = cut;
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a block cut back by a failed statement and filled again is judged by its new rows', () => {
    const db = table();
    const ordered = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => ({ n: from + i, f: null, s: 'a', b: null, t: null }));
    const between = (a: number, b: number) =>
      db.run('SELECT COUNT(*) FROM T WHERE N BETWEEN ? AND ?', { positional: [a, b], named: {} }).rows[0]![0];
    insert(db, ordered(0, 2048), 0);
    expect(between(0, 10)).toBe(11); // both blocks' metadata now known: [0, 1023] and [1024, 2047]
    db.table('T')!.rows.length = 1000;
    insert(db, ordered(5000, 1048), 1000);
    expect(between(5000, 6047)).toBe(1048);
    expect(between(1000, 2047)).toBe(0);
    expect(between(0, 999)).toBe(1000);
  });

  it('a range query over ordered data reads only the blocks it needs', () => {
    const db = table();
    for (let b = 0; b < 100; b++)
      insert(
        db,
        Array.from({ length: 1000 }, (_, i) => ({ n: b * 1000 + i, f: null, s: 'a', b: null, t: null })),
        b * 1000,
      );
    const ask = () => db.run('SELECT N FROM T WHERE S = ? AND N BETWEEN ? AND ?', { positional: ['a', 95_000, 95_999], named: {} });
    expect(ask().rows.map((r) => r[0])).toEqual(Array.from({ length: 1000 }, (_, i) => 95_000 + i));
    // A full scan of 100k rows; with blocks, about two blocks. Compare with the scan of a query that has no bound.
    const time = (f: () => unknown) => {
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) f();
      return performance.now() - t0;
    };
    const pruned = time(ask);
    const scanned = time(() => db.run('SELECT N FROM T WHERE N IS NOT NULL AND S <> ?', { positional: ['b'], named: {} }));
    expect(pruned * 5).toBeLessThan(scanned);
  });
});

describe('mini-sql statements for station identity and anti-joins', () => {
  it('ALTER TABLE ADD COLUMN gives old rows NULL; UPDATE changes matching rows and later scans see it (blocks re-judged)', () => {
    const db = new MiniSql(dialect);
    db.run('CREATE TABLE E (S VARCHAR NOT NULL, O NUMBER NOT NULL)');
    for (let o = 1; o <= 3000; o++) db.run(`INSERT INTO E (S, O) VALUES ('${o % 2 ? 'a' : 'b'}', ${o})`);
    db.run('ALTER TABLE E ADD COLUMN IF NOT EXISTS ID VARCHAR');
    db.run('ALTER TABLE E ADD COLUMN IF NOT EXISTS ID VARCHAR');
    expect(() => db.run('ALTER TABLE E ADD COLUMN ID VARCHAR')).toThrow(/already exists/);
    expect(db.run("SELECT COUNT(*) FROM E WHERE ID = 'x'").rows).toEqual([[0]]);
    expect(db.run("UPDATE E SET ID = 'x' WHERE S = 'a' AND ID IS NULL").inserted).toBe(1500);
    expect(db.run("SELECT COUNT(*) FROM E WHERE ID = 'x' AND O BETWEEN 1 AND 2048").rows).toEqual([[1024]]);
    expect(db.run("SELECT COUNT(*) FROM E WHERE S = 'b' AND (ID = 'x' OR ID IS NULL)").rows).toEqual([[1500]]);
  });

  it('INSERT … SELECT FROM (VALUES …) AS v (…) casts, and its anti-join skips what the table holds', () => {
    const db = new MiniSql(dialect);
    db.run('CREATE TABLE E (S VARCHAR NOT NULL, O NUMBER NOT NULL, T TIMESTAMP_NTZ)');
    db.run("INSERT INTO E (S, O) VALUES ('a', 2)");
    const r = db.run(
      "INSERT INTO E (S, O, T) SELECT v.S::VARCHAR, v.O::NUMBER, v.T::TIMESTAMP_NTZ FROM (VALUES ('a', '1', '2024-01-02 03:04:05'), ('a', '2', NULL), ('a', '3', NULL)) AS v (S, O, T) WHERE v.O::NUMBER NOT IN (SELECT O FROM E WHERE S = 'a' AND O BETWEEN 1 AND 3)",
    );
    expect(r.inserted).toBe(2);
    expect(db.run('SELECT O, T FROM E ORDER BY O').rows).toEqual([
      [1, Date.UTC(2024, 0, 2, 3, 4, 5)],
      [2, null],
      [3, null],
    ]);
    expect(() => db.run("INSERT INTO E (S, O) SELECT v.S, v.O::NUMBER FROM (VALUES ('a', 'x')) AS v (S, O)")).toThrow(/bad value x/);
    expect(db.run('SELECT COUNT(*) FROM E').rows).toEqual([[3]]);
  });
});
