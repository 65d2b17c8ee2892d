/**
 * The corruption matrix, across a restart of the embedded store: for each kind of damage to a station's
 * files — nothing is served wrong (every message read is byte for byte what was produced at its offset),
 * no offset is handed out twice (a produce after the restart gets offsets above every acknowledged one),
 * consumer groups deliver the new messages (whether they stood before, inside or after a lost range), and
 * the loss is in the logs (error lines naming station, partition and offsets), in the metrics, and in the
 * station's info (health and damage).
 */
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedStore, registerBrokerMetrics, type StationInfo } from '../../src/index.js';
import { decodeJournal, JournalOp } from '../../src/embedded/journal.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const N = 2000;
const valueOf = (i: number) => Buffer.from(`message-${i}-`.padEnd(180 + (i % 13), String.fromCharCode(97 + (i % 26))));

interface Fixture {
  dataDir: string;
  partDir: string;
  groupsDir: string;
  /** Segment files of partition 0, oldest first. */
  segments: string[];
}

/**
 * A station `s` (1 partition, 64 KiB segments) with N messages; group `g` was delivered and acked all of
 * them, group `h` the first 3/4; then a clean stop.
 */
async function fixture(): Promise<Fixture> {
  const dataDir = await mkdtemp(join(tmpdir(), 'junction-matrix-'));
  dirs.push(dataDir);
  const store = new EmbeddedStore({ dataDir });
  await store.open();
  await store.createStation('s', { partitions: 1, segmentBytes: 64 * 1024 });
  for (let i = 0; i < N; i += 250)
    await store.produce(
      's',
      Array.from({ length: 250 }, (_, k) => ({ value: valueOf(i + k + 1) })),
    );
  await consume(store, 'g', N);
  await consume(store, 'h', (N * 3) / 4);
  await store.close();
  const partDir = join(dataDir, 'stations', 's', 'partitions', '0');
  const segments = (await readdir(partDir)).filter((f) => f.endsWith('.log')).sort();
  expect(segments.length).toBeGreaterThan(4);
  return { dataDir, partDir, groupsDir: join(dataDir, 'stations', 's', 'groups'), segments };
}

/** Fetches and acks until `upTo` messages were acked (or nothing comes); returns what was delivered. */
async function consume(store: EmbeddedStore, group: string, upTo = Infinity): Promise<Array<{ offset: number; value: Buffer }>> {
  const out: Array<{ offset: number; value: Buffer }> = [];
  while (out.length < upTo) {
    const batch = await store.fetch('s', group, { maxMessages: Math.min(500, upTo - out.length), maxBytes: 1 << 24, waitMs: 0 });
    if (batch.length === 0) break;
    for (const d of batch) out.push({ offset: d.offset, value: Buffer.from(d.value) });
    await store.ack(
      's',
      group,
      batch.map((d) => d.deliveryId),
    );
  }
  return out;
}

interface Reopened {
  store: EmbeddedStore;
  lines: Array<Record<string, unknown>>;
  registry: Registry;
}

async function reopen(dataDir: string): Promise<Reopened> {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const store = new EmbeddedStore({ dataDir, logger });
  await store.open();
  // Registered after open, as core/server does: damage found while opening must still be counted.
  const registry = new Registry();
  registerBrokerMetrics(store, registry);
  return { store, lines, registry };
}

async function metric(registry: Registry, name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((n, v) => n + Number(v.value), 0);
}

/** Reads the whole partition; every message must be what was produced at its offset. Returns the offsets. */
async function readAllIntact(store: EmbeddedStore): Promise<number[]> {
  const offsets: number[] = [];
  let from = 1;
  for (;;) {
    const msgs = await store.read('s', { partition: 0, fromOffset: from, limit: 1000 });
    if (msgs.length === 0) return offsets;
    for (const m of msgs) {
      expect(m.offset).toBeLessThanOrEqual(N);
      expect(Buffer.from(m.value).equals(valueOf(m.offset)), `offset ${m.offset} served wrong bytes`).toBe(true);
      offsets.push(m.offset);
    }
    from = msgs[msgs.length - 1]!.offset + 1;
  }
}

