import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { harness } from './helpers.js';
import type { Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await harness();
  await h.store.createStation('s');
});
afterEach(async () => {
  await h.cleanup();
});

describe('applyDesired (junction.yaml connectors)', () => {
  it('creates, updates, deletes file connectors and leaves API ones alone', async () => {
    const d = (name: string, extra: Record<string, unknown> = {}) => ({
      name,
      plugin: 'test-ok',
      station: 's',
      config: { dir: join(h.dir, name) },
      ...extra,
    });
    await h.runtime.create(d('from-api'));
    let r = await h.runtime.applyDesired([d('a'), d('b', { state: 'PAUSED' })]);
    expect(r).toEqual({ created: ['a', 'b'], updated: [], deleted: [], unchanged: [] });
    expect(h.runtime.info('a').origin).toBe('file');
    expect((await h.runtime.status('b')).connector.state).toBe('PAUSED');

    // The same file again changes nothing, and an API pause of a file connector stays.
    await h.runtime.pause('a');
    r = await h.runtime.applyDesired([d('a'), d('b', { state: 'PAUSED' })]);
    expect(r).toEqual({ created: [], updated: [], deleted: [], unchanged: ['a', 'b'] });
    expect((await h.runtime.status('a')).connector.state).toBe('PAUSED');

    // b changes (and its state: RUNNING applies), a is removed from the file, from-api is taken over.
    r = await h.runtime.applyDesired([d('b', { state: 'RUNNING', batch: { maxMessages: 10 } }), d('from-api')]);
    expect(r).toEqual({ created: [], updated: ['b'], deleted: ['a'], unchanged: ['from-api'] });
    expect(h.runtime.names()).toEqual(['b', 'from-api']);
    expect((await h.runtime.status('b')).connector.state).toBe('RUNNING');
    expect(h.runtime.info('from-api').origin).toBe('file');

    r = await h.runtime.applyDesired([]);
    expect(r.deleted.sort()).toEqual(['b', 'from-api']);
    expect(h.runtime.names()).toEqual([]);
  });

  it('one invalid declaration changes nothing; issues carry connectors[i] paths', async () => {
    let err: { code: string; issues: { path: string }[]; message: string } | undefined;
    try {
      await h.runtime.applyDesired([
        { name: 'ok', plugin: 'test-ok', station: 's', config: { dir: h.dir } },
        { name: 'bad', plugin: 'file', station: 's', config: {} },
        { name: 'ok2', plugin: 'test-ok', station: 's', tasks: 0, config: { dir: h.dir } },
        { name: 'ok', plugin: 'test-ok', station: 's', config: { dir: h.dir } },
      ]);
    } catch (e) {
      err = e as typeof err;
    }
    if (!err) throw new Error('applyDesired accepted an invalid declaration list');
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues.map((i) => i.path)).toEqual(['connectors[1].config.dir', 'connectors[2].tasks', 'connectors[3].name']);
    expect(err.message).toContain('connectors[1].config.dir');
    expect(h.runtime.names()).toEqual([]);
  });
});
