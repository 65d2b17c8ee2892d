/**
 * The store's manifest (`<dataDir>/stations.manifest`): written by a clean close, after every station's
 * logs closed cleanly; it lists the healthy file stations with their metadata and each partition's
 * summary (log/lazy-log.ts), so the next start opens them without reading a file of theirs — each
 * partition opens on its first use. It is removed (and the removal fsynced) when the store opens,
 * before anything is written: after a crash there is none, and start-up reads every station directory
 * as before. A manifest that does not check out (crc, version, shape) is ignored the same way.
 *
 * Format: JSON `{ version: 1, crc, body }`, `body` a JSON string of `{ configs: StationConfig[],
 * stations: [name, id, createdAt, configIndex, deadLetterOf | null, hasGroups, partitions][] }`,
 * `partitions` as `[firstOffset, nextOffset, count, bytes, msgIds (0|1), firstTimestamp | null][]`;
 * `crc` is the crc32 of `body`. Configs are shared: stations created alike cost one entry.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { StationConfig } from '@junction/protocol';
import { fsyncDir, writeAtomic } from '../atomic-file.js';
import type { LogSummary } from '../log/lazy-log.js';
import type { StationMeta } from './station.js';

/** The manifest's file name in the data dir. */
export const MANIFEST_FILE = 'stations.manifest';
const VERSION = 1;

/** One station of the manifest. */
export interface ManifestStation {
  meta: StationMeta;
  /** The station had consumer groups at the stop (their journals are read at start). */
  hasGroups: boolean;
  partitions: LogSummary[];
}

type Row = [string, string, number, number, string | null, boolean, Array<[number, number, number, number, number, number | null]>];

/** Writes the manifest atomically (fsynced). */
export async function writeManifest(dataDir: string, stations: Iterable<ManifestStation>): Promise<number> {
  const configs: StationConfig[] = [];
  const configIndex = new Map<string, number>();
  const rows: Row[] = [];
  for (const s of stations) {
    const key = JSON.stringify(s.meta.config);
    let ci = configIndex.get(key);
    if (ci === undefined) {
      ci = configs.length;
      configs.push(s.meta.config);
      configIndex.set(key, ci);
    }
    rows.push([
      s.meta.name,
      s.meta.id,
      s.meta.createdAt,
      ci,
      s.meta.deadLetterOf ?? null,
      s.hasGroups,
      s.partitions.map((p) => [
        p.firstOffset,
        p.nextOffset,
        p.count,
        p.bytes,
        p.msgIds ? 1 : 0,
        p.firstTimestamp !== null && Number.isFinite(p.firstTimestamp) ? p.firstTimestamp : null,
      ]),
    ]);
  }
  const body = JSON.stringify({ configs, stations: rows });
  await writeAtomic(join(dataDir, MANIFEST_FILE), JSON.stringify({ version: VERSION, crc: crc32(body), body }), { keepPrevious: false });
  return rows.length;
}

const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * Reads the manifest and removes it (fsyncing the removal) — it describes the files as they were at the
 * stop, so it must not outlive this start. Undefined when there is none or it does not check out.
 */
export async function takeManifest(dataDir: string): Promise<Map<string, ManifestStation> | undefined> {
  const file = join(dataDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  await rm(file, { force: true });
  await fsyncDir(dataDir);
  try {
    const outer = JSON.parse(text) as { version?: unknown; crc?: unknown; body?: unknown };
    if (outer.version !== VERSION || typeof outer.body !== 'string' || outer.crc !== crc32(outer.body)) return undefined;
    const { configs, stations } = JSON.parse(outer.body) as { configs: StationConfig[]; stations: Row[] };
    if (!Array.isArray(configs) || !Array.isArray(stations)) return undefined;
    const out = new Map<string, ManifestStation>();
    for (const r of stations) {
      const [name, id, createdAt, ci, deadLetterOf, hasGroups, parts] = r;
      const config = configs[ci];
      if (
        typeof name !== 'string' ||
        typeof id !== 'string' ||
        typeof createdAt !== 'number' ||
        !config ||
        !Array.isArray(parts) ||
        parts.length !== config.partitions
      )
        return undefined;
      const partitions: LogSummary[] = [];
      for (const p of parts) {
        const [firstOffset, nextOffset, count, bytes, msgIds, firstTimestamp] = p;
        if (![firstOffset, nextOffset, count, bytes].every(isInt) || firstOffset < 1 || nextOffset < firstOffset) return undefined;
        partitions.push({
          firstOffset,
          nextOffset,
          count,
          bytes,
          msgIds: msgIds === 1,
          firstTimestamp: typeof firstTimestamp === 'number' ? firstTimestamp : null,
        });
      }
      out.set(name, {
        meta: { name, id, config, createdAt, ...(deadLetterOf !== null && { deadLetterOf }) },
        hasGroups: hasGroups === true,
        partitions,
      });
    }
    return out;
  } catch {
    return undefined;
  }
}
