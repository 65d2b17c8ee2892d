/**
 * Schemas enforced in the broker: a StationStore that validates every value produced to a station with
 * a `schema` binding before the engine stores it. The server hands this store to every produce path (the
 * /v1 API in JSON, NDJSON and binary, the Memphis gateway, source connectors), so no client can skip it.
 *
 * A value is either the payload itself (JSON text for JSON Schema; Avro or Protobuf binary), validated
 * against the bound version, or in the Confluent wire format (byte 0, a 4-byte schema id, for Protobuf
 * the message indexes, then the payload), validated against the schema its id names, which must be a
 * version of the bound subject. Each value is decoded once. Schemas are compiled once per version.
 */
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { Registry as MetricsRegistry } from 'prom-client';
import { Counter } from 'prom-client';
import { DLS_HEADERS } from '@junction/protocol';
import type { StationSchemaBinding } from '@junction/protocol';
import { ErrorCode, JunctionError, dlsName, isJunctionError } from '@junction/broker';
import type { MessageInput, ProduceResult, StationStore } from '@junction/broker';
import { SchemaType } from './formats/index.js';
import type { ParsedSchema, Violation } from './formats/index.js';
import type { SchemaRegistry } from './registry.js';
import type { SubjectVersion } from './state.js';
import { ValidationPool } from './validate-pool.js';
// One reader of Confluent's Protobuf message indexes, the SDK's (sinks decode with it too).
import { messageIndexes } from '@junction/sdk-connector/schema';
import { ITEM_FIELDS } from './validate-pool.js';
import type { PackedItems, SchemaSource } from './validate-pool.js';

/** Codes of produce results this store gives. */
export const SchemaProduceCode = {
  /** The value does not match (policy `reject`), or the station's subject has no such version. */
  SCHEMA_VIOLATION: 'SCHEMA_VIOLATION',
  /** The value does not match and was stored in the station's dead-letter station (policy `dead-letter`). */
  SCHEMA_VIOLATION_DEAD_LETTERED: 'SCHEMA_VIOLATION_DEAD_LETTERED',
} as const;

export interface SchemaEnforcingOptions {
  registry: SchemaRegistry;
  metrics?: MetricsRegistry | undefined;
  logger?: Logger | undefined;
  /** How long a station's binding is trusted before it is read again (changes made on this node apply at once). Default 1000 ms. */
  bindingTtlMs?: number | undefined;
  /**
   * Worker threads that check large batches off the main thread. Default: the cores but one (at least 1,
   * at most 4); 0 checks every batch on the calling thread.
   */
  validationThreads?: number | undefined;
  /** Batches of fewer messages than this are checked on the calling thread (a worker's round trip costs more). Default 64. */
  inlineBelow?: number | undefined;
}

interface Bound {
  id: number;
  version: number;
  schema: ParsedSchema;
}
interface Checkable {
  id: number;
  start: number;
  indexes?: number[] | undefined;
  bareStart?: number | undefined;
  version: string;
}
type Framed = Checkable | { violation: Violation; version: string };
interface Outcome {
  violation?: Violation | undefined;
  version: string;
}

interface CachedBinding {
  binding: StationSchemaBinding | undefined;
  at: number;
}

/** The subject a binding validates against: its own, or `<station>-value`. */
export function subjectOf(station: string, binding: StationSchemaBinding): string {
  return binding.subject ?? `${station}-value`;
}

/** The binding lookup of each enforcing store (see {@link enforcedBindingOf}). */
const lookups = new WeakMap<StationStore, (station: string) => Promise<StationSchemaBinding | undefined>>();

/**
 * The binding an enforcing store validates a station's values against right now — its own cache (a
 * change made through it applies at once; others' within `bindingTtlMs`) — or undefined for a store that
 * is not one. What the connect runtime hands sinks comes from here, so a sink never sees an older binding
 * than the one its values were checked with on this node, and resolving costs no store call per fetch.
 */
export function enforcedBindingOf(store: StationStore): ((station: string) => Promise<StationSchemaBinding | undefined>) | undefined {
  return lookups.get(store);
}

/**
 * Wraps `inner`: produce validates, createStation / updateStation check that a binding names a subject
 * and version that exist, and everything else is the inner store's.
 */
