import { OffsetRanges, type PartitionRef } from '@junction/sdk-connector';
/**
 * The ledger: how the sink knows, per station incarnation and partition, which offsets are in the
 * bucket — the basis of exactly-once whatever the path layout — and how a write of a dead writer is
 * kept from landing late.
 *
 * A write of a batch is one **unit**, written by one **attempt** (a fresh id: every key the attempt
 * writes names it, so two attempts never share a key). Its markers live under
 * `<prefix>_junction/ledger/<station>/<station id>/<partition>/`:
 *
 * 1. the multipart uploads of its data objects are created;
 * 2. `pending/<last>-<first>_<attempt>.json` is put, listing every object key **and upload id** (parts
 *    may go up meanwhile: an upload is invisible until completed);
 * 3. the uploads are completed — none before the pending marker is there;
 * 4. `done/<last>-<first>-<count>_<attempt>.json` is put, the same bytes as the pending marker: the
 *    commit point. Only then are the messages answered ok.
 *
 * Loading a partition (the first write after open, and after any failed write) first **settles** every
 * pending unit without a done marker: it aborts all the unit's uploads by id — after that S3 refuses any
 * UploadPart or Complete of them, however late it arrives, so the set of its objects is final — then
 * keeps the unit if a done marker exists or if every object is there (the writer died between its last
 * Complete and the done marker, or that marker is on its way: the load puts the same bytes), and rolls it
 * back otherwise: its objects (keys only this attempt ever wrote, and only those whose metadata names it)
 * and its pending marker are deleted. A done marker can only have been sent once all the objects were
 * there, so a late one never names a unit that was rolled back. A crash at any point, and any request of
 * the dead writer still on its way, leave nothing a replay would duplicate or a reader would see twice.
 * Then unfinished uploads of the partition that no marker names (a create answered after its writer
 * died) are aborted too.
 *
 * Then it lists the done markers whose last offset is ≥ the lowest offset asked for (one listing thanks
 * to StartAfter: keys sort by last offset). A dense unit (count = last − first + 1) is known from its key
 * alone; only a unit with gaps is read.
 *
 * Ledgers of the sink before station ids (`<prefix>_junction/ledger/<station>/<partition>/`, units
 * without attempts, objects without ids) belong to the incarnation that existed then: the first
 * incarnation to load the partition after the upgrade records itself in that directory's
 * `owner.json`, and from then on their done markers count for it (and its pending units are rolled back
 * as they were written: by listing uploads and by object metadata).
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from '@junction/sdk-connector';
import { isNotFound } from './errors.js';
import { ObjectMeta } from './formats/spec.js';
import { doneKey, doneStartAfter, ledgerDir, legacyLedgerDir, parseMarkerName, parseObjectFileName, pendingKey } from './layout.js';
import { Multipart, type AbortOutcome } from './multipart.js';

/** One object of a unit. */
export interface UnitObject {
  key: string;
  first: number;
  last: number;
  count: number;
  /** Its multipart upload (units since station ids). */
  uploadId?: string;
}

/** What a marker holds. */
export interface Unit {
  /** 2: since station ids (attempts, upload ids, a done marker written as an upload); 1: before. */
  v: 1 | 2;
  station: string;
  /** The station incarnation's key segment (`stationIdSegment`); absent in v1. */
  stationId?: string;
  partition: number;
  first: number;
  last: number;
  count: number;
  /** The offsets the unit adds, as inclusive [first, last] ranges. */
  ranges: [number, number][];
  objects: UnitObject[];
  /** The attempt that writes it (v2). */
  attempt?: string;
  /** Who wrote it (for people reading the bucket). */
  writer: { connector: string; task: number };
}

/** What the sink knows about one partition of one incarnation. */
export interface PartitionState {
  present: OffsetRanges;
  /** Every offset ≥ this that is in the bucket is in `present`. */
  loadedFrom: number;
  /** The ledger directories whose done markers count: its own, and the one from before station ids when it owns it. */
  dirs: string[];
}

/** How a rollback ended. */
export type RollbackOutcome = 'rolled-back' | 'committed';

