/** The human-readable table, and the targets check that both the table and the JSON carry. */
import { TARGETS, type Latency, type Size, type SizeResult, type SystemResult, type Throughput } from './plan.js';
import { STARTUP_TARGET_SECONDS, type StartupOutcome } from './startup.js';
import type { CpuPerMessage } from './cpu.js';

export type Outcome = SystemResult | { error: string };

const label = (size: Size) => (size === 1024 ? '1 KiB' : `${size} B`);
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const isResult = (o: Outcome | undefined): o is SystemResult => o !== undefined && !('error' in o);

/** Which targets Junction met (targets are stated for 1 KiB messages; latency for every size). */
export function targetCheck(junction: SystemResult): Record<string, { target: string; value: number; met: boolean }> {
  const out: Record<string, { target: string; value: number; met: boolean }> = {};
  const kib = junction.sizes['1024'];
  const min = (key: string, t: Throughput | undefined, target: number) => {
    if (t) out[key] = { target: `>= ${target} msgs/s`, value: t.msgsPerSec, met: t.msgsPerSec >= target };
  };
  min('produce_1KiB', kib?.produce, TARGETS.produceMsgsPerSec);
  min('consume_1KiB', kib?.consume, TARGETS.consumeMsgsPerSec);
  min('endToEnd_1KiB', kib?.endToEnd, TARGETS.endToEndMsgsPerSec);
  for (const [size, r] of Object.entries(junction.sizes)) {
    const l = r?.latency;
    if (l) out[`latencyP99_${size}B`] = { target: `<= ${TARGETS.latencyP99Ms} ms`, value: l.p99Ms, met: l.p99Ms <= TARGETS.latencyP99Ms };
    const e = r?.echoLatency;
    if (l && e) {
      // Issue 22: at most 2 ms, or at most 1.5 × the p99 of a bare node:http echo server in the same run.
      const bound = Math.max(TARGETS.latencyP99Ms, 1.5 * e.p99Ms);
      out[`latencyP99VsEcho_${size}B`] = {
        target: `<= max(${TARGETS.latencyP99Ms} ms, 1.5 × echo p99 ${e.p99Ms} ms) = ${bound.toFixed(3)} ms`,
        value: l.p99Ms,
        met: l.p99Ms <= bound,
      };
    }
  }
  return out;
}

