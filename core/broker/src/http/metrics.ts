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
 *   junction_group_oldest_unacked_age_seconds (gauge; 0 while the group has nothing unsettled) (station, group)
 *   junction_metrics_collect_errors_total (scrapes whose store reads failed)
 *   junction_stations, junction_partitions, junction_stored_messages, junction_stored_bytes,
 *   junction_active_stations, junction_open_partitions (gauges, totals over every station, when the store has `totals`)
 *   junction_open_files (gauge, kind: open | budget | peak), junction_file_evictions_total, junction_file_over_budget_total
 *   junction_metrics_stations_capped (gauge: stations left out of the per-station series)
 *
 * Bounded with many stations: per-station series (and per-group ones) exist for at most
 * `maxStationSeries` stations (default DEFAULT_MAX_STATION_SERIES): the gauges for the first ones in name
 * order, the counters for the first ones that had traffic; the counters of the others add up under
 * station="(other)" (not a valid station name). The totals cover every station.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { GroupInfo, StationInfo, StationStore, StoreEvent, StoreTotals } from '../contract.js';
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
  totals: StoreTotals | undefined;
}

/** Stations with series of their own by default (see the file comment). */
export const DEFAULT_MAX_STATION_SERIES = 1000;
/** The station label of counters of stations beyond the cap. */
export const OTHER_STATIONS_LABEL = '(other)';

export interface BrokerMetricsOptions {
  /** Stations with per-station (and per-group) series; the rest count under "(other)" and in the totals. */
  maxStationSeries?: number | undefined;
}

/**
 * Registers the broker's metrics in `registry` and subscribes to `store`'s events. Throws (from
 * prom-client) if junction_ metrics are already registered there; call close() before registering again.
 */
