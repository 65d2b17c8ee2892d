/**
 * The S3 sink and the S3 source together, in a real broker process (junction.yaml `connectors:` and
 * `POST /v1/connectors`), against s3rver with the real AWS SDK — round trip: station A → s3 sink →
 * bucket → s3-source → station B, byte for byte (non-ASCII text, values that are not JSON, bytes that
 * are not UTF-8, an empty value), keys and headers equal, A's per-partition order kept; a SIGKILL of the
 * broker while the source reads, then a graceful restart and a SIGKILL restart once it is done: B still
 * holds exactly N.
 *
 * Its siblings (same helpers, s3-roundtrip.ts): connect-s3-outage (S3 down for 30 s) and
 * connect-s3-multipart-kill (kill -9 mid multipart upload).
 */
import { describe, expect, it } from 'vitest';
import { api, sleep, type BrokerProcess } from '../src/index.js';
import {
  browse,
  dlsCount,
  expectExactlySent,
  type Msg,
  produce,
  records,
  s3Yaml,
  stationCount,
  status,
  until,
  useS3Setup,
} from './s3-roundtrip.js';

describe('S3 sink and S3 source through the connector runtime', () => {
  const setup = useS3Setup();

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
});
