// Takes `delayMs` per write (a slow destination), then writes.
import { defineSink, ok, z } from '@junction/sdk-connector';
import { record, recordBatch } from './common.mjs';

export default defineSink({
  name: 'test-slow',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), delayMs: z.int().default(100) }),
  open(config) {
    return {
      async write(batch, { signal }) {
        await new Promise((r) => setTimeout(r, config.delayMs));
        if (signal.aborted) throw signal.reason;
        recordBatch(config.dir, batch);
        record(config.dir, batch);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
