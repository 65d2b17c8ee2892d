/**
 * Stations on JetStream: creation (the name claimed in KV, one stream per partition, then ready), live
 * changes of what may change, deletion (KV first, then groups and data), and StationInfo from the streams.
 */
import { randomUUID } from 'node:crypto';
import { dlsName, pageOfNames, type ListOptions, type PartitionInfo, type StationInfo } from '@junction/broker';
import { applyStationPatch, StationName } from '@junction/protocol';
import { ClusterStationConfigInput, ClusterStationPatch, marksConfig, streamConfig, type ClusterStationConfig } from './config.js';
import { configInvalid, ErrorCode, isApiError, JsErr, JunctionError } from './errors.js';
import type { StationMeta } from './meta.js';
import { enc } from './names.js';
import { type StoreCore, stationIdOf, DLS_SUFFIX } from './core.js';
import { claimStreamExists, claimStreamName, ensureClaimStream } from './claims.js';
import { followDeadLetter } from './groups.js';

export function createStation(c: StoreCore, name: string, config: ClusterStationConfigInput = {}): Promise<StationInfo> {
  return c.run('createStation', async () => {
    const n = StationName.safeParse(name);
    if (!n.success) throw configInvalid('station name', n.error, 'name');
    if (name.endsWith(DLS_SUFFIX))
      throw new JunctionError(ErrorCode.STATION_RESERVED, `station names ending in "${DLS_SUFFIX}" are reserved for dead-letter stations`);
    const parsed = ClusterStationConfigInput.safeParse(config);
    if (!parsed.success) throw configInvalid('station config', parsed.error);
    const { replicas, ...rest } = parsed.data;
    const full: ClusterStationConfig = { ...rest, replicas: replicas ?? c.replicas };
    await createStationStreams(c, { name, id: randomUUID(), config: full, createdAt: Date.now(), ready: false });
    return info(c, await c.stationMeta(name));
  });
}

/** Claims the name in KV (STATION_EXISTS if taken), creates the streams, then marks the station ready. */
export async function createStationStreams(c: StoreCore, m: StationMeta): Promise<void> {
  const key = c.names.stationKey(m.name);
  let rev = await c.meta.create(key, m);
  const deadline = Date.now() + CREATION_WAIT_MS;
  while (rev === undefined) {
    // STATION_EXISTS means the station is there and usable: a creation in progress on another node is
    // waited for, so a caller that creates-if-missing can use the station as soon as this answers.
    const cur = await c.meta.waitFor<StationMeta>(key, (v) => !v || v.ready || v.createdAt < Date.now() - 60_000, deadline);
    if (cur.value === undefined)
      rev = await c.meta.create(key, m); // that creation failed: the name is free again
    else if (cur.value.ready) throw new JunctionError(ErrorCode.STATION_EXISTS, `station "${m.name}" already exists`);
    // A creation that never finished (its node died) holds the name for a minute, then can be taken over.
    else if (cur.value.createdAt < Date.now() - 60_000) rev = await c.meta.update(key, m, cur.rev);
    else if (Date.now() >= deadline)
      throw new JunctionError(ErrorCode.UNAVAILABLE, `station "${m.name}" is being created by another node; try again`, {
        retryable: true,
      });
  }
  try {
    c.markStreams.delete(m.name);
    await Promise.all([
      ...Array.from({ length: m.config.partitions }, async (_, p) => {
        const name = c.names.stream(m.name, p);
        // A stream under this name is a leftover (the name was free in KV): it must not leak old messages.
        await c.deleteStream(name);
        await c.createStream(streamConfig(name, c.names.subject(m.name, p), m.name, p, m.config));
      }),
      // Marks of an earlier incarnation never match this one's epochs, but would keep its replica count.
      c.deleteStream(c.names.marksStream(m.name)),
    ]);
    const done = await c.meta.update(key, { ...m, ready: true }, rev);
    if (done === undefined)
      throw new JunctionError(ErrorCode.STATION_NOT_FOUND, `station "${m.name}" was deleted while it was being created`);
  } catch (err) {
    await c.meta.delete(key).catch(() => {});
    await Promise.allSettled(Array.from({ length: m.config.partitions }, (_, p) => c.deleteStream(c.names.stream(m.name, p))));
    throw err;
  }
}

