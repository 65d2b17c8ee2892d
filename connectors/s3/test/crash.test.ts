/**
 * kill -9 of a process running the sink in the middle of a multipart upload, then a replay cut
 * differently by a new sink: each offset exactly once, byte for byte.
 */
import { spawn } from 'node:child_process';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import plugin from '../src/index.js';
import { fakeContext } from '@junction/sdk-connector/testing';
import { batch, dataKeys, listKeys, message, newBucket, plainBytes, range, s3Client, signal, sinkConfig, startS3rver, type S3rverProcess, unfinished } from './helpers.js';

let server: S3rverProcess;
let client: S3Client;

beforeAll(async () => {
  server = await startS3rver();
  client = s3Client(server);
});
afterAll(async () => {
  client?.destroy();
  await server?.close();
});

const TOTAL = 30_000;
const PER_BATCH = 6_000; // ~6.3 MiB a batch: a multipart upload with 5 MiB parts
const valueText = (o: number) => `value ${o} ${'z'.repeat(1000 + (o % 50))}`;

describe('kill -9', () => {
  it('mid-upload, then a replay from offset 1 in other batches: no duplicate, nothing lost', async () => {
    const bucket = await newBucket(client);
    const config = sinkConfig(server, bucket, { compression: 'none', jsonl: { value: 'string', fields: ['offset'] }, upload: { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024, queueSize: 1 } });
    const dist = (f: string) => JSON.stringify(new URL(`../dist/${f}`, import.meta.url).href);
    // The writer: batches of 6000 one after another; it reports each part it starts and each batch confirmed.
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
      for (let first = 1; first <= ${TOTAL}; first += ${PER_BATCH}) {
        const messages = [];
        for (let o = first; o < first + ${PER_BATCH}; o++) messages.push({ offset: o, timestamp: o, headers: {}, value: new TextEncoder().encode('value ' + o + ' ' + 'z'.repeat(1000 + (o % 50))) });
        const results = await sink.write({ station: 'crash', stationId: 'crash-1', partition: 0, firstOffset: first, lastOffset: first + ${PER_BATCH - 1}, messages }, { signal });
        if (!results.every((r) => r.status === 'ok')) throw new Error('not ok: ' + JSON.stringify(results[0]));
        process.stdout.write('ok ' + (first + ${PER_BATCH - 1}) + '\\n');
      }
      setInterval(noop, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let confirmed = 0;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const lines = out.split('\n');
        out = lines.pop() ?? '';
        for (const line of lines) {
          if (line.startsWith('ok ')) confirmed = Number(line.slice(3));
          // The second part of a batch after two confirmed ones: the upload is half done.
          if (confirmed >= 2 * PER_BATCH && line === 'part 2') {
            child.kill('SIGKILL');
            resolve();
          }
        }
      });
      child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    await new Promise((r) => child.once('exit', r));
    expect(confirmed).toBeLessThan(TOTAL);
    // Killed inside a unit: its pending marker is there, its object is not.
    expect(await unfinished(client, bucket)).toHaveLength(1);

    // The runtime replays from the last acknowledged offset or earlier, cut its own way.
    const sink = await plugin.open(plugin.config.parse(config), fakeContext());
    try {
      for (let first = 1; first <= TOTAL; first += 4_500) {
        const offsets = range(first, Math.min(first + 4_499, TOTAL));
        const results = await sink.write(batch('crash', 0, offsets.map((o) => message(o, { timestamp: o, value: new TextEncoder().encode(valueText(o)) }))), { signal });
        expect(results.every((r) => r.status === 'ok')).toBe(true);
      }
    } finally {
      await sink.close();
    }
    const seen: number[] = [];
    for (const key of await dataKeys(client, bucket)) {
      for (const line of (await plainBytes(client, bucket, key)).toString('utf8').split('\n')) {
        if (line === '') continue;
        const r = JSON.parse(line) as { offset: number; value: string };
        expect(r.value).toBe(valueText(r.offset));
        seen.push(r.offset);
      }
    }
    expect(seen.sort((a, b) => a - b)).toEqual(range(1, TOTAL));
    expect((await listKeys(client, bucket, '_junction/')).some((k) => k.includes('/pending/'))).toBe(false);
  }, 90_000);
});
