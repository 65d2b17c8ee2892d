/**
 * The S3 sink on s3rver (a real S3 server process) with the real AWS SDK. Bytes read back are
 * compared with what was written.
 */
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configJsonSchema, redact, type Sink, type SinkMessage, type WriteResult } from '@junction/sdk-connector';
import { fakeContext, type FakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { S3Sink, type S3SinkOptions } from '../src/sink.js';
import { createS3Client } from '../src/client.js';
import { S3SinkConfig } from '../src/config.js';
import { rawMember } from '../src/formats/index.js';
import {
  batch,
  dataKeys,
  getBytes,
  headMeta,
  listKeys,
  message,
  newBucket,
  plainBytes,
  range,
  readRecords,
  s3Client,
  signal,
  short,
  shortKeys,
  sinkConfig,
  span,
  startS3rver,
  type S3rverProcess,
  unfinished,
} from './helpers.js';

let server: S3rverProcess;
let client: S3Client;
const open: Sink[] = [];

beforeAll(async () => {
  server = await startS3rver();
  client = s3Client(server);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  client?.destroy();
  await server?.close();
});

async function sink(bucket: string, extra: Record<string, unknown> = {}, ctx: FakeContext = fakeContext()): Promise<Sink> {
  const s = await plugin.open(plugin.config.parse(sinkConfig(server, bucket, extra)), ctx);
  open.push(s);
  return s;
}

/** A sink over a client the test may wrap (middleware), bypassing open()'s bucket check. */
function sinkWith(
  c: S3Client,
  bucket: string,
  extra: Record<string, unknown> = {},
  ctx: FakeContext = fakeContext(),
  options: S3SinkOptions = {},
): Sink {
  const s = new S3Sink(c, S3SinkConfig.parse(sinkConfig(server, bucket, extra)), ctx, options);
  open.push(s);
  return s;
}

function statuses(results: WriteResult[]): string[] {
  return results.map((r) => r.status);
}

/** offset → times present, from the JSON Lines envelopes (or Parquet _offset) of every data object. */
async function offsetCounts(bucket: string): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (const { record } of await readRecords(client, bucket)) {
    const o = Number(record.offset ?? record._offset);
    counts.set(o, (counts.get(o) ?? 0) + 1);
  }
  return counts;
}

