/**
 * kill -9 of a process running the sink, then a new sink replaying cut differently: each offset exactly
 * once, byte for byte — in the middle of a multipart upload, and with a write of the killed process held
 * by S3 (the proxy in front of s3rver) across its death and applied after the replay (a late write).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import plugin from '../src/index.js';
import { fakeContext } from '@junction/sdk-connector/testing';
import type { S3Request } from '../../../test/fakes/s3-proxy.js';
import {
  batch,
  dataKeys,
  listKeys,
  message,
  newBucket,
  plainBytes,
  range,
  s3Client,
  signal,
  sinkConfig,
  startS3rver,
  type S3rverProcess,
  unfinished,
} from './helpers.js';

let server: S3rverProcess;
let client: S3Client;

beforeAll(async () => {
  server = await startS3rver();
  client = s3Client(server);
});
afterEach(() => {
  server.proxy.listsUploads = true;
});
afterAll(async () => {
  client?.destroy();
  await server?.close();
});

const STATION_ID = 'crash-1';
const valueText = (o: number) => `value ${o} ${'z'.repeat(1000 + (o % 50))}`;

/**
 * A process writing `batches` ([first, last] each) one after another through the S3 sink; it prints
 * `part <n>` for each UploadPart it starts and `ok <last>` for each batch confirmed.
 */
function writer(config: Record<string, unknown>, batches: [number, number][]): ChildProcess {
  const dist = (f: string) => JSON.stringify(new URL(`../dist/${f}`, import.meta.url).href);
  const script = `
    const { S3SinkConfig } = await import(${dist('index.js')});
    const { S3Sink } = await import(${dist('sink.js')});
    const { createS3Client } = await import(${dist('client.js')});
    const noop = () => {};
    const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop, child() { return logger; } };
    const metrics = { counter: () => ({ inc: noop }), histogram: () => ({ observe: noop }) };
    const config = S3SinkConfig.parse(${JSON.stringify(config)});
    const client = createS3Client(config);
    client.middlewareStack.add((next, context) => async (args) => {
      if (context.commandName === 'UploadPartCommand') process.stdout.write('part ' + args.input.PartNumber + '\\n');
      return next(args);
    }, { step: 'initialize' });
    const sink = new S3Sink(client, config, { logger, metrics, connector: 'c', task: 0 });
    const signal = new AbortController().signal;
    for (const [first, last] of ${JSON.stringify(batches)}) {
      const messages = [];
      for (let o = first; o <= last; o++) messages.push({ offset: o, timestamp: o, headers: {}, value: new TextEncoder().encode('value ' + o + ' ' + 'z'.repeat(1000 + (o % 50))) });
      const results = await sink.write({ station: 'crash', stationId: ${JSON.stringify(STATION_ID)}, partition: 0, firstOffset: first, lastOffset: last, messages }, { signal });
      if (!results.every((r) => r.status === 'ok')) throw new Error('not ok: ' + JSON.stringify(results[0]));
      process.stdout.write('ok ' + last + '\\n');
    }
    setInterval(noop, 1000);
  `;
  return spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
}

/** Resolves with the last confirmed offset once `until(line, confirmed)` is true for a line the writer printed. */
function watch(child: ChildProcess, until: (line: string, confirmed: number) => boolean): Promise<number> {
  let confirmed = 0;
  return new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('ok ')) confirmed = Number(line.slice(3));
        if (until(line, confirmed)) resolve(confirmed);
      }
    });
    child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
  });
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** The restarted task: a new sink in this process, replaying `batches`. */
async function replay(config: Record<string, unknown>, batches: [number, number][]): Promise<void> {
  const sink = await plugin.open(plugin.config.parse(config), fakeContext());
  try {
    for (const [first, last] of batches) {
      const results = await sink.write(
        batch(
          'crash',
          0,
          range(first, last).map((o) => message(o, { timestamp: o, value: new TextEncoder().encode(valueText(o)) })),
          STATION_ID,
        ),
        { signal },
      );
      expect(results.every((r) => r.status === 'ok')).toBe(true);
    }
  } finally {
    await sink.close();
  }
}

