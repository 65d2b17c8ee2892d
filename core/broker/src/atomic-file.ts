/**
 * Metadata files of the embedded engine (station.json, group.json, a partition's meta): written
 * atomically with the previous version kept beside them, read with a fallback to that copy.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The copy of `path` that writeAtomic keeps: the version before the last write (or the same, after a first write). */
export function previousCopy(path: string): string {
  return `${path}.prev`;
}

export interface WriteAtomicOptions {
  /** Keep the version being replaced as `<path>.prev` (default true). */
  keepPrevious?: boolean | undefined;
  /** fsync the file and its directory (default true; false for the `never` fsync policy). */
  sync?: boolean | undefined;
  /** The new file's mode (default 0o666 less the umask; 0o600 for files holding configuration). */
  mode?: number | undefined;
}

/**
 * Writes a file atomically: a reader sees the old file or the new one, never a torn one. Temp file,
 * fsync, then (keepPrevious) the current file becomes `<path>.prev` — or the new content does, when
 * there is no current file, so a copy exists from the first write on — then rename over `path`, then
 * fsync of the directory. At every moment `path` is whole (old or new) and so is the copy.
 */
export async function writeAtomic(path: string, data: Buffer | string, options: WriteAtomicOptions = {}): Promise<void> {
  const sync = options.sync ?? true;
  // Unique per write: two writes of one file may overlap (the last rename wins, both are whole).
  const unique = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = `${path}.tmp-${unique}`;
  const fh = await open(tmp, 'w', options.mode ?? 0o666);
  try {
    await fh.writeFile(data);
    if (sync) await fh.datasync();
  } finally {
    await fh.close();
  }
  if (options.keepPrevious ?? true) {
    const prev = previousCopy(path);
    const prevTmp = `${prev}.tmp-${unique}`;
    // The current file becomes the copy: a hard link is enough, as it is never written again (the new
    // version is a new file). A first write copies its content instead: a link would share the new
    // file's blocks, and damage to one would be damage to both.
    await link(path, prevTmp).catch(async (err: NodeJS.ErrnoException) => {
      await copyFile(err.code === 'ENOENT' ? tmp : path, prevTmp);
      if (sync) await fsyncFile(prevTmp);
    });
    await rename(prevTmp, prev);
  }
  await rename(tmp, path);
  if (sync) await fsyncDir(dirname(path));
}

async function fsyncFile(path: string): Promise<void> {
  const h = await open(path, 'r+');
  try {
    await h.datasync();
  } finally {
    await h.close();
  }
}

/** fsync of a directory (makes renames and creations in it durable); errors of file systems that refuse it are ignored. */
export async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync().catch(() => {});
  } finally {
    await h.close();
  }
}

/** Where readWithFallback found a usable version. */
export type MetadataSource = 'file' | 'previous-copy';

/**
 * Reads `path` and parses it with `parse` (which throws on content it does not accept); when the file is
 * missing, empty or rejected, tries its previous copy. Returns the value and where it came from, with the
 * reason the file itself was not used; undefined `value` when neither version is usable (`missing`: both
 * files are absent).
 */
export async function readWithFallback<T>(
  path: string,
  parse: (text: string) => T,
): Promise<{ value: T; source: MetadataSource; problem?: string | undefined } | { value: undefined; missing: boolean; problem: string }> {
  const first = await tryRead(path, parse);
  if (first.ok) return { value: first.value, source: 'file' };
  const copy = await tryRead(previousCopy(path), parse);
  if (copy.ok) return { value: copy.value, source: 'previous-copy', problem: first.problem };
  return { value: undefined, missing: first.missing && copy.missing, problem: `${first.problem}; its previous copy: ${copy.problem}` };
}

async function tryRead<T>(
  path: string,
  parse: (text: string) => T,
): Promise<{ ok: true; value: T } | { ok: false; missing: boolean; problem: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, missing: code === 'ENOENT', problem: code === 'ENOENT' ? 'missing' : `unreadable (${code ?? String(err)})` };
  }
  if (text.trim() === '') return { ok: false, missing: false, problem: 'empty' };
  try {
    return { ok: true, value: parse(text) };
  } catch (err) {
    return { ok: false, missing: false, problem: `invalid (${err instanceof Error ? err.message.split('\n')[0] : String(err)})` };
  }
}