async function expectEachOnce(bucket: string, offsets: number[]): Promise<void> {
  const counts = await offsetCounts(bucket);
  expect([...counts.keys()].sort((a, b) => a - b)).toEqual(offsets);
  expect([...counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
}

const bin = new Uint8Array([0x00, 0xff, 0x80, 0x41, 0x0a]) as Uint8Array<ArrayBuffer>;

function mixed(): SinkMessage[] {
  return [
    message(1, { key: 'user-1', headers: { 'content-type': 'application/json' } }),
    message(2, { value: new TextEncoder().encode('{ "spaced" :  [1, 2.50, "héllo ✓"] }') }),
    message(3, { value: new TextEncoder().encode('{\n  "multi": "line"\n}') }),
    ...range(4, 50).map((o) => message(o, { key: `k${o % 5}`, headers: o % 2 ? { h: String(o) } : {} })),
  ];
}

describe('formats and compression', () => {
  for (const compression of ['gzip', 'zstd', 'none']) {
    it(`jsonl value json, ${compression}: envelope in field order, values byte for byte`, async () => {
      const bucket = await newBucket(client);
      const s = await sink(bucket, { compression });
      expect(statuses(await s.write(batch('orders', 0, mixed()), { signal })).every((x) => x === 'ok')).toBe(true);
      const keys = await dataKeys(client, bucket);
      const ext = compression === 'gzip' ? '.jsonl.gz' : compression === 'zstd' ? '.jsonl.zst' : '.jsonl';
      expect(keys).toEqual([
        expect.stringMatching(new RegExp(`^orders/0/orders\\+0\\+${span(1, 50)}\\+orders-id\\+[0-9a-z]{10}${ext.replaceAll('.', '\\.')}$`)),
      ]);
      const lines = (await plainBytes(client, bucket, keys[0] as string)).toString('utf8').split('\n');
      expect(lines.pop()).toBe('');
      expect(lines).toHaveLength(50);
      expect(lines[0]).toBe(
        '{"offset":1,"timestamp":1700000000001,"key":"user-1","headers":{"content-type":"application/json"},"value":{"n":1,"text":"message 1"}}',
      );
      // One-line JSON is kept as written; multi-line JSON is compacted to fit one line.
      expect(rawMember(lines[1] as string, 'value')).toBe('{ "spaced" :  [1, 2.50, "héllo ✓"] }');
      expect(rawMember(lines[2] as string, 'value')).toBe('{"multi":"line"}');
      for (const [i, line] of lines.entries())
        if (i > 2) expect(rawMember(line, 'value')).toBe(Buffer.from(mixed()[i]?.value as Uint8Array).toString());
      const meta = await headMeta(client, bucket, keys[0] as string);
      expect(meta).toMatchObject({
        'junction-format': 'jsonl;value=json;fields=offset,timestamp,key,headers',
        'junction-compression': compression,
        'junction-station': 'orders',
        'junction-partition': '0',
        'junction-first-offset': '1',
        'junction-last-offset': '50',
        'junction-count': '50',
        'junction-station-id': 'orders-id',
        'junction-attempt': expect.stringMatching(/^[0-9a-z]{10}$/),
      });
    });
  }

  it('jsonl value json dead-letters values that are not JSON, and writes around them', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket);
    const results = await s.write(
      batch('t', 0, [message(1), message(2, { value: new TextEncoder().encode('not json') }), message(3, { value: bin }), message(4)]),
      { signal },
    );
    expect(results).toEqual([
      { status: 'ok' },
      { status: 'deadLetter', code: 'SINK_REJECTED', reason: expect.stringContaining('not valid JSON') },
      { status: 'deadLetter', code: 'SINK_REJECTED', reason: expect.stringContaining('UTF-8') },
      { status: 'ok' },
    ]);
    await expectEachOnce(bucket, [1, 4]);
    // A replay dead-letters them again rather than taking them for written.
    expect(
      statuses(
        await s.write(batch('t', 0, [message(1), message(2, { value: new TextEncoder().encode('not json') }), message(4)]), { signal }),
      ),
    ).toEqual(['ok', 'deadLetter', 'ok']);
  });

  it('jsonl value string: text as a string, other bytes base64 with "base64": true; chosen fields only', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket, { jsonl: { value: 'string', fields: ['key', 'offset'] }, compression: 'none' });
    await s.write(batch('t', 0, [message(1, { key: 'a' }), message(2, { value: bin })]), { signal });
    const text = (await plainBytes(client, bucket, (await dataKeys(client, bucket))[0] as string)).toString();
    expect(text).toBe(
      `{"key":"a","offset":1,"value":${JSON.stringify('{"n":1,"text":"message 1"}')}}\n{"key":null,"offset":2,"base64":true,"value":"${Buffer.from(bin).toString('base64')}"}\n`,
    );
  });

  it('jsonl with value json and no fields: each line is the value itself', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket, { jsonl: { fields: [] }, compression: 'none' });
    await s.write(batch('t', 0, range(1, 3)), { signal });
    const text = (await plainBytes(client, bucket, (await dataKeys(client, bucket))[0] as string)).toString();
    expect(text).toBe(
      range(1, 3)
        .map((o) => `{"n":${o},"text":"message ${o}"}\n`)
        .join(''),
    );
  });

  for (const compression of ['gzip', 'zstd', 'snappy', 'none']) {
    it(`parquet, ${compression}: typed columns from the JSON values plus metadata columns`, async () => {
      const bucket = await newBucket(client);
      const s = await sink(bucket, { format: 'parquet', compression, parquet: { rowGroupSize: 7 } });
      const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)) as Uint8Array<ArrayBuffer>;
      const msgs = range(1, 20).map((o) =>
        message(o, {
          key: o % 2 ? `k${o}` : undefined,
          headers: { h: String(o) },
          value: enc({
            id: o,
            price: o + 0.5,
            name: `item ${o}`,
            ok: o % 3 === 0,
            tags: ['a', o],
            mixed: o % 2 ? 1 : 'x',
            ...(o % 4 ? { sparse: o } : {}),
          }),
        }),
      );
      const poison = [message(21, { value: enc([1, 2]) }), message(22, { value: enc({ _offset: 1 }) })];
      const results = await s.write(batch('p', 3, [...msgs, ...poison]), { signal });
      expect(statuses(results)).toEqual([...Array(20).fill('ok'), 'deadLetter', 'deadLetter']);
      const keys = await dataKeys(client, bucket);
      expect(keys.map(short)).toEqual([`p/3/p+3+${span(1, 20)}.parquet`]);
      const bytes = await getBytes(client, bucket, keys[0] as string);
      expect(bytes.subarray(0, 4).toString()).toBe('PAR1');
      const rows = (await readRecords(client, bucket)).map((r) => r.record);
      expect(rows).toHaveLength(20);
      expect(rows[0]).toEqual({
        _offset: 1n,
        _timestamp: new Date(1_700_000_000_001),
        _key: 'k1',
        _headers: { h: '1' },
        id: 1n,
        price: 1.5,
        name: 'item 1',
        ok: false,
        tags: ['a', 1],
        mixed: 1,
        sparse: 1n,
      });
      expect(rows[3]).toMatchObject({ _key: null, mixed: 'x', sparse: null, ok: false });
      expect((await headMeta(client, bucket, keys[0] as string))['junction-compression']).toBe(compression);
    });
  }

  for (const compression of ['gzip', 'zstd', 'none']) {
    it(`raw, ${compression}: value bytes each followed by the separator`, async () => {
      const bucket = await newBucket(client);
      const s = await sink(bucket, { format: 'raw', compression, raw: { separator: '\u241e' } });
      const values = [bin, new TextEncoder().encode('plain text'), new Uint8Array(0)] as Uint8Array<ArrayBuffer>[];
      await s.write(
        batch(
          'r',
          0,
          values.map((v, i) => message(i + 1, { value: v })),
        ),
        { signal },
      );
      const key = (await dataKeys(client, bucket))[0] as string;
      expect(key.endsWith(compression === 'gzip' ? '.bin.gz' : compression === 'zstd' ? '.bin.zst' : '.bin')).toBe(true);
      const sep = Buffer.from('\u241e');
      expect(await plainBytes(client, bucket, key)).toEqual(Buffer.concat(values.flatMap((v) => [Buffer.from(v), sep])));
    });
  }
});