const JSON_TYPE = 'application/json';
const opts = (signal?: AbortSignal) => (signal ? { abortSignal: signal } : {});

export class Ledger {
  readonly multipart: Multipart;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly log: Logger,
    private readonly events: { rollback?: (unit: Unit) => void; aborted?: (n: number) => void } = {},
  ) {
    this.multipart = new Multipart(client, bucket);
  }

  /** Lists every key under `prefix` (StartAfter optional), page by page. */
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
        opts(signal),
      );
      for (const o of page.Contents ?? []) if (o.Key !== undefined) yield o.Key;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async getJson<T>(key: string, signal?: AbortSignal): Promise<T | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), opts(signal));
      return JSON.parse((await res.Body?.transformToString('utf8')) ?? 'null') as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async putJson(key: string, body: unknown, signal?: AbortSignal): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: JSON.stringify(body), ContentType: JSON_TYPE }),
      opts(signal),
    );
  }

  private async exists(key: string, signal?: AbortSignal): Promise<Record<string, string> | undefined> {
    try {
      return (await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), opts(signal))).Metadata ?? {};
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), opts(signal));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Rolls a unit back, or finds it committed. v2: aborts every upload of the unit (the fence: nothing of
   * it can land afterwards), then keeps the unit if its done marker exists or every object is there
   * (putting the done marker: the same bytes its writer would have put), else deletes its objects (those
   * whose metadata names its attempt) and its pending marker. v1 (before station ids): unfinished uploads
   * to its keys are aborted and an object is deleted only if its metadata says this unit wrote it.
   */
  async rollback(unit: Unit, signal?: AbortSignal): Promise<RollbackOutcome> {
    if (unit.v === 1) {
      await this.rollbackV1(unit, signal);
      return 'rolled-back';
    }
    const dir = ledgerDir(this.prefix, unit.station, unit.stationId ?? '', unit.partition);
    let aborted = 0;
    let unsupported = false;
    for (const o of unit.objects) {
      if (o.uploadId === undefined) continue;
      const outcome: AbortOutcome = await this.multipart.abort(o.key, o.uploadId, signal);
      if (outcome === 'aborted') aborted += 1;
      if (outcome === 'unsupported') unsupported = true;
    }
    if (aborted > 0) this.events.aborted?.(aborted);
    if (unsupported)
      this.log.debug(
        { first: unit.first, last: unit.last },
        'the store cannot abort multipart uploads: a late write of this unit is not fenced',
      );
    const pending = pendingKey(dir, unit.first, unit.last, unit.attempt);
    const done = this.doneKeyOf(unit);
    if ((await this.exists(done, signal)) === undefined) {
      const mine: string[] = [];
      for (const o of unit.objects) {
        const meta = await this.exists(o.key, signal);
        if (meta === undefined) continue;
        // Keys name the attempt, so only this unit writes them; an object there it did not write (its
        // metadata says so) is someone else's and stays.
        if (meta[ObjectMeta.attempt] === unit.attempt) mine.push(o.key);
        else this.log.warn({ key: o.key }, 'an object under a key of an unfinished write was not written by it; leaving it alone');
      }
      if (mine.length < unit.objects.length) {
        for (const key of mine) await this.delete(key, signal);
        await this.delete(pending, signal);
        this.events.rollback?.(unit);
        this.log.info(
          { station: unit.station, partition: unit.partition, first: unit.first, last: unit.last, objects: unit.objects.length, aborted },
          'rolled back an unfinished write',
        );
        return 'rolled-back';
      }
      // Every object landed and none can change any more: the writer died before its done marker.
      await this.putJson(done, unit, signal);
      this.log.info(
        { station: unit.station, partition: unit.partition, first: unit.first, last: unit.last },
        'committed an unfinished write whose objects had all landed',
      );
    }
    await this.delete(pending, signal);
    return 'committed';
  }

  private async rollbackV1(unit: Unit, signal?: AbortSignal): Promise<void> {
    const dir = legacyLedgerDir(this.prefix, unit.station, unit.partition);
    for (const o of unit.objects) {
      const open = (await this.multipart.list(o.key, signal)) ?? [];
      for (const u of open)
        if (u.key === o.key && (await this.multipart.abort(u.key, u.uploadId, signal)) === 'aborted') this.events.aborted?.(1);
      const meta = await this.exists(o.key, signal);
      if (meta === undefined) continue;
      if (
        meta[ObjectMeta.unit] === `${unit.first}-${unit.last}` &&
        meta[ObjectMeta.station] === unit.station &&
        meta[ObjectMeta.partition] === String(unit.partition)
      ) {
        await this.delete(o.key, signal);
      } else {
        this.log.warn({ key: o.key }, 'an object under a key of an unfinished write was not written by it; leaving it alone');
      }
    }
    await this.delete(pendingKey(dir, unit.first, unit.last), signal);
    this.events.rollback?.(unit);
    this.log.info(
      { station: unit.station, partition: unit.partition, first: unit.first, last: unit.last, objects: unit.objects.length },
      'rolled back an unfinished write (from before station ids)',
    );
  }

  /** Rolls back the pending units of one ledger directory. */
  private async settlePending(dir: string, signal?: AbortSignal): Promise<void> {
    for await (const key of this.list(`${dir}pending/`, undefined, signal)) {
      const name = parseMarkerName(key.slice(key.lastIndexOf('/') + 1));
      if (!name) continue;
      let committed = false;
      for await (const k of this.list(
        `${dir}done/${key.slice(key.lastIndexOf('/') + 1).replace(/(_[0-9a-z]+)?\.json$/, '')}-`,
        undefined,
        signal,
      )) {
        if (parseMarkerName(k.slice(k.lastIndexOf('/') + 1))?.attempt === name.attempt) {
          committed = true;
          break;
        }
      }
      if (committed) {
        // Committed, but the writer stopped before its pending marker was deleted.
        await this.delete(key, signal);
        continue;
      }
      const unit = await this.getJson<Unit>(key, signal);
      if (unit) await this.rollback(unit, signal);
      else await this.delete(key, signal);
    }
  }

  /**
   * Aborts the unfinished uploads of this partition and incarnation that no pending unit names any more:
   * what a writer killed between creating an upload and recording it leaves (and, from before station
   * ids, any upload of the partition). Skipped, with a debug log, where the store does not list them.
   */
  private async abortLeftovers(ref: PartitionRef, sid: string, ownsLegacy: boolean, signal?: AbortSignal): Promise<void> {
    const prefixes = [`${this.prefix}${ref.station}/`];
    let aborted = 0;
    for (const prefix of prefixes) {
      const open = await this.multipart.list(prefix, signal);
      if (open === undefined) {
        this.log.debug({ prefix }, 'the store does not list multipart uploads; leftovers are for its lifecycle rule');
        return;
      }
      for (const u of open) {
        const name = parseObjectFileName(u.key.slice(u.key.lastIndexOf('/') + 1));
        if (!name || name.station !== ref.station || name.partition !== ref.partition) continue;
        if (name.stationId === undefined ? !ownsLegacy : name.stationId !== sid) continue;
        if ((await this.multipart.abort(u.key, u.uploadId, signal)) === 'aborted') aborted += 1;
      }
    }
    if (aborted > 0) {
      this.events.aborted?.(aborted);
      this.log.info({ station: ref.station, partition: ref.partition, aborted }, 'aborted multipart uploads a killed writer left');
    }
  }

  /**
   * Whether the incarnation `sid` owns the partition's ledger from before station ids: yes when that
   * ledger's `owner.json` names it, or when there is such a ledger and no owner yet (it claims it now).
   */
  private async ownsLegacy(ref: PartitionRef, sid: string, signal?: AbortSignal): Promise<boolean> {
    const dir = legacyLedgerDir(this.prefix, ref.station, ref.partition);
    let any = false;
    for await (const key of this.list(dir, undefined, signal)) {
      if (key.endsWith('/owner.json')) continue;
      any = true;
      break;
    }
    if (!any) return false;
    const owner = await this.getJson<{ stationId?: string }>(`${dir}owner.json`, signal);
    if (owner?.stationId !== undefined) return owner.stationId === sid;
    await this.putJson(`${dir}owner.json`, { stationId: sid, claimedAt: new Date().toISOString() }, signal);
    this.log.info(
      { station: ref.station, partition: ref.partition, stationId: sid },
      "the ledger from before station ids is taken as this station incarnation's",
    );
    return true;
  }

  /**
   * Settles the partition's unfinished units (rollback), aborts leftover uploads, and learns the offsets
   * present from `from` on. `sid` is the incarnation's key segment.
   */
  async load(ref: PartitionRef, sid: string, from: number, signal?: AbortSignal): Promise<PartitionState> {
    const dir = ledgerDir(this.prefix, ref.station, sid, ref.partition);
    const legacy = await this.ownsLegacy(ref, sid, signal);
    await this.settlePending(dir, signal);
    if (legacy) await this.settlePending(legacyLedgerDir(this.prefix, ref.station, ref.partition), signal);
    await this.abortLeftovers(ref, sid, legacy, signal);
    const state: PartitionState = {
      present: new OffsetRanges(),
      loadedFrom: Number.POSITIVE_INFINITY,
      dirs: legacy ? [dir, legacyLedgerDir(this.prefix, ref.station, ref.partition)] : [dir],
    };
    await this.extend(state, from, signal);
    return state;
  }

  /** Makes `state` know every present offset ≥ `from` (lists only what it did not know yet). */
  async extend(state: PartitionState, from: number, signal?: AbortSignal): Promise<void> {
    if (from >= state.loadedFrom) return;
    const until = state.loadedFrom;
    for (const dir of state.dirs) {
      for await (const key of this.list(`${dir}done/`, doneStartAfter(dir, from), signal)) {
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
    }
    state.loadedFrom = from;
  }

  /**
   * Step 2: the pending marker (its uploads created already). Then the previous committed unit's pending
   * marker of the partition is deleted in the background, while this unit's objects go up — after this
   * put, not beside it: filesystem-backed stores (s3rver, MinIO in FS mode) remove a "directory" left
   * empty by a delete and can trip over a put into it at the same moment.
   */
  async begin(unit: Unit, signal?: AbortSignal): Promise<void> {
    const dir = ledgerDir(this.prefix, unit.station, unit.stationId ?? '', unit.partition);
    await this.cleanups.get(dir);
    await this.putJson(pendingKey(dir, unit.first, unit.last, unit.attempt), unit, signal);
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

  /** The done marker's key of a unit. */
  doneKeyOf(unit: Pick<Unit, 'station' | 'stationId' | 'partition' | 'first' | 'last' | 'count' | 'attempt'>): string {
    return doneKey(
      ledgerDir(this.prefix, unit.station, unit.stationId ?? '', unit.partition),
      unit.first,
      unit.last,
      unit.count,
      unit.attempt,
    );
  }

  /**
   * Step 4: the done marker (the commit point), the same bytes as the pending marker. The pending marker
   * stays until the next unit of the partition begins (or {@link settle}): beside its done marker it is
   * harmless, a load just deletes it.
   */
  async commit(unit: Unit, signal?: AbortSignal): Promise<void> {
    await this.putJson(this.doneKeyOf(unit), unit, signal);
    const dir = ledgerDir(this.prefix, unit.station, unit.stationId ?? '', unit.partition);
    this.committed.set(dir, pendingKey(dir, unit.first, unit.last, unit.attempt));
  }

  /** Per partition: the pending marker of its last committed unit, not deleted yet. */
  private readonly committed = new Map<string, string>();
  /** Per partition: the background delete of a pending marker. */
  private readonly cleanups = new Map<string, Promise<void>>();

  /** Forgets a partition's leftovers after a failure (its next load sorts them out). */
  forget(ref: PartitionRef, sid: string): void {
    this.committed.delete(ledgerDir(this.prefix, ref.station, sid, ref.partition));
  }

  /** Waits for background deletes, then deletes the pending markers of committed units (best effort). */
  async settle(): Promise<void> {
    await Promise.all([...this.cleanups.values()]);
    const keys = [...this.committed.values()];
    this.committed.clear();
    await Promise.all(keys.map((k) => this.delete(k).catch(() => undefined)));
  }
}
