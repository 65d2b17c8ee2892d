/** The human-readable table, and the targets check that both the table and the JSON carry. */
import { TARGETS, type Latency, type Size, type SizeResult, type SystemResult, type Throughput } from './plan.js';

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
  mbPerSec: number;
  workerShare: number;
}

/** The connector rows (datagen → station → file sink, 1 KiB) as plain text, with the 150k msgs/s sink target. */
export function renderConnector(result: { phases: ConnectorPhaseRow[]; notes: string[] } | { error: string }): string {
  if ('error' in result) return `connector: FAILED: ${result.error}`;
  const header = ['connector (1 KiB)', 'msgs/s', 'MB/s', 'worker share', 'target'];
  const rows = result.phases.map((p) => [
    p.phase,
    int(p.msgsPerSec),
    p.mbPerSec.toFixed(1),
    `${Math.round(p.workerShare * 100)}%`,
    p.phase.startsWith('sink') ? `>= ${int(TARGETS.connectorSinkMsgsPerSec)} ${p.msgsPerSec >= TARGETS.connectorSinkMsgsPerSec ? 'ok' : 'MISS'}` : '',
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
