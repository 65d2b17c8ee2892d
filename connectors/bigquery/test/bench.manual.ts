/** By hand, not a test: rows/s through the sink into the fake vs the same rows bulk-inserted directly. `npx tsx`/vitest run it. */
import { it } from 'vitest';
import { FakeBigQuery } from '../../../test/fakes/bigquery/server.js';
import { batch, client, config, msg, open, PROJECT, range, signal, TOKEN } from './helpers.js';
it('bench', async () => {
  const N = 50_000,
    B = 5_000;
  for (let round = 0; round < 2; round++) {
    const fake = await new FakeBigQuery({ token: TOKEN }).start();
    fake.createDataset(PROJECT, 'ds');
    const s = await open(config(fake, { table: 'sink' }));
    let t = performance.now();
    for (let o = 1; o <= N; o += B)
      await s.write(
        batch(
          'b',
          range(o, o + B - 1).map((x) => msg(x, { n: x, text: 'hello world' })),
        ),
        { signal: signal() },
      );
    const sinkRate = N / ((performance.now() - t) / 1000);
    await open(config(fake, { table: 'direct' }));
    const table = client(fake).dataset('ds').table('direct');
    t = performance.now();
    for (let o = 1; o <= N; o += B) {
      const rows = range(o, o + B - 1).map((x) => ({
        insertId: `b/0/${x}`,
        json: {
          station: 'b',
          partition: 0,
          offset: x,
          timestamp: new Date(1_700_000_000_000 + x).toISOString(),
          key: null,
          headers: '{"h":"1"}',
          value: JSON.stringify({ n: x, text: 'hello world' }),
        },
      }));
      const chunks = [];
      for (let i = 0; i < rows.length; i += 500) chunks.push(rows.slice(i, i + 500));
      // Same request size and concurrency (4) as the sink's defaults.
      for (let i = 0; i < chunks.length; i += 4)
        await Promise.all(chunks.slice(i, i + 4).map((c) => table.insert(c, { raw: true, skipInvalidRows: true })));
    }
    const directRate = N / ((performance.now() - t) / 1000);
    console.log(
      `bigquery round ${round}: sink ${sinkRate.toFixed(0)} rows/s, direct ${directRate.toFixed(0)} rows/s, ratio ${(sinkRate / directRate).toFixed(2)}`,
    );
    await fake.close();
  }
}, 120_000);
