// A sink that misbehaves in one chosen way, for the runtime's wedge matrix. Each fault applies to the
// first `times` calls of its kind (all of them when `times` < 0), counted across threads and restarts;
// after that the sink behaves and records what it writes.
//
// open:  throw (non-retryable DESTINATION_UNUSABLE) | throw-retryable (CONNECTION_FAILED) | hang (never
//        settles) | late (rejects, retryable, after `delayMs`) | spin (a busy loop) | native (blocks a
//        libuv threadpool thread opening the FIFO `fifo` for reading, until a writer opens it)
// write: throw-sync (throws before returning a promise) | reject (non-retryable) | never (never settles,
//        ignores its signal) | wrong-count (one result too few) | native (as open's)
// close: hang (never settles) | native (as open's)
import { open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineSink, JunctionError, ok, z } from '@junction/sdk-connector';
import { nextAttempt, record } from './common.mjs';

const Fault = z.enum(['none', 'throw', 'throw-retryable', 'hang', 'late', 'spin', 'native', 'throw-sync', 'reject', 'never', 'wrong-count']);

function faulty(config, kind) {
  if (config[kind] === 'none') return false;
  const n = nextAttempt(join(config.dir, `${kind}-attempts`));
  return config.times < 0 || n < config.times;
}

/** Never returns until someone opens the FIFO for writing: the open(2) blocks in the threadpool. */
async function blockInNative(fifo) {
  const fh = await openFile(fifo, 'r');
  await fh.close();
}

export default defineSink({
  name: 'test-wedge',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({
    dir: z.string(),
    open: Fault.default('none'),
    write: Fault.default('none'),
    close: Fault.default('none'),
    times: z.int().default(-1),
    delayMs: z.int().default(2000),
    fifo: z.string().default(''),
  }),
  async open(config) {
    if (faulty(config, 'open')) {
      switch (config.open) {
        case 'throw':
          throw new JunctionError('DESTINATION_UNUSABLE', 'the test destination cannot be used as configured');
        case 'throw-retryable':
          throw new JunctionError('CONNECTION_FAILED', 'the test destination is down', { retryable: true });
        case 'hang':
          await new Promise(() => {});
          break;
        case 'late':
          await new Promise((r) => setTimeout(r, config.delayMs));
          throw new JunctionError('CONNECTION_FAILED', 'the test destination answered late, and no', { retryable: true });
        case 'spin':
          for (;;) {}
        case 'native':
          await blockInNative(config.fifo);
          break;
        default:
      }
    }
    return {
      write(batch) {
        if (faulty(config, 'write')) {
          switch (config.write) {
            case 'throw-sync':
              throw new JunctionError('SINK_BROKEN', 'the test sink throws before it returns a promise');
            case 'reject':
              return Promise.reject(new JunctionError('SINK_BROKEN', 'the test sink rejects'));
            case 'never':
              return new Promise(() => {});
            case 'wrong-count':
              return Promise.resolve(batch.messages.slice(1).map(() => ok()));
            case 'native':
              return blockInNative(config.fifo).then(() => batch.messages.map(() => ok()));
            default:
          }
        }
        record(config.dir, batch);
        return Promise.resolve(batch.messages.map(() => ok()));
      },
      async close() {
        if (faulty(config, 'close')) {
          if (config.close === 'hang') await new Promise(() => {});
          if (config.close === 'native') await blockInNative(config.fifo);
        }
      },
    };
  },
});
