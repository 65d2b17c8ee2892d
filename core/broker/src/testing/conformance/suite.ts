/**
 * The conformance suite's state and helpers bound to the store under test: `t.store` is the current
 * store (replaced by `reopen`), every helper acts on it.
 */
import { expect } from 'vitest';
import { MiB } from '@junction/protocol';
import { dlsName } from '../../contract.js';
import type { Delivery, GroupInfo, MessageInput, StationStore, StoredMessage } from '../../contract.js';
import { bytes, eventually, safeJson, type ConformanceTarget } from './util.js';

/** What every section of the suite gets: the store under test and helpers bound to it. */
export type Suite = ReturnType<typeof makeSuite>;

export function makeSuite(target: ConformanceTarget) {
  const slackMs = target.deadlineSlackMs ?? 1_000;
  const reopenTarget = target.reopen?.bind(target);
  const t = {
    store: undefined as unknown as StationStore,
    slackMs,
    reopenTarget,
    fetchNow,
    drain,
    pollFetch,
    produceOk,
    values,
    readAll,
    dlsMessages,
    waitForDeadLetters,
    groupPartition,
    keysOnPartitions,
    reopen,
  };
  return t;

  function fetchNow(station: string, group: string, maxMessages = 10_000): Promise<Delivery[]> {
    return t.store.fetch(station, group, { maxMessages, maxBytes: 64 * MiB, waitMs: 0 });
  }

  /** Fetches (and acks, unless told not to) until a fetch answers empty. */
  async function drain(station: string, group: string, opts: { ack?: boolean; batch?: number } = {}): Promise<Delivery[]> {
    const all: Delivery[] = [];
    for (;;) {
      const batch = await fetchNow(station, group, opts.batch ?? 10_000);
      if (batch.length === 0) return all;
      all.push(...batch);
      if (opts.ack !== false) {
        const out = await t.store.ack(
          station,
          group,
          batch.map((d) => d.deliveryId),
        );
        expect(out.map((o) => o.status)).toEqual(batch.map(() => 'acked'));
      }
    }
  }

  /** Fetches with short long polls until something comes, or fails after timeoutMs. */
  async function pollFetch(station: string, group: string, timeoutMs: number, maxMessages = 10_000): Promise<Delivery[]> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      const batch = await t.store.fetch(station, group, {
        maxMessages,
        maxBytes: 64 * MiB,
        waitMs: Math.max(0, Math.min(50, Math.floor(left))),
      });
      if (batch.length > 0) return batch;
      if (performance.now() >= deadline) throw new Error(`nothing delivered to ${station}/${group} within ${timeoutMs} ms`);
    }
  }

  async function produceOk(station: string, messages: readonly MessageInput[]): Promise<{ partition: number; offset: number }[]> {
    const results = await t.store.produce(station, messages);
    expect(results).toHaveLength(messages.length);
    return results.map((r, i) => {
      if (r.status !== 'stored') throw new Error(`message ${i} was not stored: ${safeJson(r)}`);
      return { partition: r.partition, offset: r.offset };
    });
  }

  function values(...vs: string[]): MessageInput[] {
    return vs.map((v) => ({ value: bytes(v) }));
  }

  async function readAll(station: string, partition = 0): Promise<StoredMessage[]> {
    return t.store.read(station, { partition, limit: 100_000 });
  }

  async function dlsMessages(station: string): Promise<StoredMessage[]> {
    return t.store.read(dlsName(station), { partition: 0, limit: 100_000 });
  }

  /** Waits until the station's dead-letter station holds `count` messages and returns them. */
  async function waitForDeadLetters(station: string, count: number, timeoutMs = slackMs + 1_000): Promise<StoredMessage[]> {
    return eventually(`${count} dead letter(s) in ${dlsName(station)}`, timeoutMs, async () => {
      const ms = await dlsMessages(station);
      return ms.length >= count ? ms : undefined;
    });
  }

  function groupPartition(info: GroupInfo, partition = 0) {
    const p = info.partitions.find((x) => x.partition === partition);
    if (!p) throw new Error(`group ${info.group} has no partition ${partition}: ${safeJson(info.partitions)}`);
    return p;
  }

  /**
   * Keys that route to `count` different partitions of a station, found by producing probe messages (one
   * per key, keys `probe-0`, `probe-1`, …): a group that must not see them starts at `latest` afterwards.
   */
  async function keysOnPartitions(station: string, count: number): Promise<{ key: string; partition: number }[]> {
    const keys = Array.from({ length: 16 * count }, (_, i) => `probe-${i}`);
    const results = await produceOk(
      station,
      keys.map((key) => ({ key, value: bytes(key) })),
    );
    const found = new Map<number, string>();
    results.forEach((r, i) => {
      if (!found.has(r.partition)) found.set(r.partition, keys[i]!);
    });
    if (found.size < count) throw new Error(`${keys.length} keys reached only ${found.size} partition(s) of ${station}`);
    return [...found].slice(0, count).map(([partition, key]) => ({ key, partition }));
  }

  async function reopen(): Promise<void> {
    if (!reopenTarget) throw new Error('target has no reopen');
    t.store = await reopenTarget(t.store);
  }
}
