/**
 * `npm run bench -- postgres` and `npm run bench -- mqtt`: the connectors proven against the real
 * services of this machine (PostgreSQL 127.0.0.1:5432, Mosquitto 127.0.0.1:1883), each beside the
 * plain client doing the same work in the same run. One broker process (`junction start`, fsync always).
 *
 * - postgres: a station (1 partition) filled with N JSON messages of ~250 B beforehand → the postgres
 *   sink connector (1 task, batches of BATCH) → a table of the default layout; timed from the connector's
 *   creation until its group has acknowledged every message. Beside it: the same N rows (same columns,
 *   same values) written with pg + pg-copy-streams, one COPY per BATCH rows in its own transaction, as
 *   fast as one connection goes. Target: the sink ≥ 0.8 of the plain COPY.
 * - mqtt: N messages of ~200 B published at QoS 1 (a window of WINDOW unacknowledged publishes) →
 *   Mosquitto (a process of the bench's own, the machine's binary, with max_queued_messages 0: the
 *   default 1000 makes Mosquitto drop QoS 1 messages for any subscriber that falls 1000 behind a fast
 *   publisher, the bare one included) → the mqtt source connector (QoS 1, persistent session, acks after the station stored
 *   them) → the station; timed from the first publish until the station holds N. Beside it: a bare
 *   mqtt.js subscriber (QoS 1, acks at once) receiving the same publishes. Reported, with the ratio.
 *
 * Rounds alternate the two paths so that a noisy minute hits both; the median counts.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import mqtt from 'mqtt';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { BATCH_CONTENT_TYPE, encodeProduceBatch } from '@junction/protocol';
import { startBroker } from './broker.js';
import { Http } from './http.js';
import { log, sleep } from './plan.js';

const PG = { host: '127.0.0.1', port: 5432, database: 'test', user: 'postgres' };
let MQTT_URL = 'mqtt://127.0.0.1:1883';
const BATCH = 5000;
const WINDOW = 500;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

function value(i: number): string {
  return JSON.stringify({
    id: i,
    user: `u${i % 1000}`,
    status: ['new', 'paid', 'shipped'][i % 3],
    amount: (i % 10_000) / 100,
    at: new Date(1_700_000_000_000 + i * 1000).toISOString(),
    note: 'x'.repeat(100 + (i % 50)),
  });
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

interface Row {
  row: string;
  rate: number;
  rounds: number[];
  unit: string;
}

function report(title: string, rows: Row[], base: Row, target: number | undefined, json: boolean, extra: Record<string, unknown>): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ ...extra, rows: rows.map((r) => ({ ...r, ratio: r.rate / base.rate })), target })}\n`);
    return;
  }
  const lines = [
    title,
    '',
    `| row | ${rows[0]!.unit} (median) | of ${base.row} | target | rounds |`,
    '| --- | ---: | ---: | --- | --- |',
    ...rows.map((r) => {
      const ratio = r.rate / base.rate;
      const t = r === base || target === undefined || r.row.includes('incl.') ? '—' : `≥ ${target} ${ratio >= target ? 'ok' : 'MISS'}`;
      return `| ${r.row} | ${Math.round(r.rate).toLocaleString('en-US')} | ${ratio.toFixed(2)} | ${t} | ${r.rounds.map(Math.round).join(', ')} |`;
    }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ── postgres ────────────────────────────────────────────────────────────────────────────────────────

const COLS = '(key, value, headers, station, station_id, partition, "offset", "timestamp")';
const TABLE_DDL = (t: string) =>
  `CREATE TABLE ${t} (key text, value jsonb, headers jsonb NOT NULL DEFAULT '{}', station text NOT NULL, station_id text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL, "timestamp" timestamptz NOT NULL)`;

/** COPY text of rows [from, to): the same columns and values the sink writes. */
function copyText(from: number, to: number, stationId: string): string {
  let s = '';
  for (let i = from; i < to; i++) {
    s += `k${i % 100}\t${value(i)}\t{}\tpg-bench\t${stationId}\t0\t${i + 1}\t${new Date(1_700_000_000_000 + i).toISOString()}\n`;
  }
  return s;
}

