/**
 * Stations as code: makes the store match the `stations:` of the configuration.
 */
import { isDeepStrictEqual } from 'node:util';
import type { StationStore, StationInfo, StationPatch } from '@junction/broker';
import { isJunctionError } from './errors.js';
import type { StationDeclaration } from './config.js';

/** Options that can change on a live station, and so are brought in line with the file (`replicas`: cluster mode, when declared). */
export const MUTABLE_STATION_OPTIONS = [
  'retention',
  'dedupWindowMs',
  'dedupMaxIds',
  'maxMessageBytes',
  'deadLetter',
  'segmentBytes',
  'fsync',
  'replicas',
] as const;
/** Options fixed at creation: a difference is reported, never applied. */
export const IMMUTABLE_STATION_OPTIONS = ['partitions', 'storage'] as const;

export interface StationApplyError {
  station: string;
  code: string;
  message: string;
  /** The option that differs, for CONFIG_IMMUTABLE. */
  option?: string | undefined;
}

export interface ApplyStationsResult {
  created: string[];
  /** Stations whose mutable options were changed, with the options that changed. */
  updated: { station: string; options: string[] }[];
  unchanged: string[];
  /** Immutable differences (code CONFIG_IMMUTABLE; the station is left as it is) and store errors. */
  errors: StationApplyError[];
}

interface Log {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Brings the store in line with the declared stations: creates the missing ones, updates the mutable
 * options that differ (retention, dedupWindowMs, dedupMaxIds, maxMessageBytes, deadLetter, segmentBytes, fsync, and
 * replicas when declared, in cluster mode),
 * and reports immutable differences (partitions, storage) as errors without touching that station.
 * Stations that are not declared are left alone. A declaration without `fsync` (or `dedupMaxIds`) leaves
 * the station's as it is (they can be set but not unset).
 *
 * Never throws for one station's failure: each is logged and returned in `errors`, and the others
 * are still applied. Throws only what `listStations` throws (e.g. STORE_CLOSED).
 */
export async function applyStations(
  store: StationStore,
  desired: readonly StationDeclaration[],
  logger: Log,
): Promise<ApplyStationsResult> {
  const result: ApplyStationsResult = { created: [], updated: [], unchanged: [], errors: [] };
  const existing = new Map<string, StationInfo>((await store.listStations()).map((s) => [s.name, s]));

  for (const decl of desired) {
    const { name, ...config } = decl;
    const current = existing.get(name);
    try {
      if (!current) {
        await store.createStation(name, config);
        result.created.push(name);
        logger.info({ station: name }, 'station created from configuration');
        continue;
      }

      const immutable = IMMUTABLE_STATION_OPTIONS.filter((k) => !same(current.config[k], config[k]));
      if (immutable.length > 0) {
        for (const option of immutable) {
          const error: StationApplyError = {
            station: name,
            code: 'CONFIG_IMMUTABLE',
            option,
            message: `station "${name}": ${option} is ${JSON.stringify(current.config[option])} but the configuration says ${JSON.stringify(config[option])}; it cannot change after creation (delete and re-create the station to change it)`,
          };
          result.errors.push(error);
          logger.error(error, error.message);
        }
        continue;
      }

      const patch = diffMutable(current, config);
      const changed = Object.keys(patch);
      if (changed.length === 0) {
        result.unchanged.push(name);
        continue;
      }
      await store.updateStation(name, patch);
      result.updated.push({ station: name, options: changed });
      logger.info({ station: name, options: changed }, 'station updated from configuration');
    } catch (err) {
      const error: StationApplyError = {
        station: name,
        code: isJunctionError(err) ? err.code : 'INTERNAL',
        message: `station "${name}": ${err instanceof Error ? err.message : String(err)}`,
      };
      result.errors.push(error);
      logger.error(error, error.message);
    }
  }
  return result;
}

/** The patch that brings a live station's mutable options in line with a declaration (empty: nothing differs). */
export function diffMutable(current: StationInfo, desired: Omit<StationDeclaration, 'name'>): StationPatch {
  const patch: StationPatch = {};
  if (!same(current.config.retention, desired.retention)) patch.retention = desired.retention;
  if (current.config.dedupWindowMs !== desired.dedupWindowMs) patch.dedupWindowMs = desired.dedupWindowMs;
  // Like fsync: a declared bound is applied; undeclared, the station keeps what it has.
  if (desired.dedupMaxIds !== undefined && current.config.dedupMaxIds !== desired.dedupMaxIds) patch.dedupMaxIds = desired.dedupMaxIds;
  if (current.config.maxMessageBytes !== desired.maxMessageBytes) patch.maxMessageBytes = desired.maxMessageBytes;
  if (!same(current.config.deadLetter, desired.deadLetter)) patch.deadLetter = desired.deadLetter;
  if (current.config.segmentBytes !== desired.segmentBytes) patch.segmentBytes = desired.segmentBytes;
  if (desired.fsync !== undefined && current.config.fsync !== desired.fsync) patch.fsync = desired.fsync;
  // Cluster mode: a declared replica count is applied (JetStream moves replicas live); undeclared, the station keeps its own.
  const replicas = (current.config as { replicas?: number }).replicas;
  if (desired.replicas !== undefined && replicas !== desired.replicas)
    (patch as StationPatch & { replicas?: number }).replicas = desired.replicas;
  return patch;
}

/** Deep equality that ignores keys set to undefined (a store may echo `maxBytes: undefined`). */
export function same(a: unknown, b: unknown): boolean {
  const norm = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
  return isDeepStrictEqual(norm(a), norm(b));
}