/** Renders the comparison table (plus notes and errors) as plain text. */
export function renderTable(sizes: Size[], junction: Outcome | undefined, jetstream: Outcome | undefined): string {
  const header = ['scenario', 'junction msgs/s', 'junction MB/s', 'jetstream msgs/s', 'jetstream MB/s', 'ratio', 'target (junction)'];
  const rows: string[][] = [];
  const j = isResult(junction) ? junction : undefined;
  const s = isResult(jetstream) ? jetstream : undefined;
  const thr = (t: Throughput | undefined) => (t ? [`${int(t.msgsPerSec)}${t.capped ? '*' : ''}`, t.mbPerSec.toFixed(1)] : ['-', '-']);
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? `${(a / b).toFixed(2)}x` : '-');
  const mark = (ok: boolean) => (ok ? 'ok' : 'MISS');
  for (const size of sizes) {
    const jr: SizeResult | undefined = j?.sizes[`${size}`];
    const sr: SizeResult | undefined = s?.sizes[`${size}`];
    const scenarios = [
      ['produce', 'produce', TARGETS.produceMsgsPerSec],
      ['consume (backlog)', 'consume', TARGETS.consumeMsgsPerSec],
      ['end to end', 'endToEnd', TARGETS.endToEndMsgsPerSec],
    ] as const;
    for (const [name, key, target] of scenarios) {
      const a = jr?.[key];
      const b = sr?.[key];
      if (!a && !b) continue;
      const targetCell = size === 1024 ? `>= ${int(target)}${a ? ` ${mark(a.msgsPerSec >= target)}` : ''}` : '';
      rows.push([`${name} ${label(size)}`, ...thr(a), ...thr(b), ratio(a?.msgsPerSec, b?.msgsPerSec), targetCell]);
    }
  }
  const lat = (l: Latency | undefined) => (l ? `${l.p50Ms.toFixed(2)} / ${l.p99Ms.toFixed(2)} / ${l.maxMs.toFixed(2)}` : '-');
  const latRows: string[][] = [];
  for (const size of sizes) {
    const jl = j?.sizes[`${size}`]?.latency;
    const sl = s?.sizes[`${size}`]?.latency;
    if (!jl && !sl) continue;
    latRows.push([
      `1-msg produce ${label(size)} p50/p99/max ms`,
      lat(jl),
      '',
      lat(sl),
      '',
      jl && sl ? `${(jl.p99Ms / sl.p99Ms).toFixed(2)}x p99` : '-',
      `p99 <= ${TARGETS.latencyP99Ms} ms${jl ? ` ${mark(jl.p99Ms <= TARGETS.latencyP99Ms)}` : ''}`,
    ]);
  }
  for (const size of sizes) {
    const el = j?.sizes[`${size}`]?.echoLatency;
    const jl = j?.sizes[`${size}`]?.latency;
    if (!el) continue;
    const bound = Math.max(TARGETS.latencyP99Ms, 1.5 * el.p99Ms);
    latRows.push([
      `bare node:http echo ${label(size)} p50/p99/max ms`,
      lat(el),
      '',
      '',
      '',
      jl ? `${(jl.p99Ms / el.p99Ms).toFixed(2)}x p99` : '-',
      jl ? `junction p99 <= ${bound.toFixed(2)} ms ${mark(jl.p99Ms <= bound)}` : '',
    ]);
    // The same server appending each body and fdatasyncing it before the answer: the least a durable
    // acknowledgement costs here. Its p99 beside the echo's says whether the bound is within reach of any
    // durable server on this disk.
    const dl = j?.sizes[`${size}`]?.durableEchoLatency;
    if (dl)
      latRows.push([
        `bare node:http + fdatasync ${label(size)} p50/p99/max ms`,
        lat(dl),
        '',
        '',
        '',
        jl ? `${(jl.p99Ms / dl.p99Ms).toFixed(2)}x p99` : '-',
        `itself ${(dl.p99Ms / el.p99Ms).toFixed(2)}x echo p99`,
      ]);
  }
  const all = [header, ...rows, ...latRows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const out = [line(header), sep, ...rows.map(line), sep, ...latRows.map(line)];
  const cpuRows: string[][] = [];
  const us = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(1));
  for (const size of sizes) {
    for (const [name, key] of [
      ['produce', 'produce'],
      ['consume (backlog)', 'consume'],
      ['end to end', 'endToEnd'],
    ] as const) {
      const a = j?.sizes[`${size}`]?.[key]?.cpu;
      const b = s?.sizes[`${size}`]?.[key]?.cpu;
      if (!a && !b) continue;
      cpuRows.push([`${name} ${label(size)}`, us(a?.serverUs), us(a?.loadGenUs), us(b?.serverUs), us(b?.loadGenUs)]);
    }
  }
  if (cpuRows.length > 0) {
    const h = ['CPU µs per message', 'junction broker', 'junction load gen', 'nats-server', 'jetstream load gen'];
    const all2 = [h, ...cpuRows];
    const w2 = h.map((_, c) => Math.max(...all2.map((r) => (r[c] ?? '').length)));
    const line2 = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(w2[c]!) : cell.padStart(w2[c]!))).join(' | ')} |`;
    out.push('', line2(h), `|${w2.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cpuRows.map(line2));
  }
  out.push('');
  out.push('ratio = junction / jetstream (for latency: junction p99 / jetstream p99; lower is better). MB = 10^6 bytes of message values.');
  out.push('* = stopped by the time cap before the planned count; the rate is still messages / elapsed time.');
  out.push('CPU µs per message: CPU time of that process during the scenario / messages; steadier than rates when the machine is busy.');
  for (const [name, o] of [
    ['junction', junction],
    ['jetstream', jetstream],
  ] as const) {
    if (o === undefined) continue;
    if ('error' in o) out.push(`${name}: FAILED: ${o.error}`);
    else for (const n of o.notes) out.push(`${name}: ${n}`);
  }
  return out.join('\n');
}

