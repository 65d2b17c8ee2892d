/**
 * @junction/connector-firebolt — a sink that writes a station's messages into a Firebolt table (raw
 * JSON text or typed columns) with one atomic multi-row INSERT per chunk, each offset once across
 * replays. See README.md.
 */
import { defineSink } from '@junction/sdk-connector';
import { FireboltSinkConfig } from './config.js';
// The vendor SDK loads on open(), not when the registry scans the catalog (faster, and no SDK warnings then).

export { FireboltSinkConfig } from './config.js';

export default defineSink({
  name: 'firebolt',
  version: '0.1.0',
  sdk: '^1',
  description:
    'Firebolt: one atomic multi-row INSERT per chunk, raw JSON text or typed columns, table created when missing, each offset once',
  exactlyOnce: true,
  // Values are encoded (copied) into rows or statements during write(); nothing reads them after it.
  keepsValues: false,
  config: FireboltSinkConfig,
  async open(config, ctx) {
    const { FireboltSink } = await import('./sink.js');
    const sink = new FireboltSink(config, ctx);
    try {
      await sink.prepare();
    } catch (err) {
      await sink.close();
      throw err;
    }
    return sink;
  },
});
