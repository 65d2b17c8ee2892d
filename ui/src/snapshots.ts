/**
 * What the dashboard's live streams carry: one snapshot per view, computed by the server from the
 * StationStore and the connector runtime. Every function here is bounded: it reads at most
 * MAX_STATIONS_SCANNED stations and MAX_GROUPS_SCANNED groups per call, whatever exists.
 */
import type { GroupInfo, StationInfo, StationStore } from '@junction/broker';
import type { ConnectorStatus } from '@junction/connect';
import { isSystemStation } from '@junction/protocol';

/** What the live routes need of the connector runtime (ConnectRuntime has it). */
export interface ConnectorsSource {
  names(): string[];
  status(name: string): Promise<ConnectorStatus>;
}

/** Most stations one snapshot reads (the overview's totals say when more exist). */
export const MAX_STATIONS_SCANNED = 100_000;
/** Most consumer groups one overview snapshot reads (for consume rates and lag alerts). */
export const MAX_GROUPS_SCANNED = 500;
/** Most connectors one snapshot reads. */
export const MAX_CONNECTORS_SCANNED = 500;

/** Every station, a page at a time, at most `max`. */
export async function allStations(store: StationStore, max = MAX_STATIONS_SCANNED): Promise<StationInfo[]> {
  const out: StationInfo[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.listStations({ limit: 1000, ...(after !== undefined && { after }) });
    out.push(...page);
    if (page.length < 1000 || out.length >= max) break;
    after = page[page.length - 1]!.name;
  }
  return out.slice(0, max);
}

/** Offsets ever given out (Σ nextOffset − 1): grows with every produce, whatever retention removes. */
export function producedTotal(s: StationInfo): number {
  return s.partitions.reduce((n, p) => n + p.nextOffset - 1, 0);
}

/** Offsets a group has settled (Σ ackFloor − 1 over its partitions, ackFloor being the first unsettled). */
export function settledTotal(g: GroupInfo): number {
  return g.partitions.reduce((n, p) => n + Math.max(0, p.ackFloor - 1), 0);
}

export interface Alert {
  kind: 'task-failed' | 'dls-growing' | 'group-behind' | 'station-health';
  /** What the alert is about: a station, `station/group`, or a connector name. */
  subject: string;
  message: string;
}

export interface ConnectorRow {
  name: string;
  type: string;
  state: string;
  tasks: { id: number; state: string; trace?: string | undefined; lastError?: { code: string; message: string; at: number } | undefined }[];
  lag?: number | undefined;
  throughput: { msgsPerSec: number; bytesPerSec: number };
  lastError?: { code: string; message: string; at: number } | undefined;
  /** Produce → landed of the last message a sink landed; null until one landed (and for sources). */
  freshness: ConnectorStatus['freshness'] | null;
}

export interface OverviewSnapshot {
  at: number;
  stations: number;
  messages: number;
  bytes: number;
  deadLetters: number;
  /** Messages per second produced / settled by groups since the previous snapshot (0 on the first). */
  produceRate: number;
  consumeRate: number;
  /** Whether the station or group scan stopped at its bound. */
  truncated: boolean;
  connectors?: { total: number; byState: Record<string, number>; rows: ConnectorRow[] } | undefined;
  alerts: Alert[];
}

export interface StationSnapshot {
  at: number;
  station: StationInfo;
  /** The station's dead-letter station's message count (0 when it has none). */
  deadLetters: number;
  groups: GroupInfo[];
  produceRate: number;
  /** Per group: messages settled per second since the previous snapshot. */
  consumeRates: Record<string, number>;
}

export interface ConnectorsSnapshot {
  at: number;
  connectors: ConnectorRow[];
  truncated: boolean;
}

function connectorRow(s: ConnectorStatus): ConnectorRow {
  return {
    name: s.name,
    type: s.type,
    state: s.connector.state,
    tasks: s.tasks.map((t) => ({
      id: t.id,
      state: t.state,
      ...(t.trace !== undefined && { trace: t.trace }),
      ...(t.lastError && { lastError: t.lastError }),
    })),
    ...(s.lag !== undefined && { lag: s.lag }),
    throughput: s.throughput,
    ...(s.lastError && { lastError: s.lastError }),
    freshness: s.freshness ?? null,
  };
}

export async function connectorRows(source: ConnectorsSource): Promise<{ rows: ConnectorRow[]; truncated: boolean }> {
  const names = source.names();
  const rows: ConnectorRow[] = [];
  for (const name of names.slice(0, MAX_CONNECTORS_SCANNED)) {
    try {
      rows.push(connectorRow(await source.status(name)));
    } catch {
      // deleted meanwhile
    }
  }
  return { rows, truncated: names.length > MAX_CONNECTORS_SCANNED };
}

const rate = (now: number, before: number | undefined, seconds: number): number =>
  before === undefined || seconds <= 0 ? 0 : Math.max(0, (now - before) / seconds);

/**
 * Computes overview snapshots; keeps what the previous one saw (totals, DLS sizes, lags) to derive
 * rates and alerts. One instance per stream key, shared by every subscriber of it.
 */
