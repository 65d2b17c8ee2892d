/**
 * What the S3 round-trip files (connect-s3-roundtrip, connect-s3-outage, connect-s3-multipart-kill) share:
 * a broker process with a junction.yaml against s3rver (the real AWS SDK), produce and browse over the
 * JSON API, and the bucket's records decoded by hand. One file per scenario, so the three (each ~50 s,
 * most of it waiting on processes and timers) run on different workers instead of one after the other.
 */
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, expect } from 'vitest';
import { startS3rver, type S3rverProcess, s3ClientConfig } from '../fakes/s3rver.js';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

export const MiB = 1024 * 1024;

export interface Msg {
  key?: string;
  headers: Record<string, string>;
  value: Buffer;
}
/** A produced message and where the broker stored it. */
export interface Sent extends Msg {
  partition: number;
  offset: number;
}
/** A record read back from the bucket. */
export interface Rec {
  objectKey: string;
  partition: number;
  offset: number;
  key?: string;
  headers: Record<string, string>;
  value: Buffer;
}
export interface Status {
  connector: { state: string; trace?: string };
  tasks: { id: number; state: string; finished?: boolean; lastError?: { code: string; message: string } }[];
  lag?: number;
  lastError?: { code: string; message: string };
}

export function client(s3: S3rverProcess): S3Client {
  return new S3Client(s3ClientConfig(s3));
}

/** The connection part of a connector's config (YAML, indented for `config:`). */
export function s3Yaml(s3: S3rverProcess, bucket: string, indent = '      '): string {
  return [
    `bucket: ${bucket}`,
    `endpoint: ${s3.endpoint}`,
    'region: us-east-1',
    'forcePathStyle: true',
    'checksums: when-required',
    'credentials:',
    '  accessKeyId: S3RVER',
    '  secretAccessKey: S3RVER',
  ]
    .map((l) => indent + l)
    .join('\n');
}

/** Data object keys in the bucket (the sink's ledger under `_junction/` left out), in listing order. */
export async function dataKeys(c: S3Client, bucket: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await c.send(new ListObjectsV2Command({ Bucket: bucket, ...(token ? { ContinuationToken: token } : {}) }));
    for (const o of page.Contents ?? []) if (o.Key && !o.Key.includes('_junction/')) out.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/**
 * Every JSON Lines record in the bucket, decoded by hand (not with the connectors' code): `value: string`
 * gives the value as a JSON string or as base64 with `"base64":true`; `value: json` embeds the value's
 * own text, which is the line from `"value":` to the closing brace (value is the last member).
 */
export async function records(c: S3Client, bucket: string, valueMode: 'string' | 'json'): Promise<Rec[]> {
  const out: Rec[] = [];
  for (const objectKey of await dataKeys(c, bucket)) {
    const res = await c.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey }));
    const raw = Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    const text = (objectKey.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
    // <station>/<partition>/<station>+<partition>+<first offset>.jsonl[.gz]
    const partition = Number(objectKey.split('/')[1]);
    for (const line of text.split('\n')) {
      if (!line) continue;
      const o = JSON.parse(line) as {
        offset: number;
        key: string | null;
        headers: Record<string, string>;
        value: unknown;
        base64?: boolean;
      };
      let value: Buffer;
      if (valueMode === 'json') value = Buffer.from(line.slice(line.indexOf('"value":') + 8, -1), 'utf8');
      else value = o.base64 === true ? Buffer.from(o.value as string, 'base64') : Buffer.from(o.value as string, 'utf8');
      out.push({ objectKey, partition, offset: o.offset, ...(o.key === null ? {} : { key: o.key }), headers: o.headers, value });
    }
  }
  return out;
}

/** Produces over the JSON API (values as base64, so any bytes); returns each message with its partition and offset. */
export async function produce(url: string, station: string, msgs: Msg[], chunk = 500): Promise<Sent[]> {
  const out: Sent[] = [];
  for (let i = 0; i < msgs.length; i += chunk) {
    const part = msgs.slice(i, i + chunk);
    const res = await api<{
      results: ({ partition: number; offset: number; duplicate?: true } | { error: { code: string; message: string } })[];
    }>(url, 'POST', `/v1/stations/${station}/messages`, {
      messages: part.map((m) => ({
        valueBase64: m.value.toString('base64'),
        headers: m.headers,
        ...(m.key === undefined ? {} : { key: m.key }),
      })),
    });
    res.results.forEach((r, j) => {
      if ('error' in r || r.duplicate) throw new Error(`produce of message ${i + j} answered ${JSON.stringify(r)}`);
      out.push({ ...part[j]!, partition: r.partition, offset: r.offset });
    });
  }
  return out;
}

