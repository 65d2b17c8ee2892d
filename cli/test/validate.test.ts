/**
 * `junction validate`: offline (no broker runs in this file), every issue with its path and line, exit
 * code 1 on issues and 0 when valid, `--json`; secrets referenced must resolve and are never printed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { junction } from './helpers.js';

describe('junction validate (offline)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-validate-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const VALID = `stations:
  - name: events
    partitions: 3
connectors:
  - name: gen
    plugin: datagen
    station: events
    config:
      shape: order
      maxMessages: 10
  - name: to-files
    plugin: file
    station: events
    state: STOPPED
    config:
      dir: \${env:OUT_DIR}
  - name: bus
    plugin: mqtt
    station: events
    state: STOPPED
    config:
      url: mqtt://127.0.0.1:1883
      password: \${env:MQTT_PASSWORD}
      topics: [{ filter: "a/#" }]
`;

  it('a valid file: exit 0 and a one-line summary; the default file is ./junction.yaml', async () => {
    await writeFile(join(dir, 'junction.yaml'), VALID);
    const env = { OUT_DIR: join(dir, 'out'), MQTT_PASSWORD: 'pw-never-printed-4821' };
    const r = await junction(['validate'], { cwd: dir, env });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('junction.yaml is valid: 1 stations, 3 connectors\n');
    expect(r.code).toBe(0);
    const json = await junction(['validate', 'junction.yaml', '--json'], { cwd: dir, env });
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { valid: boolean; issues: unknown[]; plugins: string[] };
    expect(report).toMatchObject({ valid: true, issues: [], stations: 1, connectors: 3, file: join(dir, 'junction.yaml') });
    // The plugins are found as the server finds them (the built-in connectors).
    expect(report.plugins).toEqual(expect.arrayContaining(['datagen', 'file', 'mqtt']));
    expect(json.stdout).not.toContain('pw-never-printed-4821');
  });

  it('a secret reference that does not resolve is an issue naming the variable, never a value', async () => {
    await writeFile(join(dir, 'secrets.yaml'), VALID);
    const r = await junction(['validate', 'secrets.yaml'], { cwd: dir, env: { OUT_DIR: join(dir, 'out') } });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      [
        'connectors[2].config.password: environment variable MQTT_PASSWORD is not set  (secrets.yaml:23:17)',
        'secrets.yaml: 1 issue',
        '',
      ].join('\n'),
    );
    const file = await junction(['validate', 'secrets.yaml'], {
      cwd: dir,
      env: { MQTT_PASSWORD: 'pw-never-printed-4821', OUT_DIR: join(dir, 'out') },
    });
    expect(file.code).toBe(0);
  });

  it('every issue of a broken file, each with its path and line, exit 1; --json gives the same', async () => {
    const text = `server:
  port: 99999
stations:
  - name: events
    partitions: 0
  - name: events
  - name: logs
    retention: { maxAgeMs: -5 }
connectors:
  - name: a
    plugin: file
    station: nowhere
    config:
      dir: 5
  - name: b
    plugin: no-such-plugin
    station: events
  - name: a
    plugin: datagen
    station: logs
    tasks: 0
  - name: d
    plugin: datagen
    station: events
    config:
      shape: order
      keyField: nope
`;
    await writeFile(join(dir, 'broken.yaml'), text);
    const r = await junction(['validate', 'broken.yaml'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toEqual([
      'server.port: Too big: expected number to be <=65535  (broken.yaml:2:9)',
      'stations[0].partitions: Too small: expected number to be >=1  (broken.yaml:5:17)',
      expect.stringMatching(/^stations\[2\]\.retention\.maxAgeMs: .+ \(broken\.yaml:8:28\)$/),
      'stations[1].name: duplicate station "events"  (broken.yaml:6:11)',
      'connectors[0].station: station "nowhere" is not declared under stations:  (broken.yaml:12:14)',
      'connectors[0].config.dir: Invalid input: expected string, received number  (broken.yaml:14:12)',
      expect.stringMatching(
        /^connectors\[1\]\.plugin: no connector plugin named "no-such-plugin" \(found: .*datagen.*file.*\) {2}\(broken\.yaml:16:13\)$/,
      ),
      'connectors[2].tasks: Too small: expected number to be >=1  (broken.yaml:21:12)',
      expect.stringMatching(/^connectors\[3\]\.config\.keyField: must be one of .+ \(broken\.yaml:27:17\)$/),
      'broken.yaml: 9 issues',
    ]);
    const json = await junction(['validate', 'broken.yaml', '--json'], { cwd: dir });
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { valid: boolean; issues: { path: string; line?: number }[] };
    expect(report.valid).toBe(false);
    expect(report.issues.map((i) => `${i.path}@${i.line}`)).toEqual([
      'server.port@2',
      'stations[0].partitions@5',
      'stations[2].retention.maxAgeMs@8',
      'stations[1].name@6',
      'connectors[0].station@12',
      'connectors[0].config.dir@14',
      'connectors[1].plugin@16',
      'connectors[2].tasks@21',
      'connectors[3].config.keyField@27',
    ]);
  });

  it("the repository's own junction.yaml is valid", async () => {
    const repoFile = fileURLToPath(new URL('../../junction.yaml', import.meta.url));
    const r = await junction(['validate', repoFile], { cwd: dir });
    expect(r.stdout).toBe(`${repoFile} is valid: 1 stations, 2 connectors\n`);
    expect(r.code).toBe(0);
  });

  it('YAML syntax errors carry their line; a missing file is an issue too', async () => {
    await writeFile(join(dir, 'syntax.yaml'), 'stations:\n  - name: a\n    partitions: [1, 2\nconnectors: []\n');
    const r = await junction(['validate', 'syntax.yaml'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^\(file\): YAML: .+ \(syntax\.yaml:\d+:\d+\)\n/);
    const dup = await junction(['validate', 'dup.yaml'], { cwd: dir });
    expect(dup.code).toBe(1);
    expect(dup.stdout).toBe('(file): cannot read the file (ENOENT)\ndup.yaml: 1 issue\n');
  });
});
