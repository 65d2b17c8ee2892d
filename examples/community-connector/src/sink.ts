/**
 * The webhook sink: HTTP POSTs, and what each answer means for the messages in it.
 *
 * - 2xx: `ok()`.
 * - 408, 425, 429 and 5xx, a timeout, an unreachable endpoint: `retry()` (honouring `Retry-After`).
 * - Any other status (4xx, a redirect fetch would not follow): `deadLetter('SINK_REJECTED')` — the
 *   endpoint refused this message for good, sending it again would not help.
 *
 * In `message` mode the messages of a batch are POSTed one by one (`concurrency` at a time). Once one
 * must be retried no further message of the batch is sent — they answer `retry()` too — so with
 * concurrency 1 the endpoint sees the messages of a partition in offset order, never one after a gap.
 * In `batch` mode the whole batch is one POST; when the endpoint refuses it with a non-retryable 4xx,
 * the sink sends its messages again one per POST (each as a batch of one) to find which ones it
 * refuses, so one poison message does not dead-letter its neighbours.
 *
 * Each request carries `Idempotency-Key: <station>/<partition>/<offset>` (batch mode:
 * `<station>/<partition>/<first>-<last>`), so a receiver can drop the repeats a replay sends.
 */
import {
  deadLetter,
  ErrorCode,
  JunctionError,
  ok,
  retry,
  type Counter,
  type Sink,
  type SinkBatch,
  type SinkContext,
  type SinkMessage,
  type WriteOptions,
  type WriteResult,
} from '@junction/sdk-connector';
import type { WebhookConfig } from './config.js';

/** The JSON body of a batch-mode POST. */
export interface WebhookBatchBody {
  station: string;
  partition: number;
  firstOffset: number;
  lastOffset: number;
  messages: {
    offset: number;
    timestamp: number;
    key?: string;
    headers: Record<string, string>;
    /** The value as text when its bytes are valid UTF-8 … */
    value?: string;
    /** … else as base64. */
    valueBase64?: string;
  }[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The batch-mode body for these messages. */
export function encodeBatch(batch: Pick<SinkBatch, 'station' | 'partition'>, messages: readonly SinkMessage[]): WebhookBatchBody {
  return {
    station: batch.station,
    partition: batch.partition,
    firstOffset: messages[0]?.offset ?? 0,
    lastOffset: messages[messages.length - 1]?.offset ?? 0,
    messages: messages.map((m) => {
      let text: string | undefined;
      try {
        text = utf8.decode(m.value);
      } catch {
        text = undefined;
      }
      return {
        offset: m.offset,
        timestamp: m.timestamp,
        ...(m.key === undefined ? {} : { key: m.key }),
        headers: { ...m.headers },
        ...(text === undefined
          ? { valueBase64: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength).toString('base64') }
          : { value: text }),
      };
    }),
  };
}

/** The outcome of one POST, for every message in it. */
type Outcome = WriteResult;

const RETRYABLE_STATUS = new Set([408, 425, 429]);

export class WebhookSink implements Sink {
  private readonly closing = new AbortController();
  private readonly posts: Counter;
  private readonly refusals: Counter;
  private readonly retries: Counter;

  constructor(
    private readonly config: WebhookConfig,
    private readonly ctx: SinkContext,
  ) {
    this.posts = ctx.metrics.counter('posts_total', 'POST requests sent');
    this.refusals = ctx.metrics.counter('refused_total', 'messages the endpoint refused for good (dead-lettered)');
    this.retries = ctx.metrics.counter('retries_total', 'messages answered retry()');
  }

  async write(batch: SinkBatch, { signal }: WriteOptions): Promise<WriteResult[]> {
    const results =
      this.config.mode === 'batch' ? await this.writeBatch(batch, signal) : await this.writeMessages(batch, batch.messages, signal);
    // The runtime ignores the answer of an aborted write and sends the batch again: say so plainly.
    if (signal.aborted) throw new JunctionError(ErrorCode.TIMEOUT, 'the write was aborted', { retryable: true, cause: signal.reason });
    for (const r of results) {
      if (r.status === 'retry') this.retries.inc();
      else if (r.status === 'deadLetter') this.refusals.inc();
    }
    return results;
  }

  async close(): Promise<void> {
    // Idempotent: aborting twice is a no-op. In-flight requests (there should be none) are cancelled.
    this.closing.abort(new Error('the sink was closed'));
  }

  async checkConnection(): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.config.url, {
        method: 'HEAD',
        headers: this.requestHeaders({}),
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
    } catch (cause) {
      throw new JunctionError(ErrorCode.CONNECTION_FAILED, `cannot reach the webhook endpoint: ${describe(cause)}`, { cause });
    }
    await discard(res);
    if (res.status === 401 || res.status === 403)
      throw new JunctionError(ErrorCode.AUTH_FAILED, `the webhook endpoint answered HTTP ${res.status}`);
  }