/** Every offset in the bucket, byte for byte against what was produced. */
async function offsetsInBucket(bucket: string): Promise<number[]> {
  const seen: number[] = [];
  for (const key of await dataKeys(client, bucket)) {
    for (const line of (await plainBytes(client, bucket, key)).toString('utf8').split('\n')) {
      if (line === '') continue;
      const r = JSON.parse(line) as { offset: number; value: string };
      expect(r.value).toBe(valueText(r.offset));
      seen.push(r.offset);
    }
  }
  return seen.sort((a, b) => a - b);
}

const openUploads = (bucket: string) =>
  [...server.proxy.uploads].filter(([, u]) => u.bucket === bucket && u.state === 'open').map(([, u]) => u.key);

describe('kill -9', () => {
  it('mid-upload, then a replay from offset 1 in other batches: no duplicate, nothing lost, no upload left open (even where uploads cannot be listed)', async () => {
    const TOTAL = 30_000;
    const PER_BATCH = 6_000; // ~6.3 MiB a batch: a multipart upload with 5 MiB parts
    const bucket = await newBucket(client);
    // A store that aborts uploads but does not list them: the killed upload must be aborted by its id.
    server.proxy.listsUploads = false;
    const config = sinkConfig(server, bucket, {
      compression: 'none',
      jsonl: { value: 'string', fields: ['offset'] },
      upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024, queueSize: 1 },
    });
    const child = writer(
      config,
      range(0, TOTAL / PER_BATCH - 1).map((i) => [i * PER_BATCH + 1, (i + 1) * PER_BATCH]),
    );
    // The second part of a batch after two confirmed ones: the upload is half done.
    const confirmed = await watch(child, (line, c) => c >= 2 * PER_BATCH && line === 'part 2');
    await kill(child);
    expect(confirmed).toBeLessThan(TOTAL);
    // Killed inside a unit: its pending marker is there, its upload open.
    expect(await unfinished(client, bucket)).toHaveLength(1);
    expect(openUploads(bucket).length).toBeGreaterThan(0);

    // The runtime replays from the last acknowledged offset or earlier, cut its own way.
    await replay(
      config,
      range(0, Math.ceil(TOTAL / 4_500) - 1).map((i) => [i * 4_500 + 1, Math.min((i + 1) * 4_500, TOTAL)]),
    );
    expect(await offsetsInBucket(bucket)).toEqual(range(1, TOTAL));
    expect((await listKeys(client, bucket, '_junction/')).some((k) => k.includes('/pending/'))).toBe(false);
    expect(openUploads(bucket)).toEqual([]);
  }, 120_000);

  for (const conditionalWrites of [false, true]) {
    it(`a write held by S3 across the kill lands after the replay, which was cut longer: nothing replaced, nothing doubled (conditionalWrites ${conditionalWrites})`, async () => {
      const bucket = await newBucket(client);
      const config = sinkConfig(server, bucket, { compression: 'none', jsonl: { value: 'string', fields: ['offset'] }, conditionalWrites });
      // The second batch's data object (334-667) is held wherever it is written: a PUT, a part or a Complete.
      const held = server.proxy.holdWrites(
        (r: S3Request) =>
          r.bucket === bucket &&
          ['PutObject', 'UploadPart', 'CompleteMultipartUpload'].includes(r.op) &&
          !r.key.includes('_junction/') &&
          r.key.includes('+00000000000000000334'),
      );
      const child = writer(config, [
        [1, 333],
        [334, 667],
        [668, 1000],
      ]);
      const confirmed = watch(child, () => false).catch(() => 0);
      await held.held();
      await kill(child);
      held.stop();
      expect(await confirmed).toBe(0);
      // The restarted task replays from 334 (the last acknowledged was 333), in one longer batch, as in
      // the issue (the old PUT named 18835-19167; the replay cut 18835-19334 under the same first offset).
      await replay(config, [
        [334, 900],
        [901, 1000],
      ]);
      // Now the late write reaches S3.
      await held.release();
      expect(await offsetsInBucket(bucket)).toEqual(range(1, 1000));
      expect(await unfinished(client, bucket)).toEqual([]);
      expect(openUploads(bucket)).toEqual([]);
      // A writer after it still finds everything in place.
      await replay(config, [[1, 1000]]);
      expect(await offsetsInBucket(bucket)).toEqual(range(1, 1000));
    }, 60_000);
  }
});
