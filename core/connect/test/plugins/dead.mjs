// Dead-letters messages whose value contains "poison"; writes the others.
import { defineSink, ok, deadLetter, z } from '@junction/sdk-connector';
import { record } from './common.mjs';

export default defineSink({
  name: 'test-dead',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string() }),
  open(config) {
    return {
      async write(batch) {
        const results = batch.messages.map((m) =>
          Buffer.from(m.value).toString().includes('poison') ? deadLetter('SINK_REJECTED', 'poison is not accepted') : ok(),
        );
        record(config.dir, { partition: batch.partition, messages: batch.messages.filter((_, i) => results[i].status === 'ok') });
        return results;
      },
      async close() {},
    };
  },
});
