/**
 * Consumer groups: one durable pull consumer per partition and generation, created at the start position;
 * GroupInfo from the consumers and streams; seek = a consumer of the next generation.
 */
import { randomUUID } from 'node:crypto';
import { pageOfNames, type GroupInfo, type GroupOptions, type GroupPartitionInfo, type ListOptions } from '@junction/broker';
import { CreateGroupBody, StartPosition, StationName } from '@junction/protocol';
import { configInvalid, ErrorCode, JunctionError } from './errors.js';
import type { GroupMeta, StationMeta } from './meta.js';
import { deadCounts } from './dead-counts.js';
import { countRemoved, lostCounts, startCounts, takeRemovedHeld } from './retention.js';
import { groupSettings, type StoreCore, sleep, NS, type ConsumerInfo } from './core.js';
import { getMessage } from './produce.js';
import type { GroupRt } from './runtime.js';

export function createGroup(c: StoreCore, station: string, group: string, options: GroupOptions = {}): Promise<GroupInfo> {
  return c.run('createGroup', async () => {
    const st = await c.stationMeta(station);
    const gm = await newGroup(c, st, group, options);
    return groupInfo(c, st, group, gm);
  });
}

async function newGroup(c: StoreCore, st: StationMeta, group: string, options: GroupOptions): Promise<GroupMeta> {
  const n = StationName.safeParse(group);
  if (!n.success) throw configInvalid('group name', n.error, 'group');
  const parsed = CreateGroupBody.safeParse(options);
  if (!parsed.success) throw configInvalid('group options', parsed.error);
  const o = parsed.data;
  if (o.start.type === 'offset' && o.start.partition !== undefined && o.start.partition >= st.config.partitions) {
    throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${st.name}" has no partition ${o.start.partition}`);
  }
  const key = c.names.groupKey(st.name, group);
  const gm: GroupMeta = {
    createdAt: Date.now(),
    // Only the group's own settings: without them it follows the station's deadLetter settings.
    ...(o.maxAckTimeMs !== undefined && { maxAckTimeMs: o.maxAckTimeMs }),
    ...(o.maxDeliveries !== undefined && { maxDeliveries: o.maxDeliveries }),
    gens: Array.from({ length: st.config.partitions }, () => 1),
    nonce: randomUUID(),
    ready: false,
  };
  const starts = await positions(c, st, o.start);
  let rev = await c.meta.create(key, gm);
  const deadline = Date.now() + 30_000;
  while (rev === undefined) {
    // GROUP_EXISTS means the group is there and usable: a creation in progress on another node is waited for.
    const cur = await c.meta.waitFor<GroupMeta>(key, (v) => !v || v.ready === true, deadline);
    if (cur.value === undefined) rev = await c.meta.create(key, gm);
    else if (cur.value.ready)
      throw new JunctionError(ErrorCode.GROUP_EXISTS, `station "${st.name}" already has a consumer group "${group}"`);
    else
      throw new JunctionError(ErrorCode.UNAVAILABLE, `group "${group}" is being created by another node; try again`, { retryable: true });
  }
  try {
    const made = await Promise.all(starts.map((start, p) => createConsumer(c, st, group, p, 1, gm, start ?? { deliver_policy: 'all' })));
    // A new group counts from zero: drop a count an earlier group of this name may have left.
    await c.meta.delete(c.names.lostKey(st.name, group));
    await startCounts(
      c,
      st.name,
      group,
      gm.gens,
      made.map((ci) => ci.delivered.stream_seq + 1),
    );
    const ready: GroupMeta = { ...gm, starts: made.map((ci) => ci.delivered.stream_seq + 1), ready: true };
    if ((await c.meta.update(key, ready, rev)) === undefined)
      throw new JunctionError(ErrorCode.GROUP_NOT_FOUND, `group "${group}" was deleted while it was being created`);
    await c.meta.delete(c.names.deadKey(st.name, group)).catch(() => {});
    return ready;
  } catch (err) {
    await c.meta.delete(key).catch(() => {});
    await c.meta.delete(c.names.lostKey(st.name, group)).catch(() => {});
    await Promise.allSettled(gm.gens.map((g, p) => c.deleteConsumer(c.names.stream(st.name, p), c.names.consumer(group, g))));
    throw err;
  }
}

