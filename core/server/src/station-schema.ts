/**
 * The connect runtime's view of station schemas (`ConnectRuntimeOptions.stationSchemaOf`): a station's
 * `schema` binding resolved with the registry to the bound version plus every live version of its subject,
 * with references resolved. core/connect does not import the registry; this adapter is the only bridge.
 */
import type { StationSchemaBinding } from '@junction/protocol';
import type { StationStore } from '@junction/broker';
import { isJunctionError } from '@junction/broker';
import type { StationSchemaResolver } from '@junction/connect';
import { enforcedBindingOf, subjectOf } from '@junction/schemas';
import type { SchemaRegistry, StoredSchema } from '@junction/schemas';

type StationSchemaInfo = NonNullable<Awaited<ReturnType<StationSchemaResolver>>>;
type VersionInfo = StationSchemaInfo['versions'][number];
type ReferenceInfo = VersionInfo['references'][number];

/**
 * Resolves bindings as the enforcing store sees them: with an enforcing store (`schemaEnforcingStore`),
 * through its own binding cache — a change made on this node applies at once, others' within its TTL, and
 * no store call is made per fetch — else by reading the station's config. The registry's log is caught up
 * at most once per `ttlMs` (other nodes' schemas) and again when the binding names a version not applied
 * yet. Throws when the binding names nothing (the runner then keeps the schema it had); answers the same
 * object while nothing changed.
 */
export function stationSchemaResolver(store: StationStore, registry: SchemaRegistry, ttlMs = 1000): StationSchemaResolver {
  let lastCatchUp = 0;
  const cache = new Map<string, StationSchemaInfo>();

  function references(s: StoredSchema, seen: Set<string>): ReferenceInfo[] {
    const out: ReferenceInfo[] = [];
    for (const ref of s.references) {
      const key = `${ref.subject}\u0000${ref.version}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const v = registry.state.version(ref.subject, ref.version, true);
      const target = registry.state.schemaById(v.id);
      if (!target) continue;
      out.push(...references(target, seen), {
        name: ref.name,
        subject: ref.subject,
        version: ref.version,
        schemaType: target.schemaType,
        schema: target.schema,
      });
    }
    return out;
  }

  function resolve(station: string, binding: StationSchemaBinding): StationSchemaInfo {
    const subject = subjectOf(station, binding);
    const bound = registry.state.version(subject, binding.version, false);
    const live = registry.state.versions(subject, false);
    const key = `${subject}\u0000${bound.id}\u0000${live.map((v) => `${v.version}:${v.id}`).join(',')}`;
    const hit = cache.get(key);
    if (hit) return hit;
    const versions: VersionInfo[] = live.map((v) => {
      const s = registry.state.schemaById(v.id)!;
      return { subject, version: v.version, id: v.id, schemaType: s.schemaType, schema: s.schema, references: references(s, new Set()) };
    });
    const self = versions.find((v) => v.id === bound.id && v.version === bound.version)!;
    const info: StationSchemaInfo = { ...self, versions };
    if (cache.size > 1000) cache.clear();
    cache.set(key, info);
    return info;
  }

  const enforced = enforcedBindingOf(store);
  return async (station) => {
    let binding: StationSchemaBinding | undefined;
    if (enforced) binding = await enforced(station);
    else {
      try {
        binding = ((await store.getStation(station)).config as { schema?: StationSchemaBinding }).schema;
      } catch (err) {
        if (isJunctionError(err) && err.code === 'STATION_NOT_FOUND') return undefined;
        throw err;
      }
    }
    if (!binding) return undefined;
    if (Date.now() - lastCatchUp >= ttlMs) {
      await registry.catchUp();
      lastCatchUp = Date.now();
    }
    try {
      return resolve(station, binding);
    } catch {
      await registry.catchUp();
      lastCatchUp = Date.now();
      return resolve(station, binding);
    }
  };
}
