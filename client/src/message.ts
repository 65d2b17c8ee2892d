/** A message delivered to a consumer, with the means to settle it. */
import type { SettleStatus } from '@junction/protocol';
import type { SettleBatcher } from './settle.js';
import type { Delivery } from './types.js';

/**
 * One delivery of a message to a consumer group. Settle it exactly once with `ack()`, `nack()` or
 * `deadLetter()`; the first call wins and later calls return the first call's promise. Unsettled
 * deliveries come back (to this or another member of the group) after the group's ack deadline.
 *
 * The settle methods resolve with the broker's status: `acked` / `nacked` / `dead-lettered`, or
 * `stale` / `unknown` when the delivery had already expired or been settled — the message is then
 * (or was) delivered again. They reject with a JunctionApiError only when the request failed after
 * the client's retries. Settles are batched: calls made in the same event-loop turn, or while an
 * earlier settle request is out, travel in one request.
 */
export class ConsumerMessage {
  readonly station: string;
  readonly group: string;
  readonly partition: number;
  readonly offset: number;
  /** ms since the epoch, set by the broker when it stored the message. */
  readonly timestamp: number;
  readonly key: string | undefined;
  readonly headers: Record<string, string>;
  /** The bytes as produced. */
  readonly value: Uint8Array;
  /** Names this attempt; what ack / nack / dead-letter send. */
  readonly deliveryId: string;
  /** 1 on the first delivery, then 2, 3, … */
  readonly deliveryCount: number;
  private outcome: Promise<SettleStatus> | undefined;

  constructor(
    d: Delivery,
    station: string,
    group: string,
    private readonly settler: SettleBatcher,
  ) {
    this.station = station;
    this.group = group;
    this.partition = d.partition;
    this.offset = d.offset;
    this.timestamp = d.timestamp;
    this.key = d.key;
    this.headers = d.headers;
    this.value = d.value;
    this.deliveryId = d.deliveryId;
    this.deliveryCount = d.deliveryCount;
  }

  /** True once ack, nack or deadLetter was called. */
  get settled(): boolean {
    return this.outcome !== undefined;
  }

  /** The value as UTF-8 text. */
  text(): string {
    return Buffer.from(this.value.buffer, this.value.byteOffset, this.value.byteLength).toString('utf8');
  }

  /** The value parsed as JSON; throws SyntaxError when it is not JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }

  /** Acknowledges the message: the group will not see it again. */
  ack(): Promise<SettleStatus> {
    return (this.outcome ??= this.settler.add('ack', this.deliveryId));
  }

  /** Gives the message back for redelivery, after `delayMs` (default at once). */
  nack(delayMs?: number): Promise<SettleStatus> {
    return (this.outcome ??= this.settler.add('nack', this.deliveryId, delayMs));
  }

  /** Moves the message to the station's dead-letter station with the reason. */
  deadLetter(reason?: string): Promise<SettleStatus> {
    return (this.outcome ??= this.settler.add('dead-letter', this.deliveryId, reason));
  }
}
