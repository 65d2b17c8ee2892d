/**
 * By hand, not a test: rows/s through the sink into the fake vs the same rows inserted directly with
 * firebolt-sdk (the same multi-row INSERT, 5 000 rows a statement, no presence query). Run it by copying
 * it to a `*.test.ts` name (vitest only collects those): `npx vitest run connectors/firebolt/test/bench`.
 */
import { it } from 'vitest';
import { Firebolt } from 'firebolt-sdk';
import { FakeFirebolt } from '../../../test/fakes/firebolt/server.js';
import { PlainOrTlsHttpClient, silentLogger } from '../src/http.js';
import { lit, timestampText } from '../src/rows.js';
import { batch, config, msg, open, range, signal } from './helpers.js';

it('bench', async () => {
  const N = 50_000,
    B = 5_000;
  for (let round = 0; round < 3; round++) {
    const fake = await new FakeFirebolt().start();
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
    await (await open(config(fake, { table: 'direct' }))).close();
    const http = new PlainOrTlsHttpClient();
    const conn = await Firebolt({ apiEndpoint: fake.url, dependencies: { httpClient: http as never, logger: silentLogger } }).connect({
      account: 'acct',
      auth: { client_id: 'junction-id', client_secret: 'junction-secret' },
      database: 'db',
      engineName: 'eng',
      useCache: false,
    });
    t = performance.now();
    for (let o = 1; o <= N; o += B) {
      const values = range(o, o + B - 1).map(
        (x) =>
          `(${['b', 0, x, timestampText(1_700_000_000_000 + x), null, JSON.stringify({ h: String(x) }), JSON.stringify({ n: x, text: 'hello world' })].map(lit).join(',')})`,
      );
      await conn.execute(
        `INSERT INTO "direct" ("station", "partition", "offset", "timestamp", "key", "headers", "value") VALUES ${values.join(',')}`,
      );
    }
    const directRate = N / ((performance.now() - t) / 1000);
    console.log(
      `firebolt round ${round}: sink ${sinkRate.toFixed(0)} rows/s, direct ${directRate.toFixed(0)} rows/s, ratio ${(sinkRate / directRate).toFixed(2)}`,
    );
    http.destroy();
    await s.close();
    await fake.close();
  }
}, 120_000);
