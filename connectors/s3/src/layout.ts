/**
 * Where objects go. Every data object is named
 * `<station>+<partition>+<first offset>-<last offset>+<station id>+<attempt><ext>` (offsets zero-padded to
 * 20 digits: key order is offset order; Confluent's convention, extended: a file says what it holds
 * wherever it is copied) under a directory chosen by the path layout:
 *
 * - `partition` (default): `<prefix><station>/<partition>/`
 * - `time`: `<prefix><station>/<path.format of the message time, UTC>/`, e.g. `…/year=2025/month=03/day=01/hour=12/`
 * - `field`: `<prefix><station>/<path.field>=<value>/`, the value of a top-level or dotted field of the JSON value
 *
 * `<station id>` is the station's incarnation (`stationIdSegment`); `<attempt>` is new for every write
 * of a unit, so no two writes ever share a key: a request of a dead writer that lands late can only touch
 * keys of its own attempt (see ledger.ts).
 *
 * The sink's ledger lives beside the data under `<prefix>_junction/ledger/<station>/<station id>/<partition>/`
 * (a leading `_` hides it from Athena, Hive, Spark and Trino). Ledgers written before station ids are in
 * `<prefix>_junction/ledger/<station>/<partition>/`.
 */

import { randomBytes } from 'node:crypto';

/** Offsets in keys are zero-padded to 20 digits, so key order is offset order. */
export function pad(n: number): string {
  return String(n).padStart(20, '0');
}

/** A fresh attempt id: 10 characters of [0-9a-z]. */
export function newAttempt(): string {
  let s = '';
  for (const b of randomBytes(10)) s += (b % 36).toString(36);
  return s;
}

/** The file name of a data object. */
export function objectFileName(
  station: string,
  partition: number,
  first: number,
  last: number,
  stationId: string,
  attempt: string,
  ext: string,
): string {
  return `${station}+${partition}+${pad(first)}-${pad(last)}+${stationId}+${attempt}${ext}`;
}

/**
 * Parses {@link objectFileName} (the last path segment of a key), or the name the sink gave objects
 * before station ids (`<station>+<partition>+<first>.<ext>`, without last offset, station id and
 * attempt); undefined for other names.
 */
export function parseObjectFileName(
  name: string,
): { station: string; partition: number; firstOffset: number; lastOffset?: number; stationId?: string; attempt?: string } | undefined {
  const m = /^(.+)\+(\d+)\+(\d{20})-(\d{20})\+([A-Za-z0-9_-]{1,64})\+([0-9a-z]{1,16})\./.exec(name);
  if (m)
    return {
      station: m[1] as string,
      partition: Number(m[2]),
      firstOffset: Number(m[3]),
      lastOffset: Number(m[4]),
      stationId: m[5] as string,
      attempt: m[6] as string,
    };
  const legacy = /^(.+)\+(\d+)\+(\d{20})\./.exec(name);
  if (!legacy) return undefined;
  return { station: legacy[1] as string, partition: Number(legacy[2]), firstOffset: Number(legacy[3]) };
}

const TOKEN_RE = /YYYY|MM|dd|HH|mm/g;

/**
 * Compiles a time path format: `YYYY` year, `MM` month, `dd` day, `HH` hour, `mm` minute (UTC, zero
 * padded); text in single quotes is literal (`'hour'=HH`); everything else is copied. Throws on an
 * empty result or a path segment that would be "." or "..".
 */
