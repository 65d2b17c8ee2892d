/**
 * By hand, not a test: what a station schema costs the S3 Parquet path, in memory (no S3). Rows/s of
 * decoding 1 KiB-ish values with `schemaDecoder` (JSON, Avro and Protobuf in the wire format) and of
 * writing a Parquet file from them, beside the schema-less path (JSON.parse + inferred columns).
 * The suite's `include` (`*.test.ts`) leaves it out: run it with a vitest config of your own whose
 * `include` names it (best of 5 rounds of 50 000 rows; busy machines give lower, noisier numbers).
 */
import avro from 'avsc';
import protobuf from 'protobufjs';
import { it } from 'vitest';
import { schemaDecoder } from '@junction/sdk-connector/schema';
import type { SchemaVersionInfo } from '@junction/sdk-connector';
import { writeParquet } from '../src/formats/parquet.js';

const N = 50_000;
const AVRO = {
  type: 'record',
  name: 'E',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'user', type: 'string' },
    { name: 'amount', type: 'double' },
    { name: 'ok', type: 'boolean' },
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'note', type: 'string' },
  ],
};
const JSONS = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    user: { type: 'string' },
    amount: { type: 'number' },
    ok: { type: 'boolean' },
    at: { type: 'string', format: 'date-time' },
    note: { type: 'string' },
  },
};
const PROTO =
  'syntax = "proto3"; import "google/protobuf/timestamp.proto"; message E { int64 id = 1; string user = 2; double amount = 3; bool ok = 4; google.protobuf.Timestamp at = 5; string note = 6; }';
const note = 'x'.repeat(900);
const rec = (i: number) => ({ id: i, user: `user-${i % 1000}`, amount: i * 1.25, ok: i % 2 === 0, at: 1_700_000_000_000 + i, note });

function wire(id: number, payload: Uint8Array, indexes = false): Uint8Array {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return new Uint8Array(Buffer.concat([head, Buffer.from(indexes ? [0] : []), payload]));
}
const info = (schemaType: SchemaVersionInfo['schemaType'], schema: string) => {
  const v: SchemaVersionInfo = { subject: 's', version: 1, id: 7, schemaType, schema, references: [] };
  return { ...v, versions: [v] };
};
const messages = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ offset: i + 1, timestamp: 1_700_000_000_000 + i, headers: {}, value: new Uint8Array() }));

it('bench', async () => {
  const T = avro.Type.forSchema(AVRO as avro.Schema);
  const root = protobuf.parse(PROTO, { keepCase: true }).root;
  root.addJSON(protobuf.common.get('google/protobuf/timestamp.proto')!.nested!);
  const P = root.lookupType('E');
  const cases: [string, SchemaVersionInfo['schemaType'] | undefined, string, Uint8Array[]][] = [
    [
      'JSON, no schema (inferred)',
      undefined,
      '',
      Array.from({ length: N }, (_, i) => new TextEncoder().encode(JSON.stringify({ ...rec(i), at: new Date(rec(i).at).toISOString() }))),
    ],
    [
      'JSON Schema',
      'JSON',
      JSON.stringify(JSONS),
      Array.from({ length: N }, (_, i) => new TextEncoder().encode(JSON.stringify({ ...rec(i), at: new Date(rec(i).at).toISOString() }))),
    ],
    ['Avro (wire format)', 'AVRO', JSON.stringify(AVRO), Array.from({ length: N }, (_, i) => wire(7, T.toBuffer(rec(i))))],
    [
      'Protobuf (wire format)',
      'PROTOBUF',
      PROTO,
      Array.from({ length: N }, (_, i) =>
        wire(
          7,
          P.encode(P.fromObject({ ...rec(i), at: { seconds: Math.floor(rec(i).at / 1000), nanos: (rec(i).at % 1000) * 1e6 } })).finish(),
          true,
        ),
      ),
    ],
  ];
  const lines: string[] = [];
  for (const [name, type, text, values] of cases) {
    let best = { decode: 0, parquet: 0 };
    for (let round = 0; round < 5; round++) {
      const t0 = performance.now();
      let rows: Record<string, unknown>[];
      let columns;
      if (type) {
        const d = await schemaDecoder(info(type, text));
        rows = values.map((v) => {
          const r = d.decode(v);
          if (!r.ok) throw new Error(r.reason);
          return r.row;
        });
        columns = d.fields;
      } else rows = values.map((v) => JSON.parse(new TextDecoder().decode(v)) as Record<string, unknown>);
      const t1 = performance.now();
      await writeParquet({ messages: messages(N), values: rows, fields: ['offset'], codec: 'none', rowGroupSize: 10_000, columns });
      const t2 = performance.now();
      best = { decode: Math.max(best.decode, N / ((t1 - t0) / 1000)), parquet: Math.max(best.parquet, N / ((t2 - t1) / 1000)) };
    }
    lines.push(`| ${name} | ${Math.round(best.decode).toLocaleString('en')} | ${Math.round(best.parquet).toLocaleString('en')} |`);
  }
  console.log(['| values (~1 KiB) | decode rows/s | Parquet write rows/s |', '| --- | --- | --- |', ...lines].join('\n'));
}, 300_000);