/**
 * JetStream deliver settings per partition for a start position; undefined leaves a partition alone.
 * OFFSET_OUT_OF_RANGE for an offset past the end of a partition it applies to.
 */
export async function positions(c: StoreCore, st: StationMeta, pos: StartPosition): Promise<(Record<string, unknown> | undefined)[]> {
  const P = st.config.partitions;
  return Promise.all(
    Array.from({ length: P }, async (_, p): Promise<Record<string, unknown> | undefined> => {
      switch (pos.type) {
        case 'earliest':
          return { deliver_policy: 'all' };
        case 'latest':
          return { deliver_policy: 'new' };
        case 'timestamp':
          return { deliver_policy: 'by_start_time', opt_start_time: new Date(pos.timestamp).toISOString() };
        case 'offset': {
          if (pos.partition !== undefined && pos.partition !== p) return undefined;
          const s = await c.streamState(st.name, p);
          const first = s.messages === 0 ? s.last_seq + 1 : s.first_seq;
          const end = s.last_seq + 1;
          // Past the end would skip messages not produced yet; below the first retained offset means the
          // first retained one (retention removed the rest).
          if (pos.offset > end) {
            throw new JunctionError(
              ErrorCode.OFFSET_OUT_OF_RANGE,
              `offset ${pos.offset} is past the end of partition ${p} of station "${st.name}" (next offset ${end})`,
              {
                issues: [{ path: 'offset', message: `at most ${end}` }],
              },
            );
          }
          return { deliver_policy: 'by_start_sequence', opt_start_seq: Math.max(pos.offset, first) };
        }
      }
    }),
  );
}

/** Creates (or, with the same config, confirms) a group's consumer on a partition; answers its info. */
export async function createConsumer(
  c: StoreCore,
  st: StationMeta,
  group: string,
  p: number,
  generation: number,
  gm: GroupMeta,
  start: Record<string, unknown>,
): Promise<ConsumerInfo> {
  const stream = c.names.stream(st.name, p);
  const durable = c.names.consumer(group, generation);
  return c.api<ConsumerInfo>(`CONSUMER.DURABLE.CREATE.${stream}.${durable}`, {
    stream_name: stream,
    config: {
      durable_name: durable,
      description: `Junction group ${group} of ${st.name}, partition ${p}`,
      ack_policy: 'explicit',
      ack_wait: groupSettings(st, gm).maxAckTimeMs * NS,
      // Max deliveries are counted here, not by JetStream: 2.9 drops a message that reaches max_deliver
      // from the consumer without acking it, which would stall the ack floor and, with interest
      // retention, keep the message forever. See README.
      max_deliver: -1,
      max_ack_pending: -1,
      max_waiting: 4096,
      replay_policy: 'instant',
      ...start,
    },
  });
}

export function getGroup(c: StoreCore, station: string, group: string): Promise<GroupInfo> {
  return c.run('getGroup', async () => {
    const st = await c.stationMeta(station);
    return groupInfo(c, st, group, await c.groupMeta(station, group));
  });
}

export function listGroups(c: StoreCore, station: string, options?: ListOptions): Promise<GroupInfo[]> {
  return c.run('listGroups', async () => {
    const st = await c.stationMeta(station);
    const out: GroupInfo[] = [];
    for (const g of pageOfNames(c.groupNames(station), options)) {
      try {
        out.push(await groupInfo(c, st, g, await c.groupMeta(station, g)));
      } catch (err) {
        if (!(err instanceof JunctionError && err.code === ErrorCode.GROUP_NOT_FOUND)) throw err;
      }
    }
    return out;
  });
}

