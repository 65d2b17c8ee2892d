/**
 * The MQTT source. One client per task (its own persistent session), the connector's topic filters,
 * each delivered message a station message: value = payload, key = topic, headers mqtt-topic, mqtt-qos,
 * mqtt-retain, and (MQTT 5) mqtt-content-type and mqtt-user-<name> for user properties.
 *
 * Acknowledgement after storage (QoS ≥ 1): the broker's PUBACK (QoS 1) or PUBREC (QoS 2 — after it the
 * broker would resend only PUBREL, not the payload) is held until the runtime calls commit() for the
 * batch holding the message, i.e. until the station stored it. A kill -9 before that leaves the message
 * unacknowledged in the broker's session, which delivers it again when the task reconnects with the
 * same client id: nothing the broker handed over is lost; a message stored but not yet acknowledged at
 * the kill is delivered twice (at least once — MQTT packet ids are reused, so there is no stable id to
 * deduplicate by).
 *
 * Why acks are held by intercepting the client's packet writer (`_sendPacket`, mqtt.js 5): mqtt.js
 * handles incoming packets one at a time and sends the ack when `handleMessage` / `customHandleAcks`
 * calls back, so holding that callback until the station stored the message would let one message
 * through per batch. The interception lets the client go on reading while only the ack waits; the
 * e2e test (kill -9 of the broker process) and the unit tests (acks counted at the broker side) cover it.
 */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient, type Packet } from 'mqtt';
import {
  ErrorCode,
  JunctionError,
  type Counter,
  type Logger,
  type Source,
  type SourceBatch,
  type SourceContext,
  type SourceMessage,
} from '@junction/sdk-connector';
import type { MqttSourceConfig } from './config.js';

/** Where the source stands: MQTT has no replayable position (the broker's session is the cursor), so this only names the batch. */
export type MqttPosition = { session: string; batch: number };

interface Queued {
  message: SourceMessage;
  /** The packet id whose PUBACK / PUBREC waits for the station (QoS ≥ 1). */
  ackId?: number;
}

type SendPacket = (packet: Packet, cb?: (...args: unknown[]) => void, ...rest: unknown[]) => void;

/** CONNACK codes that refuse the login (3.1.1: 4 bad user name or password, 5 not authorized; 5: 0x86, 0x87, 0x8a banned, 0x8c bad auth method). */
const AUTH_CODES = new Set([4, 5, 0x86, 0x87, 0x8a, 0x8c]);
/** CONNACK codes that refuse the config (3.1.1: 1 protocol version, 2 client id; 5: 0x84, 0x85): retrying cannot help either. */
const REFUSED_CODES = new Set([1, 2, 0x84, 0x85]);

const noop = (): void => undefined;

export class MqttSource implements Source<MqttPosition> {
  private client: MqttClient | undefined;
  private readonly clientId: string;
  private readonly queue: Queued[] = [];
  private wake: (() => void) | undefined;
  /** Acks the client wanted to send, by packet id, waiting for their batch's commit. */
  private readonly held = new Map<number, () => void>();
  /** Packet ids committed before the client got to their ack (sent at once when it does). */
  private readonly released = new Set<number>();
  /** The ack ids of each batch yielded and not yet committed. */
  private readonly batches = new Map<number, number[]>();
  /** QoS 2 packet ids received and not yet released (PUBREL), to drop a DUP resend within one connection's life. */
  private readonly qos2 = new Set<number>();
  private seq = 0;
  private paused = false;
  private closed = false;
  private fatal: JunctionError | undefined;
  private readonly log: Logger;
  private readonly m: { received: Counter; acked: Counter; reconnects: Counter };

  constructor(
    private readonly config: MqttSourceConfig,
    ctx: SourceContext<MqttPosition>,
  ) {
    this.log = ctx.logger;
    this.clientId = config.clientId ?? `junction-${ctx.connector}-${ctx.task}`;
    this.m = {
      received: ctx.metrics.counter('messages_received_total', 'Messages the broker delivered'),
      acked: ctx.metrics.counter('acks_sent_total', 'PUBACK / PUBREC sent after the station stored the message'),
      reconnects: ctx.metrics.counter('reconnects_total', 'Reconnections to the broker'),
    };
  }

