/**
 * A chain of steps opened once (per worker task) and run on every message, in order. Built-ins are
 * compiled at open; plugin steps are opened through the loader the runtime gives (it imports the
 * registry's entry in the worker thread).
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { setImmediate } from 'node:timers';
import { parseConfig, type TransformContext, type TransformPlugin, type Transformer } from '@junction/sdk-connector';
import { stepLabel, type TransformStep } from './config.js';
import { StepError, TransformFailed } from './errors.js';
import { Working, type Message } from './message.js';
import { compileBuiltin, DROP, type StepFn } from './steps.js';

/** What became of one message. */
export type Outcome =
  | {
      status: 'keep';
      /** The message as it leaves: the very object given when nothing changed. */
      message: Message;
      /** Whether the value, headers, key or timestamp differ from the message given. */
      changed: boolean;
      /** The station a route step chose (sources). */
      station?: string | undefined;
    }
  | { status: 'drop'; step: number }
  | { status: 'fail'; error: TransformFailed };

export interface RunOptions {
  /**
   * Gives the thread's event loop a turn (setImmediate) once a slice of the batch has run this long: I/O
   * callbacks waiting on the thread (the previous batch's write: open, write, fsync, rename, each an
   * await) go on between slices instead of after the whole batch. Unset: the batch runs in one go.
   */
  yieldEveryMs?: number | undefined;
}

export interface PipelineOptions {
  /** Loads a transform plugin by name (from the registry). Required when the chain has plugin steps. */
  loadPlugin?: (name: string) => Promise<TransformPlugin>;
  /** The context plugin steps open with. */
  context?: TransformContext;
}

/**
 * Where `run` encodes the changed values of a batch: chunks of 256 KiB (or one value's size) filled one
 * after the other, each value a view into one. A value's text is encoded as soon as it is made, so the
 * string dies young (kept to the end of the batch, 5000 texts of 1 KiB outlived the young generation and
 * the collector copied and promoted them: a third of the chain's time).
 */
class Encoder {
  private buf: Buffer | undefined;
  private pos = 0;

  readonly encode = (text: string): Uint8Array => {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const max = text.length * 3;
    let buf = this.buf;
    if (buf === undefined || buf.length - this.pos < max) {
      const exact = max > CHUNK ? Buffer.byteLength(text, 'utf8') : 0;
      // Its own ArrayBuffer (not the shared pool): it may be handed on, and is freed with the batch.
      buf = this.buf = Buffer.allocUnsafeSlow(Math.max(CHUNK, exact));
      this.pos = 0;
    }
    const start = this.pos;
    const n = buf.utf8Write(text, start);
    this.pos = start + n;
    // A plain view (its ArrayBuffer is the chunk's own, offset 0): cheaper to make than Buffer#subarray.
    return new Uint8Array(buf.buffer, start, n);
  };
}
const CHUNK = 256 * 1024;

/** Buffer's own UTF-8 writer (on every Buffer; @types/node does not declare it). */
declare module 'node:buffer' {
  interface Buffer {
    utf8Write(s: string, offset: number): number;
  }
}

interface Compiled {
  label: string;
  fn: StepFn;
  close?: () => void | Promise<void>;
}

function isPromise<T>(v: unknown): v is Promise<T> {
  return typeof (v as { then?: unknown } | null | undefined)?.then === 'function';
}

function pluginStep(t: Transformer): StepFn {
  return async (w) => {
    w.materialize();
    const given = { value: w.value, key: w.key, headers: w.headers, timestamp: w.timestamp };
    const out = await t.transform(given);
    if (out === null) return DROP;
    if (typeof out !== 'object' || !(out.value instanceof Uint8Array) || typeof out.headers !== 'object' || out.headers === null) {
      throw new StepError('the plugin answered neither a message (value Uint8Array, headers) nor null');
    }
    if (out.value !== given.value) w.setBytes(out.value);
    if (out.headers !== given.headers) w.setHeaders({ ...out.headers });
    w.key = out.key;
    if (typeof out.timestamp === 'number' && Number.isFinite(out.timestamp)) w.timestamp = out.timestamp;
  };
}

export class Pipeline {
  /** Set by close: a run under way (between its awaits) stops rather than pass the rest on untransformed. */
  private closed = false;

  private constructor(private readonly steps: Compiled[]) {}

