/**
 * Paths that depend on S3 features s3rver lacks (conditional writes, aborting and listing multipart
 * uploads) or rarely shows (paged listings), tested through the proxy in front of s3rver
 * (test/fakes/s3-proxy.ts, S3's semantics for them) and, for paging, test/fakes/s3-features.ts.
 */
import { CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Sink } from '@junction/sdk-connector';
import { fakeContext, type FakeContext } from '@junction/sdk-connector/testing';
import { S3Sink } from '../src/sink.js';
import { S3SinkConfig } from '../src/config.js';
import { addS3Features } from '../../../test/fakes/s3-features.js';
import {
  batch,
  dataKeys,
  getBytes,
  message,
  newBucket,
  range,
  readRecords,
  s3Client,
  signal,
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
  server.proxy.intercept = undefined;
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  client?.destroy();
  await server?.close();
});

function sinkOn(c: S3Client, bucket: string, extra: Record<string, unknown> = {}, ctx: FakeContext = fakeContext()): Sink {
  const s = new S3Sink(c, S3SinkConfig.parse(sinkConfig(server, bucket, extra)), ctx);
  open.push(s);
  return s;
}

async function offsets(bucket: string): Promise<number[]> {
  return (await readRecords(client, bucket)).map(({ record }) => Number(record.offset)).sort((a, b) => a - b);
}

const openIn = (bucket: string) => [...server.proxy.uploads].filter(([, u]) => u.bucket === bucket && u.state === 'open');

describe('conditional writes (If-None-Match: *)', () => {
  it('an object someone else put under our key is neither overwritten nor deleted: SINK_CONFLICT fails the task, the unit is rolled back', async () => {
    const bucket = await newBucket(client);
    let foreign: string | undefined;
    server.proxy.intercept = async (r) => {
      if (r.bucket === bucket && r.op === 'CompleteMultipartUpload' && !r.key.includes('_junction/') && foreign === undefined) {
        foreign = r.key;
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: r.key, Body: 'someone else' }));
      }
    };
    const s = sinkOn(s3Client(server), bucket);
    await expect(s.write(batch('c', 0, range(1, 3)), { signal })).rejects.toMatchObject({ code: 'SINK_CONFLICT', retryable: false });
    expect((await getBytes(client, bucket, foreign as string)).toString()).toBe('someone else');
    expect(await unfinished(client, bucket)).toEqual([]);
    expect(openIn(bucket)).toEqual([]);
  });

  it('every data object is completed with If-None-Match: * (a fresh key passes), also when it streams up in parts', async () => {
    const bucket = await newBucket(client);
    const s = sinkOn(s3Client(server), bucket, {
      compression: 'none',
      upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 },
    });
    const conditional: string[] = [];
    server.proxy.intercept = (r) => {
      if (r.bucket === bucket && r.op === 'CompleteMultipartUpload' && r.headers['if-none-match'] === '*') conditional.push(r.key);
    };
    const pad = 'x'.repeat(1000);
    const msgs = range(1, 6000).map((o) => message(o, { value: new TextEncoder().encode(JSON.stringify({ o, pad })) }));
    expect((await s.write(batch('m', 0, msgs), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(conditional).toEqual(await dataKeys(client, bucket));
    expect(await offsets(bucket)).toEqual(range(1, 6000));
  });
});

describe('uploads are aborted, never left behind', () => {
  it("a part that fails: the unit's uploads are aborted, the write answers retry, nothing is left; the retry succeeds", async () => {
    const bucket = await newBucket(client);
    let failing = true;
    server.proxy.intercept = (r) => {
      if (failing && r.bucket === bucket && r.op === 'UploadPart' && !r.key.includes('_junction/') && r.query.get('partNumber') === '2')
        return { status: 500, code: 'InternalError' };
    };
    const ctx = fakeContext();
    const s = sinkOn(
      s3Client(server),
      bucket,
      { compression: 'none', upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024, queueSize: 1 } },
      ctx,
    );
    const pad = 'y'.repeat(1000);
    const msgs = range(1, 12_000).map((o) => message(o, { value: new TextEncoder().encode(JSON.stringify({ o, pad })) }));
    const results = await s.write(batch('a', 0, msgs), { signal });
    expect(new Set(results.map((r) => r.status))).toEqual(new Set(['retry']));
    expect(ctx.metrics.snapshot()).toMatchObject({ uploads_aborted_total: { value: 1 }, rollbacks_total: { value: 1 } });
    expect(openIn(bucket)).toEqual([]);
    expect(await dataKeys(client, bucket)).toEqual([]);
    expect(await unfinished(client, bucket)).toEqual([]);
    failing = false;
    expect((await s.write(batch('a', 0, msgs), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(await offsets(bucket)).toEqual(range(1, 12_000));
  });

  it('uploads a killed writer created but never recorded are aborted when the partition is loaded again; others stay', async () => {
    const bucket = await newBucket(client);
    const create = async (key: string) => {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(1024, 1) }));
      return UploadId as string;
    };
    const mine = await create(`k/0/k+0+${span(1, 9000)}+k-id+aaaaaaaaaa.jsonl`);
    const otherPartition = await create(`k/1/k+1+${span(1, 10)}+k-id+bbbbbbbbbb.jsonl`);
    const otherIncarnation = await create(`k/0/k+0+${span(1, 10)}+k-other+cccccccccc.jsonl`);
    const ctx = fakeContext();
    const s = sinkOn(s3Client(server), bucket, { compression: 'none' }, ctx);
    expect((await s.write(batch('k', 0, range(1, 5)), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(ctx.metrics.snapshot()).toMatchObject({ uploads_aborted_total: { value: 1 } });
    expect(server.proxy.uploads.get(mine)?.state).toBe('aborted');
    expect(server.proxy.uploads.get(otherPartition)?.state).toBe('open');
    expect(server.proxy.uploads.get(otherIncarnation)?.state).toBe('open');
    expect(await offsets(bucket)).toEqual(range(1, 5));
  });

  it('an upload the sink before station ids left open is aborted when its unit is rolled back', async () => {
    const bucket = await newBucket(client);
    const key = 'k/0/k+0+00000000000000000001.jsonl';
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(5 * 1024 * 1024, 1) }));
    const unit = {
      v: 1,
      station: 'k',
      partition: 0,
      first: 1,
      last: 9000,
      count: 9000,
      ranges: [[1, 9000]],
      objects: [{ key, first: 1, last: 9000, count: 9000 }],
      writer: { connector: 'x', task: 0 },
    };
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: '_junction/ledger/k/0/pending/00000000000000009000-00000000000000000001.json',
        Body: JSON.stringify(unit),
      }),
    );
    const s = sinkOn(s3Client(server), bucket, { compression: 'none' });
    expect((await s.write(batch('k', 0, range(1, 5)), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(server.proxy.uploads.get(UploadId as string)?.state).toBe('aborted');
    expect(await offsets(bucket)).toEqual(range(1, 5));
  });
});

describe('paged listings', () => {
  it('the ledger is read across many pages', async () => {
    const bucket = await newBucket(client);
    const writer = sinkOn(s3Client(server), bucket);
    for (let o = 1; o <= 12; o++) await writer.write(batch('p', 0, [o]), { signal });
    const c = s3Client(server);
    const features = addS3Features(c, { pageSize: 2 });
    const s = sinkOn(c, bucket);
    expect((await s.write(batch('p', 0, range(1, 15)), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(features.calls.filter((x) => x === 'ListObjectsV2Command').length).toBeGreaterThanOrEqual(6);
    expect(await offsets(bucket)).toEqual(range(1, 15));
  });
});