  /** Message mode: one POST per message, `concurrency` at a time; after the first retry nothing more is sent. */
  private async writeMessages(batch: SinkBatch, messages: readonly SinkMessage[], signal: AbortSignal): Promise<WriteResult[]> {
    const results: (WriteResult | undefined)[] = Array.from({ length: messages.length }, () => undefined);
    let next = 0;
    let stopped: string | undefined;
    const worker = async (): Promise<void> => {
      while (stopped === undefined && !signal.aborted && next < messages.length) {
        const i = next++;
        const m = messages[i]!;
        const outcome = await this.post(
          m.value,
          {
            'content-type': m.headers['content-type'] ?? 'application/octet-stream',
            'idempotency-key': `${batch.station}/${batch.partition}/${m.offset}`,
            'x-junction-station': batch.station,
            'x-junction-partition': String(batch.partition),
            'x-junction-offset': String(m.offset),
            'x-junction-timestamp': String(m.timestamp),
            ...(m.key === undefined ? {} : { 'x-junction-key': encodeURIComponent(m.key) }),
          },
          signal,
        );
        results[i] = outcome;
        if (outcome.status === 'retry') stopped = outcome.reason;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.concurrency, messages.length) }, worker));
    return results.map(
      (r) =>
        r ??
        retry(
          stopped === undefined
            ? 'not sent: the write was aborted'
            : `not sent: an earlier message of the batch must be retried first (${stopped})`,
        ),
    );
  }

  /** Batch mode: one POST for the batch; a refused batch is split into one POST per message. */
  private async writeBatch(batch: SinkBatch, signal: AbortSignal): Promise<WriteResult[]> {
    const outcome = await this.postBatch(batch, batch.messages, signal);
    if (outcome.status !== 'deadLetter' || batch.messages.length === 1) return batch.messages.map(() => outcome);
    this.ctx.logger.debug(
      { station: batch.station, partition: batch.partition, firstOffset: batch.firstOffset },
      'batch refused: sending its messages one by one',
    );
    const results: WriteResult[] = [];
    let stopped: string | undefined;
    for (const m of batch.messages) {
      if (stopped !== undefined || signal.aborted) {
        results.push(retry(`not sent: an earlier message of the batch must be retried first (${stopped ?? 'aborted'})`));
        continue;
      }
      const one = await this.postBatch(batch, [m], signal);
      if (one.status === 'retry') stopped = one.reason;
      results.push(one);
    }
    return results;
  }

  private postBatch(batch: SinkBatch, messages: readonly SinkMessage[], signal: AbortSignal): Promise<Outcome> {
    const first = messages[0]!.offset;
    const last = messages[messages.length - 1]!.offset;
    return this.post(
      JSON.stringify(encodeBatch(batch, messages)),
      {
        'content-type': 'application/json',
        'idempotency-key': `${batch.station}/${batch.partition}/${first}-${last}`,
        'x-junction-station': batch.station,
        'x-junction-partition': String(batch.partition),
      },
      signal,
    );
  }

  private requestHeaders(extra: Record<string, string>): Record<string, string> {
    return {
      ...this.config.headers,
      ...(this.config.token === undefined ? {} : { authorization: `Bearer ${this.config.token}` }),
      ...extra,
    };
  }

  /** One POST, and what its answer means for the messages it carried. Never throws. */
  private async post(body: Uint8Array<ArrayBuffer> | string, headers: Record<string, string>, signal: AbortSignal): Promise<Outcome> {
    const timeout = AbortSignal.timeout(this.config.timeoutMs);
    let res: Response;
    try {
      this.posts.inc();
      res = await fetch(this.config.url, {
        method: 'POST',
        body,
        headers: this.requestHeaders(headers),
        signal: AbortSignal.any([signal, this.closing.signal, timeout]),
        redirect: 'follow',
      });
    } catch (cause) {
      if (timeout.aborted && !signal.aborted) return retry(`no answer within ${this.config.timeoutMs} ms`);
      return retry(`cannot reach the webhook endpoint: ${describe(cause)}`);
    }
    await discard(res);
    if (res.status >= 200 && res.status < 300) return ok();
    if (RETRYABLE_STATUS.has(res.status) || res.status >= 500) {
      const delayMs = retryAfterMs(res.headers.get('retry-after'), this.config.maxRetryAfterMs);
      return retry(`HTTP ${res.status}`, delayMs === undefined ? undefined : { delayMs });
    }
    return deadLetter(ErrorCode.SINK_REJECTED, `the webhook endpoint answered HTTP ${res.status}`);
  }
}

/** `Retry-After` as milliseconds (delta-seconds or an HTTP date), capped; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, max: number): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header.trim());
  let ms: number;
  if (Number.isFinite(seconds)) ms = seconds * 1000;
  else {
    const at = Date.parse(header);
    if (Number.isNaN(at)) return undefined;
    ms = at - Date.now();
  }
  return Math.min(Math.max(0, Math.round(ms)), max);
}

/** Reads and drops a response body, so its connection goes back to the pool. */
async function discard(res: Response): Promise<void> {
  try {
    await res.arrayBuffer();
  } catch {
    // the connection broke after the status line: the status still stands
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  if (cause && typeof cause.code === 'string') return `${err.message} (${cause.code})`;
  if (cause && typeof cause.message === 'string') return `${err.message} (${cause.message})`;
  return err.message;
}
