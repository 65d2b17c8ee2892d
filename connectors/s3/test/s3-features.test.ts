/**
 * Paths that depend on S3 features s3rver lacks (conditional writes, aborting and listing multipart
 * uploads) or rarely shows (paged listings), tested through the S3 semantics that
 * test/fakes/s3-features.ts adds in front of s3rver.
 */
import { CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Sink } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import { S3Sink } from '../src/sink.js';
import { S3SinkConfig } from '../src/config.js';
import { addS3Features, s3Error } from '../../../test/fakes/s3-features.js';
import { batch, dataKeys, getBytes, listKeys, message, newBucket, range, readRecords, s3Client, signal, sinkConfig, startS3rver, type S3rverProcess, unfinished } from './helpers.js';

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

function sinkOn(c: S3Client, bucket: string, extra: Record<string, unknown> = {}): Sink {
  const s = new S3Sink(c, S3SinkConfig.parse(sinkConfig(server, bucket, extra)), fakeContext());
  open.push(s);
  return s;
}

async function offsets(bucket: string): Promise<number[]> {
  return (await readRecords(client, bucket)).map(({ record }) => Number(record.offset)).sort((a, b) => a - b);
}

describe('conditional writes (If-None-Match: *)', () => {
  it('an object someone else put under our key is neither overwritten nor deleted: SINK_CONFLICT fails the task', async () => {
    const bucket = await newBucket(client);
    const c = s3Client(server);
    const features = addS3Features(c);
    const foreign = 'c/0/c+0+00000000000000000001.jsonl.gz';
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: foreign, Body: 'someone else' }));
    const s = sinkOn(c, bucket);
    await expect(s.write(batch('c', 0, range(1, 3)), { signal })).rejects.toMatchObject({ code: 'SINK_CONFLICT', retryable: false });
    expect(features.preconditionFailed).toEqual([foreign]);
    expect((await getBytes(client, bucket, foreign)).toString()).toBe('someone else');
    // The failed unit's pending marker is gone (rolled back), the foreign object stays.
    expect(await unfinished(client, bucket)).toEqual([]);
  });

  it('our own writes pass the condition (fresh keys), also for multipart uploads', async () => {
    const bucket = await newBucket(client);
    const c = s3Client(server);
    const features = addS3Features(c);
    const s = sinkOn(c, bucket, { compression: 'none', upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 } });
    const pad = 'x'.repeat(1000);
    const msgs = range(1, 6000).map((o) => message(o, { value: new TextEncoder().encode(JSON.stringify({ o, pad })) }));
    expect((await s.write(batch('m', 0, msgs), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(features.calls).toContain('CompleteMultipartUploadCommand');
    expect(features.preconditionFailed).toEqual([]);
    expect(await offsets(bucket)).toEqual(range(1, 6000));
  });
});

describe('failed multipart uploads are aborted', () => {
  it('a part that fails aborts the upload, the write answers retry, nothing is left; the retry succeeds', async () => {
    const bucket = await newBucket(client);
    const c = s3Client(server);
    let failing = true;
    const features = addS3Features(c, {
      fail: (command, input) => (failing && command === 'UploadPartCommand' && input.PartNumber === 2 ? s3Error('InternalError', 500, 'injected') : undefined),
    });
    const s = sinkOn(c, bucket, { compression: 'none', upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024, queueSize: 1 } });
    const pad = 'y'.repeat(1000);
    const msgs = range(1, 12_000).map((o) => message(o, { value: new TextEncoder().encode(JSON.stringify({ o, pad })) }));
    const results = await s.write(batch('a', 0, msgs), { signal });
    expect(new Set(results.map((r) => r.status))).toEqual(new Set(['retry']));
    expect(features.aborted).toHaveLength(1);
    expect(features.openUploads.size).toBe(0);
    expect(await dataKeys(client, bucket)).toEqual([]);
    expect(await unfinished(client, bucket)).toEqual([]);
    failing = false;
    expect((await s.write(batch('a', 0, msgs), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(await offsets(bucket)).toEqual(range(1, 12_000));
  });

  it('an upload a crash left open is aborted when the partition is loaded again', async () => {
    const bucket = await newBucket(client);
    const c = s3Client(server);
    const features = addS3Features(c);
    const key = 'k/0/k+0+00000000000000000001.jsonl';
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(5 * 1024 * 1024, 1) }));
    const unit = { v: 1, station: 'k', partition: 0, first: 1, last: 9000, count: 9000, ranges: [[1, 9000]], objects: [{ key, first: 1, last: 9000, count: 9000 }], writer: { connector: 'x', task: 0 } };
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: '_junction/ledger/k/0/pending/00000000000000009000-00000000000000000001.json', Body: JSON.stringify(unit) }));
    const s = sinkOn(c, bucket, { compression: 'none' });
    expect((await s.write(batch('k', 0, range(1, 5)), { signal })).every((r) => r.status === 'ok')).toBe(true);
    expect(features.aborted).toEqual([{ key, uploadId: UploadId }]);
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
