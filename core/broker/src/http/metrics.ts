/**
 * The broker's Prometheus metrics. Counters and the fsync histogram follow the store's events
 * (StationStore.onEvent); produce latency is observed by the produce route (pass the object
 * registerBrokerMetrics returns as brokerRoutes' `metrics` option); gauges (stored messages and bytes,
 * lag and pending) are computed at scrape time from listStations / listGroups, so they are never stale
 * and cost nothing between scrapes.
 *
 * Damage found while the store opened happened before this subscribed: the store replays those events
 * (StationStore.onEvent), so they are counted too.
 *
 * Series (labels):
 *   junction_messages_in_total, junction_bytes_in_total                    (station)
 *   junction_messages_out_total, junction_bytes_out_total                  (station, group)
 *   junction_redeliveries_total, junction_acked_total, junction_dead_lettered_total (station, group)
 *   junction_corrupt_ranges_total, junction_lost_messages_total            (station, partition)
 *   junction_metadata_repairs_total                                        (station, file, outcome)
 *   junction_dedup_evicted_total (msgIds that left a full dedup index early) (station)
 *   junction_station_damaged_ranges, junction_station_degraded (gauges)     (station)
 *   junction_produce_duration_seconds (histogram)                          (station)
 *   junction_fsync_duration_seconds (histogram)
 *   junction_station_messages, junction_station_bytes (gauges)             (station)
 *   junction_group_lag, junction_group_pending (gauges)                    (station, group, partition)
 *   junction_metrics_collect_errors_total (scrapes whose store reads failed)
 */
import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { GroupInfo, StationInfo, StationStore, StoreEvent } from '../contract.js';
import type { ProduceObserver } from './routes.js';

/** What registerBrokerMetrics returns: the produce observer for brokerRoutes, and close(). */
export interface BrokerMetrics extends ProduceObserver {
  /** Unsubscribes from the store and removes every junction_ metric from the registry. Idempotent. */
  close(): void;
}

const PRODUCE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const FSYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

interface Snapshot {
  stations: StationInfo[];
  groups: GroupInfo[];
}

/**
 * Registers the broker's metrics in `registry` and subscribes to `store`'s events. Throws (from
 * prom-client) if junction_ metrics are already registered there; call close() before registering again.
 */
