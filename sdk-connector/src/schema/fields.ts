/**
 * A station schema as columns: one neutral field model for Avro, JSON Schema and Protobuf, which each
 * sink maps to its own types (Parquet, BigQuery, Snowflake, Firebolt). JSON Schema and Avro are read from
 * their JSON text; Protobuf through protobufjs (loaded only when a Protobuf schema is met).
 */
import { JunctionError } from '../errors.js';
import type { SchemaReferenceInfo, SchemaVersionInfo } from '../types.js';

/**
 * A field's type. Scalars map one to one; `timestamp` is an instant (UTC, millisecond precision: Avro
 * `timestamp-millis` / `timestamp-micros`, JSON Schema `format: date-time`, `google.protobuf.Timestamp`),
 * `date` a calendar day (Avro `date`, JSON Schema `format: date`); `json` is anything the model does not
 * type (unions of several types, `oneOf`, `additionalProperties` without `properties`, references to
 * other subjects in JSON Schema): its values are kept as JSON.
 */
export type FieldType =
  | { readonly kind: 'string' }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'int' }
  | { readonly kind: 'long' }
  | { readonly kind: 'float' }
  | { readonly kind: 'double' }
  | { readonly kind: 'bytes' }
  | { readonly kind: 'timestamp' }
  | { readonly kind: 'date' }
  | { readonly kind: 'enum'; readonly symbols: readonly string[] }
  | { readonly kind: 'record'; readonly fields: readonly SchemaField[] }
  | { readonly kind: 'array'; readonly items: FieldType }
  | { readonly kind: 'map'; readonly values: FieldType }
  | { readonly kind: 'json' };

export type FieldKind = FieldType['kind'];

/** One field (column). `nullable`: the value may be absent or null (optional in JSON Schema, a union with null in Avro, every Protobuf field). */
export interface SchemaField {
  readonly name: string;
  readonly type: FieldType;
  readonly nullable: boolean;
}

/** The schema's top type is not a record / object / message: there are no columns to make. */
export const SCHEMA_UNSUPPORTED = 'SCHEMA_UNSUPPORTED';

function unsupported(v: SchemaVersionInfo, why: string): JunctionError {
  return new JunctionError(SCHEMA_UNSUPPORTED, `schema subject "${v.subject}" version ${v.version}: ${why}`);
}

// ── JSON Schema ──────────────────────────────────────────────────────────────────────────────────────

type Json = Record<string, unknown>;

function jsonPointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let cur: unknown = root;
  for (const raw of ref
    .slice(1)
    .split('/')
    .filter((s) => s !== '')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Json)[key];
  }
  return cur;
}

