// Calls process.exit in its worker on its first `times` writes, then writes.
import { defineSink, ok, z } from '@junction/sdk-connector';
import { nextAttempt, record } from './common.mjs';

export default defineSink({
  name: 'test-exit',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), times: z.int().default(1) }),
  open(config) {
    return {
      async write(batch) {
        if (nextAttempt(config.dir) < config.times) process.exit(7);
        record(config.dir, batch);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