async function groupInfo(c: StoreCore, st: StationMeta, group: string, gm: GroupMeta): Promise<GroupInfo> {
  const limits = groupSettings(st, gm);
  const rt = c.runtime(st.name, group, gm);
  const now = Date.now();
  const partitions = await Promise.all(
    gm.gens.map(async (gen, p): Promise<GroupPartitionInfo> => {
      const stream = c.names.stream(st.name, p);
      // The stream first: what the consumer has not delivered by the time of its info below the stream's
      // first offset, retention removed before the group received it (retention.ts).
      const s = await c.streamState(st.name, p);
      const ci = await c.api<ConsumerInfo>(`CONSUMER.INFO.${stream}.${c.names.consumer(group, gen)}`);
      const first = s.messages === 0 ? s.last_seq + 1 : s.first_seq;
      await countRemoved(c, st, group, p, gen, first, ci.delivered.stream_seq, takeRemovedHeld(rt, p, first, now));
      // What this node knows to be settled is forgotten (acks from other nodes move the floor too).
      const part = rt.parts[p];
      if (part) for (const o of part.outstanding.keys()) if (o <= ci.ack_floor.stream_seq) part.outstanding.delete(o);
      const queued = Math.min(rt.queued(p, now), ci.num_ack_pending);
      // Undelivered messages from the stream leader's state, not the consumer's num_pending: the consumer
      // leader counts on its own replica, which may not have applied the latest produce yet. Retention
      // removes only below first_seq, and interest retention nothing this group has not acked.
      const undelivered = Math.max(0, s.last_seq - Math.max(ci.delivered.stream_seq, first - 1));
      return {
        partition: p,
        nextOffset: Math.max(ci.delivered.stream_seq + 1, first),
        ackFloor: Math.max(ackFloorOf(gm, p, ci), first),
        lag: undelivered + ci.num_ack_pending,
        pending: ci.num_ack_pending - queued,
        redeliveryQueued: queued,
        lostToRetention: 0,
        deadLettered: 0,
      };
    }),
  );
  const lost = lostCounts(c, st.name, group, partitions.length);
  const dead = deadCounts(c, st.name, group, partitions.length);
  for (const part of partitions) {
    part.lostToRetention = lost[part.partition]!;
    part.deadLettered = dead.parts[part.partition]!;
  }
  const oldest = await oldestUnsettled(c, st, rt, partitions);
  return {
    station: st.name,
    group,
    createdAt: gm.createdAt,
    maxAckTimeMs: limits.maxAckTimeMs,
    maxDeliveries: limits.maxDeliveries,
    partitions,
    lag: partitions.reduce((n, p) => n + p.lag, 0),
    pending: partitions.reduce((n, p) => n + p.pending, 0),
    redeliveries: rt.redeliveries,
    deadLettered: dead.total,
    lostToRetention: partitions.reduce((n, p) => n + p.lostToRetention, 0),
    oldestUnackedAgeSeconds: oldest === undefined ? null : Math.max(0, Date.now() - oldest) / 1000,
  };
}

/**
 * The produce time of the oldest message the group has not settled: the message at the ack floor of each
 * partition with lag (one STREAM.MSG.GET per partition whose floor moved; the time is remembered on this
 * node's partition state). A floor whose message retention just removed is left out of this answer.
 */
async function oldestUnsettled(
  c: StoreCore,
  st: StationMeta,
  rt: GroupRt,
  partitions: readonly GroupPartitionInfo[],
): Promise<number | undefined> {
  let oldest: number | undefined;
  await Promise.all(
    partitions.map(async (p) => {
      if (p.lag === 0) return;
      const part = rt.parts[p.partition];
      let ts = part?.floorTs?.offset === p.ackFloor ? part.floorTs.ts : undefined;
      if (ts === undefined) {
        ts = (await getMessage(c, c.names.stream(st.name, p.partition), p.ackFloor).catch(() => undefined))?.timestamp;
        if (ts === undefined) return;
        if (part) part.floorTs = { offset: p.ackFloor, ts };
      }
      if (oldest === undefined || ts < oldest) oldest = ts;
    }),
  );
  return oldest;
}

export function deleteGroup(c: StoreCore, station: string, group: string): Promise<void> {
  return c.run('deleteGroup', async () => {
    await c.stationMeta(station);
    const gm = await c.groupMeta(station, group);
    await c.meta.delete(c.names.groupKey(station, group));
    await c.meta.delete(c.names.deadKey(station, group)).catch(() => {});
    await c.meta.delete(c.names.lostKey(station, group)).catch(() => {});
    c.groups.delete(`${station}\u0000${group}`);
    await Promise.all(gm.gens.map((g, p) => c.deleteConsumer(c.names.stream(station, p), c.names.consumer(group, g))));
  });
}