function jsonType(root: unknown, s: unknown, depth: number): { type: FieldType; nullable: boolean } {
  if (depth > 32 || typeof s !== 'object' || s === null) return { type: { kind: 'json' }, nullable: true };
  let node = s as Json;
  if (typeof node.$ref === 'string') {
    const target = jsonPointer(root, node.$ref);
    return target === undefined ? { type: { kind: 'json' }, nullable: true } : jsonType(root, target, depth + 1);
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    const alts = node[key];
    if (Array.isArray(alts)) {
      const nonNull = alts.filter((a) => !(typeof a === 'object' && a !== null && (a as Json).type === 'null'));
      if (nonNull.length === 1 && alts.length === 2) return { ...jsonType(root, nonNull[0], depth + 1), nullable: true };
      return { type: { kind: 'json' }, nullable: true };
    }
  }
  let types = node.type;
  let nullable = false;
  if (Array.isArray(types)) {
    nullable = types.includes('null');
    types = types.filter((t) => t !== 'null');
    if ((types as unknown[]).length !== 1) return { type: { kind: 'json' }, nullable: true };
    types = (types as unknown[])[0];
  }
  if (types === undefined && Array.isArray(node.enum) && node.enum.every((x) => typeof x === 'string'))
    return { type: { kind: 'enum', symbols: node.enum as string[] }, nullable };
  if (types === undefined && typeof node.properties === 'object') types = 'object';
  switch (types) {
    case 'string':
      if (node.format === 'date-time') return { type: { kind: 'timestamp' }, nullable };
      if (node.format === 'date') return { type: { kind: 'date' }, nullable };
      if (Array.isArray(node.enum) && node.enum.every((x) => typeof x === 'string'))
        return { type: { kind: 'enum', symbols: node.enum as string[] }, nullable };
      return { type: { kind: 'string' }, nullable };
    case 'integer':
      return { type: { kind: 'long' }, nullable };
    case 'number':
      return { type: { kind: 'double' }, nullable };
    case 'boolean':
      return { type: { kind: 'boolean' }, nullable };
    case 'array': {
      const items = node.items;
      if (typeof items !== 'object' || items === null || Array.isArray(items)) return { type: { kind: 'json' }, nullable };
      return { type: { kind: 'array', items: jsonType(root, items, depth + 1).type }, nullable };
    }
    case 'object': {
      const props = node.properties;
      if (typeof props !== 'object' || props === null) {
        const ap = node.additionalProperties;
        if (typeof ap === 'object' && ap !== null) return { type: { kind: 'map', values: jsonType(root, ap, depth + 1).type }, nullable };
        return { type: { kind: 'json' }, nullable };
      }
      node = node as Json;
      const required = new Set(Array.isArray(node.required) ? (node.required as string[]) : []);
      const fields: SchemaField[] = Object.entries(props as Json).map(([name, sub]) => {
        const t = jsonType(root, sub, depth + 1);
        return { name, type: t.type, nullable: t.nullable || !required.has(name) };
      });
      return { type: { kind: 'record', fields }, nullable };
    }
    default:
      return { type: { kind: 'json' }, nullable: true };
  }
}

// ── Avro ─────────────────────────────────────────────────────────────────────────────────────────────

interface AvroNames {
  byName: Map<string, unknown>;
}

function avroCollect(names: AvroNames, s: unknown, ns: string | undefined): void {
  if (Array.isArray(s)) {
    for (const x of s) avroCollect(names, x, ns);
    return;
  }
  if (typeof s !== 'object' || s === null) return;
  const node = s as Json;
  const type = node.type;
  if ((type === 'record' || type === 'error' || type === 'enum' || type === 'fixed') && typeof node.name === 'string') {
    const space =
      typeof node.namespace === 'string' ? node.namespace : node.name.includes('.') ? node.name.slice(0, node.name.lastIndexOf('.')) : ns;
    const short = node.name.includes('.') ? node.name.slice(node.name.lastIndexOf('.') + 1) : node.name;
    names.byName.set(short, node);
    if (space) names.byName.set(`${space}.${short}`, node);
    if (type === 'record' || type === 'error') for (const f of (node.fields as Json[] | undefined) ?? []) avroCollect(names, f.type, space);
    return;
  }
  if (type === 'array') avroCollect(names, node.items, ns);
  else if (type === 'map') avroCollect(names, node.values, ns);
  else if (typeof type === 'object') avroCollect(names, type, ns);
}

