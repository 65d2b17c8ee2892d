/** The MQTT source's config. */
import { secret, z } from '@junction/sdk-connector';

export const MqttSourceConfig = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtts?|wss?|tcp|ssl):\/\/[^\s]+$/, 'an MQTT URL: mqtt://host:1883, mqtts://host:8883, ws://…, wss://…')
    .describe('Broker URL, e.g. mqtt://127.0.0.1:1883'),
  protocolVersion: z
    .union([z.literal(4), z.literal(5)])
    .default(5)
    .describe('4: MQTT 3.1.1; 5: MQTT 5'),
  clientId: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .describe(
      'Client id, which names the persistent session; default junction-<connector>-<task>. Two clients with one id evict each other',
    ),
  username: z.string().optional().describe('User name'),
  password: secret(z.string()).optional().describe('Password, by reference: ${env:NAME} or ${file:/path}'),
  topics: z
    .array(
      z.strictObject({
        filter: z.string().min(1).describe('Topic filter; + and # wildcards allowed'),
        qos: z
          .union([z.literal(0), z.literal(1), z.literal(2)])
          .default(1)
          .describe('0: at most once; 1, 2: acknowledged to the broker only after the station stored the message'),
      }),
    )
    .min(1)
    .describe("Topic filters into the connector's station; the topic is kept in header mqtt-topic and as the key"),
  persistentSession: z
    .boolean()
    .default(true)
    .describe(
      'Keep the session (subscriptions, unacknowledged messages) across disconnects and restarts: clean=false, and for MQTT 5 sessionExpirySeconds',
    ),
  sessionExpirySeconds: z
    .int()
    .min(0)
    .max(4_294_967_295)
    .default(86_400)
    .describe('MQTT 5: how long the broker keeps the session while the connector is away'),
  maxMessages: z.int().min(1).max(100_000).default(1000).describe('Messages per batch handed to the station'),
  maxLatencyMs: z.int().min(0).max(60_000).default(50).describe('Longest a message waits for its batch to fill'),
  maxBuffered: z
    .int()
    .min(1)
    .max(1_000_000)
    .default(10_000)
    .describe('Messages held before the station took them; past it the socket is paused (TCP backpressure to the broker)'),
  connectTimeoutMs: z.int().min(100).max(300_000).default(10_000).describe("How long open() waits for the broker's CONNACK"),
  keepaliveSeconds: z.int().min(0).max(65_535).default(30).describe('MQTT keepalive'),
});
export type MqttSourceConfig = z.output<typeof MqttSourceConfig>;
