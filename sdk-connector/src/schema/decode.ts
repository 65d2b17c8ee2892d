/**
 * Values of a station with a schema, decoded to rows. A value is either the payload itself (JSON text,
 * Avro or Protobuf binary of the bound version) or in the Confluent wire format (byte 0, the 4-byte
 * schema id, for Protobuf the message indexes, then the payload) naming any version of the subject.
 */
import { JunctionError } from '../errors.js';
import type { SchemaVersionInfo, StationSchemaInfo } from '../types.js';
import { loadProtobuf, parseProtobuf, pickMessage, schemaFields } from './fields.js';
import type { FieldType, SchemaField } from './fields.js';

/** What decoding one value gives: a row (every field of the bound version, null where absent) or why not. */
export type DecodeResult =
  | { readonly ok: true; readonly row: Record<string, unknown>; readonly id: number | undefined }
  | { readonly ok: false; readonly reason: string };

/** Decodes the values of one station schema (see {@link schemaDecoder}). */
export interface SchemaDecoder {
  /** The bound version's columns. */
  readonly fields: readonly SchemaField[];
  readonly schema: StationSchemaInfo;
  /** One value to a row; never throws. */
  decode(value: Uint8Array): DecodeResult;
}

/** The schema id of a value in the Confluent wire format (byte 0 then a big-endian 4-byte id), or undefined. */
export function wireFormatId(value: Uint8Array): number | undefined {
  if (value.length < 5 || value[0] !== 0) return undefined;
  return ((value[1]! << 24) | (value[2]! << 16) | (value[3]! << 8) | value[4]!) >>> 0;
}

/** Confluent's Protobuf message indexes after the id (zigzag varints: a count, then the indexes; a lone 0 = [0]); undefined when malformed. */
export function messageIndexes(buf: Uint8Array, at: number): { indexes: number[]; next: number } | undefined {
  const varint = (pos: number): { v: number; next: number } | undefined => {
    let result = 0;
    let shift = 0;
    for (let i = pos; i < buf.length && shift < 35; i++) {
      const b = buf[i]!;
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return { v: (result >>> 1) ^ -(result & 1), next: i + 1 };
      shift += 7;
    }
    return undefined;
  };
  const count = varint(at);
  if (!count || count.v < 0 || count.v > 64) return undefined;
  if (count.v === 0) return { indexes: [0], next: count.next };
  const indexes: number[] = [];
  let pos = count.next;
  for (let i = 0; i < count.v; i++) {
    const x = varint(pos);
    if (!x || x.v < 0) return undefined;
    indexes.push(x.v);
    pos = x.next;
  }
  return { indexes, next: pos };
}

const DAY_MS = 86_400_000;

/** A decoded field value in the form the field model promises (see {@link schemaDecoder}). */
function normalize(v: unknown, t: FieldType): unknown {
  if (v === undefined || v === null) return null;
  switch (t.kind) {
    case 'timestamp': {
      if (v instanceof Date) return v;
      if (typeof v === 'number' || typeof v === 'bigint') return new Date(Number(v));
      if (typeof v === 'string') {
        const ms = Date.parse(v);
        return Number.isNaN(ms) ? null : new Date(ms);
      }
      if (typeof v === 'object') {
        // google.protobuf.Timestamp
        const { seconds, nanos } = v as { seconds?: unknown; nanos?: unknown };
        return new Date(Number(seconds ?? 0) * 1000 + Math.floor(Number(nanos ?? 0) / 1e6));
      }
      return null;
    }
    case 'date': {
      if (typeof v === 'number') return new Date(v * DAY_MS);
      if (typeof v === 'string') {
        const ms = Date.parse(`${v.slice(0, 10)}T00:00:00Z`);
        return Number.isNaN(ms) ? null : new Date(ms);
      }
      return v instanceof Date ? v : null;
    }
    case 'int':
    case 'long':
    case 'float':
    case 'double':
      return typeof v === 'number'
        ? v
        : typeof v === 'bigint' || typeof v === 'string'
          ? Number(v)
          : typeof v === 'object' && 'toNumber' in v
            ? (v as { toNumber(): number }).toNumber()
            : null;
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    case 'string':
    case 'enum':
      return typeof v === 'string' ? v : String(v);
    case 'bytes':
      return v instanceof Uint8Array
        ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength)
        : typeof v === 'string'
          ? new TextEncoder().encode(v)
          : null;
    case 'record': {
      if (typeof v !== 'object') return null;
      const out: Record<string, unknown> = {};
      for (const f of t.fields) out[f.name] = normalize((v as Record<string, unknown>)[f.name], f.type);
      return out;
    }
    case 'array':
      return Array.isArray(v) ? v.map((x) => normalize(x, t.items)) : null;
    case 'map': {
      if (typeof v !== 'object') return null;
      const entries = v instanceof Map ? [...(v as Map<string, unknown>)] : Object.entries(v as Record<string, unknown>);
      return Object.fromEntries(entries.map(([k, x]) => [k, normalize(x, t.values)]));
    }
    case 'json':
      return jsonSafe(v);
  }
}

/** A value as JSON can hold it (bytes as base64, longs as numbers). */
function jsonSafe(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return typeof v === 'bigint' ? Number(v) : v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (typeof (v as { toNumber?: unknown }).toNumber === 'function') return (v as { toNumber(): number }).toNumber();
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, jsonSafe(x)]));
}

type Avsc = typeof import('avsc');
let avscLoaded: Promise<Avsc> | undefined;

async function loadAvsc(): Promise<Avsc> {
  avscLoaded ??= import('avsc').then((m) => ((m as { default?: Avsc }).default ?? m) as Avsc);
  return avscLoaded.catch((cause: unknown) => {
    avscLoaded = undefined;
    throw new JunctionError('INTERNAL', 'decoding Avro values needs the package avsc (npm install avsc)', { cause });
  });
}

