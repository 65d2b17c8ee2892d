/**
 * The S3 sink and the S3 source together, in a real broker process (junction.yaml `connectors:` and
 * `POST /v1/connectors`), against s3rver with the real AWS SDK:
 *
 * 1. round trip: station A → s3 sink → bucket → s3-source → station B, byte for byte (non-ASCII text,
 *    values that are not JSON, bytes that are not UTF-8, an empty value), keys and headers equal, A's
 *    per-partition order kept; a SIGKILL of the broker while the source reads, then a graceful
 *    restart and a SIGKILL restart once it is done: B still holds exactly N;
 * 2. S3 down for 30 s while messages wait: once it is back, exactly N records, byte for byte, the
 *    connector and its tasks RUNNING, nothing dead-lettered;
 * 3. kill -9 of the broker while a multipart upload is in progress (seen on s3rver's disk), twice at
 *    different moments: exactly N records in the bucket, each once, byte for byte.
 */
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { startS3rver, type S3rverProcess, s3ClientConfig } from '../fakes/s3rver.js';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const MiB = 1024 * 1024;

interface Msg {
  key?: string;
  headers: Record<string, string>;
  value: Buffer;
}
/** A produced message and where the broker stored it. */
interface Sent extends Msg {
  partition: number;
  offset: number;
}
/** A record read back from the bucket. */
interface Rec {
  objectKey: string;
  partition: number;
  offset: number;
  key?: string;
  headers: Record<string, string>;
  value: Buffer;
}
interface Status {
  connector: { state: string; trace?: string };
  tasks: { id: number; state: string; finished?: boolean; lastError?: { code: string; message: string } }[];
  lag?: number;
  lastError?: { code: string; message: string };
}

function client(s3: S3rverProcess): S3Client {
  return new S3Client(s3ClientConfig(s3));
}

