import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { EmbeddedStore } from '@junction/broker';
import { applyStations, parseConfigText } from '../src/index.js';
import type { StationDeclaration } from '../src/index.js';

const logger = pino({ level: 'silent' });
let dir: string;
let store: EmbeddedStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-stations-'));
  store = new EmbeddedStore({ dataDir: dir, logger });
  await store.open();
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Declarations as the configuration file gives them (every default applied). */
function declare(yaml: string): StationDeclaration[] {
  return (parseConfigText(yaml).stations ?? []) as StationDeclaration[];
}

describe('applyStations', () => {
  it('creates the missing stations and leaves undeclared ones alone', async () => {
    await store.createStation('manual', { partitions: 2 });
    const result = await applyStations(store, declare('stations:\n  - name: events\n    partitions: 3\n  - name: audit\n'), logger);
    expect(result.created).toEqual(['events', 'audit']);
    expect(result.errors).toEqual([]);
    expect((await store.getStation('events')).config.partitions).toBe(3);
    expect((await store.getStation('audit')).config.partitions).toBe(1);
    expect((await store.getStation('manual')).config.partitions).toBe(2);

    const again = await applyStations(store, declare('stations:\n  - name: events\n    partitions: 3\n  - name: audit\n'), logger);
    expect(again).toEqual({ created: [], updated: [], unchanged: ['events', 'audit'], errors: [] });
  });

  it('updates the mutable options that differ', async () => {
    await store.createStation('events', { partitions: 3, retention: { maxAgeMs: 1000 }, dedupWindowMs: 5 });
    const desired = declare(
      [
        'stations:',
        '  - name: events',
        '    partitions: 3',
        '    retention: { maxMessages: 100 }',
        '    dedupWindowMs: 5',
        '    maxMessageBytes: 1024',
        '    deadLetter: { maxDeliveries: 2 }',
        '    fsync: never',
        '    dedupMaxIds: 50000',
      ].join('\n'),
    );
    const result = await applyStations(store, desired, logger);
    expect(result.errors).toEqual([]);
    expect(result.updated).toHaveLength(1);
    expect(result.updated[0]?.station).toBe('events');
    expect(result.updated[0]?.options.sort()).toEqual(['deadLetter', 'dedupMaxIds', 'fsync', 'maxMessageBytes', 'retention']);
    expect((await store.getStation('events')).dedup?.maxIds).toBe(50_000);
    const config = (await store.getStation('events')).config;
    expect(config.retention).toEqual({ maxMessages: 100 });
    expect(config.maxMessageBytes).toBe(1024);
    expect(config.deadLetter.maxDeliveries).toBe(2);
    expect(config.fsync).toBe('never');
    expect(config.dedupWindowMs).toBe(5);
  });

  it('reports immutable differences as errors and does not touch that station', async () => {
    await store.createStation('events', { partitions: 2, storage: 'file', maxMessageBytes: 2048 });
    await store.createStation('other', {});
    const result = await applyStations(
      store,
      declare(
        [
          'stations:',
          '  - name: events',
          '    partitions: 4',
          '    storage: memory',
          '    maxMessageBytes: 4096',
          '  - name: other',
          '    dedupWindowMs: 0',
        ].join('\n'),
      ),
      logger,
    );
    expect(result.errors.map((e) => [e.station, e.code, e.option])).toEqual([
      ['events', 'CONFIG_IMMUTABLE', 'partitions'],
      ['events', 'CONFIG_IMMUTABLE', 'storage'],
    ]);
    const events = (await store.getStation('events')).config;
    expect(events).toMatchObject({ partitions: 2, storage: 'file', maxMessageBytes: 2048 });
    // the other stations are still applied
    expect(result.updated).toEqual([{ station: 'other', options: ['dedupWindowMs'] }]);
    expect((await store.getStation('other')).config.dedupWindowMs).toBe(0);
  });

  it('reports a station the store refuses and goes on', async () => {
    const result = await applyStations(store, declare('stations:\n  - name: x.dls\n  - name: fine\n'), logger);
    expect(result.created).toEqual(['fine']);
    expect(result.errors.map((e) => [e.station, e.code])).toEqual([['x.dls', 'STATION_RESERVED']]);
  });
});
