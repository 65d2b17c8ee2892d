// Records every message it is given, one JSON line per message: offset, key, headers and the value in
// base64 (so tests compare the bytes the sink received, byte for byte).
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink, ok, z } from '@junction/sdk-connector';

export default defineSink({
  name: 'test-values',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string() }),
  open(config) {
    mkdirSync(config.dir, { recursive: true });
    return {
      async write(batch) {
        const lines = batch.messages.map(
          (m) =>
            JSON.stringify({
              partition: batch.partition,
              first: batch.firstOffset,
              last: batch.lastOffset,
              offset: m.offset,
              key: m.key ?? null,
              headers: m.headers,
              value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength).toString('base64'),
            }) + '\n',
        );
        appendFileSync(join(config.dir, 'values.log'), lines.join(''));
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
