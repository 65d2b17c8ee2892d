// Measures produce / consume rates through JetStreamStore on a fresh 3-node harness cluster (R3).
// Usage: node core/cluster/scripts/measure.mjs [count=100000] [size=1024] [partitions=1]
// (run after `npx tsc -b core/cluster test`). Prints one line per scenario.
import { startNatsCluster } from '@junction/e2e';
import { JetStreamStore } from '../dist/index.js';

const count = Number(process.argv[2] ?? 100_000);
const size = Number(process.argv[3] ?? 1024);
const partitions = Number(process.argv[4] ?? 1);
const batch = 1000;
const loops = 4;

const cluster = await startNatsCluster({ nodes: 3 });
try {
  const store = new JetStreamStore({ servers: cluster.servers, replicas: 3, prefix: 'measure' });
  await store.open();
  await store.createStation('m', { partitions, retention: { maxAgeMs: 3600_000 } });
  const value = Buffer.alloc(size, 7);
  const messages = Array.from({ length: batch }, () => ({ value }));
  let sent = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (sent < count) {
        sent += batch;
        const r = await store.produce('m', messages);
        if (r.some((x) => x.status !== 'stored')) throw new Error('not stored');
      }
    }),
  );
  const pt = (performance.now() - t0) / 1000;
  console.log(
    `produce: ${sent} x ${size} B, ${partitions} partition(s), R3, batches of ${batch}, ${loops} in flight: ${Math.round(sent / pt)} msgs/s`,
  );

  let got = 0;
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: loops }, async () => {
      for (;;) {
        const ds = await store.fetch('m', 'g', { maxMessages: batch, maxBytes: 64 << 20, waitMs: 0 });
        if (ds.length === 0) return;
        got += ds.length;
        const out = await store.ack(
          'm',
          'g',
          ds.map((d) => d.deliveryId),
        );
        if (out.some((o) => o.status !== 'acked')) throw new Error('not acked');
      }
    }),
  );
  const ct = (performance.now() - t1) / 1000;
  console.log(`consume (fetch ${batch} + ack, ${loops} loops): ${got} in ${ct.toFixed(1)} s: ${Math.round(got / ct)} msgs/s`);
  await store.close();
} finally {
  await cluster.stop();
}
