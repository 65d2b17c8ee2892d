/** Builds the broker's HTTP app on a real EmbeddedStore in a temp dir, as core/server would wire it. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import type { FsyncPolicy } from '@junction/protocol';
import { EmbeddedStore } from '../../src/embedded/store.js';
import { brokerRoutes, errorHandler, memphisRoutes, metricsRoutes, notFoundHandler, registerBrokerMetrics } from '../../src/http/index.js';

export interface TestApp {
  app: FastifyInstance;
  store: EmbeddedStore;
  registry: Registry;
  close(): Promise<void>;
}

export async function makeApp(opts: { bodyLimit?: number; autoCreateStations?: boolean; fsync?: FsyncPolicy } = {}): Promise<TestApp> {
  const dir = await mkdtemp(join(tmpdir(), 'junction-http-'));
  const store = new EmbeddedStore({ dataDir: dir, fsync: opts.fsync ?? 'never' });
  await store.open();
  const registry = new Registry();
  const metrics = registerBrokerMetrics(store, registry);
  const app = Fastify({ logger: false });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  await app.register(brokerRoutes, { store, metrics, bodyLimit: opts.bodyLimit });
  await app.register(memphisRoutes, { store, metrics, bodyLimit: opts.bodyLimit, autoCreateStations: opts.autoCreateStations });
  await app.register(metricsRoutes, { registry });
  await app.ready();
  return {
    app,
    store,
    registry,
    async close() {
      await app.close();
      metrics.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Creates a station over HTTP and fails loudly if that did not work. */
export async function createStation(app: FastifyInstance, name: string, config: Record<string, unknown> = {}): Promise<void> {
  const res = await app.inject({ method: 'POST', url: '/v1/stations', payload: { name, ...config } });
  if (res.statusCode !== 201) throw new Error(`create station ${name}: ${res.statusCode} ${res.body}`);
}

/** Produces UTF-8 values over the JSON API. */
export async function produceText(app: FastifyInstance, station: string, values: string[]): Promise<void> {
  const res = await app.inject({
    method: 'POST',
    url: `/v1/stations/${station}/messages`,
    payload: { messages: values.map((value) => ({ value })) },
  });
  if (res.statusCode !== 200) throw new Error(`produce: ${res.statusCode} ${res.body}`);
}

/** Every message of partition 0 as JSON (value or valueBase64). */
export async function browse(app: FastifyInstance, station: string, query = ''): Promise<Array<Record<string, unknown>>> {
  const res = await app.inject({ method: 'GET', url: `/v1/stations/${station}/messages?limit=10000${query}` });
  if (res.statusCode !== 200) throw new Error(`browse: ${res.statusCode} ${res.body}`);
  return (res.json() as { messages: Array<Record<string, unknown>> }).messages;
}

export async function messageCount(store: EmbeddedStore, station: string): Promise<number> {
  return (await store.getStation(station)).messages;
}
