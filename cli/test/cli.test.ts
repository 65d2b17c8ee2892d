import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { junction, startBroker, type Broker } from './helpers.js';

describe('junction CLI against a running broker', () => {
  let dir: string;
  let url: string;
  let broker: Broker;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-cli-'));
    broker = await startBroker(dir);
    url = broker.url;
  });

  afterAll(async () => {
    await broker.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates and lists stations', async () => {
    const created = await junction(
      ['--url', url, 'stations', 'create', 'lines', '--partitions', '1', '--retention-max-messages', '100000'],
      { cwd: dir },
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/created station lines \(1 partitions, file\)/);

    const again = await junction(['stations', 'create', 'lines'], { cwd: dir, env: { JUNCTION_URL: url } });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error STATION_EXISTS: /);

    const listed = await junction(['--url', url, 'stations', 'list'], { cwd: dir });
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n')[0]).toMatch(/^NAME\s+PARTITIONS/);
    expect(listed.stdout).toMatch(/^lines\s+1\s+file\s+0\s+/m);

    const got = await junction(['--url', url, 'stations', 'get', 'lines'], { cwd: dir });
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ name: 'lines', config: { partitions: 1, retention: { maxMessages: 100000 } } });
  });

  it('lists connectors page by page and shows their status', async () => {
    const created = await junction(['--url', url, 'stations', 'create', 'feed'], { cwd: dir });
    expect(created.code).toBe(0);
    const names = ['to-a', 'to-b', 'to-c'];
    for (const name of names) {
      const res = await fetch(`${url}/v1/connectors`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          name,
          plugin: 'file',
          station: 'feed',
          config: { dir: join(dir, 'out', name) },
          ...(name === 'to-c' && { state: 'STOPPED' }),
        }),
      });
      expect(res.status).toBe(201);
    }
    // One name per request: three pages and an empty cursor at the end.
    const listed = await junction(['--url', url, 'connectors', 'list', '--page-size', '1'], { cwd: dir });
    expect(listed.stderr).toBe('');
    expect(listed.stdout).toBe('to-a\nto-b\nto-c\n');
    const json = await junction(['--url', url, 'connectors', 'list', '--prefix', 'to-b', '--json'], { cwd: dir });
    expect(JSON.parse(json.stdout)).toEqual(['to-b']);
    const table = await junction(['--url', url, 'connectors', 'status'], { cwd: dir });
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+TYPE\s+STATE\s+TASKS\s+LAG\s+ISOLATION/);
    // Built-in plugins share the pool's threads; a stopped connector runs nowhere.
    expect(table.stdout).toMatch(/^to-a\s+sink\s+RUNNING\s+1\/1\s+0\s+shared$/m);
    expect(table.stdout).toMatch(/^to-c\s+sink\s+STOPPED\s+0\/1\s+-\s+-$/m);
    const one = await junction(['--url', url, 'connectors', 'status', 'to-b'], { cwd: dir });
    expect(JSON.parse(one.stdout)).toMatchObject({ name: 'to-b', isolation: 'shared', connector: { state: 'RUNNING' } });
    const missing = await junction(['--url', url, 'connectors', 'status', 'nope'], { cwd: dir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error CONNECTOR_NOT_FOUND: /);
  });

  it('produces the lines of a file and consumes them back exactly', async () => {
    const N = 2500;
    const lines = Array.from({ length: N }, (_, i) => (i === 7 ? '' : i % 3 === 0 ? `{"n":${i},"text":"héllo ✓"}` : `line ${i}`));
    const file = join(dir, 'input.txt');
    await writeFile(file, lines.join('\n') + '\n');

    const produced = await junction(['--url', url, 'produce', 'lines', '--file', file, '--batch-size', '1000', '--header', 'source=test'], {
      cwd: dir,
    });
    expect(produced.stderr).toBe('');
    expect(produced.code).toBe(0);
    expect(produced.stdout).toContain(`produced ${N} of ${N} messages to lines: ${N} stored, 0 duplicates, 0 rejected`);

    const consumed = await junction(['--url', url, 'consume', 'lines', '--group', 'readers', '--max', String(N)], { cwd: dir });
    expect(consumed.stderr).toBe('');
    expect(consumed.code).toBe(0);
    expect(consumed.stdout).toBe(lines.join('\n') + '\n');

    // everything was acknowledged: the group has nothing more
    const rest = await junction(['--url', url, 'consume', 'lines', '--group', 'readers', '--idle-exit-ms', '300'], { cwd: dir });
    expect(rest.code).toBe(0);
    expect(rest.stdout).toBe('');

    // a new group starting at latest sees only what comes after
    const latest = await junction(['--url', url, 'consume', 'lines', '--group', 'late', '--from', 'latest', '--idle-exit-ms', '200'], {
      cwd: dir,
    });
    expect(latest.code).toBe(0);
    expect(latest.stdout).toBe('');
  });

  it('produces from stdin', async () => {
    await junction(['--url', url, 'stations', 'create', 'piped'], { cwd: dir });
    const produced = await junction(['--url', url, 'produce', 'piped', '--key', 'k'], { cwd: dir, input: 'a\nb\r\nc' });
    expect(produced.code).toBe(0);
    expect(produced.stdout).toContain('3 stored');
    const consumed = await junction(['--url', url, 'consume', 'piped', '--group', 'g', '--max', '3', '--no-ack'], { cwd: dir });
    expect(consumed.stdout).toBe('a\nb\nc\n');
  });

  it('fails with exit 1 and a coded message', async () => {
    const missing = await junction(['--url', url, 'stations', 'get', 'nope'], { cwd: dir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error STATION_NOT_FOUND: /);

    const noStation = await junction(['--url', url, 'produce', 'nope'], { cwd: dir, input: 'x\n' });
    expect(noStation.code).toBe(1);
    expect(noStation.stderr).toMatch(/error STATION_NOT_FOUND: /);

    const invalid = await junction(['--url', url, 'stations', 'create', 'bad name!'], { cwd: dir });
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^error BODY_INVALID: .*\n {2}name: /);

    // --replicas reaches the broker; the embedded engine keeps one copy and says so with the field path.
    const replicated = await junction(['--url', url, 'stations', 'create', 'copies', '--replicas', '3'], { cwd: dir });
    expect(replicated.code).toBe(1);
    expect(replicated.stderr).toMatch(/^error CONFIG_INVALID: .*\n {2}replicas: /);

    const tooLarge = await junction(['--url', url, 'stations', 'create', 'tiny', '--max-message-bytes', '4'], { cwd: dir });
    expect(tooLarge.code).toBe(0);
    const rejected = await junction(['--url', url, 'produce', 'tiny'], { cwd: dir, input: 'ok\nmuch too long\n' });
    expect(rejected.code).toBe(1);
    expect(rejected.stdout).toContain('1 stored, 0 duplicates, 1 rejected');
    expect(rejected.stderr).toMatch(/line 2: error MESSAGE_TOO_LARGE: /);
    expect(rejected.stderr).toMatch(/error PRODUCE_FAILED: /);

    const unreachable = await junction(['--url', 'http://127.0.0.1:1', 'stations', 'list'], { cwd: dir });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^error NETWORK_ERROR: /);
  });

  it('stops gracefully on SIGTERM with exit code 0', async () => {
    expect(await broker.stop()).toBe(0);
    expect(broker.child.signalCode).toBeNull();
  });
});

