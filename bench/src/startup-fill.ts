/**
 * Fills a data dir for the start-up rows (`node startup-fill.js <json config>`): an embedded store opened
 * in this process (as the broker opens it; fsync `never` only to fill fast — what start-up reads is the
 * same files), one station of `partitions` partitions, 1 KiB messages until `bytes` are stored, and a
 * consumer group that acked the first `groupAcked` messages (so start-up also loads a group). Prints one
 * JSON line: `{ messages, bytes, seconds }`.
 */
import { EmbeddedStore } from '@junction/broker';
import { payload } from './plan.js';

export interface FillConfig {
  dataDir: string;
  station: string;
  group: string;
  partitions: number;
  bytes: number;
  groupAcked: number;
}

export interface FillResult {
  messages: number;
  bytes: number;
  seconds: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as FillConfig;
const t0 = performance.now();
const store = new EmbeddedStore({ dataDir: config.dataDir, fsync: 'never' });
await store.open();
await store.createStation(config.station, { partitions: config.partitions, retention: {} });
const value = payload(1024);
const batch = Array.from({ length: 2000 }, () => ({ value }));
let messages = 0;
let lastReport = performance.now();
// Two produces in flight: one encodes while the other's bytes are written.
const inFlight = new Set<Promise<void>>();
while (messages * value.length < config.bytes) {
  const p: Promise<void> = store.produce(config.station, batch).then(() => {
    inFlight.delete(p);
  });
  inFlight.add(p);
  messages += batch.length;
  if (inFlight.size >= 2) await Promise.race(inFlight);
  if (performance.now() - lastReport > 15_000) {
    lastReport = performance.now();
    process.stderr.write(
      `[bench] start-up fill: ${((messages * value.length) / 1e9).toFixed(1)} of ${(config.bytes / 1e9).toFixed(1)} GB\n`,
    );
  }
}
await Promise.all(inFlight);
let acked = 0;
while (acked < config.groupAcked) {
  const got = await store.fetch(config.station, config.group, {
    maxMessages: Math.min(5000, config.groupAcked - acked),
    maxBytes: 1 << 30,
    waitMs: 0,
  });
  if (got.length === 0) break;
  await store.ack(
    config.station,
    config.group,
    got.map((d) => d.deliveryId),
  );
  acked += got.length;
}
const info = await store.getStation(config.station);
await store.close();
const result: FillResult = { messages, bytes: info.bytes, seconds: (performance.now() - t0) / 1000 };
process.stdout.write(`${JSON.stringify(result)}\n`);
