/** A source's batch after a route transform: produced to each station it names, in order per station. */
import type { MessageInput, ProduceResult, StationStore } from '@junction/broker';
import type { PackedSourceMessage } from './wire.js';

/**
 * Produces `msgs` (packed as `packed` says) to the station each names (`station`, else `home`), one
 * produce per station, and answers one result per message in the batch's order. A station that does not
 * exist makes the produce throw (the task fails and restarts from its last position: nothing is lost).
 */
export async function produceRouted(
  store: StationStore,
  home: string,
  packed: readonly PackedSourceMessage[],
  msgs: readonly MessageInput[],
): Promise<ProduceResult[]> {
  const groups = new Map<string, number[]>();
  packed.forEach((m, i) => {
    const s = m.station ?? home;
    let g = groups.get(s);
    if (!g) groups.set(s, (g = []));
    g.push(i);
  });
  const out: ProduceResult[] = new Array(msgs.length);
  for (const [station, idx] of groups) {
    const results = await store.produce(
      station,
      idx.map((i) => msgs[i]!),
    );
    idx.forEach((i, k) => (out[i] = results[k]!));
  }
  return out;
}