/** The group for a fetch: created at earliest on first use; concurrent first fetches share one creation. */
export async function groupForFetch(c: StoreCore, st: StationMeta, group: string): Promise<GroupMeta> {
  const key = c.names.groupKey(st.name, group);
  const cached = c.meta.peek<GroupMeta>(key).value;
  if (cached?.ready) return cached;
  const id = `${st.name}\u0000${group}`;
  let p = c.creatingGroups.get(id);
  if (!p) {
    p = (async () => {
      for (let attempt = 0; ; attempt++) {
        const cur = (await c.meta.read<GroupMeta>(key)).value;
        if (cur?.ready) return cur;
        if (cur === undefined) {
          try {
            return await newGroup(c, st, group, {});
          } catch (err) {
            if (!(err instanceof JunctionError && err.code === ErrorCode.GROUP_EXISTS)) throw err;
          }
        }
        // Another node is creating it.
        if (attempt > 100)
          throw new JunctionError(ErrorCode.UNAVAILABLE, `group "${group}" is still being created elsewhere`, { retryable: true });
        await sleep(50);
      }
    })().finally(() => c.creatingGroups.delete(id));
    c.creatingGroups.set(id, p);
  }
  return p;
}

export function seek(c: StoreCore, station: string, group: string, position: StartPosition): Promise<GroupInfo> {
  return c.run('seek', async () => {
    const st = await c.stationMeta(station);
    const pos = StartPosition.safeParse(position);
    if (!pos.success) throw configInvalid('seek position', pos.error);
    if (pos.data.type === 'offset' && pos.data.partition !== undefined && pos.data.partition >= st.config.partitions) {
      throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${station}" has no partition ${pos.data.partition}`);
    }
    const next = await replaceConsumers(c, st, group, () => positions(c, st, pos.data));
    return groupInfo(c, st, group, next);
  });
}

/**
 * Replaces the consumers of some partitions of a group by consumers of the next generation, at the
 * deliver settings `targets` answers per partition (undefined: that partition keeps its consumer). The new
 * consumers exist before the old ones go (with interest retention, no message loses its last reader);
 * deleting the old ones ends every delivery they made and every pull still waiting on them, on any node.
 * The partitions' epochs change with the generation: ids handed out before settle nothing after.
 */
export async function replaceConsumers(
  c: StoreCore,
  st: StationMeta,
  group: string,
  targets: (gm: GroupMeta) => Promise<(Record<string, unknown> | undefined)[]>,
): Promise<GroupMeta> {
  const key = c.names.groupKey(st.name, group);
  for (let attempt = 0; ; attempt++) {
    const gm = await c.groupMeta(st.name, group);
    const rev = c.meta.peek<GroupMeta>(key).rev;
    const to = await targets(gm);
    const gens = gm.gens.map((g, p) => (to[p] ? g + 1 : g));
    const made = await Promise.all(to.map((t, p) => (t ? createConsumer(c, st, group, p, gens[p]!, gm, t) : undefined)));
    const next: GroupMeta = { ...gm, gens, starts: gm.gens.map((_, p) => (made[p] ? made[p].delivered.stream_seq + 1 : gm.starts?.[p])) };
    if ((await c.meta.update(key, next, rev)) === undefined) {
      await Promise.allSettled(
        to.map((t, p) => (t ? c.deleteConsumer(c.names.stream(st.name, p), c.names.consumer(group, gens[p]!)) : undefined)),
      );
      if (attempt >= 3) throw new JunctionError(ErrorCode.UNAVAILABLE, `group "${group}" keeps changing; try again`, { retryable: true });
      await c.meta.read(key);
      continue;
    }
    await Promise.all(
      to.map((t, p) => (t ? c.deleteConsumer(c.names.stream(st.name, p), c.names.consumer(group, gm.gens[p]!)) : undefined)),
    );
    await startCounts(
      c,
      st.name,
      group,
      gens,
      made.map((ci) => (ci ? ci.delivered.stream_seq + 1 : undefined)),
    );
    c.runtime(st.name, group, next);
    return next;
  }
}

/**
 * Brings a station's groups in line with a change of its `deadLetter` settings (`before` → `after`): a
 * group without its own settings follows the station's. Groups from before that rule hold copies of the
 * station's values: the copies equal to `before` are dropped (those groups inherit from now on); then
 * every consumer of a group without its own ack deadline gets the station's new one (JetStream's
 * `ack_wait`). Idempotent: repeating it after a failure finishes the job.
 */
