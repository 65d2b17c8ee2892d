import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeDirs } from '../src/index.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('makeDirs', () => {
  it('creates missing parents with the mode asked for, and is idempotent', async () => {
    const root = await mkdtemp(join(tmpdir(), 'sdk-fs-'));
    dirs.push(root);
    const deep = join(root, 'a', 'b', 'c');
    await makeDirs(deep, 0o700);
    await makeDirs(deep, 0o700);
    expect((await stat(deep)).isDirectory()).toBe(true);
    expect((await stat(join(root, 'a'))).mode & 0o777).toBe(0o700);
  });

  it('rejects with ENOTDIR when a file is in the way', async () => {
    const root = await mkdtemp(join(tmpdir(), 'sdk-fs-'));
    dirs.push(root);
    await writeFile(join(root, 'f'), 'x');
    await expect(makeDirs(join(root, 'f', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  it("rejects a path under /proc at once (Node 20's recursive mkdir spins there for good)", async () => {
    await expect(makeDirs('/proc/junction-nope/a/b')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
