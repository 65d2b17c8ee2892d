// Answers one result too few for every batch of more than one message (a broken plugin).
import { defineSink, ok, z } from '@junction/sdk-connector';

export default defineSink({
  name: 'test-short',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({}),
  open() {
    return {
      async write(batch) {
        return batch.messages.slice(1).map(() => ok());
      },
      async close() {},
    };
  },
});
