/**
 * The piscina worker entry for sinks. Keeps each opened sink in module state, per (connector, config
 * hash, task): it opens lazily on the first batch, is reused by later batches, and is closed by a
 * `close` task (or when a batch comes with another config hash). Answers are plain data: results
 * checked here with `checkWriteResults` (a broken answer comes back as its PLUGIN_INVALID error) and,
 * when every message is ok, sent as their count only; errors as `serializeError`.
 */
import { threadId } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { performance } from 'node:perf_hooks';
import { checkWriteResults, parseConfig, serializeError } from '@junction/sdk-connector';
import type { Sink, SinkBatch, SinkMessage, StationSchemaInfo, WriteResult } from '@junction/sdk-connector';
import type { Pipeline } from '@junction/transforms';
import { loadPlugin, pluginLogger, WorkerMetrics, openChain, applyChain } from './worker-common.js';
import { PACKED_FIELDS } from './wire.js';
import type { PackedBatch, SinkCloseTask, SinkTask, SinkWriteAnswer, SinkWriteTask } from './wire.js';

interface Opened {
  connector: string;
  task: number;
  configHash: string;
  /** The sink, once it and the chain are open (rejects if either failed). */
  sink: Promise<Sink>;
  /** The sink's own open (what close closes). */
  raw: Promise<Sink>;
  /** The connector's transforms, opened beside the sink (undefined: none). */
  chain: Promise<Pipeline | undefined>;
  /** The plugin's `manifest.keepsValues` once loaded (until then: true, the safe answer). */
  readonly plugin: { keepsValues: boolean };
}

const sinks = new Map<string, Opened>();
/** `Atomics.waitAsync` (in Node since 16; not in this TypeScript lib). */
const waitAsync = (
  Atomics as unknown as { waitAsync(a: Int32Array, index: number, value: number): { async: boolean; value: Promise<string> | string } }
).waitAsync;
const metrics = new WorkerMetrics();
type Applied = Awaited<ReturnType<typeof applyChain>>;

function unpack(b: PackedBatch, schema: StationSchemaInfo | undefined): SinkBatch {
  const nums = new Float64Array(b.nums);
  const headers = JSON.parse(b.headers) as Record<string, string>[];
  for (const h of headers) Object.freeze(h);
  const messages: SinkMessage[] = new Array(b.count);
  for (let i = 0; i < b.count; i++) {
    const o = i * PACKED_FIELDS;
    const msg: { offset: number; timestamp: number; key?: string; headers: Record<string, string>; value: Uint8Array<ArrayBuffer> } = {
      offset: nums[o]!,
      timestamp: nums[o + 1]!,
      headers: headers[nums[o + 4]!]!,
      value: new Uint8Array(b.buf, nums[o + 2]!, nums[o + 3]!),
    };
    const key = b.keys?.[i];
    if (key !== undefined) msg.key = key;
    messages[i] = msg;
  }
  const batch = {
    station: b.station,
    stationId: b.stationId,
    partition: b.partition,
    firstOffset: b.firstOffset,
    lastOffset: b.lastOffset,
    messages,
  };
  return schema === undefined ? batch : { ...batch, schema };
}

async function sinkFor(t: SinkWriteTask): Promise<Sink> {
  const key = `${t.connector}\u0000${t.task}`;
  const cur = sinks.get(key);
  // The same promise as before transforms existed: no extra await on the hot path.
  if (cur && cur.configHash === t.configHash) return cur.sink;
  if (cur) {
    sinks.delete(key);
    await closeOpened(cur);
  }
  const loaded = { keepsValues: true };
  const sink = (async () => {
    const plugin = await loadPlugin(t.entry);
    if (plugin.kind !== 'sink') throw new Error(`plugin ${plugin.manifest.name} is a ${plugin.kind}, not a sink`);
    loaded.keepsValues = plugin.manifest.keepsValues !== false;
    const config = parseConfig(plugin.config, t.config, 'config');
    return plugin.open(config, {
      logger: pluginLogger(t.logLevel, t.connector, t.task),
      connector: t.connector,
      task: t.task,
      metrics: metrics.forTask(t.connector, t.task),
      ...(t.schema !== undefined && { schema: t.schema }),
    });
  })();
  const hasChain = t.transforms !== undefined && t.transforms.steps.length > 0;
  const chain = hasChain
    ? openChain(t.transforms, {
        logger: pluginLogger(t.logLevel, t.connector, t.task),
        connector: t.connector,
        task: t.task,
        metrics: metrics.forTask(t.connector, t.task),
      })
    : Promise.resolve(undefined);
  const both = hasChain ? Promise.all([sink, chain]).then(([s]) => s) : sink;
  const opened: Opened = { connector: t.connector, task: t.task, configHash: t.configHash, sink: both, raw: sink, chain, plugin: loaded };
  sinks.set(key, opened);
  // A failed open is not kept: the next batch tries again (whatever did open is closed).
  both.catch(() => {
    if (sinks.get(key) === opened) sinks.delete(key);
    if (both !== sink) void closeOpened(opened);
  });
  return both;
}