/** One phase of the connector row (see connector-runner.ts). */
export interface ConnectorPhaseRow {
  phase: string;
  messages: number;
  msgsPerSec: number;
  withStartMsgsPerSec?: number | undefined;
  mbPerSec: number;
  workerShare: number;
}

/** The connector rows (datagen → station → file sink, 1 KiB) as plain text, with the 150k msgs/s sink target. */
export function renderConnector(result: { phases: ConnectorPhaseRow[]; notes: string[] } | { error: string }): string {
  if ('error' in result) return `connector: FAILED: ${result.error}`;
  const header = ['connector (1 KiB)', 'msgs/s', 'incl. start', 'MB/s', 'worker share', 'target'];
  const rows = result.phases.map((p) => [
    p.phase,
    int(p.msgsPerSec),
    p.withStartMsgsPerSec === undefined || p.withStartMsgsPerSec === p.msgsPerSec ? '' : int(p.withStartMsgsPerSec),
    p.mbPerSec.toFixed(1),
    `${Math.round(p.workerShare * 100)}%`,
    p.phase.startsWith('sink')
      ? `>= ${int(TARGETS.connectorSinkMsgsPerSec)} ${p.msgsPerSec >= TARGETS.connectorSinkMsgsPerSec ? 'ok' : 'MISS'}`
      : '',
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
    'worker share = plugin time in worker threads / (that + busy time of the broker event loop).',
    ...result.notes,
  ].join('\n');
}

/** `npm run bench -- cluster`: Junction on a 3-node JetStream cluster beside direct nats.js (same batching). */
export interface ClusterResult {
  servers: string[];
  junction: Outcome;
  jetstream: Outcome;
  /** Per size and scenario: junction / direct, the overhead (1 - that) and whether it is <= 20%. */
  overhead?: Record<string, { junction: number; direct: number; ratio: number; overhead: number; met: boolean }>;
}

export function clusterOverhead(r: ClusterResult): NonNullable<ClusterResult['overhead']> {
  const out: NonNullable<ClusterResult['overhead']> = {};
  if (!isResult(r.junction) || !isResult(r.jetstream)) return out;
  for (const [size, jr] of Object.entries(r.junction.sizes)) {
    const sr = r.jetstream.sizes[size as `${Size}`];
    for (const key of ['produce', 'consume', 'endToEnd'] as const) {
      const a = jr?.[key];
      const b = sr?.[key];
      if (!a || !b || b.msgsPerSec === 0) continue;
      const ratio = a.msgsPerSec / b.msgsPerSec;
      out[`${key}_${size}B`] = {
        junction: a.msgsPerSec,
        direct: b.msgsPerSec,
        ratio: Math.round(ratio * 100) / 100,
        overhead: Math.round((1 - ratio) * 100) / 100,
        met: ratio >= TARGETS.clusterRatio,
      };
    }
  }
  return out;
}

export function renderCluster(sizes: Size[], r: ClusterResult): string {
  const header = [
    'cluster (3 nodes, R3)',
    'junction msgs/s',
    'junction MB/s',
    'direct nats.js msgs/s',
    'direct MB/s',
    'ratio',
    'overhead',
    'target',
  ];
  const j = isResult(r.junction) ? r.junction : undefined;
  const s = isResult(r.jetstream) ? r.jetstream : undefined;
  const thr = (t: Throughput | undefined) => (t ? [`${int(t.msgsPerSec)}${t.capped ? '*' : ''}`, t.mbPerSec.toFixed(1)] : ['-', '-']);
  const rows: string[][] = [];
  const cpuRows: string[][] = [];
  const us = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(1));
  for (const size of sizes) {
    for (const [name, key] of [
      ['produce', 'produce'],
      ['consume (backlog)', 'consume'],
      ['end to end', 'endToEnd'],
    ] as const) {
      const a = j?.sizes[`${size}`]?.[key];
      const b = s?.sizes[`${size}`]?.[key];
      if (!a && !b) continue;
      const ratio = a && b && b.msgsPerSec ? a.msgsPerSec / b.msgsPerSec : undefined;
      rows.push([
        `${name} ${label(size)}`,
        ...thr(a),
        ...thr(b),
        ratio === undefined ? '-' : `${ratio.toFixed(2)}x`,
        ratio === undefined ? '-' : `${Math.round((1 - ratio) * 100)}%`,
        ratio === undefined ? '' : `<= 20% ${ratio >= TARGETS.clusterRatio ? 'ok' : 'MISS'}`,
      ]);
      cpuRows.push([`${name} ${label(size)}`, us(a?.cpu?.serverUs), us(a?.cpu?.loadGenUs), us(b?.cpu?.serverUs), us(b?.cpu?.loadGenUs)]);
    }
  }
  const out = [...table(header, rows)];
  if (cpuRows.length)
    out.push(
      '',
      ...table(['CPU µs per message', 'broker + 3 nats nodes', 'junction load gen', '3 nats nodes (direct)', 'nats.js load gen'], cpuRows),
    );
  out.push('');
  out.push(
    'ratio = junction / direct nats.js; overhead = 1 - ratio (negative: Junction was faster). Both on the same 3-node cluster, R3, file storage, in this run.',
  );
  out.push('* = stopped by the time cap before the planned count; the rate is still messages / elapsed time.');
  out.push(`cluster: ${r.servers.join(', ')}`);
  for (const [name, o] of [
    ['junction', r.junction],
    ['direct', r.jetstream],
  ] as const) {
    if ('error' in o) out.push(`${name}: FAILED: ${o.error}`);
    else for (const n of o.notes) out.push(`${name}: ${n}`);
  }
  return out.join('\n');
}

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(header: string[], rows: string[][]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
}

