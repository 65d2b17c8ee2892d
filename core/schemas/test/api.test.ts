import { afterEach, describe, expect, it } from 'vitest';
import { SchemaRegistry as ConfluentClient, SchemaType as ClientSchemaType } from '@kafkajs/confluent-schema-registry';
import { SchemaRegistry } from '../src/index.js';
import { call, removeDir, startRegistry, type RegistryApp } from './helpers.js';

const opened: RegistryApp[] = [];
const dirs = new Set<string>();
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close().catch(() => undefined);
  for (const d of dirs) await removeDir(d);
  dirs.clear();
});
async function start(dir?: string): Promise<RegistryApp> {
  const r = await startRegistry(dir);
  opened.push(r);
  dirs.add(r.dir);
  return r;
}

const userV1 = {
  type: 'record',
  name: 'User',
  namespace: 'acme',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'name', type: 'string' },
  ],
};
const userV2 = { ...userV1, fields: [...userV1.fields, { name: 'email', type: ['null', 'string'], default: null }] };
const userBad = { ...userV1, fields: [...userV1.fields, { name: 'age', type: 'int' }] }; // no default: cannot read v1 data

describe('the Confluent Schema Registry API, driven by @kafkajs/confluent-schema-registry', () => {
  it('registers, looks up, encodes and decodes Avro, JSON Schema and Protobuf', async () => {
    const r = await start();
    const client = new ConfluentClient({ host: r.url });

    const { id: avroId } = await client.register(
      { type: ClientSchemaType.AVRO, schema: JSON.stringify(userV1) },
      { subject: 'users-value' },
    );
    expect(await client.getLatestSchemaId('users-value')).toBe(avroId);
    expect(await client.getRegistryId('users-value', 1)).toBe(avroId);
    const avroBytes = await client.encode(avroId, { id: 7, name: 'Ada' });
    expect(avroBytes[0]).toBe(0);
    expect(avroBytes.readInt32BE(1)).toBe(avroId);
    expect(await new ConfluentClient({ host: r.url }).decode(avroBytes)).toEqual({ id: 7, name: 'Ada' });
    // The same schema again: the same id, no new version.
    expect((await client.register({ type: ClientSchemaType.AVRO, schema: JSON.stringify(userV1) }, { subject: 'users-value' })).id).toBe(
      avroId,
    );

    const jsonSchema = JSON.stringify({
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } },
      required: ['sku', 'qty'],
    });
    const { id: jsonId } = await client.register({ type: ClientSchemaType.JSON, schema: jsonSchema }, { subject: 'orders-value' });
    const jsonBytes = await client.encode(jsonId, { sku: 'A-1', qty: 2 });
    expect(await new ConfluentClient({ host: r.url }).decode(jsonBytes)).toEqual({ sku: 'A-1', qty: 2 });
    await expect(client.encode(jsonId, { sku: 'A-1', qty: 0 })).rejects.toThrow();

    const proto = 'syntax = "proto3";\npackage acme;\nmessage Payment { string id = 1; int64 cents = 2; }\n';
    const { id: protoId } = await client.register({ type: ClientSchemaType.PROTOBUF, schema: proto }, { subject: 'payments-value' });
    const protoBytes = await client.encode(protoId, { id: 'p1', cents: 1250 });
    const decoded = (await new ConfluentClient({ host: r.url }).decode(protoBytes)) as { id: string; cents: unknown };
    expect(decoded.id).toBe('p1');
    expect(Number(decoded.cents)).toBe(1250);

    expect(new Set([avroId, jsonId, protoId]).size).toBe(3);
    expect((await call(r.url, 'GET', '/subjects')).body).toEqual(['orders-value', 'payments-value', 'users-value']);
    expect((await call(r.url, 'GET', '/schemas/types')).body).toEqual(['JSON', 'PROTOBUF', 'AVRO']);
    const byId = await call(r.url, 'GET', `/schemas/ids/${protoId}`);
    expect(byId.body).toEqual({ schemaType: 'PROTOBUF', schema: proto });
    expect(byId.type).toBe('application/vnd.schemaregistry.v1+json');
    expect((await call(r.url, 'GET', `/schemas/ids/${avroId}/versions`)).body).toEqual([{ subject: 'users-value', version: 1 }]);
  });

  it('evolves under BACKWARD (the default): a compatible change is version 2, an incompatible one answers 409 and is not stored', async () => {
    const r = await start();
    const client = new ConfluentClient({ host: r.url });
    const v1 = await client.register({ type: ClientSchemaType.AVRO, schema: JSON.stringify(userV1) }, { subject: 'users-value' });
    const bad = await call(r.url, 'POST', '/subjects/users-value/versions', { schema: JSON.stringify(userBad) });
    expect(bad.status).toBe(409);
    expect(bad.body).toMatchObject({ error_code: 409, message: expect.stringContaining('incompatible') as unknown });
    const check = await call(r.url, 'POST', '/compatibility/subjects/users-value/versions/latest?verbose=true', {
      schema: JSON.stringify(userBad),
    });
    expect(check.body).toMatchObject({ is_compatible: false, messages: [expect.stringContaining('version 1') as unknown] });
    expect(
      (await call(r.url, 'POST', '/compatibility/subjects/users-value/versions/latest', { schema: JSON.stringify(userV2) })).body,
    ).toEqual({ is_compatible: true });

    const v2 = await client.register({ type: ClientSchemaType.AVRO, schema: JSON.stringify(userV2) }, { subject: 'users-value' });
    expect(v2.id).not.toBe(v1.id);
    expect((await call(r.url, 'GET', '/subjects/users-value/versions')).body).toEqual([1, 2]);
    // Data written with v1 decodes with v2 as the reader: the new field takes its default.
    const bytes = await client.encode(v1.id, { id: 1, name: 'x' });
    expect(await client.decode(bytes, { [ClientSchemaType.AVRO]: { readerSchema: userV2 } } as never)).toEqual({
      id: 1,
      name: 'x',
      email: null,
    });

    // Per subject: NONE lets anything in; the global level stays BACKWARD.
    expect((await call(r.url, 'PUT', '/config/users-value', { compatibility: 'NONE' })).body).toEqual({ compatibility: 'NONE' });
    expect((await call(r.url, 'GET', '/config/users-value')).body).toEqual({ compatibilityLevel: 'NONE' });
    expect((await call(r.url, 'GET', '/config')).body).toEqual({ compatibilityLevel: 'BACKWARD' });
    expect((await call(r.url, 'POST', '/subjects/users-value/versions', { schema: JSON.stringify(userBad) })).status).toBe(200);
    expect((await call(r.url, 'DELETE', '/config/users-value')).body).toEqual({ compatibilityLevel: 'NONE' });
    expect((await call(r.url, 'GET', '/config/users-value')).body).toMatchObject({ error_code: 40408 });
    expect((await call(r.url, 'GET', '/config/users-value?defaultToGlobal=true')).body).toEqual({ compatibilityLevel: 'BACKWARD' });

    // FULL_TRANSITIVE checks every live version, both ways.
    await call(r.url, 'PUT', '/config/t', { compatibility: 'FULL_TRANSITIVE' });
    const rec = (fields: object[]) => JSON.stringify({ type: 'record', name: 'T', fields });
    expect((await call(r.url, 'POST', '/subjects/t/versions', { schema: rec([{ name: 'a', type: 'int' }]) })).status).toBe(200);
    expect(
      (
        await call(r.url, 'POST', '/subjects/t/versions', {
          schema: rec([
            { name: 'a', type: 'int' },
            { name: 'b', type: 'string', default: '' },
          ]),
        })
      ).status,
    ).toBe(200);
    // Dropping `a` (no default) breaks reading new data with version 1.
    expect((await call(r.url, 'POST', '/subjects/t/versions', { schema: rec([{ name: 'b', type: 'string', default: '' }]) })).status).toBe(
      409,
    );
  });

  it('answers with Confluent error codes and shapes', async () => {
    const r = await start();
    await call(r.url, 'POST', '/subjects/s/versions', { schema: '"string"' });
    const cases: [string, string, unknown, number, number][] = [
      ['GET', '/subjects/nope/versions', undefined, 404, 40401],
      ['GET', '/subjects/s/versions/9', undefined, 404, 40402],
      ['GET', '/subjects/s/versions/zero', undefined, 422, 42202],
      ['GET', '/schemas/ids/999999', undefined, 404, 40403],
      ['POST', '/subjects/s', { schema: '"int"' }, 404, 40403],
      ['POST', '/subjects/s/versions', { schema: '{"type": "record"' }, 422, 42201],
      ['POST', '/subjects/s/versions', { schema: '{"type":"nope"}' }, 422, 42201],
      [
        'POST',
        '/subjects/s/versions',
        { schema: '{}', schemaType: 'JSON', references: [{ name: 'x', subject: 'missing', version: 1 }] },
        422,
        42201,
      ],
      ['PUT', '/config', { compatibility: 'SIDEWAYS' }, 422, 42203],
      ['PUT', '/mode', { mode: 'IMPORT' }, 422, 42204],
      ['DELETE', '/subjects/s?permanent=true', undefined, 404, 40405],
      ['DELETE', '/subjects/s/versions/1?permanent=true', undefined, 404, 40407],
    ];
    for (const [method, path, body, status, code] of cases) {
      const res = await call(r.url, method, path, body);
      expect({ method, path, status: res.status }).toEqual({ method, path, status });
      expect(res.body, `${method} ${path}`).toMatchObject({ error_code: code, message: expect.any(String) as unknown });
    }
    // Lookup finds the registered one; the raw schema endpoint answers the text itself.
    expect((await call(r.url, 'POST', '/subjects/s', { schema: '"string"' })).body).toMatchObject({
      subject: 's',
      version: 1,
      schema: '"string"',
    });
    expect((await call(r.url, 'GET', '/subjects/s/versions/latest/schema')).body).toBe('string');
    // Soft, then hard delete; a soft-deleted subject is listed only with deleted=true.
    expect((await call(r.url, 'DELETE', '/subjects/s')).body).toEqual([1]);
    expect((await call(r.url, 'DELETE', '/subjects/s')).body).toMatchObject({ error_code: 40404 });
    expect((await call(r.url, 'GET', '/subjects')).body).toEqual([]);
    expect((await call(r.url, 'GET', '/subjects?deleted=true')).body).toEqual(['s']);
    expect((await call(r.url, 'DELETE', '/subjects/s?permanent=true')).body).toEqual([1]);
    expect((await call(r.url, 'GET', '/subjects?deleted=true')).body).toEqual([]);
    // READONLY refuses changes with 42205.
    await call(r.url, 'PUT', '/mode', { mode: 'READONLY' });
    expect((await call(r.url, 'POST', '/subjects/s/versions', { schema: '"string"' })).body).toMatchObject({ error_code: 42205 });
    await call(r.url, 'PUT', '/mode', { mode: 'READWRITE' });
  });

  it('a referenced schema: JSON Schema with a reference validates through it, and the referenced version cannot be deleted', async () => {
    const r = await start();
    const address = JSON.stringify({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] });
    expect((await call(r.url, 'POST', '/subjects/address/versions', { schema: address, schemaType: 'JSON' })).status).toBe(200);
    const person = JSON.stringify({ type: 'object', properties: { name: { type: 'string' }, address: { $ref: 'address.json' } } });
    const reg = await call(r.url, 'POST', '/subjects/person-value/versions', {
      schema: person,
      schemaType: 'JSON',
      references: [{ name: 'address.json', subject: 'address', version: 1 }],
    });
    expect(reg.status).toBe(200);
    const id = (reg.body as { id: number }).id;
    const parsed = r.registry.state.parsedById(id)!;
    expect(parsed.check(Buffer.from(JSON.stringify({ name: 'a', address: { city: 'Oslo' } }))).ok).toBe(true);
    expect(parsed.check(Buffer.from(JSON.stringify({ name: 'a', address: {} })))).toMatchObject({
      ok: false,
      violation: { path: '/address' },
    });
    expect((await call(r.url, 'GET', '/subjects/address/versions/1/referencedby')).body).toEqual([id]);
    expect((await call(r.url, 'DELETE', '/subjects/address/versions/1')).body).toMatchObject({ error_code: 42206 });
  });
});

