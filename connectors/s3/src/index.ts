/**
 * @junction/connector-s3 — a sink that writes a station's messages into S3 (or MinIO, R2, Ceph) as
 * JSON Lines, Parquet or raw objects, gzip or zstd compressed, laid out by partition, by time or by a
 * field, each message exactly once across crashes and replays. See README.md.
 *
 * This module loads no AWS SDK (the registry imports it to list the catalog); `open` does. Also
 * exported: `./sink` (the S3Sink class, for tools and tests), `./formats` (encodings, read back by the
 * S3 source), `./client` (client, bucket check, error classification) and `./connection` (the shared
 * connection config).
 */
import { defineSink } from '@junction/sdk-connector';
import { S3SinkConfig } from './config.js';

export { S3SinkConfig } from './config.js';
export type { S3Sink, S3SinkOptions } from './sink.js';

export default defineSink({
  name: 's3',
  version: '0.1.0',
  sdk: '^1',
  description:
    'Station messages into S3 (or MinIO, R2, Ceph): JSON Lines, Parquet or raw; gzip or zstd; by partition, time or field; exactly once',
  exactlyOnce: true,
  // Values are encoded (copied) into the object during write(); nothing reads them after it.
  keepsValues: false,
  config: S3SinkConfig,
  async open(config, ctx) {
    const [{ checkBucket, createS3Client }, { S3Sink }] = await Promise.all([import('./client.js'), import('./sink.js')]);
    const client = createS3Client(config);
    try {
      // Fail fast on wrong credentials or a missing bucket (not retryable), retry when S3 is down.
      await checkBucket(client, config.bucket);
    } catch (err) {
      client.destroy();
      throw err;
    }
    ctx.logger.debug(
      { bucket: config.bucket, format: config.format, compression: config.compression, layout: config.path.layout },
      's3 sink opened',
    );
    return new S3Sink(client, config, ctx);
  },
});
