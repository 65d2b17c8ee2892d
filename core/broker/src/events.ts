/**
 * The listeners of a store's events (StationStore.onEvent), shared by the engines: a listener that
 * throws is logged and never breaks the operation that emitted.
 */
import type { Logger } from 'pino';
import type { StoreEvent } from './contract.js';

export class StoreEventHub {
  private readonly listeners = new Set<(e: StoreEvent) => void>();

  constructor(private readonly log: () => Logger) {}

  /** Adds a listener; returns its removal. */
  on(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(e: StoreEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.log().warn({ err }, 'store event listener threw');
      }
    }
  }
}
