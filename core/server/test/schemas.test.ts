/**
 * Schemas enforced in the broker, on the composed server: every produce path × every policy, values as
 * plain JSON, and Avro / Protobuf in the Confluent wire format made by an existing Confluent client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { COMPATIBILITY, SchemaRegistry as ConfluentClient, SchemaType } from '@kafkajs/confluent-schema-registry';
import { BATCH_CONTENT_TYPE, DLS_HEADERS, encodeProduceBatch } from '@junction/protocol';
import { startServer } from '../src/index.js';
import type { RunningServer } from '../src/index.js';

const logger = pino({ level: 'silent' });
let dir: string;
let server: RunningServer;
let url: string;
let sr: ConfluentClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-schemas-'));
  server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, logger, env: {} });
  url = server.url;
  sr = new ConfluentClient({ host: `${url}/v1/schema-registry` });
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function api(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const isBuf = Buffer.isBuffer(body) || typeof body === 'string';
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: isBuf ? (body as string) : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
async function values(station: string): Promise<string[]> {
  const r = await api('GET', `/v1/stations/${station}/messages?limit=1000`);
  return (r.body.messages as { value?: string; valueBase64?: string }[]).map((m) => m.value ?? `b64:${m.valueBase64}`);
}

const order = {
  type: 'object',
  properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } },
  required: ['sku', 'qty'],
  additionalProperties: false,
};

describe('a station with a schema', () => {
  it('policy reject: every produce path stores what matches and answers SCHEMA_VIOLATION with the path for what does not', async () => {
    await sr.register({ type: SchemaType.JSON, schema: JSON.stringify(order) }, { subject: 'orders-value' });
    expect((await api('POST', '/v1/stations', { name: 'orders', schema: { policy: 'reject' } })).status).toBe(201);
    const good = JSON.stringify({ sku: 'a', qty: 1 });
    const bad = JSON.stringify({ sku: 'b', qty: 0 });

    // /v1 JSON
    const json = await api('POST', '/v1/stations/orders/messages', { messages: [{ value: good }, { value: bad }, { value: 'not json' }] });
    expect(json.status).toBe(200);
    expect(json.body.results[0]).toMatchObject({ offset: 1 });
    expect(json.body.results[1]).toMatchObject({ error: { code: 'SCHEMA_VIOLATION', message: expect.stringContaining('/qty') } });
    expect(json.body.results[2]).toMatchObject({ error: { code: 'SCHEMA_VIOLATION', message: expect.stringContaining('not JSON') } });
    // NDJSON
    // NDJSON: each line is one value.
    const nd = await fetch(`${url}/v1/stations/orders/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: `${good}\n${bad}\n`,
    });
    const ndBody = (await nd.json()) as { results: { error?: { code: string } }[] };
    expect(ndBody.results.map((r) => r.error?.code ?? 'stored')).toEqual(['stored', 'SCHEMA_VIOLATION']);
    // binary batch
    const bin = await fetch(`${url}/v1/stations/orders/messages`, {
      method: 'POST',
      headers: { 'content-type': BATCH_CONTENT_TYPE },
      body: encodeProduceBatch([{ value: Buffer.from(bad) }, { value: Buffer.from(good) }]),
    });
    const binBody = (await bin.json()) as { results: { error?: { code: string } }[] };
    expect(binBody.results.map((r) => r.error?.code ?? 'stored')).toEqual(['SCHEMA_VIOLATION', 'stored']);
    // Memphis gateway: single and batch
    const single = await api('POST', '/stations/orders/produce/single', bad, { 'content-type': 'application/json' });
    expect(single.status).toBe(400);
    expect(single.body).toMatchObject({ success: false, code: 'SCHEMA_VIOLATION' });
    expect((await api('POST', '/stations/orders/produce/single', good, { 'content-type': 'application/json' })).status).toBe(200);
    const batch = await api('POST', '/stations/orders/produce/batch', [{ sku: 'c', qty: 2 }, { sku: 'd' }]);
    expect(batch.body).toMatchObject({ success: false, sent: 1, fail: 1 });

    expect(await values('orders')).toEqual([good, good, good, good, JSON.stringify({ sku: 'c', qty: 2 })]);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/junction_schema_violations_total\{station="orders",policy="reject"\} 6/);
  });

  it('policy dead-letter: what does not match goes to the dead-letter station with reason schema-violation, and the producer is told', async () => {
    await sr.register({ type: SchemaType.JSON, schema: JSON.stringify(order) }, { subject: 'shared-orders' });
    await api('POST', '/v1/stations', { name: 'dl', schema: { subject: 'shared-orders', policy: 'dead-letter' } });
    const r = await api('POST', '/v1/stations/dl/messages', {
      messages: [{ value: '{"sku":"x"}', key: 'k1' }, { value: '{"sku":"y","qty":3}' }],
    });
    expect(r.body.results[0]).toMatchObject({
      error: { code: 'SCHEMA_VIOLATION_DEAD_LETTERED', message: expect.stringContaining('dl.dls') },
    });
    expect(r.body.results[1]).toMatchObject({ offset: 1 });
    const dls = await api('GET', '/v1/stations/dl/dls');
    expect(dls.body.messages).toHaveLength(1);
    expect(dls.body.messages[0]).toMatchObject({
      value: '{"sku":"x"}',
      key: 'k1',
      headers: { [DLS_HEADERS.reason]: 'schema-violation', [DLS_HEADERS.station]: 'dl', 'junction-schema-subject': 'shared-orders' },
    });
    expect(await values('dl')).toEqual(['{"sku":"y","qty":3}']);
  });

  it('policy warn: everything is stored and violations are counted', async () => {
    await sr.register({ type: SchemaType.JSON, schema: JSON.stringify(order) }, { subject: 'w-value' });
    await api('POST', '/v1/stations', { name: 'w', schema: { policy: 'warn' } });
    const r = await api('POST', '/v1/stations/w/messages', { messages: [{ value: '{}' }, { value: '{"sku":"a","qty":1}' }] });
    expect(r.body.results.map((x: { offset?: number }) => x.offset)).toEqual([1, 2]);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/junction_schema_violations_total\{station="w",policy="warn"\} 1/);
  });

  it('Avro and Protobuf in the Confluent wire format; an id of another subject is a violation', async () => {
    const avro = {
      type: 'record',
      name: 'Click',
      fields: [
        { name: 'page', type: 'string' },
        { name: 'ms', type: 'long' },
      ],
    };
    const { id: clickId } = await sr.register({ type: SchemaType.AVRO, schema: JSON.stringify(avro) }, { subject: 'clicks-value' });
    const { id: otherId } = await sr.register(
      { type: SchemaType.AVRO, schema: JSON.stringify({ ...avro, name: 'Other' }) },
      { subject: 'other-value' },
    );
    await api('POST', '/v1/stations', { name: 'clicks', schema: {} });
    const ok = await sr.encode(clickId, { page: '/', ms: 5 });
    const foreign = await sr.encode(otherId, { page: '/', ms: 5 });
    const truncated = ok.subarray(0, ok.length - 1);
    const res = await fetch(`${url}/v1/stations/clicks/messages`, {
      method: 'POST',
      headers: { 'content-type': BATCH_CONTENT_TYPE },
      body: encodeProduceBatch([{ value: ok }, { value: foreign }, { value: truncated }]),
    });
    const body = (await res.json()) as { results: { offset?: number; error?: { code: string; message: string } }[] };
    expect(body.results[0]).toMatchObject({ offset: 1 });
    expect(body.results[1]!.error).toMatchObject({
      code: 'SCHEMA_VIOLATION',
      message: expect.stringContaining(`schema id ${otherId} is not a version of subject "clicks-value"`),
    });
    expect(body.results[2]!.error).toMatchObject({ code: 'SCHEMA_VIOLATION' });
    // What was stored decodes with the client, byte for byte what it encoded.
    const stored = await api('GET', '/v1/stations/clicks/messages?encoding=base64');
    expect(Buffer.from(stored.body.messages[0].valueBase64, 'base64').equals(ok)).toBe(true);

    const proto = 'syntax = "proto3"; package shop; message Item { string name = 1; int32 count = 2; }';
    const { id: itemId } = await sr.register({ type: SchemaType.PROTOBUF, schema: proto }, { subject: 'items-value' });
    await api('POST', '/v1/stations', { name: 'items', schema: { policy: 'reject' } });
    // The kafkajs client writes no message indexes; Confluent's serializers write them (a lone 0 = the first type).
    const item = await sr.encode(itemId, { name: 'pen', count: 3 });
    const confluent = Buffer.concat([item.subarray(0, 5), Buffer.from([0]), item.subarray(5)]);
    const broken = Buffer.concat([item.subarray(0, 5), Buffer.from([0, 0x0a, 0x7f, 0x61])]);
    const p = await fetch(`${url}/v1/stations/items/messages`, {
      method: 'POST',
      headers: { 'content-type': BATCH_CONTENT_TYPE },
      body: encodeProduceBatch([{ value: item }, { value: confluent }, { value: broken }]),
    });
    const pb = (await p.json()) as { results: { offset?: number; error?: { code: string } }[] };
    expect(pb.results.map((x) => x.error?.code ?? x.offset)).toEqual([1, 2, 'SCHEMA_VIOLATION']);
  });

  it('a schema change mid-stream follows "latest"; pinning the old version is the rollback; a binding to nothing is refused', async () => {
    const v1 = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] };
    const v2 = { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } }, required: ['a'] };
    await sr.register({ type: SchemaType.JSON, schema: JSON.stringify(v1) }, { subject: 'evolve-value' });
    await api('POST', '/v1/stations', { name: 'evolve', schema: { version: 'latest' } });
    const withB = JSON.stringify({ a: 'x', b: 'not a number' });
    // v1 takes any b (an open model); v2 wants an integer.
    expect((await api('POST', '/v1/stations/evolve/messages', { messages: [{ value: withB }] })).body.results[0]).toMatchObject({
      offset: 1,
    });
    await api('PUT', '/v1/schema-registry/config/evolve-value', { compatibility: 'NONE' });
    await sr.register(
      { type: SchemaType.JSON, schema: JSON.stringify(v2) },
      { subject: 'evolve-value', compatibility: COMPATIBILITY.NONE },
    );
    // Registered on this node: the binding's "latest" follows within the binding cache's second.
    await expect
      .poll(async () => (await api('POST', '/v1/stations/evolve/messages', { messages: [{ value: withB }] })).body.results[0].error?.code, {
        timeout: 10_000,
      })
      .toBe('SCHEMA_VIOLATION');
    // Roll back to version 1: the same value is accepted again, at once.
    expect((await api('PATCH', '/v1/stations/evolve', { schema: { version: 1 } })).status).toBe(200);
    expect((await api('POST', '/v1/stations/evolve/messages', { messages: [{ value: withB }] })).body.results[0]).toHaveProperty('offset');
    // Removing the schema: nothing is validated.
    const off = await api('PATCH', '/v1/stations/evolve', { schema: null });
    expect(off.body.config.schema).toBeUndefined();
    expect((await api('POST', '/v1/stations/evolve/messages', { messages: [{ value: 'anything' }] })).body.results[0]).toHaveProperty(
      'offset',
    );

    const missing = await api('POST', '/v1/stations', { name: 'nowhere', schema: { subject: 'no-such-subject' } });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ code: 'CONFIG_INVALID', issues: [{ path: 'schema.subject' }] });
    const badVersion = await api('PATCH', '/v1/stations/evolve', { schema: { version: 99 } });
    expect(badVersion.status).toBe(400);
  });

  it('a source connector produces through the same check: what does not match is dead-lettered, nothing is lost', async () => {
    const usdOnly = {
      type: 'object',
      properties: { type: { const: 'order' }, currency: { enum: ['USD'] } },
      required: ['type', 'currency'],
    };
    await sr.register({ type: SchemaType.JSON, schema: JSON.stringify(usdOnly) }, { subject: 'gen-value' });
    await api('POST', '/v1/stations', { name: 'gen', schema: { policy: 'dead-letter' } });
    const created = await api('POST', '/v1/connectors', {
      name: 'gen-orders',
      plugin: 'datagen',
      station: 'gen',
      config: { shape: 'order', seed: 7, maxMessages: 300, batchSize: 50 },
    });
    expect(created.status).toBe(201);
    const count = async (station: string): Promise<number> => (await api('GET', `/v1/stations/${station}`)).body.messages as number;
    await expect.poll(async () => (await count('gen')) + (await count('gen.dls')), { timeout: 30_000 }).toBe(300);
    const stored = await api('GET', '/v1/stations/gen/messages?limit=1000');
    expect(stored.body.messages.length).toBeGreaterThan(0);
    for (const m of stored.body.messages as { value: string }[]) expect(JSON.parse(m.value).currency).toBe('USD');
    const dead = await api('GET', '/v1/stations/gen/dls?limit=1000');
    expect(dead.body.messages.length).toBeGreaterThan(0);
    for (const m of dead.body.messages as { value: string; headers: Record<string, string> }[]) {
      expect(JSON.parse(m.value).currency).not.toBe('USD');
      expect(m.headers[DLS_HEADERS.reason]).toBe('schema-violation');
    }
    await api('DELETE', '/v1/connectors/gen-orders');
  });

  it("the registry log is Junction's own station: listed only when asked for, and read-only", async () => {
    const list = await api('GET', '/v1/stations');
    expect(list.body.stations.map((s: { name: string }) => s.name)).not.toContain('__schemas');
    expect((await api('GET', '/v1/stations?system=true')).body.stations.map((s: { name: string }) => s.name)).toContain('__schemas');
    expect((await api('DELETE', '/v1/stations/__schemas')).status).toBe(422);
  });
});
