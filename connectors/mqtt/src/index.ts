/**
 * @junction/connector-mqtt — a source that subscribes to MQTT topic filters (3.1.1 or 5, QoS 0/1/2)
 * and writes what the broker delivers into a station, acknowledging QoS ≥ 1 messages to the broker
 * only after the station stored them. See README.md.
 */
import { defineSource } from '@junction/sdk-connector';
import { MqttSourceConfig } from './config.js';
import type { MqttPosition } from './source.js';

export { MqttSourceConfig } from './config.js';
export type { MqttPosition } from './source.js';

export default defineSource<typeof MqttSourceConfig, MqttPosition>({
  name: 'mqtt',
  version: '0.1.0',
  sdk: '^1',
  description:
    'MQTT 3.1.1 / 5 topic filters (wildcards) into a station, QoS 0/1/2; with QoS >= 1 and a persistent session the broker is acknowledged only after the station stored the message',
  config: MqttSourceConfig,
  async open(config, ctx) {
    const { MqttSource } = await import('./source.js');
    const source = new MqttSource(config, ctx);
    try {
      await source.connect();
    } catch (err) {
      await source.close();
      throw err;
    }
    return source;
  },
});