/** The chain opened with the task's sink (call once `sinkFor` resolved: it is open then). */
function chainFor(t: SinkWriteTask): Promise<Pipeline | undefined> {
  return sinks.get(`${t.connector}\u0000${t.task}`)?.chain ?? Promise.resolve(undefined);
}

async function closeOpened(o: Opened): Promise<boolean> {
  await o.chain.then((c) => c?.close()).catch(() => {});
  return o.raw.then(
    async (s) => {
      await s.close();
      return true;
    },
    () => false,
  );
}

async function write(t: SinkWriteTask): Promise<SinkWriteAnswer> {
  const started = performance.now();
  const flags = new Int32Array(t.started);
  // The runtime gave the batch up (its connector stops) before it reached the plugin: answer skipped.
  const cancelled = (): boolean => flags.length > 1 && Atomics.load(flags, 1) !== 0;
  const ac = new AbortController();
  // The plugin's signal fires at writeTimeoutMs; the main thread terminates this worker a little later
  // if the plugin ignores it.
  const timer = setTimeout(() => ac.abort(new DOMException('write timed out', 'TimeoutError')), t.writeTimeoutMs);
  let clean = false;
  let waited = false;
  try {
    const batch = unpack(t.batch, t.schema);
    // With the task's chain already open (the steady state), the transforms run before the lookahead
    // wait: their CPU overlaps the previous write's I/O (a file sink's fsync). They are deterministic, so
    // a batch that then comes back skipped loses nothing but the work. Otherwise they run after the open.
    let applied: Applied | undefined;
    const cur = sinks.get(`${t.connector}\u0000${t.task}`);
    if (t.transforms && t.after && cur && cur.configHash === t.configHash) {
      const early = await cur.chain.catch(() => undefined);
      if (early) applied = await applyChain(early, batch.messages, t.transforms.onFailure);
    }
    if (t.after) {
      // Lookahead: this batch came while the previous write was running; it is unpacked, now wait.
      const prev = new Int32Array(t.after);
      if (Atomics.load(prev, 0) === 0) {
        waited = true;
        const w = waitAsync(prev, 0, 0);
        if (w.async) await w.value;
      }
      if (t.requireClean && Atomics.load(prev, 0) !== 1)
        return { skipped: true, waited, pluginMs: 0, metrics: metrics.drain(t.connector), threadId };
    }
    if (cancelled()) return { skipped: true, waited, pluginMs: 0, metrics: metrics.drain(t.connector), threadId };
    // Opened (or its open awaited) only now: a next whose predecessor did not end clean must come back
    // skipped, not with this open's error (the runtime would take it for the partition's answer).
    let sink: Sink;
    let chain: Pipeline | undefined;
    try {
      sink = await sinkFor(t);
      // Without transforms no await more than before (interleaving on a shared thread stays as it was).
      if (t.transforms && t.transforms.steps.length > 0) chain = await chainFor(t);
    } catch (err) {
      // A non-retryable error here means the sink cannot be used as configured: the runtime fails the task.
      return {
        error: serializeError(err),
        phase: 'open',
        waited,
        pluginMs: performance.now() - started,
        metrics: metrics.drain(t.connector),
        threadId,
      };
    }
    if (cancelled()) return { skipped: true, waited, pluginMs: 0, metrics: metrics.drain(t.connector), threadId };
    Atomics.store(flags, 0, Math.max(1, Date.now() - t.dispatchedAt + 1));
    timer.refresh();
    let results: WriteResult[];
    if (chain === undefined) {
      results = checkWriteResults(await sink.write(batch, { signal: ac.signal }), batch.messages.length);
    } else {
      applied ??= await applyChain(chain, batch.messages, t.transforms!.onFailure);
      if ('error' in applied) {
        // errors.tolerance none: the task fails (the batch goes back unwritten); see sink-answers.ts.
        return {
          error: serializeError(applied.error),
          phase: 'transform',
          waited,
          pluginMs: performance.now() - started,
          metrics: metrics.drain(t.connector),
          threadId,
        };
      }
      results = applied.results;
      if (applied.kept.length > 0) {
        // Offsets stay the batch's own (firstOffset..lastOffset): a dropped message's offset is written by no one and acked.
        const shown =
          applied.dropped.length > 0
            ? { ...batch, messages: applied.kept, dropped: applied.dropped }
            : { ...batch, messages: applied.kept };
        const written = checkWriteResults(await sink.write(shown, { signal: ac.signal }), applied.kept.length);
        for (let i = 0; i < written.length; i++) results[applied.index[i]!] = written[i]!;
      }
    }
    const pluginMs = performance.now() - started;
    const dropped = applied !== undefined && !('error' in applied) && applied.dropped.length > 0 ? { dropped: applied.dropped.length } : {};
    if (results.every((r) => r.status === 'ok')) {
      clean = true;
      const answer: SinkWriteAnswer = {
        okCount: results.length,
        waited,
        pluginMs,
        metrics: metrics.drain(t.connector),
        threadId,
        ...dropped,
      };
      // The plugin keeps no view of a value past its write, and no transform ran: the batch's memory goes
      // back to the runner for later batches (wire.ts `spare`).
      return chain === undefined && sinks.get(`${t.connector}\u0000${t.task}`)?.plugin.keepsValues === false
        ? handBack(answer, t.batch)
        : answer;
    }
    clean = results.every((r) => r.status !== 'retry');
    return { results, waited, pluginMs, metrics: metrics.drain(t.connector), threadId, ...dropped };
  } catch (err) {
    return {
      error: serializeError(err),
      phase: 'write',
      waited,
      pluginMs: performance.now() - started,
      metrics: metrics.drain(t.connector),
      threadId,
    };
  } finally {
    clearTimeout(timer);
    const settled = new Int32Array(t.settled);
    Atomics.store(settled, 0, clean ? 1 : 2);
    Atomics.notify(settled, 0);
  }
}

