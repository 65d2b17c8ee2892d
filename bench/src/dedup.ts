/**
 * The dedup rows (issue 16): what a remembered msgId costs and how fast a broker with a full dedup
 * window serves again.
 *
 * 1. Memory of the index alone (dedup-memory.js, a fresh warm process each): 1M and 2M ids (200k with
 *    --quick), the embedded engine's DedupIndex beside the Map of msgId strings it replaced.
 * 2. The broker (`junction start`, its own process, default durability): one station of 4 partitions,
 *    `--dedup-ids` messages (default 1M; 200k with --quick) of 100 B, each with its own msgId, in binary
 *    batches of 1000, 4 requests in flight; then as many without msgIds on another station (the same
 *    path minus the dedup index). Broker RSS before and after, CPU µs per message.
 * 3. Restarts with the window full (2-minute default window, all ids inside it): after a clean stop
 *    (snapshot written at close), after kill -9 (snapshot + the log after it), and after a clean stop
 *    with the snapshot deleted (the scan every restart did before snapshots). Timed from spawn to the
 *    first /healthz 200 and to the first produce answered (produces wait for the dedup restore), and
 *    checked: a sample of 1000 ids spread over all of them is answered `duplicate` with their offsets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BATCH_CONTENT_TYPE, encodeProduceBatch, type StationInfo } from '@junction/protocol';
import { CLI_BIN, freePort } from './broker.js';
import type { DedupMemoryRow } from './dedup-memory.js';
import { Http } from './http.js';
import { log, payload, sleep } from './plan.js';

/** Bytes per remembered id the index is held to. */
export const DEDUP_BYTES_TARGET = 48;
/** Seconds from spawn until produces are served again, with the window full (after a stop, or kill -9). */
export const DEDUP_RESTART_TARGET_SECONDS = 2;

const STATION = 'bench-dedup';
const PLAIN = 'bench-dedup-plain';
const PARTITIONS = 4;
const BATCH = 1000;

export interface DedupProduceRow {
  label: string;
  messages: number;
  msgsPerSec: number;
  brokerUsPerMsg: number | undefined;
}

export interface DedupRestartRow {
  label: string;
  healthSeconds: number;
  /** Spawn to the first produce answered (it waits for the dedup index). */
  readySeconds: number;
  rssMB: number;
  /** The broker's own time for the dedup restore (`StationInfo.dedup.restored.ms`). */
  restoreMs: number;
  restoredFrom: string;
  recordsRead: number;
  /** The sample of ids answered `duplicate` at their offsets. */
  checked: boolean;
  met: boolean;
}

export interface DedupResult {
  memory: DedupMemoryRow[];
  ids: number;
  produce: DedupProduceRow[];
  broker: { rssBeforeMB: number; rssAfterMB: number; rssBytesPerId: number; indexBytesPerId: number; snapshotMB: number };
  restarts: DedupRestartRow[];
  notes: string[];
}

export type DedupOutcome = DedupResult | { error: string };