/** How long a creation waits for the same name's creation in progress on another node. */
const CREATION_WAIT_MS = 30_000;

export function updateStation(c: StoreCore, name: string, patch: ClusterStationPatch): Promise<StationInfo> {
  return c.run('updateStation', async () => {
    if (patch && typeof patch === 'object') {
      const immutable = (['partitions', 'storage'] as const).filter((k) => k in patch);
      if (immutable.length > 0) {
        await c.stationMeta(name);
        throw new JunctionError(ErrorCode.CONFIG_IMMUTABLE, `${immutable.join(' and ')} cannot change after a station is created`, {
          issues: immutable.map((k) => ({ path: k, message: 'fixed at creation' })),
        });
      }
    }
    for (let attempt = 0; ; attempt++) {
      const st = await c.stationMeta(name);
      const parsed = ClusterStationPatch.safeParse(patch);
      if (!parsed.success) throw configInvalid('station update', parsed.error);
      const p = parsed.data;
      const merged: ClusterStationConfig = {
        ...applyStationPatch(st.config, p),
        ...(p.replicas !== undefined && { replicas: p.replicas }),
      };
      if (Boolean(merged.retention.ackBased) !== Boolean(st.config.retention.ackBased)) {
        throw new JunctionError(
          ErrorCode.CONFIG_IMMUTABLE,
          "retention.ackBased cannot change on a JetStream station (JetStream 2.9 cannot change a stream's retention policy)",
          {
            issues: [{ path: 'retention.ackBased', message: 'fixed at creation on this engine' }],
          },
        );
      }
      const key = c.names.stationKey(name);
      const rev = c.meta.peek<StationMeta>(key).rev;
      const next: StationMeta = { ...st, config: merged };
      await applyStreamConfigs(c, next);
      if (merged.replicas !== st.config.replicas) await updateDlsReplicas(c, name, merged.replicas);
      // Before the station's new settings are stored: groups of old metadata are judged by the old ones.
      if (p.deadLetter !== undefined) await followDeadLetter(c, st, next);
      const done = await c.meta.update(key, next, rev);
      if (done !== undefined) return info(c, next);
      if (attempt >= 3) throw new JunctionError(ErrorCode.UNAVAILABLE, `station "${name}" keeps changing; try again`, { retryable: true });
      await c.meta.read(key);
    }
  });
}

async function applyStreamConfigs(c: StoreCore, st: StationMeta): Promise<void> {
  await Promise.all(
    Array.from({ length: st.config.partitions }, async (_, p) => {
      const name = c.names.stream(st.name, p);
      try {
        await c.api(`STREAM.UPDATE.${name}`, streamConfig(name, c.names.subject(st.name, p), st.name, p, st.config));
      } catch (err) {
        if (isApiError(err) && err.status < 500) {
          throw new JunctionError(ErrorCode.CONFIG_INVALID, `JetStream refused the change: ${err.message}`, {
            cause: err,
            issues: [{ path: '', message: err.message }],
          });
        }
        throw err;
      }
    }),
  );
  if (c.claimStreams.has(st.name) || (await claimStreamExists(c, st.name))) await ensureClaimStream(c, st, true);
  try {
    await c.api(
      `STREAM.UPDATE.${c.names.marksStream(st.name)}`,
      marksConfig(c.names.marksStream(st.name), c.names.marksSubjects(st.name), st.name, st.config),
    );
  } catch (err) {
    if (!isApiError(err, JsErr.STREAM_NOT_FOUND)) throw err;
  }
}

async function updateDlsReplicas(c: StoreCore, origin: string, replicas: number): Promise<void> {
  const dls = c.meta.peek<StationMeta>(c.names.stationKey(dlsName(origin))).value;
  if (!dls?.ready) return;
  const next = { ...dls, config: { ...dls.config, replicas } };
  await applyStreamConfigs(c, next);
  await c.meta.set(c.names.stationKey(dls.name), next);
}

