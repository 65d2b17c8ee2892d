/**
 * `npm run bench -- transforms`: what a connector's transforms cost. One broker in this process
 * (`startServer`: the embedded store, fsync always; the registry; the connector runtime), a station
 * filled by datagen (orders of ≥ 1 KiB, `padTo: 1024`), then two file sinks (fsync on, batches of 5000)
 * drain the same backlog through groups of their own: one without transforms, one with a 3-step chain
 * (filter: drop cancelled orders; mask: hash userId; rename: orderId → id). The rows alternate round by
 * round (a fresh connector each time, the order turned each round) so a noisy minute hits both; the median
 * of the rounds counts. Each row also shows the process's CPU per message (all threads). Two
 * more rows show where the cost is: the filter alone (every value parsed, none re-encoded) and two header
 * steps (nothing parsed).
 * Rate = messages of the backlog settled (written, or dropped by the filter and acked) per second,
 * from resume to no lag. Target: the chain keeps ≥ 80 % of the plain rate.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startServer } from '@junction/server';
import { log } from './plan.js';

const CHAIN = [
  { type: 'filter', drop: { field: 'status', eq: 'cancelled' } },
  { type: 'mask', fields: ['userId'], method: 'hash' },
  { type: 'rename', fields: { orderId: 'id' } },
] as const;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** CPU nanoseconds of each thread of this process (Linux: /proc/self/task/<tid>/schedstat); empty elsewhere. */
function threadCpuNs(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        out.set(tid, Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    // not Linux: the split is not shown
  }
  return out;
}

/**
 * Where a row's CPU went, µs per message: the main thread (store reads, the runtime, packing batches for
 * the worker), the busiest other thread (the sink's worker: unpack, transforms, the file sink's encoding)
 * and the rest (libuv's pool doing the file I/O, V8's GC helpers, datagen's thread when idle).
 */
function threadSplit(
  before: Map<string, number>,
  after: Map<string, number>,
  messages: number,
): { main: number; sink: number; rest: number } | undefined {
  if (after.size === 0) return undefined;
  const main = String(process.pid);
  let sink = 0;
  let rest = 0;
  for (const [tid, ns] of after) {
    if (tid === main) continue;
    const d = ns - (before.get(tid) ?? 0);
    if (d > sink) {
      rest += sink;
      sink = d;
    } else rest += d;
  }
  const us = (ns: number): number => +(ns / 1000 / messages).toFixed(1);
  return { main: us(after.get(main)! - (before.get(main) ?? 0)), sink: us(sink), rest: us(rest) };
}

