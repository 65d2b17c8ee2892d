/**
 * Settling deliveries by deliveryId: ack, nack and dead-letter, through this node's record of the delivery
 * or the ack subject rebuilt from the id.
 */
import type { DeadLetterDetails } from '@junction/broker';
import { parseDeliveryId, type SettleOutcome } from '@junction/protocol';
import type { GroupMeta, StationMeta } from './meta.js';
import { ackSubject, parseAckSubject } from './names.js';
import { GroupRt, type Outstanding } from './runtime.js';
import { type StoreCore, NS, type ConsumerInfo, type DeadItem } from './core.js';
import { moveToDls } from './dead-letters.js';

/** The parts of an ack subject for ackSubject(), with another consumer sequence. */
function subjectParts(ack: string, consumerSeq: number): [string, string, number, number, number] {
  const a = parseAckSubject(ack)!;
  return [a.stream, a.consumer, a.deliveryCount, a.streamSeq, consumerSeq];
}

/**
 * What a deliveryId refers to: this node's record of the delivery, or — for one handed out by another
 * node or before a restart — the ack subject rebuilt from it, when the consumer has delivered that
 * offset and not yet settled it.
 */
async function resolve(
  c: StoreCore,
  st: StationMeta,
  group: string,
  gm: GroupMeta,
  rt: GroupRt,
  ids: readonly string[],
): Promise<({ id: string; partition: number; offset: number; attempt: number; out: Outstanding; local: boolean } | { id: string; status: 'unknown' | 'settled' | 'stale' })[]> {
  const infos = new Map<number, Promise<ConsumerInfo | undefined>>();
  const consumerInfo = (p: number) => {
    let i = infos.get(p);
    if (!i) {
      i = c.api<ConsumerInfo>(`CONSUMER.INFO.${c.names.stream(st.name, p)}.${c.names.consumer(group, gm.gens[p]!)}`).catch(() => undefined);
      infos.set(p, i);
    }
    return i;
  };
  return Promise.all(
    ids.map(async (id) => {
      const d = parseDeliveryId(id);
      if (!d || d.partition >= st.config.partitions || d.attempt < 1) return { id, status: 'unknown' as const };
      const part = rt.parts[d.partition]!;
      const out = part.outstanding.get(d.offset);
      if (out) {
        if (out.busy) return { id, status: 'stale' as const };
        if (d.attempt <= out.attempt) return { id, partition: d.partition, offset: d.offset, attempt: d.attempt, out, local: true };
      }
      const ci = await consumerInfo(d.partition);
      if (!ci || d.offset > ci.delivered.stream_seq) return { id, status: 'unknown' as const };
      if (d.offset <= ci.ack_floor.stream_seq) return { id, status: 'settled' as const };
      const stream = c.names.stream(st.name, d.partition);
      const consumer = part.consumer;
      return {
        id,
        partition: d.partition,
        offset: d.offset,
        attempt: d.attempt,
        local: false,
        out: { attempt: d.attempt, ack: ackSubject(stream, consumer, d.attempt, d.offset, 0), deadline: Date.now() + gm.maxAckTimeMs, nakSeq: ci.delivered.consumer_seq } as Outstanding & { nakSeq: number },
      };
    }),
  );
}

async function settleTarget(c: StoreCore, station: string, group: string): Promise<{ st: StationMeta; gm: GroupMeta; rt: GroupRt }> {
  const st = await c.stationMeta(station);
  const gm = await c.groupMeta(station, group);
  return { st, gm, rt: c.runtime(station, group, gm) };
}

export function ack(c: StoreCore, station: string, group: string, deliveryIds: readonly string[]): Promise<SettleOutcome[]> {
  return c.run('ack', async () => {
    const { st, gm, rt } = await settleTarget(c, station, group);
    const resolved = await resolve(c, st, group, gm, rt, deliveryIds);
    const subjects: string[] = [];
    const out: SettleOutcome[] = resolved.map((r) => {
      if ('status' in r) return { deliveryId: r.id, status: r.status === 'settled' ? 'acked' : r.status };
      subjects.push(r.out.ack);
      rt.parts[r.partition]!.outstanding.delete(r.offset);
      return { deliveryId: r.id, status: 'acked' };
    });
    await c.ackSubjects(subjects);
    if (subjects.length > 0) c.emit({ type: 'acked', station, group, messages: subjects.length });
    return out;
  });
}

export function nack(c: StoreCore, station: string, group: string, deliveryIds: readonly string[], delayMs?: number): Promise<SettleOutcome[]> {
  return c.run('nack', async () => {
    const { st, gm, rt } = await settleTarget(c, station, group);
    const resolved = await resolve(c, st, group, gm, rt, deliveryIds);
    const delay = Math.max(0, Math.floor(delayMs ?? 0));
    const naks: { subject: string; body: string }[] = [];
    const dead: DeadItem[] = [];
    const deadIds = new Set<string>();
    const now = Date.now();
    const out: SettleOutcome[] = resolved.map((r) => {
      if ('status' in r) return { deliveryId: r.id, status: r.status === 'settled' ? 'stale' : r.status };
      // Only the current attempt of a delivery that is out counts (the embedded engine's rule).
      if (r.local && (r.attempt !== r.out.attempt || r.out.nackedUntil !== undefined)) return { deliveryId: r.id, status: 'stale' };
      if (r.attempt >= gm.maxDeliveries) {
        r.out.busy = true;
        dead.push({ partition: r.partition, offset: r.offset, attempts: r.attempt, ack: r.out.ack, code: 'MAX_DELIVERIES', reason: `nacked after ${gm.maxDeliveries} deliveries` });
        deadIds.add(r.id);
        return { deliveryId: r.id, status: 'dead-lettered' };
      }
      const nakSeq = (r.out as Outstanding & { nakSeq?: number }).nakSeq;
      // A nak needs the consumer sequence of the delivery; a rebuilt subject carries the consumer's last one.
      const subject = nakSeq === undefined ? r.out.ack : ackSubject(...subjectParts(r.out.ack, nakSeq));
      naks.push({ subject, body: delay > 0 ? `-NAK ${JSON.stringify({ delay: delay * NS })}` : '-NAK' });
      if (r.local) r.out.nackedUntil = now + delay;
      return { deliveryId: r.id, status: 'nacked' };
    });
    await Promise.all(naks.map((n) => c.wire.request(n.subject, Buffer.from(n.body))));
    if (dead.length > 0) await moveToDls(c, st, group, gm, dead);
    return out;
  });
}

export function deadLetter(c: StoreCore, station: string, group: string, deliveryIds: readonly string[], reason?: string, details?: DeadLetterDetails): Promise<SettleOutcome[]> {
  return c.run('deadLetter', async () => {
    const { st, gm, rt } = await settleTarget(c, station, group);
    const resolved = await resolve(c, st, group, gm, rt, deliveryIds);
    const items: DeadItem[] = [];
    const out: SettleOutcome[] = resolved.map((r) => {
      if ('status' in r) return { deliveryId: r.id, status: r.status === 'settled' ? 'stale' : r.status };
      r.out.busy = true;
      items.push({
        partition: r.partition,
        offset: r.offset,
        attempts: r.local ? r.out.attempt : r.attempt,
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

