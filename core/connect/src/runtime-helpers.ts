/** Small pure helpers of the connector runtime (see runtime.ts). */
import { isDeepStrictEqual } from 'node:util';
import type { JsonValue } from '@junction/sdk-connector';
import type { ConnectorDeclaration } from './declaration.js';
import { configInvalid } from './errors.js';

/** Whether two declarations are the same (as JSON: undefined fields do not count). */
export function sameDeclaration(a: ConnectorDeclaration, b: ConnectorDeclaration): boolean {
  return isDeepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));
}

/** A zod issue path as `a.b[1].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

/** Every literal string hidden (`***`), references kept: for configs whose plugin is unknown. */
export function redactStrings(v: unknown): unknown {
  if (typeof v === 'string') return /^(?:\$\{(?:env|file):[^}]+\})+$/.test(v) ? v : '***';
  if (Array.isArray(v)) return v.map(redactStrings);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redactStrings(x)]));
  return v;
}

/** The body of `PATCH …/offsets`, checked. @throws CONFIG_INVALID with the entry's path. */
export function parseOffsetsBody(body: unknown): { partition: Record<string, JsonValue>; offset: JsonValue }[] {
  const list = (body as { offsets?: unknown } | null)?.offsets;
  if (!Array.isArray(list)) throw configInvalid('offsets', [{ path: 'offsets', message: 'must be an array of { partition, offset }' }]);
  return list.map((e: unknown, i) => {
    const partition = (e as { partition?: unknown } | null)?.partition;
    if (partition === null || typeof partition !== 'object' || Array.isArray(partition)) {
      throw configInvalid('offsets', [{ path: `offsets[${i}].partition`, message: 'must be an object' }]);
    }
    if (!Object.hasOwn(e as object, 'offset')) throw configInvalid('offsets', [{ path: `offsets[${i}].offset`, message: 'Required' }]);
    return { partition: partition as Record<string, JsonValue>, offset: (e as { offset: JsonValue }).offset };
  });
}
