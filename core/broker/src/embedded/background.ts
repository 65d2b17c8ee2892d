/**
 * The embedded store's background pass (every tickMs): ack deadlines, interval fsyncs of group journals,
 * retention — for the stations with work, not for every station (see tick).
 */
import type { Logger } from 'pino';
import type { StationRt } from './station.js';

/**
 * Idle stations whose age-based retention the background pass checks per second (stations with work are
 * checked every second): an idle station's retention runs at least every ceil(stations / this) seconds.
 */
const IDLE_RETENTION_PER_SECOND = 2000;

export class BackgroundPass {
  private ticking = false;
  private lastRetention = 0;
  /** Where the idle-retention sweep is in `stations`. */
  private sweep: Iterator<StationRt> | undefined;

  constructor(
    private readonly stations: Map<string, StationRt>,
    /** Stations with work since the last pass, or timers: what a pass visits (the store adds to it). */
    private readonly active: Set<StationRt>,
    private readonly log: Logger,
    private readonly isOpen: () => boolean,
  ) {}

  /**
   * The background pass: ack deadlines, interval fsyncs of group journals, retention. It visits the
   * stations with work (`active`: touched by a request since, or with a deadline or an unsynced journal),
   * not every station; a station leaves the set once a pass found nothing left to do. Age-based retention
   * of idle stations is checked by a sweep of IDLE_RETENTION_PER_SECOND stations per second.
   */
  async tick(): Promise<void> {
    if (this.ticking || !this.isOpen()) return;
    this.ticking = true;
    try {
      const now = Date.now();
      const retention = now - this.lastRetention >= 1000;
      if (retention) this.lastRetention = now;
      for (const st of [...this.active]) {
        let busy = false;
        for (const g of st.groups.values()) {
          if (g.nextDue() <= now) g.processDue(now);
          const iv = st.syncIntervalMs();
          if (iv > 0 && now - g.lastSync >= iv) await g.syncIfDirty();
          if (g.nextDue() < Infinity || (iv > 0 && g.unsynced)) busy = true;
        }
        if (retention) {
          await this.retain(st, now);
          // Touched after this pass began: it stays for the next one.
          if (!busy && st.touchedAt < now) this.active.delete(st);
        }
      }
      if (retention) {
        for (let i = 0; i < IDLE_RETENTION_PER_SECOND && this.stations.size > 0; i++) {
          let r = this.sweep?.next();
          if (!r || r.done) {
            this.sweep = this.stations.values();
            r = this.sweep.next();
            if (r.done) break;
          }
          if (!this.active.has(r.value) && r.value.config.retention.maxAgeMs !== undefined) await this.retain(r.value, now);
        }
      }
    } catch (err) {
      this.log.error({ err }, 'background work failed');
    } finally {
      this.ticking = false;
    }
  }

  async retain(st: StationRt, now: number): Promise<void> {
    try {
      await st.applyRetention(now);
    } catch (err) {
      this.log.error({ err, station: st.name }, 'retention failed');
    }
  }
}