describe('path layouts', () => {
  it('partition (default): <prefix><station>/<partition>/<station>+<partition>+<first>-<last>+<station id>+<attempt>', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket, { prefix: '/archive//v1/' });
    await s.write(batch('orders', 0, range(1, 5)), { signal });
    await s.write(batch('orders', 12, range(7, 9)), { signal });
    await s.write(batch('clicks', 0, range(1, 2)), { signal });
    expect(await shortKeys(client, bucket)).toEqual([
      `archive/v1/clicks/0/clicks+0+${span(1, 2)}.jsonl.gz`,
      `archive/v1/orders/0/orders+0+${span(1, 5)}.jsonl.gz`,
      `archive/v1/orders/12/orders+12+${span(7, 9)}.jsonl.gz`,
    ]);
  });

  it('time: the message time in UTC by path.format, one object per hour of a batch', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket, { path: { layout: 'time' } });
    const t0 = Date.UTC(2025, 2, 1, 23, 58, 0);
    const msgs = range(1, 6).map((o) => message(o, { timestamp: t0 + (o - 1) * 60_000 })); // 23:58 … 00:03 next day
    await s.write(batch('ev', 1, msgs), { signal });
    expect(await shortKeys(client, bucket)).toEqual([
      `ev/year=2025/month=03/day=01/hour=23/ev+1+${span(1, 2)}.jsonl.gz`,
      `ev/year=2025/month=03/day=02/hour=00/ev+1+${span(3, 6)}.jsonl.gz`,
    ]);
    const s2 = await sink(bucket, { path: { layout: 'time', format: "'dt'=YYYY-MM-dd/HH'h'mm" }, prefix: 'x' });
    await s2.write(batch('ev', 0, [message(1, { timestamp: Date.UTC(2024, 0, 5, 7, 9) })]), { signal });
    expect(await shortKeys(client, bucket, 'x/')).toEqual([`x/ev/dt=2024-01-05/07h09/ev+0+${span(1, 1)}.jsonl.gz`]);
  });

  it('field: <field>=<value> of a (nested) JSON field; missing → Hive default partition; non-scalar → dead letter', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket, { path: { layout: 'field', field: 'customer.region' }, compression: 'none' });
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)) as Uint8Array<ArrayBuffer>;
    const results = await s.write(
      batch('o', 0, [
        message(1, { value: enc({ customer: { region: 'eu-west' } }) }),
        message(2, { value: enc({ customer: { region: 'us/east 1' } }) }),
        message(3, { value: enc({ customer: { region: 'eu-west' } }) }),
        message(4, { value: enc({ customer: {} }) }),
        message(5, { value: enc({ customer: { region: { nested: true } } }) }),
        message(6, { value: new TextEncoder().encode('nope') }),
        message(7, { value: enc({ customer: { region: 42 } }) }),
      ]),
      { signal },
    );
    expect(statuses(results)).toEqual(['ok', 'ok', 'ok', 'ok', 'deadLetter', 'deadLetter', 'ok']);
    expect(await shortKeys(client, bucket)).toEqual([
      `o/customer.region=42/o+0+${span(7, 7)}.jsonl`,
      `o/customer.region=__HIVE_DEFAULT_PARTITION__/o+0+${span(4, 4)}.jsonl`,
      `o/customer.region=eu-west/o+0+${span(1, 3)}.jsonl`,
      `o/customer.region=us%2Feast%201/o+0+${span(2, 2)}.jsonl`,
    ]);
    // Interleaved values share one object per directory: offsets 1 and 3.
    const eu = (await dataKeys(client, bucket)).find((k) => k.startsWith('o/customer.region=eu-west/')) as string;
    const lines = (await plainBytes(client, bucket, eu)).toString().trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).offset)).toEqual([1, 3]);
    expect(await headMeta(client, bucket, eu)).toMatchObject({
      'junction-first-offset': '1',
      'junction-last-offset': '3',
      'junction-count': '2',
    });
    await expectEachOnce(bucket, [1, 2, 3, 4, 7]);
  });
});

