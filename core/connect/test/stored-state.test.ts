/**
 * The connector runtime's stored state survives damage like the broker's metadata does (issue 14 item 3's
 * class): connectors.json and source positions keep their previous version, a damaged file falls back to
 * it, and when neither is usable the runtime says so instead of silently starting over.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readSourcePositions, writeSourcePositions } from '../src/positions.js';
import { harness, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const decl = (name: string, dir: string) => ({ name, plugin: 'test-ok', station: 's', config: { dir }, state: 'PAUSED' as const });

describe('stored connector state', () => {
  for (const [how, spoil] of [
    ['empty', ''],
    ['torn', '{"version":1,"connectors":[{"declar'],
    ['without its list', '{"version":1}'],
  ] as const) {
    it(`connectors.json ${how}: the connectors come back from its previous copy, and the problem is reported`, async () => {
      const logs: string[] = [];
      h = await harness({ logs, logLevel: 'error' });
      await h.store.createStation('s');
      await h.runtime.create(decl('a', join(h.dir, 'a')));
      await h.runtime.create(decl('b', join(h.dir, 'b')));
      const file = join(h.dir, 'connect', 'connectors.json');
      await h.close();
      await writeFile(file, spoil);
      await h.reopen();
      // The copy is the version before the last write: the connector created last is the change undone.
      expect(h.runtime.names().sort()).toEqual(['a']);
      expect(h.runtime.problems().join('\n')).toMatch(/connectors\.json was .*previous copy/);
      expect(logs.some((l) => /previous copy/.test(l))).toBe(true);
      // Written back: the next start finds it whole.
      expect((JSON.parse(await readFile(file, 'utf8')) as { connectors: unknown[] }).connectors).toHaveLength(1);
    });
  }

  it('connectors.json and its copy unusable: the runtime starts without them, keeps the damaged file aside and reports it', async () => {
    h = await harness();
    await h.store.createStation('s');
    await h.runtime.create(decl('a', join(h.dir, 'a')));
    const dir = join(h.dir, 'connect');
    await h.close();
    await writeFile(join(dir, 'connectors.json'), 'garbage');
    await writeFile(join(dir, 'connectors.json.prev'), '');
    await h.reopen();
    expect(h.runtime.names()).toEqual([]);
    expect(h.runtime.problems().join('\n')).toMatch(/not loaded; the damaged file is kept as .*connectors\.json\.damaged-/);
    const kept = (await readdir(dir)).filter((f) => f.startsWith('connectors.json.damaged-'));
    expect(kept).toHaveLength(1);
    expect(await readFile(join(dir, kept[0]!), 'utf8')).toBe('garbage');
  });

  it('source positions: a damaged file falls back to the previous version; with none usable the source does not start over', async () => {
    h = await harness();
    const file = join(h.dir, 'positions', 'src.json');
    await writeSourcePositions(file, { '0': { n: 1 } });
    await writeSourcePositions(file, { '0': { n: 2 } });
    expect(await readSourcePositions(file)).toEqual({ '0': { n: 2 } });
    await writeFile(file, '{"version":1}');
    expect(await readSourcePositions(file)).toEqual({ '0': { n: 1 } });
    await writeFile(`${file}.prev`, '{');
    await expect(readSourcePositions(file)).rejects.toMatchObject({ code: 'POSITIONS_DAMAGED' });
    expect(await readSourcePositions(join(h.dir, 'positions', 'never-stored.json'))).toEqual({});
  });
});