  /**
   * Opens a chain of validated steps (see `checkTransforms`; secret references in them resolved).
   * Throws when a plugin step cannot load or open (its error; the chain opened so far is closed).
   */
  static async open(steps: readonly TransformStep[], options: PipelineOptions = {}): Promise<Pipeline> {
    const compiled: Compiled[] = [];
    try {
      for (let i = 0; i < steps.length; i++) {
        const step = steps[i]!;
        const label = stepLabel(step);
        if (step.type !== 'plugin') {
          compiled.push({ label, fn: compileBuiltin(step) });
          continue;
        }
        if (!options.loadPlugin) throw new Error(`transforms[${i}]: no plugin loader for plugin step ${step.plugin}`);
        const plugin = await options.loadPlugin(step.plugin);
        if (plugin.kind !== 'transform')
          throw new Error(`transforms[${i}]: plugin ${step.plugin} is a ${String(plugin.kind)}, not a transform`);
        const config = parseConfig(plugin.config, step.config, `transforms[${i}].config`);
        const ctx = options.context ?? noContext();
        const t = await plugin.open(config, ctx);
        compiled.push({ label, fn: pluginStep(t), close: () => t.close?.() });
      }
    } catch (err) {
      await new Pipeline(compiled).close();
      throw err;
    }
    return new Pipeline(compiled);
  }

  /** Whether the chain has no step (messages pass untouched). */
  get empty(): boolean {
    return this.steps.length === 0;
  }

  /** Runs one message through the chain. Synchronous unless a step is (map, plugins). */
  runOne(m: Message): Outcome | Promise<Outcome> {
    return this.runWith(m, undefined);
  }

  private runWith(m: Message, encoder: Encoder | undefined): Outcome | Promise<Outcome> {
    const w = new Working(m);
    for (let i = 0; i < this.steps.length; i++) {
      let r: ReturnType<StepFn>;
      try {
        r = this.steps[i]!.fn(w);
      } catch (err) {
        return this.failed(i, err);
      }
      if (isPromise<void | typeof DROP>(r)) return this.continueAsync(w, i, r, encoder);
      if (r === DROP) return { status: 'drop', step: i };
    }
    return this.kept(w, encoder);
  }

  /**
   * Runs messages through the chain, one outcome per message in order. The changed values of the batch
   * are encoded into shared chunks as they are made (views into them), not one allocation a message.
   * With `yieldEveryMs`, the run gives the event loop a turn between slices (see {@link RunOptions}).
   * Rejects when the chain is closed meanwhile (nothing of the batch may then be written).
   */
  async run(messages: readonly Message[], options: RunOptions = {}): Promise<Outcome[]> {
    const out: Outcome[] = new Array(messages.length);
    const encoder = new Encoder();
    const slice = options.yieldEveryMs;
    let since = slice === undefined ? 0 : performance.now();
    for (let i = 0; i < messages.length; i++) {
      const r = this.runWith(messages[i]!, encoder);
      if (isPromise<Outcome>(r)) {
        let o: Outcome;
        try {
          o = await r;
        } catch (err) {
          this.throwIfClosed();
          throw err;
        }
        this.throwIfClosed();
        out[i] = o;
      } else out[i] = r;
      if (slice !== undefined && (i & 31) === 31 && performance.now() - since >= slice) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        this.throwIfClosed();
        since = performance.now();
      }
    }
    return out;
  }

  /** Closes the plugin steps (each once; errors ignored). */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.steps.splice(0)) {
      try {
        await s.close?.();
      } catch {
        // a transform's close must not throw; nothing to do if it does
      }
    }
  }

  /** A closed chain has no steps left: a batch it was running must not go on as if it had none. */
  private throwIfClosed(): void {
    if (this.closed) throw new Error('the transform chain was closed while a batch was running through it');
  }

  private async continueAsync(
    w: Working,
    at: number,
    pending: Promise<void | typeof DROP>,
    encoder: Encoder | undefined,
  ): Promise<Outcome> {
    let i = at;
    try {
      if ((await pending) === DROP) return { status: 'drop', step: i };
      for (i = at + 1; i < this.steps.length; i++) {
        if ((await this.steps[i]!.fn(w)) === DROP) return { status: 'drop', step: i };
      }
    } catch (err) {
      return this.failed(i, err);
    }
    return this.kept(w, encoder);
  }

  private kept(w: Working, encoder: Encoder | undefined): Outcome {
    let message: Message;
    let changed: boolean;
    try {
      ({ message, changed } = w.finish(encoder?.encode));
    } catch (err) {
      return this.failed(this.steps.length - 1, err);
    }
    return w.station === undefined ? { status: 'keep', message, changed } : { status: 'keep', message, changed, station: w.station };
  }

  private failed(i: number, err: unknown): Outcome {
    const reason = err instanceof Error ? err.message : String(err);
    return { status: 'fail', error: new TransformFailed(i, this.steps[i]!.label, reason, err) };
  }
}

function noContext(): TransformContext {
  const noop = (): void => {};
  const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop, child: () => logger };
  return {
    logger,
    connector: 'transforms',
    task: 0,
    metrics: { counter: () => ({ inc: noop }), histogram: () => ({ observe: noop }) },
  };
}
