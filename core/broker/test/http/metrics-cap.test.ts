/**
 * /metrics stays bounded with many stations: per-station series for at most maxStationSeries stations
 * (gauges: the first in name order; counters: the first with traffic, the rest under "(other)"), and
 * totals over every station.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedStore } from '../../src/embedded/store.js';
import { OTHER_STATIONS_LABEL, registerBrokerMetrics } from '../../src/http/index.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const series = (text: string, name: string): string[] =>
  text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
const stationsIn = (lines: string[]): Set<string> =>
  new Set(lines.map((l) => /station="([^"]*)"/.exec(l)?.[1]).filter((s): s is string => s !== undefined));

describe('metrics with many stations', () => {
  it('caps per-station series and keeps totals over every station', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'junction-metrics-cap-'));
    dirs.push(dir);
    const store = new EmbeddedStore({ dataDir: dir, fsync: 'never' });
    await store.open();
    const registry = new Registry();
    const metrics = registerBrokerMetrics(store, registry, { maxStationSeries: 5 });
    try {
      for (let i = 0; i < 30; i++) {
        await store.createStation(`c${String(i).padStart(2, '0')}`, { partitions: 2 });
        await store.produce(`c${String(i).padStart(2, '0')}`, [
          { value: Buffer.from('ab') },
          { value: Buffer.from('cd') },
          { value: Buffer.from('ef') },
        ]);
      }
      const text = await registry.metrics();
      const gauges = stationsIn(series(text, 'junction_station_messages'));
      expect(gauges).toEqual(new Set(['c00', 'c00.dls', 'c01', 'c01.dls', 'c02']));
      const counters = series(text, 'junction_messages_in_total');
      expect(stationsIn(counters).size).toBe(6);
      expect(stationsIn(counters).has(OTHER_STATIONS_LABEL)).toBe(true);
      const sum = counters.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
      expect(sum).toBe(90);
      expect(series(text, 'junction_stations')).toEqual(['junction_stations 60']);
      expect(series(text, 'junction_partitions')).toEqual(['junction_partitions 90']);
      expect(series(text, 'junction_stored_messages')).toEqual(['junction_stored_messages 90']);
      expect(series(text, 'junction_metrics_stations_capped')).toEqual(['junction_metrics_stations_capped 55']);
      expect(series(text, 'junction_open_files').length).toBe(3);
      expect((await store.healthSummary(10)).degraded).toBe(0);
    } finally {
      metrics.close();
      await store.close();
    }
  });
});
