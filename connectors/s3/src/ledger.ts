import { OffsetRanges } from '@junction/sdk-connector';
/**
 * The ledger: how the sink knows, per station and partition, which offsets are in the bucket — the
 * basis of exactly-once whatever the path layout.
 *
 * A write of a batch is one **unit**: the offsets it adds (ranges) and the objects holding them. It is
 * recorded in two small marker objects under `<prefix>_junction/ledger/<station>/<partition>/`:
 *
 * 1. `pending/<last>-<first>.json` is put first, listing the unit's object keys;
 * 2. the data objects are uploaded;
 * 3. `done/<last>-<first>-<count>.json` is put (the commit point; it holds the ranges), then the
 *    pending marker is deleted. Only then are the messages answered ok.
 *
 * Loading a partition (the first write after open, and after any failed write) first rolls back every
 * pending unit that has no done marker — deletes its objects and aborts their multipart uploads — so
 * a crash mid-unit leaves nothing behind that a replay would duplicate; then it lists the done markers
 * whose last offset is ≥ the lowest offset the sink was asked to write (one listing thanks to
 * StartAfter: keys sort by last offset). A dense unit (count = last − first + 1) is known from its key
 * alone; only a unit with gaps is read. Offsets present are answered ok without being written again.
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from '@junction/sdk-connector';
import { errorName, httpStatus, isNotFound } from './errors.js';
import { ObjectMeta } from './formats/spec.js';
import { doneKey, doneStartAfter, ledgerDir, parseMarkerName, pendingKey } from './layout.js';

/** One object of a unit. */
export interface UnitObject {
  key: string;
  first: number;
  last: number;
  count: number;
}

/** What a marker holds. */
export interface Unit {
  v: 1;
  station: string;
  partition: number;
  first: number;
  last: number;
  count: number;
  /** The offsets the unit adds, as inclusive [first, last] ranges. */
  ranges: [number, number][];
  objects: UnitObject[];
  /** Who wrote it (for people reading the bucket). */
  writer: { connector: string; task: number };
}

/** What the sink knows about one partition. */
export interface PartitionState {
  present: OffsetRanges;
  /** Every offset ≥ this that is in the bucket is in `present`. */
  loadedFrom: number;
  dir: string;
}

const JSON_TYPE = 'application/json';