describe('junction CLI usage errors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-cli-usage-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('rejects bad flags with exit 1 and a message', async () => {
    const unknown = await junction(['stations', 'list', '--bogus'], { cwd: dir });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error USAGE: unknown option '--bogus'/);

    const notInt = await junction(['stations', 'create', 'x', '--partitions', 'three'], { cwd: dir });
    expect(notInt.code).toBe(1);
    expect(notInt.stderr).toMatch(/error USAGE: .*--partitions.*must be an integer/);

    const noGroup = await junction(['consume', 'x'], { cwd: dir });
    expect(noGroup.code).toBe(1);
    expect(noGroup.stderr).toMatch(/error USAGE: required option '--group <name>'/);

    const badPort = await junction(['start', '--port', '70000'], { cwd: dir });
    expect(badPort.code).toBe(1);
    expect(badPort.stderr).toMatch(/error USAGE: .*--port/);

    const unknownCommand = await junction(['frobnicate'], { cwd: dir });
    expect(unknownCommand.code).toBe(1);
    expect(unknownCommand.stderr).toMatch(/error USAGE: unknown command 'frobnicate'/);
  });

  it('prints help and the version with exit 0', async () => {
    const help = await junction(['--help'], { cwd: dir });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: junction/);
    expect(help.stdout).toMatch(/stations/);
    const version = await junction(['--version'], { cwd: dir });
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('reports an invalid configuration file as CONFIG_INVALID with its path', async () => {
    await writeFile(
      join(dir, 'junction.yaml'),
      'server:\n  port: 1\nstations:\n  - name: ok\n  - name: bad\n    retention: { maxAgeMs: 0 }\n',
    );
    const bad = await junction(['start', '--port', '0', '--data-dir', join(dir, 'data')], { cwd: dir });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error CONFIG_INVALID: /);
    expect(bad.stderr).toMatch(/\n {2}stations\[1\]\.retention\.maxAgeMs: /);
  });
});
