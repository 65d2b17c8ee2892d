// open() throws a retryable error on its first `times` calls (a destination down at task start:
// S3 checking the bucket, a warehouse login), then opens a sink that records what it writes.
import { defineSink, JunctionError, ok, z } from '@junction/sdk-connector';
import { nextAttempt, record } from './common.mjs';
import { join } from 'node:path';

export default defineSink({
  name: 'test-open-flaky',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), times: z.int().default(3), delayMs: z.int().default(10) }),
  async open(config) {
    if (nextAttempt(join(config.dir, 'opens')) < config.times) {
      await new Promise((r) => setTimeout(r, config.delayMs));
      throw new JunctionError('CONNECTION_FAILED', 'the test destination is down', { retryable: true });
    }
    return {
      async write(batch) {
        await new Promise((r) => setTimeout(r, config.delayMs));
        record(config.dir, batch);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