export function registerBrokerMetrics(store: StationStore, registry: Registry): BrokerMetrics {
  const registers = [registry];
  const messagesIn = new Counter({ name: 'junction_messages_in_total', help: 'Messages stored by produce', labelNames: ['station'], registers });
  const bytesIn = new Counter({ name: 'junction_bytes_in_total', help: 'Bytes stored by produce', labelNames: ['station'], registers });
  const messagesOut = new Counter({
    name: 'junction_messages_out_total',
    help: 'Messages delivered to consumer groups (redeliveries included)',
    labelNames: ['station', 'group'],
    registers,
  });
  const bytesOut = new Counter({ name: 'junction_bytes_out_total', help: 'Bytes delivered to consumer groups', labelNames: ['station', 'group'], registers });
  const redeliveries = new Counter({ name: 'junction_redeliveries_total', help: 'Deliveries that were redeliveries', labelNames: ['station', 'group'], registers });
  const acked = new Counter({ name: 'junction_acked_total', help: 'Messages acknowledged by consumer groups', labelNames: ['station', 'group'], registers });
  const deadLettered = new Counter({
    name: 'junction_dead_lettered_total',
    help: 'Messages moved to the dead-letter station',
    labelNames: ['station', 'group'],
    registers,
  });
  const retentionLost = new Counter({
    name: 'junction_group_retention_lost_total',
    help: 'Messages retention removed before the consumer group settled them (never delivered, or delivered and not acknowledged)',
    labelNames: ['station', 'group'],
    registers,
  });
  const corrupt = new Counter({
    name: 'junction_corrupt_ranges_total',
    help: 'Damaged log ranges found (each once, when found) and skipped',
    labelNames: ['station', 'partition'],
    registers,
  });
  const lost = new Counter({
    name: 'junction_lost_messages_total',
    help: 'Messages lost in the damaged ranges found',
    labelNames: ['station', 'partition'],
    registers,
  });
  const repairs = new Counter({
    name: 'junction_metadata_repairs_total',
    help: 'Metadata files found damaged, by outcome (previous-copy, rebuilt, reset, lost)',
    labelNames: ['station', 'file', 'outcome'],
    registers,
  });
  const dedupEvicted = new Counter({
    name: 'junction_dedup_evicted_total',
    help: 'msgIds that left the dedup window early because the station\'s index was at its bound (dedupMaxIds): a later copy is stored again',
    labelNames: ['station'],
    registers,
  });
  const collectErrors = new Counter({
    name: 'junction_metrics_collect_errors_total',
    help: 'Scrapes whose store reads failed',
    registers,
    // Waits for this scrape's store read, so a failure shows in the same scrape.
    async collect() {
      await snapshot();
    },
  });
  const produceDuration = new Histogram({
    name: 'junction_produce_duration_seconds',
    help: 'Time from a produce request reaching the store to its messages being durable',
    labelNames: ['station'],
    buckets: PRODUCE_BUCKETS,
    registers,
  });
  const fsyncDuration = new Histogram({ name: 'junction_fsync_duration_seconds', help: 'Duration of log fsyncs', buckets: FSYNC_BUCKETS, registers });

  // One store read per scrape, shared by every gauge: prom-client collects all metrics concurrently.
  let inFlight: Promise<Snapshot | undefined> | undefined;
  const snapshot = (): Promise<Snapshot | undefined> => {
    inFlight ??= (async () => {
      try {
        const stations = await store.listStations();
        const groups = (await Promise.all(stations.map((s) => store.listGroups(s.name).catch(() => [] as GroupInfo[])))).flat();
        return { stations, groups };
      } catch {
        collectErrors.inc();
        return undefined;
      }
    })().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  new Gauge({
    name: 'junction_station_messages',
    help: 'Messages stored in the station (all partitions)',
    labelNames: ['station'],
    registers,
    async collect() {
      const snap = await snapshot();
      this.reset();
      for (const s of snap?.stations ?? []) this.set({ station: s.name }, s.messages);
    },
  });
  new Gauge({
    name: 'junction_station_bytes',
    help: 'Bytes stored in the station (all partitions)',
    labelNames: ['station'],
    registers,
    async collect() {
      const snap = await snapshot();
      this.reset();
      for (const s of snap?.stations ?? []) this.set({ station: s.name }, s.bytes);
    },
  });
  new Gauge({
    name: 'junction_station_damaged_ranges',
    help: 'Damaged ranges still retained in the station (found by this run or an earlier one)',
    labelNames: ['station'],
    registers,
    async collect() {
      const snap = await snapshot();
      this.reset();
      for (const s of snap?.stations ?? []) if (s.damage) this.set({ station: s.name }, s.damage.length);
    },
  });
  new Gauge({
    name: 'junction_station_degraded',
    help: '1 while the station is degraded (damage or repaired metadata), 2 while it is damaged (cannot serve), else 0',
    labelNames: ['station'],
    registers,
    async collect() {
      const snap = await snapshot();
      this.reset();
      for (const s of snap?.stations ?? []) if (s.health) this.set({ station: s.name }, s.health.status === 'damaged' ? 2 : s.health.status === 'degraded' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'junction_group_lag',
    help: 'Messages stored but not yet acknowledged by the group',
    labelNames: ['station', 'group', 'partition'],
    registers,
    async collect() {
      const snap = await snapshot();
      this.reset();
      for (const g of snap?.groups ?? []) {
        for (const p of g.partitions) this.set({ station: g.station, group: g.group, partition: String(p.partition) }, p.lag);
      }
    },
  });
  new Gauge({
    name: 'junction_group_pending',
    help: 'Deliveries waiting for ack, nack or their deadline',
    labelNames: ['station', 'group', 'partition'],
    registers,
    async collect() {
      const snap = await snapshot();
      this.reset();
      for (const g of snap?.groups ?? []) {
        for (const p of g.partitions) this.set({ station: g.station, group: g.group, partition: String(p.partition) }, p.pending);
      }
    },
  });

  const onEvent = (e: StoreEvent): void => {
    switch (e.type) {
      case 'produced':
        messagesIn.inc({ station: e.station }, e.messages);
        bytesIn.inc({ station: e.station }, e.bytes);
        break;
      case 'delivered': {
        const labels = { station: e.station, group: e.group };
        messagesOut.inc(labels, e.messages);
        bytesOut.inc(labels, e.bytes);
        // inc by 0 too, so the series exists (at 0) from a group's first delivery on.
        redeliveries.inc(labels, e.redeliveries);
        break;
      }
      case 'acked':
        acked.inc({ station: e.station, group: e.group }, e.messages);
        break;
      case 'dead-lettered':
        deadLettered.inc({ station: e.station, group: e.group }, e.messages);
        break;
      case 'fsync':
        fsyncDuration.observe(e.seconds);
        break;
      case 'retention-lost':
        retentionLost.inc({ station: e.station, group: e.group }, e.messages);
        break;
      case 'corruption': {
        const labels = { station: e.station, partition: String(e.partition) };
        corrupt.inc(labels);
        lost.inc(labels, e.messages);
        break;
      }
      case 'metadata-repair':
        repairs.inc({ station: e.station, file: e.file, outcome: e.outcome });
        break;
      case 'dedup-evicted':
        dedupEvicted.inc({ station: e.station }, e.ids);
        break;
    }
  };
  const unsubscribe = store.onEvent(onEvent);

  const names = [
    'junction_messages_in_total',
    'junction_bytes_in_total',
    'junction_messages_out_total',
    'junction_bytes_out_total',
    'junction_redeliveries_total',
    'junction_acked_total',
    'junction_dead_lettered_total',
    'junction_group_retention_lost_total',
    'junction_corrupt_ranges_total',
    'junction_lost_messages_total',
    'junction_metadata_repairs_total',
    'junction_dedup_evicted_total',
    'junction_station_damaged_ranges',
    'junction_station_degraded',
    'junction_metrics_collect_errors_total',
    'junction_produce_duration_seconds',
    'junction_fsync_duration_seconds',
    'junction_station_messages',
    'junction_station_bytes',
    'junction_group_lag',
    'junction_group_pending',
  ];
  let closed = false;
  return {
    observeProduce(station, seconds) {
      if (!closed) produceDuration.observe({ station }, seconds);
    },
    close() {
      if (closed) return;
      closed = true;
      unsubscribe();
      for (const n of names) registry.removeSingleMetric(n);
    },
  };
}

/** `GET /metrics` in the Prometheus text format of `registry`. core/server mounts it (no auth, like /health). */
export const metricsRoutes: FastifyPluginAsync<{ registry: Registry }> = async (app, { registry }) => {
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
};
