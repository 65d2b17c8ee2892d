import { describe, expect, it } from 'vitest';
import avro from 'avsc';
import protobuf from 'protobufjs';
import { compareColumns, schemaDecoder, schemaFields, wireFormatId } from '../src/schema/index.js';
import type { SchemaVersionInfo, StationSchemaInfo } from '../src/index.js';

function station(versions: SchemaVersionInfo[], bound = versions.length - 1): StationSchemaInfo {
  return { ...versions[bound]!, versions };
}

function wire(id: number, payload: Uint8Array, indexes?: number[]): Uint8Array {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  const mi =
    indexes === undefined ? [] : indexes.length === 1 && indexes[0] === 0 ? [0] : [indexes.length * 2, ...indexes.map((i) => i * 2)];
  return new Uint8Array(Buffer.concat([head, Buffer.from(mi), Buffer.from(payload)]));
}

const AVRO_V1 = {
  type: 'record',
  name: 'Order',
  namespace: 'shop',
  fields: [
    { name: 'sku', type: 'string' },
    { name: 'qty', type: 'int' },
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'day', type: { type: 'int', logicalType: 'date' } },
    { name: 'note', type: ['null', 'string'], default: null },
    { name: 'tags', type: { type: 'array', items: 'string' } },
    { name: 'addr', type: { type: 'record', name: 'Addr', fields: [{ name: 'city', type: 'string' }] } },
    { name: 'state', type: { type: 'enum', name: 'State', symbols: ['NEW', 'PAID'] } },
  ],
};
const AVRO_V2 = { ...AVRO_V1, fields: [...AVRO_V1.fields, { name: 'price', type: ['null', 'double'], default: null }] };

describe('schemaFields', () => {
  it('maps Avro to the field model (logical types, unions with null, nested records, enums)', async () => {
    const fields = await schemaFields({
      subject: 's',
      version: 1,
      id: 1,
      schemaType: 'AVRO',
      schema: JSON.stringify(AVRO_V1),
      references: [],
    });
    expect(fields.map((f) => [f.name, f.type.kind, f.nullable])).toEqual([
      ['sku', 'string', false],
      ['qty', 'int', false],
      ['at', 'timestamp', false],
      ['day', 'date', false],
      ['note', 'string', true],
      ['tags', 'array', false],
      ['addr', 'record', false],
      ['state', 'enum', false],
    ]);
    expect(fields[6]!.type).toEqual({ kind: 'record', fields: [{ name: 'city', type: { kind: 'string' }, nullable: false }] });
  });

  it('maps JSON Schema (required, formats, $ref, type arrays with null)', async () => {
    const schema = {
      type: 'object',
      required: ['id'],
      properties: {
        id: { type: 'integer' },
        name: { type: ['string', 'null'] },
        at: { type: 'string', format: 'date-time' },
        price: { type: 'number' },
        ok: { type: 'boolean' },
        addr: { $ref: '#/definitions/Addr' },
        any: { oneOf: [{ type: 'string' }, { type: 'integer' }] },
      },
      definitions: { Addr: { type: 'object', properties: { city: { type: 'string' } } } },
    };
    const fields = await schemaFields({
      subject: 's',
      version: 1,
      id: 1,
      schemaType: 'JSON',
      schema: JSON.stringify(schema),
      references: [],
    });
    expect(fields.map((f) => [f.name, f.type.kind, f.nullable])).toEqual([
      ['id', 'long', false],
      ['name', 'string', true],
      ['at', 'timestamp', true],
      ['price', 'double', true],
      ['ok', 'boolean', true],
      ['addr', 'record', true],
      ['any', 'json', true],
    ]);
  });

  it('maps Protobuf (scalars, Timestamp, repeated, maps, nested messages) and refuses a non-record top', async () => {
    const proto = `syntax = "proto3"; package shop; import "google/protobuf/timestamp.proto";
      message Order { string sku = 1; int32 qty = 2; int64 big = 3; google.protobuf.Timestamp at = 4; repeated string tags = 5; map<string, int32> counts = 6; Addr addr = 7; }
      message Addr { string city = 1; }`;
    const fields = await schemaFields({ subject: 's', version: 1, id: 1, schemaType: 'PROTOBUF', schema: proto, references: [] });
    expect(fields.map((f) => [f.name, f.type.kind])).toEqual([
      ['sku', 'string'],
      ['qty', 'int'],
      ['big', 'long'],
      ['at', 'timestamp'],
      ['tags', 'array'],
      ['counts', 'map'],
      ['addr', 'record'],
    ]);
    await expect(
      schemaFields({ subject: 's', version: 1, id: 1, schemaType: 'AVRO', schema: '"string"', references: [] }),
    ).rejects.toMatchObject({ code: 'SCHEMA_UNSUPPORTED' });
  });
});

