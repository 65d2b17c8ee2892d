/**
 * Reporting a damaged range a partition log found (see store.ts): logged at error and emitted as a
 * `corruption` event (the store marks the station suspect first).
 */
import type { Logger } from 'pino';
import type { StoreEvent } from '../contract.js';
import type { CorruptRange } from '../log/types.js';

/** A damaged range found by a partition log (once per range): logged at error, counted (event). */
export function reportDamage(log: Logger, emit: (e: StoreEvent) => void, station: string, partition: number, range: CorruptRange): void {
  log.error(
    {
      station,
      partition,
      segment: range.segment,
      fromOffset: range.fromOffset,
      toOffset: range.toOffset,
      messages: range.messages,
      detail: range.detail,
    },
    range.messages > 0
      ? `${range.messages} messages lost: offsets ${range.fromOffset}–${range.toOffset} are skipped`
      : 'damaged bytes skipped (no message lost)',
  );
  emit({
    type: 'corruption',
    station,
    partition,
    fromOffset: range.fromOffset,
    toOffset: range.toOffset,
    messages: range.messages,
    detail: range.detail,
  });
}