/** Every message of one partition of a station, through the browse API (base64 values). */
export async function browse(url: string, station: string, partition: number): Promise<(Msg & { offset: number })[]> {
  const out: (Msg & { offset: number })[] = [];
  let from = 1;
  for (;;) {
    const page = await api<{ messages: { offset: number; key?: string; headers: Record<string, string>; valueBase64: string }[] }>(
      url,
      'GET',
      `/v1/stations/${station}/messages?partition=${partition}&fromOffset=${from}&limit=10000&encoding=base64`,
    );
    if (page.messages.length === 0) return out;
    for (const m of page.messages)
      out.push({
        offset: m.offset,
        ...(m.key === undefined ? {} : { key: m.key }),
        headers: m.headers,
        value: Buffer.from(m.valueBase64, 'base64'),
      });
    from = page.messages[page.messages.length - 1]!.offset + 1;
  }
}

export async function stationCount(url: string, station: string): Promise<number> {
  return (await api<{ messages: number }>(url, 'GET', `/v1/stations/${station}`)).messages;
}

export async function dlsCount(url: string, station: string): Promise<number> {
  return (await api<{ messages: unknown[] }>(url, 'GET', `/v1/stations/${station}/dls?limit=10000`)).messages.length;
}

export function status(url: string, name: string): Promise<Status> {
  return api<Status>(url, 'GET', `/v1/connectors/${name}/status`);
}

export async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>, detail?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const v = await f().catch((err: unknown) => {
      last = err;
      return undefined;
    });
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}${detail ? `\n${detail()}` : ''}`);
    await sleep(100);
  }
}

/** Each (partition, offset) of `sent` exactly once in `got`, with the same value bytes, key and headers. */
export function expectExactlySent(got: Rec[], sent: Sent[]): void {
  const want = new Map(sent.map((s) => [`${s.partition}:${s.offset}`, s]));
  const seen = new Set<string>();
  const dup: string[] = [];
  const wrong: string[] = [];
  for (const r of got) {
    const id = `${r.partition}:${r.offset}`;
    if (seen.has(id)) dup.push(id);
    seen.add(id);
    const s = want.get(id);
    if (
      !s ||
      !s.value.equals(r.value) ||
      s.key !== r.key ||
      JSON.stringify(Object.entries(s.headers).sort()) !== JSON.stringify(Object.entries(r.headers).sort())
    )
      wrong.push(id);
  }
  expect(dup.slice(0, 10), 'duplicated records').toEqual([]);
  expect(wrong.slice(0, 10), 'records not as produced').toEqual([]);
  expect(got.length).toBe(sent.length);
  expect(seen.size).toBe(sent.length);
}

/** Multipart uploads s3rver holds open (initiated, not completed): `<dir>/<bucket>/._S3rver_uploads/<uploadId>/<part>`. */
export async function openUploads(s3: S3rverProcess, bucket: string): Promise<Map<string, string[]>> {
  const dir = join(s3.directory, bucket, '._S3rver_uploads');
  const out = new Map<string, string[]>();
  for (const id of await readdir(dir).catch(() => [] as string[])) {
    const parts = (await readdir(join(dir, id)).catch(() => [] as string[])).filter((f) => /^\d+$/.test(f));
    out.set(id, parts);
  }
  return out;
}

/**
 * Registers an afterAll that undoes what `setup` made (brokers, s3rver, data dirs), and returns `setup`:
 * a fresh s3rver with a bucket, a data dir holding `yaml(s3, bucket)` as junction.yaml, and `start()`
 * for a broker on it (each start a new process; the last one's output in `logs()`).
 */
export function useS3Setup() {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  async function setup(name: string, yaml: (s3: S3rverProcess, bucket: string) => string) {
    const s3 = await startS3rver();
    cleanup.push(() => s3.close());
    const c = client(s3);
    cleanup.push(async () => c.destroy());
    const bucket = `${name}-${Date.now().toString(36)}`;
    await c.send(new CreateBucketCommand({ Bucket: bucket }));
    const dataDir = await mkdtemp(join(tmpdir(), `junction-s3-${name}-`));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(configPath, yaml(s3, bucket));
    let current: BrokerProcess | undefined;
    const start = async (): Promise<BrokerProcess> => {
      const b = await startBroker({ dataDir, args: ['--config', configPath] });
      cleanup.push(() => b.kill());
      current = b;
      return b;
    };
    return { s3, c, bucket, start, logs: () => current?.output() ?? '' };
  }
  return setup;
}
