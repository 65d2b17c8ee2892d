/**
 * Compatibility levels as Confluent defines them. BACKWARD: the new schema reads data written with the
 * last one; FORWARD: the last one reads data written with the new one; FULL: both; the _TRANSITIVE levels
 * check against every live version instead of the last; NONE checks nothing.
 */
import type { ParsedSchema } from './formats/types.js';

export const COMPATIBILITY_LEVELS = [
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE',
  'NONE',
] as const;
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number];
export const DEFAULT_COMPATIBILITY: CompatibilityLevel = 'BACKWARD';

export function isCompatibilityLevel(v: unknown): v is CompatibilityLevel {
  return typeof v === 'string' && (COMPATIBILITY_LEVELS as readonly string[]).includes(v);
}

/**
 * Why `candidate` may not follow `previous` (live versions, oldest first) under `level`; empty when it
 * may. Schemas of another type are never compatible (unless the level is NONE).
 */
export function compatibilityProblems(
  candidate: ParsedSchema,
  previous: readonly { version: number; schema: ParsedSchema }[],
  level: CompatibilityLevel,
): string[] {
  if (level === 'NONE' || previous.length === 0) return [];
  const targets = level.endsWith('_TRANSITIVE') ? previous : previous.slice(-1);
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL');
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL');
  const out: string[] = [];
  for (const { version, schema } of targets) {
    if (schema.type !== candidate.type) {
      out.push(`version ${version} is ${schema.type}, the new schema ${candidate.type}`);
      continue;
    }
    if (backward) for (const p of candidate.canRead(schema)) out.push(`the new schema cannot read data of version ${version}: ${p}`);
    if (forward) for (const p of schema.canRead(candidate)) out.push(`version ${version} cannot read data of the new schema: ${p}`);
  }
  return out;
}
