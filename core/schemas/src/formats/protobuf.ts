/**
 * Protobuf (protobufjs): values are Protobuf binary of one message type of the schema, picked by
 * Confluent's message indexes (default: the first message of the file). References are the files the
 * schema imports, by import name; Google's well-known types resolve without a reference.
 */
import protobuf from 'protobufjs';
import { SchemaErrorCode, SchemaRegistryError } from '../errors.js';
import { SchemaType } from './types.js';
import type { ParsedSchema, ResolvedReference, SchemaFormat, Violation } from './types.js';

function invalid(message: string): SchemaRegistryError {
  return new SchemaRegistryError(SchemaErrorCode.INVALID_SCHEMA, `Invalid schema: ${message}`);
}

/** Message types of a namespace in declaration order (nested ones under each). */
function messagesOf(ns: protobuf.NamespaceBase): protobuf.Type[] {
  return ns.nestedArray.filter((n): n is protobuf.Type => n instanceof protobuf.Type);
}

/** Field types read from the same wire type and accepted for one another (as Confluent's Protobuf rules do). */
const WIRE_GROUP: Record<string, string> = {
  int32: 'varint',
  int64: 'varint',
  uint32: 'varint',
  uint64: 'varint',
  bool: 'varint',
  sint32: 'zigzag',
  sint64: 'zigzag',
  fixed32: 'fixed32',
  sfixed32: 'fixed32',
  fixed64: 'fixed64',
  sfixed64: 'fixed64',
  string: 'bytes',
  bytes: 'bytes',
  float: 'float',
  double: 'double',
};

function kindOf(f: protobuf.Field): string {
  if (f.resolvedType instanceof protobuf.Enum) return 'varint';
  if (f.resolvedType instanceof protobuf.Type) return `message ${f.resolvedType.fullName}`;
  return WIRE_GROUP[f.type] ?? f.type;
}

class ProtobufSchema implements ParsedSchema {
  readonly type = SchemaType.PROTOBUF;
  constructor(
    readonly canonical: string,
    /** The main file's top-level message types, in order. */
    readonly top: protobuf.Type[],
    /** Every message type the schema defines or imports, by full name. */
    readonly all: Map<string, protobuf.Type>,
    readonly mainNames: Set<string>,
  ) {}

  private pick(indexes: readonly number[] | undefined): protobuf.Type | undefined {
    const path = indexes && indexes.length > 0 ? indexes : [0];
    let list = this.top;
    let t: protobuf.Type | undefined;
    for (const i of path) {
      t = list[i];
      if (!t) return undefined;
      list = messagesOf(t);
    }
    return t;
  }

  check(value: Uint8Array, messageIndexes?: readonly number[]): { ok: true; value: unknown } | { ok: false; violation: Violation } {
    const t = this.pick(messageIndexes);
    if (!t)
      return {
        ok: false,
        violation: { path: '', reason: `the schema has no message type at index [${(messageIndexes ?? [0]).join(', ')}]` },
      };
    try {
      // A plain Uint8Array, not a Buffer: protobufjs's Buffer reader clamps a string that runs past the end
      // instead of failing; its plain reader checks every length.
      return { ok: true, value: t.decode(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)) };
    } catch (err) {
      return {
        ok: false,
        violation: { path: t.name, reason: `not Protobuf of ${t.fullName.replace(/^\./, '')}: ${(err as Error).message}` },
      };
    }
  }

  canRead(writer: ParsedSchema): string[] {
    if (!(writer instanceof ProtobufSchema)) return [`a ${writer.type} schema cannot be read as Protobuf`];
    const out: string[] = [];
    for (const name of writer.mainNames) {
      const w = writer.all.get(name)!;
      const r = this.all.get(name);
      if (!r) {
        out.push(`message ${name.replace(/^\./, '')} removed`);
        continue;
      }
      for (const wf of w.fieldsArray) {
        const rf = r.fieldsById[wf.id];
        if (!rf) continue; // a removed field is skipped by readers (its number should be reserved)
        const where = `${name.replace(/^\./, '')}.${rf.name} (${wf.id})`;
        if (kindOf(rf) !== kindOf(wf)) out.push(`${where}: type changed from ${wf.type} to ${rf.type}`);
        else if (rf.repeated !== wf.repeated || rf.map !== wf.map) out.push(`${where}: changed between single, repeated and map`);
      }
    }
    return out;
  }
}

export const protobufFormat: SchemaFormat = {
  type: SchemaType.PROTOBUF,
  parse(text: string, references: readonly ResolvedReference[]): ParsedSchema {
    try {
      // The main file alone: which message types it defines, in order.
      const alone = protobuf.parse(text, new protobuf.Root(), { keepCase: true });
      const ns = alone.package ? alone.root.lookup(alone.package) : alone.root;
      if (!(ns instanceof protobuf.Namespace) && !(ns instanceof protobuf.Root)) throw invalid('the package does not resolve');
      const topNames = messagesOf(ns).map((t) => t.fullName);
      if (topNames.length === 0) throw invalid('the schema defines no message type');

      const root = new protobuf.Root();
      const imports = new Set<string>();
      for (const ref of references) {
        if (ref.schemaType !== SchemaType.PROTOBUF) throw invalid(`reference "${ref.name}" is ${ref.schemaType}, not PROTOBUF`);
        const parsed = protobuf.parse(ref.schema, root, { keepCase: true });
        for (const i of parsed.imports ?? []) imports.add(i);
        for (const i of parsed.weakImports ?? []) imports.add(i);
      }
      const main = protobuf.parse(text, root, { keepCase: true });
      for (const i of [...(main.imports ?? []), ...(main.weakImports ?? [])]) imports.add(i);
      const given = new Set(references.map((r) => r.name));
      for (const i of imports) {
        if (given.has(i)) continue;
        const common = protobuf.common.get(i);
        if (!common) throw invalid(`import "${i}" has no reference`);
        root.addJSON(common.nested ?? {});
      }
      root.resolveAll();

      const all = new Map<string, protobuf.Type>();
      const walk = (n: protobuf.NamespaceBase): void => {
        for (const child of n.nestedArray) {
          if (child instanceof protobuf.Type) all.set(child.fullName, child);
          if (child instanceof protobuf.Namespace || child instanceof protobuf.Type) walk(child);
        }
      };
      walk(root);
      const mainNames = new Set<string>();
      const collect = (t: protobuf.Type): void => {
        mainNames.add(t.fullName);
        for (const n of messagesOf(t)) collect(n);
      };
      const top = topNames.map((n) => all.get(n)!);
      for (const t of top) collect(t);
      const canonical = JSON.stringify(alone.root.toJSON());
      return new ProtobufSchema(canonical, top, all, mainNames);
    } catch (err) {
      if (err instanceof SchemaRegistryError) throw err;
      throw invalid((err as Error).message);
    }
  },
};
