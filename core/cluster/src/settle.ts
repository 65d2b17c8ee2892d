/**
 * Settling deliveries by deliveryId: ack, nack and dead-letter, through this node's record of the delivery
 * or the ack subject rebuilt from the id. The answers follow the contract's table (README, "What a
 * deliveryId settles"): only a delivery of the group partition's current epoch may be settled.
 */
import type { DeadLetterDetails } from '@junction/broker';
import { parseDeliveryId, type SettleOutcome } from '@junction/protocol';
import type { GroupMeta, StationMeta } from './meta.js';
import { ackSubject, parseAckSubject } from './names.js';
import type { GroupRt, Outstanding } from './runtime.js';
import { groupSettings, type StoreCore, NS, type ConsumerInfo, type DeadItem } from './core.js';
import { deadMarks, moveToDls } from './dead-letters.js';

/** The parts of an ack subject for ackSubject(), with another consumer sequence. */
function subjectParts(ack: string, consumerSeq: number): [string, string, number, number, number] {
  const a = parseAckSubject(ack)!;
  return [a.stream, a.consumer, a.deliveryCount, a.streamSeq, consumerSeq];
}

/**
 * What a deliveryId refers to, as far as the verbs care:
 * - `unknown`: never handed out (malformed, no such partition, an offset the group has not delivered yet,
 *   an attempt this node knows was not made);
 * - `stale`: of another epoch (before a seek or a hand-over, an earlier incarnation of the station or group);
 * - `dead`: the message was dead-lettered, or is on its way to the dead-letter station;
 * - `acked`: the message was acked already (at or below the consumer's ack floor and not dead-lettered);
 * - `current`: this node's record of the delivery, and the id is its current attempt, still out;
 * - `waiting`: this node's record, but the id is an older attempt, or the delivery is no longer out
 *   (nacked, or past its deadline: queued for redelivery);
 * - `remote`: delivered, not settled, and handed out by another node (or by this one before a restart):
 *   the ack subject is rebuilt from the id. The attempt cannot be checked here (README, difference 10).
 */
type Resolved =
  | { id: string; kind: 'unknown' | 'stale' | 'dead' | 'acked' }
  | {
      id: string;
      kind: 'current' | 'waiting' | 'remote';
      partition: number;
      offset: number;
      attempt: number;
      out: Outstanding & { nakSeq?: number };
    };

async function resolve(
  c: StoreCore,
  st: StationMeta,
  group: string,
  gm: GroupMeta,
  rt: GroupRt,
  ids: readonly string[],
): Promise<Resolved[]> {
  // Asked once per partition and call, for ids this node does not hold.
  const infos = new Map<number, Promise<ConsumerInfo | undefined>>();
  const consumerInfo = (p: number) => {
    let i = infos.get(p);
    if (!i) {
      i = c.api<ConsumerInfo>(`CONSUMER.INFO.${c.names.stream(st.name, p)}.${rt.parts[p]!.consumer}`).catch(() => undefined);
      infos.set(p, i);
    }
    return i;
  };
  const marks = new Map<number, Promise<Set<number>>>();
  const deadOf = (p: number) => {
    let m = marks.get(p);
    if (!m) marks.set(p, (m = deadMarks(c, st, group, rt.parts[p]!.epoch, p)));
    return m;
  };
  const now = Date.now();
  return Promise.all(
    ids.map(async (id): Promise<Resolved> => {
      const d = parseDeliveryId(id);
      if (!d || d.partition >= st.config.partitions || d.attempt < 1) return { id, kind: 'unknown' };
      const part = rt.parts[d.partition]!;
      if (d.epoch !== part.epoch) {
        // As the embedded engine: an offset the group has not delivered (in its current epoch) was never handed out.
        const ci = await consumerInfo(d.partition);
        return { id, kind: !ci || d.offset > ci.delivered.stream_seq ? 'unknown' : 'stale' };
      }
      const out = part.outstanding.get(d.offset);
      if (out) {
        if (out.busy) return { id, kind: 'dead' };
        const isOut = out.nackedUntil === undefined && out.deadline > now;
        // While this node's delivery is out, no newer attempt exists anywhere (JetStream redelivers only
        // after the deadline or a nak): a higher attempt was never handed out.
        if (d.attempt > out.attempt && isOut) return { id, kind: 'unknown' };
        if (d.attempt <= out.attempt) {
          const kind = d.attempt === out.attempt && isOut ? 'current' : 'waiting';
          return { id, kind, partition: d.partition, offset: d.offset, attempt: d.attempt, out };
        }
        // A higher attempt than this node's, after its deadline or a nak: another node may have made it.
      }
      if (part.wasDead(d.offset)) return { id, kind: 'dead' };
      const ci = await consumerInfo(d.partition);
      if (!ci || d.offset > ci.delivered.stream_seq) return { id, kind: 'unknown' };
      // Dead-lettered (by another node, or before a restart): the marks tell, also above the ack floor.
      if ((await deadOf(d.partition)).has(d.offset)) return { id, kind: 'dead' };
      if (d.offset <= ci.ack_floor.stream_seq) return { id, kind: 'acked' };
      const stream = c.names.stream(st.name, d.partition);
      return {
        id,
        kind: 'remote',
        partition: d.partition,
        offset: d.offset,
        attempt: d.attempt,
        out: {
          attempt: d.attempt,
          ack: ackSubject(stream, part.consumer, d.attempt, d.offset, 0),
          deadline: now + groupSettings(st, gm).maxAckTimeMs,
          nakSeq: ci.delivered.consumer_seq,
        },
      };
    }),
  );
}

