/**
 * @junction/connector-postgres — a sink that writes a station's messages into a PostgreSQL table
 * (insert or upsert), the rows and the partition's last offset in one transaction, so each offset lands
 * once across crashes and replays. See README.md.
 */
import { defineSink } from '@junction/sdk-connector';
import { PostgresSinkConfig } from './config.js';

export { PostgresSinkConfig } from './config.js';

export default defineSink({
  name: 'postgres',
  version: '0.1.0',
  sdk: '^1',
  description:
    'PostgreSQL: insert or upsert, COPY for large batches, rows and last offset in one transaction (each offset once), refused rows dead-lettered with their SQLSTATE',
  exactlyOnce: true,
  // Values are encoded (copied) into rows or statements during write(); nothing reads them after it.
  keepsValues: false,
  config: PostgresSinkConfig,
  async open(config, ctx) {
    // pg loads on open(), not when the registry scans the catalog.
    const { PostgresSink } = await import('./sink.js');
    const sink = new PostgresSink(config, ctx);
    try {
      await sink.prepare();
    } catch (err) {
      await sink.close();
      throw err;
    }
    return sink;
  },
});
