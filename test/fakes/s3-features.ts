/**
 * The S3 features s3rver lacks, added in front of it as AWS SDK middleware on a client, with S3's
 * semantics: conditional PUT (`If-None-Match: *` → 412 PreconditionFailed when the key exists, on
 * PutObject and CompleteMultipartUpload), AbortMultipartUpload and ListMultipartUploads (tracked from
 * the client's own CreateMultipartUpload / Complete calls), small list pages (MaxKeys) to exercise
 * paging, and failure injection per command. It records what it saw, for assertions.
 */
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';

export interface S3FeatureOptions {
  /** Forces ListObjectsV2's MaxKeys, so every listing pages. */
  pageSize?: number;
  /** Throws this instead of sending the command, when it returns an error. */
  fail?: (command: string, input: Record<string, unknown>) => Error | undefined;
}

export interface S3FeatureLog {
  /** Every command name sent, in order. */
  calls: string[];
  /** Multipart uploads created and neither completed nor aborted: UploadId → Key. */
  openUploads: Map<string, string>;
  aborted: { key: string; uploadId: string }[];
  /** Keys whose conditional write was refused. */
  preconditionFailed: string[];
}

/** An error shaped like the SDK's for an S3 error answer. */
export function s3Error(name: string, status: number, message = name): Error {
  return Object.assign(new Error(message), {
    name,
    Code: name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
  });
}

export function addS3Features(client: S3Client, opts: S3FeatureOptions = {}): S3FeatureLog {
  const log: S3FeatureLog = { calls: [], openUploads: new Map(), aborted: [], preconditionFailed: [] };
  const exists = async (bucket: string, key: string): Promise<boolean> => {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
      throw err;
    }
  };
  const answer = (output: Record<string, unknown>) => ({ output: { $metadata: { httpStatusCode: 200 }, ...output }, response: {} });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName as string;
      const input = args.input as Record<string, unknown>;
      log.calls.push(command);
      const injected = opts.fail?.(command, input);
      if (injected) throw injected;
      const bucket = input.Bucket as string;
      const key = input.Key as string;
      switch (command) {
        case 'PutObjectCommand':
        case 'CompleteMultipartUploadCommand':
          if (input.IfNoneMatch === '*' && (await exists(bucket, key))) {
            log.preconditionFailed.push(key);
            throw s3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold');
          }
          break;
        case 'AbortMultipartUploadCommand': {
          const id = input.UploadId as string;
          if (!log.openUploads.has(id)) throw s3Error('NoSuchUpload', 404);
          log.openUploads.delete(id);
          log.aborted.push({ key, uploadId: id });
          return answer({}) as never;
        }
        case 'ListMultipartUploadsCommand': {
          const prefix = (input.Prefix as string | undefined) ?? '';
          const uploads = [...log.openUploads].filter(([, k]) => k.startsWith(prefix)).map(([UploadId, Key]) => ({ UploadId, Key }));
          return answer({ Bucket: bucket, Uploads: uploads, IsTruncated: false }) as never;
        }
        case 'ListObjectsV2Command':
          if (opts.pageSize !== undefined) input.MaxKeys = opts.pageSize;
          break;
      }
      const result = await next(args);
      const output = result.output as unknown as Record<string, unknown>;
      if (command === 'CreateMultipartUploadCommand') log.openUploads.set(output.UploadId as string, key);
      if (command === 'CompleteMultipartUploadCommand') log.openUploads.delete(input.UploadId as string);
      return result;
    },
    { step: 'initialize', name: 'junctionS3Features', priority: 'high' },
  );
  return log;
}
