/**
 * @junction/connector-snowflake — a sink that writes a station's messages into a Snowflake table
 * (raw VARIANT columns or typed columns) with one atomic bulk INSERT per chunk, each offset once
 * across replays. See README.md.
 */
import { defineSink } from '@junction/sdk-connector';
import { SnowflakeSinkConfig } from './config.js';
// The vendor SDK loads on open(), not when the registry scans the catalog (faster, and no SDK warnings then).

export { SnowflakeSinkConfig } from './config.js';

export default defineSink({
  name: 'snowflake',
  version: '0.1.0',
  sdk: '^1',
  description:
    'Snowflake: one atomic INSERT per chunk (JSON bind, FLATTEN), raw VARIANT or typed columns, table created when missing, each offset once',
  exactlyOnce: true,
  // Values are encoded (copied) into rows or statements during write(); nothing reads them after it.
  keepsValues: false,
  config: SnowflakeSinkConfig,
  async open(config, ctx) {
    process.env.SF_TELEMETRY_DISABLE_CONNECTION_SHAPE ??= '1';
    const { SnowflakeSink } = await import('./sink.js');
    const sink = new SnowflakeSink(config, ctx);
    try {
      await sink.prepare();
    } catch (err) {
      await sink.close();
      throw err;
    }
    return sink;
  },
});
