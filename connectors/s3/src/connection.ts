/**
 * The connection fields every S3 connector shares (bucket, region, endpoint, credentials, …), with no
 * AWS SDK import, so a plugin's config schema loads fast. Exported as `@junction/connector-s3/connection`.
 */
import { secret, z } from '@junction/sdk-connector';

// Bucket names as S3 allows them today (3-63 chars, lower case, digits, dots, dashes).
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Static credentials; leave `credentials` out to use the AWS default chain (env, profile, SSO, IMDS, ECS…). */
export const Credentials = z.strictObject({
  accessKeyId: secret(z.string().min(1)).describe('Access key id, e.g. "${env:AWS_ACCESS_KEY_ID}" (a secret: never logged or returned)'),
  secretAccessKey: secret(z.string().min(1)).describe('Secret access key, e.g. "${file:/run/secrets/s3-key}" (a secret)'),
  sessionToken: secret(z.string().min(1)).optional().describe('Session token of temporary credentials (a secret)'),
});

/** The connection fields, shared by the sink's and the source's config schemas. */
export const connectionShape = {
  bucket: z.string().regex(BUCKET_RE, 'must be a bucket name: 3-63 characters of a-z, 0-9, "." and "-"').describe('The bucket'),
  prefix: z
    .string()
    .max(512)
    // eslint-disable-next-line no-control-regex -- control characters are what it rejects
    .regex(/^[^\0-\x1f]*$/, 'must not contain control characters')
    .default('')
    .describe('Key prefix all objects go under, e.g. "archive/events" (a trailing "/" is added)'),
  region: z
    .string()
    .min(1)
    .optional()
    .describe('AWS region; default: AWS_REGION / AWS_DEFAULT_REGION from the environment, else us-east-1'),
  endpoint: z.url().optional().describe('A custom endpoint (MinIO, R2, Ceph, LocalStack), e.g. "http://minio:9000"'),
  forcePathStyle: z.boolean().default(false).describe('Path-style addressing (endpoint/bucket/key), which MinIO and Ceph usually need'),
  credentials: Credentials.optional().describe('Static credentials; omit to use the AWS default credential chain'),
  checksums: z
    .enum(['when-supported', 'when-required'])
    .default('when-supported')
    .describe(
      'Request checksums: when-supported (AWS default, CRC32 on every upload) or when-required (for S3-compatible stores that reject or mangle them)',
    ),
  maxAttempts: z
    .int()
    .min(1)
    .max(10)
    .default(3)
    .describe("Attempts per S3 request inside the AWS SDK (its own backoff) before the runtime's retry takes over"),
  requestTimeoutMs: z.int().min(1000).max(3_600_000).default(120_000).describe('Longest one S3 request may take'),
} as const;

export const ConnectionConfig = z.strictObject(connectionShape);
export type ConnectionConfig = z.output<typeof ConnectionConfig>;

/** `archive/events` → `archive/events/`; `` → ``; leading and doubled slashes dropped. */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix
    .split('/')
    .filter((s) => s !== '')
    .join('/');
  return trimmed === '' ? '' : `${trimmed}/`;
}
