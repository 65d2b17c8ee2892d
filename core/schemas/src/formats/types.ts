/** What every schema format gives the registry and the broker. */

/** The formats of the registry, named as Confluent names them (`schemaType`; absent means AVRO). */
export const SchemaType = { AVRO: 'AVRO', JSON: 'JSON', PROTOBUF: 'PROTOBUF' } as const;
export type SchemaType = (typeof SchemaType)[keyof typeof SchemaType];

/** A schema another one imports, named as it imports it (Confluent's `references`). */
export interface SchemaReference {
  name: string;
  subject: string;
  version: number;
}

/** A reference resolved to its schema text (references of references come before it in the list). */
export interface ResolvedReference {
  name: string;
  schemaType: SchemaType;
  schema: string;
}

/** Why a value does not match its schema: where (a JSON pointer or field path; "" for the whole value) and why. */
export interface Violation {
  path: string;
  reason: string;
}

/** A parsed, compiled schema version. Immutable; cheap to share. */
export interface ParsedSchema {
  readonly type: SchemaType;
  /** The schema in a normal form: two texts of the same schema (whitespace, key order where it does not matter) give the same string. */
  readonly canonical: string;
  /**
   * Decodes one value (its payload: no wire-format prefix) and checks it, or says why it does not match.
   * `messageIndexes` picks the Protobuf message type (Confluent's message indexes; default the first).
   */
  check(value: Uint8Array, messageIndexes?: readonly number[]): { ok: true; value: unknown } | { ok: false; violation: Violation };
  /** Why data written with `writer` cannot be read with this schema as the reader; empty when it can. */
  canRead(writer: ParsedSchema): string[];
}

/** A schema format: parses a schema text, or throws INVALID_SCHEMA (42201) saying why. */
export interface SchemaFormat {
  readonly type: SchemaType;
  parse(text: string, references: readonly ResolvedReference[]): ParsedSchema;
}