export async function runTransformsBench(opts: { quick: boolean; json: boolean; rows?: number[] | undefined }): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'junction-bench-transforms-'));
  const server = await startServer({
    dataDir: join(dir, 'data'),
    host: '127.0.0.1',
    port: 0,
    logLevel: 'error',
    env: {},
    watchConfig: false,
  });
  const { store, connect } = server;
  const until = async (cond: () => Promise<boolean>): Promise<void> => {
    while (!(await cond())) await new Promise((r) => setTimeout(r, 20));
  };
  try {
    const total = opts.quick ? 50_000 : 200_000;
    const rounds = opts.quick ? 3 : 5;
    await store.createStation('orders', { partitions: 1, dedupWindowMs: 0 });
    log(`transforms bench: filling the station with ${total} orders`);
    await connect.create({
      name: 'gen',
      plugin: 'datagen',
      station: 'orders',
      config: { shape: 'order', seed: 1, padTo: 1024, batchSize: 1000, maxMessages: total },
    });
    await until(async () => (await store.getStation('orders')).messages >= total);
    const rows = [
      { row: 'file sink, no transforms', transforms: [] as unknown[], target: undefined as number | undefined },
      { row: 'file sink, filter + mask + rename', transforms: CHAIN as unknown as unknown[], target: 0.8 as number | undefined },
      // Where the cost is: a filter on a field parses every value but re-encodes none; header steps parse nothing.
      { row: 'file sink, filter only (parse, bytes kept)', transforms: [CHAIN[0]] as unknown[], target: undefined },
      {
        row: 'file sink, setHeader + filter on a header',
        transforms: [
          { type: 'setHeader', header: 'via', value: 'bench' },
          { type: 'filter', drop: { header: 'via', eq: 'nobody' } },
        ] as unknown[],
        target: undefined,
      },
    ];
    const rates: number[][] = rows.map(() => []);
    // CPU of the whole process (every thread: store, runtime, the sink's worker) per message: steadier
    // than the rate on a machine shared with other work, and what the transforms add whatever the disk does.
    const cpu: number[][] = rows.map(() => []);
    const split: { main: number; sink: number; rest: number }[][] = rows.map(() => []);
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      // The order turns each round: the row that runs first meets a cold process (JIT, page cache), and
      // with a fixed order that was always the plain row (its first-round ratios were all above 1).
      for (let k = 0; k < rows.length; k++) {
        const i = (k + r) % rows.length;
        // --rows 0,1: only those rows (profiling one row; the plain row 0 stays the reference).
        if (opts.rows !== undefined && !opts.rows.includes(i)) continue;
        const name = `sink-${n++}`;
        await connect.create({
          name,
          plugin: 'file',
          station: 'orders',
          config: { dir: join(dir, 'out', name), fsync: true },
          batch: { maxMessages: 5000, maxBytes: 8 * 1024 * 1024, maxLatencyMs: 200 },
          transforms: rows[i]!.transforms,
          state: 'STOPPED',
        } as Parameters<typeof connect.create>[0]);
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        const th0 = threadCpuNs();
        await connect.resume(name);
        await until(async () => (await store.getGroup('orders', `connector.${name}`)).lag === 0);
        const rate = total / ((performance.now() - t0) / 1000);
        const c = process.cpuUsage(c0);
        const th = threadSplit(th0, threadCpuNs(), total);
        rates[i]!.push(rate);
        cpu[i]!.push((c.user + c.system) / total);
        if (th) split[i]!.push(th);
        log(
          `transforms bench round ${r + 1}/${rounds}: ${rows[i]!.row} ${Math.round(rate)} msgs/s, ${cpu[i]!.at(-1)!.toFixed(1)} µs CPU/msg${th ? ` (main ${th.main}, sink thread ${th.sink}, rest ${th.rest})` : ''}`,
        );
        await connect.delete(name);
        rmSync(join(dir, 'out', name), { recursive: true, force: true });
      }
    }
    const base = rates[0]!.length > 0 ? median(rates[0]!) : NaN;
    const ran = rows.map((row, i) => ({ row, i })).filter(({ i }) => rates[i]!.length > 0);
    const out = ran.map(({ row, i }) => {
      const m = median(rates[i]!);
      const ratio = m / base;
      return {
        row: row.row,
        msgsPerSec: Math.round(m),
        ratio,
        target: row.target,
        ok: row.target === undefined ? undefined : ratio >= row.target,
        rounds: rates[i]!.map(Math.round),
        cpuMicrosPerMsg: +median(cpu[i]!).toFixed(1),
        // Medians of each thread group apart (their sum need not be the total's median).
        cpuSplit:
          split[i]!.length === 0
            ? undefined
            : {
                main: median(split[i]!.map((x) => x.main)),
                sink: median(split[i]!.map((x) => x.sink)),
                rest: median(split[i]!.map((x) => x.rest)),
              },
        roundRatios: i === 0 || rates[0]!.length === 0 ? undefined : rates[i]!.map((x, k) => +(x / rates[0]![k]!).toFixed(2)),
      };
    });
    if (opts.json) process.stdout.write(`${JSON.stringify({ transforms: out, messages: total, rounds })}\n`);
    else {
      const lines = [
        `Transforms: ${total.toLocaleString('en-US')} orders (≥ 1 KiB, datagen) drained by a file sink (fsync, batches of 5000), ${rounds} rounds alternating, median`,
        '',
        '| row | msgs/s (median) | of no transforms | target | CPU µs/msg (median, all threads) | main / sink thread / rest | rounds | ratio per round |',
        '| --- | ---: | ---: | --- | ---: | --- | --- | --- |',
        ...out.map(
          (r) =>
            `| ${r.row} | ${r.msgsPerSec.toLocaleString('en-US')} | ${r.ratio.toFixed(2)} | ${r.target === undefined ? '—' : `≥ ${r.target} ${r.ok ? 'ok' : 'MISS'}`} | ${r.cpuMicrosPerMsg} | ${r.cpuSplit ? `${r.cpuSplit.main} / ${r.cpuSplit.sink} / ${r.cpuSplit.rest}` : '—'} | ${r.rounds.join(', ')} | ${r.roundRatios?.join(', ') ?? '—'} |`,
        ),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return 0;
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
