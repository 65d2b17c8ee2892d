/**
 * Fetch: pulls from the group's consumers (no-wait sweeps, a long poll over every partition, one pull for a
 * one-partition station), handing out, carrying, skipping copies meant for other groups, and dead-lettering
 * what ran out of deliveries.
 */
import type { Msg } from '@nats-io/transport-node';
import type { Delivery, FetchOptions } from '@junction/broker';
import { REPLAY_GROUP_HEADER, deliveryId as makeDeliveryId } from '@junction/protocol';
import { decodeEnvelope } from './envelope.js';
import { isApiError, JsErr } from './errors.js';
import type { GroupMeta, StationMeta } from './meta.js';
import { parseAckSubject } from './names.js';
import { GroupRt, type Carried } from './runtime.js';
import type { PullSession } from './wire.js';
import {
  groupSettings,
  type StoreCore,
  sleep,
  stationIdOf,
  NS,
  STUCK_PULL_MS,
  CARRY_MARGIN_MS,
  CARRY_IDLE_MS,
  RECENT_PRODUCE_MS,
  REPLICA_CATCHUP_MS,
  type DeadItem,
} from './core.js';
import { moveToDls } from './dead-letters.js';
import { countSkipped, startCounts } from './retention.js';
import { createConsumer, groupForFetch } from './groups.js';

/** Per-fetch bookkeeping: what was collected, what to settle before answering. */
interface FetchCtx {
  st: StationMeta;
  group: string;
  gm: GroupMeta;
  /** The group's ack deadline and attempt limit (its own, or the station's). */
  limits: { maxAckTimeMs: number; maxDeliveries: number };
  rt: GroupRt;
  out: Delivery[];
  bytes: number;
  maxMessages: number;
  maxBytes: number;
  /** Ack subjects of copies meant for another group (replayed dead letters): acked, never delivered. */
  skips: string[];
  dead: DeadItem[];
  /** Messages received per partition in this fetch (any kind). */
  touched: number;
  wake?: (() => void) | undefined;
  /** The partitions this fetch pulls from (all, or the `partitions` option). */
  parts: number[];
}

const NAK = Buffer.from('-NAK');

