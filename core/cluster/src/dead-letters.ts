/**
 * Dead letters: the dead-letter station (created on the first one), moving messages there, the last-attempt
 * deadline check, replay and purge.
 */
import { randomUUID } from 'node:crypto';
import { dlsName, type MessageInput, type ReplayOptions, type ReplayResult } from '@junction/broker';
import { DLS_HEADERS, REPLAY_GROUP_HEADER, putHeader } from '@junction/protocol';
import { dlsConfig, marksConfig } from './config.js';
import { decodeEnvelope } from './envelope.js';
import { ErrorCode, isApiError, JsErr, JunctionError } from './errors.js';
import type { GroupMeta, StationMeta } from './meta.js';
import { groupSettings, type StoreCore, type DeadItem } from './core.js';
import { consumerOf, type GroupRt } from './runtime.js';
import { getMessage, produceTo, readRange } from './produce.js';
import { createStationStreams } from './stations.js';
import { bumpDeadCount, perPartition } from './dead-counts.js';

/** The station's dead-letter station, created on the first dead letter. */
async function ensureDls(c: StoreCore, st: StationMeta): Promise<StationMeta> {
  const name = dlsName(st.name);
  const key = c.names.stationKey(name);
  const cur = c.meta.peek<StationMeta>(key).value ?? (await c.meta.read<StationMeta>(key)).value;
  if (cur?.ready) return cur;
  try {
    await createStationStreams(c, {
      name,
      id: randomUUID(),
      config: dlsConfig(st.config),
      createdAt: Date.now(),
      deadLetterOf: st.name,
      ready: false,
    });
  } catch (err) {
    // STATION_EXISTS answers once the other node's creation finished.
    if (!(err instanceof JunctionError && err.code === ErrorCode.STATION_EXISTS)) throw err;
  }
  const m = (await c.meta.read<StationMeta>(key)).value;
  if (m?.ready) return m;
  throw new JunctionError(ErrorCode.UNAVAILABLE, `dead-letter station "${name}" is not ready`, { retryable: true });
}

/**
 * Copies messages to the dead-letter station (the embedded engine's headers; the msgId makes a second
 * copy by a retry or by another node a duplicate), then terminates them in the group.
 */
export async function moveToDls(c: StoreCore, st: StationMeta, group: string, gm: GroupMeta, items: DeadItem[]): Promise<void> {
  const rt = c.runtime(st.name, group, gm);
  const enabled = st.config.deadLetter.enabled && st.deadLetterOf === undefined;
  try {
    const found: { it: DeadItem; m: NonNullable<DeadItem['message']> }[] = [];
    const gone: DeadItem[] = [];
    await Promise.all(
      items.map(async (it) => {
        const m = it.message ?? (await loadForDls(c, st, it.partition, it.offset));
        if (m) found.push({ it, m });
        else gone.push(it);
      }),
    );
    if (enabled && found.length > 0) {
      const dls = await ensureDls(c, st);
      await bumpDeadCount(c, st.name, group, perPartition(found.map((f) => f.it)));
      const results = await produceTo(
        c,
        dls,
        found.map(({ it, m }) => ({
          value: m.value,
          key: m.key,
          msgId: `dls:${group}:${it.partition}:${it.offset}`,
          headers: {
            ...m.headers,
            ...it.headers,
            [DLS_HEADERS.reason]: it.reason,
            [DLS_HEADERS.code]: it.code,
            [DLS_HEADERS.group]: group,
            [DLS_HEADERS.attempts]: String(it.attempts),
            [DLS_HEADERS.station]: st.name,
            [DLS_HEADERS.partition]: String(it.partition),
            [DLS_HEADERS.offset]: String(it.offset),
            [DLS_HEADERS.timestamp]: String(m.timestamp),
            ...(m.key !== undefined && { [DLS_HEADERS.key]: m.key }),
          },
        })),
        true,
      );
      const failed = results.filter((r) => r.status === 'rejected').length;
      // A duplicate is a dead letter another path (a retry, another node) stored and counted already.
      const uncounted = found.filter((_, i) => results[i]?.status !== 'stored').map((f) => f.it);
      if (uncounted.length > 0) await bumpDeadCount(c, st.name, group, perPartition(uncounted, -1));
      if (failed > 0) {
        throw new JunctionError(ErrorCode.UNAVAILABLE, `${failed} dead letter(s) could not be stored in ${dls.name}`, { retryable: true });
      }
    } else if (found.length > 0) {
      await bumpDeadCount(c, st.name, group, perPartition(found.map((f) => f.it)));
      c.log.warn({ station: st.name, group, messages: found.length }, 'dead-lettering is off for this station: messages dropped');
    }
    await c.ackSubjects(
      items.map((it) => it.ack),
      '+TERM',
    );
    for (const it of items) rt.parts[it.partition]?.outstanding.delete(it.offset);
    // In the background: this node's memory answers at once; the marks (for other nodes) may wait for a new stream's leader.
    c.background(
      c.marking(
        st.name,
        markDead(
          c,
          st,
          group,
          rt,
          found.map((f) => f.it),
        ),
      ),
    );
    if (found.length > 0) c.emit({ type: 'dead-lettered', station: st.name, group, messages: found.length });
  } catch (err) {
    // Not moved: make them deliverable again (JetStream redelivers after a nak), so nothing is lost.
    for (const it of items) {
      const o = rt.parts[it.partition]?.outstanding.get(it.offset);
      if (o) o.busy = false;
    }
    await Promise.allSettled(items.map((it) => c.wire.request(it.ack, Buffer.from('-NAK'))));
    throw err;
  }
}

