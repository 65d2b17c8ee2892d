/**
 * `PATCH /v1/connectors/:name/offsets` with `{ to: … }`: a Junction addition to Kafka Connect's KIP-875
 * body, which only takes explicit offsets. A sink's group is moved to a position the store computes per
 * partition — `earliest`, `latest`, `{ type: 'timestamp', timestamp }` (the first message at or after
 * that time, per partition; the end when none is) or `{ type: 'offset', offset, partition? }` — and the
 * answer names the offset each partition now starts from. A source's positions belong to its plugin:
 * only `earliest` (forget them: the plugin starts over) applies.
 */
import { z } from 'zod';
import { StartPosition } from '@junction/protocol';
import type { StationStore } from '@junction/broker';
import { groupName } from './declaration.js';
import type { ConnectorDeclaration } from './declaration.js';
import { configInvalid } from './errors.js';
import { formatPath } from './runtime-helpers.js';
import type { PositionStore } from './positions.js';
import type { OffsetEntry } from './runtime-types.js';

/** The `{ to }` body (exported for the OpenAPI document). */
export const ToBody = z.strictObject({ to: StartPosition });

/** The position of a `{ to }` body, checked; undefined for a KIP-875 `{ offsets }` body. @throws CONFIG_INVALID */
export function offsetsTarget(body: unknown): StartPosition | undefined {
  if (body === null || typeof body !== 'object' || !Object.hasOwn(body, 'to')) return undefined;
  const parsed = ToBody.safeParse(body);
  if (!parsed.success)
    throw configInvalid(
      'offsets',
      parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
    );
  return parsed.data.to;
}

export interface MoveOffsetsArgs {
  store: StationStore;
  positions: PositionStore;
  decl: ConnectorDeclaration;
  kind: 'sink' | 'source' | undefined;
  to: StartPosition;
  ensureGroup: () => Promise<void>;
}

/** Moves a stopped connector's offsets to `to` (the caller holds the connector's lock and checked STOPPED). */
export async function moveOffsets(a: MoveOffsetsArgs): Promise<{ message: string; offsets: OffsetEntry[] }> {
  const d = a.decl;
  if (a.kind === 'source') {
    if (a.to.type !== 'earliest')
      throw configInvalid('offsets', [
        { path: 'to.type', message: `a source connector's positions are its plugin's: only "earliest" (start over) applies` },
      ]);
    await a.positions.remove(d.name);
    return { message: `the offsets of source connector ${d.name} were reset`, offsets: [] };
  }
  await a.ensureGroup();
  const g = await a.store.seek(d.station, groupName(d.name), a.to);
  const what =
    a.to.type === 'timestamp'
      ? `to ${new Date(a.to.timestamp).toISOString()}`
      : a.to.type === 'offset'
        ? `to offset ${a.to.offset}`
        : `to the ${a.to.type}`;
  return {
    message: `the offsets of sink connector ${d.name} were moved ${what}`,
    offsets: g.partitions.map((p) => ({ partition: { station: d.station, partition: p.partition }, offset: { offset: p.ackFloor } })),
  };
}