type PayloadDecoder = (payload: Uint8Array, wire: { id: number; whole: Uint8Array } | undefined) => unknown;

async function avroDecoders(info: StationSchemaInfo): Promise<(v: SchemaVersionInfo) => PayloadDecoder> {
  const avro = await loadAvsc();
  const typeOf = (v: SchemaVersionInfo): import('avsc').Type => {
    const registry: Record<string, import('avsc').Type> = {};
    for (const ref of v.references) avro.Type.forSchema(JSON.parse(ref.schema) as import('avsc').Schema, { registry });
    return avro.Type.forSchema(JSON.parse(v.schema) as import('avsc').Schema, { registry });
  };
  const reader = typeOf(info);
  return (v) => {
    const buf = (p: Uint8Array): Buffer => Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    if (v.id === info.id) return (p) => reader.fromBuffer(buf(p));
    // Data written with another version is read as the bound one (Avro schema resolution).
    const resolver = reader.createResolver(typeOf(v));
    return (p) => reader.fromBuffer(buf(p), resolver);
  };
}

async function protobufDecoders(): Promise<(v: SchemaVersionInfo) => Promise<PayloadDecoder>> {
  await loadProtobuf();
  return async (v) => {
    const parsed = await parseProtobuf(v);
    const options = {
      longs: Number,
      enums: String,
      bytes: Uint8Array as unknown as ArrayConstructor,
      defaults: true,
      arrays: true,
      objects: true,
    };
    return (payload, wire) => {
      const decodeAs = (t: import('protobufjs').Type | undefined, p: Uint8Array): unknown => {
        if (!t) throw new Error('no such message type');
        // A Buffer: protobufjs then reads strings with Node's native UTF-8 decoder (its own is ~10× slower on
        // long strings). Its Buffer reader is laxer on a string running past the end, but the broker has
        // validated every value of a station with a schema before storing it.
        return t.toObject(t.decode(Buffer.from(p.buffer, p.byteOffset, p.byteLength)), options);
      };
      if (!wire) return decodeAs(pickMessage(parsed), payload);
      const mi = messageIndexes(wire.whole, 5);
      if (mi) {
        try {
          return decodeAs(pickMessage(parsed, mi.indexes), wire.whole.subarray(mi.next));
        } catch {
          // Some clients write no message indexes: the first type's payload right after the id.
        }
      }
      return decodeAs(pickMessage(parsed), wire.whole.subarray(5));
    };
  };
}

/**
 * A decoder for a station's values. Loads avsc (Avro) or protobufjs (Protobuf) on first use: both are
 * optional peer dependencies of the SDK, so a sink that decodes such values depends on them itself.
 *
 * `decode(value)` gives the row of the bound version's fields (fields the value lacks are null; fields
 * the bound version lacks are left out), typed as the field model says: strings; numbers for int, long
 * (exact up to 2^53), float and double; booleans; `Uint8Array` for bytes; `Date` for timestamp (UTC,
 * milliseconds) and date (UTC midnight); enum symbols as strings; records as objects; arrays; maps as
 * plain objects; `json` fields as JSON-safe values (bytes in base64). Avro values written with another
 * version of the subject are resolved to the bound one (Avro's schema resolution); Protobuf values are
 * decoded with the version their id names and read by field name.
 */
export async function schemaDecoder(info: StationSchemaInfo): Promise<SchemaDecoder> {
  const fields = await schemaFields(info);
  const top: FieldType = { kind: 'record', fields };
  const byId = new Map<number, SchemaVersionInfo>();
  for (const v of info.versions) byId.set(v.id, v);
  byId.set(info.id, info);
  const decoders = new Map<number, PayloadDecoder>();
  // A version that cannot be read as the bound one (a subject without compatibility checks) fails only
  // its own values, when one comes: the decoder is made on first use.
  const failing =
    (err: unknown): PayloadDecoder =>
    () => {
      throw err;
    };
  const lazy = (make: () => PayloadDecoder): PayloadDecoder => {
    let made: PayloadDecoder | undefined;
    return (p, w) => {
      if (!made) {
        try {
          made = make();
        } catch (err) {
          made = failing(err);
        }
      }
      return made(p, w);
    };
  };
  if (info.schemaType === 'AVRO') {
    const make = await avroDecoders(info);
    for (const [id, v] of byId)
      decoders.set(
        id,
        lazy(() => make(v)),
      );
  } else if (info.schemaType === 'PROTOBUF') {
    const make = await protobufDecoders();
    for (const [id, v] of byId) decoders.set(id, await make(v).catch((err: unknown) => failing(err)));
  } else {
    const json: PayloadDecoder = (p) => JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p)) as unknown;
    for (const id of byId.keys()) decoders.set(id, json);
  }
  const bound = decoders.get(info.id)!;
  return {
    fields,
    schema: info,
    decode(value: Uint8Array): DecodeResult {
      const id = wireFormatId(value);
      const wired = id !== undefined ? decoders.get(id) : undefined;
      if (id !== undefined && !wired && info.schemaType === 'JSON')
        return { ok: false, reason: `schema id ${id} is not a version of subject "${info.subject}"` };
      try {
        const raw = wired ? wired(value.subarray(5), { id: id!, whole: value }) : bound(value, undefined);
        if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
          return { ok: false, reason: 'the value is not a record / object' };
        return { ok: true, row: normalize(raw, top) as Record<string, unknown>, id: wired ? id : info.id };
      } catch (err) {
        return { ok: false, reason: `cannot decode the value with subject "${info.subject}": ${(err as Error).message}` };
      }
    },
  };
}