function avroType(names: AvroNames, s: unknown, depth: number): { type: FieldType; nullable: boolean } {
  if (depth > 32) return { type: { kind: 'json' }, nullable: true };
  if (Array.isArray(s)) {
    const nonNull = s.filter((x) => x !== 'null' && !(typeof x === 'object' && x !== null && (x as Json).type === 'null'));
    const nullable = nonNull.length < s.length;
    if (nonNull.length === 1) return { type: avroType(names, nonNull[0], depth + 1).type, nullable };
    return { type: { kind: 'json' }, nullable: true };
  }
  if (typeof s === 'string') {
    switch (s) {
      case 'string':
        return { type: { kind: 'string' }, nullable: false };
      case 'boolean':
        return { type: { kind: 'boolean' }, nullable: false };
      case 'int':
        return { type: { kind: 'int' }, nullable: false };
      case 'long':
        return { type: { kind: 'long' }, nullable: false };
      case 'float':
        return { type: { kind: 'float' }, nullable: false };
      case 'double':
        return { type: { kind: 'double' }, nullable: false };
      case 'bytes':
        return { type: { kind: 'bytes' }, nullable: false };
      case 'null':
        return { type: { kind: 'json' }, nullable: true };
      default: {
        const named = names.byName.get(s);
        return named === undefined ? { type: { kind: 'json' }, nullable: true } : avroType(names, named, depth + 1);
      }
    }
  }
  if (typeof s !== 'object' || s === null) return { type: { kind: 'json' }, nullable: true };
  const node = s as Json;
  const logical = node.logicalType;
  if ((node.type === 'long' || node.type === 'int') && (logical === 'timestamp-millis' || logical === 'timestamp-micros'))
    return { type: { kind: 'timestamp' }, nullable: false };
  if (node.type === 'int' && logical === 'date') return { type: { kind: 'date' }, nullable: false };
  switch (node.type) {
    case 'record':
    case 'error': {
      const fields = ((node.fields as Json[] | undefined) ?? []).map((f) => {
        const t = avroType(names, f.type, depth + 1);
        return { name: String(f.name), type: t.type, nullable: t.nullable };
      });
      return { type: { kind: 'record', fields }, nullable: false };
    }
    case 'enum':
      return { type: { kind: 'enum', symbols: (node.symbols as string[] | undefined) ?? [] }, nullable: false };
    case 'fixed':
      return { type: { kind: 'bytes' }, nullable: false };
    case 'array':
      return { type: { kind: 'array', items: avroType(names, node.items, depth + 1).type }, nullable: false };
    case 'map':
      return { type: { kind: 'map', values: avroType(names, node.values, depth + 1).type }, nullable: false };
    default:
      return avroType(names, node.type, depth + 1);
  }
}

// ── Protobuf ─────────────────────────────────────────────────────────────────────────────────────────

type Protobuf = typeof import('protobufjs');
let protobufLoaded: Promise<Protobuf> | undefined;

/** protobufjs, loaded the first time a Protobuf schema is met (an optional peer dependency of the SDK). */
export async function loadProtobuf(): Promise<Protobuf> {
  protobufLoaded ??= import('protobufjs').then((m) => ((m as { default?: Protobuf }).default ?? m) as Protobuf);
  return protobufLoaded.catch((cause: unknown) => {
    protobufLoaded = undefined;
    throw new JunctionError('INTERNAL', 'decoding Protobuf values needs the package protobufjs (npm install protobufjs)', { cause });
  });
}

type PbType = import('protobufjs').Type;

/** The message types of a Protobuf schema, parsed as the registry parses it; `top` in declaration order. */
export async function parseProtobuf(v: SchemaVersionInfo): Promise<{ top: PbType[]; messagesOf(t: PbType): PbType[] }> {
  const protobuf = await loadProtobuf();
  const messagesOf = (ns: import('protobufjs').NamespaceBase): PbType[] =>
    ns.nestedArray.filter((n): n is PbType => n instanceof protobuf.Type);
  const alone = protobuf.parse(v.schema, new protobuf.Root(), { keepCase: true });
  const ns = alone.package ? alone.root.lookup(alone.package) : alone.root;
  const topNames = ns instanceof protobuf.Namespace ? messagesOf(ns).map((t) => t.fullName) : [];
  const root = new protobuf.Root();
  const imports = new Set<string>();
  for (const ref of v.references) {
    const parsed = protobuf.parse(ref.schema, root, { keepCase: true });
    for (const i of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) imports.add(i);
  }
  const main = protobuf.parse(v.schema, root, { keepCase: true });
  for (const i of [...(main.imports ?? []), ...(main.weakImports ?? [])]) imports.add(i);
  const given = new Set(v.references.map((r: SchemaReferenceInfo) => r.name));
  for (const i of imports) {
    if (given.has(i)) continue;
    const common = protobuf.common.get(i);
    if (common) root.addJSON(common.nested ?? {});
  }
  root.resolveAll();
  const top = topNames.map((n) => root.lookupType(n));
  return { top, messagesOf };
}

