// Writes everything; records each batch (for batching tests) and each offset.
import { defineSink, ok, z } from '@junction/sdk-connector';
import { record, recordBatch } from './common.mjs';

export default defineSink({
  name: 'test-ok',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string() }),
  open(config) {
    return {
      async write(batch) {
        recordBatch(config.dir, batch);
        record(config.dir, batch);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
