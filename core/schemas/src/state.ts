/**
 * The registry's state as a deterministic state machine over its log of events: every node that applies
 * the same events in the same order holds the same subjects, versions and ids, and answers the same.
 * Nothing here does I/O. A schema's global id is the log offset of the event that first registered it:
 * unique, never reused (offsets never are), stable across restarts and nodes.
 */
import { z } from 'zod';
import { COMPATIBILITY_LEVELS, DEFAULT_COMPATIBILITY, compatibilityProblems } from './compat.js';
import type { CompatibilityLevel } from './compat.js';
import { SchemaErrorCode, SchemaRegistryError } from './errors.js';
import { FORMATS, SchemaType } from './formats/index.js';
import type { ParsedSchema, ResolvedReference, SchemaReference } from './formats/index.js';

export const MODES = ['READWRITE', 'READONLY', 'READONLY_OVERRIDE'] as const;
export type Mode = (typeof MODES)[number];

const Reference = z.strictObject({ name: z.string().min(1).max(1024), subject: z.string().min(1).max(1024), version: z.int().min(1) });
const SchemaTypeZ = z.enum([SchemaType.AVRO, SchemaType.JSON, SchemaType.PROTOBUF]);

/** The events of the log, validated when read back (a foreign or damaged record is skipped, and logged by the caller). */
export const RegistryEvent = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('register'),
    subject: z.string(),
    schemaType: SchemaTypeZ,
    schema: z.string(),
    references: z.array(Reference),
  }),
  z.strictObject({ op: z.literal('delete-subject'), subject: z.string(), permanent: z.boolean() }),
  z.strictObject({ op: z.literal('delete-version'), subject: z.string(), version: z.int().min(1), permanent: z.boolean() }),
  z.strictObject({ op: z.literal('config'), subject: z.string().optional(), compatibility: z.enum(COMPATIBILITY_LEVELS).nullable() }),
  z.strictObject({ op: z.literal('mode'), subject: z.string().optional(), mode: z.enum(MODES).nullable() }),
]);
export type RegistryEvent = z.infer<typeof RegistryEvent>;

export interface StoredSchema {
  id: number;
  schemaType: SchemaType;
  /** The text as first registered. */
  schema: string;
  references: SchemaReference[];
}

export interface SubjectVersion {
  subject: string;
  version: number;
  id: number;
  deleted: boolean;
}

interface Subject {
  /** By version, ascending; permanently deleted ones are gone. */
  versions: SubjectVersion[];
  /** The highest version ever given in this subject: numbers are not given twice. */
  lastVersion: number;
  compatibility?: CompatibilityLevel | undefined;
  mode?: Mode | undefined;
}

function fail(code: SchemaErrorCode, message: string): never {
  throw new SchemaRegistryError(code, message);
}

export class RegistryState {
  private readonly schemas = new Map<number, StoredSchema>();
  private readonly byKey = new Map<string, number>();
  private readonly subjects = new Map<string, Subject>();
  private readonly parsed = new Map<string, ParsedSchema>();
  /** Compiled schemas by id: validation looks a schema up here once per batch. */
  private readonly compiled = new Map<number, ParsedSchema>();
  private globalCompatibility: CompatibilityLevel = DEFAULT_COMPATIBILITY;
  private globalMode: Mode = 'READWRITE';

  // ---------------------------------------------------------------- parsing

