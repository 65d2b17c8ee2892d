/**
 * What a partition knows about its own damage: the ranges of offsets lost or skipped (kept in the
 * partition's `meta` file so a range is reported once, when found, and counted as a gap on every later
 * open without rescanning), and the set of offsets that hold no record.
 */
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { z } from 'zod';
import { readWithFallback, writeAtomic } from '../atomic-file.js';
import type { CorruptRange } from './types.js';

/** The meta file's name in the partition's directory. */
export const META_FILE = 'meta';

const DamageEntry = z.object({
  segment: z.string(),
  fromOffset: z.number().int(),
  toOffset: z.number().int(),
  messages: z.number().int().min(0),
  detail: z.string(),
  foundAt: z.number(),
});
const MetaFile = z.union([
  // Version 1: the start only (written when the start lay inside a segment).
  z.object({ version: z.literal(1), start: z.number() }),
  // Version 2: with a crc32 of the JSON of the other fields, so a flipped digit (a larger start would
  // hide records) is caught, not believed.
  z.object({ version: z.literal(2), start: z.number(), damage: z.array(DamageEntry), crc: z.number() }),
]);

function bodyCrc(start: number, damage: readonly z.infer<typeof DamageEntry>[]): number {
  return crc32(JSON.stringify({ version: 2, start, damage }));
}

/** The partition's `meta` file. */
export interface PartitionMeta {
  /** The logical start (0: none recorded). */
  start: number;
  damage: CorruptRange[];
  /** The file's version; 0 when there was none. */
  version: number;
}

/**
 * Reads `meta` (or its previous copy). `problem` says why the file itself was not used when it was
 * damaged (not when it is merely absent, as in a log written before it existed).
 */
export async function readPartitionMeta(
  dir: string,
): Promise<{ meta: PartitionMeta; problem?: { detail: string; outcome: 'previous-copy' | 'rebuilt' } | undefined }> {
  const r = await readWithFallback(path.join(dir, META_FILE), (text) => {
    const parsed = MetaFile.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
    if (parsed.data.version === 2 && bodyCrc(parsed.data.start, parsed.data.damage) !== parsed.data.crc) throw new Error('crc mismatch');
    return parsed.data;
  });
  if (r.value === undefined) {
    const detail = `${META_FILE} is ${r.problem}: the start comes from the checkpoint or the segments, and damaged ranges found before are found again when read`;
    return { meta: { start: 0, damage: [], version: 0 }, ...(!r.missing && { problem: { detail, outcome: 'rebuilt' as const } }) };
  }
  const v = r.value;
  const start = Number.isSafeInteger(v.start) && v.start >= 1 ? v.start : 0;
  return {
    meta: { start, damage: v.version === 2 ? v.damage : [], version: v.version },
    ...(r.source === 'previous-copy' && {
      problem: { detail: `${META_FILE} was ${r.problem ?? 'unusable'}: its previous copy was used`, outcome: 'previous-copy' as const },
    }),
  };
}

/** Writes `meta` atomically (the previous version kept beside it). */
export function writePartitionMeta(dir: string, start: number, damage: readonly CorruptRange[], sync: boolean): Promise<void> {
  const entries = damage.map(({ segment, fromOffset, toOffset, messages, detail, foundAt }) => ({
    segment,
    fromOffset,
    toOffset,
    messages,
    detail,
    foundAt,
  }));
  const body = { version: 2, start, damage: entries, crc: bodyCrc(start, entries) };
  return writeAtomic(path.join(dir, META_FILE), JSON.stringify(body), { sync });
}

/**
 * The damaged ranges of one partition: those found earlier (from `meta`) and those found since. A range
 * is identified by its segment and offsets, so the same damage found again (a rescan, a second read) is
 * not a new one.
 */
export class DamageRegistry {
  private readonly ranges: CorruptRange[];
  private readonly keys = new Set<string>();

  constructor(known: readonly CorruptRange[]) {
    this.ranges = [];
    for (const r of known) this.add(r);
  }

  private add(r: CorruptRange): void {
    this.keys.add(key(r));
    this.ranges.push(r);
  }

  /** Records a range; returns it when it is new, undefined when it was known. */
  record(r: Omit<CorruptRange, 'foundAt' | 'messages'> & { messages?: number }, now = Date.now()): CorruptRange | undefined {
    const full: CorruptRange = { ...r, messages: r.messages ?? Math.max(0, r.toOffset - r.fromOffset + 1), foundAt: now };
    if (this.keys.has(key(full))) return undefined;
    this.add(full);
    return full;
  }

  /** Ranges that still hold a retained offset (or, for ranges that lost no offset, that lie at or after the start). */
  retained(start: number): CorruptRange[] {
    return this.ranges.filter((r) => Math.max(r.toOffset, r.fromOffset) >= start);
  }

  /** Forgets ranges wholly below the start (retention dropped them); true when any was dropped. */
  prune(start: number): boolean {
    const keep = this.retained(start);
    if (keep.length === this.ranges.length) return false;
    this.ranges.length = 0;
    this.keys.clear();
    for (const r of keep) this.add(r);
    return true;
  }

  get all(): readonly CorruptRange[] {
    return this.ranges;
  }
}

function key(r: CorruptRange): string {
  return `${r.segment}:${r.fromOffset}:${r.toOffset}`;
}

/** Offsets known to hold no record, as disjoint sorted ranges (for `count`). */
export class GapSet {
  private ranges: Array<[number, number]> = [];

  add(from: number, to: number): void {
    if (to < from) return;
    const out: Array<[number, number]> = [];
    let lo = from;
    let hi = to;
    for (const [a, b] of this.ranges) {
      if (b < lo - 1 || a > hi + 1) out.push([a, b]);
      else {
        lo = Math.min(lo, a);
        hi = Math.max(hi, b);
      }
    }
    out.push([lo, hi]);
    out.sort((x, y) => x[0] - y[0]);
    this.ranges = out;
  }

  /** Offsets of the gaps within [start, next). */
  within(start: number, next: number): number {
    let n = 0;
    for (const [a, b] of this.ranges) {
      const lo = Math.max(a, start);
      const hi = Math.min(b, next - 1);
      if (hi >= lo) n += hi - lo + 1;
    }
    return n;
  }
}
