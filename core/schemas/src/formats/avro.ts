/** Avro (avsc): values are Avro binary; compatibility is Avro's schema resolution (avsc's createResolver). */
import avro from 'avsc';
import { SchemaErrorCode, SchemaRegistryError } from '../errors.js';
import { SchemaType } from './types.js';
import type { ParsedSchema, ResolvedReference, SchemaFormat, Violation } from './types.js';

function invalid(message: string): SchemaRegistryError {
  return new SchemaRegistryError(SchemaErrorCode.INVALID_SCHEMA, `Invalid schema: ${message}`);
}

class AvroSchema implements ParsedSchema {
  readonly type = SchemaType.AVRO;
  readonly canonical: string;
  constructor(readonly avroType: avro.Type) {
    this.canonical = JSON.stringify(avroType.schema());
  }

  check(value: Uint8Array): { ok: true; value: unknown } | { ok: false; violation: Violation } {
    try {
      // fromBuffer throws on truncated data and on bytes left over.
      return { ok: true, value: this.avroType.fromBuffer(Buffer.from(value.buffer, value.byteOffset, value.byteLength)) };
    } catch (err) {
      return { ok: false, violation: { path: '', reason: `not Avro of this schema: ${(err as Error).message}` } };
    }
  }

  canRead(writer: ParsedSchema): string[] {
    if (!(writer instanceof AvroSchema)) return [`a ${writer.type} schema cannot be read as Avro`];
    try {
      this.avroType.createResolver(writer.avroType);
      return [];
    } catch (err) {
      return [(err as Error).message];
    }
  }
}

export const avroFormat: SchemaFormat = {
  type: SchemaType.AVRO,
  parse(text: string, references: readonly ResolvedReference[]): ParsedSchema {
    const registry: Record<string, avro.Type> = {};
    try {
      for (const ref of references) {
        if (ref.schemaType !== SchemaType.AVRO) throw invalid(`reference "${ref.name}" is ${ref.schemaType}, not AVRO`);
        avro.Type.forSchema(JSON.parse(ref.schema) as avro.Schema, { registry });
      }
      return new AvroSchema(avro.Type.forSchema(JSON.parse(text) as avro.Schema, { registry }));
    } catch (err) {
      if (err instanceof SchemaRegistryError) throw err;
      throw invalid((err as Error).message);
    }
  },
};
