/**
 * JSON Schema (draft-07 and 2020-12, by `$schema`; draft-07 when absent) compiled with ajv, once per
 * schema version. Values are JSON text in UTF-8.
 */
import { Ajv } from 'ajv';
import type { AnySchema, ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { SchemaErrorCode, SchemaRegistryError } from '../errors.js';
import { SchemaType } from './types.js';
import type { ParsedSchema, ResolvedReference, SchemaFormat, Violation } from './types.js';

type FormatsPlugin = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: FormatsPlugin }).default ?? addFormatsModule) as unknown as FormatsPlugin;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = boolean | { [k: string]: Json };

/** Key-sorted JSON: the same schema, whatever its key order and whitespace, gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

let metas: { v7: Ajv; v2020: Ajv } | undefined;
function metaValidators(): { v7: Ajv; v2020: Ajv } {
  metas ??= { v7: new Ajv({ strict: false }), v2020: new Ajv2020({ strict: false }) as unknown as Ajv };
  return metas;
}

function is2020(schema: unknown): boolean {
  const s = typeof schema === 'object' && schema !== null ? (schema as { $schema?: unknown }).$schema : undefined;
  return typeof s === 'string' && (s.includes('2020-12') || s.includes('2019-09'));
}

function invalid(message: string): SchemaRegistryError {
  return new SchemaRegistryError(SchemaErrorCode.INVALID_SCHEMA, `Invalid schema: ${message}`);
}

class JsonSchema implements ParsedSchema {
  readonly type = SchemaType.JSON;
  constructor(
    readonly canonical: string,
    readonly schema: Schema,
    private readonly validate: ValidateFunction,
  ) {}

  check(value: Uint8Array): { ok: true; value: unknown } | { ok: false; violation: Violation } {
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8'));
    } catch (err) {
      return { ok: false, violation: { path: '', reason: `not JSON: ${(err as Error).message}` } };
    }
    if (this.validate(parsed)) return { ok: true, value: parsed };
    const e = this.validate.errors?.[0];
    return { ok: false, violation: { path: e?.instancePath ?? '', reason: e?.message ?? 'does not match the schema' } };
  }

  canRead(writer: ParsedSchema): string[] {
    if (!(writer instanceof JsonSchema)) return [`a ${writer.type} schema cannot be read as JSON Schema`];
    const out: string[] = [];
    canRead(this.schema, writer.schema, '#', out);
    return out;
  }
}

export const jsonFormat: SchemaFormat = {
  type: SchemaType.JSON,
  parse(text: string, references: readonly ResolvedReference[]): ParsedSchema {
    let schema: unknown;
    try {
      schema = JSON.parse(text);
    } catch (err) {
      throw invalid(`not JSON: ${(err as Error).message}`);
    }
    if (typeof schema !== 'boolean' && (typeof schema !== 'object' || schema === null || Array.isArray(schema)))
      throw invalid('a JSON Schema is an object or a boolean');
    // The schema is checked against its dialect's meta-schema by a shared instance, then compiled in an
    // instance of its own without meta-schemas (cheap: about 0.7 ms, where a full instance costs ~10 ms),
    // which goes away with the schema: a registry sent many schemas keeps only the ones it stores.
    const meta = is2020(schema) ? metaValidators().v2020 : metaValidators().v7;
    if (!meta.validateSchema(schema as AnySchema)) throw invalid(meta.errorsText(meta.errors));
    // strict: false takes schemas as other validators and Confluent take them (unknown keywords are annotations).
    const lean = {
      strict: false,
      meta: false,
      validateSchema: false,
      addUsedSchema: false,
      allErrors: false,
      validateFormats: true,
    } as const;
    const ajv: Ajv = is2020(schema) ? (new Ajv2020(lean) as unknown as Ajv) : new Ajv(lean);
    addFormats(ajv);
    try {
      for (const ref of references) {
        if (ref.schemaType !== SchemaType.JSON) throw invalid(`reference "${ref.name}" is ${ref.schemaType}, not JSON`);
        ajv.addSchema(JSON.parse(ref.schema) as AnySchema, ref.name);
      }
      const validate = ajv.compile(schema as AnySchema);
      return new JsonSchema(canonicalJson(schema), schema as Schema, validate);
    } catch (err) {
      if (err instanceof SchemaRegistryError) throw err;
      throw invalid((err as Error).message);
    }
  },
};

// ---- compatibility: can every value valid under `writer` be read (is valid) under `reader`? ----------

const LOWER_BOUNDS = ['minimum', 'exclusiveMinimum', 'minLength', 'minItems', 'minProperties'] as const;
const UPPER_BOUNDS = ['maximum', 'exclusiveMaximum', 'maxLength', 'maxItems', 'maxProperties'] as const;
const EXACT = ['pattern', 'format', 'multipleOf', 'uniqueItems'] as const;
/** Keywords the structural rules above cover; any other keyword that differs between the two is reported. */
const COVERED = new Set<string>([
  'type',
  'enum',
  'const',
  'properties',
  'required',
  'additionalProperties',
  'items',
  ...LOWER_BOUNDS,
  ...UPPER_BOUNDS,
  ...EXACT,
  // Annotations: no effect on which values are valid.
  '$schema',
  '$id',
  'id',
  'title',
  'description',
  'default',
  'examples',
  '$comment',
  'readOnly',
  'writeOnly',
  'deprecated',
]);