/**
 * Remembers dead-lettered offsets so that a late ack or nack of them answers `stale` (README, "What a
 * deliveryId settles"): in this node's memory of the partition's epoch, and as marks in the station's
 * marks stream for every other node and after restarts. A mark that cannot be stored is logged: it only
 * changes the answer to a late settle (`acked` instead of `stale`), never what is delivered.
 */
async function markDead(c: StoreCore, st: StationMeta, group: string, rt: GroupRt, items: readonly DeadItem[]): Promise<void> {
  const subjects: string[] = [];
  for (const it of items) {
    const part = rt.parts[it.partition];
    // Marks belong to the epoch of the consumer the delivery came from (a seek may have replaced it meanwhile).
    if (!part || consumerOf(it.ack) !== part.consumer) continue;
    part.rememberDead(it.offset);
    subjects.push(c.names.markSubject(st.name, group, part.epoch, it.partition, it.offset));
  }
  if (subjects.length === 0) return;
  try {
    await ensureMarks(c, st);
    const stream = c.names.marksStream(st.name);
    await Promise.all(
      subjects.map((s) => c.publishTo(s, stream, `the dead-letter marks of station "${st.name}"`, new Uint8Array(0), undefined)),
    );
  } catch (err) {
    if (c.state !== 'open') return;
    c.log.warn(
      { err, station: st.name, group, marks: subjects.length },
      'dead letters not marked: a late ack of them on another node answers acked instead of stale',
    );
  }
}

/**
 * The offsets of one partition that the group dead-lettered in this epoch, by the station's marks (any
 * node, any time): one STREAM.INFO listing the marks' subjects. Empty while the station has no marks.
 */
export async function deadMarks(c: StoreCore, st: StationMeta, group: string, epoch: string, partition: number): Promise<Set<number>> {
  const filter = c.names.markFilter(st.name, group, epoch, partition);
  const out = new Set<number>();
  for (let offset = 0; ;) {
    let info: { total?: number; state: { subjects?: Record<string, number> } };
    try {
      info = await c.api(`STREAM.INFO.${c.names.marksStream(st.name)}`, { subjects_filter: filter, offset });
    } catch (err) {
      if (isApiError(err, JsErr.STREAM_NOT_FOUND)) return out;
      throw err;
    }
    const subjects = Object.keys(info.state.subjects ?? {});
    for (const s of subjects) out.add(Number(s.slice(s.lastIndexOf('.') + 1)));
    offset += subjects.length;
    if (subjects.length === 0 || offset >= (info.total ?? 0)) return out;
  }
}

/** The station's marks stream, created on its first dead letter (any node may create it: same config). */
async function ensureMarks(c: StoreCore, st: StationMeta): Promise<void> {
  if (c.markStreams.has(st.name)) return;
  try {
    await c.createStream(marksConfig(c.names.marksStream(st.name), c.names.marksSubjects(st.name), st.name, st.config));
  } catch (err) {
    // Another node created it a moment ago, perhaps with another replica count: it exists, which is all a mark needs.
    if (!isApiError(err, JsErr.STREAM_NAME_EXISTS)) throw err;
  }
  c.markStreams.add(st.name);
}

