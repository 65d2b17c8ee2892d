/**
 * Crash tests: a real broker process is SIGKILLed at many points while producers and a consumer group
 * run. After each restart, every acknowledged produce is there byte for byte at its offset, in order;
 * acknowledged group progress survived (acked messages are not delivered again) and every message
 * that was not acked is delivered again.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'crashy';
const GROUP = 'g1';
const PARTITIONS = 3;

interface FetchAnswer {
  messages: { deliveryId: string; partition: number; offset: number; valueBase64?: string; value?: string }[];
}

const key = (p: number, o: number) => `${p}:${o}`;

describe('SIGKILL of the broker', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('keeps every acknowledged produce and the acked group progress, at many kill points', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-crash-'));
    dirs.push(dataDir);
    let broker = await startBroker({ dataDir });
    await api(broker.url, 'POST', '/v1/stations', { name: STATION, partitions: PARTITIONS, segmentBytes: 256 * 1024 });
    await api(broker.url, 'PUT', `/v1/stations/${STATION}/groups/${GROUP}`, { maxAckTimeMs: 60_000 });

    const produced = new Map<string, Buffer>(); // acknowledged produces
    const acked = new Set<string>(); // acks the broker confirmed
    const maybeAcked = new Set<string>(); // acks in flight when the broker died: either outcome is right
    const killDelays = [120, 300, 550, 800, 1100, 1500, 250, 900];

    for (const [round, delay] of killDelays.entries()) {
      let stop = false;
      const url = broker.url;
      const producer = async (id: number) => {
        let n = 0;
        while (!stop) {
          const values = Array.from({ length: 50 }, () => randomBytes(16 + Math.floor(Math.random() * 2048)));
          try {
            const res = await api<{ results: { partition: number; offset: number }[] }>(url, 'POST', `/v1/stations/${STATION}/messages`, {
              messages: values.map((v, i) => ({
                valueBase64: v.toString('base64'),
                headers: { round: String(round), producer: String(id), n: String(n + i) },
              })),
            });
            res.results.forEach((r, i) => produced.set(key(r.partition, r.offset), values[i]!));
            n += values.length;
          } catch {
            return; // the broker died: this batch was not acknowledged
          }
        }
      };
      const consumer = async () => {
        while (!stop) {
          try {
            const batch = await api<FetchAnswer>(url, 'POST', `/v1/stations/${STATION}/groups/${GROUP}/fetch`, {
              maxMessages: 100,
              waitMs: 50,
              encoding: 'base64',
            });
            if (batch.messages.length === 0) continue;
            const keys = batch.messages.map((m) => key(m.partition, m.offset));
            for (const k of keys) maybeAcked.add(k);
            const res = await api<{ results: { deliveryId: string; status: string }[] }>(
              url,
              'POST',
              `/v1/stations/${STATION}/groups/${GROUP}/ack`,
              {
                deliveryIds: batch.messages.map((m) => m.deliveryId),
              },
            );
            res.results.forEach((r, i) => {
              if (r.status === 'acked') acked.add(keys[i]!);
            });
            for (const k of keys) maybeAcked.delete(k);
          } catch {
            return;
          }
        }
      };
      const work = Promise.all([producer(1), producer(2), producer(3), consumer()]);
      await sleep(delay);
      await broker.kill();
      stop = true;
      await work;

      broker = await startBroker({ dataDir });
      await verify(broker, produced, acked, maybeAcked, round);
      maybeAcked.clear();
    }
    expect(produced.size).toBeGreaterThan(1000);
    expect(acked.size).toBeGreaterThan(100);
    await broker.stop();
  }, 240_000); // eight kills and restarts: each start takes seconds when the suite runs files side by side
});

/** Checks the log against what was acknowledged, then drains the group and checks its progress. */
async function verify(
  broker: BrokerProcess,
  produced: Map<string, Buffer>,
  acked: Set<string>,
  maybeAcked: Set<string>,
  round: number,
): Promise<void> {
  const stored = new Map<string, Buffer>();
  for (let p = 0; p < PARTITIONS; p++) {
    let from = 1;
    let expectOffset = 1;
    for (;;) {
      const page = await api<{ messages: { offset: number; valueBase64?: string; value?: string }[] }>(
        broker.url,
        'GET',
        `/v1/stations/${STATION}/messages?partition=${p}&fromOffset=${from}&limit=1000&encoding=base64`,
      );
      if (page.messages.length === 0) break;
      for (const m of page.messages) {
        // Offsets are contiguous: nothing in the middle went missing.
        expect(m.offset, `round ${round} partition ${p}`).toBe(expectOffset++);
        stored.set(key(p, m.offset), Buffer.from(m.valueBase64 ?? '', 'base64'));
      }
      from = page.messages[page.messages.length - 1]!.offset + 1;
    }
  }
  let missing = 0;
  let different = 0;
  for (const [k, v] of produced) {
    const s = stored.get(k);
    if (!s) missing++;
    else if (!s.equals(v)) different++;
  }
  expect({ round, missing, different }).toEqual({ round, missing: 0, different: 0 });

  // Drain the group: nothing acked comes back, everything else does.
  const delivered = new Set<string>();
  for (;;) {
    const batch = await api<FetchAnswer>(broker.url, 'POST', `/v1/stations/${STATION}/groups/${GROUP}/fetch`, {
      maxMessages: 1000,
      waitMs: 0,
      encoding: 'base64',
    });
    if (batch.messages.length === 0) break;
    for (const m of batch.messages) {
      const k = key(m.partition, m.offset);
      expect(acked.has(k), `round ${round}: acked message ${k} was delivered again`).toBe(false);
      expect(Buffer.from(m.valueBase64 ?? '', 'base64').equals(stored.get(k)!)).toBe(true);
      delivered.add(k);
    }
    const res = await api<{ results: { status: string }[] }>(broker.url, 'POST', `/v1/stations/${STATION}/groups/${GROUP}/ack`, {
      deliveryIds: batch.messages.map((m) => m.deliveryId),
    });
    expect(res.results.every((r) => r.status === 'acked')).toBe(true);
  }
  const notRedelivered = [...stored.keys()].filter((k) => !acked.has(k) && !maybeAcked.has(k) && !delivered.has(k));
  expect(notRedelivered, `round ${round}: unacked messages not delivered again`).toEqual([]);
  for (const k of delivered) acked.add(k);
  for (const k of maybeAcked) acked.add(k);
}
