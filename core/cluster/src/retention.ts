/**
 * What a group lost to retention (GroupInfo.lostToRetention, the `retention-lost` event): JetStream removes
 * messages by the stream's limits whatever its consumers did, and tells nobody. Counted here, once across
 * the nodes, in the group's KV record `l.<station>.<group>` = { parts: [{ gen, upTo, lost }] }:
 *
 * - never received: offsets below the stream's first one that the consumer had not delivered. `upTo` is
 *   where that count stands (everything below it is accounted for), so two nodes observing the same
 *   removal count it once (compare-and-set on the record). Observed when a node reads the group's info
 *   (GET …/groups, the metrics scrape), and when a fetch sees the consumer skip offsets (retention removed
 *   them before it delivered them).
 * - delivered and not acknowledged: the deliveries this node handed out (its record of them) whose offset
 *   retention removed; JetStream settles those by itself (nats-server's `decStreamPending` terminates them),
 *   so only the node that holds them can count them.
 *
 * Both are exact for messages handed out through one node; a delivery handed out by a node that has
 * restarted since, or one past its ack deadline (perhaps redelivered elsewhere), is not counted (README).
 */
import type { StationMeta } from './meta.js';
import type { StoreCore } from './core.js';
import type { GroupRt } from './runtime.js';

/** One partition of a group's record: its consumer generation, where the count stands, the total. */
interface LostPart {
  gen: number;
  upTo: number;
  lost: number;
}

/** The group's record in KV. */
export interface LostRecord {
  parts: LostPart[];
}

/** The lost counts per partition from this node's cache (0 for partitions never observed). */
export function lostCounts(c: StoreCore, station: string, group: string, partitions: number): number[] {
  const rec = c.meta.peek<LostRecord>(c.names.lostKey(station, group)).value;
  return Array.from({ length: partitions }, (_, p) => rec?.parts[p]?.lost ?? 0);
}

/**
 * Starts the count of partitions at their consumer's start (a new group, or a seek / hand-over: a new
 * consumer generation); the totals so far are kept. `starts[p]` undefined leaves partition p alone.
 */
export async function startCounts(
  c: StoreCore,
  station: string,
  group: string,
  gens: readonly number[],
  starts: readonly (number | undefined)[],
): Promise<void> {
  await update(c, station, group, gens.length, (parts) => {
    gens.forEach((gen, p) => {
      const at = starts[p];
      if (at !== undefined) parts[p] = { gen, upTo: at, lost: parts[p]?.lost ?? 0 };
    });
    return true;
  });
}

/**
 * Counts what retention removed from partition `p` (first retained offset `first`) that the group had not
 * received (the consumer had delivered up to `delivered`), plus `held`: deliveries this node held there.
 * Read the stream's first offset BEFORE the consumer's delivered one: an offset below `first` that the
 * consumer had not delivered by then can never be delivered. Returns what was counted now.
 */
export async function countRemoved(
  c: StoreCore,
  st: StationMeta,
  group: string,
  p: number,
  gen: number,
  first: number,
  delivered: number,
  held: number,
): Promise<number> {
  let counted = 0;
  await update(c, st.name, group, st.config.partitions, (parts) => {
    const cur = parts[p];
    if (!cur || cur.gen !== gen) {
      // Not counted from this generation's start (metadata from before, or a seek that did not get to
      // record it): count from what is retained now on.
      parts[p] = { gen, upTo: first, lost: (cur?.lost ?? 0) + held };
      counted = held;
      return held > 0 || cur?.gen !== gen;
    }
    const never = Math.max(0, first - Math.max(cur.upTo, delivered + 1));
    counted = never + held;
    if (first <= cur.upTo && held === 0) return false;
    parts[p] = { gen, upTo: Math.max(cur.upTo, first), lost: cur.lost + counted };
    return true;
  });
  report(c, st.name, group, p, counted);
  return counted;
}

/**
 * A fetch received offset `to + 1` right after `from - 1` (consecutive consumer sequences, both first
 * attempts): the consumer skipped `from`…`to`, which retention removed before it delivered them.
 */
export async function countSkipped(
  c: StoreCore,
  st: StationMeta,
  group: string,
  p: number,
  gen: number,
  from: number,
  to: number,
): Promise<void> {
  if (c.state !== 'open') return;
  let counted = 0;
  await update(c, st.name, group, st.config.partitions, (parts) => {
    const cur = parts[p];
    if (!cur || cur.gen !== gen) return false; // the observation in groupInfo starts this generation's count
    const n = Math.max(0, to + 1 - Math.max(cur.upTo, from));
    if (n === 0) return false;
    counted = n;
    parts[p] = { gen, upTo: to + 1, lost: cur.lost + n };
    return true;
  });
  report(c, st.name, group, p, counted);
}

function report(c: StoreCore, station: string, group: string, partition: number, messages: number): void {
  if (messages <= 0) return;
  c.log.warn({ station, group, partition, messages }, 'retention removed messages the consumer group had not settled');
  c.emit({ type: 'retention-lost', station, group, partition, messages });
}

/** Read-modify-write of the group's record with compare-and-set; `change` answers whether to write. */
async function update(
  c: StoreCore,
  station: string,
  group: string,
  partitions: number,
  change: (parts: (LostPart | undefined)[]) => boolean,
): Promise<void> {
  const key = c.names.lostKey(station, group);
  for (let attempt = 0; attempt < 10; attempt++) {
    const cur = attempt === 0 ? c.meta.peek<LostRecord>(key) : await c.meta.read<LostRecord>(key);
    const parts: (LostPart | undefined)[] = Array.from({ length: partitions }, (_, p) => cur.value?.parts[p]);
    if (!change(parts)) return;
    const next: LostRecord = { parts: parts.map((x) => x ?? { gen: 0, upTo: 0, lost: 0 }) };
    const rev = cur.value === undefined ? await c.meta.create(key, next) : await c.meta.update(key, next, cur.rev);
    if (rev !== undefined) return;
  }
  c.log.warn({ station, group }, 'retention loss not counted (contention)');
}

/** The deliveries this node holds in partition `p` below `first` (removed by retention): forgotten, and how many were still out. */
export function takeRemovedHeld(rt: GroupRt, p: number, first: number, now: number): number {
  const part = rt.parts[p];
  if (!part) return 0;
  let held = 0;
  for (const [offset, o] of part.outstanding) {
    if (offset >= first) continue;
    part.outstanding.delete(offset);
    part.last.delete(offset);
    // Past its deadline and not nacked: JetStream may have handed it to another node, which counts it.
    if (!o.busy && (o.nackedUntil !== undefined || o.deadline > now)) held++;
  }
  return held;
}
