import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import avro from 'avsc';
import { EmbeddedStore } from '@junction/broker';
// The built package: its validation worker is a file of dist/.
import { SchemaRegistry, ValidationPool, schemaEnforcingStore } from '@junction/schemas';
import { pino } from 'pino';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function setup(validationThreads: number) {
  const dir = await mkdtemp(join(tmpdir(), 'junction-enforce-'));
  const store = new EmbeddedStore({ dataDir: dir, fsync: 'never' });
  await store.open();
  const registry = new SchemaRegistry({ store });
  await registry.open();
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
  const served = schemaEnforcingStore(store, { registry, validationThreads, inlineBelow: 16, logger });
  cleanup.push(async () => {
    await served.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { store, registry, served, warnings };
}

const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 0 } }, required: ['n'] };
const avroType = avro.Type.forSchema({ type: 'record', name: 'V', fields: [{ name: 'n', type: 'long' }] });

describe('validation of large batches in worker threads', () => {
  for (const threads of [0, 1, 2]) {
    it(`gives the same answers as the calling thread (${threads} worker threads): every value checked once, each violation at its index`, async () => {
      const { registry, served, warnings } = await setup(threads);
      await registry.register('j-value', 'JSON', JSON.stringify(schema));
      const { id: avroId } = await registry.register('a-value', 'AVRO', JSON.stringify(avroType.schema()));
      const { id: otherId } = await registry.register(
        'other',
        'AVRO',
        JSON.stringify({ type: 'record', name: 'O', fields: [{ name: 'n', type: 'long' }] }),
      );
      await served.createStation('j', { schema: { version: 'latest', policy: 'reject' } });
      await served.createStation('a', { schema: { version: 'latest', policy: 'reject' } });

      const values = Array.from({ length: 500 }, (_, i) => (i % 7 === 0 ? `{"n":${-i - 1}}` : i % 11 === 0 ? 'nope' : `{"n":${i}}`));
      const res = await served.produce(
        'j',
        values.map((v) => ({ value: Buffer.from(v) })),
      );
      const bad = res.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
      expect(bad).toEqual(values.flatMap((_, i) => (i % 7 === 0 || i % 11 === 0 ? [i] : [])));
      expect(res.filter((r) => r.status === 'stored')).toHaveLength(500 - bad.length);
      const rejected = res[7] as { status: 'rejected'; code: string; message: string };
      expect(rejected.code).toBe('SCHEMA_VIOLATION');
      expect(rejected.message).toContain('/n');

      const wire = (id: number, n: number) =>
        Buffer.concat([Buffer.from([0, id >>> 24, (id >>> 16) & 255, (id >>> 8) & 255, id & 255]), avroType.toBuffer({ n })]);
      const avroValues = Array.from({ length: 300 }, (_, i) =>
        i % 5 === 0 ? wire(otherId, i) : i % 13 === 0 ? wire(avroId, i).subarray(0, 5) : wire(avroId, i),
      );
      const ar = await served.produce(
        'a',
        avroValues.map((value) => ({ value })),
      );
      expect(ar.flatMap((r, i) => (r.status === 'rejected' ? [i] : []))).toEqual(
        avroValues.flatMap((_, i) => (i % 5 === 0 || i % 13 === 0 ? [i] : [])),
      );
      // The workers answered: no batch fell back to the calling thread.
      expect(warnings).toEqual([]);
    });
  }

  it('a worker checks payloads at their offsets, including the Protobuf fallback without message indexes', async () => {
    const pool = new ValidationPool(1);
    cleanup.push(() => pool.close());
    const buf = new Uint8Array(Buffer.from('{"n":1}{"n":-1}xx'));
    const source = () => ({ id: 9, schemaType: 'JSON' as const, schema: JSON.stringify(schema), references: [] });
    const got = await pool.check(
      buf,
      [
        { id: 9, start: 0, end: 7 },
        { id: 9, start: 7, end: 15 },
        { id: 9, start: 15, end: 17 },
      ],
      source,
    );
    expect(got.map(([i, v]) => [i, v.path])).toEqual([
      [1, '/n'],
      [2, ''],
    ]);
  });

  it('a worker moves the batch buffer back: the next batch is copied into it, not into a new one', async () => {
    const pool = new ValidationPool(1);
    cleanup.push(() => pool.close());
    const source = () => ({ id: 9, schemaType: 'JSON' as const, schema: JSON.stringify(schema), references: [] });
    const first = pool.borrow(15);
    first.set(Buffer.from('{"n":1}{"n":-1}'));
    const got = await pool.check(
      first,
      [
        { id: 9, start: 0, end: 7 },
        { id: 9, start: 7, end: 15 },
      ],
      source,
    );
    expect(got.map(([i, v]) => [i, v.path])).toEqual([[1, '/n']]);
    expect(first.byteLength).toBe(0); // moved to the worker
    // The buffer came back with the answer: the next one lent is it (its old bytes still there).
    const next = pool.borrow(7);
    expect(Buffer.from(next).toString()).toBe('{"n":1}');
    expect(await pool.check(next, [{ id: 9, start: 0, end: 7 }], source)).toEqual([]);
  });

  it('a worker that cannot compile a schema answers with an error (the caller then checks on its own thread)', async () => {
    const pool = new ValidationPool(1);
    cleanup.push(() => pool.close());
    const buf = new Uint8Array(Buffer.from('{}'));
    await expect(
      pool.check(buf, [{ id: 1, start: 0, end: 2 }], () => ({ id: 1, schemaType: 'JSON', schema: '{not json', references: [] })),
    ).rejects.toThrow(/Invalid schema/);
  });
});