export class Ledger {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly log: Logger,
    private readonly onRollback: (unit: Unit) => void = () => {},
  ) {}

  /** Lists every key under `prefix` (StartAfter optional), page by page; `stop` ends the listing early. */
  async *list(prefix: string, startAfter?: string, signal?: AbortSignal): AsyncGenerator<string> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(token === undefined && startAfter !== undefined ? { StartAfter: startAfter } : {}),
          ...(token === undefined ? {} : { ContinuationToken: token }),
        }),
        signal ? { abortSignal: signal } : {},
      );
      for (const o of page.Contents ?? []) if (o.Key !== undefined) yield o.Key;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async getJson<T>(key: string, signal?: AbortSignal): Promise<T | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), signal ? { abortSignal: signal } : {});
      return JSON.parse((await res.Body?.transformToString('utf8')) ?? 'null') as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async putJson(key: string, body: unknown, signal?: AbortSignal): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: JSON.stringify(body), ContentType: JSON_TYPE }),
      signal ? { abortSignal: signal } : {},
    );
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), signal ? { abortSignal: signal } : {});
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Aborts unfinished multipart uploads to `key` (what a crash mid-upload leaves). Stores that do not
   * implement ListMultipartUploads (501 / NotImplemented) are skipped with a debug log: on them an
   * orphaned upload is invisible anyway and a lifecycle rule reclaims it.
   */
  private async abortUploads(key: string, signal?: AbortSignal): Promise<number> {
    let aborted = 0;
    try {
      const res = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }), signal ? { abortSignal: signal } : {});
      for (const u of res.Uploads ?? []) {
        if (u.Key !== key || u.UploadId === undefined) continue;
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: u.UploadId }), signal ? { abortSignal: signal } : {});
          aborted += 1;
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    } catch (err) {
      if (errorName(err) === 'NotImplemented' || httpStatus(err) === 501 || httpStatus(err) === 405) {
        this.log.debug({ key }, 'the store does not list multipart uploads; nothing to abort');
        return 0;
      }
      throw err;
    }
    return aborted;
  }

  /**
   * Deletes a unit's objects and unfinished uploads, then its pending marker. An object is deleted
   * only if its metadata says this unit wrote it: an object someone else put under one of the unit's
   * keys (the conflict a conditional write reports) is left alone.
   */
  async rollback(unit: Unit, signal?: AbortSignal): Promise<void> {
    const dir = ledgerDir(this.prefix, unit.station, unit.partition);
    for (const o of unit.objects) {
      await this.abortUploads(o.key, signal);
      let meta: Record<string, string> | undefined;
      try {
        meta = (await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: o.key }), signal ? { abortSignal: signal } : {})).Metadata ?? {};
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (meta === undefined) continue;
      if (meta[ObjectMeta.unit] === `${unit.first}-${unit.last}` && meta[ObjectMeta.station] === unit.station && meta[ObjectMeta.partition] === String(unit.partition)) {
        await this.delete(o.key, signal);
      } else {
        this.log.warn({ key: o.key }, 'an object under a key of an unfinished write was not written by it; leaving it alone');
      }
    }
    await this.delete(pendingKey(dir, unit.first, unit.last), signal);
    this.onRollback(unit);
    this.log.info({ station: unit.station, partition: unit.partition, first: unit.first, last: unit.last, objects: unit.objects.length }, 'rolled back an unfinished write');
  }

  /** Rolls back the partition's unfinished units and learns the offsets present from `from` on. */
  async load(station: string, partition: number, from: number, signal?: AbortSignal): Promise<PartitionState> {
    const dir = ledgerDir(this.prefix, station, partition);
    for await (const key of this.list(`${dir}pending/`, undefined, signal)) {
      const name = parseMarkerName(key.slice(key.lastIndexOf('/') + 1));
      if (!name) continue;
      let committed = false;
      for await (const _ of this.list(`${dir}done/${key.slice(key.lastIndexOf('/') + 1, -'.json'.length)}-`, undefined, signal)) {
        committed = true;
        break;
      }
      if (committed) {
        // Committed, but the crash came before its pending marker was deleted.
        await this.delete(key, signal);
        continue;
      }
      const unit = await this.getJson<Unit>(key, signal);
      if (unit) await this.rollback(unit, signal);
      else await this.delete(key, signal);
    }
    const state: PartitionState = { present: new OffsetRanges(), loadedFrom: Number.POSITIVE_INFINITY, dir };
    await this.extend(state, from, signal);
    return state;
  }

  /** Makes `state` know every present offset ≥ `from` (lists only what it did not know yet). */
  async extend(state: PartitionState, from: number, signal?: AbortSignal): Promise<void> {
    if (from >= state.loadedFrom) return;
    const until = state.loadedFrom;
    for await (const key of this.list(`${state.dir}done/`, doneStartAfter(state.dir, from), signal)) {
      const m = parseMarkerName(key.slice(key.lastIndexOf('/') + 1));
      if (!m) continue;
      if (m.last >= until) break;
      if (m.count === m.last - m.first + 1) {
        state.present.add(m.first, m.last);
        continue;
      }
      const unit = await this.getJson<Unit>(key, signal);
      for (const [a, b] of unit?.ranges ?? []) state.present.add(a, b);
    }
    state.loadedFrom = from;
  }

  /**
   * Step 1: the pending marker. Then the previous committed unit's pending marker of the partition is
   * deleted in the background, while this unit's objects go up — after this put, not beside it:
   * filesystem-backed stores (s3rver, MinIO in FS mode) remove a "directory" left empty by a delete
   * and can trip over a put into it at the same moment.
   */
  async begin(unit: Unit, signal?: AbortSignal): Promise<void> {
    const dir = ledgerDir(this.prefix, unit.station, unit.partition);
    await this.cleanups.get(dir);
    await this.putJson(pendingKey(dir, unit.first, unit.last), unit, signal);
    const previous = this.committed.get(dir);
    if (previous === undefined) return;
    this.committed.delete(dir);
    const cleanup: Promise<void> = this.delete(previous)
      .catch((err: unknown) => this.log.warn({ err, key: previous }, 'could not delete a pending marker; the next load removes it'))
      .finally(() => {
        if (this.cleanups.get(dir) === cleanup) this.cleanups.delete(dir);
      });
    this.cleanups.set(dir, cleanup);
  }

  /**
   * Step 3: the done marker (the commit point). The unit's pending marker stays until the next unit
   * of the partition begins (or {@link settle}): a pending marker beside its done marker is harmless,
   * a load just deletes it.
   */
  async commit(unit: Unit, signal?: AbortSignal): Promise<void> {
    const dir = ledgerDir(this.prefix, unit.station, unit.partition);
    await this.putJson(doneKey(dir, unit.first, unit.last, unit.count), unit, signal);
    this.committed.set(dir, pendingKey(dir, unit.first, unit.last));
  }

  /** Per partition: the pending marker of its last committed unit, not deleted yet. */
  private readonly committed = new Map<string, string>();
  /** Per partition: the background delete of a pending marker. */
  private readonly cleanups = new Map<string, Promise<void>>();

  /** Forgets a partition's leftovers after a failure (its next load sorts them out). */
  forget(station: string, partition: number): void {
    this.committed.delete(ledgerDir(this.prefix, station, partition));
  }

  /** Waits for background deletes, then deletes the pending markers of committed units (best effort). */
  async settle(): Promise<void> {
    await Promise.all([...this.cleanups.values()]);
    const keys = [...this.committed.values()];
    this.committed.clear();
    await Promise.all(keys.map((k) => this.delete(k).catch(() => undefined)));
  }
}
