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

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
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

export function renderProfile(s: ProfileSummary): string {
  const lines = [`broker CPU profile: ${s.totalMs} ms sampled`, '', 'self time by place:'];
  for (const p of s.places) lines.push(`  ${p.pct.toFixed(1).padStart(5)}%  ${String(p.selfMs).padStart(6)} ms  ${p.place}`);
  lines.push('', 'self time by function:');
  for (const f of s.functions) lines.push(`  ${f.pct.toFixed(1).padStart(5)}%  ${String(f.selfMs).padStart(6)} ms  ${f.name}  ${f.where}`);
  return lines.join('\n');
}
