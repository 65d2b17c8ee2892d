/**
 * `junction apply [--plan] [--prune]` against a running broker: the plan shows create / update (field
 * diffs, secrets masked) / delete and changes nothing; apply makes the broker match the file; without
 * --prune nothing is deleted; a station option fixed at creation is a conflict (exit 1, not applied).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, junction, startBroker, type Broker } from './helpers.js';

interface StationInfo {
  name: string;
  config: { partitions: number; retention: { maxAgeMs?: number } };
}
interface ConnectorInfo {
  name: string;
  target: string;
  config: { config: Record<string, unknown>; state?: string };
}

const SECRET_1 = 'hunter2-first-7731';
const SECRET_2 = 'hunter2-second-9046';

function file(opts: { maxAgeMs: number; partitions?: number; dir: string; password: string; tasks?: number }): string {
  return `stations:
  - name: orders
    partitions: ${opts.partitions ?? 2}
    retention:
      maxAgeMs: ${opts.maxAgeMs}
connectors:
  - name: orders-to-files
    plugin: file
    station: orders
    state: STOPPED
    tasks: ${opts.tasks ?? 1}
    config:
      dir: ${opts.dir}
  - name: bus
    plugin: mqtt
    station: orders
    state: STOPPED
    config:
      url: mqtt://127.0.0.1:1883
      password: ${opts.password}
      topics: [{ filter: "orders/#" }]
`;
}

describe('junction apply', () => {
  let dir: string;
  let broker: Broker;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-apply-'));
    broker = await startBroker(dir);
  });
  afterAll(async () => {
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const run = (args: string[]) => junction(['--url', broker.url, ...args], { cwd: dir });

  it(
    '--plan shows what would be created and changes nothing; apply creates it; a second plan is all unchanged',
    { timeout: 180_000 },
    async () => {
      const out = join(dir, 'out');
      await writeFile(join(dir, 'junction.yaml'), file({ maxAgeMs: 3_600_000, dir: out, password: SECRET_1 }));

      const plan = await run(['apply', '--plan']);
      expect(plan.stderr).toBe('');
      expect(plan.code).toBe(0);
      const lines = plan.stdout.split('\n');
      expect(lines[0]).toBe(`Plan for junction.yaml against ${broker.url} — prune: off (nothing is deleted)`);
      expect(lines[1]).toBe('stations:');
      expect(lines[2]).toBe('  + create    orders');
      expect(lines).toContain('      partitions: 2');
      expect(lines).toContain('      retention.maxAgeMs: 3600000');
      expect(lines).toContain('  + create    orders-to-files (file orders)');
      expect(lines).toContain(`      config.dir: ${JSON.stringify(out)}`);
      expect(lines).toContain('      state: "STOPPED"');
      expect(lines).toContain('  + create    bus (mqtt orders)');
      expect(lines).toContain('      config.password: "***"');
      expect(lines.at(-2)).toBe('3 to create, 0 to update, 0 to delete, 0 unchanged');
      expect(plan.stdout).not.toContain(SECRET_1);
      // Nothing changed.
      expect((await api(broker.url, 'GET', '/v1/stations/orders')).status).toBe(404);
      expect((await api<{ connectors: string[] }>(broker.url, 'GET', '/v1/connectors')).body.connectors).toEqual([]);

      const applied = await run(['apply']);
      expect(applied.stderr).toBe('');
      expect(applied.code).toBe(0);
      expect(applied.stdout.split('\n')[0]).toBe(`Applied junction.yaml to ${broker.url} — prune: off (nothing is deleted)`);
      expect(applied.stdout).toContain('3 to create, 0 to update, 0 to delete, 0 unchanged\n');
      const st = await api<StationInfo>(broker.url, 'GET', '/v1/stations/orders');
      expect(st.body.config).toMatchObject({ partitions: 2, retention: { maxAgeMs: 3_600_000 } });
      const c = await api<ConnectorInfo>(broker.url, 'GET', '/v1/connectors/orders-to-files');
      expect(c.body).toMatchObject({ target: 'STOPPED', config: { config: { dir: out } } });
      expect((await api<ConnectorInfo>(broker.url, 'GET', '/v1/connectors/bus')).body.config.config['password']).toBe('***');

      const again = await run(['apply', '--plan', '--json']);
      expect(again.code).toBe(0);
      const json = JSON.parse(again.stdout) as {
        applied: boolean;
        prune: boolean;
        stations: { name: string; action: string }[];
        connectors: { name: string; action: string }[];
      };
      expect(json).toMatchObject({ applied: false, prune: false });
      expect(json.stations).toEqual([{ name: 'orders', action: 'unchanged' }]);
      expect(json.connectors.map((e) => [e.name, e.action])).toEqual([
        ['orders-to-files', 'unchanged'],
        ['bus', 'unchanged'],
      ]);
    },
  );

  it(
    'an update shows field diffs with secrets masked; only --prune deletes what the file does not name',
    { timeout: 180_000 },
    async () => {
      const out2 = join(dir, 'out2');
      // Made over the API: not in the file.
      expect((await api(broker.url, 'POST', '/v1/stations', { name: 'extra' })).status).toBe(201);
      expect(
        (
          await api(broker.url, 'POST', '/v1/connectors', {
            name: 'api-made',
            plugin: 'file',
            station: 'extra',
            config: { dir: join(dir, 'x') },
            state: 'STOPPED',
          })
        ).status,
      ).toBe(201);
      await writeFile(join(dir, 'v2.yaml'), file({ maxAgeMs: 7_200_000, dir: out2, password: SECRET_2, tasks: 2 }));

      const plan = await run(['apply', 'v2.yaml', '--plan']);
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain(
        [
          'stations:',
          '  ~ update    orders',
          '      retention.maxAgeMs: 3600000 → 7200000',
          'connectors:',
          '  ~ update    orders-to-files (file orders)',
        ].join('\n'),
      );
      expect(plan.stdout).toContain('      tasks: 1 → 2\n');
      expect(plan.stdout).toContain(`      config.dir: ${JSON.stringify(join(dir, 'out'))} → ${JSON.stringify(out2)}\n`);
      expect(plan.stdout).toContain('  ~ update    bus (mqtt orders)\n      config.password: "***" → "***"\n');
      expect(plan.stdout).not.toContain('hunter2');
      expect(plan.stdout).not.toContain('extra');
      expect(plan.stdout).not.toContain('api-made');
      expect(plan.stdout).toContain('0 to create, 3 to update, 0 to delete, 0 unchanged\n');

      const pruned = await run(['apply', 'v2.yaml', '--plan', '--prune']);
      expect(pruned.code).toBe(0);
      expect(pruned.stdout).toContain('prune: on (what the file does not name is deleted)');
      expect(pruned.stdout).toContain('  - delete    extra\n');
      expect(pruned.stdout).toContain('  - delete    api-made (file extra)\n');
      // Dead-letter and Junction's own stations are never pruned.
      expect(pruned.stdout).not.toMatch(/delete\s+\S*\.dls/);
      expect(pruned.stdout).not.toMatch(/delete\s+__/);
      expect(pruned.stdout).toContain('0 to create, 3 to update, 2 to delete, 0 unchanged\n');
      expect((await api(broker.url, 'GET', '/v1/stations/extra')).status).toBe(200);

      // Without --prune: updated, nothing deleted.
      const applied = await run(['apply', 'v2.yaml']);
      expect(applied.code).toBe(0);
      expect((await api<StationInfo>(broker.url, 'GET', '/v1/stations/orders')).body.config.retention.maxAgeMs).toBe(7_200_000);
      expect((await api<ConnectorInfo>(broker.url, 'GET', '/v1/connectors/orders-to-files')).body.config).toMatchObject({
        tasks: 2,
        config: { dir: out2 },
      });
      expect((await api(broker.url, 'GET', '/v1/stations/extra')).status).toBe(200);
      expect((await api(broker.url, 'GET', '/v1/connectors/api-made')).status).toBe(200);
      // The new secret is what the connector holds now: the same file plans no change.
      const same = await run(['apply', 'v2.yaml', '--plan']);
      expect(same.stdout).toContain('0 to create, 0 to update, 0 to delete, 3 unchanged\n');

      // validate --online: a connector's station may exist on the broker instead of in the file.
      await writeFile(
        join(dir, 'online.yaml'),
        `connectors:\n  - name: q\n    plugin: file\n    station: extra\n    config: { dir: ${JSON.stringify(join(dir, 'q'))} }\n`,
      );
      const offline = await run(['validate', 'online.yaml']);
      expect(offline.code).toBe(1);
      expect(offline.stdout).toBe(
        'connectors[0].station: station "extra" is not declared under stations:  (online.yaml:4:14)\nonline.yaml: 1 issue\n',
      );
      const online = await run(['validate', 'online.yaml', '--online']);
      expect(online.stdout).toBe('online.yaml is valid: 0 stations, 1 connectors\n');
      expect(online.code).toBe(0);

      const prune = await run(['apply', 'v2.yaml', '--prune']);
      expect(prune.code).toBe(0);
      expect(prune.stdout).toContain('0 to create, 0 to update, 2 to delete, 3 unchanged\n');
      expect((await api(broker.url, 'GET', '/v1/stations/extra')).status).toBe(404);
      expect((await api(broker.url, 'GET', '/v1/connectors/api-made')).status).toBe(404);
      expect((await api(broker.url, 'GET', '/v1/connectors/bus')).status).toBe(200);
    },
  );

  it(
    'a fixed option that differs is a conflict: the plan shows it, apply changes nothing (exit 1); an invalid file changes nothing',
    { timeout: 180_000 },
    async () => {
      await writeFile(join(dir, 'v3.yaml'), file({ maxAgeMs: 60_000, partitions: 4, dir: join(dir, 'out3'), password: SECRET_2 }));
      const plan = await run(['apply', 'v3.yaml', '--plan']);
      expect(plan.code).toBe(1);
      expect(plan.stdout).toContain(
        [
          '  ! conflict  orders',
          '      partitions cannot change after creation (delete and re-create the station to change it)',
          '      partitions: 2 → 4',
        ].join('\n'),
      );
      expect(plan.stdout).toContain('0 to create, 1 to update, 0 to delete, 1 unchanged, 1 in conflict\n');
      const r = await run(['apply', 'v3.yaml']);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^error CONFIG_IMMUTABLE: nothing was applied/);
      expect(r.stderr).toContain('\n  stations[0].partitions: is 2 on the broker; partitions cannot change after creation');
      const st = await api<StationInfo>(broker.url, 'GET', '/v1/stations/orders');
      expect(st.body.config).toMatchObject({ partitions: 2, retention: { maxAgeMs: 7_200_000 } });
      expect((await api<ConnectorInfo>(broker.url, 'GET', '/v1/connectors/orders-to-files')).body.config).toMatchObject({
        tasks: 2,
        config: { dir: join(dir, 'out2') },
      });

      await writeFile(
        join(dir, 'bad.yaml'),
        'connectors:\n  - name: zz\n    plugin: no-such-plugin\n    station: orders\n  - name: yy\n    plugin: file\n    station: orders\n    config: {}\n',
      );
      const bad = await run(['apply', 'bad.yaml']);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toMatch(/^error CONFIG_INVALID: /);
      expect(bad.stderr).toContain('\n  connectors[0].plugin: no connector plugin named "no-such-plugin"\n');
      expect(bad.stderr).toContain('\n  connectors[1].config.dir: ');
      expect((await api(broker.url, 'GET', '/v1/connectors/yy')).status).toBe(404);
    },
  );
});