export function schemaEnforcingStore(inner: StationStore, options: SchemaEnforcingOptions): StationStore {
  const { registry, logger } = options;
  const ttl = options.bindingTtlMs ?? 1000;
  const bindings = new Map<string, CachedBinding>();
  let violations: Counter<'station' | 'policy'> | undefined;
  if (options.metrics) {
    violations = new Counter({
      name: 'junction_schema_violations_total',
      help: 'Produced values that did not match their station schema, by station and policy (reject, dead-letter, warn)',
      labelNames: ['station', 'policy'],
      registers: [options.metrics],
    });
  }
  let lastCatchUp = 0;
  const threads = options.validationThreads ?? Math.max(1, Math.min(4, availableParallelism() - 1));
  const pool = threads > 0 ? new ValidationPool(threads) : undefined;
  const inlineBelow = options.inlineBelow ?? 64;

  const refreshing = new Set<string>();

  /** Reads a station's binding from the engine and caches it. Throws what getStation throws. */
  async function load(station: string): Promise<StationSchemaBinding | undefined> {
    const info = await inner.getStation(station);
    const binding = (info.config as { schema?: StationSchemaBinding }).schema;
    bindings.set(station, { binding, at: Date.now() });
    if (bindings.size > 100_000) bindings.delete(bindings.keys().next().value!);
    return binding;
  }

  /**
   * The station's binding. A cached one is answered at once, and read again in the background once it is
   * older than the TTL: a produce never waits for the engine (in cluster mode getStation asks JetStream,
   * which waits out a timeout while a stream has no reachable leader). Only a station's first produce
   * on this node reads it in line.
   */
  async function bindingOf(station: string): Promise<StationSchemaBinding | undefined> {
    const hit = bindings.get(station);
    if (hit) {
      if (Date.now() - hit.at >= ttl && !refreshing.has(station)) {
        refreshing.add(station);
        load(station)
          .catch((err: unknown) => {
            // Keep the binding known; try again after another TTL.
            if (isJunctionError(err) && err.code === 'STATION_NOT_FOUND') bindings.delete(station);
            else hit.at = Date.now();
          })
          .finally(() => refreshing.delete(station));
      }
      return hit.binding;
    }
    try {
      return await load(station);
    } catch (err) {
      // The engine answers for a station it does not have (auto-creation, STATION_NOT_FOUND).
      if (isJunctionError(err)) return undefined;
      throw err;
    }
  }

  let catching = false;
  /** Applies other nodes' registrations about once a TTL, in the background (a produce does not wait for it). */
  function fresh(): void {
    if (catching || Date.now() - lastCatchUp < ttl) return;
    catching = true;
    registry
      .catchUp()
      .catch((err: unknown) => logger?.warn({ err }, 'the schema registry could not read its log; bindings use what it knows'))
      .finally(() => {
        lastCatchUp = Date.now();
        catching = false;
      });
  }

  function target(subject: string, binding: StationSchemaBinding): Bound | undefined {
    try {
      const v = registry.state.version(subject, binding.version, false);
      return { id: v.id, version: v.version, schema: registry.state.parsedById(v.id)! };
    } catch {
      return undefined;
    }
  }

  async function checkBinding(station: string, binding: StationSchemaBinding | undefined | null): Promise<void> {
    if (!binding) return;
    await registry.catchUp();
    const subject = subjectOf(station, binding);
    if (!target(subject, binding)) {
      throw new JunctionError(
        ErrorCode.CONFIG_INVALID,
        `schema: subject "${subject}" has no ${binding.version === 'latest' ? 'live version' : `version ${binding.version}`} in the schema registry`,
        {
          issues: [
            { path: binding.subject === undefined ? 'schema' : 'schema.subject', message: `register a schema under "${subject}" first` },
          ],
        },
      );
    }
  }

  async function produce(station: string, messages: readonly MessageInput[]): Promise<ProduceResult[]> {
    const binding = await bindingOf(station);
    if (!binding) return inner.produce(station, messages);
    fresh();
    const subject = subjectOf(station, binding);
    let bound = target(subject, binding);
    if (!bound) {
      await registry.catchUp();
      bound = target(subject, binding);
    }
    const results: (ProduceResult | undefined)[] = new Array(messages.length);
    const valid: MessageInput[] = [];
    const validAt: number[] = [];
    const dead: { at: number; message: MessageInput; violation: Violation; version: string }[] = [];
    const noVersion: Outcome = {
      violation: {
        path: '',
        reason: `subject "${subject}" has no ${binding.version === 'latest' ? 'live version' : `version ${binding.version}`}`,
      },
      version: '?',
    };
    const bad = bound ? await checkAll(messages, subject, bound) : undefined;
    if (bad?.size === 0) return inner.produce(station, messages);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const outcome = bad ? bad.get(i) : noVersion;
      if (!outcome?.violation || binding.policy === 'warn') {
        if (outcome?.violation) violations?.inc({ station, policy: 'warn' });
        valid.push(m);
        validAt.push(i);
        continue;
      }
      violations?.inc({ station, policy: binding.policy });
      const where = outcome.violation.path === '' ? '' : ` at ${outcome.violation.path}`;
      const message = `the value does not match schema subject "${subject}" version ${outcome.version}${where}: ${outcome.violation.reason}`;
      if (binding.policy === 'dead-letter' && bound)
        dead.push({ at: i, message: m, violation: outcome.violation, version: outcome.version });
      else results[i] = { status: 'rejected', code: SchemaProduceCode.SCHEMA_VIOLATION, message };
    }
    if (valid.length > 0) {
      const stored = await inner.produce(station, valid);
      for (let j = 0; j < stored.length; j++) results[validAt[j]!] = stored[j];
    }
    if (dead.length > 0) {
      const dls = dlsName(station);
      let stored: ProduceResult[] | undefined;
      try {
        stored = await inner.produce(
          dls,
          dead.map((d) => ({
            value: d.message.value,
            ...(d.message.key !== undefined && { key: d.message.key }),
            headers: {
              ...d.message.headers,
              [DLS_HEADERS.reason]: 'schema-violation',
              [DLS_HEADERS.code]: SchemaProduceCode.SCHEMA_VIOLATION,
              [DLS_HEADERS.station]: station,
              [DLS_HEADERS.timestamp]: String(Date.now()),
              'junction-schema-subject': subject,
              'junction-schema-version': d.version,
              'junction-schema-error': `${d.violation.path === '' ? '' : `${d.violation.path}: `}${d.violation.reason}`.slice(0, 1000),
            },
          })),
        );
      } catch (err) {
        logger?.warn({ station, err }, 'schema violations could not be dead-lettered (no dead-letter station?): rejected instead');
      }
      dead.forEach((d, k) => {
        const r = stored?.[k];
        const where = d.violation.path === '' ? '' : ` at ${d.violation.path}`;
        const base = `the value does not match schema subject "${subject}" version ${d.version}${where}: ${d.violation.reason}`;
        results[d.at] =
          r && r.status === 'stored'
            ? {
                status: 'rejected',
                code: SchemaProduceCode.SCHEMA_VIOLATION_DEAD_LETTERED,
                message: `${base}; stored in ${dls} at offset ${r.offset}`,
              }
            : { status: 'rejected', code: SchemaProduceCode.SCHEMA_VIOLATION, message: base };
      });
    }
    return results as ProduceResult[];
  }

  /**
   * Where each value's payload lies and which schema checks it (the bound version, or for the Confluent
   * wire format the version its id names), or why it cannot be checked at all.
   */
  function frame(value: Uint8Array, subject: string, bound: Bound, uses: Map<number, SubjectVersion | null>, plain: Checkable): Framed {
    const version = plain.version;
    if (value.length >= 5 && value[0] === 0) {
      const id = ((value[1]! << 24) | (value[2]! << 16) | (value[3]! << 8) | value[4]!) >>> 0;
      if (registry.state.schemaById(id)) {
        // Looked up once per id and batch.
        let use = uses.get(id);
        if (use === undefined) {
          use = registry.state.usesOf(id).find((u) => u.subject === subject && !u.deleted) ?? null;
          uses.set(id, use);
        }
        if (!use) return { violation: { path: '', reason: `schema id ${id} is not a version of subject "${subject}"` }, version };
        const schema = id === bound.id ? bound.schema : registry.state.parsedById(id)!;
        if (schema.type === SchemaType.PROTOBUF) {
          // Some clients (@kafkajs/confluent-schema-registry) write no message indexes: then the payload of
          // the first message type starts right after the id.
          const mi = messageIndexes(value, 5);
          return mi
            ? { id, start: mi.next, indexes: mi.indexes, bareStart: 5, version: String(use.version) }
            : { id, start: 5, version: String(use.version) };
        }
        return { id, start: 5, version: String(use.version) };
      }
      // JSON text never starts with byte 0: that is a wire-format value whose id the registry does not know.
      if (bound.schema.type === SchemaType.JSON)
        return { violation: { path: '', reason: `schema id ${id} is unknown to the registry` }, version };
    }
    return plain;
  }

  function sourceOf(id: number): SchemaSource {
    const s = registry.state.schemaById(id)!;
    return { id, schemaType: s.schemaType, schema: s.schema, references: registry.state.resolveReferences(s.references) };
  }

  /**
   * Checks every value once: on this thread for small batches, else in a validation worker. Answers the
   * values that do not check, by index (empty: all do). The common case allocates per value only what
   * framing it needs: the items go to the worker as numbers (see `PackedItems`).
   */
  async function checkAll(messages: readonly MessageInput[], subject: string, bound: Bound): Promise<Map<number, Outcome>> {
    const uses = new Map<number, SubjectVersion | null>();
    // What most values frame to (the bound version, payload from byte 0): one object for the batch, read only.
    const plain: Checkable = { id: bound.id, start: 0, version: String(bound.version) };
    const bad = new Map<number, Outcome>();
    const n = messages.length;
    const framed: (Checkable | undefined)[] = new Array(n);
    let todo = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const value = messages[i]!.value;
      const f = frame(value, subject, bound, uses, plain);
      if ('violation' in f) {
        bad.set(i, f);
        continue;
      }
      framed[i] = f;
      todo++;
      total += value.length;
    }
    if (todo === 0) return bad;
    if (pool && todo >= inlineBelow) {
      const buf = pool.borrow(total);
      const nums = new Float64Array(todo * ITEM_FIELDS);
      const at = new Int32Array(todo);
      let indexes: [number, number[]][] | undefined;
      let pos = 0;
      let k = 0;
      for (let i = 0; i < n; i++) {
        const f = framed[i];
        if (!f) continue;
        const v = messages[i]!.value;
        buf.set(v, pos);
        const o = k * ITEM_FIELDS;
        nums[o] = f.id;
        nums[o + 1] = pos + f.start;
        nums[o + 2] = pos + v.length;
        nums[o + 3] = f.bareStart === undefined ? -1 : pos + f.bareStart;
        if (f.indexes) (indexes ??= []).push([k, f.indexes]);
        at[k++] = i;
        pos += v.length;
      }
      const items: PackedItems = { count: todo, nums, ...(indexes && { indexes }) };
      try {
        for (const [j, violation] of await pool.check(buf, items, sourceOf)) {
          const i = at[j]!;
          bad.set(i, { violation, version: framed[i]!.version });
        }
        return bad;
      } catch (err) {
        logger?.warn({ err }, 'a validation worker failed: the batch is checked on the main thread');
      }
    }
    for (let i = 0; i < n; i++) {
      const f = framed[i];
      if (!f) continue;
      const value = messages[i]!.value;
      const schema = f.id === bound.id ? bound.schema : registry.state.parsedById(f.id)!;
      const r = schema.check(value.subarray(f.start), f.indexes);
      if (r.ok) continue;
      if (f.bareStart !== undefined && schema.check(value.subarray(f.bareStart)).ok) continue;
      bad.set(i, { violation: r.violation, version: f.version });
    }
    return bad;
  }

  const overrides: Partial<StationStore> = {
    produce,
    async createStation(name, config) {
      await checkBinding(name, (config as { schema?: StationSchemaBinding } | undefined)?.schema);
      const info = await inner.createStation(name, config);
      bindings.delete(name);
      return info;
    },
    async updateStation(name, patch) {
      await checkBinding(name, (patch as { schema?: StationSchemaBinding | null }).schema);
      const info = await inner.updateStation(name, patch);
      bindings.delete(name);
      return info;
    },
    async deleteStation(name) {
      await inner.deleteStation(name);
      bindings.delete(name);
    },
    async close() {
      await pool?.close();
      await inner.close();
    },
  };
  const enforcing = new Proxy(inner, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && Object.hasOwn(overrides, prop)) return overrides[prop as keyof StationStore];
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  lookups.set(enforcing, bindingOf);
  return enforcing;
}
