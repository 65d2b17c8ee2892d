/**
 * How Junction names map onto JetStream names. One stream per partition, so the stream sequence IS the
 * partition offset (starts at 1, never reused, gaps only where retention removed messages):
 *
 *   stream    <PREFIX>_<station>_<p>         e.g. JUNCTION_orders_0
 *   subject   <prefix>.<station>.<p>         e.g. junction.orders.0
 *   consumer  <group>_g<generation>          one durable pull consumer per group per partition stream;
 *                                            the generation grows on every seek (a seek is a new consumer)
 *   claims    <PREFIX>_<station>_ids         msgId claims of a station with several partitions (claims.ts)
 *   marks     <PREFIX>_<station>_dead        offsets its groups dead-lettered (dead-letters.ts)
 *   KV bucket <prefix>-meta                  station and group metadata (see meta.ts for the keys)
 *
 * Station and group names may contain "."; JetStream names may not, and a "." would split a subject
 * token, so "." is written as "=" (which Junction names never contain: the encoding is one to one).
 */
import { createHash } from 'node:crypto';
import { epochToken } from '@junction/protocol';

/**
 * The epoch of a group's partition: the last part of its deliveryIds (`<p>-<offset>-<attempt>-<epoch>`,
 * @junction/protocol). It changes with the group's incarnation (`nonce`, random at creation, so also when
 * the station is deleted and created again) and with the consumer generation (every seek and hand-over),
 * so an id handed out before settles nothing after. Metadata without a nonce (written before epochs)
 * uses the group's name and creation time instead.
 */
export function epochOf(
  group: string,
  gm: { nonce?: string | undefined; createdAt: number },
  partition: number,
  generation: number,
): string {
  const h = createHash('sha256')
    .update(`${gm.nonce ?? `${group}\u0000${gm.createdAt}`}\u0000${partition}\u0000${generation}`)
    .digest();
  return epochToken(h.readUInt32BE(0));
}

/** Store prefixes: lower case, so the upper-cased stream prefix stays one to one. */
export const PREFIX_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;

/** A Junction name as one JetStream name / subject token / KV key token. */
export function enc(name: string): string {
  return name.replaceAll('.', '=');
}

export function dec(token: string): string {
  return token.replaceAll('=', '.');
}

export class Names {
  readonly streamPrefix: string;
  readonly bucket: string;

  constructor(readonly prefix: string) {
    if (!PREFIX_PATTERN.test(prefix)) throw new RangeError(`prefix "${prefix}" must match ${PREFIX_PATTERN}`);
    this.streamPrefix = prefix.toUpperCase();
    this.bucket = `${prefix}-meta`;
  }

  stream(station: string, partition: number): string {
    return `${this.streamPrefix}_${enc(station)}_${partition}`;
  }

  subject(station: string, partition: number): string {
    return `${this.prefix}.${enc(station)}.${partition}`;
  }

  /**
   * The stream that remembers which offsets a station's groups dead-lettered (`<PREFIX>_<station>_dead`,
   * one empty message per dead letter on `markSubject`), so that a late ack of one answers `stale` on any
   * node and after restarts.
   */
  marksStream(station: string): string {
    return `${this.streamPrefix}_${enc(station)}_dead`;
  }

  /** Every subject of a station's marks stream. */
  marksSubjects(station: string): string {
    return `${this.prefix}.${enc(station)}.dead.>`;
  }

  /** The mark of one dead letter: group, epoch (so a seek or a new incarnation starts clean), partition, offset. */
  markSubject(station: string, group: string, epoch: string, partition: number, offset: number): string {
    return `${this.prefix}.${enc(station)}.dead.${enc(group)}.${epoch}.${partition}.${offset}`;
  }

  /** The marks of one partition of a group in one epoch (a subject filter). */
  markFilter(station: string, group: string, epoch: string, partition: number): string {
    return `${this.prefix}.${enc(station)}.dead.${enc(group)}.${epoch}.${partition}.*`;
  }

