/** How a station of the embedded store is doing, as StationInfo shows it (health, damage) — and what a damaged one is listed as. */
import { StationConfigInput } from '@junction/protocol';
import { legacyStationId, type DamagedRange, type StationHealth, type StationInfo } from '../contract.js';
import type { StationRt } from './station.js';
import { DLS_SUFFIX } from './store-metadata.js';

/** A station whose metadata could not be recovered: listed, but it cannot serve. */
export interface DamagedStation {
  name: string;
  dir: string;
  reason: string;
  foundAt: number;
}

/** The retained damaged ranges of the station's partitions, oldest first. */
export function damageOf(st: StationRt): DamagedRange[] {
  const out: DamagedRange[] = [];
  st.logs.forEach((log, partition) => {
    for (const c of log.corruptRanges)
      out.push({ partition, fromOffset: c.fromOffset, toOffset: c.toOffset, messages: c.messages, detail: c.detail, foundAt: c.foundAt });
  });
  return out.sort((a, b) => a.foundAt - b.foundAt || a.partition - b.partition || a.fromOffset - b.fromOffset);
}

/** The station's health: its retained damage, a rebuilt station.json, repairs noted this run. */
export function stationHealth(st: StationRt, damage = damageOf(st)): StationHealth {
  const reasons: string[] = [];
  for (const d of damage) {
    reasons.push(
      d.messages > 0
        ? `partition ${d.partition}: ${d.messages} message${d.messages === 1 ? '' : 's'} lost (offsets ${d.fromOffset}–${d.toOffset}): ${d.detail}`
        : `partition ${d.partition}: damaged bytes skipped near offset ${d.fromOffset} (no message lost): ${d.detail}`,
    );
  }
  if (st.meta.rebuilt) reasons.push(st.meta.rebuilt.detail);
  reasons.push(...st.notes);
  return { status: reasons.length > 0 ? 'degraded' : 'ok', reasons };
}

/** What a damaged station is listed as: its name, default options, nothing stored, and why. */
export function damagedInfo(d: DamagedStation): StationInfo {
  return {
    name: d.name,
    // Its id was in the lost metadata.
    id: legacyStationId(d.name, d.foundAt),
    config: StationConfigInput.parse({}),
    createdAt: d.foundAt,
    ...(d.name.endsWith(DLS_SUFFIX) && { deadLetterOf: d.name.slice(0, -DLS_SUFFIX.length) }),
    partitions: [],
    messages: 0,
    bytes: 0,
    groups: [],
    health: {
      status: 'damaged',
      reasons: [
        `its metadata is lost (${d.reason}); its options and contents are unknown: delete it, or restore its station.json and restart`,
      ],
    },
    damage: [],
  };
}
