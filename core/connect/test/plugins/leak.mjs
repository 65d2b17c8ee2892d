// Allocates without end on its first `times` writes (its worker's heap runs out), then writes.
import { defineSink, ok, z } from '@junction/sdk-connector';
import { nextAttempt, record } from './common.mjs';

const hoard = [];

export default defineSink({
  name: 'test-leak',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), times: z.int().default(1) }),
  open(config) {
    return {
      async write(batch) {
        if (nextAttempt(config.dir) < config.times) {
          for (;;) hoard.push(new Array(100_000).fill({ leak: hoard.length }));
        }
        record(config.dir, batch);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