/** The answer with the batch's buffers in `spare`, transferred (not copied) to the main thread. */
function handBack(answer: SinkWriteAnswer, b: PackedBatch): SinkWriteAnswer {
  answer.spare = { buf: b.buf, nums: b.nums };
  const movable = { [Piscina.transferableSymbol]: [b.buf, b.nums], [Piscina.valueSymbol]: answer };
  return Piscina.move(movable as unknown as Parameters<typeof Piscina.move>[0]) as unknown as SinkWriteAnswer;
}

async function close(t: SinkCloseTask): Promise<{ closed: number; threadId: number }> {
  // A task's batches all run on one thread (its own, or its lane of the shared pool), so the close task
  // sent there reaches the thread that opened its sink. On a shared thread only that task's sink closes.
  let closed = 0;
  for (const [key, opened] of [...sinks]) {
    if (opened.connector !== t.connector || (t.task !== undefined && opened.task !== t.task)) continue;
    sinks.delete(key);
    try {
      if (await closeOpened(opened)) closed++;
    } catch {
      // A sink that failed to open has nothing to close; close() must not throw, but may.
    }
  }
  if (![...sinks.values()].some((o) => o.connector === t.connector)) metrics.forget(t.connector);
  return { closed, threadId };
}

export default function handle(t: SinkTask): Promise<unknown> {
  return t.op === 'write' ? write(t) : close(t);
}
