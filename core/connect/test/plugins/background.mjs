// Writes, then — after the write has answered — does some work of its own in the background (as a
// driver's keep-alive or a flush timer would): it records each batch's last offset `delayMs` later.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink, ok, z } from '@junction/sdk-connector';

export default defineSink({
  name: 'test-background',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), delayMs: z.int().default(200) }),
  open(config) {
    mkdirSync(config.dir, { recursive: true });
    return {
      async write(batch) {
        setTimeout(() => appendFileSync(join(config.dir, 'later.log'), `${batch.lastOffset}\n`), config.delayMs);
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
