// Benchmark of the S3 sink against s3rver, beside a raw lib-storage upload of the same bytes to the
// same server. Run by hand after `npx tsc -b connectors/s3`:
//   node connectors/s3/scripts/bench.mjs [messages=100000] [batch=10000]
// `benchS3Sink(options)` is exported so the repository bench can add these rows later.
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const here = (p) => new URL(p, import.meta.url).href;

/**
 * `n` JSON events of exactly `size` bytes that look like real ones (ids, users, amounts, a note of random
 * words), so gzip and parquet do real work; every one distinct. Also the repository bench's S3 events.
 */
export function events(n, size = 1024) {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];
  const enc = new TextEncoder();
  let seed = 42;
  // mulberry32: 32-bit integer steps (Math.imul). The LCG this replaces multiplied in doubles, lost the low
  // bits past 2^53 and repeated after ~1,800 events, so Parquet dictionary-encoded the notes.
  const rnd = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const out = [];
  for (let o = 1; o <= n; o++) {
    const base = {
      id: o,
      user: `user-${Math.floor(rnd() * 100000)}`,
      amount: Math.round(rnd() * 100000) / 100,
      ok: rnd() > 0.5,
      ts: 1_700_000_000_000 + o,
    };
    // The note fills what the other fields leave (its words are plain ASCII: a character is a byte).
    const budget = size - JSON.stringify({ ...base, note: '' }).length;
    let note = '';
    while (note.length < budget) note += `${words[Math.floor(rnd() * words.length)]}-${Math.floor(rnd() * 1000)} `;
    out.push({
      offset: o,
      timestamp: 1_700_000_000_000 + o,
      key: `user-${o % 1000}`,
      headers: {},
      value: enc.encode(JSON.stringify({ ...base, note: note.slice(0, Math.max(0, budget)) })),
    });
  }
  return out;
}

/**
 * The reference: the same value bytes (one object per `batch` messages, newline-joined, uncompressed)
 * through lib-storage alone, one object after another — the limit of the server and the SDK. The first
 * `warmup` messages go up untimed; `meter` as in {@link benchS3Sink}. Resolves with the timed seconds,
 * the stored bytes and, with a meter, the CPU.
 */
export async function rawUpload({ client, bucket, messages, batch, warmup = 0, meter }) {
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const bodies = [];
  for (let i = 0; i < messages.length; i += batch)
    bodies.push(Buffer.concat(messages.slice(i, i + batch).flatMap((m) => [m.value, Buffer.from('\n')])));
  let t0 = performance.now();
  let stop = meter?.();
  for (const [i, body] of bodies.entries()) {
    if (warmup > 0 && i * batch === warmup) {
      t0 = performance.now();
      stop = meter?.();
    }
    await new Upload({
      client,
      params: { Bucket: bucket, Key: `raw/${i}.jsonl`, Body: body },
      partSize: 8 * 1024 * 1024,
      queueSize: 4,
    }).done();
  }
  const secs = (performance.now() - t0) / 1000;
  return { secs, cpu: stop?.(messages.length - warmup), objectBytes: bodies.reduce((s, b) => s + b.length, 0) };
}

/**
 * Writes `messages` through the sink in batches of `batch` (one partition, batches one after another,
 * as the runtime does), config by config, then uploads the same bytes with {@link rawUpload}. Resolves
 * with a row of results each. `warmup`: that many messages (whole batches) are written untimed first;
 * only the rest count. `meter`, when given, is called when the timed part of each sink row starts and
 * returns a function called with the message count when it ends; what that returns is the row's `cpu`.
 * `raw: false` leaves out the reference row, for a caller that times its own.
 */
