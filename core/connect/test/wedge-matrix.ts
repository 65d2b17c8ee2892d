/**
 * The wedge matrix: a sink plugin misbehaves in one way (open throws, hangs, rejects late or spins;
 * write throws synchronously, rejects, never settles or answers the wrong count; close hangs; plugin code
 * blocked in a native call that never returns). For each: the failure shows in status with its code, the
 * broker's event loop stays mostly idle while the task backs off, and pause, resume, restart, shutdown and
 * delete each finish within their documented bound; afterwards nothing is left out with a worker.
 *
 * One test file per isolation mode (wedge-thread.test.ts, wedge-shared.test.ts) registers it through
 * wedgeMatrix(): the two halves, each minutes of documented bounds waited out, run in parallel.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { stopBoundMs } from '../src/sink-runner.js';
import type { StopTimeouts } from '../src/sink-runner.js';
import type { ConnectorStatus } from '../src/index.js';
import { harness, lagOf, produceN, waitFor, written } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
let fifo: string;
/** FIFOs `<fifo>.0` … : the test plugin's attempt n blocks opening `<fifo>.<n>`. */
const FIFOS = 12;
/**
 * Every case runs twice: with the plugin's tasks on threads of their own (an untrusted plugin), and on a
 * thread of the shared pool (a trusted one), where a thread that must go is recycled instead.
 */
export type WedgeIsolation = 'thread' | 'shared';
let mode: WedgeIsolation = 'thread';

/** Lets the open(2) blocked on `<fifo>.<n>` return (a writer opens it); false when nobody waited there. */
function releaseFifo(n: number): boolean {
  try {
    closeSync(openSync(`${fifo}.${n}`, constants.O_WRONLY | constants.O_NONBLOCK));
    return true;
  } catch {
    return false; // ENXIO: nobody is reading
  }
}

/** Releases the attempts below `upTo`. */
function releaseFifos(upTo: number): void {
  for (let n = 0; n < upTo; n++) releaseFifo(n);
}

/** How many faulty calls of `kind` the test plugin has begun (its attempt counter). */
function attempts(dir: string, kind: 'open' | 'write' | 'close'): number {
  try {
    return readdirSync(join(dir, `${kind}-attempts`, 'attempts')).length;
  } catch {
    return 0;
  }
}

const MESSAGES = 40;
const WRITE_TIMEOUT_MS = 300;
/**
 * The stop's waits on a plugin that does not cooperate, shorter than the product's (2 s for a terminated
 * thread to exit, 5 s for close()): the cases that wait them out (native calls, close hanging) wait each
 * one out at every pause, restart, shutdown and delete, which took most of this matrix's time. The same
 * code paths and the same bounds (stopBoundMs of these) are checked; a healthy thread exits and a healthy
 * close finishes in tens of ms, well inside them even on a loaded machine.
 */
const TIMEOUTS: StopTimeouts = { terminateWaitMs: 1000, closeTimeoutMs: 1500 };

interface Case {
  name: string;
  config: Record<string, unknown>;
  /** The fault has shown (and the task now backs off, or waits on the plugin). */
  shown: (s: ConnectorStatus, writing: number) => boolean;
  /** Checked once on the status that showed it. */
  check?: (s: ConnectorStatus) => void;
}

const task = (s: ConnectorStatus) => s.tasks[0]!;