export async function followDeadLetter(c: StoreCore, before: StationMeta, after: StationMeta): Promise<void> {
  await Promise.all(
    c.groupNames(before.name).map(async (group) => {
      const key = c.names.groupKey(before.name, group);
      let gm = await c.groupMeta(before.name, group);
      for (let attempt = 0; gm.nonce === undefined; attempt++) {
        const own = groupSettings(before, gm);
        if (gm.maxAckTimeMs === undefined && gm.maxDeliveries === undefined) break;
        const next: GroupMeta = { ...gm };
        if (!own.ownAckTime) delete next.maxAckTimeMs;
        if (!own.ownDeliveries) delete next.maxDeliveries;
        if (next.maxAckTimeMs === gm.maxAckTimeMs && next.maxDeliveries === gm.maxDeliveries) break;
        const rev = c.meta.peek<GroupMeta>(key).rev;
        if ((await c.meta.update(key, next, rev)) !== undefined) {
          gm = next;
          break;
        }
        if (attempt >= 3) throw new JunctionError(ErrorCode.UNAVAILABLE, `group "${group}" keeps changing; try again`, { retryable: true });
        gm = await c.groupMeta(before.name, group);
      }
      const ackWait = groupSettings(after, gm).maxAckTimeMs * NS;
      await Promise.all(
        gm.gens.map(async (gen, p) => {
          const stream = c.names.stream(before.name, p);
          const durable = c.names.consumer(group, gen);
          const ci = await c.api<{ config: Record<string, unknown> & { ack_wait?: number } }>(`CONSUMER.INFO.${stream}.${durable}`);
          if (ci.config.ack_wait === ackWait) return;
          await c.api(`CONSUMER.DURABLE.CREATE.${stream}.${durable}`, { stream_name: stream, config: { ...ci.config, ack_wait: ackWait } });
        }),
      );
    }),
  );
}

/**
 * The contract's `releaseDeliveries`: the partitions' consumers are replaced by consumers of the next
 * generation that start at the old ones' ack floor (`replaceConsumers`: new first, then the old deleted).
 * Deleting the old consumer ends, on every node, its deliveries and its waiting pulls — including those of a
 * node that is paused or cut off and would otherwise still receive messages — so nothing is left for an ack
 * deadline, and there is no window between a snapshot of what is outstanding and the release. Offsets
 * acked above the ack floor are delivered again (at least once), with a delivery count starting at 1;
 * the partitions' epochs change.
 */
export function releaseDeliveries(c: StoreCore, station: string, group: string, partitions: readonly number[]): Promise<void> {
  return c.run('releaseDeliveries', async () => {
    const st = await c.stationMeta(station);
    for (const p of partitions) {
      if (!Number.isInteger(p) || p < 0 || p >= st.config.partitions)
        throw new JunctionError(ErrorCode.PARTITION_NOT_FOUND, `station "${station}" has no partition ${p}`);
    }
    await c.groupMeta(station, group);
    const release = new Set(partitions);
    if (release.size === 0) return;
    await replaceConsumers(c, st, group, (gm) =>
      Promise.all(
        gm.gens.map(async (gen, p) => {
          if (!release.has(p)) return undefined;
          const ci = await c.api<ConsumerInfo>(`CONSUMER.INFO.${c.names.stream(st.name, p)}.${c.names.consumer(group, gen)}`);
          return { deliver_policy: 'by_start_sequence', opt_start_seq: ackFloorOf(gm, p, ci) };
        }),
      ),
    );
    c.log.info(
      { station, group, partitions: [...release] },
      'outstanding deliveries released: the partitions start again at their ack floor',
    );
  });
}

/**
 * The first offset of a partition the group has not acked: the consumer's ack floor + 1, but not below where
 * the consumer started (JetStream answers 0 for a consumer that has acked nothing yet). For metadata
 * without `starts`: a consumer that acked nothing has every delivered offset pending.
 */
function ackFloorOf(gm: GroupMeta, p: number, ci: ConsumerInfo): number {
  const floor = ci.ack_floor.stream_seq + 1;
  if (ci.ack_floor.stream_seq > 0) return floor;
  const start = gm.starts?.[p] ?? ci.delivered.stream_seq - ci.num_ack_pending + 1;
  return Math.max(floor, start);
}