export async function benchS3Sink({ endpoint, messages, batch, configs, warmup = 0, meter, raw = true }) {
  if (warmup % batch !== 0) throw new Error(`warmup ${warmup} is not a whole number of batches of ${batch}`);
  const { S3SinkConfig } = await import(here('../dist/index.js'));
  const { S3Sink } = await import(here('../dist/sink.js'));
  const { createS3Client } = await import(here('../dist/client.js'));
  const noop = () => {};
  const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop, child: () => logger };
  const counters = new Map();
  const metrics = {
    counter: (name) => ({ inc: (n = 1) => counters.set(name, (counters.get(name) ?? 0) + n) }),
    histogram: () => ({ observe: noop }),
  };
  const conn = {
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    checksums: 'when-required',
  };
  const admin = new S3Client({
    ...conn,
    credentials: { ...conn.credentials },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const valueBytes = messages.slice(warmup).reduce((s, m) => s + m.value.byteLength, 0);
  const timedMessages = messages.length - warmup;
  const rows = [];
  for (const [name, extra] of configs) {
    const bucket = `bench-${Date.now().toString(36)}-${rows.length}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    counters.clear();
    const { partitions: _p, ...sinkExtra } = extra;
    const config = S3SinkConfig.parse({ ...conn, credentials: { ...conn.credentials }, bucket, ...sinkExtra });
    const sink = new S3Sink(createS3Client(config), config, { logger, metrics, connector: 'bench', task: 0 });
    const signal = new AbortController().signal;
    const partitions = extra.partitions ?? 1;
    if (warmup > 0 && partitions !== 1) throw new Error('warmup needs one partition');
    let t0 = performance.now();
    let stop = meter?.();
    // Partitions are written side by side (as the runtime may); batches of one partition one after another.
    await Promise.all(
      Array.from({ length: partitions }, async (_, p) => {
        for (let i = p * batch; i < messages.length; i += batch * partitions) {
          if (warmup > 0 && i === warmup) {
            t0 = performance.now();
            stop = meter?.();
          }
          const ms = messages.slice(i, i + batch);
          const results = await sink.write(
            { station: 'bench', stationId: 'bench-1', partition: p, firstOffset: ms[0].offset, lastOffset: ms.at(-1).offset, messages: ms },
            { signal },
          );
          if (!results.every((r) => r.status === 'ok'))
            throw new Error(`${name}: not ok: ${JSON.stringify(results.find((r) => r.status !== 'ok'))}`);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const cpu = stop?.(timedMessages);
    await sink.close();
    rows.push({
      name,
      cpu,
      msgsPerSec: timedMessages / secs,
      valueMBps: valueBytes / secs / 1e6,
      objectMB: (counters.get('bytes_written_total') ?? 0) / 1e6,
      secs,
      messages: timedMessages,
    });
  }
  if (raw) {
    const { secs, objectBytes } = await rawUpload({
      client: admin,
      bucket: `bench-raw-${Date.now().toString(36)}`,
      messages,
      batch,
      warmup,
    });
    rows.push({
      name: 'raw lib-storage upload (same value bytes, uncompressed)',
      msgsPerSec: timedMessages / secs,
      valueMBps: valueBytes / secs / 1e6,
      objectMB: objectBytes / 1e6,
      secs,
      messages: timedMessages,
    });
  }
  admin.destroy();
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 100_000);
  const batch = Number(process.argv[3] ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'bench-s3rver-'));
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', new URL('../../../test/fakes/s3rver-main.mjs', import.meta.url).pathname, dir],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(JSON.parse(d.toString()).port)));
  const server = { endpoint: `http://127.0.0.1:${port}` };
  try {
    const messages = events(n);
    const rows = await benchS3Sink({
      endpoint: server.endpoint,
      messages,
      batch,
      configs: [
        ['jsonl + gzip', { compression: 'gzip' }],
        ['jsonl + gzip level 1', { compression: 'gzip', compressionLevel: 1 }],
        ['jsonl + zstd', { compression: 'zstd' }],
        ['jsonl + none', { compression: 'none' }],
        ['jsonl + gzip, 4 partitions side by side', { compression: 'gzip', partitions: 4 }],
        ['parquet + snappy', { format: 'parquet', compression: 'snappy' }],
        ['parquet + zstd', { format: 'parquet', compression: 'zstd' }],
      ],
    });
    console.log(`${n} messages of ${messages[0].value.byteLength} bytes, batches of ${batch}, one partition, node ${process.version}`);
    for (const r of rows)
      console.log(
        `${r.name.padEnd(58)} ${Math.round(r.msgsPerSec).toString().padStart(8)} msgs/s ${r.valueMBps.toFixed(1).padStart(7)} MB/s  (${r.objectMB.toFixed(1)} MB stored, ${r.secs.toFixed(2)} s)`,
      );
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
