/**
 * A tiny semver range check, so the registry can tell whether a plugin built for SDK range `^1` runs
 * on this SDK, without a dependency. Supported ranges: `*`, `x.y.z` (exact), `^x`, `^x.y`, `^x.y.z`,
 * `~x`, `~x.y`, `~x.y.z`, `>=x`, `>=x.y`, `>=x.y.z`, and several of them joined by `||`.
 */

/** The version of the SDK's API. Plugins declare the range they need in their manifest's `sdk`. */
export const SDK_VERSION = '1.0.0';

type Triple = [number, number, number];
interface Version {
  v: Triple;
  prerelease: boolean;
}
/** Inclusive lower bound, exclusive upper bound (undefined: none). */
interface Comparator {
  min: Triple;
  max: Triple | undefined;
}

const VERSION_RE = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;
const PARTIAL_RE = /^(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?)?$/;

/** Parses `x.y.z` with optional `-prerelease` and `+build`; undefined when it is not a version. */
export function parseVersion(version: string): Version | undefined {
  const m = VERSION_RE.exec(version.trim());
  if (!m) return undefined;
  return { v: [Number(m[1]), Number(m[2]), Number(m[3])], prerelease: m[4] !== undefined };
}

function cmp(a: Triple, b: Triple): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

function parseComparator(part: string): Comparator | undefined {
  const s = part.trim();
  if (s === '*' || s === 'x') return { min: [0, 0, 0], max: undefined };
  const op = s.startsWith('>=') ? '>=' : s.startsWith('^') ? '^' : s.startsWith('~') ? '~' : '';
  const m = PARTIAL_RE.exec(s.slice(op.length).trim());
  if (!m) return undefined;
  const major = Number(m[1]);
  const minor = m[2] === undefined ? undefined : Number(m[2]);
  const patch = m[3] === undefined ? undefined : Number(m[3]);
  const min: Triple = [major, minor ?? 0, patch ?? 0];
  switch (op) {
    case '>=':
      return { min, max: undefined };
    case '^':
      // The leftmost non-zero part may not change (npm's caret, including its 0.x rules).
      if (major > 0 || minor === undefined) return { min, max: [major + 1, 0, 0] };
      if (minor > 0 || patch === undefined) return { min, max: [0, minor + 1, 0] };
      return { min, max: [0, 0, patch + 1] };
    case '~':
      return minor === undefined ? { min, max: [major + 1, 0, 0] } : { min, max: [major, minor + 1, 0] };
    default:
      // A bare version: exact when complete, `x` / `x.y` mean any version of that major / minor.
      if (patch !== undefined) return { min, max: [major, minor ?? 0, (patch ?? 0) + 1] };
      return minor === undefined ? { min, max: [major + 1, 0, 0] } : { min, max: [major, minor + 1, 0] };
  }
}

function parseRange(range: string): Comparator[] | undefined {
  if (typeof range !== 'string' || range.trim() === '') return undefined;
  const out: Comparator[] = [];
  for (const part of range.split('||')) {
    const c = parseComparator(part);
    if (!c) return undefined;
    out.push(c);
  }
  return out;
}

/** Whether `range` is a range {@link satisfiesSdk} understands. */
export function isValidSdkRange(range: string): boolean {
  return parseRange(range) !== undefined;
}

/**
 * Whether `version` (default: this SDK's {@link SDK_VERSION}) lies in `range`. A prerelease version
 * (`1.1.0-beta.1`) counts as just below its release, and never matches an excluded upper bound
 * (`2.0.0-beta` is not in `^1`). False — never a throw — for a range or version
 * it cannot parse; check {@link isValidSdkRange} to tell the two apart.
 */
export function satisfiesSdk(range: string, version: string = SDK_VERSION): boolean {
  const comparators = parseRange(range);
  const parsed = parseVersion(version);
  if (!comparators || !parsed) return false;
  return comparators.some(({ min, max }) => {
    // 1.0.0-rc.1 is below 1.0.0, so `>=1.0.0` excludes it; 1.1.0-rc.1 is inside `^1`.
    const lo = cmp(parsed.v, min);
    if (lo < 0 || (lo === 0 && parsed.prerelease)) return false;
    if (max === undefined) return true;
    // 2.0.0-beta is not in `^1`: a prerelease of the excluded bound belongs to the next major.
    return cmp(parsed.v, max) < 0;
  });
}
