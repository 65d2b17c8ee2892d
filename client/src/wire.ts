/** Conversions between the client's types and the wire: produce messages, outcomes, message batches. */
import { BATCH_CONTENT_TYPE, decodeMessageBatch, type ProduceMessage, type ProduceOutcome } from '@junction/protocol';
import { ClientErrorCode, JunctionApiError } from './errors.js';
import type { TransportResponse } from './transport.js';
import type { Delivery, ProduceResult, ProducerMessage } from './types.js';

/** The JSON body of an answer (undefined for 204 / empty); BAD_RESPONSE when it is not JSON. */
export function parseJson<T>(res: TransportResponse): T {
  if (res.status === 204 || res.body.length === 0) return undefined as T;
  try {
    return JSON.parse(res.body.toString('utf8')) as T;
  } catch (err) {
    throw new JunctionApiError(ClientErrorCode.BAD_RESPONSE, 'the broker answered with a body that is not JSON', {
      status: res.status,
      cause: err,
    });
  }
}

// The broker's bounds on message metadata (JsonProduceMessage in @junction/protocol). Checked here,
// per message, because the broker refuses a whole request when one message breaks them.
const MAX_KEY = 4096;
const MAX_MSG_ID = 1024;
const MAX_HEADER_NAME = 1024;

/**
 * A ProducerMessage with its value as bytes. Throws INVALID_INPUT when the broker would refuse the
 * message's metadata (key over 4096 characters, msgId empty or over 1024, header name empty or over 1024).
 */
export function toWireMessage(m: ProducerMessage): ProduceMessage {
  const value = typeof m.value === 'string' ? Buffer.from(m.value, 'utf8') : m.value;
  if (!(value instanceof Uint8Array)) throw invalid('value must be a Uint8Array or a string');
  if (m.key !== undefined && (typeof m.key !== 'string' || m.key.length > MAX_KEY))
    throw invalid(`key must be a string of at most ${MAX_KEY} characters`);
  if (m.msgId !== undefined && (typeof m.msgId !== 'string' || m.msgId.length < 1 || m.msgId.length > MAX_MSG_ID)) {
    throw invalid(`msgId must be a string of 1 to ${MAX_MSG_ID} characters`);
  }
  if (m.headers !== undefined) {
    for (const name in m.headers) {
      if (name.length < 1 || name.length > MAX_HEADER_NAME) throw invalid(`header names must have 1 to ${MAX_HEADER_NAME} characters`);
      if (typeof m.headers[name] !== 'string') throw invalid(`header "${name}" must be a string`);
    }
  }
  return { value, key: m.key, headers: m.headers, msgId: m.msgId };
}

function invalid(message: string): JunctionApiError {
  return new JunctionApiError(ClientErrorCode.INVALID_INPUT, message, { retryable: false });
}

export function toProduceResult(o: ProduceOutcome): ProduceResult {
  if ('error' in o) return { status: 'rejected', code: o.error.code, message: o.error.message };
  return { status: 'duplicate' in o && o.duplicate ? 'duplicate' : 'stored', partition: o.partition, offset: o.offset };
}

interface JsonMessage {
  deliveryId?: string;
  deliveryCount?: number;
  partition: number;
  offset: number;
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  value?: string;
  valueBase64?: string;
}

/**
 * The messages of a fetch / browse answer: the binary batch when the broker sent one, else JSON
 * (`value` as UTF-8 or `valueBase64`). DeliveryIds are the broker's, taken as they come (opaque).
 */
export function decodeMessages(res: TransportResponse, delivery: boolean): Delivery[] {
  const type = res.headers['content-type'] ?? '';
  try {
    if (type.startsWith(BATCH_CONTENT_TYPE)) {
      return decodeMessageBatch(res.body).map((m) => {
        const d: Delivery = {
          partition: m.partition,
          offset: m.offset,
          timestamp: m.timestamp,
          headers: m.headers,
          value: m.value,
          deliveryCount: m.deliveryCount,
          deliveryId: delivery ? m.deliveryId : '',
        };
        if (m.key !== undefined) d.key = m.key;
        return d;
      });
    }
    const r = parseJson<{ messages?: JsonMessage[] }>(res);
    if (!r || !Array.isArray(r.messages)) throw new Error('no "messages" array');
    return r.messages.map((m) => {
      const d: Delivery = {
        partition: m.partition,
        offset: m.offset,
        timestamp: m.timestamp,
        headers: m.headers ?? {},
        value: m.valueBase64 !== undefined ? Buffer.from(m.valueBase64, 'base64') : Buffer.from(m.value ?? '', 'utf8'),
        deliveryCount: m.deliveryCount ?? 0,
        deliveryId: m.deliveryId ?? '',
      };
      if (m.key !== undefined) d.key = m.key;
      return d;
    });
  } catch (err) {
    if (err instanceof JunctionApiError) throw err;
    throw new JunctionApiError(ClientErrorCode.BAD_RESPONSE, `cannot read the broker's messages: ${(err as Error).message}`, {
      status: res.status,
      cause: err,
    });
  }
}