/** After the restart: produce 10, and check offsets and what groups g and h deliver. */
async function checkServes(store: EmbeddedStore, intact: Set<number>): Promise<void> {
  const fresh = Array.from({ length: 10 }, (_, i) => Buffer.from(`after-restart-${i}`));
  const results = await store.produce(
    's',
    fresh.map((value) => ({ value })),
  );
  const offsets = results.map((r) => (r.status === 'stored' ? r.offset : -1));
  // Above every offset ever acknowledged to a producer, consecutive.
  expect(offsets[0]).toBeGreaterThan(N);
  expect(offsets).toEqual(offsets.map((_, i) => offsets[0]! + i));
  // g had acked everything: it gets exactly the 10 new messages.
  const g = await consume(store, 'g');
  expect(g.map((d) => d.offset)).toEqual(offsets);
  g.forEach((d, i) => expect(d.value.equals(fresh[i]!)).toBe(true));
  // h stood at 3/4: it gets what is intact after its position, then the new ones — nothing skipped, nothing blocked.
  const h = await consume(store, 'h');
  const hWant = [...intact].filter((o) => o > (N * 3) / 4).sort((a, b) => a - b);
  expect(h.map((d) => d.offset)).toEqual([...hWant, ...offsets]);
  for (const d of h) expect(d.value.equals(d.offset > N ? fresh[d.offset - offsets[0]!]! : valueOf(d.offset))).toBe(true);
  expect((await store.getGroup('s', 'g')).lag).toBe(0);
  expect((await store.getGroup('s', 'h')).lag).toBe(0);
}

/** The loss is visible: error log lines with station, partition and offsets; metrics; station info. */
async function checkReported(r: Reopened, info: StationInfo, missing: number[], opts: { bytesOnly?: boolean } = {}): Promise<void> {
  const damage = info.damage ?? [];
  expect(info.health?.status).toBe('degraded');
  expect(damage.length).toBeGreaterThan(0);
  for (const o of missing)
    expect(
      damage.some((d) => d.partition === 0 && d.fromOffset <= o && o <= d.toOffset),
      `offset ${o} lost without a report`,
    ).toBe(true);
  expect(damage.reduce((n, d) => n + d.messages, 0)).toBe(missing.length);
  expect(info.health?.reasons.length).toBeGreaterThanOrEqual(damage.length);
  const errors = r.lines.filter((l) => l.level === 50 && l.station === 's' && l.partition === 0 && typeof l.fromOffset === 'number');
  expect(errors.length).toBe(damage.length);
  for (const d of damage)
    expect(errors.some((l) => l.fromOffset === d.fromOffset && l.toOffset === d.toOffset && l.messages === d.messages)).toBe(true);
  expect(await metric(r.registry, 'junction_corrupt_ranges_total')).toBe(damage.length);
  expect(await metric(r.registry, 'junction_lost_messages_total')).toBe(opts.bytesOnly ? 0 : missing.length);
  expect(await metric(r.registry, 'junction_station_damaged_ranges')).toBe(damage.length);
}

type Damage = (f: Fixture) => Promise<void>;

const dataCases: Array<{ name: string; damage: Damage; bytesOnly?: boolean }> = [
  {
    name: 'cut 37 bytes off the active segment',
    damage: async (f) => {
      const file = join(f.partDir, f.segments.at(-1)!);
      await truncate(file, (await stat(file)).size - 37);
    },
  },
  {
    name: 'cut half of the active segment',
    damage: async (f) => {
      const file = join(f.partDir, f.segments.at(-1)!);
      await truncate(file, Math.floor((await stat(file)).size / 2));
    },
  },
  {
    name: 'append garbage to the active segment',
    bytesOnly: true,
    damage: (f) => appendFile(join(f.partDir, f.segments.at(-1)!), Buffer.from('garbage, not a frame '.repeat(20))),
  },
  {
    name: 'append zeros to the active segment',
    bytesOnly: true,
    damage: (f) => appendFile(join(f.partDir, f.segments.at(-1)!), Buffer.alloc(8192)),
  },
  {
    name: 'flip bytes in the middle of a sealed segment',
    damage: async (f) => {
      const file = join(f.partDir, f.segments[1]!);
      const buf = await readFile(file);
      for (let i = 0; i < 16; i++) buf[(buf.length >> 1) + i] = buf[(buf.length >> 1) + i]! ^ 0x5a;
      await writeFile(file, buf);
    },
  },
  {
    name: 'flip bytes in the middle of the active segment',
    damage: async (f) => {
      const file = join(f.partDir, f.segments.at(-1)!);
      const buf = await readFile(file);
      buf[buf.length >> 1] = buf[buf.length >> 1]! ^ 0xff;
      await writeFile(file, buf);
    },
  },
  {
    name: 'cut half of a sealed segment',
    damage: async (f) => {
      const file = join(f.partDir, f.segments[2]!);
      await truncate(file, Math.floor((await stat(file)).size / 2));
    },
  },
  {
    name: 'delete a sealed segment',
    damage: async (f) => {
      await rm(join(f.partDir, f.segments[2]!));
      await rm(join(f.partDir, f.segments[2]!.replace('.log', '.idx')), { force: true });
    },
  },
  {
    name: 'delete the active segment',
    damage: (f) => rm(join(f.partDir, f.segments.at(-1)!)),
  },
];

