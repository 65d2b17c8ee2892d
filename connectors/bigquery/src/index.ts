/**
 * @junction/connector-bigquery — a sink that streams a station's messages into a BigQuery table with
 * tabledata.insertAll (raw columns or typed columns). At least once: each offset once across replays,
 * except when a write from before a crash lands late and BigQuery's best-effort insertId dedup misses
 * it (README, "Exactly once — what holds").
 */
import { defineSink } from '@junction/sdk-connector';
import { BigQuerySinkConfig } from './config.js';
// The vendor SDK loads on open(), not when the registry scans the catalog (faster, and no SDK warnings then).

export { BigQuerySinkConfig } from './config.js';
export { RAW_SCHEMA } from './rows.js';

export default defineSink({
  name: 'bigquery',
  version: '0.1.0',
  sdk: '^1',
  description:
    'Google BigQuery: insertAll with insertId <station>/<station id>/<partition>/<offset>, raw or typed columns, table created when missing; at least once (replays skip what the table holds; a write landing late after a crash can duplicate when insertId dedup misses)',
  // Not exactly once: insertAll cannot refuse a late write, and its insertId dedup is best effort (README).
  exactlyOnce: false,
  // Values are encoded (copied) into rows or statements during write(); nothing reads them after it.
  keepsValues: false,
  config: BigQuerySinkConfig,
  async open(config, ctx) {
    const { BigQuerySink, createClient } = await import('./sink.js');
    const sink = new BigQuerySink(createClient(config), config, ctx);
    await sink.ensureTable();
    ctx.logger.debug(
      { project: config.projectId, dataset: config.dataset, table: config.table, mode: config.mode },
      'bigquery sink opened',
    );
    return sink;
  },
});