export function compileTimeFormat(format: string): (ms: number) => string {
  const parts: ({ literal: string } | { token: string })[] = [];
  let i = 0;
  while (i < format.length) {
    if (format[i] === "'") {
      const end = format.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unclosed quote in path format ${JSON.stringify(format)}`);
      parts.push({ literal: end === i + 1 ? "'" : format.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const next = format.indexOf("'", i);
    const chunk = format.slice(i, next < 0 ? format.length : next);
    let last = 0;
    for (const m of chunk.matchAll(TOKEN_RE)) {
      if (m.index > last) parts.push({ literal: chunk.slice(last, m.index) });
      parts.push({ token: m[0] });
      last = m.index + m[0].length;
    }
    if (last < chunk.length) parts.push({ literal: chunk.slice(last) });
    i += chunk.length;
  }
  const two = (n: number) => String(n).padStart(2, '0');
  const fn = (ms: number): string => {
    const d = new Date(ms);
    return parts
      .map((p) => {
        if ('literal' in p) return p.literal;
        switch (p.token) {
          case 'YYYY':
            return String(d.getUTCFullYear()).padStart(4, '0');
          case 'MM':
            return two(d.getUTCMonth() + 1);
          case 'dd':
            return two(d.getUTCDate());
          case 'HH':
            return two(d.getUTCHours());
          default:
            return two(d.getUTCMinutes());
        }
      })
      .join('');
  };
  const sample = fn(0);
  if (sample === '' || sample.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new Error(`path format ${JSON.stringify(format)} gives an empty or unsafe path segment (${JSON.stringify(sample)})`);
  }
  return fn;
}

/** Hive's name for a partition whose value is null or missing; Athena and Spark understand it. */
export const NULL_PARTITION = '__HIVE_DEFAULT_PARTITION__';

/** A field value as one safe key segment: scalars only; unsafe characters percent-encoded. */
export function fieldSegment(value: unknown): { segment: string } | { rejected: string } {
  if (value === undefined || value === null) return { segment: NULL_PARTITION };
  if (typeof value === 'object')
    return { rejected: `the partition field is ${Array.isArray(value) ? 'an array' : 'an object'}, not a scalar` };
  const text = String(value);
  if (text === '') return { segment: NULL_PARTITION };
  const encoded = text.replace(/[^A-Za-z0-9_.\-~]/g, (c) =>
    [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
  if (encoded === '.' || encoded === '..') return { segment: encoded.replace(/\./g, '%2E') };
  if (encoded.length > 200) return { rejected: 'the partition field value is longer than 200 characters once encoded' };
  return { segment: encoded };
}

/** The value at a dotted path (`customer.region`) of a parsed JSON value. */
export function valueAtPath(value: unknown, path: readonly string[]): unknown {
  let v = value;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/** A station name that is one safe key segment (the broker's names always are). */
export function isSafeSegment(s: string): boolean {
  // eslint-disable-next-line no-control-regex -- control characters are what it rejects
  return s !== '' && s !== '.' && s !== '..' && !s.startsWith('.') && !/[/\\\0-\x1f+]/.test(s);
}

/** The ledger's directory for a partition of a station incarnation. */
export function ledgerDir(prefix: string, station: string, stationId: string, partition: number): string {
  return `${prefix}_junction/ledger/${station}/${stationId}/${partition}/`;
}

/** The directory of a partition's ledger written before station ids. */
export function legacyLedgerDir(prefix: string, station: string, partition: number): string {
  return `${prefix}_junction/ledger/${station}/${partition}/`;
}

/** The marker of a unit being written (deleted once it is committed or rolled back). */
export function pendingKey(dir: string, first: number, last: number, attempt?: string): string {
  return `${dir}pending/${pad(last)}-${pad(first)}${attempt === undefined ? '' : `_${attempt}`}.json`;
}

/**
 * The marker of a committed unit. Keys sort by last offset, so "units ending at or after F" is one
 * listing. (Markers written before station ids have no `_<attempt>`.)
 */
export function doneKey(dir: string, first: number, last: number, count: number, attempt?: string): string {
  return `${dir}done/${pad(last)}-${pad(first)}-${count}${attempt === undefined ? '' : `_${attempt}`}.json`;
}

/** StartAfter for listing the done markers of units whose last offset is ≥ `from`. */
export function doneStartAfter(dir: string, from: number): string {
  // "<pad(from-1)>." sorts after every "<pad(from-1)>-…" key ('.' > '-') and before "<pad(from)>…".
  return `${dir}done/${pad(Math.max(0, from - 1))}.`;
}

/** Parses a marker's file name (done: with count; both: with the attempt since station ids). */
export function parseMarkerName(name: string): { last: number; first: number; count?: number; attempt?: string } | undefined {
  const m = /^(\d{20})-(\d{20})(?:-(\d+))?(?:_([0-9a-z]{1,16}))?\.json$/.exec(name);
  if (!m) return undefined;
  return {
    last: Number(m[1]),
    first: Number(m[2]),
    ...(m[3] === undefined ? {} : { count: Number(m[3]) }),
    ...(m[4] === undefined ? {} : { attempt: m[4] }),
  };
}
