/**
 * The connector runtime end to end, in a real broker process: a file sink declared in junction.yaml
 * holds exactly the produced messages, byte for byte — also after the broker is SIGKILLed while the
 * sink writes; bad connector config over REST answers 400 with field paths; a plugin built for another
 * SDK is refused with a clear message while the broker keeps serving.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSink } from '@junction/connector-file/read';
import { api, repoRoot, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'orders';

function config(out: string, extra = ''): string {
  return `stations:
  - name: ${STATION}
    partitions: 3
connectors:
  - name: to-files
    plugin: file
    station: ${STATION}
    config:
      dir: ${JSON.stringify(out)}
    batch:
      maxMessages: 100
      maxLatencyMs: 50
${extra}`;
}

/** Produces `n` messages (text and binary values) over HTTP; returns the bytes by `partition:offset`. */
async function produce(url: string, n: number): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (let i = 0; i < n; i += 500) {
    const values = Array.from({ length: Math.min(500, n - i) }, (_, j) =>
      (i + j) % 7 === 0 ? randomBytes(8 + ((i + j) % 300)) : Buffer.from(`{"n":${i + j},"pad":"${'x'.repeat((i + j) % 500)}"}`),
    );
    const res = await api<{ results: { partition: number; offset: number }[] }>(url, 'POST', `/v1/stations/${STATION}/messages`, {
      messages: values.map((v, j) => ({ valueBase64: v.toString('base64'), key: `k${(i + j) % 13}` })),
    });
    res.results.forEach((r, j) => out.set(`${r.partition}:${r.offset}`, values[j]!));
  }
  return out;
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []))
    if (e.isFile() && e.name.endsWith('.jsonl')) n++;
  return n;
}

async function expectExactly(out: string, produced: Map<string, Buffer>): Promise<void> {
  const records = await readFileSink(out);
  expect(records.length).toBe(produced.size);
  const seen = new Set<string>();
  for (const r of records) {
    const k = `${r.partition}:${r.offset}`;
    expect(seen.has(k)).toBe(false);
    seen.add(k);
    const want = produced.get(k);
    expect(want, `unexpected record ${k}`).toBeDefined();
    expect(Buffer.compare(Buffer.from(r.value), want!)).toBe(0);
  }
}

async function waitForRecords(out: string, n: number, broker: BrokerProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const have = (await readFileSink(out).catch(() => [])).length;
    if (have >= n) return;
    if (Date.now() > deadline) throw new Error(`only ${have} of ${n} records landed\n${broker.output()}`);
    await sleep(100);
  }
}