export function deleteStation(c: StoreCore, name: string): Promise<void> {
  return c.run('deleteStation', async () => {
    const st = await c.stationMeta(name);
    if (st.deadLetterOf !== undefined) {
      const origin = c.meta.peek<StationMeta>(c.names.stationKey(st.deadLetterOf)).value;
      if (origin?.ready) {
        throw new JunctionError(
          ErrorCode.STATION_RESERVED,
          `"${name}" is the dead-letter station of "${st.deadLetterOf}"; delete that station or purge its dead letters`,
        );
      }
    }
    await c.marksWritten(name, c.timeoutMs);
    const doomed = [st];
    const dls = (await c.meta.read<StationMeta>(c.names.stationKey(dlsName(name)))).value;
    if (dls) doomed.push(dls);
    for (const s of doomed) {
      // KV first: from here on no node sees the station, then its groups, then the data.
      await c.meta.delete(c.names.stationKey(s.name));
      const prefix = `${enc(s.name)}.`;
      const keys = ['g', 'd', 'l'].flatMap((kind) => c.meta.scan<unknown>(`${kind}.${prefix}`)).map(([k]) => k);
      await Promise.all(keys.map((k) => c.meta.delete(k)));
      for (const id of c.groups.keys()) if (id.startsWith(`${s.name}\u0000`)) c.groups.delete(id);
      c.rr.delete(s.name);
      await Promise.all(Array.from({ length: s.config.partitions }, (_, p) => c.deleteStream(c.names.stream(s.name, p))));
      await c.deleteStream(claimStreamName(c, s.name));
      await c.deleteStream(c.names.marksStream(s.name));
      c.claimStreams.delete(s.name);
      c.markStreams.delete(s.name);
    }
  });
}

export function getStation(c: StoreCore, name: string): Promise<StationInfo> {
  return c.run('getStation', async () => info(c, await c.stationMeta(name)));
}

export function listStations(c: StoreCore, options?: ListOptions): Promise<StationInfo[]> {
  return c.run('listStations', async () => {
    const metas = new Map(
      c.meta
        .scan<StationMeta>('s.')
        .map(([, m]) => m)
        .filter((m) => m.ready)
        .map((m) => [m.name, m]),
    );
    // Only the page's stations are asked for their streams' state.
    const page = pageOfNames(metas.keys(), options).map((n) => metas.get(n)!);
    const out = await Promise.all(
      page.map((m) =>
        info(c, m).catch((err: unknown) => {
          if (isApiError(err, JsErr.STREAM_NOT_FOUND)) return undefined; // deleted meanwhile
          throw err;
        }),
      ),
    );
    return out.filter((i): i is StationInfo => i !== undefined);
  });
}

export async function info(c: StoreCore, st: StationMeta): Promise<StationInfo> {
  const partitions = await Promise.all(
    Array.from({ length: st.config.partitions }, async (_, p): Promise<PartitionInfo> => {
      const s = await c.streamState(st.name, p);
      return {
        partition: p,
        firstOffset: s.messages === 0 ? s.last_seq + 1 : s.first_seq,
        nextOffset: s.last_seq + 1,
        messages: s.messages,
        bytes: s.bytes,
      };
    }),
  );
  return {
    name: st.name,
    id: stationIdOf(st),
    config: st.config,
    createdAt: st.createdAt,
    ...(st.deadLetterOf !== undefined && { deadLetterOf: st.deadLetterOf }),
    partitions,
    messages: partitions.reduce((n, p) => n + p.messages, 0),
    bytes: partitions.reduce((n, p) => n + p.bytes, 0),
    groups: c.groupNames(st.name),
  };
}

/*
 * JetStream dedups per stream; a station with several partitions is several streams, and the
 * contract says a msgId is a duplicate anywhere in the station, whatever the key. So a msgId'd message
 * first claims its id on the station's claim stream (`<PREFIX>_<station>_ids`, one small message per
 * id, Nats-Msg-Id = the id, payload = the partition): a new claim picks the partition, a duplicate claim
 * names the partition of the first, and the message then goes there with the same Nats-Msg-Id, where
 * the partition's own dedup answers with the original offset. One-partition stations need no claims.
 */
