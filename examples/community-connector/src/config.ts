/** The webhook sink's config: what a user writes under `config:` in junction.yaml. */
import { secret, z } from '@junction/sdk-connector';

export const WebhookConfig = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).describe('The endpoint every POST goes to (http or https)'),
  mode: z
    .enum(['message', 'batch'])
    .default('message')
    .describe(
      'message: one POST per message, the body is the message value; batch: one POST per batch, the body is JSON with every message',
    ),
  token: secret(z.string().min(1)).optional().describe('Sent as `Authorization: Bearer <token>`'),
  headers: z
    .record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name'), secret(z.string()))
    .default({})
    .describe('Extra request headers (their values are treated as secrets: they often carry API keys)'),
  timeoutMs: z.int().min(100).max(300_000).default(10_000).describe('How long one request may take before it is retried'),
  concurrency: z
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe('message mode: POSTs in flight at once within a batch; 1 delivers in offset order'),
  maxRetryAfterMs: z.int().min(0).default(300_000).describe('Upper bound for a Retry-After the endpoint asks for (429 / 503)'),
});
export type WebhookConfig = z.output<typeof WebhookConfig>;
