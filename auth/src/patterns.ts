/**
 * Name patterns of grants: `*` matches any run of characters (also none, also `/` and `.`); every
 * other character matches itself. No escapes: names never contain `*`.
 */

/** Whether `name` matches `pattern`. Linear-time two-pointer glob match (no backtracking blow-up). */
export function matchPattern(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1;
  let mark = 0;
  while (n < name.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === name[n]) {
      p++;
      n++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = n;
    } else if (star >= 0) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/**
 * Whether every name `inner` matches is also matched by `outer` (L(inner) ⊆ L(outer)). Sound: true
 * only when it holds. Complete for the patterns people write (`*`, `orders-*`, `a*b`); for exotic
 * ones it may answer false where inclusion holds, which only refuses a token that could have been given.
 */
export function patternContains(outer: string, inner: string): boolean {
  // Treat inner as a word over characters plus the symbol `*`; an outer `*` absorbs any run of it,
  // an outer literal only the same literal.
  const m = outer.length;
  const n = inner.length;
  let prev = new Array<boolean>(n + 1).fill(false);
  prev[0] = true;
  for (let i = 1; i <= m; i++) {
    const cur = new Array<boolean>(n + 1).fill(false);
    const oc = outer[i - 1];
    if (oc === '*') {
      let any = false;
      for (let j = 0; j <= n; j++) {
        any = any || prev[j]!;
        cur[j] = any;
      }
    } else {
      for (let j = 1; j <= n; j++) cur[j] = prev[j - 1]! && inner[j - 1] === oc;
    }
    prev = cur;
  }
  return prev[n]!;
}

/** Whether some name matches both patterns. */
export function patternsIntersect(a: string, b: string): boolean {
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = i * (b.length + 1) + j;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    let r: boolean;
    if (i === a.length && j === b.length) r = true;
    else if (i < a.length && a[i] === '*') r = go(i + 1, j) || (j < b.length && go(i, j + 1));
    else if (j < b.length && b[j] === '*') r = go(i, j + 1) || (i < a.length && go(i + 1, j));
    else r = i < a.length && j < b.length && a[i] === b[j] && go(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  return go(0, 0);
}
