/**
 * What one Junction node remembers about a consumer group between calls: the deliveries it handed out
 * (to settle them by deliveryId, to tell a stale attempt from the current one, and to dead-letter a last
 * attempt when its deadline passes) and the few messages a fetch received beyond its limits.
 *
 * JetStream holds the group's real state (the consumer's pending set, ack floor, redelivery queue);
 * this is a per-node index of it and is rebuilt empty on restart — a delivery made before the restart
 * is still settled through the ack subject rebuilt from its deliveryId (see settle.ts `resolve`).
 */
import type { Delivery } from '@junction/broker';

/** One delivery this node handed out and that is not settled yet. */
export interface Outstanding {
  attempt: number;
  /** The ack reply subject JetStream gave the delivery. */
  ack: string;
  /** Ack deadline (ms, Date.now() clock). */
  deadline: number;
  /** Set by a nack: queued for redelivery, not before this time. */
  nackedUntil?: number | undefined;
  /** Being moved to the dead-letter station. */
  busy?: boolean | undefined;
}

/**
 * A delivery received beyond a fetch's limits, or after its fetch ended (a pull still waiting then): handed
 * out first by the next fetch on this node, or released (nak) when none takes it in time (store.ts tick).
 */
export interface Carried {
  delivery: Delivery;
  ack: string;
  /** Past this (ms) it is no longer handed out: JetStream redelivers it. */
  deadline: number;
  /** When it was received (ms, Date.now() clock). */
  at: number;
}

/** Offsets this node dead-lettered that a partition remembers (per epoch), to answer a late ack `stale`. */
export const REMEMBERED_DEAD = 10_000;

/** One consumer generation of a group's partition, as this node sees it. */
export interface ConsumerRef {
  generation: number;
  consumer: string;
  /** The epoch of this generation (names.ts `epochOf`): the last part of its deliveryIds. */
  epoch: string;
}

export class PartitionRt {
  readonly outstanding = new Map<number, Outstanding>();
  /** Offsets handed out on their last attempt (the ones whose deadline means dead-lettering). */
  readonly last = new Set<number>();
  /** Offsets this node moved to the dead-letter station in this epoch (the last REMEMBERED_DEAD). */
  private readonly dead = new Set<number>();
  /**
   * The last first-attempt delivery this node received (consumer and stream sequence): the next one with
   * the next consumer sequence and a higher stream sequence than the one after shows offsets the consumer
   * skipped, which retention removed (retention.ts).
   */
  lastNew: { dseq: number; sseq: number } | undefined;
  /** The produce time of the message at the ack floor last asked about (groups.ts `oldestAge`): read once per floor. */
  floorTs: { offset: number; ts: number } | undefined;
  readonly generation: number;
  readonly consumer: string;
  readonly epoch: string;
  constructor(ref: ConsumerRef) {
    this.generation = ref.generation;
    this.consumer = ref.consumer;
    this.epoch = ref.epoch;
  }

  rememberDead(offset: number): void {
    this.dead.add(offset);
    if (this.dead.size > REMEMBERED_DEAD) this.dead.delete(this.dead.values().next().value!);
  }

  wasDead(offset: number): boolean {
    return this.dead.has(offset);
  }
}

export class GroupRt {
  parts: PartitionRt[];
  readonly carry: Carried[] = [];
  /** Redeliveries handed out by this node since it opened (the embedded engine counts them in memory too). */
  redeliveries = 0;
  rr = 0;

  constructor(
    readonly station: string,
    readonly group: string,
    consumers: ConsumerRef[],
  ) {
    this.parts = consumers.map((c) => new PartitionRt(c));
  }

  /**
   * Adopts new consumer generations (after a seek or a hand-over anywhere, or a new incarnation of the
   * group); forgets what this node knew of replaced ones.
   */
  sync(consumers: ConsumerRef[]): void {
    let changed = false;
    this.parts = consumers.map((c, p) => {
      const cur = this.parts[p];
      if (cur && cur.generation === c.generation && cur.epoch === c.epoch) return cur;
      changed = true;
      return new PartitionRt(c);
    });
    if (changed) {
      const keep = this.carry.filter((c) => this.parts[c.delivery.partition]?.consumer === consumerOf(c.ack));
      this.carry.length = 0;
      this.carry.push(...keep);
    }
  }

  /** Deliveries queued for redelivery per partition, as far as this node knows (nacked, or past their deadline). */
  queued(partition: number, now: number): number {
    let n = 0;
    for (const o of this.parts[partition]?.outstanding.values() ?? [])
      if (!o.busy && (o.nackedUntil !== undefined || o.deadline <= now)) n++;
    return n;
  }
}

/** The consumer name inside an ack subject (`$JS.ACK.<stream>.<consumer>.…`). */
export function consumerOf(ack: string): string | undefined {
  return ack.split('.', 4)[3];
}
