/**
 * `prepareAhead` (SDK): the runtime hands the S3 sink the batch waiting behind the running write; the sink
 * validates, plans and encodes it then, sends nothing, and the write of that batch uses the work —
 * unless the bucket turned out to hold some of its messages already (a replay).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Sink, SinkBatch, SinkMessage } from '@junction/sdk-connector';
import { fakeContext, type FakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import {
  batch,
  dataKeys,
  listKeys,
  message,
  newBucket,
  plainBytes,
  range,
  readRecords,
  s3Client,
  signal,
  sinkConfig,
  startS3rver,
  type S3rverProcess,
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

function prepared(ctx: FakeContext): number {
  return (ctx.metrics.snapshot().prepared_batches_total as { value: number } | undefined)?.value ?? 0;
}

/** ~600 B JSON values: a batch of 3000 is ~1.8 MB of JSON Lines, more than one gzip member. */
function big(offset: number): SinkMessage {
  const text = `message ${offset} `.repeat(40);
  return message(offset, {
    key: `k${offset % 7}`,
    headers: offset % 3 ? { h: String(offset) } : {},
    value: new TextEncoder().encode(JSON.stringify({ n: offset, text })),
  });
}

/** Every data object's decompressed bytes, in key order (keys differ only in their attempt segment). */
async function contents(bucket: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of await dataKeys(client, bucket)) out.push((await plainBytes(client, bucket, key)).toString('base64'));
  return out;
}

describe('prepareAhead: the next batch encoded while the write before it uploads', () => {
  for (const extra of [
    { format: 'jsonl', compression: 'gzip' },
    { format: 'jsonl', compression: 'zstd', jsonl: { fields: ['offset', 'key', 'headers'] } },
    { format: 'parquet', compression: 'snappy' },
    { format: 'raw', compression: 'gzip' },
    { format: 'jsonl', compression: 'none', path: { layout: 'time' }, rotate: { maxMessages: 1000 } },
  ]) {
    it(`${JSON.stringify(extra)}: prepared during the write before it, it sends nothing; its objects are the bytes of an unprepared write`, async () => {
      const first = batch('p', 0, range(1, 3000).map(big));
      const second = batch('p', 0, range(3001, 6000).map(big));
      const ctx = fakeContext();
      const bucket = await newBucket(client);
      const s = await sink(bucket, extra, ctx);
      const writing = s.write(first, { signal });
      s.prepareAhead!(second);
      expect((await writing).every((r) => r.status === 'ok')).toBe(true);
      // Nothing of the prepared batch is in the bucket before its write.
      const keys = await listKeys(client, bucket);
      expect(keys.some((k) => k.includes('3001-6000') || k.includes('3001-'))).toBe(false);
      expect((await s.write(second, { signal })).every((r) => r.status === 'ok')).toBe(true);
      expect(prepared(ctx)).toBe(1);

      const plainBucket = await newBucket(client);
      const plain = await sink(plainBucket, extra);
      await plain.write(batch('p', 0, range(1, 3000).map(big)), { signal });
      await plain.write(batch('p', 0, range(3001, 6000).map(big)), { signal });
      expect(await contents(bucket)).toEqual(await contents(plainBucket));
      const offsets = (await readRecords(client, bucket)).map((r) => Number(r.record.offset ?? r.record._offset ?? r.record.n));
      if (extra.format !== 'raw') expect(offsets.sort((a, b) => a - b)).toEqual(range(1, 6000));
    });
  }

  it('a prepared batch some of whose messages the bucket holds (a replay) is not used: each offset once', async () => {
    const bucket = await newBucket(client);
    const ctx = fakeContext();
    const s = await sink(bucket, {}, ctx);
    await s.write(batch('r', 0, range(1, 10)), { signal });
    const replay: SinkBatch = batch('r', 0, range(1, 20));
    s.prepareAhead!(replay);
    expect((await s.write(replay, { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(prepared(ctx)).toBe(0);
    expect(ctx.metrics.snapshot()).toMatchObject({ replayed_messages_total: { value: 10 } });
    const offsets = (await readRecords(client, bucket)).map((r) => Number(r.record.offset));
    expect(offsets.sort((a, b) => a - b)).toEqual(range(1, 20));
  });

  it('a batch prepared and never written (it came back skipped) changes nothing: the same offsets in another batch object are written', async () => {
    const bucket = await newBucket(client);
    const ctx = fakeContext();
    const s = await sink(bucket, {}, ctx);
    s.prepareAhead!(batch('k', 0, range(1, 50)));
    expect(await listKeys(client, bucket)).toEqual([]);
    expect((await s.write(batch('k', 0, range(1, 50)), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(prepared(ctx)).toBe(0);
    expect((await readRecords(client, bucket)).map((r) => Number(r.record.offset))).toEqual(range(1, 50));
  });

  it('a batch with a value to dead-letter is left to the write: the same results as without prepare', async () => {
    const bucket = await newBucket(client);
    const ctx = fakeContext();
    const s = await sink(bucket, {}, ctx);
    const b = batch('d', 0, [message(1), message(2, { value: new TextEncoder().encode('not json') }), message(3)]);
    s.prepareAhead!(b);
    expect((await s.write(b, { signal })).map((r) => r.status)).toEqual(['ok', 'deadLetter', 'ok']);
    expect(prepared(ctx)).toBe(0);
    expect((await readRecords(client, bucket)).map((r) => Number(r.record.offset))).toEqual([1, 3]);
  });
});