/** Runs the dedup rows in `dir` (removed by the caller). */
export async function runDedup(dir: string, quick: boolean, logLevel: string, idsOverride?: number): Promise<DedupResult> {
  const counts = quick ? [200_000] : [1_000_000, 2_000_000];
  const memory: DedupMemoryRow[] = [];
  for (const impl of ['compact', 'map'] as const) {
    log(
      `dedup rows: memory of ${impl === 'compact' ? 'the index' : 'the Map it replaced'} with ${counts.map((c) => c.toLocaleString('en-US')).join(' and ')} ids`,
    );
    memory.push(...(await runMemory({ impl, counts })).rows);
  }

  const ids = idsOverride ?? (quick ? 200_000 : 1_000_000);
  const dataDir = join(dir, 'dedup-data');
  mkdirSync(dataDir, { recursive: true });
  const notes: string[] = [];
  let b = await spawnBroker(dataDir, join(dir, 'dedup-1.log'), logLevel);
  const http = () => new Http(b.url);
  let h = http();
  await h.json('POST', '/v1/stations', { name: STATION, partitions: PARTITIONS });
  await h.json('POST', '/v1/stations', { name: PLAIN, partitions: PARTITIONS });
  // The same messages without msgIds first: what RSS grows by for storing them (and a warm broker), so the
  // growth while producing with msgIds is the index's.
  await produce(h, PLAIN, 50_000, undefined, b.pid);
  log(`dedup rows: producing ${ids.toLocaleString('en-US')} messages without msgIds, then as many with`);
  const plain = await produce(h, PLAIN, ids, undefined, b.pid);
  await sleep(500);
  const rssBefore = rssOf(b.pid);
  const run = `r${Date.now().toString(36)}`;
  const msgId = (i: number) => `${run}-order-${i}`;
  const withIds = await produce(h, STATION, ids, msgId, b.pid);
  await sleep(500);
  const rssAfter = rssOf(b.pid);
  const info = await h.json<StationInfo>('GET', `/v1/stations/${STATION}`);
  const d = info.dedup;
  if (!d || d.ids !== ids) throw new Error(`the station remembers ${d?.ids} ids, expected ${ids}`);
  // Where each sampled id was stored, for the checks after each restart.
  const sample = await sampleOffsets(h, msgId, ids);
  h.close();

  const restarts: DedupRestartRow[] = [];
  const restart = async (label: string, stop: 'SIGTERM' | 'SIGKILL', before?: () => void) => {
    await b.stop(stop);
    before?.();
    b = await spawnBroker(dataDir, join(dir, `dedup-${restarts.length + 2}.log`), logLevel, sample[0]!.id);
    h = http();
    const info2 = await h.json<StationInfo>('GET', `/v1/stations/${STATION}`);
    const checked = await checkSample(h, sample);
    restarts.push({
      label,
      healthSeconds: b.health,
      readySeconds: b.ready,
      rssMB: rssOf(b.pid) / 1e6,
      restoreMs: info2.dedup?.restored?.ms ?? NaN,
      restoredFrom: info2.dedup?.restored?.from ?? '?',
      recordsRead: info2.dedup?.restored?.recordsRead ?? 0,
      checked,
      met: b.ready <= DEDUP_RESTART_TARGET_SECONDS && checked,
    });
    h.close();
  };
  await restart('after a clean stop (snapshot at close)', 'SIGTERM');
  // More ids after the snapshot the restart wrote, then kill -9: the restart replays them from the log.
  h = http();
  const tail = Math.round(ids / 10);
  await produce(h, STATION, tail, (i) => msgId(ids + i), b.pid);
  h.close();
  await restart(`after kill -9 (${tail.toLocaleString('en-US')} more ids produced before it)`, 'SIGKILL');
  const snapshotMB = fileSize(join(dataDir, 'stations', STATION, 'dedup.snapshot')) / 1e6;
  await restart('after a clean stop, snapshot deleted (the scan, as before)', 'SIGTERM', () =>
    rmSync(join(dataDir, 'stations', STATION, 'dedup.snapshot'), { force: true }),
  );
  await b.stop('SIGTERM');

  notes.push(
    `index memory: a fresh process per implementation, warmed with the same per-id garbage; bytes per id = growth after a full GC of RSS, and of V8 heap + ArrayBuffers; "map" is the index before issue 16 (Map<msgId, {partition, offset, timestamp}> + an order array)`,
    `broker: \`junction start\`, fsync always; ${ids.toLocaleString('en-US')} messages of 100 B without msgIds to one station, then as many with msgIds (${run}-order-<i>) to another, each of ${PARTITIONS} partitions, batches of ${BATCH}, 4 in flight; RSS growth per id: broker RSS (/proc) after the produce with msgIds minus before it, over the ids (it includes whatever else the broker grew meanwhile)`,
    `restarts: spawn to /healthz 200, and to the first produce answered (a retry of an id: produces wait for the dedup restore); then 1000 ids spread over all produced are sent again and must each be answered duplicate at their offset (checked); snapshot file ${snapshotMB.toFixed(1)} MB after the kill -9 restart (34 B per id and segment)`,
  );
  return {
    memory,
    ids,
    produce: [withIds, plain].map((r, i) => ({ ...r, label: i === 0 ? 'with a msgId each' : 'without msgIds (same path, no index)' })),
    broker: {
      rssBeforeMB: rssBefore / 1e6,
      rssAfterMB: rssAfter / 1e6,
      rssBytesPerId: (rssAfter - rssBefore) / ids,
      indexBytesPerId: d.bytes / d.ids,
      snapshotMB,
    },
    restarts,
    notes,
  };
}