describe('connectors in a real broker process', () => {
  const dirs: string[] = [];
  const brokers: BrokerProcess[] = [];
  afterAll(async () => {
    for (const b of brokers) await b.kill();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function setup(extra = ''): Promise<{ dataDir: string; out: string; args: string[] }> {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-connect-e2e-'));
    dirs.push(dataDir);
    const out = join(dataDir, 'out');
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(configPath, config(out, extra));
    return { dataDir, out, args: ['--config', configPath] };
  }

  it('the file sink holds exactly the produced messages, byte for byte', async () => {
    const { dataDir, out, args } = await setup();
    const broker = await startBroker({ dataDir, args });
    brokers.push(broker);
    const produced = await produce(broker.url, 3000);
    await waitForRecords(out, 3000, broker);
    await sleep(300); // nothing more comes
    await expectExactly(out, produced);
    const status = await api<{ connector: { state: string }; lag: number; tasks: { state: string }[] }>(
      broker.url,
      'GET',
      '/v1/connectors/to-files/status',
    );
    expect(status).toMatchObject({ connector: { state: 'RUNNING' }, lag: 0, tasks: [{ state: 'RUNNING' }] });
    await broker.stop();
  });

  it('SIGKILL while the sink writes, restart: still exactly N, byte for byte', async () => {
    const { dataDir, out, args } = await setup();
    let broker = await startBroker({ dataDir, args: [...args, '--fsync', 'always'] });
    brokers.push(broker);
    const n = 20_000;
    // Stop the sink while producing, so the whole backlog is there when it starts writing.
    await api(broker.url, 'PUT', '/v1/connectors/to-files/stop');
    const produced = await produce(broker.url, n);
    await api(broker.url, 'PUT', '/v1/connectors/to-files/resume');
    const deadline = Date.now() + 30_000;
    while ((await countFiles(out)) < 20 && Date.now() < deadline) await sleep(5);
    await broker.kill();
    const landed = (await readFileSink(out)).length;
    expect(landed).toBeGreaterThan(0);
    expect(landed).toBeLessThan(n);

    broker = await startBroker({ dataDir, args });
    brokers.push(broker);
    await waitForRecords(out, n, broker);
    await sleep(300);
    await expectExactly(out, produced);
    const status = await api<{ connector: { state: string }; lag: number }>(broker.url, 'GET', '/v1/connectors/to-files/status');
    expect(status.lag).toBe(0);
    await broker.stop();
  });

  it('a plugin that throws, hangs, exits its worker or exhausts its heap: its task restarts, the API keeps answering, nothing is lost', async () => {
    const { dataDir, args } = await setup();
    const pkgDir = join(dataDir, 'plugins', 'node_modules', 'junction-connector-misbehave');
    await mkdir(pkgDir, { recursive: true });
    await mkdir(join(dataDir, 'plugins', 'node_modules', '@junction'), { recursive: true });
    await symlink(join(repoRoot, 'sdk-connector'), join(dataDir, 'plugins', 'node_modules', '@junction', 'sdk-connector'), 'dir');
    await writeFile(
      join(pkgDir, 'package.json'),
      JSON.stringify({
        name: 'junction-connector-misbehave',
        version: '0.1.0',
        type: 'module',
        junction: { kind: 'sink', entry: './index.js' },
        dependencies: { '@junction/sdk-connector': '^1.0.0' },
      }),
    );
    // Misbehaves on its first write (a marker file makes it once), then records what it writes.
    await writeFile(
      join(pkgDir, 'index.js'),
      `import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink, ok, z } from '@junction/sdk-connector';
const hoard = [];
export default defineSink({
  name: 'misbehave', version: '0.1.0', sdk: '^1',
  config: z.strictObject({ dir: z.string(), mode: z.enum(['throw', 'hang', 'exit', 'leak']) }),
  open: (config) => ({
    async write(batch) {
      mkdirSync(config.dir, { recursive: true });
      const marker = join(config.dir, 'misbehaved');
      if (!existsSync(marker)) {
        writeFileSync(marker, '');
        if (config.mode === 'throw') throw new Error('thrown on purpose');
        if (config.mode === 'hang') for (;;) {}
        if (config.mode === 'exit') process.exit(9);
        for (;;) hoard.push(new Array(100000).fill(hoard.length));
      }
      appendFileSync(join(config.dir, 'written.log'), batch.messages.map((m) => batch.partition + ' ' + m.offset + '\\n').join(''));
      return batch.messages.map(() => ok());
    },
    close: async () => {},
  }),
});
`,
    );
    const broker = await startBroker({ dataDir, args });
    brokers.push(broker);
    const modes = ['throw', 'hang', 'exit', 'leak'] as const;
    for (const mode of modes) {
      await api(broker.url, 'POST', '/v1/connectors', {
        name: `bad-${mode}`,
        plugin: 'misbehave',
        station: STATION,
        config: { dir: join(dataDir, mode), mode },
        batch: { maxMessages: 50, maxLatencyMs: 20 },
        // Short only where the timeout is the point: filling a 32 MB heap to its limit (V8 collects
        // again and again first) took over 700 ms on a loaded machine, and the write timed out before
        // the worker ran out of heap (WRITE_TIMEOUT where WORKER_OUT_OF_MEMORY was expected).
        writeTimeoutMs: mode === 'hang' ? 500 : 10_000,
        maxHeapMb: 32,
      });
    }
    let slowest = 0;
    let answered = 0;
    let pinging = true;
    let failures = 0;
    const pinger = (async () => {
      while (pinging) {
        const t = Date.now();
        const res = await fetch(`${broker.url}/v1/stations/${STATION}`).catch(() => undefined);
        if (res?.status === 200) answered++;
        else failures++;
        await res?.arrayBuffer();
        slowest = Math.max(slowest, Date.now() - t);
        await sleep(25);
      }
    })();
    try {
      const produced = await produce(broker.url, 600);
      const codes = { throw: 'INTERNAL', hang: 'WRITE_TIMEOUT', exit: 'WORKER_CRASHED', leak: 'WORKER_OUT_OF_MEMORY' };
      for (const mode of modes) {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const st = await api<{ lag: number; tasks: { state: string; restarts: number; lastError?: { code: string } }[] }>(
            broker.url,
            'GET',
            `/v1/connectors/bad-${mode}/status`,
          );
          if (st.lag === 0 && st.tasks[0]!.restarts >= 1) {
            expect(st.tasks[0]!.state).toBe('RUNNING');
            expect(st.tasks[0]!.lastError?.code).toBe(codes[mode]);
            break;
          }
          if (Date.now() > deadline) throw new Error(`bad-${mode} did not recover: ${JSON.stringify(st)}\n${broker.output()}`);
          await sleep(100);
        }
        const { readFile } = await import('node:fs/promises');
        const lines = new Set((await readFile(join(dataDir, mode, 'written.log'), 'utf8')).split('\n').filter(Boolean));
        expect(lines.size, mode).toBe(produced.size);
      }
    } finally {
      pinging = false;
      await pinger;
    }
    expect(failures).toBe(0);
    expect(answered).toBeGreaterThan(20);
    expect(slowest).toBeLessThan(1000);
    await broker.stop();
  });

  it('answers bad connector config with 400 and field paths; refuses a plugin built for another SDK, clearly', async () => {
    const { dataDir, args } = await setup();
    // A plugin package in <dataDir>/plugins, the way `junction plugins install` lays it out, built for SDK ^2.
    const pluginsDir = join(dataDir, 'plugins');
    const pkgDir = join(pluginsDir, 'node_modules', 'junction-connector-future');
    await mkdir(pkgDir, { recursive: true });
    await mkdir(join(pluginsDir, 'node_modules', '@junction'), { recursive: true });
    await symlink(join(repoRoot, 'sdk-connector'), join(pluginsDir, 'node_modules', '@junction', 'sdk-connector'), 'dir');
    await writeFile(
      join(pkgDir, 'package.json'),
      JSON.stringify({
        name: 'junction-connector-future',
        version: '0.2.0',
        type: 'module',
        junction: { kind: 'sink', entry: './index.js' },
        dependencies: { '@junction/sdk-connector': '^2.0.0' },
      }),
    );
    await writeFile(
      join(pkgDir, 'index.js'),
      `import { defineSink, ok, z } from '@junction/sdk-connector';
export default defineSink({ name: 'future', version: '0.2.0', sdk: '^2', config: z.strictObject({}), open: () => ({ write: async (b) => b.messages.map(() => ok()), close: async () => {} }) });
`,
    );
    const broker = await startBroker({ dataDir, args });
    brokers.push(broker);

    const post = async (body: unknown) => {
      const res = await fetch(`${broker.url}/v1/connectors`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return {
        status: res.status,
        body: (await res.json()) as { code: string; message: string; issues?: { path: string; message: string }[] },
      };
    };
    let r = await post({ name: 'bad', plugin: 'file', station: STATION, config: { gzip: 'yes' }, batch: { maxMessages: -1 } });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('CONFIG_INVALID');
    expect(r.body.issues!.map((i) => i.path)).toEqual(['batch.maxMessages']);
    r = await post({ name: 'bad', plugin: 'file', station: STATION, config: { gzip: 'yes' } });
    expect(r.status).toBe(400);
    expect(r.body.issues!.map((i) => i.path).sort()).toEqual(['config.dir', 'config.gzip']);
    expect(r.body.message).toMatch(/config\.(dir|gzip)/);

    const refused = await api<{ packageName?: string; code: string; message: string }[]>(
      broker.url,
      'GET',
      '/v1/connector-plugins/refused',
    );
    const future = refused.find((x) => x.packageName === 'junction-connector-future');
    expect(future).toMatchObject({ code: 'SDK_INCOMPATIBLE' });
    expect(future!.message).toMatch(/needs connector SDK \^2, but this Junction runs SDK 1\./);
    r = await post({ name: 'fut', plugin: 'future', station: STATION, config: {} });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('SDK_INCOMPATIBLE');
    expect(r.body.message).toMatch(/"future" was refused by the registry .*needs connector SDK \^2/);
    const health = await fetch(`${broker.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await api<{ connectors: string[] }>(broker.url, 'GET', '/v1/connectors')).toEqual({ connectors: ['to-files'] });
    await broker.stop();
  });
});