export class OverviewSampler {
  private prev: { at: number; produced: number; settled: number; dls: Map<string, number>; lag: Map<string, number[]> } | undefined;

  constructor(
    private readonly store: StationStore,
    private readonly connectors: ConnectorsSource | undefined,
  ) {}

  async sample(): Promise<OverviewSnapshot> {
    const at = Date.now();
    const all = await allStations(this.store);
    const alerts: Alert[] = [];
    let stations = 0;
    let messages = 0;
    let bytes = 0;
    let deadLetters = 0;
    let produced = 0;
    const dls = new Map<string, number>();
    const groupRefs: [string, string][] = [];
    for (const s of all) {
      if (isSystemStation(s.name)) continue;
      if (s.deadLetterOf !== undefined) {
        deadLetters += s.messages;
        dls.set(s.deadLetterOf, s.messages);
        continue;
      }
      stations++;
      messages += s.messages;
      bytes += s.bytes;
      produced += producedTotal(s);
      if (s.health && s.health.status !== 'ok')
        alerts.push({
          kind: 'station-health',
          subject: s.name,
          message: `station ${s.name} is ${s.health.status}: ${s.health.reasons[0] ?? ''}`,
        });
      for (const g of s.groups) if (groupRefs.length < MAX_GROUPS_SCANNED) groupRefs.push([s.name, g]);
    }
    const seconds = this.prev ? (at - this.prev.at) / 1000 : 0;
    for (const [station, n] of dls) {
      const before = this.prev?.dls.get(station);
      if (n > 0 && (before === undefined ? false : n > before))
        alerts.push({ kind: 'dls-growing', subject: station, message: `station ${station}: ${n} dead letters (+${n - before!})` });
    }
    let settled = 0;
    const lag = new Map<string, number[]>();
    for (const [station, group] of groupRefs) {
      let g: GroupInfo;
      try {
        g = await this.store.getGroup(station, group);
      } catch {
        continue;
      }
      settled += settledTotal(g);
      const key = `${station}/${group}`;
      // The last three lags: a group falls behind when its lag grew at each of them.
      const history = [...(this.prev?.lag.get(key) ?? []), g.lag].slice(-3);
      lag.set(key, history);
      if (history.length === 3 && history[0]! < history[1]! && history[1]! < history[2]!) {
        alerts.push({ kind: 'group-behind', subject: key, message: `group ${group} on ${station} is falling behind: lag ${g.lag}` });
      }
    }
    let connectors: OverviewSnapshot['connectors'];
    if (this.connectors) {
      const { rows } = await connectorRows(this.connectors);
      const byState: Record<string, number> = {};
      for (const r of rows) {
        byState[r.state] = (byState[r.state] ?? 0) + 1;
        for (const t of r.tasks) {
          if (t.state === 'FAILED')
            alerts.push({
              kind: 'task-failed',
              subject: r.name,
              message: `connector ${r.name} task ${t.id} failed${t.lastError ? `: ${t.lastError.code} ${t.lastError.message}` : ''}`,
            });
        }
      }
      connectors = { total: this.connectors.names().length, byState, rows };
    }
    const snap: OverviewSnapshot = {
      at,
      stations,
      messages,
      bytes,
      deadLetters,
      produceRate: rate(produced, this.prev?.produced, seconds),
      consumeRate: rate(settled, this.prev?.settled, seconds),
      truncated: all.length >= MAX_STATIONS_SCANNED || groupRefs.length >= MAX_GROUPS_SCANNED,
      ...(connectors && { connectors }),
      alerts,
    };
    this.prev = { at, produced, settled, dls, lag };
    return snap;
  }
}

/** Snapshots of one station: its info, its groups (every one, at most MAX_GROUPS_SCANNED), its DLS size, rates. */
export class StationSampler {
  private prev: { at: number; produced: number; settled: Map<string, number> } | undefined;

  constructor(
    private readonly store: StationStore,
    private readonly name: string,
  ) {}

  async sample(): Promise<StationSnapshot> {
    const at = Date.now();
    const station = await this.store.getStation(this.name);
    let deadLetters = 0;
    try {
      deadLetters = (await this.store.getStation(`${this.name}.dls`)).messages;
    } catch {
      // no DLS yet
    }
    const groups = await this.store.listGroups(this.name, { limit: MAX_GROUPS_SCANNED });
    const seconds = this.prev ? (at - this.prev.at) / 1000 : 0;
    const produced = producedTotal(station);
    const settled = new Map(groups.map((g) => [g.group, settledTotal(g)]));
    const consumeRates: Record<string, number> = {};
    for (const [g, n] of settled) consumeRates[g] = rate(n, this.prev?.settled.get(g), seconds);
    const snap: StationSnapshot = {
      at,
      station,
      deadLetters,
      groups,
      produceRate: rate(produced, this.prev?.produced, seconds),
      consumeRates,
    };
    this.prev = { at, produced, settled };
    return snap;
  }
}

export class ConnectorsSampler {
  constructor(private readonly connectors: ConnectorsSource) {}

  async sample(): Promise<ConnectorsSnapshot> {
    const { rows, truncated } = await connectorRows(this.connectors);
    return { at: Date.now(), connectors: rows, truncated };
  }
}
