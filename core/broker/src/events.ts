/**
 * The listeners of a store's events (StationStore.onEvent), shared by the engines: a listener that
 * throws is logged and never breaks the operation that emitted; damage events are kept and replayed to
 * listeners that subscribe later (metrics subscribe after the store opened, when most damage is found).
 */
import type { Logger } from 'pino';
import type { StoreEvent } from './contract.js';

export class StoreEventHub {
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  /** Events a late listener must still see (damage found while the store opened), oldest first. */
  private readonly sticky: StoreEvent[] = [];

  constructor(private readonly log: () => Logger) {}

  /** Adds a listener, first replaying the sticky events (`corruption`, `metadata-repair`) emitted so far; returns its removal. */
  on(listener: (event: StoreEvent) => void): () => void {
    for (const e of this.sticky) this.deliver(listener, e);
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(e: StoreEvent): void {
    if (e.type === 'corruption' || e.type === 'metadata-repair') {
      // Bounded: each is found once per damaged range or file, but a disk gone bad must not grow memory without end.
      if (this.sticky.length >= MAX_STICKY) this.sticky.shift();
      this.sticky.push(e);
    }
    for (const l of this.listeners) this.deliver(l, e);
  }

  private deliver(l: (e: StoreEvent) => void, e: StoreEvent): void {
    try {
      l(e);
    } catch (err) {
      this.log().warn({ err }, 'store event listener threw');
    }
  }
}

const MAX_STICKY = 10_000;
