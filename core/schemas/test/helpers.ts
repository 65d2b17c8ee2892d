import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { EmbeddedStore } from '@junction/broker';
import { SchemaRegistry, schemaRegistryRoutes } from '../src/index.js';

export const PREFIX = '/v1/schema-registry';

export interface RegistryApp {
  dir: string;
  store: EmbeddedStore;
  registry: SchemaRegistry;
  app: FastifyInstance;
  url: string;
  /** Closes the app and the store (the data dir stays, for a restart). */
  close(): Promise<void>;
}

/** A registry on an embedded store in `dir` (a new temp dir when absent), served on a loopback port. */
export async function startRegistry(dir?: string): Promise<RegistryApp> {
  const dataDir = dir ?? (await mkdtemp(join(tmpdir(), 'junction-schemas-')));
  const store = new EmbeddedStore({ dataDir, fsync: 'never' });
  await store.open();
  const registry = new SchemaRegistry({ store });
  await registry.open();
  const app = Fastify({ logger: false });
  await app.register(schemaRegistryRoutes, { registry, prefix: PREFIX });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    dir: dataDir,
    store,
    registry,
    app,
    url: `http://127.0.0.1:${port}${PREFIX}`,
    async close() {
      await app.close();
      await store.close();
    },
  };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** A call of the API: status and parsed JSON body. */
export async function call(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown; type: string | null }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // a raw schema
  }
  return { status: res.status, body: parsed, type: res.headers.get('content-type') };
}
