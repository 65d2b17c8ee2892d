// Declares keepsValues: false (it reads values only during write()). Records every message like
// test-keep (values.log: offset, key, headers, the value in base64), optionally overwrites each value
// afterwards (`scribble`), and keeps one view of every value anyway — never reading its bytes, as
// promised — only to count, at each write and at close, how many of those views the runtime has taken
// back (their buffer detached: the batch's memory went back for later batches). The count is in taken.log.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink, ok, z } from '@junction/sdk-connector';
import { recordValues } from './common.mjs';

export default defineSink({
  name: 'test-lend',
  version: '0.0.1',
  sdk: '^1',
  keepsValues: false,
  config: z.strictObject({ dir: z.string(), scribble: z.boolean().default(false) }),
  open(config) {
    mkdirSync(config.dir, { recursive: true });
    /** @type {Uint8Array[]} */
    const views = [];
    const count = () => writeFileSync(join(config.dir, 'taken.log'), String(views.filter((v) => v.buffer.byteLength === 0).length));
    return {
      async write(batch) {
        count();
        recordValues(config.dir, batch);
        for (const m of batch.messages) {
          if (config.scribble) m.value.fill(0xaa);
          views.push(m.value);
        }
        return batch.messages.map(() => ok());
      },
      async close() {
        count();
      },
    };
  },
});
