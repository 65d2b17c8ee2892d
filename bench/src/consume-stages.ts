/**
 * Where the CPU of HTTP consume goes, stage by stage, in one process (`node bench/dist/consume-stages.js
 * [messages] [chunks|deliveries|both]`, default 200,000 × 1 KiB, both). An embedded store (file storage, fsync always, as `junction start`)
 * gets a backlog; then batches of 1000 go through each stage of the consume path in turn, and each stage's
 * CPU time (process.cpuUsage: user + system) is summed over all batches and divided by the messages:
 *
 * - broker `store.fetch`: read from the log, group bookkeeping (deliveries, timers, journal entry);
 *   `store.fetchChunks` with `chunks` (what the binary fetch route calls), `store.fetch` with `deliveries`
 * - broker encode: the binary fetch answer (`encodePackedMessageBatch` of the chunks, what the route sends;
 *   `encodeMessageBatch` of the deliveries with `deliveries`, what it sent before)
 * - client decode: `decodeMessageBatch` of that answer, and the ack body (`JSON.stringify` of the ids)
 * - broker ack body: `JSON.parse` + zod `AckBody` (what the route does before the store)
 * - broker `store.ack`: locate each id, settle, journal (fsync)
 *
 * What the bench's broker CPU row holds beyond their sum is HTTP and fastify (parsing, routing, hooks,
 * writing the answer to the socket) and GC of the request objects. Prints one JSON object.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '@junction/broker';
import { AckBody, decodeMessageBatch, encodeMessageBatch, encodePackedMessageBatch } from '@junction/protocol';
import { payload } from './plan.js';

const total = Number(process.argv[2] ?? 200_000);
const PATHS = ['chunks', 'deliveries'] as const;
type Path = (typeof PATHS)[number];
const only = process.argv[3];
if (only !== undefined && only !== 'both' && !(PATHS as readonly string[]).includes(only))
  throw new Error('usage: consume-stages.js [messages] [chunks|deliveries|both]');
// `both`: two groups read the same backlog, batch by batch in turn, so that both paths see the same load.
const paths: Path[] = only === undefined || only === 'both' ? [...PATHS] : [only as Path];
const BATCH = 1000;
const dir = mkdtempSync(join(tmpdir(), 'junction-consume-stages-'));
const stages = ['store.fetch', 'encode answer', 'client decode', 'client ack body', 'ack body parse+zod', 'store.ack'] as const;
const cpu = new Map<Path, Record<string, number>>(paths.map((p) => [p, Object.fromEntries(stages.map((s) => [s, 0]))]));
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

const store = new EmbeddedStore({ dataDir: dir, fsync: 'always' });

/** One batch through every stage on `path`; resolves with how many messages it carried. */
async function oneBatch(path: Path): Promise<number> {
  const spent = cpu.get(path)!;
  async function timed<T>(stage: (typeof stages)[number], f: () => T | Promise<T>): Promise<T> {
    const t = cpuNow();
    const out = await f();
    spent[stage]! += cpuNow() - t;
    return out;
  }
  const options = { maxMessages: BATCH, maxBytes: 64 << 20, waitMs: 0 };
  let answer: Buffer;
  if (path === 'chunks') {
    const chunks = await timed('store.fetch', () => store.fetchChunks('stages', path, options));
    if (chunks.length === 0) return 0;
    answer = await timed('encode answer', () => encodePackedMessageBatch(chunks));
  } else {
    const deliveries = await timed('store.fetch', () => store.fetch('stages', path, options));
    if (deliveries.length === 0) return 0;
    answer = await timed('encode answer', () => encodeMessageBatch(deliveries));
  }
  const decoded = await timed('client decode', () => decodeMessageBatch(answer));
  const ackBody = await timed('client ack body', () => JSON.stringify({ deliveryIds: decoded.map((m) => m.deliveryId), summary: true }));
  const parsed = await timed('ack body parse+zod', () => AckBody.parse(JSON.parse(ackBody)));
  const outcomes = await timed('store.ack', () => store.ack('stages', path, parsed.deliveryIds));
  if (outcomes.some((o) => o.status !== 'acked')) throw new Error('an ack was not acked');
  return decoded.length;
}

try {
  await store.open();
  await store.createStation('stages', { partitions: 1, retention: {} });
  const value = payload(1024);
  const batch = Array.from({ length: BATCH }, () => ({ value }));
  for (let n = 0; n < total; n += BATCH) await store.produce('stages', batch);
  const done = new Map<Path, number>(paths.map((p) => [p, 0]));
  // The paths take turns going first: the second reader of a range may find it in the log's read cache.
  for (let more = true, turn = 0; more; turn++) {
    more = false;
    for (const p of turn % 2 === 0 ? paths : [...paths].reverse()) {
      const n = await oneBatch(p);
      done.set(p, done.get(p)! + n);
      if (n > 0) more = true;
    }
  }
  const out: Record<string, unknown> = { messages: total, valueBytes: value.length };
  for (const p of paths) {
    if (done.get(p) !== total) throw new Error(`${p}: consumed ${done.get(p)} of ${total}`);
    const spent = cpu.get(p)!;
    out[p] = Object.fromEntries(stages.map((s) => [s, Math.round((spent[s]! / total) * 1000) / 1000]));
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
