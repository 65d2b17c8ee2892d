/**
 * The embedded store's metadata files as start-up reads them: station.json and group.json, each from
 * the file, else its previous copy (written back), else rebuilt from what the data says — logged at
 * error and reported as a `metadata-repair` event.
 */
import { stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { StationConfigInput, StationName } from '@junction/protocol';
import { z } from 'zod';
import { legacyStationId, type StationConfig, type StoreEvent } from '../contract.js';
import { readWithFallback, writeAtomic as writeFileAtomic } from '../atomic-file.js';
import type { GroupMeta } from './group.js';
import type { StationMeta, StationRt } from './station.js';

export const DLS_SUFFIX = '.dls';
const StationMetaFile = z.object({
  name: StationName,
  /** Absent in files written before incarnation ids (see legacyStationId). */
  id: z.string().min(1).max(64).optional(),
  config: StationConfigInput,
  createdAt: z.number(),
  deadLetterOf: z.string().optional(),
  rebuilt: z.object({ at: z.number(), detail: z.string() }).optional(),
});
const GroupMetaFile = z.object({
  createdAt: z.number(),
  /** Absent: the station's setting applies (a change of the station's reaches the group). */
  maxAckTimeMs: z.number().int().positive().optional(),
  maxDeliveries: z.number().int().positive().optional(),
});

/** Reads (and repairs) metadata files; what it finds goes to the log and the store's events. */
export class MetadataReader {
  constructor(
    private readonly log: Logger,
    private readonly emit: (e: StoreEvent) => void,
  ) {}

  /**
   * station.json, else its previous copy (then written back), else a station rebuilt from the partition
   * directories (options other than the partition count are guesses; retention keeps everything until
   * the station is updated). `reason` when none of that works.
   */
  async readStationMeta(name: string, dir: string, now: number): Promise<{ meta: StationMeta; note?: string } | { reason: string }> {
    const file = join(dir, 'station.json');
    const r = await readWithFallback(file, (text) => {
      const parsed = StationMetaFile.safeParse(JSON.parse(text));
      if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
      if (parsed.data.name !== name) throw new Error(`it names station "${parsed.data.name}", not "${name}"`);
      return { ...parsed.data, id: parsed.data.id ?? legacyStationId(parsed.data.name, parsed.data.createdAt) } as StationMeta;
    });
    if (r.value !== undefined) {
      if (r.source === 'file') return { meta: r.value };
      const note = `station.json was ${r.problem ?? 'unusable'}: loaded its previous copy (an update made just before may be undone: check the station's options)`;
      this.log.error({ station: name, file }, note);
      this.emit({ type: 'metadata-repair', station: name, file: 'station.json', outcome: 'previous-copy', detail: note });
      await this.repairFile(file, JSON.stringify(r.value), name);
      return { meta: r.value, note };
    }
    const partitions = await countPartitionDirs(join(dir, 'partitions'));
    if (partitions === 0) return { reason: `station.json is ${r.problem}, and there are no partition directories to rebuild it from` };
    const detail = `station.json was ${r.problem}: rebuilt from its ${partitions} partition director${partitions === 1 ? 'y' : 'ies'}; its other options are defaults, with retention keeping everything — set them with an update (PATCH), which also clears this`;
    const deadLetterOf = name.endsWith(DLS_SUFFIX) ? name.slice(0, -DLS_SUFFIX.length) : undefined;
    const base = StationConfigInput.parse({ partitions, retention: {} });
    const config: StationConfig = deadLetterOf !== undefined ? { ...dlsConfig(base), retention: {} } : base;
    const createdAt = await stat(dir).then(
      (s) => Math.round(s.birthtimeMs || s.mtimeMs),
      () => now,
    );
    // Its incarnation id was in the lost file: a rebuilt station gets one derived from name and directory time.
    const meta: StationMeta = {
      name,
      id: legacyStationId(name, createdAt),
      config,
      createdAt,
      ...(deadLetterOf !== undefined && { deadLetterOf }),
      rebuilt: { at: now, detail },
    };
    this.log.error({ station: name, partitions }, detail);
    this.emit({ type: 'metadata-repair', station: name, file: 'station.json', outcome: 'rebuilt', detail });
    await this.repairFile(file, JSON.stringify(meta), name);
    return { meta };
  }

  /** Writes a repaired metadata file and a copy of it (the damaged one is not kept as the copy). */
  async repairFile(file: string, data: string, station: string): Promise<void> {
    try {
      await writeFileAtomic(file, data, { keepPrevious: false });
      await writeFileAtomic(file, data);
    } catch (err) {
      // The next start recovers it again; the station serves meanwhile.
      this.log.error({ err, station, file }, 'could not write the repaired metadata file');
    }
  }

  /** group.json, else its previous copy, else rebuilt with the station's deadlines (its journal keeps the progress). */
  async readGroupMeta(st: StationRt, group: string, dir: string): Promise<GroupMeta> {
    const file = join(dir, 'group.json');
    const r = await readWithFallback(file, (text) => {
      const parsed = GroupMetaFile.safeParse(JSON.parse(text));
      if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
      return parsed.data;
    });
    if (r.value !== undefined && r.source === 'file') return r.value;
    let meta: GroupMeta;
    let note: string;
    if (r.value !== undefined) {
      meta = r.value;
      note = `group "${group}": group.json was ${r.problem ?? 'unusable'}: loaded its previous copy`;
    } else {
      const createdAt = await stat(dir).then(
        (s) => Math.round(s.birthtimeMs || s.mtimeMs),
        () => Date.now(),
      );
      // No settings of its own: it follows the station's ack deadline and maxDeliveries.
      meta = { createdAt };
      note = `group "${group}": group.json was ${r.problem}: rebuilt from its journal with the station's ack deadline (${st.config.deadLetter.maxAckTimeMs} ms) and maxDeliveries (${st.config.deadLetter.maxDeliveries})`;
    }
    st.notes.push(note);
    this.log.error({ station: st.name, group, file }, note);
    this.emit({
      type: 'metadata-repair',
      station: st.name,
      group,
      file: 'group.json',
      outcome: r.value !== undefined ? 'previous-copy' : 'rebuilt',
      detail: note,
    });
    await this.repairFile(file, JSON.stringify(meta), st.name);
    return meta;
  }
}

/**
 * Group settings written before groups inherited the station's dead-letter settings held copies of them:
 * a copy equal to the station's current value is taken as inherited (the group then follows later changes).
 */
export function inheritDefaults(meta: GroupMeta, config: StationConfig): GroupMeta {
  const out: GroupMeta = { createdAt: meta.createdAt };
  if (meta.maxAckTimeMs !== undefined && meta.maxAckTimeMs !== config.deadLetter.maxAckTimeMs) out.maxAckTimeMs = meta.maxAckTimeMs;
  if (meta.maxDeliveries !== undefined && meta.maxDeliveries !== config.deadLetter.maxDeliveries) out.maxDeliveries = meta.maxDeliveries;
  return out;
}

export function dlsConfig(origin: StationConfig): StationConfig {
  // Dead letters keep what failed as it was: the origin's schema does not apply to them.
  const { schema: _schema, ...rest } = origin;
  return {
    ...rest,
    partitions: 1,
    retention: { maxAgeMs: 30 * 24 * 3600_000 },
    dedupWindowMs: 10 * 60_000,
    maxMessageBytes: 64 * 1024 * 1024,
    deadLetter: { ...origin.deadLetter, enabled: false },
  };
}

/** How many partition directories (0, 1, … with no hole) a station directory holds: what a lost station.json is rebuilt from. */
async function countPartitionDirs(dir: string): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const have = new Set(names.filter((n) => /^(0|[1-9]\d*)$/.test(n)).map(Number));
  let n = 0;
  while (have.has(n)) n++;
  return n;
}
