// Throws on its first `times` writes (non-retryable unless `retryable`), then writes.
import { defineSink, ok, z, JunctionError } from '@junction/sdk-connector';
import { nextAttempt, record } from './common.mjs';

export default defineSink({
  name: 'test-throw',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), times: z.int().default(1), retryable: z.boolean().default(false) }),
  open(config) {
    return {
      async write(batch) {
        if (nextAttempt(config.dir) < config.times) {
          throw new JunctionError('SINK_BROKEN', 'the test sink throws on purpose', { retryable: config.retryable });
        }
        record(config.dir, batch);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
