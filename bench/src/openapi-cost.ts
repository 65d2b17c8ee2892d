/**
 * What the OpenAPI document and the /docs page cost (core/openapi): `buildApp` + `ready()` with and
 * without them (interleaved, medians of wall and CPU time), then the first and a later
 * `GET /v1/openapi.json` of the full server (`startServer`: every package's routes).
 *
 *   node bench/dist/openapi-cost.js [runs=40]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '@junction/broker';
import { buildApp, startServer } from '@junction/server';

const runs = Number(process.argv[2] ?? 40);
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1);

const dir = mkdtempSync(join(tmpdir(), 'junction-openapi-cost-'));
const server = await startServer({
  dataDir: join(dir, 'server'),
  host: '127.0.0.1',
  port: 0,
  logLevel: 'silent',
  env: {},
  watchConfig: false,
});
const logger = server.app.log;
try {
  const store = new EmbeddedStore({ dataDir: join(dir, 'apps'), fsync: 'never' }); // silent by default
  await store.open();
  const t = { onWall: [] as number[], offWall: [] as number[], onCpu: [] as number[], offCpu: [] as number[] };
  for (let i = 0; i < runs * 2; i++) {
    const docs = i % 2 === 0;
    const c = cpuMs();
    const w = performance.now();
    const app = buildApp({ store, logger, apiDocs: docs });
    await app.ready();
    (docs ? t.onWall : t.offWall).push(performance.now() - w);
    (docs ? t.onCpu : t.offCpu).push(cpuMs() - c);
    await app.close();
  }
  await store.close();
  console.log(`buildApp + ready (broker and Memphis routes), ${runs} runs each, medians:`);
  console.log(`  docs off: ${median(t.offWall)} ms wall, ${median(t.offCpu)} ms CPU`);
  console.log(`  docs on:  ${median(t.onWall)} ms wall, ${median(t.onCpu)} ms CPU`);

  {
    for (const which of ['first', 'later']) {
      const c = cpuMs();
      const w = performance.now();
      const res = await fetch(`${server.url}/v1/openapi.json`);
      const text = await res.text();
      const doc = JSON.parse(text) as { paths: Record<string, object> };
      console.log(
        `full server, ${which} GET /v1/openapi.json: ${(performance.now() - w).toFixed(1)} ms wall, ${(cpuMs() - c).toFixed(1)} ms CPU` +
          ` (${res.status}, ${Object.keys(doc.paths).length} paths, ${Object.values(doc.paths).reduce((n, p) => n + Object.keys(p).length, 0)} operations, ${text.length} bytes)`,
      );
    }
  }
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
