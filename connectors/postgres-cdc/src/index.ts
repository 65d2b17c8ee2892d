/**
 * @junction/connector-postgres-cdc — a source that streams a publication's row changes from
 * PostgreSQL logical replication (pgoutput) into a station, confirming the slot's LSN only after the
 * station stored them. See README.md.
 */
import { defineSource } from '@junction/sdk-connector';
import { PostgresCdcConfig } from './config.js';
import type { CdcPosition } from './source.js';

export { PostgresCdcConfig } from './config.js';
export type { CdcPosition, ChangeEvent } from './source.js';

export default defineSource<typeof PostgresCdcConfig, CdcPosition>({
  name: 'postgres-cdc',
  version: '0.1.0',
  sdk: '^1',
  description:
    'PostgreSQL logical replication (pgoutput) of a publication: change events (op, before, after, LSN, commit time), optional initial snapshot consistent with the slot; the slot advances only after the station stored the events',
  config: PostgresCdcConfig,
  async open(config, ctx) {
    const { PostgresCdcSource } = await import('./source.js');
    const source = new PostgresCdcSource(config, ctx);
    try {
      await source.start();
    } catch (err) {
      await source.close();
      throw err;
    }
    return source;
  },
});
