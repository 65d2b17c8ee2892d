/**
 * Where source connectors keep their positions (one per task). The runtime reads and writes them
 * through a `PositionStore`:
 * - `FilePositionStore` (the default, one node): `<dataDir>/connect/offsets/<name>.json`, written
 *   atomically;
 * - `@junction/cluster`'s `ClusterPositions` (core/server injects it when `cluster.nats` is set): a key
 *   of the shared metadata bucket, so a source that moves to another node resumes from the position its
 *   last owner stored.
 *
 * Fencing (cluster): a runner passes the fencing token of the lease it runs under (`Placement.fence`,
 * increasing with every take and renewal of the lease). `load` with a fence first claims the positions
 * for that token; `save` with a fence fails with `POSITION_FENCED` once a larger token claimed them, so
 * a stale owner (its lease lost, still finishing a write) can never overwrite a newer position. Calls
 * without a fence (REST, while the connector is STOPPED) keep the stored token.
 */
import { join } from 'node:path';
import type { JsonValue } from '@junction/sdk-connector';
import { readJsonWithFallback, removeFile, writeJsonAtomic } from './files.js';
import { ConnectErrorCode, connectError } from './errors.js';

export type SourcePositions = Record<string, JsonValue>;

export interface PositionStore {
  /** The stored positions of a source connector ({} when none). With a fence: claims them for it first (throws POSITION_FENCED when a newer fence holds them). */
  load(connector: string, fence?: number): Promise<SourcePositions>;
  /** Replaces the stored positions. With a fence: only while no newer fence claimed them (else POSITION_FENCED). */
  save(connector: string, positions: SourcePositions, fence?: number): Promise<void>;
  /** Removes them (reset offsets). */
  remove(connector: string): Promise<void>;
}

/** The stored positions of a source connector: one per task. */
export interface SourceOffsetsFile {
  version: 1;
  positions: SourcePositions;
}

/**
 * The stored positions (file, else its previous copy); {} when none were ever stored. A file that is
 * there but unusable, with no usable copy, throws POSITIONS_DAMAGED: starting over from no position
 * would read the origin again from the beginning (reset the offsets to mean that).
 */
export async function readSourcePositions(path: string): Promise<SourcePositions> {
  const r = await readJsonWithFallback(path, (raw): SourcePositions => {
    const positions = (raw as Partial<SourceOffsetsFile> | null)?.positions;
    if (typeof positions !== 'object' || positions === null || Array.isArray(positions)) throw new Error('it holds no positions object');
    return positions;
  });
  if (r.value !== undefined) return r.value;
  if (r.missing) return {};
  throw connectError(
    ConnectErrorCode.POSITIONS_DAMAGED,
    `the stored source positions in ${path} are ${r.problem}: the source does not start over by itself; restore the file, or reset the connector's offsets (DELETE /v1/connectors/:name/offsets) to read from the beginning`,
  );
}

export async function writeSourcePositions(path: string, positions: SourcePositions): Promise<void> {
  if (Object.keys(positions).length === 0) await removeFile(path);
  else await writeJsonAtomic(path, { version: 1, positions } satisfies SourceOffsetsFile);
}

/** One node: `<dir>/<name>.json` (dir = `<dataDir>/connect/offsets`). Fences are ignored (one owner). */
export class FilePositionStore implements PositionStore {
  constructor(readonly dir: string) {}
  pathOf(connector: string): string {
    return join(this.dir, `${encodeURIComponent(connector)}.json`);
  }
  load(connector: string): Promise<SourcePositions> {
    return readSourcePositions(this.pathOf(connector));
  }
  save(connector: string, positions: SourcePositions): Promise<void> {
    return writeSourcePositions(this.pathOf(connector), positions);
  }
  remove(connector: string): Promise<void> {
    return removeFile(this.pathOf(connector));
  }
}
