/**
 * The S3 source on s3rver with the real AWS SDK: the conformance kit, every format and layout of the
 * S3 sink read back, plain JSON Lines from elsewhere, resuming, and the round trip sink → source
 * byte for byte.
 */
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SinkMessage, Source, SourceMessage } from '@junction/sdk-connector';
import { assertConformance, fakeContext, runSourceConformance, sourceConformanceSuite } from '@junction/sdk-connector/testing';
import sinkPlugin from '@junction/connector-s3';
import plugin, { msgIdFor, type S3SourcePosition } from '../src/index.js';
import { startS3rver, type S3rverProcess } from '../../../test/fakes/s3rver.js';

let server: S3rverProcess;
let client: S3Client;
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const signal = new AbortController().signal;
const buckets: Record<string, string> = {};
let seq = 0;

function conn(bucket: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    bucket,
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...CREDENTIALS },
    checksums: 'when-required',
    ...extra,
  };
}

async function newBucket(): Promise<string> {
  const bucket = `src-${process.pid}-${Date.now().toString(36)}-${seq++}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** Messages of a station as the broker would hand them to the sink: keys, headers, any bytes. */
function station(partition: number, n: number, value: (o: number) => Uint8Array<ArrayBuffer>): SinkMessage[] {
  return Array.from({ length: n }, (_, i) => {
    const offset = i + 1;
    return {
      offset,
      timestamp: Date.UTC(2025, 0, 1, 10, 59, 0) + offset * 1000 + partition,
      ...(offset % 3 ? { key: `user-${offset % 7}` } : {}),
      headers: (offset % 2 ? { 'content-type': 'application/json', trace: `t-${partition}-${offset}` } : {}) as Record<string, string>,
      value: value(offset),
    };
  });
}

const jsonValue = (p: number) => (o: number) =>
  new TextEncoder().encode(`{"p":${p},"o":${o},"g":${o % 4},"name":"héllo ✓ ${o}","n":[1, 2.50]}`) as Uint8Array<ArrayBuffer>;

/** Writes partitions 0 and 1 of station `st` through the sink, in batches of `per`. */
async function sinkInto(
  bucket: string,
  extra: Record<string, unknown>,
  value: (p: number) => (o: number) => Uint8Array<ArrayBuffer>,
  n = 120,
  per = 50,
  st = 'orders',
): Promise<SinkMessage[][]> {
  const sink = await sinkPlugin.open(sinkPlugin.config.parse(conn(bucket, extra)), fakeContext());
  const parts: SinkMessage[][] = [];
  try {
    for (const p of [0, 1]) {
      const msgs = station(p, n, value(p));
      parts.push(msgs);
      for (let i = 0; i < msgs.length; i += per) {
        const messages = msgs.slice(i, i + per);
        const results = await sink.write(
          {
            station: st,
            stationId: `${st}-id`,
            partition: p,
            firstOffset: messages[0]!.offset,
            lastOffset: messages.at(-1)!.offset,
            messages,
          },
          { signal },
        );
        expect(results.every((r) => r.status === 'ok')).toBe(true);
      }
    }
  } finally {
    await sink.close();
  }
  return parts;
}

async function openSource(config: Record<string, unknown>, position?: S3SourcePosition): Promise<Source<S3SourcePosition>> {
  return plugin.open(plugin.config.parse(config), fakeContext<S3SourcePosition>(position === undefined ? {} : { position }));
}

/** Everything the source yields until it ends (or `max` messages), with the batches' positions. */
async function drain(
  source: Source<S3SourcePosition>,
  max = Number.POSITIVE_INFINITY,
): Promise<{ messages: SourceMessage[]; positions: S3SourcePosition[] }> {
  const ac = new AbortController();
  const messages: SourceMessage[] = [];
  const positions: S3SourcePosition[] = [];
  for await (const b of source.read(ac.signal)) {
    messages.push(...b.messages);
    positions.push(b.position);
    if (messages.length >= max) break;
  }
  ac.abort();
  await source.close();
  return { messages, positions };
}

const text = (v: Uint8Array) => Buffer.from(v).toString('utf8');

beforeAll(async () => {
  server = await startS3rver();
  client = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...CREDENTIALS },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  buckets.kit = await newBucket();
  await sinkInto(buckets.kit, { compression: 'gzip', rotate: { maxMessages: 17 } }, jsonValue);
  buckets.kitParquet = await newBucket();
  await sinkInto(buckets.kitParquet, { format: 'parquet', compression: 'zstd', parquet: { rowGroupSize: 13 } }, jsonValue);
});
afterAll(async () => {
  client?.destroy();
  await server?.close();
});

// Config getters: the server's port is known only once beforeAll ran.
sourceConformanceSuite(
  { describe, it },
  {
    plugin,
    get config() {
      return conn(buckets.kit as string, { batchSize: 20 });
    },
    batches: 4,
    resume: 'exact',
    timeoutMs: 20_000,
  },
);

describe('s3 source conformance on Parquet', () => {
  it('passes, resuming exactly inside row groups', async () => {
    assertConformance(
      await runSourceConformance({
        plugin,
        config: conn(buckets.kitParquet as string, { batchSize: 9 }),
        batches: 5,
        resume: 'exact',
        timeoutMs: 20_000,
      }),
    );
  });
});

describe('round trip sink → source', () => {
  const cases: [string, Record<string, unknown>, (p: number) => (o: number) => Uint8Array<ArrayBuffer>][] = [
    ['jsonl json + gzip', {}, jsonValue],
    ['jsonl json + zstd, time layout', { compression: 'zstd', path: { layout: 'time', format: "'hour'=YYYY-MM-dd-HH/mm" } }, jsonValue],
    ['jsonl json, field layout', { compression: 'none', path: { layout: 'field', field: 'g' } }, jsonValue],
    // Any bytes at all: invalid UTF-8, newlines, empty values.
    [
      'jsonl string + zstd',
      { compression: 'zstd', jsonl: { value: 'string' } },
      (p) => (o) => new Uint8Array([p, o % 256, 0xff, 0x0a, 0x00, ...(o % 5 ? [0xc3, 0x28] : [])]) as Uint8Array<ArrayBuffer>,
    ],
    [
      'raw + gzip',
      { format: 'raw', raw: { separator: '\u0000\u241e' } },
      (p) => (o) => new TextEncoder().encode(`raw ${p}/${o}\nwith a newline`) as Uint8Array<ArrayBuffer>,
    ],
  ];
  for (const [name, extra, value] of cases) {
    it(`${name}: every message back, byte for byte, with keys and headers, each once`, async () => {
      const bucket = await newBucket();
      const parts = await sinkInto(bucket, { ...extra, rotate: { maxMessages: 23 } }, value);
      const { messages } = await drain(await openSource(conn(bucket, { batchSize: 37 })));
      const expected = parts.flat();
      expect(messages).toHaveLength(expected.length);
      const got = new Map(messages.map((m) => [Buffer.from(m.value).toString('hex'), m]));
      expect(got.size).toBe(expected.length);
      for (const e of expected) {
        const m = got.get(Buffer.from(e.value).toString('hex'));
        expect(m, `value of offset ${e.offset}`).toBeDefined();
        if (name.startsWith('raw')) continue; // raw objects carry values only
        expect(m?.key).toBe(e.key);
        expect(m?.headers ?? {}).toEqual(e.headers);
      }
      // Within a partition, order is kept (layouts that do not reorder by value).
      if (!name.includes('field')) {
        for (const p of [0, 1]) {
          const ofP = messages.filter((m) => (parts[p] as SinkMessage[]).some((e) => Buffer.from(e.value).equals(Buffer.from(m.value))));
          expect(ofP.map((m) => Buffer.from(m.value).toString('hex'))).toEqual(
            (parts[p] as SinkMessage[]).map((e) => Buffer.from(e.value).toString('hex')),
          );
        }
      }
      expect(new Set(messages.map((m) => m.msgId)).size).toBe(messages.length);
    });
  }

  it('parquet + snappy: every row back as the same JSON object', async () => {
    const bucket = await newBucket();
    const parts = await sinkInto(bucket, { format: 'parquet', compression: 'snappy' }, jsonValue);
    const { messages } = await drain(await openSource(conn(bucket)));
    const want = parts.flat().map((m) => JSON.parse(text(m.value)));
    expect(messages.map((m) => JSON.parse(text(m.value)))).toEqual(want);
    expect(messages.map((m) => m.key)).toEqual(parts.flat().map((m) => m.key));
  });

  it('a large zstd object (several frames) reads back whole', async () => {
    const bucket = await newBucket();
    const big = (p: number) => (o: number) =>
      new TextEncoder().encode(JSON.stringify({ p, o, pad: `${o}`.repeat(300) })) as Uint8Array<ArrayBuffer>;
    const parts = await sinkInto(
      bucket,
      { compression: 'zstd', upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 } },
      big,
      9000,
      9000,
    );
    const { messages } = await drain(await openSource(conn(bucket, { batchSize: 5000 })));
    expect(messages.map((m) => text(m.value))).toEqual(parts.flat().map((m) => text(m.value)));
  });
});

describe('position and resume', () => {
  it('restarting from a stored position mid-object goes on with the next record: no gap, no repeat', async () => {
    const bucket = buckets.kit as string;
    const all = (await drain(await openSource(conn(bucket, { batchSize: 10 })))).messages;
    const first = await drain(await openSource(conn(bucket, { batchSize: 10 })), 25);
    // Three batches of 10 were read; the runtime stored the third batch's position.
    const stored = first.positions[2] as S3SourcePosition;
    expect(stored.complete).toBe(false);
    const rest = (await drain(await openSource(conn(bucket, { batchSize: 7 }), stored))).messages;
    expect([...first.messages.slice(0, 30), ...rest].map((m) => m.msgId)).toEqual(all.map((m) => m.msgId));
    // The first object of partition 0: offsets 1-17 (rotated at 17 messages), its key naming them.
    expect(all[0]?.msgId).toMatch(
      /^orders\/0\/orders\+0\+00000000000000000001-00000000000000000017\+orders-id\+[0-9a-z]{10}\.jsonl\.gz#0$/,
    );
  });

  it('skips the sink ledger and folder keys; an empty prefix reads from the bucket root', async () => {
    const bucket = buckets.kit as string;
    const { messages } = await drain(await openSource(conn(bucket)));
    expect(messages.every((m) => !(m.msgId ?? '').includes('_junction'))).toBe(true);
    expect(messages).toHaveLength(240);
  });

  it('with pollIntervalMs it keeps going and picks up keys after its position', async () => {
    const bucket = await newBucket();
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'in/a.jsonl', Body: '{"a":1}\n' }));
    const source = await openSource(conn(bucket, { prefix: 'in', pollIntervalMs: 100 }));
    const ac = new AbortController();
    const got: string[] = [];
    const reader = (async () => {
      for await (const b of source.read(ac.signal)) {
        got.push(...b.messages.map((m) => text(m.value)));
        if (got.length === 2) ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'in/b.jsonl', Body: '{"b":2}' }));
    await reader;
    await source.close();
    expect(got).toEqual(['{"a":1}', '{"b":2}']);
  });
});

describe('plain JSON Lines written by anyone', () => {
  it('each line is a value (CRLF, no final newline, blank lines skipped); gzip by suffix; msgId = key#line', async () => {
    const bucket = await newBucket();
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'logs/2025/01.ndjson', Body: '{"x":1}\r\n\n{"x":2}' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'logs/2025/02.jsonl.gz', Body: gzipSync('{"y":1}\n{"y":2}\n') }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'other/ignored.jsonl', Body: '{"z":1}\n' }));
    const { messages } = await drain(await openSource(conn(bucket, { prefix: 'logs/' })));
    expect(messages.map((m) => [text(m.value), m.msgId])).toEqual([
      ['{"x":1}', 'logs/2025/01.ndjson#0'],
      ['{"x":2}', 'logs/2025/01.ndjson#2'],
      ['{"y":1}', 'logs/2025/02.jsonl.gz#0'],
      ['{"y":2}', 'logs/2025/02.jsonl.gz#1'],
    ]);
  });

  it('a missing bucket or wrong credentials fail open with a clear, non-retryable error', async () => {
    await expect(openSource(conn('no-such-bucket-src'))).rejects.toMatchObject({ code: 'NOT_FOUND', retryable: false });
    await expect(
      openSource(conn(buckets.kit as string, { credentials: { accessKeyId: 'WRONG', secretAccessKey: 'x' } })),
    ).rejects.toMatchObject({ code: 'AUTH_FAILED', retryable: false });
  });

  it('msgIds stay within the broker limit for very long keys', () => {
    expect(msgIdFor('k'.repeat(1030), 12)).toMatch(/^sha256:[0-9a-f]{64}#12$/);
  });
});
