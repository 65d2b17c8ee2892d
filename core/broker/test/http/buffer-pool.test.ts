import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BATCH_CONTENT_TYPE, decodeMessageBatch, encodeProduceBatch } from '@junction/protocol';
import { BufferPool } from '../../src/http/buffer-pool.js';
import { createStation, makeApp, type TestApp } from './app.js';

describe('BufferPool', () => {
  it('gives a buffer back out once it is returned, keeps at most `keep`, and never pools above `maxBytes`', () => {
    const pool = new BufferPool(2, 4096, 1024);
    const a = pool.take(1500)!;
    expect(a.length).toBe(2048);
    pool.give(a);
    expect(pool.take(2000)).toBe(a); // reused, not a fresh one
    expect(pool.take(5000)).toBeUndefined();
    const [x, y, z] = [pool.take(10)!, pool.take(10)!, pool.take(10)!];
    pool.give(x);
    pool.give(y);
    pool.give(z);
    expect(pool.idleCount).toBe(2);
    expect(pool.take(3000)!.length).toBe(3072); // none idle is large enough: a new one
  });
});

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

function post(port: number, path: string, body: Buffer | string, headers: Record<string, string>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8')}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('binary fetch answers in pooled buffers', () => {
  it('delivers every message once, byte for byte, to concurrent fetch loops over real sockets', async () => {
    t = await makeApp();
    await createStation(t.app, 'pooled');
    // Values of varied lengths: answers of different sizes reuse buffers that held longer ones.
    const values = Array.from({ length: 600 }, (_, i) => Buffer.alloc(1 + ((i * 397) % 3000), `v${i}:`));
    for (let i = 0; i < values.length; i += 100) {
      await t.app.inject({ method: 'POST', url: '/v1/stations/pooled/messages', headers: { 'content-type': BATCH_CONTENT_TYPE }, payload: encodeProduceBatch(values.slice(i, i + 100).map((value) => ({ value }))) });
    }
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const path = '/v1/stations/pooled/groups/g';
    const seen = new Map<number, Buffer>();
    const loop = async () => {
      for (;;) {
        const answer = await post(port, `${path}/fetch`, JSON.stringify({ maxMessages: 37, waitMs: 0 }), { 'content-type': 'application/json', accept: BATCH_CONTENT_TYPE });
        const got = decodeMessageBatch(answer);
        if (got.length === 0) return;
        for (const m of got) {
          expect(seen.has(m.offset), `offset ${m.offset} delivered twice`).toBe(false);
          seen.set(m.offset, Buffer.from(m.value));
        }
        const ack = await post(port, `${path}/ack`, JSON.stringify({ deliveryIds: got.map((m) => m.deliveryId), summary: true }), { 'content-type': 'application/json' });
        expect((JSON.parse(ack.toString('utf8')) as { count: number }).count).toBe(got.length);
      }
    };
    await Promise.all([loop(), loop(), loop(), loop()]);
    expect(seen.size).toBe(values.length);
    for (let i = 0; i < values.length; i++) expect(seen.get(i + 1)!.equals(values[i]!), `offset ${i + 1}`).toBe(true);
  });
});