describe('recovery matrix: damaged partition data', () => {
  for (const c of dataCases) {
    it(c.name, async () => {
      const f = await fixture();
      await c.damage(f);
      const r = await reopen(f.dataDir);
      try {
        const read = await readAllIntact(r.store);
        const intact = new Set(read);
        const missing = Array.from({ length: N }, (_, i) => i + 1).filter((o) => !intact.has(o));
        if (c.bytesOnly) expect(missing).toEqual([]);
        else expect(missing.length).toBeGreaterThan(0);
        const info = await r.store.getStation('s');
        await checkReported(r, info, missing, { bytesOnly: c.bytesOnly ?? false });
        expect(info.partitions[0]!.nextOffset).toBe(N + 1);
        expect(info.partitions[0]!.messages).toBe(read.length);
        await checkServes(r.store, intact);
      } finally {
        await r.store.close();
      }
      // Reported once: the next start knows the ranges (still listed, not found again).
      const again = await reopen(f.dataDir);
      try {
        const info = await again.store.getStation('s');
        expect(info.health?.status).toBe('degraded');
        expect(info.damage!.length).toBeGreaterThan(0);
        expect(await metric(again.registry, 'junction_corrupt_ranges_total')).toBe(0);
        expect(again.lines.filter((l) => l.level === 50)).toEqual([]);
      } finally {
        await again.store.close();
      }
    });
  }

  it('issue 14, item 1: group at N, the last segment cut to half, restart, produce 10: the group receives those 10', async () => {
    for (const withCheckpoint of [true, false]) {
      const f = await fixture();
      const file = join(f.partDir, f.segments.at(-1)!);
      await truncate(file, Math.floor((await stat(file)).size / 2));
      // Without the checkpoint (a log written before it existed), the floor comes from the groups alone.
      if (!withCheckpoint) await rm(join(f.partDir, 'checkpoint'));
      const r = await reopen(f.dataDir);
      try {
        expect((await r.store.getGroup('s', 'g')).partitions[0]!.nextOffset).toBe(N + 1);
        const results = await r.store.produce(
          's',
          Array.from({ length: 10 }, (_, i) => ({ value: Buffer.from(`new-${i}`) })),
        );
        expect(results.map((x) => (x.status === 'stored' ? x.offset : 0))).toEqual(Array.from({ length: 10 }, (_, i) => N + 1 + i));
        const got = await consume(r.store, 'g');
        expect(got.map((d) => d.value.toString())).toEqual(Array.from({ length: 10 }, (_, i) => `new-${i}`));
        const info = await r.store.getStation('s');
        expect(info.damage!.some((d) => d.toOffset === N)).toBe(true);
      } finally {
        await r.store.close();
      }
    }
  });
});

