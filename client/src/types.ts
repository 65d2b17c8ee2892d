/**
 * The client's own types. The broker's answers (StationInfo, GroupInfo, …) and input bodies
 * (StationConfigInput, CreateGroupBody, …) come from @junction/protocol, the wire contract the broker
 * shares; the client never imports the broker.
 */
import type { SettleStatus } from '@junction/protocol';

export type { GroupInfo, GroupPartitionInfo, PartitionInfo, ReplayResult, StationInfo } from '@junction/protocol';

/** What GET /healthz answers; `status` is "ok" on a healthy broker. */
export interface HealthInfo {
  status: string;
  [field: string]: unknown;
}

/** A value to produce: bytes as they are, or a string (sent as UTF-8). */
export type MessageValue = Uint8Array | string;

/** A message to produce. */
export interface ProducerMessage {
  value: MessageValue;
  /** Routes the message to a partition (same key, same partition); at most 64 KiB of UTF-8. */
  key?: string | undefined;
  headers?: Record<string, string> | undefined;
  /**
   * Idempotency id: the broker stores a message with a msgId seen inside the station's dedup window
   * only once. A producer retries a failed batch by itself only for messages that carry one.
   */
  msgId?: string | undefined;
}

/** A message was stored (or had been stored before: `duplicate`) at this partition and offset. */
export interface StoredResult {
  status: 'stored' | 'duplicate';
  partition: number;
  offset: number;
}

/** The broker refused this one message (e.g. MESSAGE_TOO_LARGE); the others of its batch are unaffected. */
export interface RejectedResult {
  status: 'rejected';
  code: string;
  message: string;
}

/** The outcome of one produced message, in the order the messages were given. */
export type ProduceResult = StoredResult | RejectedResult;

/** A stored message as read by browsing (no group involved). */
export interface BrowsedMessage {
  partition: number;
  offset: number;
  /** ms since the epoch, set by the broker when it stored the message. */
  timestamp: number;
  key?: string | undefined;
  headers: Record<string, string>;
  value: Uint8Array;
}

/** One delivery to a consumer group, as the low-level `JunctionClient.fetch` returns it. */
export interface Delivery extends BrowsedMessage {
  /** Names this attempt of this message in the group; what ack / nack / dead-letter take. */
  deliveryId: string;
  /** 1 on the first delivery, then 2, 3, … */
  deliveryCount: number;
}

export type { SettleStatus };

/** The broker's answer for one delivery id of an ack / nack / dead-letter request. */
export interface SettleResult {
  deliveryId: string;
  status: SettleStatus;
}
