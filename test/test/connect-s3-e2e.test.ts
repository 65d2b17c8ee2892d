/**
 * The S3 sink in a real broker process, against s3rver with the real AWS SDK: N messages produced →
 * exactly N records in the bucket, each value byte for byte; SIGKILL of the broker mid-stream and a
 * restart → still exactly N; S3 away for a while → the task retries by itself and nothing is lost;
 * wrong credentials → the task is FAILED with a clear error in /status.
 */
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { startS3rver, type S3rverProcess, s3ClientConfig } from '../fakes/s3rver.js';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'orders';

function client(s3: S3rverProcess): S3Client {
  return new S3Client(s3ClientConfig(s3));
}

// s3rver checks the access key id (not the signature), so the key id is what a test gets wrong.
function yaml(s3: S3rverProcess, bucket: string): string {
  return `stations:
  - name: ${STATION}
    partitions: 2
connectors:
  - name: archive
    plugin: s3
    station: ${STATION}
    config:
      bucket: ${bucket}
      endpoint: ${s3.endpoint}
      region: us-east-1
      forcePathStyle: true
      checksums: when-required
      credentials:
        accessKeyId: \${env:S3_KEY_ID}
        secretAccessKey: S3RVER
      compression: gzip
    batch:
      maxMessages: 500
      maxLatencyMs: 100
    errors:
      retryTimeoutMs: 120000
      retryMaxDelayMs: 1000
`;
}

/** Every JSON Lines record in the bucket's data objects (the ledger under _junction/ left out). */
async function records(c: S3Client, bucket: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await c.send(new ListObjectsV2Command({ Bucket: bucket, ...(token ? { ContinuationToken: token } : {}) }));
    for (const o of page.Contents ?? []) {
      if (!o.Key || o.Key.includes('_junction/')) continue;
      const res = await c.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
      const raw = Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
      const text = (o.Key.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
      for (const line of text.split('\n')) if (line) out.push(line);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** The `value` of each line, as its exact text: the sink embeds a one-line JSON value byte for byte. */
function valueText(line: string): string {
  const at = line.indexOf('"value":');
  return line.slice(at + 8, -1);
}

async function produce(url: string, from: number, n: number): Promise<string[]> {
  const values: string[] = [];
  for (let i = from; i < from + n; i += 250) {
    const chunk = Array.from({ length: Math.min(250, from + n - i) }, (_, j) => `{"id":"m-${i + j}","pad":"${'x'.repeat((i + j) % 400)}"}`);
    await api(url, 'POST', `/v1/stations/${STATION}/messages`, { messages: chunk.map((value, j) => ({ value, key: `k${(i + j) % 11}` })) });
    values.push(...chunk);
  }
  return values;
}

async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('S3 sink connector in a real broker process', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  async function setup(keyId = 'S3RVER') {
    const s3 = await startS3rver();
    cleanup.push(() => s3.close());
    const c = client(s3);
    const bucket = `archive-${Date.now().toString(36)}`;
    await c.send(new CreateBucketCommand({ Bucket: bucket }));
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-s3-e2e-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(configPath, yaml(s3, bucket));
    const start = async (): Promise<BrokerProcess> => {
      const b = await startBroker({ dataDir, args: ['--config', configPath], env: { S3_KEY_ID: keyId } });
      cleanup.push(() => b.kill());
      return b;
    };
    return { s3, c, bucket, start };
  }

  it('exactly N records byte for byte, through a SIGKILL of the broker and 3 s without S3', async () => {
    const { s3, c, bucket, start } = await setup();
    let broker = await start();
    const sent = await produce(broker.url, 0, 3000);
    // Kill the broker while the sink is still working through the backlog.
    await until('the first objects', 20_000, async () => ((await records(c, bucket)).length > 0 ? true : undefined));
    await broker.kill();
    broker = await start();
    sent.push(...(await produce(broker.url, 3000, 1000)));
    // S3 goes away; the task keeps retrying; S3 comes back and it catches up by itself.
    await s3.stop();
    sent.push(...(await produce(broker.url, 4000, 1000)));
    await sleep(3000);
    await s3.start();
    const lines = await until('every record in S3', 90_000, async () => {
      const got = await records(c, bucket);
      return got.length >= sent.length ? got : undefined;
    });
    await sleep(500);
    const final = await records(c, bucket);
    expect(final.length).toBe(sent.length);
    expect(new Set(final.map(valueText))).toEqual(new Set(sent));
    expect(lines.length).toBe(sent.length);
    const status = await api<{ connector: { state: string }; tasks: { state: string }[] }>(
      broker.url,
      'GET',
      '/v1/connectors/archive/status',
    );
    expect(status.connector.state).toBe('RUNNING');
    await broker.stop();
  });

  it('wrong credentials: the task is FAILED with AUTH_FAILED and nothing is written', async () => {
    const { c, bucket, start } = await setup('NOT-A-KEY');
    const broker = await start();
    await produce(broker.url, 0, 10);
    const status = await until('a FAILED task', 30_000, async () => {
      const s = await api<{ connector: { state: string; trace?: string }; tasks: { state: string; trace?: string }[] }>(
        broker.url,
        'GET',
        '/v1/connectors/archive/status',
      );
      return s.tasks.some((t) => t.state === 'FAILED') || s.connector.state === 'FAILED' ? s : undefined;
    });
    expect(JSON.stringify(status)).toMatch(/AUTH_FAILED|SignatureDoesNotMatch|InvalidAccessKeyId|credentials/i);
    expect(await records(c, bucket)).toEqual([]);
    // The broker keeps serving.
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);
    await broker.stop();
  });
});