describe('rotation', () => {
  it('by messages and by bytes (before compression): one batch becomes several objects named by their offsets', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket, { rotate: { maxMessages: 4 } });
    await s.write(batch('r', 0, range(1, 10)), { signal });
    expect((await dataKeys(client, bucket)).map((k) => k.split('+')[2])).toEqual([span(1, 4), span(5, 8), span(9, 10)]);
    const b2 = await newBucket(client);
    const s2 = await sink(b2, { rotate: { maxBytes: 2048 } });
    const big = range(1, 10).map((o) => message(o, { value: new TextEncoder().encode(JSON.stringify({ pad: 'x'.repeat(600), o })) }));
    await s2.write(batch('r', 0, big), { signal });
    const keys = await dataKeys(client, b2);
    expect(keys.length).toBeGreaterThanOrEqual(4); // ~690 bytes a line: at most two or three lines per 2 KiB object
    for (const k of keys) expect((await plainBytes(client, b2, k)).length).toBeLessThanOrEqual(2048);
    await expectEachOnce(b2, range(1, 10));
  });

  it('by record time: a message at or past the first message time + intervalMs starts a new object', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket, { rotate: { intervalMs: 10_000 } });
    const ts = [0, 3_000, 9_999, 10_000, 15_000, 25_000, 26_000];
    await s.write(
      batch(
        'r',
        0,
        ts.map((t, i) => message(i + 1, { timestamp: 1_700_000_000_000 + t })),
      ),
      { signal },
    );
    expect((await dataKeys(client, bucket)).map((k) => k.split('+')[2])).toEqual([span(1, 3), span(4, 5), span(6, 7)]);
  });

  it('holds nothing open: once write resolves its objects are in the bucket, with no flush or close needed', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket);
    await s.write(batch('idle', 0, range(1, 3)), { signal });
    // Traffic stops: nothing is waiting for a timer, a rotation or close().
    await expectEachOnce(bucket, [1, 2, 3]);
    expect(await unfinished(client, bucket)).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(await dataKeys(client, bucket)).toHaveLength(1);
  });
});

