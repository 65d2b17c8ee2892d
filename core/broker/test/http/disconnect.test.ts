/**
 * Consumers that go away before their answer is written lose nothing: what the answer carried is given
 * back to the group at once (the Memphis gateway acks on delivery, so before this fix it lost them).
 */
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BATCH_CONTENT_TYPE } from '@junction/protocol';
import { createStation, makeApp, produceText, type TestApp } from './app.js';

let t: TestApp;
let port: number;
beforeEach(async () => {
  t = await makeApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
});
afterEach(async () => {
  await t.close();
});

/** Sends a POST with a JSON body and closes the socket before reading anything. */
function postAndVanish(path: string, body: unknown, extraHeaders = ''): Promise<void> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const sock: Socket = connect({ port, host: '127.0.0.1' }, () => {
      sock.write(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n${extraHeaders}\r\n${payload}`,
        () => {
          sock.destroy();
          resolve();
        },
      );
    });
    sock.on('error', reject);
  });
}

/** Polls until the group has nothing in flight (the server settled every abandoned answer). */
async function settled(station: string, group: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const g = await t.store.getGroup(station, group).catch(() => undefined);
    if (g && g.pending === 0) return;
    if (Date.now() > deadline) throw new Error(`group ${group} still has deliveries in flight: ${JSON.stringify(g)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('consumers that disconnect before their answer', () => {
  it('Memphis consume/batch: 10 abandoned requests lose none of 500 messages', async () => {
    await createStation(t.app, 'events');
    const values = Array.from({ length: 500 }, (_, i) => `m${i}`);
    await produceText(t.app, 'events', values);
    // Long polls that wait for messages that are not there yet, so the disconnect comes first for sure.
    await createStation(t.app, 'later');
    await Promise.all(
      Array.from({ length: 5 }, () =>
        postAndVanish('/stations/later/consume/batch', { consumer_name: 'c', batch_size: 50, batch_max_wait_time_ms: 3_000 }),
      ),
    );
    // And requests for messages that are there: the fetch may win the race with the close.
    await Promise.all(
      Array.from({ length: 10 }, () =>
        postAndVanish('/stations/events/consume/batch', { consumer_name: 'c', batch_size: 50, batch_max_wait_time_ms: 1_000 }),
      ),
    );
    await produceText(t.app, 'later', ['l1']);
    // A consumer that stays gets every message: what an abandoned request took comes back when the
    // server sees the close (before or after our fetches; so fetch until all arrived or time is up).
    const got: string[] = [];
    for (const deadline = Date.now() + 15_000; got.length < 500 && Date.now() < deadline;) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/stations/events/consume/batch',
        payload: { consumer_name: 'c', batch_size: 1000, batch_max_wait_time_ms: 200 },
      });
      got.push(...(res.json() as { message: string }[]).map((m) => m.message));
    }
    expect(new Set(got).size).toBe(got.length);
    expect(got.sort()).toEqual([...values].sort());
    // Acked once written: nothing is left in flight or behind.
    await settled('events', 'c');
    expect(await t.store.getGroup('events', 'c')).toMatchObject({ lag: 0, pending: 0 });
    const later = await t.app.inject({
      method: 'POST',
      url: '/stations/later/consume/batch',
      payload: { consumer_name: 'c', batch_size: 10, batch_max_wait_time_ms: 100 },
    });
    expect((later.json() as { message: string }[]).map((m) => m.message)).toEqual(['l1']);
  });

  it('/v1 fetch: what an abandoned answer carried is delivered again at once, not after the ack deadline', async () => {
    await createStation(t.app, 'orders', { deadLetter: { maxAckTimeMs: 600_000 } });
    await produceText(t.app, 'orders', ['a', 'b', 'c']);
    await createStation(t.app, 'empty');
    await postAndVanish('/v1/stations/empty/groups/g/fetch', { maxMessages: 10, waitMs: 2_000 });
    await postAndVanish('/v1/stations/orders/groups/g/fetch', { maxMessages: 10, waitMs: 0 });
    await settled('orders', 'g');
    const res = await t.app.inject({ method: 'POST', url: '/v1/stations/orders/groups/g/fetch', payload: { maxMessages: 10 } });
    const ms = (res.json() as { messages: { value: string; deliveryCount: number }[] }).messages;
    expect(ms.map((m) => m.value)).toEqual(['a', 'b', 'c']);
  });

  it('/v1 binary fetch (packed answer): what an abandoned answer carried is delivered again at once', async () => {
    await createStation(t.app, 'orders', { partitions: 2, deadLetter: { maxAckTimeMs: 600_000 } });
    const values = Array.from({ length: 40 }, (_, i) => `m${i}`);
    await produceText(t.app, 'orders', values);
    for (let i = 0; i < 3; i++)
      await postAndVanish('/v1/stations/orders/groups/g/fetch', { maxMessages: 15, waitMs: 0 }, `Accept: ${BATCH_CONTENT_TYPE}\r\n`);
    await settled('orders', 'g');
    const res = await t.app.inject({ method: 'POST', url: '/v1/stations/orders/groups/g/fetch', payload: { maxMessages: 100 } });
    const ms = (res.json() as { messages: { value: string; deliveryCount: number }[] }).messages;
    expect(ms.map((m) => m.value).sort()).toEqual([...values].sort());
  });
});
