/** By hand, not a test: rows/s through the sink into the fake vs the same rows bulk-inserted directly. `npx vitest run connectors/snowflake/test/bench.manual.ts`. */
import { it } from 'vitest';
import snowflake from 'snowflake-sdk';
import { FakeSnowflake } from '../../../test/fakes/snowflake/server.js';
import { batch, config, msg, open, range, signal } from './helpers.js';

it('bench', async () => {
  const N = 50_000,
    B = 5_000;
  for (let round = 0; round < 3; round++) {
    const fake = await new FakeSnowflake().start();
    const s = await open(config(fake, { table: 'SINK' }));
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
    await open(config(fake, { table: 'DIRECT' }));
    const conn = snowflake.createConnection({
      account: 'testacct',
      accessUrl: fake.url,
      username: 'junction',
      password: 'secret',
      database: 'DB',
      schema: 'PUBLIC',
      warehouse: 'WH',
      arrayBindingThreshold: 1_000_000,
    } as never);
    await conn.connectAsync(() => undefined);
    // The direct path: the same JSON-bind INSERT … SELECT FLATTEN, one statement per 5 000 rows, no presence query, no anti-join.
    const sql =
      'INSERT INTO "DB"."PUBLIC"."DIRECT" ("STATION","PARTITION","OFFSET","TIMESTAMP","KEY","HEADERS","VALUE") SELECT VALUE[0]::VARCHAR, VALUE[1]::NUMBER(38,0), VALUE[2]::NUMBER(38,0), VALUE[3]::TIMESTAMP_NTZ, VALUE[4]::VARCHAR, VALUE[5], VALUE[6] FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))';
    t = performance.now();
    for (let o = 1; o <= N; o += B) {
      const rows = range(o, o + B - 1).map((x) => [
        'b',
        0,
        x,
        new Date(1_700_000_000_000 + x).toISOString().slice(0, -1),
        null,
        { h: String(x) },
        { n: x, text: 'hello world' },
      ]);
      await new Promise((res, rej) =>
        conn.execute({ sqlText: sql, binds: [JSON.stringify(rows)], complete: (e) => (e ? rej(e) : res(undefined)) }),
      );
    }
    const directRate = N / ((performance.now() - t) / 1000);
    console.log(
      `snowflake round ${round}: sink ${sinkRate.toFixed(0)} rows/s, direct ${directRate.toFixed(0)} rows/s, ratio ${(sinkRate / directRate).toFixed(2)}`,
    );
    await new Promise<void>((r) => conn.destroy(() => r()));
    await s.close();
    await fake.close();
  }
}, 120_000);
