/**
 * The datagen source. Message `seq` (1, 2, 3, …) is a pure function of (shape, seed, seq, start time),
 * its msgId is `<shape>-<seed>-<seq>`, and a batch's position is `{ seq, startMs }` of its last
 * message. Resuming from a position continues at seq + 1 with the same start time, so the stream
 * after a restart is byte for byte the one that would have been generated without it, and what a
 * crash made the runtime emit twice carries the same msgIds (the station drops the repeats).
 */
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import {
  ErrorCode,
  JunctionError,
  type Logger,
  type Source,
  type SourceBatch,
  type SourceContext,
  type SourceMessage,
} from '@junction/sdk-connector';
import type { DatagenConfig } from './config.js';
import { hash32 } from './prng.js';
import { generate } from './shapes.js';

/** Where the stream stands: the last emitted seq and the stream's fixed start time. */
export type DatagenPosition = { seq: number; startMs: number };

/** Events per second used to space event times when no rate is set. */
const DEFAULT_EVENT_RATE = 1000;
/** At low rates a batch holds about this many seconds of messages, so the flow looks live. */
const LOW_RATE_BATCH_SECONDS = 0.05;
/** After falling behind (a slow station), catch up at most this much rather than bursting forever. */
const MAX_CATCH_UP_MS = 1000;

export function parsePosition(p: unknown): DatagenPosition | undefined {
  if (typeof p !== 'object' || p === null) return undefined;
  const { seq, startMs } = p as Record<string, unknown>;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { seq, startMs: typeof startMs === 'number' && Number.isFinite(startMs) ? startMs : Number.NaN };
}

export class DatagenSource implements Source<DatagenPosition> {
  private readonly closing = new AbortController();
  private reading = false;
  private readonly encoder = new TextEncoder();
  private readonly headers: Readonly<Record<string, string>>;
  private readonly intervalMs: number;
  /** The last seq emitted before this open (0 on a first start). */
  private readonly after: number;
  readonly startMs: number;

  constructor(
    private readonly config: DatagenConfig,
    ctx: SourceContext<DatagenPosition>,
    private readonly log: Logger = ctx.logger,
  ) {
    const restored = ctx.position === undefined ? undefined : parsePosition(ctx.position);
    if (ctx.position !== undefined && !restored) {
      throw new JunctionError(
        ErrorCode.CONFIG_INVALID,
        `cannot resume from position ${JSON.stringify(ctx.position)}: expected { seq, startMs }`,
      );
    }
    this.after = restored?.seq ?? 0;
    if (config.startTime !== 'now') this.startMs = Date.parse(config.startTime);
    else this.startMs = restored && Number.isFinite(restored.startMs) ? restored.startMs : Date.now();
    this.intervalMs = 1000 / (config.ratePerSec ?? DEFAULT_EVENT_RATE);
    this.headers = Object.freeze({ 'content-type': 'application/json', 'datagen-shape': config.shape });
  }

  /** Message number `seq`: the same bytes every time. */
  message(seq: number): SourceMessage {
    const { shape, seed, keyField, padTo } = this.config;
    // The event's time is spread over its slot with a jitter of its own, independent of its fields.
    const at = this.startMs + Math.floor((seq - 1 + hash32(seed, seq, 0xd47a) / 4294967296) * this.intervalMs);
    const event = generate(shape, seed, seq, at);
    let text = JSON.stringify(event);
    if (padTo !== undefined && text.length < padTo) {
      // The same text as JSON.stringify({ ...event, pad }) (pad last, 'x' needs no escaping), without
      // serializing the whole event again: on Node 20 that second pass over the pad cost more than the rest.
      const pad = padding(Math.max(0, padTo - text.length - ',"pad":""'.length));
      text = text === '{}' ? `{"pad":"${pad}"}` : `${text.slice(0, -1)},"pad":"${pad}"}`;
    }
    const key = keyField === undefined ? undefined : event[keyField];
    return {
      value: this.encoder.encode(text),
      ...(key === undefined || key === null ? {} : { key: String(key) }),
      headers: this.headers,
      msgId: `${shape}-${seed}-${seq}`,
    };
  }

  read(signal: AbortSignal): AsyncIterable<SourceBatch<DatagenPosition>> {
    if (this.reading) throw new JunctionError(ErrorCode.INTERNAL, 'read() may be called once per open');
    this.reading = true;
    return this.generate(AbortSignal.any([signal, this.closing.signal]));
  }

  private async *generate(signal: AbortSignal): AsyncGenerator<SourceBatch<DatagenPosition>> {
    const { ratePerSec, batchSize, maxMessages } = this.config;
    const perBatch =
      ratePerSec === undefined ? batchSize : Math.min(batchSize, Math.max(1, Math.round(ratePerSec * LOW_RATE_BATCH_SECONDS)));
    let seq = this.after;
    let t0 = performance.now();
    let emitted = 0;
    this.log.info(
      { shape: this.config.shape, seed: this.config.seed, from: seq + 1, ratePerSec: ratePerSec ?? 'unlimited' },
      'datagen started',
    );
    while (!signal.aborted) {
      const remaining = maxMessages === undefined ? Infinity : maxMessages - seq;
      if (remaining <= 0) {
        this.log.info({ seq }, 'datagen reached maxMessages');
        return;
      }
      const n = Math.min(perBatch, remaining);
      try {
        if (ratePerSec !== undefined) {
          const due = t0 + (emitted / ratePerSec) * 1000;
          const now = performance.now();
          if (now - due > MAX_CATCH_UP_MS) {
            t0 = now - (emitted / ratePerSec) * 1000;
          } else if (due > now) {
            await sleep(due - now, undefined, { signal });
          }
        } else {
          // Unlimited: still let timers, I/O and the abort signal in between batches.
          await yieldToLoop(undefined, { signal });
        }
      } catch {
        return; // aborted while waiting
      }
      const messages: SourceMessage[] = new Array(n);
      for (let i = 0; i < n; i++) messages[i] = this.message(seq + 1 + i);
      seq += n;
      emitted += n;
      yield { messages, position: { seq, startMs: this.startMs } };
    }
  }

  async commit(): Promise<void> {
    // Nothing upstream to acknowledge: the position alone is the state.
  }

  /**
   * There is no remote system; this checks what a connection check would catch for a real source:
   * that the configured shape, key field and padding produce a well-formed first event.
   */
  async checkConnection(): Promise<void> {
    const m = this.message(this.after + 1);
    const event = JSON.parse(new TextDecoder().decode(m.value)) as Record<string, unknown>;
    if (this.config.keyField !== undefined && m.key === undefined) {
      throw new JunctionError(
        ErrorCode.CONFIG_INVALID,
        `events of shape "${this.config.shape}" have no field "${this.config.keyField}" to key by`,
      );
    }
    if (typeof event !== 'object' || event === null) throw new JunctionError(ErrorCode.INTERNAL, 'generated event is not a JSON object');
  }

  async close(): Promise<void> {
    this.closing.abort();
  }
}

const pads = new Map<number, string>();
/** `'x'.repeat(n)`, kept per length (a benchmark pads every event to the same size). */
function padding(n: number): string {
  let p = pads.get(n);
  if (p === undefined) {
    p = 'x'.repeat(n);
    if (pads.size < 4096) pads.set(n, p);
  }
  return p;
}
