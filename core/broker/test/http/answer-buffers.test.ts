import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BATCH_CONTENT_TYPE, decodeMessageBatch } from '@junction/protocol';
import { AnswerBuffers } from '../../src/http/answer-buffers.js';
import { createStation, makeApp, type TestApp } from './app.js';

const fakeRes = (): ServerResponse & EventEmitter => new EventEmitter() as ServerResponse & EventEmitter;

describe('answer buffers', () => {
  it('lends a buffer until its response finished, never to two answers at once; a response that never finishes keeps its own', () => {
    const pool = new AnswerBuffers(2, 1 << 20);
    const r1 = fakeRes();
    const r2 = fakeRes();
    const a = pool.lend(100_000, r1);
    const b = pool.lend(100_000, r2);
    expect(a.byteLength).toBeGreaterThanOrEqual(100_000);
    expect(b.buffer).not.toBe(a.buffer);
    // Not finished: not lent again.
    expect(pool.lend(100_000, fakeRes()).buffer).not.toBe(a.buffer);
    r1.emit('finish');
    expect(pool.size).toBe(1);
    // Finished: the next answer that fits gets it; one larger than it does not.
    expect(pool.lend(200_000, fakeRes()).buffer).not.toBe(a.buffer);
    expect(pool.lend(90_000, fakeRes()).buffer).toBe(a.buffer);
    // Closed without finishing (the client went away mid-answer): the socket may still hold it.
    r2.emit('close');
    expect(pool.size).toBe(0);
    // Small answers use Buffer's shared slab, huge ones a buffer of their own: neither is pooled.
    const small = fakeRes();
    pool.lend(1000, small);
    small.emit('finish');
    const huge = fakeRes();
    pool.lend(2 << 20, huge);
    huge.emit('finish');
    expect(pool.size).toBe(0);
    // Bounded: the smallest goes beyond the pool's size.
    const rs = [fakeRes(), fakeRes(), fakeRes()];
    const sizes = [70_000, 300_000, 500_000].map((n, i) => pool.lend(n, rs[i]!).byteLength);
    for (const r of rs) r.emit('finish');
    expect(pool.size).toBe(2);
    expect(pool.lend(80_000, fakeRes()).byteLength).toBe(sizes[1]);
  });
});

describe('binary fetch answers over a socket', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await makeApp();
  });
  afterEach(async () => {
    await t.close();
  });

  it('reused answer buffers: every answer, one after another and side by side, carries its own messages byte for byte', async () => {
    await createStation(t.app, 'big', { partitions: 1 });
    // 1,200 distinct values of ~1 KiB: answers of 100 are ~100 KiB, pooled.
    const value = (i: number): string => `${i}:`.padEnd(1000 + (i % 37), String.fromCharCode(97 + (i % 26)));
    for (let i = 0; i < 1200; i += 300) {
      const messages = Array.from({ length: 300 }, (_, k) => ({ value: value(i + k) }));
      const res = await t.app.inject({ method: 'POST', url: '/v1/stations/big/messages', payload: { messages } });
      expect(res.statusCode).toBe(200);
    }
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const fetchBin = async (group: string): Promise<{ offset: number; value: string; deliveryId: string }[]> => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/stations/big/groups/${group}/fetch`, {
        method: 'POST',
        headers: { accept: BATCH_CONTENT_TYPE, 'content-type': 'application/json' },
        body: JSON.stringify({ maxMessages: 100, waitMs: 0 }),
      });
      expect(res.status).toBe(200);
      return decodeMessageBatch(Buffer.from(await res.arrayBuffer())).map((m) => ({
        offset: m.offset,
        value: Buffer.from(m.value).toString(),
        deliveryId: m.deliveryId,
      }));
    };
    const ack = async (group: string, ids: string[]): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/stations/big/groups/${group}/ack`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ deliveryIds: ids }),
      });
      expect(res.status).toBe(200);
    };
    const seen = new Map<string, number[]>();
    const check = (group: string, got: { offset: number; value: string }[]): void => {
      for (const m of got) expect(m.value, `${group} offset ${m.offset}`).toBe(value(m.offset - 1));
      seen.set(group, [...(seen.get(group) ?? []), ...got.map((m) => m.offset)]);
    };
    // One after another (each answer's buffer is back in the pool before the next).
    for (let i = 0; i < 6; i++) {
      const got = await fetchBin('seq');
      check('seq', got);
      await ack(
        'seq',
        got.map((m) => m.deliveryId),
      );
    }
    // Side by side: three groups' answers in flight at once, twice over.
    for (let round = 0; round < 4; round++) {
      const answers = await Promise.all(['a', 'b', 'c'].map((g) => fetchBin(g)));
      for (const [k, g] of ['a', 'b', 'c'].entries()) {
        check(g, answers[k]!);
        await ack(
          g,
          answers[k]!.map((m) => m.deliveryId),
        );
      }
    }
    expect(seen.get('seq')).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    for (const g of ['a', 'b', 'c']) expect(seen.get(g)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  });
});