async function loadForDls(c: StoreCore, st: StationMeta, partition: number, offset: number): Promise<DeadItem['message']> {
  const g = await getMessage(c, c.names.stream(st.name, partition), offset);
  if (!g) return undefined;
  const env = decodeEnvelope(g.data);
  return { key: env.key, headers: env.headers, value: env.value, timestamp: g.timestamp };
}

/** Dead-letters last attempts whose deadline passed on this node (JetStream would only redeliver them). */
export async function tick(c: StoreCore): Promise<void> {
  if (c.ticking || c.state !== 'open') return;
  c.ticking = true;
  try {
    const now = Date.now();
    for (const rt of [...c.groups.values()]) {
      const gm = c.meta.peek<GroupMeta>(c.names.groupKey(rt.station, rt.group)).value;
      const st = c.meta.peek<StationMeta>(c.names.stationKey(rt.station)).value;
      if (!gm?.ready || !st?.ready) continue;
      const { maxDeliveries } = groupSettings(st, gm);
      const due: DeadItem[] = [];
      rt.parts.forEach((part, p) => {
        for (const offset of part.last) {
          const o = part.outstanding.get(offset);
          if (!o || o.attempt < maxDeliveries) {
            part.last.delete(offset);
            continue;
          }
          if (o.busy || o.nackedUntil !== undefined || o.deadline > now) continue;
          part.last.delete(offset);
          o.busy = true;
          due.push({
            partition: p,
            offset,
            attempts: o.attempt,
            ack: o.ack,
            code: 'MAX_DELIVERIES',
            reason: `not acknowledged after ${maxDeliveries} deliveries`,
          });
        }
      });
      if (due.length > 0)
        await moveToDls(c, st, rt.group, gm, due).catch((err: unknown) =>
          c.log.warn({ err, station: rt.station, group: rt.group }, 'dead-lettering failed; the messages will be delivered again'),
        );
    }
  } finally {
    c.ticking = false;
  }
}

export function replayDeadLetters(c: StoreCore, station: string, options: ReplayOptions = {}): Promise<ReplayResult> {
  return c.run('replayDeadLetters', async () => {
    const st = await c.stationMeta(station);
    if (options.group !== undefined) await c.groupMeta(station, options.group);
    const dls =
      c.meta.peek<StationMeta>(c.names.stationKey(dlsName(station))).value ??
      (await c.meta.read<StationMeta>(c.names.stationKey(dlsName(station)))).value;
    if (!dls?.ready) return { replayed: 0, purged: 0 };
    const s = await c.streamState(dls.name, 0);
    const first = s.messages === 0 ? s.last_seq + 1 : s.first_seq;
    const from = Math.max(options.fromOffset ?? first, first);
    const to = Math.min(options.toOffset ?? s.last_seq, s.last_seq);
    let replayed = 0;
    let last = from - 1;
    for (let at = from; at <= to;) {
      const recs = await readRange(c, dls, 0, at, 1000, 8 * 1024 * 1024, to);
      if (recs.length === 0) break;
      const messages: MessageInput[] = recs.map((r) => {
        const headers: Record<string, string> = {};
        for (const k in r.headers) if (!k.startsWith('junction-dls-') && k !== REPLAY_GROUP_HEADER) putHeader(headers, k, r.headers[k]!);
        if (options.group !== undefined) headers[REPLAY_GROUP_HEADER] = options.group;
        return { value: r.value, key: r.key, headers };
      });
      const results = await produceTo(c, st, messages, true);
      replayed += results.filter((r) => r.status === 'stored').length;
      last = recs[recs.length - 1]!.offset;
      at = last + 1;
    }
    let purged = 0;
    if (options.purge && last >= first && from === first) purged = await purgeDls(c, dls, last);
    return { replayed, purged };
  });
}

export function purgeDeadLetters(c: StoreCore, station: string, upToOffset?: number): Promise<number> {
  return c.run('purgeDeadLetters', async () => {
    await c.stationMeta(station);
    const dls =
      c.meta.peek<StationMeta>(c.names.stationKey(dlsName(station))).value ??
      (await c.meta.read<StationMeta>(c.names.stationKey(dlsName(station)))).value;
    if (!dls?.ready) return 0;
    return purgeDls(c, dls, upToOffset);
  });
}

/** Drops dead letters up to and including `upTo` (all when absent); offsets are never reused. */
async function purgeDls(c: StoreCore, dls: StationMeta, upTo?: number): Promise<number> {
  const r = await c.api<{ purged: number }>(`STREAM.PURGE.${c.names.stream(dls.name, 0)}`, upTo === undefined ? {} : { seq: upTo + 1 });
  return r.purged;
}
