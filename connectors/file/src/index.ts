/**
 * @junction/connector-file — a sink that writes each batch as one JSON Lines file (optionally gzip)
 * under `<dir>/<station>/<partition>/`, atomically and exactly once across crashes and replays.
 * See README.md for the layout, the line format and how exactly-once works.
 */
import { resolve } from 'node:path';
import { defineSink, ErrorCode, JunctionError } from '@junction/sdk-connector';
import { FileSinkConfig } from './config.js';
import { makeDirs, UNUSABLE_DIR_CODES } from './dirs.js';
import { FileSink } from './sink.js';

export { FileSinkConfig } from './config.js';

export default defineSink({
  name: 'file',
  version: '0.1.0',
  sdk: '^1',
  description: 'JSON Lines files (optionally gzip) in a directory: one file per batch, written atomically, each message exactly once',
  exactlyOnce: true,
  // Values are encoded (copied) into the batch's lines during write(); nothing reads them after it.
  keepsValues: false,
  config: FileSinkConfig,
  async open(config, ctx) {
    const root = resolve(config.dir);
    try {
      await makeDirs(root);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const message = `cannot create the sink directory ${root}: ${(err as Error).message}`;
      // The directory as configured cannot be made (no such parent, read-only, not a directory, denied):
      // a configuration error, which fails the task. Anything else (ENOSPC, EIO, EMFILE) may pass.
      if (UNUSABLE_DIR_CODES.has(code))
        throw new JunctionError(ErrorCode.DESTINATION_UNUSABLE, message, { cause: err, issues: [{ path: 'dir', message }] });
      throw new JunctionError('IO_ERROR', message, { cause: err, retryable: true });
    }
    ctx.logger.debug({ dir: root, gzip: config.gzip, valueEncoding: config.valueEncoding }, 'file sink opened');
    return new FileSink(root, config, ctx);
  },
});
