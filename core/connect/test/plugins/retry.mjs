// Answers retry() for every message on its first `times` writes (all of them when `times` < 0), then ok.
// `delayMs`: the least delay its retry answers ask for.
import { defineSink, ok, retry, z } from '@junction/sdk-connector';
import { nextAttempt, record, recordBatch } from './common.mjs';

export default defineSink({
  name: 'test-retry',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), times: z.int().default(2), odd: z.boolean().default(false), delayMs: z.int().optional() }),
  open(config) {
    return {
      async write(batch) {
        recordBatch(config.dir, batch);
        const n = nextAttempt(config.dir);
        if (config.times < 0 || n < config.times) {
          // `odd`: only odd offsets answer retry (a retry batch then carries only those).
          const results = batch.messages.map((m) =>
            config.odd && m.offset % 2 === 0
              ? ok()
              : retry('the test sink says later', config.delayMs === undefined ? undefined : { delayMs: config.delayMs }),
          );
          record(config.dir, { partition: batch.partition, messages: batch.messages.filter((_, i) => results[i].status === 'ok') });
          return results;
        }
        record(config.dir, batch);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
