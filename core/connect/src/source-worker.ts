/**
 * The worker entry for a source task: a dedicated worker_threads Worker per task (not a piscina
 * task). A source's `read()` is one long-lived async iterable with state of its own, pulled batch by
 * batch; a piscina task is a request/answer unit and a never-ending one would hold a pool thread for
 * good anyway. A Worker of its own gives the task a lifetime (open → read… → close), a channel both
 * ways (next / commit / stop and batches back) and `terminate()` + `resourceLimits` for isolation.
 *
 * Protocol: the main thread posts `next` when it has room (at most one batch is read ahead of the one
 * being produced), `commit` after it stored the positions durably, `stop` to close.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { parseConfig, serializeError } from '@junction/sdk-connector';
import type { JsonValue, SerializedError, Source, SourceBatch, SourceMessage } from '@junction/sdk-connector';
import type { Pipeline } from '@junction/transforms';
import { loadPlugin, openChain, pluginLogger, WorkerMetrics } from './worker-common.js';
import type { FromSourceWorker, PackedSourceMessage, SourceWorkerData, ToSourceWorker } from './wire.js';

const data = workerData as SourceWorkerData;
const port = parentPort!;
const metrics = new WorkerMetrics();
const ac = new AbortController();
let source: Source | undefined;
let transforms: Pipeline | undefined;
let iterator: AsyncIterator<SourceBatch> | undefined;
let chain: Promise<void> = Promise.resolve();
let stopped = false;

function post(msg: FromSourceWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

async function open(): Promise<void> {
  try {
    const plugin = await loadPlugin(data.entry);
    if (plugin.kind !== 'source') throw new Error(`plugin ${plugin.manifest.name} is a ${plugin.kind}, not a source`);
    const config = parseConfig(plugin.config, data.config, 'config');
    const ctx = {
      logger: pluginLogger(data.logLevel, data.connector, data.task),
      connector: data.connector,
      task: data.task,
      metrics: metrics.forTask(data.connector, data.task),
    };
    transforms = await openChain(data.transforms, ctx);
    source = await plugin.open(config, {
      logger: pluginLogger(data.logLevel, data.connector, data.task),
      connector: data.connector,
      task: data.task,
      metrics: metrics.forTask(data.connector, data.task),
      position: data.position as JsonValue | undefined,
    });
    iterator = source.read(ac.signal)[Symbol.asyncIterator]();
    post({ type: 'opened' });
  } catch (err) {
    post({ type: 'error', error: serializeError(err), phase: 'open' });
  }
}

async function next(): Promise<void> {
  if (!iterator || stopped) return;
  const started = performance.now();
  try {
    const r = await iterator.next();
    if (stopped) return;
    if (r.done) {
      post({ type: 'end', metrics: metrics.drain(data.connector) });
      return;
    }
    const batch = r.value;
    let out: readonly (SourceMessage & { station?: string | undefined })[] = batch.messages;
    let dropped = 0;
    const failed: { error: SerializedError; value: Uint8Array; key?: string | undefined; headers?: Record<string, string> | undefined }[] =
      [];
    const chainNow = transforms;
    if (chainNow) {
      // Transforms after the read: a dropped message is not produced (its position advances with the batch).
      const now = Date.now();
      const kept: (SourceMessage & { station?: string | undefined })[] = [];
      for (const m of batch.messages) {
        const o = await chainNow.runOne({ value: m.value, key: m.key, headers: m.headers ?? {}, timestamp: now });
        if (o.status === 'drop') dropped++;
        else if (o.status === 'fail') {
          // errors.tolerance none: the task fails (the runner restarts it from the last stored position).
          if (data.transforms!.onFailure === 'fail') throw o.error;
          failed.push({
            error: serializeError(o.error),
            value: m.value.slice(),
            key: m.key,
            headers: m.headers as Record<string, string> | undefined,
          });
        } else if (!o.changed && o.station === undefined) kept.push(m);
        else kept.push({ value: o.message.value, key: o.message.key, headers: o.message.headers, msgId: m.msgId, station: o.station });
      }
      out = kept;
    }
    let total = 0;
    for (const m of out) total += m.value.byteLength;
    const buf = new ArrayBuffer(total);
    const bytes = new Uint8Array(buf);
    const messages: PackedSourceMessage[] = new Array(out.length);
    let pos = 0;
    for (let i = 0; i < out.length; i++) {
      const m = out[i]!;
      bytes.set(m.value, pos);
      pos += m.value.byteLength;
      messages[i] = { key: m.key, headers: m.headers as Record<string, string> | undefined, msgId: m.msgId, len: m.value.byteLength };
      if (m.station !== undefined) messages[i]!.station = m.station;
    }
    const extra = chainNow ? { dropped, ...(failed.length > 0 && { failed }) } : {};
    post(
      {
        type: 'batch',
        buf,
        messages,
        position: batch.position,
        pluginMs: performance.now() - started,
        metrics: metrics.drain(data.connector),
        ...extra,
      },
      [buf],
    );
  } catch (err) {
    if (!stopped) post({ type: 'error', error: serializeError(err), phase: 'read' });
  }
}

async function commit(positions: JsonValue[]): Promise<void> {
  if (!source) return;
  try {
    await source.commit(positions);
  } catch (err) {
    post({ type: 'error', error: serializeError(err), phase: 'commit' });
  }
}

async function stop(): Promise<void> {
  stopped = true;
  ac.abort();
  try {
    await transforms?.close();
    await source?.close();
  } catch {
    // close must not throw; if it does there is nothing left to do about it
  }
  post({ type: 'closed' });
  // Let the thread end: nothing else will come.
  port.close();
}

port.on('message', (msg: ToSourceWorker) => {
  // `next` runs beside commits (reading ahead while the runtime commits); commits and stop keep their order.
  if (msg.type === 'next') void next();
  else if (msg.type === 'commit') chain = chain.then(() => commit(msg.positions));
  else chain = chain.then(stop);
});

void open();