describe('recovery matrix: a group behind a lost end of the log', () => {
  it('moves past the lost offsets at its next fetch, without waiting for a new message, and journals it as a range', async () => {
    const f = await fixture();
    const file = join(f.partDir, f.segments.at(-1)!);
    await truncate(file, 0);
    const r = await reopen(f.dataDir);
    try {
      // h had acked 3/4 of N; the lost end lies above what survived, and the floor keeps it counted.
      const before = await r.store.getGroup('s', 'h');
      const p = (await r.store.getStation('s')).partitions[0]!;
      expect(p.nextOffset).toBe(N + 1);
      const survived = await consume(r.store, 'h');
      const after = await r.store.getGroup('s', 'h');
      expect(after).toMatchObject({ lag: 0, pending: 0 });
      expect(after.partitions[0]!.ackFloor).toBe(N + 1);
      expect(before.lag).toBeGreaterThan(survived.length);
      // The same after a restart: the skip is in the journal (one range, not an entry per offset).
      await r.store.close();
      const again = await reopen(f.dataDir);
      try {
        expect(await again.store.getGroup('s', 'h')).toMatchObject({ lag: 0, pending: 0 });
        const { entries } = decodeJournal(await readFile(join(f.groupsDir, 'h', 'journal')));
        const lastSurvived = survived.at(-1)?.offset ?? 0;
        expect(entries.some((e) => e.op === JournalOp.SETTLE_RANGE && e.from === lastSurvived + 1 && e.to === N)).toBe(true);
      } finally {
        await again.store.close();
      }
    } finally {
      await r.store.close().catch(() => {});
    }
  });
});

