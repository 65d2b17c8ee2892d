// Records every message it is given (one JSON line each: offset, key, headers, the value in base64, and
// whether the value lies in shared memory), and keeps every value it was given. On each write it checks
// that the values it kept from earlier writes still hold the bytes they had when written (one line per
// mismatch in mismatches.log). With `scribble`, it overwrites each value after recording it: whatever it
// writes must never reach the store nor another connector.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink, ok, z } from '@junction/sdk-connector';
import { recordValues } from './common.mjs';

export default defineSink({
  name: 'test-keep',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), scribble: z.boolean().default(false) }),
  open(config) {
    mkdirSync(config.dir, { recursive: true });
    /** @type {{ offset: number, value: Uint8Array, copy: Buffer }[]} */
    const kept = [];
    return {
      async write(batch) {
        const bad = [];
        for (const k of kept) if (Buffer.compare(Buffer.from(k.value), k.copy) !== 0) bad.push(`${k.offset}\n`);
        if (bad.length > 0) appendFileSync(join(config.dir, 'mismatches.log'), bad.join(''));
        recordValues(config.dir, batch);
        for (const m of batch.messages) {
          if (config.scribble) m.value.fill(0xaa);
          else kept.push({ offset: m.offset, value: m.value, copy: Buffer.from(m.value) });
        }
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
