/**
 * How the Junction load generator talks to the broker. Two transports do the same requests:
 *
 * - `raw`: node:http with a keep-alive agent and the @junction/protocol codec. A produce request's
 *   body is encoded once per batch size and sent again and again, so the load generator spends its
 *   time on the wire and the answers, not on encoding.
 * - `client`: @junction/client as an application uses it: `producer().sendBatch()` (encodes every
 *   batch) and `consumer().fetch()` with `ack()` per message (coalesced by the client's batcher).
 */
import { BATCH_CONTENT_TYPE, decodeMessageBatch, encodeProduceBatch, type ProduceMessage } from '@junction/protocol';
import { JunctionClient, type ConsumerMessage, type Consumer, type Producer } from '@junction/client';
import { Http } from './http.js';

export const TRANSPORTS = ['raw', 'client'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** A fetched batch, ready to ack. */
export interface Fetched {
  count: number;
  ack(): Promise<number>;
}

export interface Driver {
  readonly describe: string;
  /** The message value of the following produces. */
  setValue(value: Uint8Array): void;
  createStation(name: string, partitions: number): Promise<void>;
  deleteStation(name: string): Promise<void>;
  /** Creates a group at the earliest offset. */
  createGroup(station: string, group: string): Promise<void>;
  /** Produces `n` messages in one request; resolves with how many were stored. */
  produce(station: string, n: number): Promise<number>;
  /** One fetch; `count` 0 when the long poll found nothing. */
  fetch(station: string, group: string, maxMessages: number, waitMs: number): Promise<Fetched>;
  close(): Promise<void>;
}

/** `token`: sent as `Authorization: Bearer …` with every request (a broker with auth on). */
export async function makeDriver(transport: Transport, url: string, token?: string): Promise<Driver> {
  return transport === 'raw' ? new RawDriver(url, token) : new ClientDriver(url, token);
}

const seg = encodeURIComponent;
const NO_ACK: Fetched = { count: 0, ack: async () => 0 };

class RawDriver implements Driver {
  readonly describe = 'raw node:http keep-alive + @junction/protocol binary codec (produce body encoded once per batch size)';
  private readonly http: Http;
  private value: Uint8Array = new Uint8Array(0);
  private readonly bodies = new Map<number, Buffer>();

  constructor(url: string, token?: string) {
    this.http = new Http(url, token ? { authorization: `Bearer ${token}` } : {});
  }

  setValue(value: Uint8Array): void {
    this.value = value;
    this.bodies.clear();
  }

  async createStation(name: string, partitions: number): Promise<void> {
    await this.http.json('POST', '/v1/stations', { name, partitions });
  }

  async deleteStation(name: string): Promise<void> {
    await this.http.json('DELETE', `/v1/stations/${seg(name)}`);
  }

  async createGroup(station: string, group: string): Promise<void> {
    await this.http.json('PUT', `/v1/stations/${seg(station)}/groups/${seg(group)}`, { start: { type: 'earliest' } });
  }

  async produce(station: string, n: number): Promise<number> {
    let body = this.bodies.get(n);
    if (!body) {
      const messages: ProduceMessage[] = Array.from({ length: n }, () => ({ value: this.value }));
      body = encodeProduceBatch(messages);
      this.bodies.set(n, body);
    }
    const res = await this.http.send('POST', `/v1/stations/${seg(station)}/messages`, body, { 'content-type': BATCH_CONTENT_TYPE });
    if (res.status !== 200) throw new Error(`produce: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
    const { results } = JSON.parse(res.body.toString('utf8')) as { results: ({ offset?: number } | { error: unknown })[] };
    let stored = 0;
    for (const r of results) if ('offset' in r && !('duplicate' in r)) stored++;
    if (stored !== n)
      throw new Error(`produce: ${n - stored} of ${n} messages not stored: ${JSON.stringify(results.find((r) => !('offset' in r)))}`);
    return stored;
  }

  async fetch(station: string, group: string, maxMessages: number, waitMs: number): Promise<Fetched> {
    const path = `/v1/stations/${seg(station)}/groups/${seg(group)}`;
    const res = await this.http.send('POST', `${path}/fetch`, JSON.stringify({ maxMessages, waitMs, maxBytes: 64 * 1024 * 1024 }), {
      'content-type': 'application/json',
      accept: BATCH_CONTENT_TYPE,
    });
    if (res.status !== 200) throw new Error(`fetch: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
    const messages = decodeMessageBatch(res.body);
    if (messages.length === 0) return NO_ACK;
    const deliveryIds = messages.map((m) => m.deliveryId);
    return {
      count: messages.length,
      ack: async () => {
        // The summary answer: how many were acked, and only the exceptions listed.
        const r = await this.http.json<{ count: number }>('POST', `${path}/ack`, { deliveryIds, summary: true });
        return r.count;
      },
    };
  }

  async close(): Promise<void> {
    this.http.close();
  }
}

class ClientDriver implements Driver {
  readonly describe = '@junction/client: producer().sendBatch() and consumer().fetch() + ack() per message';
  private readonly client: JunctionClient;
  private values: Uint8Array[] = [];
  private readonly producers = new Map<string, Producer>();
  private readonly consumers = new Map<string, Consumer>();

  constructor(url: string, token?: string) {
    this.client = new JunctionClient({ url, token });
  }

  setValue(value: Uint8Array): void {
    this.values = Array.from({ length: 1000 }, () => value);
  }

  async createStation(name: string, partitions: number): Promise<void> {
    await this.client.createStation(name, { partitions });
  }

  async deleteStation(name: string): Promise<void> {
    await this.producers.get(name)?.close();
    this.producers.delete(name);
    for (const [k, c] of this.consumers) {
      if (c.station === name) {
        await c.close();
        this.consumers.delete(k);
      }
    }
    await this.client.deleteStation(name);
  }

  async createGroup(station: string, group: string): Promise<void> {
    await this.client.createGroup(station, group, { start: { type: 'earliest' } });
  }

  async produce(station: string, n: number): Promise<number> {
    let p = this.producers.get(station);
    if (!p) {
      // The bench keeps its own requests in flight; the producer must not hold them back.
      p = this.client.producer(station, { maxInFlight: 64 });
      this.producers.set(station, p);
    }
    const values = n === this.values.length ? this.values : Array.from({ length: n }, () => this.values[0]!);
    const results = await p.sendBatch(values);
    let stored = 0;
    for (const r of results) if (r.status === 'stored') stored++;
    if (stored !== n)
      throw new Error(`produce: ${n - stored} of ${n} messages not stored: ${JSON.stringify(results.find((r) => r.status !== 'stored'))}`);
    return stored;
  }

  async fetch(station: string, group: string, maxMessages: number, waitMs: number): Promise<Fetched> {
    const key = `${station}\u0000${group}`;
    let c = this.consumers.get(key);
    if (!c) {
      c = this.client.consumer(station, group, { maxMessages, waitMs, maxBytes: 64 * 1024 * 1024 });
      this.consumers.set(key, c);
    }
    const messages: ConsumerMessage[] = await c.fetch({ maxMessages, waitMs });
    if (messages.length === 0) return NO_ACK;
    return {
      count: messages.length,
      ack: async () => {
        const statuses = await Promise.all(messages.map((m) => m.ack()));
        let acked = 0;
        for (const s of statuses) if (s === 'acked') acked++;
        return acked;
      },
    };
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