async function plainCopy(db: pg.Client, table: string, n: number, stationId: string): Promise<number> {
  const t0 = performance.now();
  for (let o = 0; o < n; o += BATCH) {
    await db.query('BEGIN');
    const stream = db.query(copyStreams.from(`COPY ${table} ${COLS} FROM STDIN`));
    await pipeline(Readable.from([copyText(o, Math.min(n, o + BATCH), stationId)]), stream);
    await db.query('COMMIT');
  }
  return n / ((performance.now() - t0) / 1000);
}

export async function runPostgresBench(opts: { quick: boolean; json: boolean }): Promise<number> {
  const n = opts.quick ? 50_000 : 200_000;
  const rounds = opts.quick ? 2 : 3;
  const db = new pg.Client(PG);
  db.on('error', () => undefined);
  await db.connect().catch((err: unknown) => {
    throw new Error(`PostgreSQL is not reachable at ${PG.host}:${PG.port} (.ci/run starts it): ${String(err)}`);
  });
  const workDir = mkdtempSync(join(tmpdir(), 'junction-bench-postgres-'));
  mkdirSync(join(workDir, 'data'));
  const broker = await startBroker({ dataDir: join(workDir, 'data'), logLevel: 'warn', logFile: join(workDir, 'broker.log') });
  const http = new Http(broker.url);
  const tables: string[] = [];
  const connectors: string[] = [];
  try {
    await http.json('POST', '/v1/stations', { name: 'pg-bench', partitions: 1 });
    for (let o = 0; o < n; o += 1000) {
      const body = encodeProduceBatch(
        Array.from({ length: Math.min(1000, n - o) }, (_, k) => ({ key: `k${(o + k) % 100}`, value: Buffer.from(value(o + k)) })),
      );
      const res = await http.send('POST', '/v1/stations/pg-bench/messages', body, { 'content-type': BATCH_CONTENT_TYPE });
      if (res.status !== 200) throw new Error(`fill: HTTP ${res.status}`);
    }
    log(`postgres bench: station filled with ${n} messages`);
    const sink: number[] = [];
    const withStart: number[] = [];
    const copy: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const direct = `bench_copy_${run}_${r}`;
      tables.push(direct);
      await db.query(TABLE_DDL(direct));
      const c = await plainCopy(db, direct, n, 'direct');
      copy.push(c);
      log(`postgres bench round ${r + 1}/${rounds}: plain COPY ${Math.round(c)} rows/s`);

      const table = `bench_sink_${run}_${r}`;
      const name = `pg-bench-${r}`;
      tables.push(table);
      connectors.push(name);
      const t0 = performance.now();
      await http.json('POST', '/v1/connectors', {
        name,
        plugin: 'postgres',
        station: 'pg-bench',
        tasks: 1,
        config: { ...PG, table, copyMinRows: 64 },
        batch: { maxMessages: BATCH, maxBytes: 64 * 1024 * 1024, maxLatencyMs: 100 },
      });
      // Timed from the first acknowledged batch (the connector's start — worker thread, pg pool, table
      // creation — is the "incl. start" row) until the group acknowledged every message.
      let t1 = 0;
      let acked1 = 0;
      await waitFor(
        'the sink to acknowledge every message',
        600_000,
        async () => {
          const g = await http.json<{ lag: number }>('GET', `/v1/stations/pg-bench/groups/connector.${name}`).catch(() => undefined);
          if (!g) return false;
          if (t1 === 0 && g.lag < n) {
            t1 = performance.now();
            acked1 = n - g.lag;
          }
          return g.lag === 0;
        },
        10,
      );
      const end = performance.now();
      const s = (n - acked1) / ((end - t1) / 1000);
      withStart.push(n / ((end - t0) / 1000));
      const rows = Number((await db.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
      if (rows !== n) throw new Error(`the sink wrote ${rows} rows, not ${n}`);
      sink.push(s);
      log(`postgres bench round ${r + 1}/${rounds}: station -> postgres sink ${Math.round(s)} rows/s`);
      await http.json('DELETE', `/v1/connectors/${name}`).catch(() => undefined);
    }
    const base: Row = { row: 'plain COPY (pg + pg-copy-streams)', rate: median(copy), rounds: copy, unit: 'rows/s' };
    const rows: Row[] = [
      base,
      { row: 'station → postgres sink', rate: median(sink), rounds: sink, unit: 'rows/s' },
      { row: 'station → postgres sink, incl. connector start', rate: median(withStart), rounds: withStart, unit: 'rows/s' },
    ];
    report(
      `PostgreSQL sink: ${n.toLocaleString('en-US')} rows of ~250 B a round, ${rounds} rounds, median; COPY per ${BATCH} rows, one transaction each, 1 connection / 1 task`,
      rows,
      base,
      0.8,
      opts.json,
      { postgres: true, rowsPerRound: n },
    );
    return 0;
  } finally {
    http.close();
    await broker.stop();
    for (const t of tables) await db.query(`DROP TABLE IF EXISTS ${t}`).catch(() => undefined);
    for (const c of connectors) await db.query('DELETE FROM junction_sink_offsets WHERE connector = $1', [c]).catch(() => undefined);
    await db.end();
    rmSync(workDir, { recursive: true, force: true });
  }
}

// ── mqtt ────────────────────────────────────────────────────────────────────────────────────────────

async function publishAll(pub: mqtt.MqttClient, topic: string, n: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      await pub.publishAsync(`${topic}/d${i % 10}`, JSON.stringify({ i, t: 21.5, note: 'y'.repeat(150) }), { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
}

async function bareSubscriber(pub: mqtt.MqttClient, n: number, r: number): Promise<number> {
  const root = `bench/${run}/bare${r}`;
  const sub = await mqtt.connectAsync(MQTT_URL, { clientId: `bench-bare-${run}-${r}`, protocolVersion: 5, clean: true });
  try {
    let got = 0;
    let done: () => void = () => undefined;
    const all = new Promise<void>((res) => (done = res));
    sub.on('message', () => {
      if (++got === n) done();
    });
    await sub.subscribeAsync(`${root}/#`, { qos: 1 });
    const t0 = performance.now();
    await publishAll(pub, root, n);
    await Promise.race([all, sleep(120_000).then(() => Promise.reject(new Error(`bare subscriber got ${got} of ${n}`)))]);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await sub.endAsync();
  }
}

/** A Mosquitto of the bench's own on a free loopback port, queues unbounded. */
async function startMosquitto(dir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const bin = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p));
  if (!bin) throw new Error('the mosquitto binary is not installed (.ci/run installs it)');
  const port = await new Promise<number>((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n`);
  const child = spawn(bin, ['-c', conf], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor(
    'mosquitto',
    10_000,
    () =>
      new Promise<boolean>((r) => {
        const c = net.connect(port, '127.0.0.1', () => {
          c.destroy();
          r(true);
        });
        c.on('error', () => r(false));
      }),
    50,
  );
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function runMqttBench(opts: { quick: boolean; json: boolean }): Promise<number> {
  const n = opts.quick ? 20_000 : 100_000;
  const rounds = opts.quick ? 2 : 3;
  const mosquittoDir = mkdtempSync(join(tmpdir(), 'junction-bench-mosquitto-'));
  const mosquitto = await startMosquitto(mosquittoDir);
  MQTT_URL = mosquitto.url;
  const pub = await mqtt.connectAsync(MQTT_URL, { clientId: `bench-pub-${run}`, protocolVersion: 5 }).catch((err: unknown) => {
    throw new Error(`Mosquitto is not reachable at ${MQTT_URL} (.ci/run starts it): ${String(err)}`);
  });
  const workDir = mkdtempSync(join(tmpdir(), 'junction-bench-mqtt-'));
  mkdirSync(join(workDir, 'data'));
  const broker = await startBroker({ dataDir: join(workDir, 'data'), logLevel: 'warn', logFile: join(workDir, 'broker.log') });
  const http = new Http(broker.url);
  const sessions: string[] = [];
  try {
    const source: number[] = [];
    const bare: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const b = await bareSubscriber(pub, n, r);
      bare.push(b);
      log(`mqtt bench round ${r + 1}/${rounds}: bare mqtt.js subscriber ${Math.round(b)} msgs/s`);

      const station = `mqtt-bench-${r}`;
      const root = `bench/${run}/src${r}`;
      const clientId = `bench-src-${run}-${r}`;
      sessions.push(clientId);
      await http.json('POST', '/v1/stations', { name: station, partitions: 1 });
      await http.json('POST', '/v1/connectors', {
        name: station,
        plugin: 'mqtt',
        station,
        tasks: 1,
        config: { url: MQTT_URL, clientId, topics: [{ filter: `${root}/#`, qos: 1 }] },
      });
      // Subscribed once a probe arrives (then the timed publishes start).
      const count = async (): Promise<number> => {
        const info = await http.json<{ partitions: { lastOffset?: number; nextOffset?: number; messages?: number }[] }>(
          'GET',
          `/v1/stations/${station}`,
        );
        const p = info.partitions[0];
        return p?.messages ?? (p?.nextOffset !== undefined ? p.nextOffset - 1 : (p?.lastOffset ?? 0));
      };
      await waitFor(
        'the mqtt source to subscribe',
        60_000,
        async () => {
          await pub.publishAsync(`${root}/probe`, 'probe', { qos: 1 });
          return (await count()) > 0;
        },
        200,
      );
      const before = await count();
      const t0 = performance.now();
      await publishAll(pub, root, n);
      await waitFor('the station to hold every message', 300_000, async () => (await count()) >= before + n);
      const s = n / ((performance.now() - t0) / 1000);
      source.push(s);
      log(`mqtt bench round ${r + 1}/${rounds}: mqtt -> station ${Math.round(s)} msgs/s`);
      await http.json('DELETE', `/v1/connectors/${station}`).catch(() => undefined);
    }
    const base: Row = { row: 'bare mqtt.js subscriber (QoS 1)', rate: median(bare), rounds: bare, unit: 'msgs/s' };
    const rows: Row[] = [base, { row: 'mqtt → station (QoS 1, ack after store)', rate: median(source), rounds: source, unit: 'msgs/s' }];
    report(
      `MQTT source: ${n.toLocaleString('en-US')} messages of ~200 B a round published at QoS 1 (${WINDOW} in flight), ${rounds} rounds, median; Mosquitto ${mosquitto.url} (max_queued_messages 0)`,
      rows,
      base,
      undefined,
      opts.json,
      { mqtt: true, messagesPerRound: n },
    );
    return 0;
  } finally {
    http.close();
    await broker.stop();
    for (const clientId of sessions) {
      const c = await mqtt
        .connectAsync(MQTT_URL, { clientId, clean: true, protocolVersion: 5, properties: { sessionExpiryInterval: 0 } })
        .catch(() => undefined);
      await c?.endAsync();
    }
    await pub.endAsync();
    await mosquitto.stop();
    rmSync(workDir, { recursive: true, force: true });
    rmSync(mosquittoDir, { recursive: true, force: true });
  }
}

