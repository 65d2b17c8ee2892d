import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { gunzipSync } from 'node:zlib';
import { parquetReadObjects } from 'hyparquet';
import type { SinkBatch, SinkMessage } from '@junction/sdk-connector';
import { ZstdFrameSplitter, loadZstd, zstdDecompressFrame } from '../src/formats/index.js';
import { parseMarkerName } from '../src/layout.js';
import { startS3rver, type S3rverProcess } from '../../../test/fakes/s3rver.js';

export { startS3rver, type S3rverProcess };

export const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** A client for s3rver, as the notes say: path style, its key, and checksums only when required. */
export function s3Client(server: S3rverProcess, over: Record<string, unknown> = {}): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...CREDENTIALS },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...over,
  });
}

/** The sink config for s3rver (raw, as a user writes it). */
export function sinkConfig(server: S3rverProcess, bucket: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
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

let bucketSeq = 0;
export async function newBucket(client: S3Client, name = 'b'): Promise<string> {
  const bucket = `${name}-${process.pid}-${Date.now().toString(36)}-${bucketSeq++}`.toLowerCase();
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

export async function listKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

/** Data objects only (the ledger lives under _junction/). */
export async function dataKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  return (await listKeys(client, bucket, prefix)).filter((k) => !k.includes('_junction/'));
}

export async function getBytes(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

export async function headMeta(client: S3Client, bucket: string, key: string): Promise<Record<string, string>> {
  return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).Metadata ?? {};
}

/** An object's bytes, decompressed by its suffix (independently of the sink's own code for gzip). */
export async function plainBytes(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const raw = await getBytes(client, bucket, key);
  if (key.endsWith('.gz')) return gunzipSync(raw);
  if (key.endsWith('.zst')) {
    await loadZstd();
    const s = new ZstdFrameSplitter();
    const out = Buffer.concat(s.push(raw));
    s.end();
    return out;
  }
  return raw;
}

/** Every record of every data object: JSON Lines envelopes parsed, Parquet rows as objects. */
export async function readRecords(
  client: S3Client,
  bucket: string,
  prefix = '',
): Promise<{ key: string; record: Record<string, unknown> }[]> {
  const out: { key: string; record: Record<string, unknown> }[] = [];
  await loadZstd();
  for (const key of await dataKeys(client, bucket, prefix)) {
    const bytes = await plainBytes(client, bucket, key);
    if (key.endsWith('.parquet')) {
      const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      const rows = await parquetReadObjects({
        file: ab,
        compressors: { GZIP: (i: Uint8Array) => gunzipSync(i), ZSTD: (i: Uint8Array, n: number) => zstdDecompressFrame(i, n) },
      });
      for (const r of rows) out.push({ key, record: r as Record<string, unknown> });
    } else {
      for (const line of bytes.toString('utf8').split('\n'))
        if (line !== '') out.push({ key, record: JSON.parse(line) as Record<string, unknown> });
    }
  }
  return out;
}

export function value(offset: number, extra = ''): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify({ n: offset, text: `message ${offset}${extra}` }));
}

export function message(offset: number, over: Partial<SinkMessage> = {}): SinkMessage {
  return { offset, timestamp: 1_700_000_000_000 + offset, headers: {}, value: value(offset), ...over };
}

/** A batch of one incarnation of `station` (`stationId` defaults to `<station>-id`). */
export function batch(station: string, partition: number, offsets: number[] | SinkMessage[], stationId = `${station}-id`): SinkBatch {
  const messages = offsets.map((o) => (typeof o === 'number' ? message(o) : o));
  return {
    station,
    stationId,
    partition,
    firstOffset: messages[0]?.offset ?? 0,
    lastOffset: messages[messages.length - 1]?.offset ?? 0,
    messages,
  };
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

export const signal = new AbortController().signal;

/** Pending ledger markers without a done marker of the same attempt: units a writer began and never finished. */
export async function unfinished(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys = await listKeys(client, bucket, `${prefix}_junction/`);
  const id = (k: string) => {
    const dir = k.slice(0, k.lastIndexOf('/', k.lastIndexOf('/') - 1));
    const m = parseMarkerName(k.slice(k.lastIndexOf('/') + 1));
    return m ? `${dir}|${m.last}|${m.first}|${m.attempt ?? ''}` : k;
  };
  const done = new Set(keys.filter((k) => k.includes('/done/')).map(id));
  return keys.filter((k) => k.includes('/pending/') && !done.has(id(k)));
}

/**
 * A data object's key without its station id and attempt segments — `<dir><station>+<p>+<first>-<last><ext>`
 * — for assertions that should not depend on the random attempt.
 */
export function short(key: string): string {
  return key.replace(/^(.*\+\d+\+\d{20}-\d{20})\+[A-Za-z0-9_-]+\+[0-9a-z]+(\..*)$/, '$1$2');
}

/** The data keys, shortened (see {@link short}). */
export async function shortKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  return (await dataKeys(client, bucket, prefix)).map(short);
}

/** `<first, 20 digits>-<last, 20 digits>`. */
export function span(first: number, last: number): string {
  return `${String(first).padStart(20, '0')}-${String(last).padStart(20, '0')}`;
}