const PB_SCALAR: Record<string, FieldType['kind']> = {
  string: 'string',
  bool: 'boolean',
  bytes: 'bytes',
  int32: 'int',
  sint32: 'int',
  sfixed32: 'int',
  uint32: 'long',
  fixed32: 'long',
  int64: 'long',
  sint64: 'long',
  sfixed64: 'long',
  uint64: 'long',
  fixed64: 'long',
  float: 'float',
  double: 'double',
};

function pbFieldType(protobuf: Protobuf, f: import('protobufjs').Field, depth: number): FieldType {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Enum) return { kind: 'enum', symbols: Object.keys(rt.values) };
  if (rt instanceof protobuf.Type) return pbMessageType(protobuf, rt, depth + 1);
  const k = PB_SCALAR[f.type];
  return k ? ({ kind: k } as FieldType) : { kind: 'json' };
}

function pbMessageType(protobuf: Protobuf, t: PbType, depth: number): FieldType {
  if (t.fullName === '.google.protobuf.Timestamp') return { kind: 'timestamp' };
  if (depth > 32) return { kind: 'json' };
  const fields: SchemaField[] = t.fieldsArray.map((f) => {
    let type: FieldType;
    if (f instanceof protobuf.MapField) type = { kind: 'map', values: pbFieldType(protobuf, f, depth) };
    else if (f.repeated) type = { kind: 'array', items: pbFieldType(protobuf, f, depth) };
    else type = pbFieldType(protobuf, f, depth);
    return { name: f.name, type, nullable: true };
  });
  return { kind: 'record', fields };
}

/** The Protobuf message type Confluent's message indexes name (default: the first of the file). */
export function pickMessage(parsed: { top: PbType[]; messagesOf(t: PbType): PbType[] }, indexes?: readonly number[]): PbType | undefined {
  const path = indexes && indexes.length > 0 ? indexes : [0];
  let list = parsed.top;
  let t: PbType | undefined;
  for (const i of path) {
    t = list[i];
    if (!t) return undefined;
    list = parsed.messagesOf(t);
  }
  return t;
}

// ── the entry point ──────────────────────────────────────────────────────────────────────────────────

/**
 * The columns of a schema version: the fields of its top record (Avro), object (JSON Schema) or first
 * message type (Protobuf), in declaration order. Throws SCHEMA_UNSUPPORTED when the top type is not one.
 */
export async function schemaFields(v: SchemaVersionInfo): Promise<SchemaField[]> {
  let top: FieldType;
  if (v.schemaType === 'JSON') {
    const root = JSON.parse(v.schema) as unknown;
    top = jsonType(root, root, 0).type;
  } else if (v.schemaType === 'AVRO') {
    const names: AvroNames = { byName: new Map() };
    for (const ref of v.references) avroCollect(names, JSON.parse(ref.schema), undefined);
    const root = JSON.parse(v.schema) as unknown;
    avroCollect(names, root, undefined);
    top = avroType(names, root, 0).type;
  } else {
    const protobuf = await loadProtobuf();
    const parsed = await parseProtobuf(v);
    const first = pickMessage(parsed);
    if (!first) throw unsupported(v, 'the Protobuf schema defines no message type');
    top = pbMessageType(protobuf, first, 0);
  }
  if (top.kind !== 'record') throw unsupported(v, `its top type is ${top.kind}, not a record / object / message: values cannot be rows`);
  return [...top.fields];
}
