/**
 * CPU time spent per message, by the load generator (this process) and by the server (another
 * process, read from /proc). Wall-clock rates swing with whatever else runs on the machine; CPU per
 * message barely does, so it is the steadier way to compare two runs or two systems.
 */
import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_SEC = 100; // USER_HZ on Linux

/** utime + stime of a process in µs, or undefined where /proc is not readable. */
function procCpuUs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1e6) / TICKS_PER_SEC;
  } catch {
    return undefined;
  }
}

export interface CpuPerMessage {
  /** µs of CPU the load generator process spent per message. */
  loadGenUs: number;
  /** µs of CPU the server process spent per message (absent when its pid is unknown). */
  serverUs?: number;
  /** The load generator process's busiest thread (sink rows, where that process is Junction's). */
  busiestThread?: BusiestThread | undefined;
}

/** CPU of one server process, or the sum of several (the nodes of a cluster); undefined if any is unreadable. */
function serverCpuUs(pids: number | readonly number[]): number | undefined {
  let sum = 0;
  for (const pid of typeof pids === 'number' ? [pids] : pids) {
    const us = procCpuUs(pid);
    if (us === undefined) return undefined;
    sum += us;
  }
  return sum;
}

/**
 * The ratio to a baseline that a path spending `cpu` per message (its process's and the service's)
 * cannot pass on `cores` cores: cores / (CPU per message × the baseline's rate) — beyond it the path
 * would need more CPU time a second than the cores have, however well its work overlapped.
 */
export function cpuCeiling(
  cpu: CpuPerMessage | undefined,
  baseline: { msgsPerSec: number } | undefined,
  cores: number,
): number | undefined {
  if (!cpu || cpu.serverUs === undefined || !baseline || baseline.msgsPerSec <= 0) return undefined;
  const us = cpu.loadGenUs + cpu.serverUs;
  return us > 0 ? Math.round((cores / ((us / 1e6) * baseline.msgsPerSec)) * 100) / 100 : undefined;
}

/** Starts measuring; call the returned function with the message count when the scenario ends. */
export function cpuMeter(serverPid: number | readonly number[] | undefined): (messages: number) => CpuPerMessage {
  const self0 = process.cpuUsage();
  const server0 = serverPid ? serverCpuUs(serverPid) : undefined;
  return (messages) => {
    const d = process.cpuUsage(self0);
    const n = Math.max(1, messages);
    const out: CpuPerMessage = { loadGenUs: Math.round(((d.user + d.system) / n) * 100) / 100 };
    const server1 = serverPid ? serverCpuUs(serverPid) : undefined;
    if (server0 !== undefined && server1 !== undefined) out.serverUs = Math.round(((server1 - server0) / n) * 100) / 100;
    return out;
  };
}

/** utime + stime of each thread of this process in µs, by thread id (/proc/self/task); empty where unreadable. */
function threadCpuUs(): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out.set(Number(tid), ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SEC);
      } catch {
        // The thread ended between the listing and the read.
      }
    }
  } catch {
    // No /proc: nothing to report.
  }
  return out;
}

/** The thread of this process that spent the most CPU per message, and whether it is the main thread. */
export interface BusiestThread {
  us: number;
  main: boolean;
}

/**
 * Starts measuring this process's threads (main, worker threads, libuv's pool, V8's helpers); the
 * returned function gives the busiest one's CPU per message since (threads started meanwhile count from
 * zero; a thread that ended meanwhile is not seen). Work that one thread does in series caps a rate at
 * 1 / that CPU, however many cores are idle.
 */
export function threadMeter(): (messages: number) => BusiestThread | undefined {
  const before = threadCpuUs();
  return (messages) => {
    let best: BusiestThread | undefined;
    for (const [tid, us] of threadCpuUs()) {
      const d = (us - (before.get(tid) ?? 0)) / Math.max(1, messages);
      if (!best || d > best.us) best = { us: Math.round(d * 100) / 100, main: tid === process.pid };
    }
    return best;
  };
}

/** The pid of the one process whose command name is `name`, if exactly one runs. */
export function findPid(name: string): number | undefined {
  const found: number[] = [];
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === name) found.push(Number(d));
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    return undefined;
  }
  return found.length === 1 ? found[0] : undefined;
}
