// Records every write call (when it ran, which offsets, its answer) to <dir>/calls.log; takes `delayMs`
// a write; answers retry() to the write calls numbered in `retryCalls` (0-based, across threads), and
// for the calls in `crashCalls` hangs its worker's event loop (it is terminated at writeTimeoutMs).
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink, ok, retry, z } from '@junction/sdk-connector';
import { nextAttempt, record } from './common.mjs';

export default defineSink({
  name: 'test-order',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({
    dir: z.string(),
    delayMs: z.int().default(20),
    retryCalls: z.array(z.int()).default([]),
    hangCalls: z.array(z.int()).default([]),
  }),
  open(config) {
    let running = 0;
    return {
      async write(batch) {
        const n = nextAttempt(config.dir);
        running++;
        const enter = performance.timeOrigin + performance.now();
        const overlapped = running > 1;
        if (config.hangCalls.includes(n))
          for (;;) {
            // spins: this call hangs on purpose
          }
        await new Promise((r) => setTimeout(r, config.delayMs));
        const status = config.retryCalls.includes(n) ? 'retry' : 'ok';
        if (status === 'ok') record(config.dir, batch);
        running--;
        mkdirSync(config.dir, { recursive: true });
        const call = {
          n,
          partition: batch.partition,
          first: batch.firstOffset,
          last: batch.lastOffset,
          count: batch.messages.length,
          enter,
          exit: performance.timeOrigin + performance.now(),
          overlapped,
          status,
        };
        appendFileSync(join(config.dir, 'calls.log'), `${JSON.stringify(call)}\n`);
        return batch.messages.map(() => (status === 'ok' ? ok() : retry('the test sink says later', { delayMs: 5 })));
      },
      async close() {},
    };
  },
});