// ── postgres-cdc ────────────────────────────────────────────────────────────────────────────────────

/**
 * `npm run bench -- postgres-cdc`: N rows inserted (transactions of 1000 rows, one connection) into a
 * published table while the postgres-cdc source streams them into a station. Reported: the rate the
 * inserts reached PostgreSQL, and the rate changes reached the station (from the first insert until the
 * station holds all N).
 */
export async function runPostgresCdcBench(opts: { quick: boolean; json: boolean }): Promise<number> {
  const n = opts.quick ? 50_000 : 200_000;
  const rounds = opts.quick ? 2 : 3;
  const db = new pg.Client(PG);
  db.on('error', () => undefined);
  await db.connect().catch((err: unknown) => {
    throw new Error(`PostgreSQL is not reachable at ${PG.host}:${PG.port} (.ci/run starts it): ${String(err)}`);
  });
  const table = `bench_cdc_${run}`;
  const slot = `bench_cdc_slot_${run}`;
  const publication = `bench_cdc_pub_${run}`;
  const workDir = mkdtempSync(join(tmpdir(), 'junction-bench-cdc-'));
  mkdirSync(join(workDir, 'data'));
  const broker = await startBroker({ dataDir: join(workDir, 'data'), logLevel: 'warn', logFile: join(workDir, 'broker.log') });
  const http = new Http(broker.url);
  try {
    await db.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, user_id int, status text, amount numeric, note text)`);
    await http.json('POST', '/v1/stations', { name: 'cdc-bench', partitions: 1 });
    await http.json('POST', '/v1/connectors', {
      name: 'cdc-bench',
      plugin: 'postgres-cdc',
      station: 'cdc-bench',
      tasks: 1,
      config: { ...PG, publication, tables: [`public.${table}`], slot },
    });
    await waitFor(
      'the slot',
      60_000,
      async () => (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot])).rowCount === 1,
      100,
    );
    const count = async (): Promise<number> =>
      (await http.json<{ partitions: { messages: number }[] }>('GET', '/v1/stations/cdc-bench')).partitions[0]?.messages ?? 0;
    const inserts: number[] = [];
    const changes: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const before = await count();
      const t0 = performance.now();
      for (let o = r * n; o < (r + 1) * n; o += 1000) {
        await db.query(
          `INSERT INTO ${table} SELECT g, g % 1000, (ARRAY['new','paid','shipped'])[g % 3 + 1], (g % 10000) / 100.0, repeat('x', 100) FROM generate_series($1::bigint, $2::bigint) g`,
          [o, o + 999],
        );
      }
      const ins = n / ((performance.now() - t0) / 1000);
      await waitFor('every change in the station', 600_000, async () => (await count()) >= before + n);
      const ch = n / ((performance.now() - t0) / 1000);
      inserts.push(ins);
      changes.push(ch);
      log(`postgres-cdc bench round ${r + 1}/${rounds}: inserts ${Math.round(ins)} rows/s, changes into the station ${Math.round(ch)} /s`);
    }
    const base: Row = {
      row: 'inserts into PostgreSQL (1000 a transaction)',
      rate: median(inserts),
      rounds: inserts,
      unit: 'rows or changes/s',
    };
    const rows: Row[] = [
      base,
      { row: 'postgres-cdc → station (changes)', rate: median(changes), rounds: changes, unit: 'rows or changes/s' },
    ];
    report(
      `PostgreSQL CDC source: ${n.toLocaleString('en-US')} inserted rows (~150 B) a round, ${rounds} rounds, median; timed from the first insert`,
      rows,
      base,
      undefined,
      opts.json,
      { postgresCdc: true, rowsPerRound: n },
    );
    return 0;
  } finally {
    await http.json('DELETE', '/v1/connectors/cdc-bench').catch(() => undefined);
    http.close();
    await broker.stop();
    await waitFor(
      'the slot released',
      30_000,
      async () => (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot])).rowCount === 0,
      100,
    ).catch(() => undefined);
    await db
      .query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot])
      .catch(() => undefined);
    await db.query(`DROP PUBLICATION IF EXISTS ${publication}`).catch(() => undefined);
    await db.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await db.end();
    rmSync(workDir, { recursive: true, force: true });
  }
}