  /** Every subject of the store (stream listing filter). */
  get allSubjects(): string {
    return `${this.prefix}.>`;
  }

  consumer(group: string, generation: number): string {
    return `${enc(group)}_g${generation}`;
  }

  // ---- KV keys -----------------------------------------------------------------------------
  // s.<station>            StationMeta
  // g.<station>.<group>    GroupMeta
  // d.<station>.<group>    dead-letter counter of a group
  // l.<station>.<group>    what a group lost to retention, per partition (retention.ts)
  // Reserved for the connector runtime: c.<connector> (connector desired state), and a separate
  // bucket <prefix>-leases whose keys t.<connector>.<task> hold { node, epoch } with a bucket TTL as
  // the lease and CAS on the revision as the fencing token; n.<node> heartbeats. See README.

  stationKey(station: string): string {
    return `s.${enc(station)}`;
  }

  groupKey(station: string, group: string): string {
    return `g.${enc(station)}.${enc(group)}`;
  }

  deadKey(station: string, group: string): string {
    return `d.${enc(station)}.${enc(group)}`;
  }

  /** What a group lost to retention, per partition (retention.ts). */
  lostKey(station: string, group: string): string {
    return `l.${enc(station)}.${enc(group)}`;
  }

  /** Parses a KV key; undefined for keys this store does not own. */
  parseKey(key: string): { kind: 's'; station: string } | { kind: 'g' | 'd'; station: string; group: string } | undefined {
    const parts = key.split('.');
    if (parts[0] === 's' && parts.length === 2) return { kind: 's', station: dec(parts[1]!) };
    if ((parts[0] === 'g' || parts[0] === 'd') && parts.length === 3)
      return { kind: parts[0], station: dec(parts[1]!), group: dec(parts[2]!) };
    return undefined;
  }
}

/** The parts of a JetStream ack reply subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`. */
export interface AckInfo {
  stream: string;
  consumer: string;
  deliveryCount: number;
  streamSeq: number;
  consumerSeq: number;
  /** ms since the epoch (the stored message's timestamp, from the nanoseconds token). */
  timestamp: number;
  pending: number;
}

/**
 * Parses an ack reply subject the way nats-server 2.9 does (`ackReplyInfo` in server/consumer.go:
 * exactly 9 tokens, `$JS`, `ACK`); undefined for anything else (a 2.10+ domain form has 12 tokens and is
 * parsed too, from the end).
 */
export function parseAckSubject(subject: string): AckInfo | undefined {
  const t = subject.split('.');
  if (t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  // v1: $JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>
  // v2: $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>.<token>
  const base = t.length === 9 ? 2 : t.length >= 12 ? 4 : -1;
  if (base < 0) return undefined;
  const ts = t[base + 5]!;
  return {
    stream: t[base]!,
    consumer: t[base + 1]!,
    deliveryCount: Number(t[base + 2]),
    streamSeq: Number(t[base + 3]),
    consumerSeq: Number(t[base + 4]),
    // nanoseconds do not fit a double exactly; milliseconds are the digits before the last six.
    timestamp: ts.length > 6 ? Number(ts.slice(0, -6)) : 0,
    pending: Number(t[base + 6]),
  };
}

/**
 * An ack subject rebuilt from what a deliveryId carries, for a delivery this node did not hand out.
 * nats-server 2.9 reads only the delivery count, stream sequence and consumer sequence from it (the
 * timestamp and pending tokens are ignored), and for an ack it takes the consumer sequence from its own
 * pending record: `consumerSeq` 0 is safe for ack and term (it never moves the ack floor on its own); a nak
 * needs a consumer sequence inside the consumer's delivered range.
 */
export function ackSubject(stream: string, consumer: string, deliveryCount: number, streamSeq: number, consumerSeq: number): string {
  return `$JS.ACK.${stream}.${consumer}.${deliveryCount}.${streamSeq}.${consumerSeq}.0.0`;
}