async function settleTarget(c: StoreCore, station: string, group: string): Promise<{ st: StationMeta; gm: GroupMeta; rt: GroupRt }> {
  const st = await c.stationMeta(station);
  const gm = await c.groupMeta(station, group);
  return { st, gm, rt: c.runtime(station, group, gm) };
}

/**
 * Acks: idempotent. `acked` for any attempt of a waiting message (the work was done) and for one acked
 * already; `stale` for a dead-lettered message and an id of another epoch; `unknown` for an id never
 * handed out.
 */
export function ack(c: StoreCore, station: string, group: string, deliveryIds: readonly string[]): Promise<SettleOutcome[]> {
  return c.run('ack', async () => {
    const { st, gm, rt } = await settleTarget(c, station, group);
    const resolved = await resolve(c, st, group, gm, rt, deliveryIds);
    const subjects: string[] = [];
    const out: SettleOutcome[] = resolved.map((r) => {
      switch (r.kind) {
        case 'unknown':
        case 'stale':
          return { deliveryId: r.id, status: r.kind };
        case 'dead':
          return { deliveryId: r.id, status: 'stale' };
        case 'acked':
          return { deliveryId: r.id, status: 'acked' };
        default:
          // An older attempt acks the message through the record of its newest one (its ack subject).
          subjects.push(r.out.ack);
          rt.parts[r.partition]!.outstanding.delete(r.offset);
          return { deliveryId: r.id, status: 'acked' };
      }
    });
    await c.ackSubjects(subjects);
    if (subjects.length > 0) c.emit({ type: 'acked', station, group, messages: subjects.length });
    return out;
  });
}

/**
 * Nacks: only the current attempt of a delivery that is out is delivered again. `acked` when the message
 * was acked already; `stale` for an older attempt, a delivery no longer out, a dead-lettered message or
 * an id of another epoch. The last attempt is dead-lettered instead (`dead-lettered`).
 */
export function nack(
  c: StoreCore,
  station: string,
  group: string,
  deliveryIds: readonly string[],
  delayMs?: number,
): Promise<SettleOutcome[]> {
  return c.run('nack', async () => {
    const { st, gm, rt } = await settleTarget(c, station, group);
    const resolved = await resolve(c, st, group, gm, rt, deliveryIds);
    const delay = Math.max(0, Math.floor(delayMs ?? 0));
    const { maxDeliveries } = groupSettings(st, gm);
    const naks: { subject: string; body: string }[] = [];
    const dead: DeadItem[] = [];
    const now = Date.now();
    const out: SettleOutcome[] = resolved.map((r) => {
      switch (r.kind) {
        case 'unknown':
        case 'stale':
          return { deliveryId: r.id, status: r.kind };
        case 'dead':
        case 'waiting':
          return { deliveryId: r.id, status: 'stale' };
        case 'acked':
          return { deliveryId: r.id, status: 'acked' };
      }
      if (r.attempt >= maxDeliveries) {
        r.out.busy = true;
        dead.push({
          partition: r.partition,
          offset: r.offset,
          attempts: r.attempt,
          ack: r.out.ack,
          code: 'MAX_DELIVERIES',
          reason: `nacked after ${maxDeliveries} deliveries`,
        });
        return { deliveryId: r.id, status: 'dead-lettered' };
      }
      // A nak needs the consumer sequence of the delivery; a rebuilt subject carries the consumer's last one.
      const subject = r.out.nakSeq === undefined ? r.out.ack : ackSubject(...subjectParts(r.out.ack, r.out.nakSeq));
      naks.push({ subject, body: delay > 0 ? `-NAK ${JSON.stringify({ delay: delay * NS })}` : '-NAK' });
      if (r.kind === 'current') r.out.nackedUntil = now + delay;
      return { deliveryId: r.id, status: 'nacked' };
    });
    await Promise.all(naks.map((n) => c.wire.request(n.subject, Buffer.from(n.body))));
    if (dead.length > 0) await moveToDls(c, st, group, gm, dead);
    return out;
  });
}

/**
 * Dead-letters any attempt of a waiting message (`dead-lettered`); idempotent for a message dead-lettered
 * already; `acked` for one acked already; `stale` for an id of another epoch; `unknown` for an id never
 * handed out.
 */
export function deadLetter(
  c: StoreCore,
  station: string,
  group: string,
  deliveryIds: readonly string[],
  reason?: string,
  details?: DeadLetterDetails,
): Promise<SettleOutcome[]> {
  return c.run('deadLetter', async () => {
    const { st, gm, rt } = await settleTarget(c, station, group);
    const resolved = await resolve(c, st, group, gm, rt, deliveryIds);
    const items: DeadItem[] = [];
    const out: SettleOutcome[] = resolved.map((r) => {
      switch (r.kind) {
        case 'unknown':
        case 'stale':
        case 'acked':
          return { deliveryId: r.id, status: r.kind };
        case 'dead':
          return { deliveryId: r.id, status: 'dead-lettered' };
      }
      r.out.busy = true;
      items.push({
        partition: r.partition,
        offset: r.offset,
        attempts: r.out.attempt,
        ack: r.out.ack,
        code: details?.code ?? 'CONSUMER_DEAD_LETTER',
        reason: reason ?? 'dead-lettered by the consumer',
        headers: details?.headers,
      });
      return { deliveryId: r.id, status: 'dead-lettered' };
    });
    if (items.length > 0) await moveToDls(c, st, group, gm, items);
    return out;
  });
}
