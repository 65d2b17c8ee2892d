/**
 * Registry errors carry the Confluent Schema Registry's `error_code` (HTTP status × 100 + a detail, or a
 * bare status) and answer `{ error_code, message }` on its API, so existing clients read them as they
 * read Confluent's. On Junction's own API the same error maps to `{ code, message }` with `code` below.
 */
export const SchemaErrorCode = {
  SUBJECT_NOT_FOUND: 40401,
  VERSION_NOT_FOUND: 40402,
  SCHEMA_NOT_FOUND: 40403,
  SUBJECT_SOFT_DELETED: 40404,
  SUBJECT_NOT_SOFT_DELETED: 40405,
  VERSION_SOFT_DELETED: 40406,
  VERSION_NOT_SOFT_DELETED: 40407,
  SUBJECT_COMPATIBILITY_NOT_CONFIGURED: 40408,
  SUBJECT_MODE_NOT_CONFIGURED: 40409,
  INCOMPATIBLE_SCHEMA: 409,
  INVALID_SCHEMA: 42201,
  INVALID_VERSION: 42202,
  INVALID_COMPATIBILITY_LEVEL: 42203,
  INVALID_MODE: 42204,
  OPERATION_NOT_PERMITTED: 42205,
  REFERENCE_EXISTS: 42206,
  STORE_ERROR: 50001,
} as const;
export type SchemaErrorCode = (typeof SchemaErrorCode)[keyof typeof SchemaErrorCode];

const NAMES = Object.fromEntries(Object.entries(SchemaErrorCode).map(([k, v]) => [v, k])) as Record<number, string>;

/** An error of the registry: `errorCode` is Confluent's, `code` Junction's stable name for it. */
export class SchemaRegistryError extends Error {
  override readonly name = 'SchemaRegistryError';
  readonly code: string;
  constructor(
    readonly errorCode: SchemaErrorCode,
    message: string,
  ) {
    super(message);
    this.code = `SCHEMA_${NAMES[errorCode] ?? 'ERROR'}`;
  }

  /** The HTTP status of this error: the code's first three digits. */
  get status(): number {
    return this.errorCode < 1000 ? this.errorCode : Math.floor(this.errorCode / 100);
  }
}

export function isSchemaRegistryError(err: unknown): err is SchemaRegistryError {
  return err instanceof SchemaRegistryError;
}
