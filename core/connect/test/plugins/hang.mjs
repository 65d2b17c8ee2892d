// Hangs (ignoring its abort signal) on its first `times` writes, then writes.
import { defineSink, ok, z } from '@junction/sdk-connector';
import { nextAttempt, record } from './common.mjs';

export default defineSink({
  name: 'test-hang',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), times: z.int().default(1) }),
  open(config) {
    return {
      async write(batch) {
        if (nextAttempt(config.dir) < config.times) {
          // A busy loop: not even the event loop of this worker answers.
          for (;;) {
            // spins: this plugin hangs on purpose
          }
        }
        record(config.dir, batch);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
