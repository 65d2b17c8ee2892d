/**
 * @junction/connector-file — a sink that writes each batch as one JSON Lines file (optionally gzip)
 * under `<dir>/<station>/<partition>/`, atomically and exactly once across crashes and replays.
 * See README.md for the layout, the line format and how exactly-once works.
 */
import { resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { defineSink, ErrorCode, JunctionError } from '@junction/sdk-connector';
import { FileSinkConfig } from './config.js';
import { FileSink } from './sink.js';

export { FileSinkConfig } from './config.js';

export default defineSink({
  name: 'file',
  version: '0.1.0',
  sdk: '^1',
  description: 'JSON Lines files (optionally gzip) in a directory: one file per batch, written atomically, each message exactly once',
  exactlyOnce: true,
  config: FileSinkConfig,
  async open(config, ctx) {
    const root = resolve(config.dir);
    try {
      await mkdir(root, { recursive: true });
    } catch (err) {
      throw new JunctionError(ErrorCode.CONNECTION_FAILED, `cannot create the sink directory ${root}: ${(err as Error).message}`, { cause: err });
    }
    ctx.logger.debug({ dir: root, gzip: config.gzip, valueEncoding: config.valueEncoding }, 'file sink opened');
    return new FileSink(root, config, ctx);
  },
});
