/**
 * Directory creation that cannot spin. Node 20's `mkdir(path, { recursive: true })` loops forever on a
 * path whose parent exists but refuses a new entry with ENOENT (any path under `/proc`): the libuv
 * thread running it spins at 100 % and never returns, and a worker thread waiting on it cannot even be
 * terminated. `makeDirs` walks up with plain `mkdir` calls instead, at most once per path component.
 * Plugins that create directories from their configuration should use it.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

function notADirectory(dir: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', path: dir });
}

/**
 * Creates `path` and any missing parents (like `mkdir -p`, each made with `mode`); resolves once it is a
 * directory. Rejects with the system error of the first component that cannot be created (ENOENT,
 * EACCES, EROFS, …), ENOTDIR when something other than a directory is in the way. Makes at most one
 * `mkdir` per component.
 */
export async function makeDirs(path: string, mode = 0o777): Promise<void> {
  const missing: string[] = [];
  let dir = resolve(path);
  for (;;) {
    try {
      if ((await stat(dir)).isDirectory()) break;
      throw notADirectory(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(dir);
      const parent = dirname(dir);
      if (parent === dir) throw err;
      dir = parent;
    }
  }
  for (const d of missing.reverse()) {
    try {
      await mkdir(d, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Made meanwhile by someone else: fine if it is a directory.
      if (!(await stat(d)).isDirectory()) throw notADirectory(d);
    }
  }
}