const cases: Case[] = [
  {
    name: 'open throws a configuration error: the task and the connector fail for good with its code',
    config: { open: 'throw' },
    shown: (s) => s.connector.state === 'FAILED',
    check: (s) => {
      expect(task(s)).toMatchObject({ state: 'FAILED', lastError: { code: 'DESTINATION_UNUSABLE' } });
      expect(task(s).restartAt).toBeUndefined();
      expect(task(s).trace).toContain('DESTINATION_UNUSABLE');
      expect(s.connector.trace).toContain('the test destination cannot be used as configured');
      expect(s.retrying).toBeUndefined();
    },
  },
  {
    name: 'open throws a retryable error: the task stays RUNNING, retrying, with the error in status',
    config: { open: 'throw-retryable' },
    shown: (s) => (task(s).retrying?.attempts ?? 0) >= 3,
    check: (s) => {
      expect(task(s).state).toBe('RUNNING');
      expect(task(s).lastError).toMatchObject({ code: 'CONNECTION_FAILED', message: 'the test destination is down' });
      expect(s.retrying?.since).toBeLessThanOrEqual(Date.now());
      expect(s.lastError?.code).toBe('CONNECTION_FAILED');
    },
  },
  { name: 'open hangs', config: { open: 'hang' }, shown: (_s, writing) => writing > 0 },
  { name: 'open spins in a busy loop', config: { open: 'spin' }, shown: (_s, writing) => writing > 0 },
  {
    name: 'open rejects late',
    config: { open: 'late', delayMs: 700 },
    shown: (s) => (task(s).retrying?.attempts ?? 0) >= 1,
    check: (s) => expect(task(s).lastError?.code).toBe('CONNECTION_FAILED'),
  },
  {
    name: 'open blocks in a native call that never returns (its thread cannot be terminated)',
    config: { open: 'native' },
    shown: (_s, writing) => writing > 0,
  },
  {
    name: 'write throws synchronously',
    config: { write: 'throw-sync' },
    shown: (s) => task(s).lastError?.code === 'SINK_BROKEN' && task(s).retrying !== undefined,
    check: (s) => expect(task(s).state === 'FAILED' ? task(s).restartAt : Date.now()).toBeGreaterThan(0),
  },
  {
    name: 'write rejects',
    config: { write: 'reject' },
    shown: (s) => task(s).lastError?.code === 'SINK_BROKEN' && task(s).retrying !== undefined,
  },
  { name: 'write never settles', config: { write: 'never' }, shown: (s) => task(s).lastError?.code === 'WRITE_TIMEOUT' },
  { name: 'write returns the wrong count', config: { write: 'wrong-count' }, shown: (s) => task(s).lastError?.code === 'PLUGIN_INVALID' },
  {
    name: 'write blocks in a native call that never returns: WORKER_STUCK, no automatic restart while the thread is stuck',
    config: { write: 'native' },
    shown: (s) => task(s).lastError?.code === 'WORKER_STUCK',
    check: (s) => {
      expect(task(s).state).toBe('FAILED');
      expect(task(s).restartAt).toBeUndefined();
      expect(task(s).lastError?.message).toContain(`did not exit within ${TIMEOUTS.terminateWaitMs} ms of being terminated`);
    },
  },
  { name: 'close hangs', config: { close: 'hang' }, shown: (s) => s.lag === 0 },
  { name: 'close blocks in a native call that never returns', config: { close: 'native' }, shown: (s) => s.lag === 0 },
];

/** Event-loop utilisation of this thread (where the broker's store and the runtime run) over `ms`. */
async function eluOver(ms: number): Promise<number> {
  const start = performance.eventLoopUtilization();
  // A measurement window, not a wait for some state: the runtime backs off meanwhile.
  await new Promise((r) => setTimeout(r, ms));
  return performance.eventLoopUtilization(start).utilization;
}

/** Measured durations per case (printed with JUNCTION_WEDGE_REPORT=1, for the README's table). */
const report = new Map<string, Record<string, number>>();
let current = '';
afterAll(() => {
  if (process.env.JUNCTION_WEDGE_REPORT !== '1' || report.size === 0) return;
  const cols = ['elu', 'pause', 'resume', 'restart', 'shutdown', 'delete'];
  const lines = [`| case | ${cols.join(' | ')} |`, `| --- |${cols.map(() => ' ---: |').join('')}`];
  for (const [name, r] of report)
    lines.push(`| ${name} | ${cols.map((k) => (k === 'elu' ? (r[k] ?? 0).toFixed(3) : `${Math.round(r[k] ?? 0)} ms`)).join(' | ')} |`);
  console.log(lines.join('\n'));
});

