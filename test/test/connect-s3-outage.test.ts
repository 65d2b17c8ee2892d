/**
 * The S3 sink in a real broker process against s3rver with the real AWS SDK: S3 down for 30 s while
 * messages wait; once it is back, exactly N records, byte for byte, the connector and its tasks RUNNING,
 * nothing dead-lettered. (Split from connect-s3-roundtrip so the scenarios run on different workers.)
 */
import { describe, expect, it } from 'vitest';
import { sleep } from '../src/index.js';
import { dlsCount, expectExactlySent, type Msg, produce, records, s3Yaml, status, until, useS3Setup } from './s3-roundtrip.js';

describe('S3 sink through the connector runtime: an S3 outage', () => {
  const setup = useS3Setup();

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
});
