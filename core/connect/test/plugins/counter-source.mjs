// A source counting 1, 2, 3 … (value = the number, msgId = counter-<n>) up to `max`; position { n }.
// Records every commit(positions) to <dir>/commits.log.
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineSource, z } from '@junction/sdk-connector';

export default defineSource({
  name: 'test-counter',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({
    dir: z.string(),
    max: z.int().default(1000),
    batchSize: z.int().default(50),
    delayMs: z.int().default(0),
    exitAt: z.int().optional(),
  }),
  open(config, ctx) {
    let n = ctx.position?.n ?? 0;
    mkdirSync(config.dir, { recursive: true });
    appendFileSync(join(config.dir, 'opens.log'), `${n}\n`);
    return {
      async *read(signal) {
        while (!signal.aborted && n < config.max) {
          if (config.delayMs > 0) await new Promise((r) => setTimeout(r, config.delayMs));
          const messages = [];
          for (let i = 0; i < config.batchSize && n < config.max; i++) {
            n++;
            if (config.exitAt !== undefined && n === config.exitAt && !existsSync(join(config.dir, 'exited'))) {
              writeFileSync(join(config.dir, 'exited'), '');
              process.exit(3);
            }
            messages.push({ value: new TextEncoder().encode(String(n)), msgId: `counter-${n}` });
          }
          yield { messages, position: { n } };
        }
      },
      async commit(positions) {
        appendFileSync(join(config.dir, 'commits.log'), positions.map((p) => `${p.n}\n`).join(''));
      },
      async close() {},
    };
  },
});