function typesOf(s: { [k: string]: Json }): Set<string> | undefined {
  const t = s.type;
  if (t === undefined) return undefined;
  return new Set((Array.isArray(t) ? t : [t]).filter((x): x is string => typeof x === 'string'));
}

function enumOf(s: { [k: string]: Json }): string[] | undefined {
  if (s.const !== undefined) return [canonicalJson(s.const)];
  return Array.isArray(s.enum) ? s.enum.map(canonicalJson) : undefined;
}

function asSchema(v: Json | undefined): Schema {
  return v === undefined ? true : typeof v === 'boolean' ? v : typeof v === 'object' && v !== null && !Array.isArray(v) ? v : true;
}

function canRead(reader: Schema, writer: Schema, path: string, out: string[]): void {
  if (reader === true || writer === false) return;
  if (reader === false) {
    out.push(`${path}: the reader accepts nothing where the writer accepts values`);
    return;
  }
  const w: { [k: string]: Json } = writer === true ? {} : writer;
  const r = reader;

  const rt = typesOf(r);
  const wt = typesOf(w);
  if (rt) {
    if (!wt) out.push(`${path}: type narrowed to ${[...rt].join('|')}`);
    else for (const t of wt) if (!rt.has(t) && !(t === 'integer' && rt.has('number'))) out.push(`${path}: type ${t} no longer allowed`);
  }

  const re = enumOf(r);
  if (re) {
    const we = enumOf(w);
    if (!we) out.push(`${path}: values narrowed to an enum`);
    else for (const v of we) if (!re.includes(v)) out.push(`${path}: enum value ${v} removed`);
  }

  // Objects.
  const rProps = (typeof r.properties === 'object' && r.properties !== null && !Array.isArray(r.properties) ? r.properties : {}) as {
    [k: string]: Json;
  };
  const wProps = (typeof w.properties === 'object' && w.properties !== null && !Array.isArray(w.properties) ? w.properties : {}) as {
    [k: string]: Json;
  };
  const rReq = new Set(Array.isArray(r.required) ? r.required.filter((x): x is string => typeof x === 'string') : []);
  const wReq = new Set(Array.isArray(w.required) ? w.required.filter((x): x is string => typeof x === 'string') : []);
  for (const name of rReq) if (!wReq.has(name)) out.push(`${path}/properties/${name}: required now, optional before`);
  const rAdditional = asSchema(r.additionalProperties);
  const wAdditional = asSchema(w.additionalProperties);
  for (const [name, ws] of Object.entries(wProps)) {
    const rs = name in rProps ? asSchema(rProps[name]) : rAdditional;
    if (rs === false) out.push(`${path}/properties/${name}: removed from a closed content model`);
    else canRead(rs, asSchema(ws), `${path}/properties/${name}`, out);
  }
  for (const [name, rs] of Object.entries(rProps)) {
    if (name in wProps) continue;
    // The writer's values may hold this property with anything its additionalProperties allows.
    if (wAdditional === false) continue;
    const before = out.length;
    canRead(asSchema(rs), wAdditional, `${path}/properties/${name}`, out);
    if (out.length > before)
      out.splice(
        before,
        out.length - before,
        `${path}/properties/${name}: added to an open content model (the writer's values may already hold it with any value)`,
      );
  }
  if (r.additionalProperties !== undefined && canonicalJson(r.additionalProperties) !== canonicalJson(w.additionalProperties ?? true)) {
    canRead(rAdditional, wAdditional, `${path}/additionalProperties`, out);
  }

  // Arrays.
  if (r.items !== undefined && !Array.isArray(r.items)) {
    canRead(asSchema(r.items), Array.isArray(w.items) ? true : asSchema(w.items), `${path}/items`, out);
  } else if (canonicalJson(r.items ?? null) !== canonicalJson(w.items ?? null)) {
    out.push(`${path}/items: changed (tuple items are compared as a whole)`);
  }

  for (const k of LOWER_BOUNDS) {
    const rv = r[k];
    if (typeof rv !== 'number') continue;
    const wv = w[k];
    if (typeof wv !== 'number' || wv < rv) out.push(`${path}: ${k} raised to ${rv}`);
  }
  for (const k of UPPER_BOUNDS) {
    const rv = r[k];
    if (typeof rv !== 'number') continue;
    const wv = w[k];
    if (typeof wv !== 'number' || wv > rv) out.push(`${path}: ${k} lowered to ${rv}`);
  }
  for (const k of EXACT) {
    if (r[k] === undefined) continue;
    if (canonicalJson(r[k]) !== canonicalJson(w[k] ?? null)) out.push(`${path}: ${k} changed`);
  }
  for (const k of Object.keys(r)) {
    if (COVERED.has(k)) continue;
    if (canonicalJson(r[k]) !== canonicalJson(w[k] ?? null)) out.push(`${path}: ${k} changed (this keyword is compared as a whole)`);
  }
}