type Deferred = { promise: Promise<void>; resolve: () => void };
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * `options.partitions` (an extension of the contract, used by the connector runtime when this node
 * runs only some of a sink's tasks): pull only from those partitions.
 */
export function fetch(
  c: StoreCore,
  station: string,
  group: string,
  options: FetchOptions & { partitions?: readonly number[] | undefined },
): Promise<Delivery[]> {
  return c.run('fetch', async () => {
    const st = await c.stationMeta(station);
    const all = Array.from({ length: st.config.partitions }, (_, p) => p);
    const parts = options.partitions ? all.filter((p) => options.partitions!.includes(p)) : all;
    const gm = await groupForFetch(c, st, group);
    const rt = c.runtime(station, group, gm);
    const ctx: FetchCtx = {
      st,
      group,
      gm,
      limits: groupSettings(st, gm),
      rt,
      out: [],
      bytes: 0,
      maxMessages: Math.max(1, Math.floor(options.maxMessages)),
      maxBytes: Math.max(1, Math.floor(options.maxBytes)),
      skips: [],
      dead: [],
      touched: 0,
      parts,
    };
    const signal = options.signal ? AbortSignal.any([options.signal, c.closing.signal]) : c.closing.signal;
    const deadline = performance.now() + Math.max(0, options.waitMs);
    takeCarried(ctx);
    for (let round = 0; ctx.out.length === 0 && !signal.aborted && round < 20; round++) {
      ctx.touched = 0;
      const left = Math.floor(deadline - performance.now());
      if (parts.length === 0) {
        await sleep(left > 0 ? left : 0, signal).catch(() => {});
        break;
      }
      if (parts.length === 1) await pullOne(c, ctx, parts[0]!, left > 0 ? left : 0, signal);
      else {
        await sweep(c, ctx, signal);
        if (ctx.out.length === 0 && ctx.touched === 0 && left > 0) await longPoll(c, ctx, left, signal);
        if (ctx.out.length > 0 && ctx.out.length < ctx.maxMessages && ctx.bytes < ctx.maxBytes) await sweep(c, ctx, signal);
      }
      await settleFetched(c, ctx);
      // Only copies for other groups or dead letters came: look again while there is time.
      if (ctx.touched === 0 || performance.now() >= deadline) break;
    }
    if (signal.aborted && c.state !== 'open') return [];
    if (ctx.out.length > 0) {
      let bytes = 0;
      let redeliveries = 0;
      for (const d of ctx.out) {
        bytes += d.value.length;
        if (d.deliveryCount > 1) redeliveries++;
      }
      c.emit({ type: 'delivered', station, group, messages: ctx.out.length, bytes, redeliveries });
    }
    return ctx.out;
  });
}

/** Hands out deliveries an earlier fetch on this node received beyond its limits. */
function takeCarried(ctx: FetchCtx): void {
  const { rt } = ctx;
  if (rt.carry.length === 0) return;
  const now = Date.now();
  const keep: Carried[] = [];
  for (const carried of rt.carry) {
    if (carried.deadline - CARRY_MARGIN_MS <= now) continue; // JetStream redelivers it
    if (!hasRoom(ctx, carried.delivery.value.length) || !ctx.parts.includes(carried.delivery.partition)) {
      keep.push(carried);
      continue;
    }
    handOut(ctx, carried.delivery, carried.ack, carried.deadline);
  }
  rt.carry.length = 0;
  rt.carry.push(...keep);
}

function hasRoom(ctx: FetchCtx, size: number): boolean {
  return ctx.out.length < ctx.maxMessages && (ctx.out.length === 0 || ctx.bytes + size <= ctx.maxBytes);
}

function handOut(ctx: FetchCtx, d: Delivery, ack: string, deadline: number): void {
  ctx.out.push(d);
  ctx.bytes += d.value.length;
  const part = ctx.rt.parts[d.partition];
  part?.outstanding.set(d.offset, { attempt: d.deliveryCount, ack, deadline });
  if (d.deliveryCount >= ctx.limits.maxDeliveries) part?.last.add(d.offset);
  if (d.deliveryCount > 1) ctx.rt.redeliveries++;
}

/** The partition of one of the station's streams (-1 for any other stream). */
function partitionOf(c: StoreCore, ctx: FetchCtx, stream: string): number {
  const p = Number(stream.slice(stream.lastIndexOf('_') + 1));
  return Number.isInteger(p) && p >= 0 && p < ctx.st.config.partitions && c.names.stream(ctx.st.name, p) === stream ? p : -1;
}

/** Takes one delivered JetStream message into the fetch: hand out, carry, skip, or dead-letter. */
function accept(c: StoreCore, ctx: FetchCtx, partition: number, m: Msg): void {
  const reply = m.reply;
  const a = reply ? parseAckSubject(reply) : undefined;
  if (!a || !reply) return;
  const part = ctx.rt.parts[partition];
  if (!part || a.consumer !== part.consumer) return; // a consumer a seek replaced
  ctx.touched++;
  if (a.deliveryCount === 1) {
    const prev = part.lastNew;
    // The consumer's first delivery, or the next one after the previous first attempt with nothing in
    // between: offsets it skipped were removed by retention before the group received them.
    const from = a.consumerSeq === 1 ? 1 : prev && a.consumerSeq === prev.dseq + 1 ? prev.sseq + 1 : undefined;
    if (from !== undefined && a.streamSeq > from)
      c.background(countSkipped(c, ctx.st, ctx.group, partition, part.generation, from, a.streamSeq - 1));
    part.lastNew = { dseq: a.consumerSeq, sseq: a.streamSeq };
  }
  let env: ReturnType<typeof decodeEnvelope>;
  try {
    env = decodeEnvelope(m.data);
  } catch (err) {
    // A damaged envelope is still the stored bytes: hand them out as the value rather than lose them.
    c.log.error({ err, station: ctx.st.name, partition, offset: a.streamSeq }, 'message envelope is damaged');
    env = { key: undefined, headers: {}, value: m.data };
  }
  const target = env.headers[REPLAY_GROUP_HEADER];
  if (target !== undefined && target !== ctx.group) {
    ctx.skips.push(reply);
    ctx.wake?.();
    return;
  }
  const held = part.outstanding.get(a.streamSeq);
  if (held && !held.busy && held.nackedUntil === undefined && a.deliveryCount <= held.attempt && held.deadline > Date.now()) {
    // The same attempt again while it is still out: a new consumer leader that had not yet replicated the
    // delivery (JetStream after a leader change). The first one stands; its ack works on the new leader.
    held.ack = reply;
    return;
  }
  if (a.deliveryCount > ctx.limits.maxDeliveries) {
    const known = part.outstanding.get(a.streamSeq);
    if (known?.busy) return; // this node is dead-lettering it already (its last deadline passed)
    if (known) known.busy = true;
    ctx.dead.push({
      partition,
      offset: a.streamSeq,
      attempts: a.deliveryCount - 1,
      ack: reply,
      code: 'MAX_DELIVERIES',
      reason: `not acknowledged after ${ctx.limits.maxDeliveries} deliveries`,
      message: { key: env.key, headers: env.headers, value: env.value, timestamp: a.timestamp },
    });
    ctx.wake?.();
    return;
  }
  const d: Delivery = {
    station: ctx.st.name,
    partition,
    offset: a.streamSeq,
    timestamp: a.timestamp,
    key: env.key,
    headers: env.headers,
    value: env.value,
    deliveryId: makeDeliveryId(partition, a.streamSeq, a.deliveryCount, part.epoch),
    deliveryCount: a.deliveryCount,
    stationId: stationIdOf(ctx.st),
  };
  const deadline = Date.now() + ctx.limits.maxAckTimeMs;
  if (hasRoom(ctx, d.value.length)) handOut(ctx, d, reply, deadline);
  else ctx.rt.carry.push({ delivery: d, ack: reply, deadline, at: Date.now() });
  ctx.wake?.();
}

/** One pull on one partition, ended by JetStream (batch, no messages, timeout) or by the signal. */
async function pullOne(c: StoreCore, ctx: FetchCtx, partition: number, waitMs: number, signal: AbortSignal): Promise<void> {
  const session = c.wire.pullSession((m, stream) => accept(c, ctx, partitionOf(c, ctx, stream), m));
  try {
    await pullInto(c, ctx, session, partition, waitMs, signal);
  } finally {
    session.close();
  }
}

async function pullInto(
  c: StoreCore,
  ctx: FetchCtx,
  session: PullSession,
  partition: number,
  waitMs: number,
  signal: AbortSignal,
): Promise<void> {
  const part = ctx.rt.parts[partition]!;
  const stream = c.names.stream(ctx.st.name, partition);
  const before = ctx.out.length;
  const body = {
    batch: ctx.maxMessages - ctx.out.length,
    max_bytes: Math.max(1, ctx.maxBytes - ctx.bytes),
    no_wait: true,
    ...(waitMs > 0 && { expires: waitMs * NS }),
  };
  let end = await untilEnd(session.request(stream, part.consumer, body), waitMs, signal);
  if (
    end?.code === 404 &&
    waitMs === 0 &&
    ctx.out.length === before &&
    performance.now() - (c.producedAt.get(stream) ?? -Infinity) < RECENT_PRODUCE_MS
  ) {
    // This node stored messages here a moment ago, but the consumer's leader may sit on a replica that
    // has not applied them yet (it found nothing): wait a little for them, answering at the first one.
    end = await untilEnd(session.request(stream, part.consumer, { ...body, expires: REPLICA_CATCHUP_MS * NS }), REPLICA_CATCHUP_MS, signal);
  }
  // No responders: the consumer has no leader yet (just created, or an election) — or it is gone.
  for (let delay = 25, tried = 0; end?.code === 503 && tried < 3_000 && !signal.aborted; tried += delay, delay = Math.min(delay * 2, 400)) {
    await sleep(delay, signal);
    end = await untilEnd(session.request(stream, part.consumer, body), waitMs, signal);
  }
  if (end?.code === 409 && /max ?bytes/i.test(end.description) && ctx.out.length === 0 && before === 0) {
    // The first message is larger than maxBytes: the contract still hands out one.
    end = await untilEnd(session.request(stream, part.consumer, { batch: 1, no_wait: true }), 0, signal);
  }
  if (end?.code === 503 || (end?.code === 409 && /consumer (deleted|not found)/i.test(end.description)))
    await repairConsumer(c, ctx, partition);
}

/** Waits for a pull's end, the signal, or — for a no-wait pull queued behind others (2.9 keeps those waiting) — a short stall. */
async function untilEnd(
  pull: Promise<{ code: number; description: string }>,
  waitMs: number,
  signal: AbortSignal,
): Promise<{ code: number; description: string } | undefined> {
  const ctl = new AbortController();
  const both = AbortSignal.any([signal, ctl.signal]);
  try {
    return await Promise.race([pull, sleep(waitMs + STUCK_PULL_MS, both).then(() => undefined)]);
  } finally {
    ctl.abort();
  }
}

/** No-wait pulls over the partitions, from a rotating start, until the limits are reached. */
async function sweep(c: StoreCore, ctx: FetchCtx, signal: AbortSignal): Promise<void> {
  const P = ctx.parts.length;
  const start = ctx.rt.rr++ % P;
  const session = c.wire.pullSession((m, stream) => accept(c, ctx, partitionOf(c, ctx, stream), m));
  try {
    for (let i = 0; i < P && ctx.out.length < ctx.maxMessages && !signal.aborted; i++) {
      if (ctx.out.length > 0 && ctx.bytes >= ctx.maxBytes) break;
      await pullInto(c, ctx, session, ctx.parts[(start + i) % P]!, 0, signal);
      if (session.openCount > 0) break; // a stalled pull: its partition's messages may still arrive here
    }
  } finally {
    session.close();
  }
}

/**
 * Waits on every partition at once for the first message: one-message pulls with `expires`; the first
 * arrival (or the deadline) ends the wait, and closing the session makes JetStream drop the other pulls.
 */
async function longPoll(c: StoreCore, ctx: FetchCtx, waitMs: number, signal: AbortSignal): Promise<void> {
  const woke = deferred();
  ctx.wake = woke.resolve;
  const session = c.wire.pullSession((m, stream) => accept(c, ctx, partitionOf(c, ctx, stream), m));
  try {
    const ends: Promise<unknown>[] = [];
    for (const p of ctx.parts) {
      ends.push(
        session.request(c.names.stream(ctx.st.name, p), ctx.rt.parts[p]!.consumer, { batch: 1, no_wait: true, expires: waitMs * NS }),
      );
    }
    await Promise.race([woke.promise, Promise.all(ends), sleep(waitMs + STUCK_PULL_MS, signal)]);
  } finally {
    ctx.wake = undefined;
    session.close();
  }
}

/** A pull found no consumer: re-read the group (a seek elsewhere?) or recreate the consumer at earliest. */
async function repairConsumer(c: StoreCore, ctx: FetchCtx, partition: number): Promise<void> {
  const key = c.names.groupKey(ctx.st.name, ctx.group);
  const fresh = (await c.meta.read<GroupMeta>(key)).value;
  if (!fresh?.ready) return;
  if (fresh.nonce !== ctx.gm.nonce || fresh.gens[partition] !== ctx.gm.gens[partition]) {
    ctx.rt.sync(c.consumersOf(ctx.group, fresh));
    ctx.gm = fresh;
    ctx.limits = groupSettings(ctx.st, fresh);
    return;
  }
  const stream = c.names.stream(ctx.st.name, partition);
  try {
    await c.api(`CONSUMER.INFO.${stream}.${c.names.consumer(ctx.group, fresh.gens[partition]!)}`);
  } catch (err) {
    if (isApiError(err, JsErr.CONSUMER_NOT_FOUND)) {
      c.log.warn({ station: ctx.st.name, group: ctx.group, partition }, 'consumer missing; recreated at the earliest offset');
      const ci = await createConsumer(c, ctx.st, ctx.group, partition, fresh.gens[partition]!, fresh, { deliver_policy: 'all' });
      // Its consumer sequence starts again: retention's count of this partition starts again with it.
      ctx.rt.parts[partition]!.lastNew = undefined;
      await startCounts(
        c,
        ctx.st.name,
        ctx.group,
        fresh.gens,
        fresh.gens.map((_, p) => (p === partition ? ci.delivered.stream_seq + 1 : undefined)),
      );
    }
  }
}

/** Acks the copies meant for other groups and dead-letters what ran out of deliveries. */
async function settleFetched(c: StoreCore, ctx: FetchCtx): Promise<void> {
  const skips = ctx.skips.splice(0);
  const dead = ctx.dead.splice(0);
  await Promise.all([c.ackSubjects(skips), dead.length > 0 ? moveToDls(c, ctx.st, ctx.group, ctx.gm, dead) : undefined]);
}

/**
 * A delivery of a pull whose fetch had ended (wire.ts `onOrphan`): taken in as a fetch with no room would
 * take it — carried for the next fetch of its group on this node (copies for other groups are acked,
 * deliveries past their last attempt dead-lettered) — or, when this node no longer runs that consumer,
 * handed back to JetStream at once (nak), so it never waits for its ack deadline.
 */
export function adoptOrphan(c: StoreCore, m: Msg): void {
  const a = m.reply ? parseAckSubject(m.reply) : undefined;
  if (!a || c.state !== 'open') return;
  for (const rt of c.groups.values()) {
    const p = rt.parts.findIndex((part, i) => part.consumer === a.consumer && c.names.stream(rt.station, i) === a.stream);
    if (p < 0) continue;
    const st = c.meta.peek<StationMeta>(c.names.stationKey(rt.station)).value;
    const gm = c.meta.peek<GroupMeta>(c.names.groupKey(rt.station, rt.group)).value;
    if (!st?.ready || !gm?.ready) break;
    const ctx: FetchCtx = {
      st,
      group: rt.group,
      gm,
      limits: groupSettings(st, gm),
      rt,
      out: [],
      bytes: 0,
      maxMessages: 0,
      maxBytes: 0,
      skips: [],
      dead: [],
      touched: 0,
      parts: [],
    };
    accept(c, ctx, p, m);
    if (ctx.skips.length > 0 || ctx.dead.length > 0) c.background(settleFetched(c, ctx));
    return;
  }
  c.wire.send(m.reply!, NAK);
}

/**
 * Releases (nak) the carried deliveries that no fetch on this node took within CARRY_IDLE_MS — their group
 * is fetched elsewhere now, or not at all (a sink task stopped or moved) — so that they come back at once
 * (deliveryCount + 1) instead of after their ack deadline.
 */
export function releaseIdleCarry(c: StoreCore, now = Date.now()): void {
  for (const rt of c.groups.values()) {
    if (rt.carry.length === 0) continue;
    const keep = rt.carry.filter((x) => now - x.at < CARRY_IDLE_MS);
    if (keep.length === rt.carry.length) continue;
    for (const x of rt.carry) if (now - x.at >= CARRY_IDLE_MS && x.deadline > now) c.wire.send(x.ack, NAK);
    rt.carry.length = 0;
    rt.carry.push(...keep);
  }
}