describe('multipart uploads', () => {
  it('a 20 MiB batch streams up as a multipart upload with bounded parts; bytes read back equal', async () => {
    const bucket = await newBucket(client);
    const ctx = fakeContext();
    const s = await sink(
      bucket,
      {
        compression: 'none',
        jsonl: { value: 'string', fields: ['offset'] },
        upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024, queueSize: 2 },
      },
      ctx,
    );
    const filler = 'abcdefghij'.repeat(102); // ~1 KiB
    const msgs = range(1, 20_000).map((o) => message(o, { value: new TextEncoder().encode(`${o}:${filler}`) }));
    const results = await s.write(batch('big', 0, msgs), { signal });
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(ctx.metrics.snapshot()).toMatchObject({ multipart_uploads_total: { value: 1 }, objects_written_total: { value: 1 } });
    const keys = await dataKeys(client, bucket);
    expect(keys).toHaveLength(1);
    const body = await getBytes(client, bucket, keys[0] as string);
    expect(body.length).toBeGreaterThan(20 * 1024 * 1024);
    const expected = msgs.map((m) => `{"offset":${m.offset},"value":${JSON.stringify(Buffer.from(m.value).toString())}}\n`).join('');
    expect(body.equals(Buffer.from(expected))).toBe(true);
  });

  it('a large Parquet object streams row group by row group', async () => {
    const bucket = await newBucket(client);
    const ctx = fakeContext();
    const s = await sink(
      bucket,
      {
        format: 'parquet',
        compression: 'none',
        parquet: { rowGroupSize: 1000 },
        upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 },
      },
      ctx,
    );
    const msgs = range(1, 8_000).map((o) =>
      message(o, { value: new TextEncoder().encode(JSON.stringify({ o, s: `${o}`.repeat(200).slice(0, 900) })) }),
    );
    expect((await s.write(batch('pq', 0, msgs), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(ctx.metrics.snapshot().multipart_uploads_total).toMatchObject({ value: 1 });
    const rows = (await readRecords(client, bucket)).map((r) => r.record);
    expect(rows.map((r) => Number(r.o))).toEqual(range(1, 8_000));
    expect(rows[7_999]?.s).toBe('8000'.repeat(200).slice(0, 900));
  });
});

describe('exactly once', () => {
  it('a replay of the same batch by a new sink writes nothing and answers ok', async () => {
    const bucket = await newBucket(client);
    const a = await sink(bucket);
    await a.write(batch('e', 0, range(1, 10)), { signal });
    await a.close();
    const ctx = fakeContext();
    const b = await sink(bucket, {}, ctx);
    expect(statuses(await b.write(batch('e', 0, range(1, 10)), { signal }))).toEqual(Array(10).fill('ok'));
    expect(ctx.metrics.snapshot()).toMatchObject({ replayed_messages_total: { value: 10 } });
    expect(ctx.metrics.snapshot().objects_written_total).toMatchObject({ value: 0 });
    expect(await dataKeys(client, bucket)).toHaveLength(1);
  });

  it('overlapping replays cut differently, stale prefixes and gaps: each offset once, under any layout', async () => {
    for (const extra of [{}, { path: { layout: 'time' } }, { format: 'parquet' }]) {
      const bucket = await newBucket(client);
      const a = await sink(bucket, extra);
      await a.write(batch('e', 0, range(1, 10)), { signal });
      await a.close();
      const b = await sink(bucket, extra);
      for (const offsets of [range(6, 15), range(1, 3), [16, 18, 20], range(16, 20), range(4, 25)]) {
        expect(statuses(await b.write(batch('e', 0, offsets), { signal })).every((x) => x === 'ok')).toBe(true);
      }
      await b.close();
      // A third instance starting high learns older units only when asked about them.
      const c = await sink(bucket, extra);
      await c.write(batch('e', 0, range(24, 30)), { signal });
      await c.write(batch('e', 0, range(1, 30)), { signal });
      await expectEachOnce(bucket, range(1, 30));
    }
  });

  it('the ledger: one done marker per unit, keyed by last offset; a unit with gaps keeps its ranges', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket);
    await s.write(batch('l', 2, range(1, 5)), { signal });
    await s.write(batch('l', 2, [7, 9]), { signal });
    const done = (await listKeys(client, bucket, '_junction/')).filter((k) => !k.includes('/pending/'));
    expect(done).toEqual([
      expect.stringMatching(/^_junction\/ledger\/l\/l-id\/2\/done\/00000000000000000005-00000000000000000001-5_[0-9a-z]{10}\.json$/),
      expect.stringMatching(/^_junction\/ledger\/l\/l-id\/2\/done\/00000000000000000009-00000000000000000007-2_[0-9a-z]{10}\.json$/),
    ]);
    const unit = JSON.parse((await getBytes(client, bucket, done[1] as string)).toString());
    expect(unit).toMatchObject({
      v: 2,
      station: 'l',
      stationId: 'l-id',
      partition: 2,
      first: 7,
      last: 9,
      count: 2,
      ranges: [
        [7, 7],
        [9, 9],
      ],
      writer: { connector: 'test', task: 0 },
    });
    expect(unit.objects).toEqual([
      { key: expect.stringMatching(/^l\/2\/l\+2\+/), first: 7, last: 9, count: 2, uploadId: expect.any(String) },
    ]);
    const fresh = await sink(bucket);
    await fresh.write(batch('l', 2, range(1, 10)), { signal });
    await expectEachOnce(bucket, range(1, 10));
  });

  it('a crash mid-unit (pending marker naming its uploads; one object completed, one upload open) is rolled back before the replay, cut differently', async () => {
    const bucket = await newBucket(client);
    const rollbacks: unknown[] = [];
    const a = await sink(bucket, { rotate: { maxMessages: 5 } });
    await a.write(batch('c', 0, range(1, 5)), { signal });
    // What a writer killed in the middle of a unit 6-15 leaves: its uploads, one of them completed.
    const dead = 'deadbeef00';
    const k1 = `c/0/c+0+${span(6, 10)}+c-id+${dead}.jsonl.gz`;
    const k2 = `c/0/c+0+${span(11, 15)}+c-id+${dead}.jsonl.gz`;
    const ids: string[] = [];
    const meta = {
      'junction-station': 'c',
      'junction-station-id': 'c-id',
      'junction-partition': '0',
      'junction-unit': '6-15',
      'junction-attempt': dead,
    };
    for (const key of [k1, k2])
      ids.push((await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: meta }))).UploadId as string);
    const p1 = await client.send(new UploadPartCommand({ Bucket: bucket, Key: k1, UploadId: ids[0], PartNumber: 1, Body: 'partial' }));
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: k1,
        UploadId: ids[0],
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }] },
      }),
    );
    await client.send(new UploadPartCommand({ Bucket: bucket, Key: k2, UploadId: ids[1], PartNumber: 1, Body: 'more' }));
    const unit = {
      v: 2,
      station: 'c',
      stationId: 'c-id',
      partition: 0,
      first: 6,
      last: 15,
      count: 10,
      ranges: [[6, 15]],
      attempt: dead,
      objects: [
        { key: k1, first: 6, last: 10, count: 5, uploadId: ids[0] },
        { key: k2, first: 11, last: 15, count: 5, uploadId: ids[1] },
      ],
      writer: { connector: 'x', task: 0 },
    };
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `_junction/ledger/c/c-id/0/pending/${span(15, 6)}_${dead}.json`,
        Body: JSON.stringify(unit),
      }),
    );
    const ctx = fakeContext();
    const b = sinkWith(s3Client(server), bucket, { rotate: { maxMessages: 5 } }, ctx, { onRollback: (u) => rollbacks.push(u) });
    // The runtime replays from the last acknowledged offset, cut its own way.
    expect(statuses(await b.write(batch('c', 0, range(3, 12)), { signal })).every((x) => x === 'ok')).toBe(true);
    expect(rollbacks).toHaveLength(1);
    // The open upload is aborted (the completed one is gone already); not all objects landed: rolled back.
    expect(ctx.metrics.snapshot()).toMatchObject({ rollbacks_total: { value: 1 }, uploads_aborted_total: { value: 1 } });
    expect(server.proxy.openUploads().filter((u) => u.key.includes(dead))).toEqual([]);
    expect((await dataKeys(client, bucket)).some((k) => k.includes(dead))).toBe(false);
    expect(await shortKeys(client, bucket)).toEqual([
      `c/0/c+0+${span(1, 5)}.jsonl.gz`,
      `c/0/c+0+${span(6, 10)}.jsonl.gz`,
      `c/0/c+0+${span(11, 12)}.jsonl.gz`,
    ]);
    await expectEachOnce(bucket, range(1, 12));
    expect(await unfinished(client, bucket)).toEqual([]);
  });

  it('a writer killed after its last object landed but before its done marker: the load keeps the unit (puts the same done marker)', async () => {
    const bucket = await newBucket(client);
    const dead = 'deadbeef01';
    const key = `c/0/c+0+${span(1, 5)}+c-id+${dead}.jsonl`;
    const body = range(1, 5)
      .map((o) => `{"offset":${o},"timestamp":1,"key":null,"headers":{},"value":{"n":${o}}}\n`)
      .join('');
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: { 'junction-attempt': dead } }),
    );
    const part = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: body }));
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
      }),
    );
    const unit = {
      v: 2,
      station: 'c',
      stationId: 'c-id',
      partition: 0,
      first: 1,
      last: 5,
      count: 5,
      ranges: [[1, 5]],
      objects: [{ key, first: 1, last: 5, count: 5, uploadId: UploadId }],
      attempt: dead,
      writer: { connector: 'x', task: 0 },
    };
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `_junction/ledger/c/c-id/0/pending/${span(5, 1)}_${dead}.json`,
        Body: JSON.stringify(unit),
      }),
    );
    const ctx = fakeContext();
    const s = sinkWith(s3Client(server), bucket, { compression: 'none' }, ctx);
    expect(statuses(await s.write(batch('c', 0, range(1, 8)), { signal })).every((x) => x === 'ok')).toBe(true);
    expect(ctx.metrics.snapshot()).toMatchObject({ replayed_messages_total: { value: 5 }, rollbacks_total: { value: 0 } });
    const done = `_junction/ledger/c/c-id/0/done/${span(5, 1)}-5_${dead}.json`;
    expect((await getBytes(client, bucket, done)).toString()).toBe(JSON.stringify(unit));
    await expectEachOnce(bucket, range(1, 8));
    expect(await unfinished(client, bucket)).toEqual([]);
  });

  it('a pending marker whose unit was committed (stopped between done and delete) is only cleaned up', async () => {
    const bucket = await newBucket(client);
    const a = await sink(bucket);
    await a.write(batch('c', 0, range(1, 5)), { signal });
    const doneKey = (await listKeys(client, bucket, '_junction/ledger/c/c-id/0/done/'))[0] as string;
    const attempt = /_([0-9a-z]+)\.json$/.exec(doneKey)?.[1];
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `_junction/ledger/c/c-id/0/pending/${span(5, 1)}_${attempt}.json`,
        Body: await getBytes(client, bucket, doneKey),
      }),
    );
    const rollbacks: unknown[] = [];
    const b = sinkWith(s3Client(server), bucket, {}, fakeContext(), { onRollback: (u) => rollbacks.push(u) });
    expect(statuses(await b.write(batch('c', 0, range(1, 8)), { signal })).every((x) => x === 'ok')).toBe(true);
    expect(rollbacks).toEqual([]);
    await expectEachOnce(bucket, range(1, 8));
    expect(await unfinished(client, bucket)).toEqual([]);
  });

  it('a ledger from before station ids belongs to the first incarnation that loads the partition (owner.json); its crashed unit is rolled back by metadata', async () => {
    const bucket = await newBucket(client);
    const legacy = '_junction/ledger/c/0/';
    // Offsets 1-5 committed by the sink before station ids, and a unit 6-15 it crashed in.
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'c/0/c+0+00000000000000000001.jsonl',
        Body: range(1, 5)
          .map((o) => `{"offset":${o},"timestamp":1,"key":null,"headers":{},"value":{"n":${o}}}\n`)
          .join(''),
        Metadata: { 'junction-station': 'c', 'junction-partition': '0', 'junction-unit': '1-5' },
      }),
    );
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${legacy}done/${span(5, 1)}-5.json`,
        Body: JSON.stringify({
          v: 1,
          station: 'c',
          partition: 0,
          first: 1,
          last: 5,
          count: 5,
          ranges: [[1, 5]],
          objects: [],
          writer: { connector: 'x', task: 0 },
        }),
      }),
    );
    const orphan = 'c/0/c+0+00000000000000000006.jsonl';
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: orphan,
        Body: 'partial',
        Metadata: { 'junction-station': 'c', 'junction-partition': '0', 'junction-unit': '6-15' },
      }),
    );
    const unit = {
      v: 1,
      station: 'c',
      partition: 0,
      first: 6,
      last: 15,
      count: 10,
      ranges: [[6, 15]],
      objects: [{ key: orphan, first: 6, last: 10, count: 5 }],
      writer: { connector: 'x', task: 0 },
    };
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${legacy}pending/${span(15, 6)}.json`, Body: JSON.stringify(unit) }));
    const ctx = fakeContext();
    const s = await sink(bucket, { compression: 'none' }, ctx);
    expect(statuses(await s.write(batch('c', 0, range(1, 8), 'now'), { signal })).every((x) => x === 'ok')).toBe(true);
    expect(ctx.metrics.snapshot()).toMatchObject({ replayed_messages_total: { value: 5 }, rollbacks_total: { value: 1 } });
    expect(JSON.parse((await getBytes(client, bucket, `${legacy}owner.json`)).toString())).toMatchObject({ stationId: 'now' });
    expect(await dataKeys(client, bucket)).not.toContain(orphan);
    // Another incarnation of the station does not inherit them.
    await s.write(batch('c', 0, range(1, 3), 'later'), { signal });
    const records = await readRecords(client, bucket);
    expect(records.map((r) => Number(r.record.offset)).sort((x, y) => x - y)).toEqual([1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8]);
    expect(records.filter((r) => r.key.includes('+later+')).map((r) => Number(r.record.offset))).toEqual([1, 2, 3]);
  });

  it('concurrent writes to one partition are serialized', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket);
    await Promise.all([
      s.write(batch('o', 0, range(1, 50)), { signal }),
      s.write(batch('o', 0, range(25, 75)), { signal }),
      s.write(batch('o', 0, range(1, 100)), { signal }),
    ]);
    await expectEachOnce(bucket, range(1, 100));
  });
});

