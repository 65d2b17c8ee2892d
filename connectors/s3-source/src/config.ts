/** The S3 source's config. */
import { z } from '@junction/sdk-connector';
import { connectionShape } from '@junction/connector-s3/connection';

export const S3SourceConfig = z.strictObject({
  ...connectionShape,
  format: z
    .enum(['auto', 'jsonl', 'lines', 'parquet', 'raw'])
    .default('auto')
    .describe(
      "auto: what the S3 sink recorded in the object's metadata, else by extension (.parquet; .bin raw; anything else plain JSON Lines). " +
        'jsonl: the S3 sink envelope; lines: each line is a value; parquet: a row is a JSON object; raw: values split on raw.separator',
    ),
  compression: z
    .enum(['auto', 'gzip', 'zstd', 'none'])
    .default('auto')
    .describe('auto: from the metadata, else the key suffix (.gz, .zst)'),
  raw: z
    .strictObject({ separator: z.string().min(1).max(16).default('\n').describe('What separates values in raw objects without metadata') })
    .prefault({})
    .describe('Raw options'),
  batchSize: z.int().min(1).max(100_000).default(500).describe('Most messages per batch handed to the runtime'),
  startAfter: z.string().optional().describe('On the first start (no stored position), begin with the first key after this one'),
  pollIntervalMs: z
    .int()
    .min(0)
    .max(86_400_000)
    .default(0)
    .describe(
      '0: the source ends once every object under the prefix is read. > 0: it keeps listing every so often for keys after its position',
    ),
});
export type S3SourceConfig = z.output<typeof S3SourceConfig>;
