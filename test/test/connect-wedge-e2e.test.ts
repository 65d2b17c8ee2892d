/**
 * Issue 15, item 1, in a real broker process: a file sink whose folder cannot be created (`/proc/nope`)
 * and a plugin blocked in a native call that never returns (opening a FIFO nobody writes) do not wedge
 * the broker. The first fails at once with DESTINATION_UNUSABLE; the process stays idle; pause and DELETE
 * answer within their bound; SIGTERM ends the process within the shutdown bound; nothing is lost.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, eventually, repoRoot, sleep, startBroker, type BrokerProcess } from '../src/index.js';

/** CPU seconds (user + system) the process used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "(comm) ".
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function timed<T>(what: string, boundMs: number, op: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await op();
  const ms = Date.now() - t0;
  if (process.env.JUNCTION_WEDGE_REPORT === '1') console.log(`${what}: ${ms} ms (bound ${boundMs} ms)`);
  expect(ms, `${what} took ${ms} ms (bound ${boundMs} ms)`).toBeLessThan(boundMs);
  return { value, ms };
}

// The documented bounds (README, "What the runtime guarantees"): a connector's stop takes at most
// min(10 s, writeTimeoutMs + grace) + 2 s + 5 s + 2 s = 19 s with the default writeTimeoutMs; shutdown
// adds the HTTP close grace (5 s) and the store's close. One second of slack each.
const STOP_BOUND_MS = 19_000 + 1000;
const SHUTDOWN_BOUND_MS = 19_000 + 5000 + 1000;

describe('a wedged plugin in a real broker process', () => {
  const dirs: string[] = [];
  const brokers: BrokerProcess[] = [];
  afterAll(async () => {
    for (const b of brokers) await b.kill();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('file sink on /proc/nope and a plugin blocked in native code: DESTINATION_UNUSABLE, an idle process, pause / DELETE / SIGTERM in bound, nothing lost', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-wedge-e2e-'));
    dirs.push(dataDir);
    const fifo = join(dataDir, 'wedge.fifo');
    execFileSync('mkfifo', [fifo]);
    // A plugin package in <dataDir>/plugins whose open() writes a marker, then blocks opening the FIFO.
    const pkgDir = join(dataDir, 'plugins', 'node_modules', 'junction-connector-wedged');
    await mkdir(pkgDir, { recursive: true });
    await mkdir(join(dataDir, 'plugins', 'node_modules', '@junction'), { recursive: true });
    await symlink(join(repoRoot, 'sdk-connector'), join(dataDir, 'plugins', 'node_modules', '@junction', 'sdk-connector'), 'dir');
    await writeFile(
      join(pkgDir, 'package.json'),
      JSON.stringify({
        name: 'junction-connector-wedged',
        version: '0.1.0',
        type: 'module',
        junction: { kind: 'sink', entry: './index.js' },
        dependencies: { '@junction/sdk-connector': '^1.0.0' },
      }),
    );
    await writeFile(
      join(pkgDir, 'index.js'),
      `import { mkdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { defineSink, ok, z } from '@junction/sdk-connector';
export default defineSink({
  name: 'wedged', version: '0.1.0', sdk: '^1',
  config: z.strictObject({ fifo: z.string(), markers: z.string() }),
  async open(config) {
    mkdirSync(config.markers, { recursive: true });
    writeFileSync(join(config.markers, String(Date.now()) + '-' + Math.random()), '');
    const fh = await open(config.fifo, 'r');
    await fh.close();
    return { write: async (batch) => batch.messages.map(() => ok()), close: async () => {} };
  },
});
`,
    );
    const broker = await startBroker({ dataDir, env: { JUNCTION_LOG_LEVEL: 'info' } });
    brokers.push(broker);
    const pid = broker.child.pid!;
    await api(broker.url, 'POST', '/v1/stations', { name: 's', partitions: 2 });
    const produced = await api<{ results: unknown[] }>(broker.url, 'POST', '/v1/stations/s/messages', {
      messages: Array.from({ length: 50 }, (_, i) => ({ value: `m-${i}` })),
    });
    expect(produced.results).toHaveLength(50);

    // The request, as it was sent.
    await api(broker.url, 'POST', '/v1/connectors', { name: 'bad', plugin: 'file', station: 's', config: { dir: '/proc/nope' } });
    const failed = await eventually('the file sink to fail', 10_000, async () => {
      const s = await api<{
        connector: { state: string; trace?: string };
        tasks: { state: string; lastError?: { code: string }; restartAt?: number }[];
      }>(broker.url, 'GET', '/v1/connectors/bad/status');
      return s.connector.state === 'FAILED' ? s : undefined;
    });
    expect(failed.tasks[0]).toMatchObject({ state: 'FAILED', lastError: { code: 'DESTINATION_UNUSABLE' } });
    expect(failed.tasks[0]!.restartAt).toBeUndefined();
    expect(failed.connector.trace).toContain('/proc/nope');

    const markers = join(dataDir, 'markers');
    const opens = async (): Promise<number> => (existsSync(markers) ? (await readdir(markers)).length : 0);
    await api(broker.url, 'POST', '/v1/connectors', { name: 'stuck', plugin: 'wedged', station: 's', config: { fifo, markers } });
    await eventually('the wedged open', 10_000, async () => ((await opens()) >= 1 ? true : undefined));

    // The process is idle while one connector failed and another is blocked: < 20 % of a core.
    const c0 = cpuSeconds(pid);
    const t0 = Date.now();
    // A measurement window, not a wait for some state.
    await sleep(2000);
    const cpu = (cpuSeconds(pid) - c0) / ((Date.now() - t0) / 1000);
    if (process.env.JUNCTION_WEDGE_REPORT === '1') console.log(`CPU share of the broker process over 2 s: ${cpu.toFixed(3)}`);
    expect(cpu, 'CPU share of the broker process').toBeLessThan(0.2);
    // …and answers: the station's page comes back.
    expect((await api<{ name: string }>(broker.url, 'GET', '/v1/stations/s')).name).toBe('s');

    await timed('pause', STOP_BOUND_MS, () => api(broker.url, 'PUT', '/v1/connectors/stuck/pause'));
    expect((await api<{ connector: { state: string } }>(broker.url, 'GET', '/v1/connectors/stuck/status')).connector.state).toBe('PAUSED');
    await timed('resume', 5000, () => api(broker.url, 'PUT', '/v1/connectors/stuck/resume'));
    await eventually('the open blocked again', 10_000, async () => ((await opens()) >= 2 ? true : undefined));
    await timed('DELETE', STOP_BOUND_MS, () => api(broker.url, 'DELETE', '/v1/connectors/stuck'));
    await timed('DELETE of the failed one', STOP_BOUND_MS, () => api(broker.url, 'DELETE', '/v1/connectors/bad'));

    // Nothing was acknowledged, nothing is left out with a connector.
    for (const group of ['connector.bad', 'connector.stuck']) {
      const g = await api<{ lag: number; pending: number }>(broker.url, 'GET', `/v1/stations/s/groups/${group}`);
      expect(g, group).toMatchObject({ lag: 50, pending: 0 });
    }

    // Wedged again, then SIGTERM: the process ends within the shutdown bound. Threads blocked in native
    // code stop Node's own exit (it waits for every thread), so after the graceful close the process
    // ends by the signal's default action, and says why.
    await api(broker.url, 'POST', '/v1/connectors', { name: 'stuck-again', plugin: 'wedged', station: 's', config: { fifo, markers } });
    await eventually('the third wedged open', 10_000, async () => ((await opens()) >= 3 ? true : undefined));
    const { value: code } = await timed('SIGTERM to exit', SHUTDOWN_BOUND_MS, () => broker.stop());
    expect({ code, signal: broker.child.signalCode }, broker.output()).toEqual({ code: null, signal: 'SIGTERM' });
    expect(broker.output()).toMatch(
      /connector worker thread\(s\) are blocked in native code and Node cannot exit normally: ending by SIGTERM/,
    );
    expect(broker.output()).toMatch(/junction closed/);

    // Restarted: every message is still there, unacknowledged by the wedged connector's group.
    const again = await startBroker({ dataDir });
    brokers.push(again);
    const g = await api<{ lag: number; pending: number }>(again.url, 'GET', '/v1/stations/s/groups/connector.stuck-again');
    expect(g.lag).toBe(50);
    const read = await api<{ messages: { value: string }[] }>(again.url, 'GET', '/v1/stations/s/messages?partition=0&limit=100');
    const read1 = await api<{ messages: { value: string }[] }>(again.url, 'GET', '/v1/stations/s/messages?partition=1&limit=100');
    expect([...read.messages, ...read1.messages].map((m) => m.value).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `m-${i}`).sort());
    await again.kill();
  });
});
