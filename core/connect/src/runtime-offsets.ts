/**
 * The connector runtime's offsets operations (see runtime.ts): Kafka Connect's offsets view, setting
 * and resetting them. The runtime checks the connector is STOPPED, learns its kind and holds its lock;
 * these functions do the work against the store (sinks: the group's cursors) or the position store
 * (sources: the stored positions).
 */
import type { StationStore } from '@junction/broker';
import type { ConnectorDeclaration } from './declaration.js';
import { groupName } from './declaration.js';
import { codeOf, configInvalid } from './errors.js';
import type { PositionStore } from './positions.js';
import type { parseOffsetsBody } from './runtime-helpers.js';
import { moveOffsets } from './offsets-to.js';
import type { offsetsTarget } from './offsets-to.js';
import { SinkRunner } from './sink-runner.js';
import type { OffsetEntry } from './runtime-types.js';

/** What the offsets operations work on. */
export interface OffsetsDeps {
  store: StationStore;
  positions: PositionStore;
}

type Kind = 'sink' | 'source' | undefined;

/** The offsets view of `d` (see ConnectRuntime.offsets). */
export async function readOffsets(deps: OffsetsDeps, d: ConnectorDeclaration, kind: Kind): Promise<{ offsets: OffsetEntry[] }> {
  if (kind === 'source') {
    const positions = await deps.positions.load(d.name);
    return { offsets: Object.entries(positions).map(([task, offset]) => ({ partition: { task: Number(task) }, offset })) };
  }
  try {
    const g = await deps.store.getGroup(d.station, groupName(d.name));
    return {
      offsets: g.partitions.map((p) => ({ partition: { station: d.station, partition: p.partition }, offset: { offset: p.ackFloor } })),
    };
  } catch (err) {
    if (codeOf(err) === 'GROUP_NOT_FOUND') return { offsets: [] };
    throw err;
  }
}

/**
 * Sets the offsets of `d` (see ConnectRuntime.setOffsets): moves them to `to` when given, else to the
 * parsed `entries`. Called under the connector's lock, while it is STOPPED.
 */
export async function writeOffsets(
  deps: OffsetsDeps,
  d: ConnectorDeclaration,
  kind: Kind,
  to: ReturnType<typeof offsetsTarget>,
  entries: ReturnType<typeof parseOffsetsBody>,
): Promise<{ message: string; offsets?: OffsetEntry[] }> {
  if (to)
    return moveOffsets({
      store: deps.store,
      positions: deps.positions,
      decl: d,
      kind,
      to,
      ensureGroup: () => ensureSinkGroup(deps.store, d),
    });
  if (kind === 'source') {
    const positions = await deps.positions.load(d.name);
    entries.forEach((e, i) => {
      const task = e.partition.task;
      if (typeof task !== 'number' || !Number.isInteger(task) || task < 0 || task >= d.tasks) {
        throw configInvalid('offsets', [{ path: `offsets[${i}].partition.task`, message: `must be a task id from 0 to ${d.tasks - 1}` }]);
      }
      if (e.offset === null) delete positions[String(task)];
      else positions[String(task)] = e.offset;
    });
    await deps.positions.save(d.name, positions);
    return { message: `the offsets of source connector ${d.name} were changed` };
  }
  const station = await deps.store.getStation(d.station);
  await ensureSinkGroup(deps.store, d);
  const targets = entries.map((e, i) => {
    const partition = e.partition.partition;
    const off = (e.offset as { offset?: unknown } | null)?.offset;
    if (typeof partition !== 'number' || !station.partitions.some((p) => p.partition === partition)) {
      throw configInvalid('offsets', [
        {
          path: `offsets[${i}].partition.partition`,
          message: `must be a partition of ${d.station} (0 to ${station.partitions.length - 1})`,
        },
      ]);
    }
    if (typeof off !== 'number' || !Number.isInteger(off) || off < 1) {
      throw configInvalid('offsets', [
        { path: `offsets[${i}].offset.offset`, message: 'must be an integer ≥ 1 (the next offset to process)' },
      ]);
    }
    return { partition, offset: off };
  });
  for (const t of targets)
    await deps.store.seek(d.station, groupName(d.name), { type: 'offset', partition: t.partition, offset: t.offset });
  return { message: `the offsets of sink connector ${d.name} were changed` };
}

/** Resets the offsets of `d` (see ConnectRuntime.resetOffsets). Called under the connector's lock, while it is STOPPED. */
export async function resetOffsetsOf(deps: OffsetsDeps, d: ConnectorDeclaration, kind: Kind): Promise<{ message: string }> {
  if (kind === 'source') {
    await deps.positions.remove(d.name);
    return { message: `the offsets of source connector ${d.name} were reset` };
  }
  try {
    await deps.store.seek(d.station, groupName(d.name), { type: 'earliest' });
  } catch (err) {
    if (codeOf(err) !== 'GROUP_NOT_FOUND') throw err;
  }
  return { message: `the offsets of sink connector ${d.name} were reset` };
}

/** Creates the sink connector's group (from the earliest message) unless it exists. */
export async function ensureSinkGroup(store: StationStore, d: ConnectorDeclaration): Promise<void> {
  try {
    await store.createGroup(d.station, groupName(d.name), {
      start: { type: 'earliest' },
      maxAckTimeMs: SinkRunner.ackDeadlineMs(d),
      maxDeliveries: 1000,
    });
  } catch (err) {
    if (codeOf(err) !== 'GROUP_EXISTS') throw err;
  }
}