describe('recovery matrix: damaged metadata', () => {
  const badContents: Array<[string, string | null]> = [
    ['corrupt', '{"name": "s", "config": {'],
    ['empty', ''],
    ['missing', null],
  ];
  const spoil = async (file: string, content: string | null) => {
    if (content === null) await rm(file, { force: true });
    else await writeFile(file, content);
  };

  for (const [how, content] of badContents) {
    it(`station.json ${how}: loaded from its previous copy, nothing lost, reported`, async () => {
      const f = await fixture();
      await spoil(join(f.dataDir, 'stations', 's', 'station.json'), content);
      const r = await reopen(f.dataDir);
      try {
        const info = await r.store.getStation('s');
        expect(info.config.segmentBytes).toBe(64 * 1024);
        expect(info.health?.status).toBe('degraded');
        expect(info.health?.reasons.join('\n')).toMatch(/station\.json .*previous copy/);
        expect(await readAllIntact(r.store)).toHaveLength(N);
        expect(await metric(r.registry, 'junction_metadata_repairs_total')).toBe(1);
        expect(r.lines.some((l) => l.level === 50 && l.station === 's')).toBe(true);
        await checkServes(r.store, new Set(Array.from({ length: N }, (_, i) => i + 1)));
      } finally {
        await r.store.close();
      }
      // Repaired on disk: the next start is clean.
      const again = await reopen(f.dataDir);
      try {
        expect((await again.store.getStation('s')).health).toEqual({ status: 'ok', reasons: [] });
      } finally {
        await again.store.close();
      }
    });

    it(`station.json and its copy ${how}: rebuilt from the partitions, listed degraded until updated`, async () => {
      const f = await fixture();
      await spoil(join(f.dataDir, 'stations', 's', 'station.json'), content);
      await spoil(join(f.dataDir, 'stations', 's', 'station.json.prev'), content);
      const r = await reopen(f.dataDir);
      try {
        const info = await r.store.getStation('s');
        expect(info.config.partitions).toBe(1);
        // A guess must never drop data: retention keeps everything.
        expect(info.config.retention).toEqual({});
        expect(info.health?.status).toBe('degraded');
        expect(info.health?.reasons.join('\n')).toMatch(/rebuilt/);
        expect(info.groups).toEqual(['g', 'h']);
        expect(await readAllIntact(r.store)).toHaveLength(N);
        await checkServes(r.store, new Set(Array.from({ length: N }, (_, i) => i + 1)));
      } finally {
        await r.store.close();
      }
      const again = await reopen(f.dataDir);
      try {
        expect((await again.store.getStation('s')).health?.status).toBe('degraded');
        const updated = await again.store.updateStation('s', { retention: { maxAgeMs: 3600_000 } });
        expect(updated.health).toEqual({ status: 'ok', reasons: [] });
      } finally {
        await again.store.close();
      }
    });
  }

  it('station.json, its copy and the partitions all gone: listed as damaged, STATION_DAMAGED on use, deletable', async () => {
    const f = await fixture();
    await rm(join(f.dataDir, 'stations', 's', 'station.json'));
    await rm(join(f.dataDir, 'stations', 's', 'station.json.prev'));
    await rm(join(f.dataDir, 'stations', 's', 'partitions'), { recursive: true });
    const r = await reopen(f.dataDir);
    try {
      const list = await r.store.listStations();
      expect(list.map((s) => s.name)).toEqual(['s', 's.dls']);
      const s = list[0]!;
      expect(s.health?.status).toBe('damaged');
      expect(s.health?.reasons[0]).toMatch(/station\.json/);
      expect((await r.store.getStation('s')).health?.status).toBe('damaged');
      await expect(r.store.produce('s', [{ value: Buffer.from('x') }])).rejects.toMatchObject({ code: 'STATION_DAMAGED' });
      await expect(r.store.fetch('s', 'g', { maxMessages: 1, maxBytes: 1, waitMs: 0 })).rejects.toMatchObject({ code: 'STATION_DAMAGED' });
      await expect(r.store.createStation('s')).rejects.toMatchObject({ code: 'STATION_EXISTS' });
      expect(await metric(r.registry, 'junction_metadata_repairs_total')).toBe(1);
      expect(r.lines.some((l) => l.level === 50 && l.station === 's' && typeof l.reason === 'string')).toBe(true);
      await r.store.deleteStation('s');
      expect((await r.store.listStations()).map((x) => x.name)).toEqual([]);
      await r.store.createStation('s');
    } finally {
      await r.store.close();
    }
  });

  for (const [how, content] of badContents) {
    it(`group.json ${how} (and with its copy): the group keeps its position`, async () => {
      for (const copyToo of [false, true]) {
        const f = await fixture();
        await spoil(join(f.groupsDir, 'g', 'group.json'), content);
        if (copyToo) await spoil(join(f.groupsDir, 'g', 'group.json.prev'), content);
        const r = await reopen(f.dataDir);
        try {
          const info = await r.store.getStation('s');
          expect(info.groups).toEqual(['g', 'h']);
          expect(info.health?.status).toBe('degraded');
          expect(info.health?.reasons.join('\n')).toMatch(
            copyToo ? /group "g": group\.json .*rebuilt from its journal/ : /group "g": group\.json .*previous copy/,
          );
          const g = await r.store.getGroup('s', 'g');
          expect(g.partitions[0]!.nextOffset).toBe(N + 1);
          expect(g.lag).toBe(0);
          expect(await metric(r.registry, 'junction_metadata_repairs_total')).toBe(1);
          await checkServes(r.store, new Set(Array.from({ length: N }, (_, i) => i + 1)));
        } finally {
          await r.store.close();
        }
      }
    });
  }

  it("a group's missing journal is reported (the group restarts from the first retained offset)", async () => {
    const f = await fixture();
    await rm(join(f.groupsDir, 'h', 'journal'));
    const r = await reopen(f.dataDir);
    try {
      const info = await r.store.getStation('s');
      expect(info.health?.reasons.join('\n')).toMatch(/group "h": its journal is missing/);
      expect((await r.store.getGroup('s', 'h')).lag).toBe(N);
      expect(await metric(r.registry, 'junction_metadata_repairs_total')).toBe(1);
    } finally {
      await r.store.close();
    }
  });

  it('a creation that never finished is cleaned up, not taken for a damaged station or group', async () => {
    const f = await fixture();
    const stationsDir = join(f.dataDir, 'stations');
    await writeFile(join(stationsDir, '.tmp-x-1-abcd'), '');
    await rm(join(stationsDir, '.tmp-x-1-abcd'));
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(stationsDir, '.tmp-x-1-abcd'));
    await mkdir(join(f.groupsDir, '.tmp-k-1-abcd'));
    const r = await reopen(f.dataDir);
    try {
      expect((await r.store.listStations()).map((s) => [s.name, s.health?.status])).toEqual([
        ['s', 'ok'],
        ['s.dls', 'ok'],
      ]);
      expect(await readdir(stationsDir)).not.toContain('.tmp-x-1-abcd');
      expect(await readdir(f.groupsDir)).toEqual(['g', 'h']);
    } finally {
      await r.store.close();
    }
  });
});
