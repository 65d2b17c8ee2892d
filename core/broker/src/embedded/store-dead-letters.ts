/**
 * Dead letters of the embedded store (see store.ts): the messages a dead-letter station stores, replaying
 * them into their station, purging them.
 */
import { DLS_HEADERS, putHeader, REPLAY_GROUP_HEADER } from '@junction/protocol';
import type { MessageInput, ProduceResult, ReplayOptions } from '../contract.js';
import type { DeadLetterItem } from './group.js';
import type { StationRt } from './station.js';

/** The messages stored in the dead-letter station for `items` settled as dead letters by `group` of `st`. */
export function deadLetterMessages(st: StationRt, group: string, items: DeadLetterItem[]): MessageInput[] {
  return items.map((it) => ({
    value: it.record.value,
    key: it.record.key,
    // A crash between storing the dead letter and settling it must not store it twice.
    msgId: `dls:${group}:${it.partition}:${it.record.offset}`,
    headers: {
      ...it.record.headers,
      ...it.headers,
      [DLS_HEADERS.reason]: it.reason,
      [DLS_HEADERS.code]: it.code,
      [DLS_HEADERS.group]: group,
      [DLS_HEADERS.attempts]: String(it.attempts),
      [DLS_HEADERS.station]: st.name,
      [DLS_HEADERS.partition]: String(it.partition),
      [DLS_HEADERS.offset]: String(it.record.offset),
      [DLS_HEADERS.timestamp]: String(it.record.timestamp),
      ...(it.record.key !== undefined && { [DLS_HEADERS.key]: it.record.key }),
    },
  }));
}

/**
 * Produces the dead letters of `dls` (from `options.fromOffset` to `options.toOffset`) into `st`, their
 * dead-letter headers removed (and the replay group's set when `options.group`). Answers how many were
 * stored and the offset of the last one read (`from - 1` when none was).
 */
export async function replayInto(
  st: StationRt,
  dls: StationRt,
  options: ReplayOptions,
  produce: (st: StationRt, messages: MessageInput[]) => Promise<ProduceResult[]>,
): Promise<{ replayed: number; from: number; last: number }> {
  const { first, end } = dls.bounds(0);
  const from = Math.max(options.fromOffset ?? first, first);
  const to = Math.min(options.toOffset ?? end - 1, end - 1);
  let replayed = 0;
  let last = from - 1;
  for (let at = from; at <= to;) {
    const recs = (await dls.read(0, at, 1000, 8 * 1024 * 1024)).filter((r) => r.offset <= to);
    if (recs.length === 0) break;
    const messages: MessageInput[] = recs.map((r) => {
      const headers: Record<string, string> = {};
      for (const k in r.headers) if (!k.startsWith('junction-dls-') && k !== REPLAY_GROUP_HEADER) putHeader(headers, k, r.headers[k]!);
      if (options.group !== undefined) headers[REPLAY_GROUP_HEADER] = options.group;
      return { value: Buffer.from(r.value), key: r.key, headers };
    });
    const results = await produce(st, messages);
    replayed += results.filter((r) => r.status === 'stored').length;
    last = recs[recs.length - 1]!.offset;
    at = last + 1;
  }
  return { replayed, from, last };
}

/** Removes the dead letters of `dls` up to `upToOffset` (all when undefined); answers how many. */
export async function purgeDls(dls: StationRt, upToOffset: number | undefined): Promise<number> {
  const log = dls.logs[0]!;
  const { first, end } = dls.bounds(0);
  const until = Math.min(upToOffset === undefined ? end : upToOffset + 1, end);
  if (until <= first) return 0;
  const before = log.count;
  await log.truncateBefore(until);
  return Math.max(0, before - log.count);
}
