import { join } from 'node:path';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectRoutes } from '../src/index.js';
import { harness, lagOf, produceN, waitFor } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
let app: FastifyInstance;

beforeEach(async () => {
  h = await harness();
  app = Fastify();
  await app.register(connectRoutes, { runtime: h.runtime });
  await app.ready();
});
afterEach(async () => {
  await app.close();
  await h.cleanup();
});

async function get(url: string): Promise<any> {
  const res = await app.inject({ method: 'GET', url });
  expect(res.statusCode).toBe(200);
  return JSON.parse(res.body);
}

/** The produce time of the newest message of partition 0 of a station (ms since epoch). */
async function lastTimestamp(station: string): Promise<number> {
  const all = await h.store.read(station, { partition: 0, fromOffset: 1, limit: 100_000 });
  return all[all.length - 1]!.timestamp;
}

function gaugeOf(text: string, connector: string): number | undefined {
  const m = new RegExp(`^junction_connector_freshness_seconds\\{connector="${connector}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('sink freshness', () => {
  it('a file sink lands messages: status and /metrics show produce → landed of the last message landed', async () => {
    await h.store.createStation('fresh');
    const r = await app.inject({
      method: 'POST',
      url: '/v1/connectors',
      payload: { name: 'f', plugin: 'file', station: 'fresh', config: { dir: join(h.dir, 'out') }, batch: { maxLatencyMs: 20 } },
    });
    expect(r.statusCode).toBe(201);

    // Nothing landed yet: null, and no series.
    let st = await get('/v1/connectors/f/status');
    expect(st.freshness).toBeNull();
    expect(st.tasks[0].freshness ?? null).toBeNull();
    expect(gaugeOf(await h.prom.metrics(), 'f')).toBeUndefined();

    await produceN(h.store, 'fresh', 300);
    await waitFor(async () => (await lagOf(h.store, 'fresh', 'f')) === 0, { what: 'the sink to catch up', timeoutMs: 60_000 });
    const producedAt = await lastTimestamp('fresh');
    st = await waitFor(
      async () => {
        const s = await get('/v1/connectors/f/status');
        return s.freshness?.lastProducedAt === new Date(producedAt).toISOString() ? s : undefined;
      },
      { what: 'freshness of the last message', timeoutMs: 60_000 },
    );
    const f = st.freshness;
    expect(f.seconds).toBeGreaterThanOrEqual(0);
    expect(Date.parse(f.lastLandedAt)).toBeGreaterThanOrEqual(producedAt);
    expect(f.seconds).toBeCloseTo((Date.parse(f.lastLandedAt) - producedAt) / 1000, 3);
    expect(st.tasks[0].freshness).toEqual(f);

    // The listing with expand=status summarises it too, and /metrics exports the gauge.
    const list = await get('/v1/connectors?expand=status');
    expect(list.connectors[0].status.freshness).toEqual(f);
    expect(gaugeOf(await h.prom.metrics(), 'f')).toBeCloseTo(f.seconds, 3);

    // A pause keeps what was landed; more messages after the resume move it on.
    expect((await app.inject({ method: 'PUT', url: '/v1/connectors/f/pause' })).statusCode).toBe(202);
    expect((await get('/v1/connectors/f/status')).freshness).toEqual(f);
    expect((await app.inject({ method: 'PUT', url: '/v1/connectors/f/resume' })).statusCode).toBe(202);
    await produceN(h.store, 'fresh', 10, { prefix: 'late' });
    const later = await lastTimestamp('fresh');
    await waitFor(async () => (await get('/v1/connectors/f/status')).freshness?.lastProducedAt === new Date(later).toISOString(), {
      what: 'freshness after the resume',
      timeoutMs: 60_000,
    });

    // A deleted connector's series goes.
    expect((await app.inject({ method: 'DELETE', url: '/v1/connectors/f' })).statusCode).toBe(204);
    expect(gaugeOf(await h.prom.metrics(), 'f')).toBeUndefined();
  });
});