describe('failures', () => {
  it('S3 stopped for a while, then back: writes answer retry meanwhile, then succeed; nothing lost or doubled', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket, { maxAttempts: 1 });
    await s.write(batch('down', 0, range(1, 10)), { signal });
    await server.stop();
    try {
      const results = await s.write(batch('down', 0, range(11, 20)), { signal });
      expect(statuses(results)).toEqual(Array(10).fill('retry'));
      expect((results[0] as { reason: string }).reason).toMatch(/S3 (unavailable|request failed)/);
      // The runtime keeps retrying with backoff while S3 is away.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(statuses(await s.write(batch('down', 0, range(11, 20)), { signal }))).toEqual(Array(10).fill('retry'));
    } finally {
      await server.start();
    }
    expect(statuses(await s.write(batch('down', 0, range(11, 25)), { signal }))).toEqual(Array(15).fill('ok'));
    await expectEachOnce(bucket, range(1, 25));
  });

  it('wrong credentials: open fails with AUTH_FAILED, not retryable; a write throws it too', async () => {
    const bucket = await newBucket(client);
    const err = await plugin
      .open(
        plugin.config.parse(sinkConfig(server, bucket, { credentials: { accessKeyId: 'WRONG', secretAccessKey: 'nope' } })),
        fakeContext(),
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AUTH_FAILED', retryable: false });
    expect((err as Error).message).toMatch(/refused access to bucket ".*" while checking the bucket.*403/);
    const bad = sinkWith(s3Client(server, { credentials: { accessKeyId: 'WRONG', secretAccessKey: 'S3RVER' } }), bucket);
    await expect(bad.write(batch('a', 0, [1]), { signal })).rejects.toMatchObject({
      code: 'AUTH_FAILED',
      retryable: false,
      message: expect.stringMatching(/InvalidAccessKeyId/),
    });
  });

  it('missing bucket: open fails with NOT_FOUND; a bucket deleted under a running sink fails the write', async () => {
    const err = await plugin.open(plugin.config.parse(sinkConfig(server, 'no-such-bucket-here')), fakeContext()).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'NOT_FOUND',
      retryable: false,
      message: expect.stringContaining('"no-such-bucket-here" does not exist'),
    });
    const bucket = await newBucket(client);
    const s = await sink(bucket);
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    await expect(s.write(batch('a', 0, [1]), { signal })).rejects.toMatchObject({ code: 'NOT_FOUND', retryable: false });
  });

  it('checkConnection resolves, and a closed sink refuses writes; close twice is fine', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket);
    await expect(s.checkConnection?.()).resolves.toBeUndefined();
    await s.close();
    await s.close();
    await expect(s.write(batch('a', 0, [1]), { signal })).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('refuses station names that are not one key segment', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket);
    for (const station of ['../x', 'a/b', '.hidden', '']) {
      await expect(s.write(batch(station, 0, [1]), { signal })).rejects.toMatchObject({ code: 'SINK_REJECTED', retryable: false });
    }
  });

  it('an object deleted by hand is not the sink’s business: the ledger still says written (documented)', async () => {
    const bucket = await newBucket(client);
    const s = await sink(bucket);
    await s.write(batch('d', 0, range(1, 3)), { signal });
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: (await dataKeys(client, bucket))[0] as string }));
    expect(statuses(await s.write(batch('d', 0, range(1, 3)), { signal }))).toEqual(['ok', 'ok', 'ok']);
  });
});

