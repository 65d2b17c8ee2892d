/**
 * @junction/connector-s3-source — reads the objects under an S3 prefix back into a station, in key
 * order: the S3 sink's layouts and formats (JSON Lines, Parquet, raw; gzip, zstd) and plain JSON Lines
 * from anywhere. Its position (object key + record count) lets a restart resume without duplicates.
 * See README.md. This module loads no AWS SDK; `open` does.
 */
import { defineSource } from '@junction/sdk-connector';
import { S3SourceConfig } from './config.js';
import type { S3SourcePosition } from './source.js';

export { S3SourceConfig } from './config.js';
export { msgIdFor } from './msg-id.js';
export type { S3Source, S3SourcePosition } from './source.js';

export default defineSource<typeof S3SourceConfig, S3SourcePosition>({
  name: 's3-source',
  version: '0.1.0',
  sdk: '^1',
  description:
    'Objects under an S3 prefix back into a station in key order (the S3 sink formats, or plain JSON Lines); resumes where it stopped',
  config: S3SourceConfig,
  async open(config, ctx) {
    const [{ checkBucket, createS3Client }, { S3Source }] = await Promise.all([
      import('@junction/connector-s3/client'),
      import('./source.js'),
    ]);
    const client = createS3Client(config);
    try {
      await checkBucket(client, config.bucket);
    } catch (err) {
      client.destroy();
      throw err;
    }
    return new S3Source(client, config, ctx);
  },
});
