/**
 * Group operations of the embedded store (see store.ts) that need only the station: start positions
 * (create, seek) and loading a station's groups at open.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { StartPosition } from '@junction/protocol';
import type { StoreEvent } from '../contract.js';
import { ErrorCode, JunctionError } from '../errors.js';
import { GroupRt } from './group.js';
import type { StationRt } from './station.js';
import { inheritDefaults, type MetadataReader } from './store-metadata.js';

/** Start offsets per partition for a position; undefined for partitions a position leaves alone. */
export async function startPositions(st: StationRt, pos: StartPosition): Promise<(number | undefined)[]> {
  const out: (number | undefined)[] = [];
  for (let p = 0; p < st.partitionCount; p++) {
    const { first, end } = st.bounds(p);
    switch (pos.type) {
      case 'earliest':
        out.push(first);
        break;
      case 'latest':
        out.push(end);
        break;
      case 'offset':
        if (pos.partition !== undefined && pos.partition >= st.partitionCount) {
          throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${st.name}" has no partition ${pos.partition}`);
        }
        if (pos.partition !== undefined && pos.partition !== p) {
          out.push(undefined);
          break;
        }
        // Past the end is an error (it would skip messages not yet produced); below the first retained
        // offset means the first retained one (retention removed the rest).
        if (pos.offset > end) {
          throw new JunctionError(
            ErrorCode.OFFSET_OUT_OF_RANGE,
            `offset ${pos.offset} is past the end of partition ${p} of station "${st.name}" (next offset ${end})`,
            {
              issues: [{ path: 'offset', message: `at most ${end}` }],
            },
          );
        }
        out.push(Math.max(pos.offset, first));
        break;
      case 'timestamp':
        out.push(Math.min(Math.max(await st.logs[p]!.offsetForTimestamp(pos.timestamp), first), end));
        break;
    }
  }
  return out;
}

/**
 * Loads the groups of a persistent station (leftover `.tmp-…` directories removed): a damaged or
 * missing journal is noted on the station, logged and reported (metadata-repair); a group that cannot
 * be loaded is noted and logged.
 */
export async function loadGroups(st: StationRt, reader: MetadataReader, log: Logger, emit: (e: StoreEvent) => void): Promise<void> {
  if (!st.persistent) return;
  const gdir = join(st.dir, 'groups');
  const entries = await readdir(gdir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const dir = join(gdir, e.name);
    if (e.name.startsWith('.tmp-')) {
      await rm(dir, { recursive: true, force: true });
      continue;
    }
    try {
      const meta = inheritDefaults(await reader.readGroupMeta(st, e.name, dir), st.config);
      const { group, damaged, missing } = await GroupRt.load(e.name, meta, st, dir);
      if (damaged || missing) {
        const note = missing
          ? `group "${e.name}": its journal is missing: it restarts from the first retained offsets (messages are delivered again)`
          : `group "${e.name}": its journal had a damaged tail: progress recorded after it is lost and those messages will be delivered again`;
        st.notes.push(note);
        log.error({ station: st.name, group: e.name }, note);
        emit({
          type: 'metadata-repair',
          station: st.name,
          group: e.name,
          file: 'journal',
          outcome: missing ? 'reset' : 'rebuilt',
          detail: note,
        });
      }
      st.groups.set(e.name, group);
    } catch (err) {
      const note = `group "${e.name}" could not be loaded: ${err instanceof Error ? err.message : String(err)}`;
      st.notes.push(note);
      log.error({ err, station: st.name, group: e.name }, 'group could not be loaded');
    }
  }
}