async function timed(what: string, op: () => Promise<unknown>, boundMs: number): Promise<number> {
  const t0 = performance.now();
  await op();
  const ms = performance.now() - t0;
  (report.get(current) ?? report.set(current, {}).get(current)!)[what] = ms;
  expect(ms, `${what} took ${Math.round(ms)} ms (bound ${boundMs} ms)`).toBeLessThan(boundMs);
  return ms;
}

/** Registers the whole matrix for one isolation mode in the calling test file. */
export function wedgeMatrix(isolation: WedgeIsolation): void {
  mode = isolation;
  beforeEach(async () => {
    h = await harness({
      ...(mode === 'shared' && { connect: { sharedPool: { threads: 1 }, plugins: { 'test-wedge': { isolation: 'shared' } } } }),
      stopTimeouts: TIMEOUTS,
    });
    fifo = join(h.dir, 'wedge.fifo');
    execFileSync(
      'mkfifo',
      Array.from({ length: FIFOS }, (_, n) => `${fifo}.${n}`),
    );
  });
  afterEach(async () => {
    releaseFifos(FIFOS);
    await h.cleanup();
  });

  describe(`a misbehaving sink never wedges the runtime (isolation ${isolation})`, () => {
    beforeAll(() => {
      mode = isolation;
    });
    // Stop: the documented bound (grace for started writes + terminate wait + close timeout + exit wait);
    // a start is store work and thread creation; a restart is both. One second of slack for a busy machine.
    const stopBound = stopBoundMs(WRITE_TIMEOUT_MS, TIMEOUTS) + 1000;
    const startBound = 3000;

    for (const c of cases) {
      it(c.name, async () => {
        current = `${c.name.split(':')[0]!} (${isolation})`;
        await h.store.createStation('s', { partitions: 2 });
        await produceN(h.store, 's', MESSAGES);
        const dir = join(h.dir, 'rec');
        const decl = {
          name: 'w',
          plugin: 'test-wedge',
          station: 's',
          config: { dir, fifo, ...c.config },
          batch: { maxLatencyMs: 20 },
          writeTimeoutMs: WRITE_TIMEOUT_MS,
          errors: { retryMaxDelayMs: 500 },
        };
        await timed('create', () => h.runtime.create(decl), startBound);
        const shown = await waitFor(
          async () => {
            const s = await h.runtime.status('w');
            return c.shown(s, h.runtime.buffered('w')?.writing ?? 0) ? s : undefined;
          },
          { what: `the fault (${c.name})`, timeoutMs: 15_000 },
        );
        c.check?.(shown);
        const elu = await eluOver(1000);
        (report.get(current) ?? report.set(current, {}).get(current)!).elu = elu;
        // A runtime that spins or polls hot keeps the loop busy (utilisation near 1). Utilisation counts
        // wall time, so on a loaded machine (parallel files, a CPU hog) an idle loop reads 0.2-0.3 at times.
        expect(elu, 'event-loop utilisation while the task backs off').toBeLessThan(0.5);

        // A thread blocked on a FIFO holds one of this process's four libuv threads, and each operation
        // abandons the one blocked before it: those are let go after it (the attempts begun before it),
        // while the attempt the next start makes stays blocked for the next operation.
        const native = (['open', 'write', 'close'] as const).find((k) => c.config[k] === 'native');
        let released = 0;
        const op = async (what: string, fn: () => Promise<unknown>, bound: number): Promise<void> => {
          const before = native ? attempts(dir, native) : 0;
          await timed(what, fn, bound);
          if (native) releaseFifos((released = before));
        };
        /** Native faults: the next start blocked again (an attempt not let go), so the next operation meets it. */
        const rewedged = async (): Promise<void> => {
          if (native === 'open' || native === 'write')
            await waitFor(() => attempts(dir, native) > released, { what: 'the plugin to block again' });
        };
        // A sink opens on its first batch: for a close that misbehaves, each stop must find one open, so
        // a few more messages are written (and the sink opened) before each.
        let produced = MESSAGES;
        const openSink = async (): Promise<void> => {
          if (c.config.close === undefined) return;
          await produceN(h.store, 's', 4, { prefix: `more-${produced}` });
          produced += 4;
          await waitFor(async () => (await lagOf(h.store, 's', 'w')) === 0, { what: 'the sink to open and write' });
        };
        await op('pause', () => h.runtime.pause('w'), stopBound);
        expect((await h.runtime.status('w')).connector.state).toBe('PAUSED');
        await op('resume', () => h.runtime.resume('w'), startBound);
        await openSink();
        await rewedged();
        await op('restart', () => h.runtime.restart('w'), stopBound + startBound);
        await openSink();
        await rewedged();
        await op('shutdown', () => h.runtime.close(), stopBound);
        await h.reopen();
        await openSink();
        await rewedged();
        await op('delete', () => h.runtime.delete('w'), stopBound);

        // Nothing is left out with a worker: what was not acknowledged went back to the group, and every
        // acknowledged message was written.
        const g = await h.store.getGroup('s', 'connector.w');
        expect(g.pending).toBe(0);
        const lag = await lagOf(h.store, 's', 'w');
        expect((await written(dir)).unique).toBeGreaterThanOrEqual(produced - lag);
      });
    }
  });

  describe(`a thread stuck in native code (isolation ${isolation})`, () => {
    beforeAll(() => {
      mode = isolation;
    });
    it('fails its task with WORKER_STUCK; once the call returns and the thread exits, the task restarts and writes everything exactly once', async () => {
      await h.store.createStation('s', { partitions: 1 });
      await produceN(h.store, 's', MESSAGES);
      const dir = join(h.dir, 'rec');
      await h.runtime.create({
        name: 'w',
        plugin: 'test-wedge',
        station: 's',
        config: { dir, fifo, write: 'native', times: 1 },
        batch: { maxLatencyMs: 20 },
        writeTimeoutMs: WRITE_TIMEOUT_MS,
      });
      const stuck = await waitFor(
        async () => {
          const s = await h.runtime.status('w');
          return task(s).lastError?.code === 'WORKER_STUCK' ? s : undefined;
        },
        { what: 'WORKER_STUCK' },
      );
      expect(task(stuck)).toMatchObject({ state: 'FAILED', restarts: 0 });
      expect(task(stuck).retrying?.attempts).toBeGreaterThanOrEqual(1);
      expect(await h.prom.getSingleMetricAsString('junction_connect_stranded_threads')).toMatch(/junction_connect_stranded_threads 1/);
      // Still stuck a while later: no restart strands another thread.
      await waitFor(async () => (await h.runtime.status('w')).tasks[0]!.state === 'FAILED', { what: 'still FAILED' });
      expect(task(await h.runtime.status('w')).restarts).toBe(0);

      expect(releaseFifo(0)).toBe(true);
      await waitFor(async () => (await lagOf(h.store, 's', 'w')) === 0, { what: 'lag 0 after the thread exited', timeoutMs: 20_000 });
      const s = await h.runtime.status('w');
      expect(task(s)).toMatchObject({ state: 'RUNNING', restarts: 1 });
      expect(task(s).retrying).toBeUndefined();
      expect(task(s).lastError?.code).toBe('WORKER_STUCK');
      const w = await written(dir);
      expect(w.unique).toBe(MESSAGES);
      expect(w.lines).toBe(MESSAGES);
      expect(await h.prom.getSingleMetricAsString('junction_connect_stranded_threads')).toMatch(/junction_connect_stranded_threads 0/);
    });
  });
}
