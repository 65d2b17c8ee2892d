/** The MQTT source against the real Mosquitto: filters and wildcards, QoS 0/1/2, MQTT 3.1.1 and 5, acks after commit. */
import { afterAll, describe, expect, it } from 'vitest';
import type { Source, SourceBatch } from '@junction/sdk-connector';
import { fakeContext, sourceConformanceSuite } from '@junction/sdk-connector/testing';
import type { MqttClient } from 'mqtt';
import plugin from '../src/index.js';
import type { MqttPosition } from '../src/source.js';
import { client, dropSession, MQTT_URL, PrivateMosquitto, unique } from './helpers.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
});

const pub = await client({ clientId: unique('pub') });
cleanup.push(() => pub.endAsync());

async function open(config: Record<string, unknown>): Promise<Source<MqttPosition>> {
  const s = (await plugin.open(
    plugin.config.parse({ url: MQTT_URL, maxLatencyMs: 20, ...config }),
    fakeContext({ connector: 'mqtt-test' }),
  )) as Source<MqttPosition>;
  cleanup.push(() => s.close());
  return s;
}

/** Reads batches until `n` messages arrived (or the deadline), committing each only if `commit`. */
async function take(
  source: Source<MqttPosition>,
  n: number | ((got: SourceBatch<MqttPosition>[]) => boolean),
  commit: boolean,
): Promise<SourceBatch<MqttPosition>[]> {
  const enough = typeof n === 'function' ? n : (got: SourceBatch<MqttPosition>[]) => got.reduce((s, x) => s + x.messages.length, 0) >= n;
  const ac = new AbortController();
  const out: SourceBatch<MqttPosition>[] = [];
  const timer = setTimeout(() => ac.abort(), 20_000);
  try {
    for await (const b of source.read(ac.signal)) {
      out.push(b);
      if (commit) await source.commit([b.position]);
      if (enough(out)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

const text = (b: SourceBatch<MqttPosition>[]): string[] => b.flatMap((x) => x.messages.map((m) => new TextDecoder().decode(m.value)));

describe('mqtt source', () => {
  for (const protocolVersion of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      it(`MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}, QoS ${qos}: wildcard filters into messages with the topic in a header`, async () => {
        const root = unique('jt');
        const clientId = unique('src');
        cleanup.push(() => dropSession(clientId, protocolVersion));
        const source = await open({
          protocolVersion,
          clientId,
          topics: [
            { filter: `${root}/+/temp`, qos },
            { filter: `${root}/alerts/#`, qos },
          ],
        });
        const topics = [`${root}/dev1/temp`, `${root}/dev2/humidity`, `${root}/alerts/fire/kitchen`, `${root}/dev3/temp`, `${root}/alerts`];
        for (let i = 0; i < 50; i++) await pub.publishAsync(topics[i % topics.length] as string, `m${i}`, { qos });
        // dev2/humidity never matches; "alerts" matches alerts/# (the parent level is included).
        const expected = Array.from({ length: 50 }, (_, i) => i).filter((i) => i % 5 !== 1);
        const got = await take(source, expected.length, true);
        const messages = got.flatMap((b) => b.messages);
        expect(messages.map((m) => new TextDecoder().decode(m.value)).sort()).toEqual(expected.map((i) => `m${i}`).sort());
        for (const m of messages) {
          const i = Number(new TextDecoder().decode(m.value).slice(1));
          expect(m.headers?.['mqtt-topic']).toBe(topics[i % 5]);
          expect(m.key).toBe(topics[i % 5]);
          expect(m.headers?.['mqtt-qos']).toBe(String(qos));
        }
      });
    }
  }

  it('QoS 1 and 2: a message is acknowledged to the broker only after commit (uncommitted ones come back to the next session)', async () => {
    for (const qos of [1, 2] as const) {
      const root = unique('jack');
      const clientId = unique('src');
      cleanup.push(() => dropSession(clientId));
      const first = await open({ clientId, topics: [{ filter: `${root}/#`, qos }], maxMessages: 10 });
      for (let i = 0; i < 30; i++) await pub.publishAsync(`${root}/t`, `m${i}`, { qos });
      // Read all 30, commit only the first batch, then go away (as a kill would, without acks).
      const batches = await take(first, 30, false);
      await first.commit([(batches[0] as SourceBatch<MqttPosition>).position]);
      const committed = new Set(text(batches.slice(0, 1)));
      await first.close();
      const second = await open({ clientId, topics: [{ filter: `${root}/#`, qos }] });
      const uncommitted = Array.from({ length: 30 }, (_, i) => `m${i}`).filter((m) => !committed.has(m));
      // Every message not committed comes back (at least once: a committed one may too, if its ack was
      // still on the way when the session closed — never observed on a quiet machine).
      const again = await take(second, (got) => uncommitted.every((m) => text(got).includes(m)), true);
      expect(
        text(again)
          .filter((m) => !committed.has(m))
          .sort(),
      ).toEqual([...new Set(text(again).filter((m) => !committed.has(m)))].sort());
      await second.close();
      // Everything committed now: a third session gets the new message and nothing it did not have before.
      const third = await open({ clientId, topics: [{ filter: `${root}/#`, qos }] });
      await pub.publishAsync(`${root}/t`, 'marker', { qos });
      const last = text(await take(third, (got) => text(got).includes('marker'), true));
      expect(last.filter((m) => m !== 'marker').every((m) => /^m\d+$/.test(m))).toBe(true);
    }
  });

  it('Mosquitto restarted mid-stream (SIGTERM, its persistence file): the source reconnects to its session and gets every QoS 1 message', async () => {
    const broker = await new PrivateMosquitto('allow_anonymous true\nmax_queued_messages 0').start();
    cleanup.push(() => broker.dispose());
    const root = unique('jrestart');
    const clientId = unique('src');
    const source = await open({ url: broker.url, clientId, topics: [{ filter: `${root}/#`, qos: 1 }], maxMessages: 50 });
    const ids = new Set<string>();
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 50_000);
    const reading = (async () => {
      for await (const b of source.read(ac.signal)) {
        for (const m of b.messages) ids.add(new TextDecoder().decode(m.value));
        await source.commit([b.position]);
        if (ids.size >= 600) break;
      }
    })();
    const { default: mqtt } = await import('mqtt');
    const pub = async (from: number, to: number): Promise<void> => {
      const p = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
      for (let i = from; i < to; i++) await p.publishAsync(`${root}/x`, `m${i}`, { qos: 1 });
      await p.endAsync();
    };
    await pub(0, 300);
    while (ids.size < 100) await new Promise((r) => setTimeout(r, 20));
    await broker.stop(); // SIGTERM: Mosquitto writes its persistence file (sessions, queued messages)
    await broker.start(); // same port, same data dir
    await pub(300, 600);
    await reading;
    clearTimeout(timer);
    expect([...ids].sort()).toEqual(Array.from({ length: 600 }, (_, i) => `m${i}`).sort());
  });

  it('a refused login is AUTH_FAILED (not retried); a broker that is down is a retryable error', async () => {
    const down = await plugin
      .open(plugin.config.parse({ url: 'mqtt://127.0.0.1:1', topics: [{ filter: 'x' }], connectTimeoutMs: 3000 }), fakeContext())
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((down as { code?: string }).code).toBe('CONNECTION_FAILED');
    expect((down as { retryable?: boolean }).retryable).toBe(true);
    // A broker that takes no anonymous logins: CONNACK "not authorized" (3.1.1: 5, MQTT 5: 0x87).
    const strict = await new PrivateMosquitto('allow_anonymous false').start();
    cleanup.push(() => strict.dispose());
    for (const protocolVersion of [4, 5] as const) {
      const refused = await plugin
        .open(plugin.config.parse({ url: strict.url, protocolVersion, topics: [{ filter: 'x' }] }), fakeContext())
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect((refused as { code?: string }).code).toBe('AUTH_FAILED');
      expect((refused as { retryable?: boolean }).retryable).toBe(false);
    }
  });
});

// The kit against the real broker: a publisher keeps a topic busy while the checks read.
const kitRoot = unique('jkit');
let feeding: MqttClient | undefined;
let n = 0;
const feeder = setInterval(() => {
  feeding ??= pub;
  void feeding.publishAsync(`${kitRoot}/x`, `k${n++}`, { qos: 1 }).catch(() => undefined);
}, 5);
cleanup.push(async () => clearInterval(feeder));
const kitClient = unique('kit');
cleanup.push(() => dropSession(kitClient));
sourceConformanceSuite(
  { describe, it },
  {
    plugin,
    config: { url: MQTT_URL, clientId: kitClient, topics: [{ filter: `${kitRoot}/#`, qos: 1 }], maxMessages: 5, maxLatencyMs: 20 },
    timeoutMs: 15_000,
  },
);