describe('config', () => {
  it('has defaults, refuses bad combinations, describes itself and redacts credentials', async () => {
    const parsed = S3SinkConfig.parse({ bucket: 'my-bucket' });
    expect(parsed).toMatchObject({
      prefix: '',
      forcePathStyle: false,
      format: 'jsonl',
      compression: 'gzip',
      jsonl: { value: 'json', fields: ['offset', 'timestamp', 'key', 'headers'] },
      path: { layout: 'partition', format: 'year=YYYY/month=MM/day=dd/hour=HH' },
      upload: { partSize: 8 * 1024 * 1024, queueSize: 4 },
      conditionalWrites: true,
      checksums: 'when-supported',
    });
    const issues = (raw: unknown) => S3SinkConfig.safeParse(raw).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({ bucket: 'bbb', path: { layout: 'field' } })).toEqual(['path.field: is required with layout "field"']);
    expect(issues({ bucket: 'bbb', compression: 'snappy' })?.[0]).toMatch(/^compression: snappy/);
    expect(issues({ bucket: 'Bad_Bucket' })?.[0]).toMatch(/^bucket:/);
    expect(issues({ bucket: 'bbb', path: { format: 'YYYY//HH' } })?.[0]).toMatch(/^path.format:/);
    expect(issues({ bucket: 'bbb', extra: 1 })?.[0]).toMatch(/Unrecognized key/);
    expect(issues({ bucket: 'bbb', upload: { partSize: 1024 } })?.[0]).toMatch(/^upload.partSize/);
    const raw = { bucket: 'bbb', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'shhh-secret' } };
    expect(JSON.stringify(redact(S3SinkConfig, raw))).not.toMatch(/AKIAEXAMPLE|shhh-secret/);
    expect(JSON.stringify(configJsonSchema(S3SinkConfig))).toContain('x-secret');
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.junction).toEqual({ kind: 'sink', entry: './dist/index.js' });
    expect(pkg.version).toBe(plugin.manifest.version);
    expect(plugin.manifest).toMatchObject({ name: 's3', kind: 'sink', exactlyOnce: true });
    expect(createS3Client(S3SinkConfig.parse({ bucket: 'bbb', region: 'eu-west-3' })).config.forcePathStyle).toBe(false);
  });
});
