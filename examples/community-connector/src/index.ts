/**
 * junction-connector-webhook — a community sink for Junction, built only on `@junction/sdk-connector`.
 * It POSTs each message (or each batch) to an HTTP endpoint: 2xx is `ok()`, 429 / 5xx / timeouts /
 * unreachable are `retry()`, any other 4xx is `deadLetter('SINK_REJECTED')`. See README.md.
 */
import { defineSink } from '@junction/sdk-connector';
import { WebhookConfig } from './config.js';
import { WebhookSink } from './sink.js';

export { WebhookConfig } from './config.js';
export { encodeBatch, type WebhookBatchBody } from './sink.js';

export default defineSink({
  name: 'webhook',
  version: '0.1.0',
  sdk: '^1',
  description: 'POSTs each message (or each batch as JSON) to an HTTP endpoint; retries 429/5xx, dead-letters other 4xx',
  // A receiver can make it exactly-once with the Idempotency-Key header; the sink itself cannot.
  exactlyOnce: false,
  config: WebhookConfig,
  open(config, ctx) {
    ctx.logger.debug({ mode: config.mode, concurrency: config.concurrency }, 'webhook sink opened');
    return new WebhookSink(config, ctx);
  },
});