  private options(): IClientOptions {
    const c = this.config;
    return {
      protocolVersion: c.protocolVersion,
      clientId: this.clientId,
      clean: !c.persistentSession,
      ...(c.username === undefined ? {} : { username: c.username }),
      ...(c.password === undefined ? {} : { password: c.password }),
      keepalive: c.keepaliveSeconds,
      connectTimeout: c.connectTimeoutMs,
      reconnectPeriod: 1000,
      ...(c.protocolVersion === 5
        ? {
            properties: {
              ...(c.persistentSession ? { sessionExpiryInterval: c.sessionExpirySeconds } : {}),
              receiveMaximum: Math.min(65_535, c.maxBuffered),
            },
          }
        : {}),
    };
  }

  /** Connects and subscribes. Throws AUTH_FAILED (refused login or subscription) or a retryable CONNECTION_FAILED / TIMEOUT. */
  async connect(): Promise<void> {
    const client = mqtt.connect(this.config.url, this.options());
    this.client = client;
    this.interceptAcks(client);
    client.on('message', (topic, payload, packet) => {
      if (packet.qos === 2) {
        // Taken at PUBLISH (packetreceive); this is its PUBREL.
        this.qos2.delete(packet.messageId as number);
        return;
      }
      this.enqueue(topic, payload, packet);
    });
    client.on('packetreceive', (packet) => {
      if (packet.cmd !== 'publish' || packet.qos !== 2) return;
      const id = packet.messageId as number;
      if (this.qos2.has(id)) return; // a DUP of one we hold
      this.qos2.add(id);
      this.enqueue(packet.topic.toString(), packet.payload as Buffer, packet);
    });
    client.on('reconnect', () => this.m.reconnects.inc());
    client.on('connect', (connack) => {
      this.qos2.clear();
      if (this.closed) return;
      this.subscribe(client, connack.sessionPresent).catch((err: unknown) => {
        this.fatal =
          err instanceof JunctionError
            ? err
            : new JunctionError(ErrorCode.CONNECTION_FAILED, `MQTT subscribe failed: ${String(err)}`, { retryable: true });
        this.wake?.();
      });
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new JunctionError(ErrorCode.TIMEOUT, `no CONNACK from ${this.config.url} within ${this.config.connectTimeoutMs} ms`, {
            retryable: true,
          }),
        );
      }, this.config.connectTimeoutMs);
      const onConnect = (): void => {
        cleanup();
        resolve();
      };
      const onError = (err: Error & { code?: unknown }): void => {
        cleanup();
        const code = typeof err.code === 'number' ? err.code : undefined;
        if (code !== undefined && AUTH_CODES.has(code))
          reject(
            new JunctionError(
              ErrorCode.AUTH_FAILED,
              `the MQTT broker at ${this.config.url} refused client ${this.clientId}: ${err.message} (CONNACK ${code})`,
              { cause: err },
            ),
          );
        else if (code !== undefined && REFUSED_CODES.has(code))
          reject(
            new JunctionError(
              ErrorCode.DESTINATION_UNUSABLE,
              `the MQTT broker at ${this.config.url} refused client ${this.clientId}: ${err.message} (CONNACK ${code}; check clientId and protocolVersion)`,
              { cause: err },
            ),
          );
        else
          reject(
            new JunctionError(ErrorCode.CONNECTION_FAILED, `cannot connect to the MQTT broker at ${this.config.url}: ${err.message}`, {
              cause: err,
              retryable: true,
            }),
          );
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('error', onError);
      };
      client.on('connect', onConnect);
      client.on('error', onError);
    });
    client.on('error', (err: Error & { code?: unknown }) => {
      if (typeof err.code === 'number' && AUTH_CODES.has(err.code)) {
        this.fatal = new JunctionError(
          ErrorCode.AUTH_FAILED,
          `the MQTT broker at ${this.config.url} refused client ${this.clientId} on reconnect: ${err.message}`,
          { cause: err },
        );
        this.wake?.();
      } else this.log.warn({ err: err.message }, 'MQTT connection error; reconnecting');
    });
    // The first subscription's answer decides whether the filters are allowed.
    await this.subscribed;
  }

  private subscribed: Promise<void> = Promise.resolve();

  private subscribe(client: MqttClient, sessionPresent: boolean): Promise<void> {
    // 3.1.1: a present session keeps the subscriptions (subscribing again would resend retained messages).
    // 5: Retain Handling 1 sends retained messages only for a subscription that did not exist yet.
    if (this.config.protocolVersion === 4 && sessionPresent) return Promise.resolve();
    const topics = Object.fromEntries(
      this.config.topics.map((t) => [t.filter, { qos: t.qos, ...(this.config.protocolVersion === 5 ? { rh: 1 } : {}) }]),
    );
    this.subscribed = client.subscribeAsync(topics as never).then((granted) => {
      const refused = granted.filter((g) => g.qos === 128 || (g.qos as number) >= 0x80);
      if (refused.length > 0) {
        throw new JunctionError(
          ErrorCode.AUTH_FAILED,
          `the MQTT broker refused the subscription to ${refused.map((g) => g.topic).join(', ')}`,
        );
      }
    }) as Promise<void>;
    return this.subscribed;
  }

  /** Holds PUBACK / PUBREC (no error reason code) until their message's batch is committed. */
  private interceptAcks(client: MqttClient): void {
    const c = client as unknown as { _sendPacket: SendPacket };
    const send = c._sendPacket.bind(client) as SendPacket;
    c._sendPacket = (packet, cb, ...rest) => {
      if ((packet.cmd === 'puback' || packet.cmd === 'pubrec') && !(packet as { reasonCode?: number }).reasonCode) {
        const id = packet.messageId as number;
        const release = (): void => {
          this.m.acked.inc();
          send(packet, noop, ...rest);
        };
        if (this.released.delete(id)) release();
        else this.held.set(id, release);
        cb?.(); // the client reads on
        return;
      }
      send(packet, cb, ...rest);
    };
  }

  private enqueue(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const headers: Record<string, string> = { 'mqtt-topic': topic, 'mqtt-qos': String(packet.qos) };
    if (packet.retain) headers['mqtt-retain'] = 'true';
    const props = packet.properties;
    if (props?.contentType) headers['mqtt-content-type'] = props.contentType;
    for (const [k, v] of Object.entries(props?.userProperties ?? {}))
      headers[`mqtt-user-${k}`] = Array.isArray(v) ? v.join(',') : String(v);
    const value = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
    this.queue.push({ message: { value, key: topic, headers }, ...(packet.qos > 0 ? { ackId: packet.messageId as number } : {}) });
    this.m.received.inc();
    if (this.queue.length >= this.config.maxBuffered && !this.paused) {
      this.paused = true;
      this.client?.stream.pause();
    }
    this.wake?.();
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }

  async *read(signal: AbortSignal): AsyncIterable<SourceBatch<MqttPosition>> {
    while (!signal.aborted && !this.closed) {
      if (this.fatal) throw this.fatal;
      if (this.queue.length === 0) {
        await this.sleep(1000, signal);
        continue;
      }
      const deadline = Date.now() + this.config.maxLatencyMs;
      while (this.queue.length < this.config.maxMessages && !signal.aborted && !this.closed && Date.now() < deadline)
        await this.sleep(deadline - Date.now(), signal);
      if (signal.aborted || this.closed) return;
      const items = this.queue.splice(0, this.config.maxMessages);
      if (this.paused && this.queue.length < this.config.maxBuffered / 2) {
        this.paused = false;
        this.client?.stream.resume();
      }
      const batch = ++this.seq;
      this.batches.set(
        batch,
        items.flatMap((i) => (i.ackId === undefined ? [] : [i.ackId])),
      );
      yield { messages: items.map((i) => i.message), position: { session: this.clientId, batch } };
    }
  }

  /** The station stored these batches: their acks go to the broker now. */
  async commit(positions: MqttPosition[]): Promise<void> {
    for (const p of positions) {
      const ids = this.batches.get(p.batch);
      if (!ids || p.session !== this.clientId) continue;
      this.batches.delete(p.batch);
      for (const id of ids) {
        const release = this.held.get(id);
        if (release) {
          this.held.delete(id);
          release();
        } else this.released.add(id);
      }
    }
  }

  async checkConnection(): Promise<void> {
    if (this.client?.connected) return;
    throw new JunctionError(ErrorCode.CONNECTION_FAILED, `not connected to the MQTT broker at ${this.config.url}`, { retryable: true });
  }

  /**
   * Disconnects (sessions persist: what was not acknowledged is delivered again on the next connect).
   * Idempotent; never throws.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    const client = this.client;
    if (!client) return;
    const ended = new Promise<void>((r) => client.end(false, {}, () => r()));
    const timer = setTimeout(() => client.end(true), 2000);
    await ended.catch(noop);
    clearTimeout(timer);
  }
}