describe('the registry kept in the broker', () => {
  it('a restart keeps subjects, versions, ids and config; an id is never given again, even after a hard delete', async () => {
    const r = await start();
    const a = (await call(r.url, 'POST', '/subjects/a/versions', { schema: '"string"' })).body as { id: number };
    const b = (await call(r.url, 'POST', '/subjects/b/versions', { schema: '"long"' })).body as { id: number };
    await call(r.url, 'PUT', '/config/a', { compatibility: 'FORWARD' });
    await call(r.url, 'DELETE', '/subjects/b');
    await call(r.url, 'DELETE', '/subjects/b?permanent=true');
    await r.close();
    opened.splice(opened.indexOf(r), 1);

    const again = await start(r.dir);
    expect((await call(again.url, 'GET', '/subjects/a/versions/1')).body).toMatchObject({ id: a.id, version: 1, schema: '"string"' });
    expect((await call(again.url, 'GET', '/config/a')).body).toEqual({ compatibilityLevel: 'FORWARD' });
    expect((await call(again.url, 'GET', `/schemas/ids/${b.id}`)).status).toBe(404);
    const c = (await call(again.url, 'POST', '/subjects/b/versions', { schema: '"long"' })).body as { id: number };
    expect(c.id).not.toBe(b.id);
    expect(c.id).not.toBe(a.id);
    // Version numbers of a subject are not given twice either.
    expect((await call(again.url, 'GET', '/subjects/b/versions')).body).toEqual([2]);
  });

  it('two registries on one store (two nodes) registering at once agree on every id and version', async () => {
    const r = await start();
    const other = new SchemaRegistry({ store: r.store });
    await other.open();
    const schemas = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ type: 'record', name: `R${i % 5}`, fields: [{ name: 'f', type: 'int' }] }),
    );
    const results = await Promise.all(schemas.map((s, i) => (i % 2 === 0 ? r.registry : other).register(`subject-${i % 5}`, 'AVRO', s)));
    // The same schema in the same subject, from either node: one version, one id.
    for (let i = 0; i < 20; i++) expect(results[i]).toEqual(results[i % 5]);
    await other.catchUp();
    await r.registry.catchUp();
    for (let s = 0; s < 5; s++) {
      expect(other.state.versions(`subject-${s}`, false)).toEqual(r.registry.state.versions(`subject-${s}`, false));
      expect(r.registry.state.versions(`subject-${s}`, false)).toHaveLength(1);
    }
  });
});