/** The sink rows (sinks-runner.ts): each sink through Junction beside the same bytes / rows sent directly. */
export interface SinkRowOut {
  row: string;
  via: 'runtime' | 'plugin';
  junction?: { messages: number; seconds: number; msgsPerSec: number; mbPerSec: number } | undefined;
  baselineName: string;
  baseline?: { messages: number; seconds: number; msgsPerSec: number; mbPerSec: number } | undefined;
  ratio?: number | undefined;
  targets: { target: string; value: number; met: boolean }[];
  firstAckSeconds?: number | undefined;
  withStart?: { messages: number; seconds: number; msgsPerSec: number; mbPerSec: number } | undefined;
  note: string;
  error?: string | undefined;
  cpu?: CpuPerMessage | undefined;
  baselineCpu?: CpuPerMessage | undefined;
  ceiling?: number | undefined;
}
export type SinksOutcome = { rows: SinkRowOut[]; notes: string[]; partSeconds: Record<string, number> } | { error: string };

export function renderSinks(result: SinksOutcome): string {
  if ('error' in result) return `sinks: FAILED: ${result.error}`;
  const header = [
    'sink (through Junction)',
    'via',
    'msgs/s',
    'MB/s',
    'incl. task start',
    'direct / raw msgs/s',
    'direct MB/s',
    'ratio',
    'CPU µs/msg (direct)',
    'ceiling',
    'targets',
  ];
  const cpu = (c: SinkRowOut['cpu']) =>
    c && c.serverUs !== undefined ? `${c.loadGenUs.toFixed(1)}+${c.serverUs.toFixed(1)}` : c ? c.loadGenUs.toFixed(1) : '';
  const rows = result.rows.map((r) => [
    r.row,
    r.via,
    r.junction ? int(r.junction.msgsPerSec) : r.error ? 'FAILED' : '-',
    r.junction ? r.junction.mbPerSec.toFixed(1) : '-',
    r.withStart ? int(r.withStart.msgsPerSec) : '-',
    r.baseline ? int(r.baseline.msgsPerSec) : '-',
    r.baseline ? r.baseline.mbPerSec.toFixed(1) : '-',
    r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x`,
    r.cpu ? `${cpu(r.cpu)}${r.baselineCpu ? ` (${cpu(r.baselineCpu)})` : ''}` : '-',
    r.ceiling === undefined ? '-' : `${r.ceiling.toFixed(2)}x`,
    r.targets.map((t) => `${t.target} ${t.met ? 'ok' : 'MISS'}`).join(', '),
  ]);
  const out = [...table(header, rows), ''];
  out.push(
    'msgs/s: S3 rows count messages, warehouse rows count rows (one per message). MB = 10^6 bytes of message values. ratio = Junction / the direct column.',
  );
  out.push(
    'via runtime: station (filled first) -> sink connector (connect.create, 1 task). msgs/s = the steady rate: messages acked after the first acked batch / time from then until the group has no lag;',
  );
  out.push(
    '  "incl. task start" = all messages / time from resume (worker start, plugin open, connection, table creation included). via plugin: the plugin called directly, no station or runtime.',
  );
  out.push('  The direct column never includes its connection set-up or table creation, so the ratio and the targets use the steady rate.');
  if (result.rows.some((r) => r.cpu))
    out.push(
      "CPU µs/msg: CPU time per message over the same timed window, Junction's process (broker, worker threads, libuv pool; or the plugin's) + the service's (s3rver), the direct path's in brackets (uploader + service).",
      '  ceiling = cores / (Junction + service CPU per message x the direct rate): the ratio no schedule could pass on this machine, as it would need more CPU time than the cores have.',
    );
  for (const r of result.rows) {
    const base = r.baseline ? ` | baseline: ${r.baselineName}, ${r.baseline.messages} in ${r.baseline.seconds} s` : '';
    const first =
      r.firstAckSeconds !== undefined
        ? ` | first batch acked after ${r.firstAckSeconds} s (task start + plugin open + first write, inside the total)`
        : '';
    const total = r.withStart
      ? `${r.withStart.messages} in ${r.withStart.seconds} s from resume, steady: ${r.junction?.messages ?? 0} in ${r.junction?.seconds ?? 0} s`
      : `${r.junction?.messages ?? 0} in ${r.junction?.seconds ?? 0} s`;
    const t = r.cpu?.busiestThread;
    const thread =
      t && r.baseline && r.baseline.msgsPerSec > 0
        ? ` | busiest thread (${t.main ? 'the main thread' : 'a worker or pool thread'}) ${t.us.toFixed(1)} µs/msg: alone it caps the row at ${(1e6 / t.us / r.baseline.msgsPerSec).toFixed(2)}x`
        : '';
    out.push(`${r.row}: ${r.error ? `FAILED: ${r.error}` : `${total}; ${r.note}${base}${first}${thread}`}`);
  }
  out.push(...result.notes);
  out.push(
    `part timings (s): ${Object.entries(result.partSeconds)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  return out.join('\n');
}

/** The start-up rows (startup.ts): seconds to the first /healthz 200 and to the first delivery. */
export function renderStartup(result: StartupOutcome): string {
  if ('error' in result) return `start-up: FAILED: ${result.error}`;
  const header = [`start-up (${result.gigabytes} GB stored)`, 'store open', '/healthz 200', 'first fetch', 'target'];
  const rows = result.rows.map((r) => [
    r.label,
    r.storeOpenMs === undefined ? '-' : `${(r.storeOpenMs / 1000).toFixed(2)} s`,
    `${r.healthSeconds.toFixed(2)} s`,
    r.fetchSeconds === undefined ? '-' : `${r.fetchSeconds.toFixed(2)} s`,
    r.met === undefined ? '' : `<= ${STARTUP_TARGET_SECONDS} s ${r.met ? 'ok' : 'MISS'}`,
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line), ...result.notes].join('\n');
}

/** What `connectors-scale-runner.js` prints (see that file). */
export interface ConnectorScaleRow {
  connectors: number;
  perStation: number;
  baseline: { rssMb: number; threads: number };
  idleNew: { rssMb: number; threads: number; cpuPctOfCore: number; seconds: number };
  idle: { rssMb: number; threads: number; cpuPctOfCore: number; seconds: number };
  fed: { messages: number; seconds: number; msgsPerSec: number; perConnectorMsgsPerSec: number };
  peakRssMb: number;
  perTask: { rssMb: number; threads: number; cpuPctOfCore: number };
  createSeconds: number;
  sources?: { count: number; rssMbPerTask: number; threadsPerTask: number; cpuPctOfCore: number };
  notes: string[];
}

/** The connector scale table: each measure with its target beside it. `single` is the single file-sink row's steady rate, when it ran. */
export function renderConnectorScale(r: ConnectorScaleRow | { error: string }, cores: number, single?: number): string {
  if ('error' in r) return `connectors scale: FAILED: ${r.error}`;
  const maxThreads = cores + TARGETS.connectorsScaleThreadSlack;
  const ok = (met: boolean) => (met ? 'ok' : 'MISS');
  const rows: string[][] = [
    ['RSS before any connector', `${r.baseline.rssMb} MB`, ''],
    [
      'RSS idle, created (none wrote yet)',
      `${r.idleNew.rssMb} MB`,
      `<= ${TARGETS.connectorsScaleRssMb} MB ${ok(r.idleNew.rssMb <= TARGETS.connectorsScaleRssMb)}`,
    ],
    [
      'RSS idle, after all wrote (sinks open)',
      `${r.idle.rssMb} MB`,
      `<= ${TARGETS.connectorsScaleRssMb} MB ${ok(r.idle.rssMb <= TARGETS.connectorsScaleRssMb)}`,
    ],
    [
      'RSS peak (VmHWM), all fed at once',
      `${r.peakRssMb} MB`,
      `<= ${TARGETS.connectorsScaleRssMb} MB ${ok(r.peakRssMb <= TARGETS.connectorsScaleRssMb)}`,
    ],
    [
      'threads (before any connector / idle)',
      `${r.baseline.threads} / ${r.idle.threads}`,
      `<= cores + ${TARGETS.connectorsScaleThreadSlack} = ${maxThreads} ${ok(Math.max(r.idle.threads, r.idleNew.threads) <= maxThreads)}`,
    ],
    [
      `idle CPU over ${r.idle.seconds} s, created / after writing`,
      `${r.idleNew.cpuPctOfCore.toFixed(1)} % / ${r.idle.cpuPctOfCore.toFixed(1)} % of a core`,
      `<= ${TARGETS.connectorsScaleIdleCpuPct} % ${ok(Math.max(r.idleNew.cpuPctOfCore, r.idle.cpuPctOfCore) <= TARGETS.connectorsScaleIdleCpuPct)}`,
    ],
    [`aggregate, ${int(r.fed.messages)} x 1 KiB fed to all at once`, `${int(r.fed.msgsPerSec)} msgs/s`, ''],
    [
      'per connector, all fed at once',
      `${int(r.fed.perConnectorMsgsPerSec)} msgs/s`,
      single === undefined ? '' : `single connector alone: ${int(single)} msgs/s`,
    ],
    [
      'per connector task: RSS / threads / idle CPU',
      `${r.perTask.rssMb} MB / ${r.perTask.threads} / ${r.perTask.cpuPctOfCore} % of a core`,
      '',
    ],
    ...(r.sources
      ? [
          [
            `per source task (${r.sources.count} datagen at 1 msg/s; a thread each): RSS / threads`,
            `${r.sources.rssMbPerTask} MB / ${r.sources.threadsPerTask}`,
            '',
          ],
        ]
      : []),
  ];
  const header = [`connectors scale: ${int(r.connectors)} file sinks on ${int(r.connectors)} stations`, 'measured', 'target'];
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((x) => (x[c] ?? '').length)));
  const line = (x: string[]) => `| ${x.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
    `created in ${r.createSeconds} s.`,
    ...r.notes,
  ].join('\n');
}

/** One ratio of issue 22 with both sides from the same run; `missing` names what did not run. */
export interface Issue22Ratio {
  junction?: number | undefined;
  reference?: number | undefined;
  /** junction / reference (rates: higher is better; latency p99: lower is better). */
  ratio?: number | undefined;
  missing?: string | undefined;
  /** Sink rows: the ratio the CPU both paths spend per message leaves reachable on this machine's cores (SinkRow.ceiling). */
  ceiling?: number | undefined;
}

/**
 * The rows issue 22 names, each beside its reference of the same run, so every ratio reads from one JSON
 * object: consume and produce (1 KiB) vs JetStream via nats.js, the single-produce p99 vs a bare node:http
 * echo server, the S3 sink rows through the runtime vs a raw lib-storage upload, the Snowflake sink vs a
 * direct bulk insert.
 */
export function issue22Ratios(
  junction: Outcome | undefined,
  jetstream: Outcome | undefined,
  sinks: SinksOutcome | undefined,
): Record<string, Issue22Ratio> {
  const j = isResult(junction) ? junction.sizes['1024'] : undefined;
  const s = isResult(jetstream) ? jetstream.sizes['1024'] : undefined;
  const pair = (a: number | undefined, b: number | undefined, what: string): Issue22Ratio =>
    a !== undefined && b !== undefined && b > 0
      ? { junction: a, reference: b, ratio: Math.round((a / b) * 100) / 100 }
      : { junction: a, reference: b, missing: what };
  const out: Record<string, Issue22Ratio> = {
    consume_1KiB_vs_jetstream: pair(
      j?.consume?.msgsPerSec,
      s?.consume?.msgsPerSec,
      'consume of both systems at 1 KiB (run both, scenario consume)',
    ),
    produce_1KiB_vs_jetstream: pair(j?.produce?.msgsPerSec, s?.produce?.msgsPerSec, 'produce of both systems at 1 KiB'),
    latencyP99_1KiB_vs_echo: pair(j?.latency?.p99Ms, j?.echoLatency?.p99Ms, 'the latency scenario of Junction at 1 KiB'),
    // Not a target: what the bound asks of any server that acknowledges after fdatasync, and Junction beside it.
    durableEchoP99_1KiB_vs_echo: pair(j?.durableEchoLatency?.p99Ms, j?.echoLatency?.p99Ms, 'the latency scenario of Junction at 1 KiB'),
    latencyP99_1KiB_vs_durableEcho: pair(j?.latency?.p99Ms, j?.durableEchoLatency?.p99Ms, 'the latency scenario of Junction at 1 KiB'),
  };
  const rows = sinks && !('error' in sinks) ? sinks.rows : [];
  const sinkRatio = (key: string, match: (r: SinkRowOut) => boolean, what: string) => {
    const found = rows.filter(match);
    if (found.length === 0) out[key] = { missing: what };
    for (const r of found) {
      const p = pair(r.junction?.msgsPerSec, r.baseline?.msgsPerSec, `${r.row}: ${r.error ?? 'no rate'}`);
      out[`${key}: ${r.row}`] = r.ceiling === undefined ? p : { ...p, ceiling: r.ceiling };
    }
  };
  sinkRatio('s3_runtime_vs_raw', (r) => r.row.startsWith('S3 sink') && r.via === 'runtime', 'the S3 sink rows (--sinks s3)');
  sinkRatio(
    'snowflake_vs_direct',
    (r) => r.row.toLowerCase().startsWith('snowflake') && r.via === 'runtime',
    'the Snowflake sink row (--sinks snowflake)',
  );
  return out;
}
