// Records, per batch, the schema the sink saw when it opened and the one the batch carries.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink, ok, z } from '@junction/sdk-connector';

export default defineSink({
  name: 'test-schema',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string() }),
  open(config, ctx) {
    mkdirSync(config.dir, { recursive: true });
    const opened = ctx.schema;
    return {
      async write(batch) {
        const line = {
          first: batch.firstOffset,
          last: batch.lastOffset,
          open: opened ? `${opened.subject}@${opened.version}#${opened.id}` : null,
          batch: batch.schema ? `${batch.schema.subject}@${batch.schema.version}#${batch.schema.id}` : null,
          versions: batch.schema?.versions.map((v) => v.id) ?? null,
        };
        appendFileSync(join(config.dir, 'schemas.log'), `${JSON.stringify(line)}\n`);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
