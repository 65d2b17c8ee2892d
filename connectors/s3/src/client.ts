/**
 * The S3 client built from the connection config, the bucket check and error classification: what the
 * S3 source shares with the sink. Exported as `@junction/connector-s3/client`.
 */
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { type ConnectionConfig } from './connection.js';
import { classifyS3Error } from './errors.js';

export { ConnectionConfig, Credentials, connectionShape, normalizePrefix } from './connection.js';

/** A client for the config. Nothing is sent until the first request. */
export function createS3Client(config: ConnectionConfig): S3Client {
  const region = config.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const when = config.checksums === 'when-required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  return new S3Client({
    region,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    forcePathStyle: config.forcePathStyle,
    // A copy: the SDK marks the object it is given ($source), which would then fail our strict schema.
    ...(config.credentials === undefined ? {} : { credentials: { ...config.credentials } }),
    requestChecksumCalculation: when,
    responseChecksumValidation: when,
    maxAttempts: config.maxAttempts,
    requestHandler: { requestTimeout: config.requestTimeoutMs, connectionTimeout: Math.min(10_000, config.requestTimeoutMs) },
  });
}

/**
 * Proves the bucket is reachable with these credentials (HeadBucket). Throws AUTH_FAILED or NOT_FOUND
 * (not retryable) when it never will be, CONNECTION_FAILED / TIMEOUT (retryable) when S3 is unreachable.
 */
export async function checkBucket(client: S3Client, bucket: string, signal?: AbortSignal): Promise<void> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), signal ? { abortSignal: signal } : {});
  } catch (err) {
    const e = err as { $metadata?: { httpStatusCode?: number }; name?: string };
    // HeadBucket answers without a body, so a missing bucket is a bare 404.
    if (e?.$metadata?.httpStatusCode === 404) {
      throw classifyS3Error(Object.assign(err as object, { Code: 'NoSuchBucket' }), 'checking the bucket', bucket);
    }
    throw classifyS3Error(err, 'checking the bucket', bucket);
  }
}

export { classifyS3Error, errorName, httpStatus, isAbort, isNotFound, S3ErrorCode } from './errors.js';