describe('schemaDecoder', () => {
  it('decodes Avro, bare and in the wire format, and resolves an older version to the bound one', async () => {
    const v1 = {
      subject: 'orders-value',
      version: 1,
      id: 11,
      schemaType: 'AVRO' as const,
      schema: JSON.stringify(AVRO_V1),
      references: [],
    };
    const v2 = {
      subject: 'orders-value',
      version: 2,
      id: 17,
      schemaType: 'AVRO' as const,
      schema: JSON.stringify(AVRO_V2),
      references: [],
    };
    const d = await schemaDecoder(station([v1, v2]));
    const rec = { sku: 'a', qty: 2, at: 1_700_000_000_123, day: 19_000, note: null, tags: ['x'], addr: { city: 'Oslo' }, state: 'PAID' };
    const old = avro.Type.forSchema(AVRO_V1 as avro.Schema).toBuffer(rec);
    const cur = avro.Type.forSchema(AVRO_V2 as avro.Schema).toBuffer({ ...rec, price: 9.5 });
    const want = {
      sku: 'a',
      qty: 2,
      at: new Date(1_700_000_000_123),
      day: new Date(19_000 * 86_400_000),
      note: null,
      tags: ['x'],
      addr: { city: 'Oslo' },
      state: 'PAID',
    };
    expect(d.decode(wire(11, old))).toEqual({ ok: true, id: 11, row: { ...want, price: null } });
    expect(d.decode(wire(17, cur))).toEqual({ ok: true, id: 17, row: { ...want, price: 9.5 } });
    expect(d.decode(new Uint8Array(cur))).toEqual({ ok: true, id: 17, row: { ...want, price: 9.5 } });
    expect(d.decode(new Uint8Array([1, 2]))).toMatchObject({ ok: false });
    expect(wireFormatId(wire(17, cur))).toBe(17);
  });

  it('decodes JSON (plain and wire format) into the bound fields, timestamps as Dates', async () => {
    const schema = JSON.stringify({
      type: 'object',
      properties: { id: { type: 'integer' }, at: { type: 'string', format: 'date-time' }, d: { type: 'string', format: 'date' } },
    });
    const d = await schemaDecoder(station([{ subject: 's', version: 1, id: 3, schemaType: 'JSON', schema, references: [] }]));
    const v = new TextEncoder().encode('{"id":5,"at":"2024-03-01T10:00:00.250+02:00","d":"2024-03-01","extra":1}');
    const row = { id: 5, at: new Date(Date.UTC(2024, 2, 1, 8, 0, 0, 250)), d: new Date(Date.UTC(2024, 2, 1)) };
    expect(d.decode(v)).toEqual({ ok: true, id: 3, row });
    expect(d.decode(wire(3, v))).toEqual({ ok: true, id: 3, row });
    expect(d.decode(wire(4, v))).toMatchObject({ ok: false });
    expect(d.decode(new TextEncoder().encode('[1]'))).toMatchObject({ ok: false });
  });

  it('decodes Protobuf with and without message indexes, Timestamp as a Date, int64 as a number', async () => {
    const proto = `syntax = "proto3"; package shop; import "google/protobuf/timestamp.proto";
      message Order { string sku = 1; int64 big = 2; google.protobuf.Timestamp at = 3; repeated int32 n = 4; }`;
    const d = await schemaDecoder(station([{ subject: 's', version: 1, id: 9, schemaType: 'PROTOBUF', schema: proto, references: [] }]));
    const root = protobuf.parse(proto, { keepCase: true }).root;
    root.addJSON(protobuf.common.get('google/protobuf/timestamp.proto')!.nested!);
    const T = root.lookupType('shop.Order');
    const payload = T.encode(
      T.fromObject({ sku: 'p', big: 1234567890123, at: { seconds: 1_700_000_000, nanos: 5_000_000 }, n: [1, 2] }),
    ).finish();
    const row = { sku: 'p', big: 1234567890123, at: new Date(1_700_000_000_005), n: [1, 2] };
    expect(d.decode(wire(9, payload, [0]))).toEqual({ ok: true, id: 9, row });
    expect(d.decode(wire(9, payload))).toEqual({ ok: true, id: 9, row });
    expect(d.decode(payload)).toEqual({ ok: true, id: 9, row });
  });
});

describe('compareColumns', () => {
  it('tells added, changed, missing and required columns apart', () => {
    const drift = compareColumns(
      [
        { name: 'ID', type: 'NUMBER(38,0)' },
        { name: 'NAME', type: 'TEXT' },
        { name: 'OLD', type: 'TEXT' },
      ],
      [
        { name: 'id', type: 'number(38,0)' },
        { name: 'name', type: 'BOOLEAN' },
        { name: 'new', type: 'TEXT', nullable: true },
        { name: 'must', type: 'TEXT', nullable: false },
      ],
      { foldCase: true },
    );
    expect(drift).toEqual({
      added: [
        { name: 'new', type: 'TEXT', nullable: true },
        { name: 'must', type: 'TEXT', nullable: false },
      ],
      changed: [{ name: 'name', from: 'TEXT', to: 'BOOLEAN' }],
      missing: ['OLD'],
      required: ['must'],
    });
  });
});
