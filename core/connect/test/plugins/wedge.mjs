// A sink that misbehaves in one chosen way, for the runtime's wedge matrix. Each fault applies to the
// first `times` calls of its kind (all of them when `times` < 0), counted across threads and restarts;
// after that the sink behaves and records what it writes.
//
// open:  throw (non-retryable DESTINATION_UNUSABLE) | throw-retryable (CONNECTION_FAILED) | hang (never
//        settles) | late (rejects, retryable, after `delayMs`) | spin (a busy loop) | native (blocks a
//        libuv threadpool thread opening the FIFO `<fifo>.<attempt>` for reading, until a writer opens it)
// write: throw-sync (throws before returning a promise) | reject (non-retryable) | never (never settles,
//        ignores its signal) | wrong-count (one result too few) | native (as open's)
// close: hang (never settles) | native (as open's)
import { open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineSink, JunctionError, ok, z } from '@junction/sdk-connector';
import { nextAttempt, record } from './common.mjs';

const Fault = z.enum([
  'none',
  'throw',
  'throw-retryable',
  'hang',
  'late',
  'spin',
  'native',
  'throw-sync',
  'reject',
  'never',
  'wrong-count',
]);

/** The attempt number of this faulty call (counted per kind, from 0), or -1 when it behaves. */
function attempt(config, kind) {
  if (config[kind] === 'none') return -1;
  const n = nextAttempt(join(config.dir, `${kind}-attempts`));
  return config.times < 0 || n < config.times ? n : -1;
}

/**
 * Never returns until someone opens the FIFO `<fifo>.<n>` for writing: the open(2) blocks in the
 * threadpool. One FIFO per attempt, so a test can let go of old attempts and keep the newest blocked.
 */
async function blockInNative(fifo, n) {
  const fh = await openFile(`${fifo}.${n}`, 'r');
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
    const n = attempt(config, 'open');
    if (n >= 0) {
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
          for (;;) {
            // spins: this plugin wedges on purpose
          }
        case 'native':
          await blockInNative(config.fifo, n);
          break;
        default:
      }
    }
    return {
      write(batch) {
        const w = attempt(config, 'write');
        if (w >= 0) {
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
              return blockInNative(config.fifo, w).then(() => batch.messages.map(() => ok()));
            default:
          }
        }
        record(config.dir, batch);
        return Promise.resolve(batch.messages.map(() => ok()));
      },
      async close() {
        const c = attempt(config, 'close');
        if (c >= 0) {
          if (config.close === 'hang') await new Promise(() => {});
          if (config.close === 'native') await blockInNative(config.fifo, c);
        }
      },
    };
  },
});