  /** The references' texts, those they reference first; throws 42201 when one is missing. */
  resolveReferences(refs: readonly SchemaReference[], seen = new Set<string>()): ResolvedReference[] {
    const out: ResolvedReference[] = [];
    for (const ref of refs) {
      const key = `${ref.subject}\u0000${ref.version}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const v = this.subjects.get(ref.subject)?.versions.find((x) => x.version === ref.version);
      const s = v && this.schemas.get(v.id);
      if (!s)
        fail(
          SchemaErrorCode.INVALID_SCHEMA,
          `Invalid schema: reference "${ref.name}" names ${ref.subject} version ${ref.version}, which does not exist`,
        );
      out.push(...this.resolveReferences(s.references, seen), { name: ref.name, schemaType: s.schemaType, schema: s.schema });
    }
    return out;
  }

  /** Parses or throws 42201. A stored schema is compiled once (cached); a candidate each time it is asked. */
  parse(schemaType: SchemaType, schema: string, references: readonly SchemaReference[]): { parsed: ParsedSchema; key: string } {
    const resolved = this.resolveReferences(references);
    const parsed = FORMATS[schemaType].parse(schema, resolved);
    const key = `${schemaType}\u0000${parsed.canonical}\u0000${JSON.stringify(references)}`;
    const cached = this.parsed.get(key);
    if (cached) return { parsed: cached, key };
    // Only stored schemas stay compiled: a client sending many candidates does not grow the cache.
    if (this.byKey.has(key)) this.parsed.set(key, parsed);
    return { parsed, key };
  }

  /** The compiled schema of an id (cached), or undefined when the id is unknown. */
  parsedById(id: number): ParsedSchema | undefined {
    const hit = this.compiled.get(id);
    if (hit) return hit;
    const s = this.schemas.get(id);
    if (!s) return undefined;
    const { parsed } = this.parse(s.schemaType, s.schema, s.references);
    this.compiled.set(id, parsed);
    return parsed;
  }

  // ---------------------------------------------------------------- queries

  schemaById(id: number): StoredSchema | undefined {
    return this.schemas.get(id);
  }

  subjectNames(includeDeleted: boolean): string[] {
    return [...this.subjects.entries()]
      .filter(([, s]) => s.versions.some((v) => includeDeleted || !v.deleted))
      .map(([n]) => n)
      .sort();
  }

  /** The subject's versions (live ones, or all but permanently deleted ones); 40401 when there are none. */
  versions(subject: string, includeDeleted: boolean): SubjectVersion[] {
    const list = this.subjects.get(subject)?.versions.filter((v) => includeDeleted || !v.deleted) ?? [];
    if (list.length === 0) fail(SchemaErrorCode.SUBJECT_NOT_FOUND, `Subject '${subject}' not found.`);
    return list;
  }

  /** A version by number, or the latest live one (`'latest'`); 40401 / 40402 when missing. */
  version(subject: string, version: number | 'latest', includeDeleted: boolean): SubjectVersion {
    const list = this.versions(subject, includeDeleted || version !== 'latest');
    const v =
      version === 'latest'
        ? list.filter((x) => !x.deleted).at(-1)
        : list.find((x) => x.version === version && (includeDeleted || !x.deleted));
    if (!v) {
      if (version === 'latest') fail(SchemaErrorCode.SUBJECT_NOT_FOUND, `Subject '${subject}' not found.`);
      fail(SchemaErrorCode.VERSION_NOT_FOUND, `Version ${version} not found.`);
    }
    return v;
  }

  /** Where an id is used: every (subject, version), deleted ones too. */
  usesOf(id: number): SubjectVersion[] {
    const out: SubjectVersion[] = [];
    for (const s of this.subjects.values()) for (const v of s.versions) if (v.id === id) out.push(v);
    return out.sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : a.version - b.version));
  }

  /** Ids of live schemas that reference this subject version. */
  referencedBy(subject: string, version: number): number[] {
    const out = new Set<number>();
    for (const s of this.subjects.values()) {
      for (const v of s.versions) {
        if (v.deleted) continue;
        const schema = this.schemas.get(v.id);
        if (schema?.references.some((r) => r.subject === subject && r.version === version)) out.add(v.id);
      }
    }
    return [...out].sort((a, b) => a - b);
  }

  compatibilityOf(subject: string | undefined): CompatibilityLevel | undefined {
    return subject === undefined ? this.globalCompatibility : this.subjects.get(subject)?.compatibility;
  }

  effectiveCompatibility(subject: string): CompatibilityLevel {
    return this.subjects.get(subject)?.compatibility ?? this.globalCompatibility;
  }

  modeOf(subject: string | undefined): Mode | undefined {
    return subject === undefined ? this.globalMode : this.subjects.get(subject)?.mode;
  }

  private writable(subject: string): void {
    const mode = this.subjects.get(subject)?.mode ?? this.globalMode;
    if (mode !== 'READWRITE') fail(SchemaErrorCode.OPERATION_NOT_PERMITTED, `Subject ${subject} is in ${mode} mode`);
  }

  /** The live version of `subject` holding this exact schema, if any. */
  findInSubject(subject: string, key: string, includeDeleted = false): SubjectVersion | undefined {
    const id = this.byKey.get(key);
    if (id === undefined) return undefined;
    return this.subjects.get(subject)?.versions.find((v) => v.id === id && (includeDeleted || !v.deleted));
  }

  /** Why this schema may not be registered next in `subject`; empty when it may. */
  problemsOf(subject: string, parsed: ParsedSchema): string[] {
    const live = (this.subjects.get(subject)?.versions ?? []).filter((v) => !v.deleted);
    const previous = live.map((v) => ({ version: v.version, schema: this.parsedById(v.id)! }));
    return compatibilityProblems(parsed, previous, this.effectiveCompatibility(subject));
  }

  // ---------------------------------------------------------------- events

  /**
   * Applies one event of the log at `offset` and gives its answer, or throws the SchemaRegistryError a
   * client is answered with (the event then changes nothing). Deterministic.
   */
  apply(event: RegistryEvent, offset: number): unknown {
    switch (event.op) {
      case 'register':
        return this.register(event, offset);
      case 'delete-subject':
        return this.deleteSubject(event.subject, event.permanent);
      case 'delete-version':
        return this.deleteVersion(event.subject, event.version, event.permanent);
      case 'config': {
        if (event.subject === undefined) {
          const before = this.globalCompatibility;
          this.globalCompatibility = event.compatibility ?? DEFAULT_COMPATIBILITY;
          return { before, after: this.globalCompatibility };
        }
        const s = this.subject(event.subject);
        const before = s.compatibility;
        s.compatibility = event.compatibility ?? undefined;
        return { before, after: s.compatibility };
      }
      case 'mode': {
        if (event.subject === undefined) {
          const before = this.globalMode;
          this.globalMode = event.mode ?? 'READWRITE';
          return { before, after: this.globalMode };
        }
        const s = this.subject(event.subject);
        const before = s.mode;
        s.mode = event.mode ?? undefined;
        return { before, after: s.mode };
      }
    }
  }

  private subject(name: string): Subject {
    let s = this.subjects.get(name);
    if (!s) {
      s = { versions: [], lastVersion: 0 };
      this.subjects.set(name, s);
    }
    return s;
  }

  private register(e: Extract<RegistryEvent, { op: 'register' }>, offset: number): { id: number; version: number } {
    this.writable(e.subject);
    const { parsed, key } = this.parse(e.schemaType, e.schema, e.references);
    const existing = this.findInSubject(e.subject, key);
    if (existing) return { id: existing.id, version: existing.version };
    const problems = this.problemsOf(e.subject, parsed);
    if (problems.length > 0) {
      fail(
        SchemaErrorCode.INCOMPATIBLE_SCHEMA,
        `Schema being registered is incompatible with an earlier schema for subject "${e.subject}", details: [${problems.join('; ')}]`,
      );
    }
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = offset;
      this.byKey.set(key, id);
      this.schemas.set(id, { id, schemaType: e.schemaType, schema: e.schema, references: e.references });
      this.parsed.set(key, parsed);
    }
    const s = this.subject(e.subject);
    const version = ++s.lastVersion;
    s.versions.push({ subject: e.subject, version, id, deleted: false });
    return { id, version };
  }

  private deleteSubject(subject: string, permanent: boolean): number[] {
    this.writable(subject);
    const s = this.subjects.get(subject);
    if (!s || s.versions.length === 0) fail(SchemaErrorCode.SUBJECT_NOT_FOUND, `Subject '${subject}' not found.`);
    const live = s.versions.filter((v) => !v.deleted);
    for (const v of live) this.refuseReferenced(subject, v.version);
    if (!permanent) {
      if (live.length === 0)
        fail(SchemaErrorCode.SUBJECT_SOFT_DELETED, `Subject '${subject}' was soft deleted. Set permanent=true to delete permanently`);
      for (const v of live) v.deleted = true;
      return live.map((v) => v.version);
    }
    if (live.length > 0)
      fail(SchemaErrorCode.SUBJECT_NOT_SOFT_DELETED, `Subject '${subject}' was not deleted first before being permanently deleted`);
    const gone = s.versions.map((v) => v.version);
    s.versions = [];
    this.forgetUnused();
    return gone;
  }

  private deleteVersion(subject: string, version: number, permanent: boolean): number {
    this.writable(subject);
    const s = this.subjects.get(subject);
    if (!s || s.versions.length === 0) fail(SchemaErrorCode.SUBJECT_NOT_FOUND, `Subject '${subject}' not found.`);
    const v = s.versions.find((x) => x.version === version);
    if (!v) fail(SchemaErrorCode.VERSION_NOT_FOUND, `Version ${version} not found.`);
    if (!permanent) {
      if (v.deleted)
        fail(
          SchemaErrorCode.VERSION_SOFT_DELETED,
          `Subject '${subject}' Version ${version} was soft deleted. Set permanent=true to delete permanently`,
        );
      this.refuseReferenced(subject, version);
      v.deleted = true;
      return version;
    }
    if (!v.deleted)
      fail(
        SchemaErrorCode.VERSION_NOT_SOFT_DELETED,
        `Subject '${subject}' Version ${version} was not deleted first before being permanently deleted`,
      );
    s.versions = s.versions.filter((x) => x !== v);
    this.forgetUnused();
    return version;
  }

  private refuseReferenced(subject: string, version: number): void {
    const by = this.referencedBy(subject, version);
    if (by.length > 0)
      fail(
        SchemaErrorCode.REFERENCE_EXISTS,
        `One or more references exist to the schema {subject=${subject}, version=${version}}: ids ${by.join(', ')}`,
      );
  }

  /** Schemas no version uses any more are gone (their ids are never given again: ids are log offsets). */
  private forgetUnused(): void {
    const used = new Set<number>();
    for (const s of this.subjects.values()) for (const v of s.versions) used.add(v.id);
    for (const [key, id] of this.byKey) {
      if (used.has(id)) continue;
      this.byKey.delete(key);
      this.schemas.delete(id);
      this.compiled.delete(id);
      this.parsed.delete(key);
    }
  }
}
