/**
 * Summarises a V8 `.cpuprofile` (what `node --cpu-prof` writes): self time by function and by where
 * the code lives (a package, node's internals, the broker's own folders), so "where does the broker's
 * time go" has a short answer.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  functions: { name: string; where: string; selfMs: number; pct: number }[];
  places: { place: string; selfMs: number; pct: number }[];
}

/** Where code lives, coarsely: `node_modules/<pkg>`, `<workspace>/<folder>`, `node:…`, or V8's pseudo-frames. */
function placeOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?([^/]+).*$/, 'node:$1$2');
  const ws = /\/((?:core\/)?[a-z-]+)\/dist\/([^/]+)/.exec(url);
  if (ws) return `${ws[1]}/${ws[2]}`;
  return url;
}

/**
 * `window`: only the samples from the first to the last one whose stack holds a function of that name
 * (e.g. `produce`: the produce phase of a run, without start-up and the idle time around it).
 */
export function summarizeProfile(file: string, top = 25, window?: string): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const [from, to] = window ? windowOf(p, window) : [0, p.samples.length - 1];
  const self = new Map<number, number>();
  for (let i = from; i <= to; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const byFn = new Map<string, { name: string; where: string; us: number }>();
  const byPlace = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0;
    if (!us) continue;
    total += us;
    const { functionName, url, lineNumber } = n.callFrame;
    const name = functionName || '(anonymous)';
    const short = url.replace(/^file:\/\/.*\/node_modules\//, '').replace(/^file:\/\/.*?\/((?:core\/)?[a-z-]+\/dist\/)/, '$1');
    const where = url ? `${short}:${lineNumber + 1}` : '';
    const key = `${name}@${where}`;
    const e = byFn.get(key) ?? { name, where, us: 0 };
    e.us += us;
    byFn.set(key, e);
    const place = placeOf(url, name);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((1000 * us) / (total || 1)) / 10;
  return {
    totalMs: Math.round(total / 1000),
    functions: [...byFn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, selfMs: Math.round(f.us / 1000), pct: pct(f.us) })),
    places: [...byPlace.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([place, us]) => ({ place, selfMs: Math.round(us / 1000), pct: pct(us) })),
  };
}

/** Indexes of the first and the last sample whose stack holds a frame named `fn` (the whole profile when none does). */
function windowOf(p: CpuProfile, fn: string): [number, number] {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const holds = new Map<number, boolean>();
  const inStack = (id: number): boolean => {
    let v = holds.get(id);
    if (v === undefined) {
      const up = parent.get(id);
      v = byId.get(id)?.callFrame.functionName === fn || (up !== undefined && inStack(up));
      holds.set(id, v);
    }
    return v;
  };
  let first = -1;
  let last = -1;
  for (let i = 0; i < p.samples.length; i++) {
    if (!inStack(p.samples[i]!)) continue;
    if (first < 0) first = i;
    last = i;
  }
  return first < 0 ? [0, p.samples.length - 1] : [first, last];
}

export function renderProfile(s: ProfileSummary): string {
  const lines = [`broker CPU profile: ${s.totalMs} ms sampled`, '', 'self time by place:'];
  for (const p of s.places) lines.push(`  ${p.pct.toFixed(1).padStart(5)}%  ${String(p.selfMs).padStart(6)} ms  ${p.place}`);
  lines.push('', 'self time by function:');
  for (const f of s.functions) lines.push(`  ${f.pct.toFixed(1).padStart(5)}%  ${String(f.selfMs).padStart(6)} ms  ${f.name}  ${f.where}`);
  return lines.join('\n');
}
