/**
 * The connectors' half of a pipeline plan: field diffs masked as the API shows configs (a secret field
 * `***` on both sides, nested ones too; a reference as written), unchanged fields left out, every field of
 * a creation listed, deletions only with `prune`, every invalid declaration reported at once.
 */
import { describe, expect, it } from 'vitest';
import { JunctionError } from '@junction/broker';
import { secret, z } from '@junction/sdk-connector';
import type { ConfigSchema } from '@junction/sdk-connector';
import { ConnectorDeclaration, ConnectorOrigin, TargetState, diffDeclarations, planConnectors } from '../src/index.js';
import type { PlannableRuntime } from '../src/index.js';

const schema = z.strictObject({
  url: z.string(),
  auth: z.strictObject({ user: z.string(), password: secret(z.string()) }).optional(),
  token: secret(z.string()).optional(),
  tags: z.array(z.string()).default([]),
}) as unknown as ConfigSchema;

const decl = (config: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  ConnectorDeclaration.parse({ name: 'c', plugin: 'p', station: 's', config, ...extra });

describe('pipeline plan: connectors', () => {
  it('diffs fields, masking secrets (nested too) and showing references as written', () => {
    const before = decl({ url: 'http://a', auth: { user: 'u', password: 'old-pass-123' }, token: 'tok-old-456', tags: ['x'] });
    const after = decl(
      { url: 'http://b', auth: { user: 'u', password: 'new-pass-789' }, token: '${env:TOKEN}', tags: ['x', 'y'] },
      { tasks: 2 },
    );
    const changes = diffDeclarations(before, after, schema, schema);
    expect(changes).toEqual([
      { path: 'tasks', from: 1, to: 2 },
      { path: 'config.url', from: 'http://a', to: 'http://b' },
      { path: 'config.auth.password', from: '***', to: '***' },
      { path: 'config.token', from: '***', to: '${env:TOKEN}' },
      { path: 'config.tags[1]', to: 'y' },
    ]);
    expect(JSON.stringify(changes)).not.toMatch(/pass-|tok-old/);
    // The same secret on both sides is no change; a field removed shows where it was.
    expect(
      diffDeclarations(before, decl({ url: 'http://a', auth: { user: 'u', password: 'old-pass-123' }, tags: ['x'] }), schema, schema),
    ).toEqual([{ path: 'config.token', from: '***' }]);
    // Without the plugin's schema nothing says which field is secret: every literal string is masked.
    expect(
      diffDeclarations(undefined, decl({ url: 'http://a', token: '${env:T}' }), undefined, undefined).filter((c) =>
        c.path.startsWith('config'),
      ),
    ).toEqual([
      { path: 'config.url', to: '***' },
      { path: 'config.token', to: '${env:T}' },
    ]);
  });

  it('plans create / update / unchanged in order, deletes only with prune, and reports every invalid declaration', async () => {
    const running = new Map([
      ['kept', decl({ url: 'http://k' }, { name: 'kept' })],
      ['changed', decl({ url: 'http://old', token: 'secret-value-1' }, { name: 'changed' })],
      ['api-made', decl({ url: 'http://api' }, { name: 'api-made' })],
    ]);
    const runtime: PlannableRuntime = {
      validate: async (raw, prefix = '') => {
        const d = ConnectorDeclaration.parse(raw);
        if (d.plugin !== 'p')
          throw new JunctionError('PLUGIN_NOT_FOUND', 'bad plugin', {
            issues: [{ path: `${prefix}.plugin`, message: `no connector plugin named "${d.plugin}"` }],
          });
        return d;
      },
      names: () => [...running.keys()].sort(),
      current: (name) => {
        const d = running.get(name);
        return d && { declaration: d, schema, origin: ConnectorOrigin.api, target: TargetState.RUNNING };
      },
      pluginSchema: async () => schema,
      create: async () => undefined,
      put: async () => undefined,
      delete: async () => {},
    };
    const list = [
      { name: 'new', plugin: 'p', station: 's', config: { url: 'http://n', token: 'secret-value-2' } },
      { name: 'changed', plugin: 'p', station: 's', config: { url: 'http://old', token: 'secret-value-3' } },
      { name: 'kept', plugin: 'p', station: 's', config: { url: 'http://k' } },
    ];
    const plan = await planConnectors(runtime, list);
    expect(plan.entries.map((e) => `${e.name}:${e.action}`)).toEqual(['new:create', 'changed:update', 'kept:unchanged']);
    expect(plan.entries[1]!.changes).toEqual([{ path: 'config.token', from: '***', to: '***' }]);
    expect(plan.entries[0]!.changes).toContainEqual({ path: 'config.token', to: '***' });
    expect(JSON.stringify(plan.entries)).not.toContain('secret-value');
    const pruned = await planConnectors(runtime, list, { prune: true });
    expect(pruned.entries.map((e) => `${e.name}:${e.action}`)).toEqual([
      'new:create',
      'changed:update',
      'kept:unchanged',
      'api-made:delete',
    ]);

    await expect(
      planConnectors(runtime, [
        { name: 'a', plugin: 'q', station: 's' },
        { name: 'b', plugin: 'p', station: 's', tasks: 0 },
        list[0],
        list[0],
      ]),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [
        { path: 'connectors[0].plugin', message: 'no connector plugin named "q"' },
        // Not a coded error (the fake's zod parse): its message, at the declaration's path.
        { path: 'connectors[1]' },
        { path: 'connectors[3].name', message: 'duplicate connector "new"' },
      ],
    });
  });
});