function runMemory(config: { impl: 'compact' | 'map'; counts: number[] }): Promise<{ rows: DedupMemoryRow[] }> {
  const file = fileURLToPath(new URL('./dedup-memory.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', file, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (out += c));
    child.once('error', reject);
    child.once('exit', (code) => {
      const last = out.trim().split('\n').at(-1);
      if (code === 0 && last) resolve(JSON.parse(last) as { rows: DedupMemoryRow[] });
      else reject(new Error(`dedup-memory exited with ${code}: ${last ?? ''}`));
    });
  });
}

/** Produces `n` messages of 100 B (with `msgId(i)` when given), batches of 1000, 4 in flight. */
async function produce(
  h: Http,
  station: string,
  n: number,
  msgId: ((i: number) => string) | undefined,
  pid: number,
): Promise<Omit<DedupProduceRow, 'label'>> {
  const value = payload(100);
  const plainBody = msgId ? undefined : encodeProduceBatch(Array.from({ length: BATCH }, () => ({ value })));
  let next = 0;
  const cpu0 = cpuUs(pid);
  const t0 = performance.now();
  const loop = async () => {
    while (next < n) {
      const from = next;
      const count = Math.min(BATCH, n - from);
      next += count;
      const body =
        plainBody && count === BATCH
          ? plainBody
          : encodeProduceBatch(Array.from({ length: count }, (_, i) => ({ value, ...(msgId && { msgId: msgId(from + i) }) })));
      const res = await h.send('POST', `/v1/stations/${station}/messages`, body, { 'content-type': BATCH_CONTENT_TYPE });
      if (res.status !== 200) throw new Error(`produce: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 300)}`);
    }
  };
  await Promise.all([loop(), loop(), loop(), loop()]);
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuUs(pid);
  return { messages: n, msgsPerSec: n / seconds, brokerUsPerMsg: cpu0 !== undefined && cpu1 !== undefined ? (cpu1 - cpu0) / n : undefined };
}

interface Sampled {
  id: string;
  partition: number;
  offset: number;
}

/** 1000 ids spread over [0, n), with the partition and offset each was stored at (learned by producing it again). */
async function sampleOffsets(h: Http, msgId: (i: number) => string, n: number): Promise<Sampled[]> {
  const ids = Array.from({ length: 1000 }, (_, k) => msgId(Math.floor((k * n) / 1000)));
  const res = await h.json<{ results: Array<{ duplicate?: boolean; partition: number; offset: number }> }>(
    'POST',
    `/v1/stations/${STATION}/messages`,
    {
      messages: ids.map((id) => ({ msgId: id, value: 'again' })),
    },
  );
  return res.results.map((r, k) => {
    if (!r.duplicate) throw new Error(`${ids[k]} was not a duplicate before the restarts`);
    return { id: ids[k]!, partition: r.partition, offset: r.offset };
  });
}

async function checkSample(h: Http, sample: Sampled[]): Promise<boolean> {
  const res = await h.json<{ results: Array<{ duplicate?: boolean; partition: number; offset: number }> }>(
    'POST',
    `/v1/stations/${STATION}/messages`,
    {
      messages: sample.map((s) => ({ msgId: s.id, value: 'again' })),
    },
  );
  return res.results.every((r, k) => r.duplicate === true && r.partition === sample[k]!.partition && r.offset === sample[k]!.offset);
}

