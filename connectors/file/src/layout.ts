/**
 * Where files go: `<dir>/<station>/<partition>/<first offset, 20 digits>-<last offset>.<station id>.jsonl[.gz]`.
 * A file holds exactly the offsets first..last of the station incarnation its name gives (the sink never
 * writes a file over a gap), so the names alone tell which offsets of which incarnation are in the
 * directory. `<station id>` is `stationIdSegment(SinkBatch.stationId)`. Files written before station ids
 * have no such segment (`<first>-<last>.jsonl`): they belong to the incarnation named in the directory's
 * `.junction-legacy-owner` (see sink.ts). Temp files start with "." and end in ".tmp"; nothing else in a
 * partition directory is ours.
 */
import { isAbsolute, join, relative, resolve } from 'node:path';
import { ErrorCode, JunctionError } from '@junction/sdk-connector';

const DATA_FILE_RE = /^(\d{20})-(\d+)(?:\.([A-Za-z0-9_-]{1,64}))?\.jsonl(\.gz)?$/;
const TEMP_FILE_RE = /^\..+\.tmp$/;
/** Safe as one path segment on every OS: no separators, no NUL, not ".", "..", nor hidden. */
const SEGMENT_RE = /^[^/\\\0.][^/\\\0]{0,254}$/;

/** The file a partition directory names the owner of its files without a station id in. */
export const LEGACY_OWNER_FILE = '.junction-legacy-owner';

/** A data file's name; `stationId` is the incarnation's segment (`stationIdSegment`). */
export function dataFileName(first: number, last: number, stationId: string, gzip: boolean): string {
  return `${String(first).padStart(20, '0')}-${last}.${stationId}.jsonl${gzip ? '.gz' : ''}`;
}

/**
 * The offsets and incarnation a data file name claims (`stationId` undefined: written before station
 * ids), or undefined for a name that is not a data file.
 */
export function parseDataFileName(name: string): { first: number; last: number; stationId?: string; gzip: boolean } | undefined {
  const m = DATA_FILE_RE.exec(name);
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 1 || last < first) return undefined;
  return { first, last, ...(m[3] === undefined ? {} : { stationId: m[3] }), gzip: m[4] !== undefined };
}

export function isTempFileName(name: string): boolean {
  return TEMP_FILE_RE.test(name);
}

export function tempFileName(finalName: string): string {
  return `.${finalName}.${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`;
}

/**
 * The directory of a station's partition, confined to `root`. Throws JunctionError SINK_REJECTED
 * (not retryable) for a station name that is not one safe path segment or a bad partition number.
 */
export function partitionDir(root: string, station: string, partition: number): string {
  if (typeof station !== 'string' || !SEGMENT_RE.test(station)) {
    throw new JunctionError(
      ErrorCode.SINK_REJECTED,
      `station name ${JSON.stringify(station)} cannot be a directory name (path separators, "..", leading "." or NUL)`,
      {
        retryable: false,
      },
    );
  }
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw new JunctionError(ErrorCode.SINK_REJECTED, `partition ${String(partition)} is not a non-negative integer`, { retryable: false });
  }
  const dir = resolve(root, station, String(partition));
  const rel = relative(root, dir);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new JunctionError(ErrorCode.SINK_REJECTED, `station ${JSON.stringify(station)} resolves outside the sink's directory`, {
      retryable: false,
    });
  }
  return join(root, station, String(partition));
}