/** The connection part of a connector's config (YAML, indented for `config:`). */
function s3Yaml(s3: S3rverProcess, bucket: string, indent = '      '): string {
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
async function dataKeys(c: S3Client, bucket: string): Promise<string[]> {
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
async function records(c: S3Client, bucket: string, valueMode: 'string' | 'json'): Promise<Rec[]> {
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
async function produce(url: string, station: string, msgs: Msg[], chunk = 500): Promise<Sent[]> {
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
async function browse(url: string, station: string, partition: number): Promise<(Msg & { offset: number })[]> {
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

async function stationCount(url: string, station: string): Promise<number> {
  return (await api<{ messages: number }>(url, 'GET', `/v1/stations/${station}`)).messages;
}

async function dlsCount(url: string, station: string): Promise<number> {
  return (await api<{ messages: unknown[] }>(url, 'GET', `/v1/stations/${station}/dls?limit=10000`)).messages.length;
}

function status(url: string, name: string): Promise<Status> {
  return api<Status>(url, 'GET', `/v1/connectors/${name}/status`);
}

async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>, detail?: () => string): Promise<T> {
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
function expectExactlySent(got: Rec[], sent: Sent[]): void {
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
async function openUploads(s3: S3rverProcess, bucket: string): Promise<Map<string, string[]>> {
  const dir = join(s3.directory, bucket, '._S3rver_uploads');
  const out = new Map<string, string[]>();
  for (const id of await readdir(dir).catch(() => [] as string[])) {
    const parts = (await readdir(join(dir, id)).catch(() => [] as string[])).filter((f) => /^\d+$/.test(f));
    out.set(id, parts);
  }
  return out;
}

describe('S3 sink and S3 source through the connector runtime', () => {
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

  it('round trip: sink → bucket → source into a second station, byte for byte, keys, headers and order; no duplicate after SIGKILL and restarts', async () => {
    const N = 3000;
    const { s3, c, bucket, start, logs } = await setup(
      'roundtrip',
      (s3, bucket) => `stations:
  - name: orders
    partitions: 3
  - name: restored
    partitions: 1
connectors:
  - name: archive
    plugin: s3
    station: orders
    config:
${s3Yaml(s3, bucket)}
      format: jsonl
      jsonl:
        value: string
        fields: [offset, timestamp, key, headers]
      compression: gzip
      compressionLevel: 1
    batch:
      maxMessages: 400
      maxLatencyMs: 100
`,
    );
    // Values of every kind `value: string` documents it gives back exactly: JSON, non-ASCII text, text
    // that is not JSON (quotes, backslashes, CR LF, tabs, NUL), bytes that are not UTF-8, an empty value.
    const msgs: Msg[] = Array.from({ length: N }, (_, i) => {
      let value: Buffer;
      switch (i % 8) {
        case 0:
          value = Buffer.from(`{"id":${i},"text":"Grüße aus Köln — 日本語 🎉","pad":"${'x'.repeat(i % 300)}"}`);
          break;
        case 1:
          value = Buffer.from(`plain text #${i}: ünïcödé, "quoted", back\\slash,\ttab`);
          break;
        case 2:
          value = Buffer.from(`line one ${i}\r\nline two\nλόγος\u0000end\r`);
          break;
        case 3:
          value = Buffer.from([0xff, 0xfe, 0x00, i & 0xff, (i >> 8) & 0xff, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x0a, 0x22]);
          break;
        case 4:
          value = i % 40 === 4 ? Buffer.alloc(0) : Buffer.from(`[${i},1.5e3,null,true,"\\u00e9"]`);
          break;
        case 5:
          value = Buffer.from(`🙂${'ж'.repeat(i % 50)} ${i}`);
          break;
        default:
          value = Buffer.from(`{"id":"m-${i}","n":${i * 7},"nested":{"a":[1,2,{"b":"${'y'.repeat(i % 120)}"}]}}`);
      }
      const key = i % 7 === 0 ? undefined : i % 7 === 1 ? `clé-${i % 5}-ключ` : `k${i % 13}`;
      const headers: Record<string, string> =
        i % 3 === 0
          ? {}
          : i % 3 === 1
            ? { 'content-type': 'text/plain; charset=utf-8', 'x-seq': String(i) }
            : { 'x-lang': '日本語', 'x-empty': '', 'x-quote': 'a "b" \\c' };
      return { ...(key === undefined ? {} : { key }), headers, value };
    });
    let broker = await start();
    const sent = await produce(broker.url, 'orders', msgs);
    expect(new Set(sent.map((s) => s.partition)).size).toBe(3);

    // The archive: exactly N records, byte for byte.
    await until(
      'every record in the bucket',
      60_000,
      async () => ((await records(c, bucket, 'string')).length >= N ? true : undefined),
      logs,
    );
    await sleep(500);
    expectExactlySent(await records(c, bucket, 'string'), sent);
    expect(await dlsCount(broker.url, 'orders')).toBe(0);

    // The source, created over the REST API, reads the archive back into `restored`. Small batches, so
    // the read takes long enough to be killed in the middle of.
    await api(broker.url, 'POST', '/v1/connectors', {
      name: 'restore',
      plugin: 's3-source',
      station: 'restored',
      config: {
        bucket,
        endpoint: s3.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        checksums: 'when-required',
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        prefix: 'orders/',
        batchSize: 10,
      },
    });
    // SIGKILL of the broker while the source is between its first and its last message.
    let atKill = 0;
    for (const deadline = Date.now() + 30_000; ;) {
      const n = await stationCount(broker.url, 'restored');
      if (n > 0 && n < N) {
        await broker.kill();
        atKill = n;
        break;
      }
      if (n >= N) throw new Error(`the source read all ${n} messages before it could be killed`);
      if (Date.now() > deadline) throw new Error(`the source did not start reading\n${broker.output()}`);
      await sleep(5);
    }
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(N);

    // What `restored` must hold: A's partitions one after another (the keys sort by partition, then
    // first offset), each in offset order.
    const expected = [...sent].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    const checkRestored = async (url: string) => {
      const got = await browse(url, 'restored', 0);
      expect(got.length).toBe(N);
      const wrong: number[] = [];
      got.forEach((g, i) => {
        const w = expected[i]!;
        if (
          !g.value.equals(w.value) ||
          g.key !== w.key ||
          JSON.stringify(Object.entries(g.headers).sort()) !== JSON.stringify(Object.entries(w.headers).sort())
        )
          wrong.push(i);
      });
      expect(wrong.slice(0, 10), `restored messages differing from A's (first: ${JSON.stringify(got[wrong[0] ?? 0])})`).toEqual([]);
    };
    const waitFinished = async (b: BrokerProcess) => {
      await until(
        'the source to finish its read',
        60_000,
        async () => {
          const s = await status(b.url, 'restore');
          return s.tasks.length === 1 && s.tasks[0]!.finished === true ? s : undefined;
        },
        () => b.output(),
      );
      // Gone idle: the count does not move any more.
      const n = await stationCount(b.url, 'restored');
      await sleep(1000);
      expect(await stationCount(b.url, 'restored')).toBe(n);
      const s = await status(b.url, 'restore');
      expect(s.connector.state).toBe('RUNNING');
      expect(s.tasks.map((t) => t.state)).toEqual(['RUNNING']);
    };

    // It resumes by itself after the restart; the repeats after its last stored position are dropped.
    broker = await start();
    await waitFinished(broker);
    await checkRestored(broker.url);

    // A graceful restart once done: it resumes after the last key and adds nothing.
    await broker.stop();
    broker = await start();
    await waitFinished(broker);
    expect(await stationCount(broker.url, 'restored')).toBe(N);

    // And a SIGKILL once done.
    await broker.kill();
    broker = await start();
    await waitFinished(broker);
    await checkRestored(broker.url);
    // The sink is unaffected by all this: still exactly N in the bucket.
    expectExactlySent(await records(c, bucket, 'string'), sent);
    await broker.stop();
  }, 120_000);

  it('S3 stopped for 30 s while messages wait, then back: every record byte for byte, RUNNING, nothing dead-lettered', async () => {
    const { s3, c, bucket, start, logs } = await setup(
      'outage',
      (s3, bucket) => `stations:
  - name: events
    partitions: 2
connectors:
  - name: archive
    plugin: s3
    station: events
    config:
${s3Yaml(s3, bucket)}
      requestTimeoutMs: 10000
    batch:
      maxMessages: 300
      maxLatencyMs: 100
    errors:
      retryTimeoutMs: 120000
      retryMaxDelayMs: 2000
`,
    );
    const event = (i: number): Msg => ({
      key: `device-${i % 17}`,
      headers: i % 2 ? { source: 'sensor', 'x-ünï': 'çödé' } : {},
      value: Buffer.from(`{"id":"e-${i}","city":"Zürich","note":"température ${i % 40} °C — 東京","pad":"${'p'.repeat(i % 200)}"}`),
    });
    const broker = await start();
    // Some before the outage, written while S3 is up.
    const sent = await produce(
      broker.url,
      'events',
      Array.from({ length: 1000 }, (_, i) => event(i)),
    );
    await until('the first 1000 records', 30_000, async () => ((await records(c, bucket, 'json')).length >= 1000 ? true : undefined), logs);

    await s3.stop();
    const downAt = Date.now();
    sent.push(
      ...(await produce(
        broker.url,
        'events',
        Array.from({ length: 2000 }, (_, i) => event(1000 + i)),
      )),
    );
    // 30 s of outage; the connector must not give up meanwhile.
    const seen = new Set<string>();
    let lag = 0;
    while (Date.now() - downAt < 30_000) {
      const st = await status(broker.url, 'archive');
      seen.add(st.connector.state);
      for (const t of st.tasks) seen.add(`task:${t.state}`);
      lag = st.lag ?? -1;
      await sleep(1000);
    }
    expect(seen.has('FAILED'), `connector states seen during the outage: ${[...seen].join(', ')}`).toBe(false);
    // The outage held the new messages back (nothing could be written).
    expect(lag).toBeGreaterThan(0);
    await s3.start();

    await until(
      'every record in the bucket after the outage',
      60_000,
      async () => ((await records(c, bucket, 'json')).length >= sent.length ? true : undefined),
      logs,
    );
    await sleep(1000);
    expectExactlySent(await records(c, bucket, 'json'), sent);
    const st = await until('the connector RUNNING with no lag', 20_000, async () => {
      const s = await status(broker.url, 'archive');
      return s.connector.state === 'RUNNING' && s.tasks.length > 0 && s.tasks.every((t) => t.state === 'RUNNING') && s.lag === 0
        ? s
        : undefined;
    });
    expect(st.connector.state).toBe('RUNNING');
    expect(await dlsCount(broker.url, 'events')).toBe(0);
    await broker.stop();
  }, 120_000);

  it('kill -9 of the broker in the middle of a multipart upload, twice: exactly N records, each once, byte for byte', async () => {
    const { s3, c, bucket, start, logs } = await setup(
      'multipart',
      (s3, bucket) => `stations:
  - name: bulk
    partitions: 2
connectors:
  - name: bulk-archive
    plugin: s3
    station: bulk
    state: PAUSED
    writeTimeoutMs: 120000
    config:
${s3Yaml(s3, bucket)}
      compression: none
      jsonl:
        value: string
      upload:
        multipartThreshold: ${5 * MiB}
        partSize: ${5 * MiB}
        queueSize: 1
    batch:
      maxMessages: 100000
      maxBytes: ${12 * MiB}
      maxLatencyMs: 2000
    errors:
      retryTimeoutMs: 120000
      retryMaxDelayMs: 1000
`,
    );
    // ~48 MiB of ~1 KiB values: 2 partitions × 2 objects of ~12 MiB, each a multipart upload of 3 parts.
    const N = 48_000;
    const msgs: Msg[] = Array.from({ length: N }, (_, i) => ({
      key: `k${i % 17}`,
      headers: {},
      value: Buffer.from(`{"i":${i},"body":"${String.fromCharCode(97 + (i % 26)).repeat(980 + (i % 64))}"}`),
    }));
    let broker = await start();
    // Produced while the connector is paused, so the sink has a full backlog when it starts.
    const sent = await produce(broker.url, 'bulk', msgs, 2000);
    await api(broker.url, 'PUT', '/v1/connectors/bulk-archive/resume');

    /**
     * Waits until `ready()` and an upload begun since the last kill holds part `part`, then SIGKILLs the
     * broker at once. Returns the uploads that kill interrupted (still open once the broker is gone).
     */
    const killMidUpload = async (part: string, ready: () => Promise<boolean>, before: Set<string>): Promise<Set<string>> => {
      const deadline = Date.now() + 60_000;
      let ok = false;
      for (;;) {
        if (Date.now() > deadline) throw new Error(`no multipart upload at part ${part} seen\n${broker.output()}`);
        if (!ok) ok = await ready();
        if (ok) {
          const open = await openUploads(s3, bucket);
          if ([...open].some(([id, parts]) => !before.has(id) && parts.includes(part))) {
            await broker.kill();
            break;
          }
        }
        await sleep(ok ? 2 : 50);
      }
      // The broker is gone: what is still open now is what the kill interrupted (nobody completes it).
      const interrupted = new Set([...(await openUploads(s3, bucket)).keys()].filter((id) => !before.has(id)));
      expect(interrupted.size, 'a multipart upload interrupted by the kill').toBeGreaterThan(0);
      return interrupted;
    };

    // 1: during the very first upload, nothing committed yet.
    const first = await killMidUpload('1', async () => true, new Set());
    expect(await dataKeys(c, bucket)).toEqual([]);
    broker = await start();
    // 2: later, once objects are committed, during the second part of another upload.
    const second = await killMidUpload('2', async () => (await dataKeys(c, bucket)).length >= 1, first);
    broker = await start();

    await until(
      'the sink to catch up',
      90_000,
      async () => {
        const s = await status(broker.url, 'bulk-archive');
        return s.lag === 0 ? s : undefined;
      },
      logs,
    );
    const got = await records(c, bucket, 'string');
    expectExactlySent(got, sent);
    // The archive is made of multipart-sized objects (a replay after a kill may cut a smaller one).
    const sizes = (await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'bulk/' }))).Contents?.map((o) => o.Size ?? 0) ?? [];
    expect(sizes.filter((n) => n > 5 * MiB).length, `object sizes ${sizes.join(', ')}`).toBeGreaterThanOrEqual(2);
    const st = await status(broker.url, 'bulk-archive');
    expect(st.connector.state).toBe('RUNNING');
    expect(await dlsCount(broker.url, 'bulk')).toBe(0);
    // Every upload the kills interrupted was aborted by the restarted task (their ids are in the pending
    // markers), with S3's semantics as the proxy in front of s3rver gives them (s3rver itself keeps the
    // parts on disk); every other upload was completed. Nothing is left open to be billed for.
    expect([...s3.proxy.uploads].filter(([, u]) => u.bucket === bucket && u.state === 'open').map(([, u]) => u.key)).toEqual([]);
    for (const id of [...first, ...second]) expect(s3.proxy.uploads.get(id)?.state, `upload ${id} interrupted by a kill`).toBe('aborted');
    await broker.stop();
  }, 150_000);
});
