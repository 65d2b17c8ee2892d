/** The file sink's config. */
import { hostPath, z } from '@junction/sdk-connector';

export const FileSinkConfig = z.strictObject({
  dir: hostPath(z.string().min(1)).describe(
    "Directory the files go under (created if missing); a relative path is resolved against the working directory. With auth on it must lie under the server's allowed roots (auth.hostPathRoots, default the data dir)",
  ),
  gzip: z.boolean().default(false).describe('Compress each file with gzip (name ends in .jsonl.gz)'),
  valueEncoding: z
    .enum(['auto', 'utf8', 'base64'])
    .default('auto')
    .describe(
      'How message values are written: auto = UTF-8 text when the bytes are valid UTF-8, else base64 with "base64": true; ' +
        'utf8 = always text, a value that is not valid UTF-8 is dead-lettered; base64 = always base64 with "base64": true',
    ),
  fsync: z
    .boolean()
    .default(true)
    .describe('fsync each file and its directory before confirming; false survives a process crash but not an OS crash or power loss'),
});
export type FileSinkConfig = z.output<typeof FileSinkConfig>;
