/**
 * The S3 sink in a real broker process against s3rver with the real AWS SDK: kill -9 of the broker while
 * a multipart upload is in progress (seen on s3rver's disk), twice at different moments: exactly N
 * records in the bucket, each once, byte for byte; every interrupted upload aborted. (Split from
 * connect-s3-roundtrip so the scenarios run on different workers.)
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { api, sleep } from '../src/index.js';
import {
  dataKeys,
  dlsCount,
  expectExactlySent,
  MiB,
  type Msg,
  openUploads,
  produce,
  records,
  s3Yaml,
  status,
  until,
  useS3Setup,
} from './s3-roundtrip.js';

describe('S3 sink through the connector runtime: kill -9 mid multipart upload', () => {
  const setup = useS3Setup();

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
      # Batches are cut by size: on a busy machine a 2 s latency cut made small single-part objects,
      # whose upload completes between the test seeing its part and the kill.
      maxLatencyMs: 10000
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

    /** An upload of an object of more than one part: its key (the proxy saw it) spans over 6,000 offsets of ~1 KiB. */
    const multipartSized = (id: string): boolean => {
      const m = /\+(\d+)-(\d+)\+[^/]*$/.exec(s3.proxy.uploads.get(id)?.key ?? '');
      return m !== null && Number(m[2]) - Number(m[1]) + 1 > 6000;
    };
    /**
     * Waits until `ready()` and a multipart-sized upload begun since the last kill holds part `part`, then
     * SIGKILLs the broker at once. Returns the uploads that kill interrupted (still open once the broker is gone).
     */
    const killMidUpload = async (part: string, ready: () => Promise<boolean>, before: Set<string>): Promise<Set<string>> => {
      const deadline = Date.now() + 60_000;
      let ok = false;
      for (;;) {
        if (Date.now() > deadline) throw new Error(`no multipart upload at part ${part} seen\n${broker.output()}`);
        if (!ok) ok = await ready();
        if (ok) {
          const open = await openUploads(s3, bucket);
          if ([...open].some(([id, parts]) => !before.has(id) && multipartSized(id) && parts.includes(part))) {
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