interface Spawned {
  url: string;
  pid: number;
  health: number;
  ready: number;
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** Spawns `junction start`; times the first /healthz 200 and (with `readyId`) the first produce of that id answered. */
async function spawnBroker(dataDir: string, logFile: string, logLevel: string, readyId?: string): Promise<Spawned> {
  const port = await freePort();
  const out = createWriteStream(logFile);
  await new Promise<void>((r) => out.once('open', () => r()));
  const t0 = performance.now();
  const child: ChildProcess = spawn(
    process.execPath,
    [CLI_BIN, 'start', '--data-dir', dataDir, '--port', String(port), '--host', '127.0.0.1', '--log-level', logLevel],
    {
      stdio: ['ignore', out, out],
      cwd: dataDir,
    },
  );
  let dead = false;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => (dead = true));
  const url = `http://127.0.0.1:${port}`;
  const h = new Http(url);
  const deadline = Date.now() + 180_000;
  const poll = async (probe: () => Promise<boolean>): Promise<number> => {
    for (;;) {
      if (dead) throw new Error(`broker exited during start-up (see ${logFile})`);
      if (Date.now() > deadline) throw new Error(`broker did not serve within 180 s (see ${logFile})`);
      if (await probe().catch(() => false)) return (performance.now() - t0) / 1000;
      await sleep(5);
    }
  };
  try {
    const health = await poll(async () => (await h.send('GET', '/healthz')).status === 200);
    const ready =
      readyId === undefined
        ? health
        : await poll(async () => {
            const res = await h.send(
              'POST',
              `/v1/stations/${STATION}/messages`,
              JSON.stringify({ messages: [{ msgId: readyId, value: 'again' }] }),
              { 'content-type': 'application/json' },
            );
            return res.status === 200;
          });
    return {
      url,
      pid: child.pid ?? 0,
      health,
      ready,
      stop: async (signal) => {
        if (!dead) child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        await exited;
        clearTimeout(timer);
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    h.close();
  }
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

function cpuUs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
  } catch {
    return undefined;
  }
}

function fileSize(path: string): number {
  try {
    return readFileSync(path).length;
  } catch {
    return 0;
  }
}

/** The dedup rows as plain text, each with its target beside it. */
export function renderDedup(o: DedupOutcome): string {
  if ('error' in o) return `dedup rows: FAILED: ${o.error}`;
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const mark = (ok: boolean) => (ok ? 'ok' : 'MISS');
  const table = (header: string[], rows: string[][]) => {
    const all = [header, ...rows];
    const w = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
    const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(w[c]!) : cell.padStart(w[c]!))).join(' | ')} |`;
    return [line(header), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...rows.map(line)].join('\n');
  };
  const out: string[] = [];
  out.push(
    table(
      ['dedup index memory', 'ids', 'RSS B/id', 'heap+AB B/id', 'remember ns', 'lookup ns', 'target'],
      o.memory.map((r) => [
        r.impl === 'compact' ? 'DedupIndex (digests in typed arrays)' : 'before: Map of msgId strings',
        int(r.ids),
        r.rssBytesPerId.toFixed(1),
        r.heapBytesPerId.toFixed(1),
        int(r.rememberNs),
        int(r.lookupNs),
        `<= ${DEDUP_BYTES_TARGET} B/id ${mark(r.rssBytesPerId <= DEDUP_BYTES_TARGET && r.heapBytesPerId <= DEDUP_BYTES_TARGET)}`,
      ]),
    ),
  );
  out.push('');
  out.push(
    table(
      [`broker: produce ${int(o.ids)} × 100 B`, 'msgs/s', 'broker µs/msg', 'RSS growth B/id', 'index B/id', 'target'],
      o.produce.map((r, i) => [
        r.label,
        int(r.msgsPerSec),
        r.brokerUsPerMsg === undefined ? '-' : r.brokerUsPerMsg.toFixed(1),
        i === 0 ? o.broker.rssBytesPerId.toFixed(1) : '',
        i === 0 ? o.broker.indexBytesPerId.toFixed(1) : '',
        i === 0 ? `<= ${DEDUP_BYTES_TARGET} B/id ${mark(o.broker.indexBytesPerId <= DEDUP_BYTES_TARGET)}` : '',
      ]),
    ),
  );
  out.push('');
  out.push(
    table(
      [
        `restart, ${int(o.ids)}+ ids in the window`,
        '/healthz s',
        'produce served s',
        'dedup restore s',
        'RSS MB',
        'restored from',
        'records read',
        'ids checked',
        'target',
      ],
      o.restarts.map((r) => [
        r.label,
        r.healthSeconds.toFixed(2),
        r.readySeconds.toFixed(2),
        (r.restoreMs / 1000).toFixed(2),
        r.rssMB.toFixed(0),
        r.restoredFrom,
        int(r.recordsRead),
        r.checked ? 'all duplicate' : 'WRONG',
        r.label.includes('deleted') ? '(fallback)' : `<= ${DEDUP_RESTART_TARGET_SECONDS} s ${mark(r.met)}`,
      ]),
    ),
  );
  out.push('');
  out.push(`broker RSS ${o.broker.rssBeforeMB.toFixed(0)} MB before the ids, ${o.broker.rssAfterMB.toFixed(0)} MB after`);
  for (const n of o.notes) out.push(`dedup: ${n}`);
  return out.join('\n');
}