export function registerBrokerMetrics(store: StationStore, registry: Registry, options: BrokerMetricsOptions = {}): BrokerMetrics {
  const registers = [registry];
  const cap = Math.max(0, Math.floor(options.maxStationSeries ?? DEFAULT_MAX_STATION_SERIES));
  // Counters: the first `cap` stations seen keep a label of their own.
  const labelled = new Set<string>();
  const label = (station: string): string => {
    if (labelled.has(station)) return station;
    if (labelled.size < cap) {
      labelled.add(station);
      return station;
    }
    return OTHER_STATIONS_LABEL;
  };
  // Every junction_ series is registered through these, which keep its name for close().
  const names: string[] = [];
  const counter = (name: string, help: string, labelNames: string[]): Counter => {
    names.push(name);
    return new Counter({ name, help, labelNames, registers });
  };
  const messagesIn = counter('junction_messages_in_total', 'Messages stored by produce', ['station']);
  const bytesIn = counter('junction_bytes_in_total', 'Bytes stored by produce', ['station']);
  const messagesOut = counter('junction_messages_out_total', 'Messages delivered to consumer groups (redeliveries included)', [
    'station',
    'group',
  ]);
  const bytesOut = counter('junction_bytes_out_total', 'Bytes delivered to consumer groups', ['station', 'group']);
  const redeliveries = counter('junction_redeliveries_total', 'Deliveries that were redeliveries', ['station', 'group']);
  const acked = counter('junction_acked_total', 'Messages acknowledged by consumer groups', ['station', 'group']);
  const deadLettered = counter('junction_dead_lettered_total', 'Messages moved to the dead-letter station', ['station', 'group']);
  const retentionLost = counter(
    'junction_group_retention_lost_total',
    'Messages retention removed before the consumer group settled them (never delivered, or delivered and not acknowledged)',
    ['station', 'group'],
  );
  const corrupt = counter('junction_corrupt_ranges_total', 'Damaged log ranges found (each once, when found) and skipped', [
    'station',
    'partition',
  ]);
  const lost = counter('junction_lost_messages_total', 'Messages lost in the damaged ranges found', ['station', 'partition']);
  const repairs = counter(
    'junction_metadata_repairs_total',
    'Metadata files found damaged, by outcome (previous-copy, rebuilt, reset, lost)',
    ['station', 'file', 'outcome'],
  );
  const dedupEvicted = counter(
    'junction_dedup_evicted_total',
    "msgIds that left the dedup window early because the station's index was at its bound (dedupMaxIds): a later copy is stored again",
    ['station'],
  );
  names.push('junction_metrics_collect_errors_total', 'junction_produce_duration_seconds', 'junction_fsync_duration_seconds');
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
  const fsyncDuration = new Histogram({
    name: 'junction_fsync_duration_seconds',
    help: 'Duration of log fsyncs',
    buckets: FSYNC_BUCKETS,
    registers,
  });

  // One store read per scrape, shared by every gauge: prom-client collects all metrics concurrently.
  let inFlight: Promise<Snapshot | undefined> | undefined;
  const snapshot = (): Promise<Snapshot | undefined> => {
    inFlight ??= (async () => {
      try {
        const stations = cap > 0 ? await store.listStations({ limit: cap }) : [];
        const groups = (await Promise.all(stations.map((s) => store.listGroups(s.name).catch(() => [] as GroupInfo[])))).flat();
        const totals = store.totals ? await store.totals() : undefined;
        return { stations, groups, totals };
      } catch {
        collectErrors.inc();
        return undefined;
      }
    })().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  /** A gauge set at scrape time from this scrape's store read (reset first: series of gone stations go). */
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, snap: Snapshot | undefined) => void): void => {
    names.push(name);
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        const snap = await snapshot();
        this.reset();
        fill(this, snap);
      },
    });
  };
  /** Per station; `value` undefined: no series for that station. */
  const perStation = (name: string, help: string, value: (s: StationInfo) => number | undefined): void =>
    gauge(name, help, ['station'], (g, snap) => {
      for (const s of snap?.stations ?? []) {
        const v = value(s);
        if (v !== undefined) g.set({ station: s.name }, v);
      }
    });
  /** Per group and partition. */
  const perGroupPartition = (name: string, help: string, value: (p: GroupInfo['partitions'][number]) => number): void =>
    gauge(name, help, ['station', 'group', 'partition'], (g, snap) => {
      for (const gi of snap?.groups ?? [])
        for (const p of gi.partitions) g.set({ station: gi.station, group: gi.group, partition: String(p.partition) }, value(p));
    });
  /** Over every station (when the store has `totals`). */
  const total = (name: string, help: string, pick: (t: StoreTotals) => number): void =>
    gauge(name, help, [], (g, snap) => {
      if (snap?.totals) g.set(pick(snap.totals));
    });

  perStation('junction_station_messages', 'Messages stored in the station (all partitions)', (s) => s.messages);
  perStation('junction_station_bytes', 'Bytes stored in the station (all partitions)', (s) => s.bytes);
  perStation(
    'junction_station_damaged_ranges',
    'Damaged ranges still retained in the station (found by this run or an earlier one)',
    (s) => s.damage?.length,
  );
  perStation(
    'junction_station_degraded',
    '1 while the station is degraded (damage or repaired metadata), 2 while it is damaged (cannot serve), else 0',
    (s) => (s.health ? (s.health.status === 'damaged' ? 2 : s.health.status === 'degraded' ? 1 : 0) : undefined),
  );
  perGroupPartition('junction_group_lag', 'Messages stored but not yet acknowledged by the group', (p) => p.lag);
  perGroupPartition('junction_group_pending', 'Deliveries waiting for ack, nack or their deadline', (p) => p.pending);
  gauge(
    'junction_group_oldest_unacked_age_seconds',
    'Seconds since the produce time of the oldest message the group has not settled (delivered and not acked, or not yet delivered): consumer lag in time; 0 while nothing is unsettled',
    ['station', 'group'],
    (g, snap) => {
      for (const gi of snap?.groups ?? []) g.set({ station: gi.station, group: gi.group }, gi.oldestUnackedAgeSeconds ?? 0);
    },
  );
  total('junction_stations', 'Stations (dead-letter stations included)', (t) => t.stations);
  total('junction_partitions', 'Partitions of all stations', (t) => t.partitions);
  total('junction_stored_messages', 'Messages stored in all stations', (t) => t.messages);
  total('junction_stored_bytes', 'Bytes stored in all stations', (t) => t.bytes);
  total('junction_active_stations', 'Stations with recent work (what the background pass visits)', (t) => t.activeStations);
  total('junction_open_partitions', 'Partition logs open now (idle ones are closed and reopened on use)', (t) => t.openPartitions ?? 0);
  total(
    'junction_file_evictions_total',
    'Idle partition and group files closed by the open-file budget',
    (t) => t.openFiles?.evictions ?? 0,
  );
  total(
    'junction_file_over_budget_total',
    'Files opened while every open file was in use (the budget was exceeded)',
    (t) => t.openFiles?.overBudget ?? 0,
  );
  gauge(
    'junction_open_files',
    'Partition and group files open under the open-file budget (kind: open, budget, peak)',
    ['kind'],
    (g, snap) => {
      const f = snap?.totals?.openFiles;
      if (f) for (const kind of ['open', 'budget', 'peak'] as const) g.set({ kind }, f[kind]);
    },
  );
  total('junction_metrics_stations_capped', 'Stations without per-station series (beyond maxStationSeries)', (t) =>
    Math.max(0, t.stations - cap),
  );

  const onEvent = (e: StoreEvent): void => {
    switch (e.type) {
      case 'produced':
        messagesIn.inc({ station: label(e.station) }, e.messages);
        bytesIn.inc({ station: label(e.station) }, e.bytes);
        break;
      case 'delivered': {
        const labels = { station: label(e.station), group: e.group };
        messagesOut.inc(labels, e.messages);
        bytesOut.inc(labels, e.bytes);
        // inc by 0 too, so the series exists (at 0) from a group's first delivery on.
        redeliveries.inc(labels, e.redeliveries);
        break;
      }
      case 'acked':
        acked.inc({ station: label(e.station), group: e.group }, e.messages);
        break;
      case 'dead-lettered':
        deadLettered.inc({ station: label(e.station), group: e.group }, e.messages);
        break;
      case 'fsync':
        fsyncDuration.observe(e.seconds);
        break;
      case 'retention-lost':
        retentionLost.inc({ station: label(e.station), group: e.group }, e.messages);
        break;
      case 'corruption': {
        const labels = { station: label(e.station), partition: String(e.partition) };
        corrupt.inc(labels);
        lost.inc(labels, e.messages);
        break;
      }
      case 'metadata-repair':
        repairs.inc({ station: label(e.station), file: e.file, outcome: e.outcome });
        break;
      case 'dedup-evicted':
        dedupEvicted.inc({ station: e.station }, e.ids);
        break;
    }
  };
  const unsubscribe = store.onEvent(onEvent);

  let closed = false;
  return {
    observeProduce(station, seconds) {
      if (!closed) produceDuration.observe({ station: label(station) }, seconds);
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
